"""Searches beyond the grid: RandomSearch, OptunaSearch, time budgets, resume, bad input."""

from __future__ import annotations

import os
import subprocess
import sys
import time

import numpy as np
import pandas as pd
import pytest
import training
from scipy.stats import loguniform, norm, randint, uniform

from runmanager import (
    InvalidArgumentError,
    InvalidArgumentTypeError,
    InvalidGridError,
    InvalidGridTypeError,
    OptunaSearch,
    RandomSearch,
    RunBuilder,
    RunManager,
    load_summary,
)
from runmanager.executors.memory import InMemoryExecutor

SPACE = {"lr": loguniform(1e-4, 1e-1), "units": randint(16, 257), "dropout": uniform(0, 0.5),
         "optimizer": ["adam", "sgd"]}


def score(run):
    """A made-up val_accuracy with its best at lr=0.01, units=128, dropout=0.1, adam."""
    return (1.0 - abs(np.log10(run.lr) + 2) / 4 - abs(run.units - 128) / 512 - abs(run.dropout - 0.1)
            - (0.1 if run.optimizer == "sgd" else 0.0))


def scripted(run, callbacks):
    params = run._asdict()
    if params.get("fail"):
        raise RuntimeError("asked to fail")
    training.fit_without_model(callbacks, [{"loss": 1.0 - score(run), "val_accuracy": score(run)}] * 2)


class Calls:
    """A train function that counts its runs and raises KeyboardInterrupt (as Ctrl-C would) at one of them."""

    def __init__(self, interrupt_at=None):
        self.runs = []
        self.interrupt_at = interrupt_at

    def __call__(self, run, callbacks):
        self.runs.append(run)
        if len(self.runs) == self.interrupt_at:
            callbacks[0].on_train_begin()
            callbacks[0].on_epoch_begin(0)
            raise KeyboardInterrupt
        scripted(run, callbacks)


def test_random_search_is_reproducible_and_holds_plain_python_values():
    a, b = RandomSearch(SPACE, 20, seed=3), RandomSearch(SPACE, 20, seed=3)
    assert list(a) == list(b) and len(a) == 20 and a[5] == list(b)[5]
    assert list(RandomSearch(SPACE, 20, seed=4)) != list(a)
    for run in a:
        assert type(run.lr) is float and type(run.units) is int and type(run.dropout) is float
        assert 1e-4 <= run.lr <= 1e-1 and 16 <= run.units <= 256 and run.optimizer in ("adam", "sgd")
    assert len({tuple(run) for run in a}) == 20
    assert a[0]._fields == ("lr", "units", "dropout", "optimizer")


def test_a_random_search_over_a_small_space_gives_its_distinct_runs_once_and_says_so():
    with pytest.warns(UserWarning, match=r"The space has 2 distinct runs, fewer than n_runs=10; RandomSearch gives "
                                         r"each once \(2 runs\)"):
        runs = RandomSearch({"units": [4, 8], "optimizer": ["adam"]}, n_runs=10, seed=0)
    assert len(runs) == 2 and sorted(run.units for run in runs) == [4, 8]
    with pytest.warns(UserWarning, match=r"The space has 2 distinct runs"):
        assert len(RandomSearch({"units": [4, 8]}, n_runs=10**12, seed=0)) == 2  # at once, not 2 * 10**13 draws


def test_a_random_search_over_lists_and_randint_gives_distinct_runs_in_a_random_order():
    space = {"units": randint(1, 11), "optimizer": ["adam", "sgd"]}
    runs = list(RandomSearch(space, n_runs=20, seed=0))
    assert sorted(runs) == sorted(RandomSearch(space, 20, seed=0).run_type(u, o) for u in range(1, 11)
                                  for o in ("adam", "sgd"))
    assert runs != sorted(runs) and runs != list(RandomSearch(space, n_runs=20, seed=1))
    assert all(type(run.units) is int for run in runs)


@pytest.mark.parametrize("space", [SPACE, {"units": range(10**6), "batch": range(10**6)}],
                         ids=["distributions", "a finite space of 10**12 runs"])
def test_a_random_search_of_10_to_the_12_runs_is_built_and_indexed_at_once(space):
    search = RandomSearch(space, n_runs=10**12, seed=0)
    run = search[10**11]
    assert len(search) == 10**12 and search.total == 10**12
    assert run == RandomSearch(space, n_runs=10**12, seed=0)[10**11] != search[10**11 + 1]
    assert search[-1] == search[10**12 - 1] and search[-10**12] == search[0]
    with pytest.raises(IndexError, match=r"run index 1000000000000 out of range for a RandomSearch of 1000000000000"):
        search[10**12]


def test_a_random_search_is_one_sequence_by_index_iteration_and_ask_and_grows_by_its_end():
    search = RandomSearch(SPACE, 8, seed=5)
    by_index = [search[i] for i in range(len(search))]
    assert list(search) == by_index == search[:] and search[2:4] == by_index[2:4]
    assert [search.ask() for _ in range(9)] == [*by_index, None]
    assert list(RandomSearch(SPACE, 3, seed=5)) == by_index[:3]  # a larger n_runs: the same first runs, then more
    unseeded = RandomSearch(SPACE, 4)
    assert list(unseeded) == list(unseeded) and list(unseeded) != list(RandomSearch(SPACE, 4))


def test_a_random_search_gives_the_same_runs_in_another_process():
    code = ("from scipy.stats import loguniform, randint, uniform; from runmanager import RandomSearch; "
            "space = {'lr': loguniform(1e-4, 1e-1), 'units': randint(16, 257), 'dropout': uniform(0, 0.5), "
            "'optimizer': ['adam', 'sgd']}; "
            "print(repr([tuple(RandomSearch(space, 10**6, seed=7)[i]) for i in (0, 999_999)] "
            "+ [tuple(RandomSearch({'a': range(1000), 'b': ['x', 'y']}, 10, seed=7)[3])]))")
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=60,
                          env={**os.environ, "PYTHONHASHSEED": "random"})
    assert done.returncode == 0, done.stderr
    here = [tuple(RandomSearch(SPACE, 10**6, seed=7)[i]) for i in (0, 999_999)]
    here += [tuple(RandomSearch({"a": range(1000), "b": ["x", "y"]}, 10, seed=7)[3])]
    assert done.stdout.strip() == repr(here)


def test_a_range_or_a_numpy_array_in_a_space_is_a_list_of_its_values():
    from optuna.distributions import CategoricalDistribution, IntDistribution

    runs = RandomSearch({"units": range(1, 5)}, n_runs=4, seed=0)
    assert sorted(run.units for run in runs) == [1, 2, 3, 4]
    assert sorted(run.lr for run in RandomSearch({"lr": np.array([0.1, 0.01])}, 2, seed=0)) == [0.01, 0.1]
    search = OptunaSearch({"units": range(16, 257, 16), "lr": np.array([0.1, 0.01])}, 3, metric="val_loss", seed=0)
    assert search.distributions == {"units": IntDistribution(16, 256, step=16),
                                    "lr": CategoricalDistribution((0.1, 0.01))}
    assert RandomSearch({"units": range(16, 257)}, 2).domain("units") == ("interval", (16.0, 256.0, True))


@pytest.mark.parametrize("make", [lambda space: RandomSearch(space, 5, seed=0),
                                  lambda space: OptunaSearch(space, 5, metric="val_loss", seed=0)],
                         ids=["RandomSearch", "OptunaSearch"])
@pytest.mark.parametrize("space, error, match", [
    ({"lr": loguniform(0.1, 0.001)}, InvalidGridError,
     r"^Parameter 'lr': loguniform\(0.1, 0.001\) cannot draw a value: loguniform\(a, b\) draws between a and b and "
     r"needs 0 < a < b; give loguniform\(0.001, 0.1\)\.$"),
    ({"units": randint(5, 5)}, InvalidGridError,
     r"^Parameter 'units': randint\(5, 5\) cannot draw a value: randint\(low, high\) draws the ints from low to "
     r"high - 1 and needs low < high; for the one value 5 give the list \[5\]\.$"),
    ({"units": randint(256, 16)}, InvalidGridError, r"Parameter 'units': randint\(256, 16\).*give randint\(16, 256\)"),
    ({"dropout": uniform(0.5, -0.2)}, InvalidGridError,
     r"Parameter 'dropout': uniform\(0.5, -0.2\) cannot draw a value: uniform\(loc, scale\) draws from loc to "
     r"loc \+ scale \(not from low to high\) and needs scale > 0; give uniform\(0.3, 0.2\) for 0.3 to 0.5\."),
    ({"x": norm(0, -1)}, InvalidGridError, r"Parameter 'x': norm\(0, -1\) cannot draw a value: it says ValueError"),
    ({"lr": loguniform}, InvalidGridTypeError,
     r"Parameter 'lr' has the value <scipy.*>, scipy.stats' loguniform without its parameters; give a frozen "
     r"distribution, e.g. lr=loguniform\(1e-4, 1e-1\)\."),
    ({"dropout": uniform}, InvalidGridTypeError,
     r"scipy.stats' uniform without its parameters; give a frozen distribution, e.g. dropout=uniform\(0, 0.5\)"),
    ({"dropout": type(uniform)}, InvalidGridTypeError, r"<class .*uniform_gen'>, scipy.stats' uniform without"),
    ({"units": (u for u in (16, 32))}, InvalidGridTypeError,
     r"Parameter 'units' has the value <generator.*>, which a search cannot index.*give a list of its values, "
     r"e.g. units=list\(...\)\."),
    ({"optimizer": {"sgd"}}, InvalidGridTypeError, r"give a list of its values, e.g. optimizer=sorted\(\{'sgd'\}\)"),
])
def test_a_bad_space_is_refused_at_construction_naming_the_param_and_the_fix(make, space, error, match):
    with pytest.raises(error, match=match):
        make(space)


@pytest.mark.parametrize("make", [
    lambda seed: RandomSearch(SPACE, 5, seed=seed),
    lambda seed: OptunaSearch(SPACE, 5, metric="val_loss", seed=seed),
    lambda seed: RunBuilder({"units": [4, 8]}).sample(1, seed=seed),
], ids=["RandomSearch", "OptunaSearch", "grid.sample"])
@pytest.mark.parametrize("seed", [-1, 2**32, 2**40])
def test_a_seed_numpy_cannot_take_is_refused_by_every_search(make, seed):
    with pytest.raises(InvalidArgumentError, match=rf"^seed={seed} is out of range: NumPy, Keras and Optuna take "
                                                   r"seeds from 0 to 2\*\*32 - 1, so give a seed from 0 to "
                                                   r"4294967295, e.g. seed=0\.$"):
        make(seed)
    make(2**32 - 1)  # the largest seed NumPy takes is fine


@pytest.mark.parametrize("sampler, match", [
    ("tpe", r"sampler must be an Optuna sampler \(an optuna.samplers.BaseSampler\), got 'tpe'; give the sampler "
            r"object: sampler=optuna.samplers.TPESampler\(seed=0\)\."),
    ("nsga-ii", r"got 'nsga-ii'; give the sampler object: sampler=optuna.samplers.NSGAIISampler\(seed=0\)"),
    ("best", r"got 'best'; give an Optuna sampler object, e.g. sampler=optuna.samplers.TPESampler\(seed=0\)"),
    (None.__class__, r"got <class 'NoneType'>"),
])
def test_a_sampler_that_is_not_an_optuna_sampler_object_is_refused_at_construction(sampler, match):
    with pytest.raises(InvalidArgumentTypeError, match=match):
        OptunaSearch(SPACE, 5, metric="val_loss", sampler=sampler)


def test_a_sampler_class_is_refused_with_how_to_make_one():
    import optuna

    with pytest.raises(InvalidArgumentTypeError, match=r"give an instance: sampler=optuna.samplers.RandomSampler"):
        OptunaSearch(SPACE, 5, metric="val_loss", sampler=optuna.samplers.RandomSampler)
    search = OptunaSearch(SPACE, 2, metric="val_loss", sampler=optuna.samplers.RandomSampler(seed=0))
    assert search.ask() is not None


@pytest.mark.parametrize("name", ["loss", "val_accuracy", "mse", "val_auc"])
def test_a_param_named_like_a_keras_metric_is_refused_by_every_search(name):
    for make in (lambda: RandomSearch({name: [1, 2]}, 2, seed=0), lambda: OptunaSearch({name: [1, 2]}, 2, metric="m"),
                 lambda: RunBuilder({name: [1, 2]})):
        with pytest.raises(InvalidGridError, match=rf"Parameter name '{name}' is the name of a metric Keras logs, so "
                                                   rf"every epoch row would have two '{name}' columns; rename"):
            make()


def test_a_run_of_a_search_is_made_only_from_its_own_param_names():
    search = RandomSearch({"lr": [0.1]}, 1)
    assert search.make_run({}) == search.run_type(None)
    with pytest.raises(InvalidGridError, match=r"'units' is not a parameter of these runs, whose parameters are 'lr'"):
        search.make_run({"lr": 0.1, "units": 4})


class Draws2:
    def rvs(self, random_state=None):
        return np.array([1.0, 2.0])


@pytest.mark.parametrize("make, error, match", [
    (lambda: RandomSearch(SPACE, 0), InvalidArgumentError, r"n_runs must be a positive int .* got 0"),
    (lambda: RandomSearch(SPACE, True), InvalidArgumentError, r"n_runs must be a positive int .* got True"),
    (lambda: RandomSearch({}, 5), InvalidGridError, r"search space is empty"),
    (lambda: RandomSearch({"lr": 0.1}, 5), InvalidGridTypeError,
     r"Parameter 'lr' has the value 0.1, which is neither a list of values nor a distribution.*lr=\[0.1\]"),
    (lambda: RandomSearch({"lr": []}, 5), InvalidGridError, r"Parameter 'lr' has an empty list"),
    (lambda: RandomSearch({"1lr": [0.1]}, 5), InvalidGridError, r"Parameter name '1lr' cannot be a field"),
    (lambda: RandomSearch({"lr": Draws2()}, 5), InvalidGridError,
     r"Parameter 'lr': the distribution .* drew array.*cannot be a run value"),
    (lambda: OptunaSearch(SPACE, 5, metric="val_accuracy", mode="best"), InvalidArgumentError,
     r"mode must be 'min' or 'max', got 'best'"),
    (lambda: OptunaSearch(SPACE, 5, metric=""), InvalidArgumentError,
     r"OptunaSearch needs the name of a logged metric such as 'val_accuracy', got ''"),
    (lambda: OptunaSearch({"x": norm()}, 5, metric="val_accuracy"), InvalidGridTypeError,
     r"Parameter 'x': OptunaSearch takes lists, scipy's uniform, loguniform and randint"),
    (lambda: OptunaSearch({"x": [object()]}, 5, metric="val_accuracy"), InvalidGridTypeError,
     r"OptunaSearch can choose only None, bool, int, float or str values"),
])
def test_bad_search_input_is_refused_before_any_run(make, error, match):
    with pytest.raises(error, match=match):
        make()


def test_optuna_search_maps_the_space_to_optuna_distributions():
    from optuna.distributions import CategoricalDistribution, FloatDistribution, IntDistribution

    search = OptunaSearch(SPACE, 5, metric="val_loss")
    assert search.mode == "min" and OptunaSearch(SPACE, 5, metric="val_accuracy").mode == "max"
    assert search.distributions == {
        "lr": FloatDistribution(1e-4, 1e-1, log=True), "units": IntDistribution(16, 256),
        "dropout": FloatDistribution(0.0, 0.5), "optimizer": CategoricalDistribution(("adam", "sgd"))}
    assert OptunaSearch({"x": IntDistribution(1, 3)}, 2, metric="m").distributions["x"] == IntDistribution(1, 3)


def test_a_random_sweep_resumed_after_ctrl_c_reruns_nothing_that_finished(tmp_path):
    first = Calls(interrupt_at=3)
    m = RunManager(tmp_path, verbose=0)
    with pytest.raises(KeyboardInterrupt):
        m.sweep(first, RandomSearch(SPACE, 6, seed=1))
    assert load_summary(tmp_path)["status"].tolist() == ["completed", "completed", "interrupted"]
    again = Calls()
    m = RunManager(tmp_path, verbose=0)
    summary = m.sweep(again, RandomSearch(SPACE, 6, seed=1), resume=True)
    assert summary["status"].tolist() == ["completed"] * 6
    assert again.runs == list(RandomSearch(SPACE, 6, seed=1))[2:]  # the interrupted run and the three after it
    assert summary[list(SPACE)].to_records(index=False).tolist() == [tuple(r) for r in RandomSearch(SPACE, 6, seed=1)]


def test_optuna_tells_every_result_and_resumes_informed_to_n_runs_in_total(tmp_path):
    first = Calls(interrupt_at=5)
    m = RunManager(tmp_path, verbose=0)
    with pytest.raises(KeyboardInterrupt):
        m.sweep(first, OptunaSearch(SPACE, 12, metric="val_accuracy", seed=0))
    summary = load_summary(tmp_path)
    assert summary["status"].tolist() == ["completed"] * 4 + ["interrupted"]
    search = OptunaSearch(SPACE, 12, metric="val_accuracy", seed=0)
    again = Calls()
    m = RunManager(tmp_path, verbose=0)
    summary = m.sweep(again, search, resume=True)
    assert len(again.runs) == 8  # 4 were told from the journal; 12 in total
    # 12 completed; the interrupted run stays so unless the sampler proposes its params again
    assert (summary["status"] == "completed").sum() == 12 and len(summary) in (12, 13)
    trials = search.study.trials
    assert all(t.state.name == "COMPLETE" for t in trials)
    # A proposal of params that already ran is told their result at once instead of running again.
    told = {tuple(sorted(t.params.items())): t.value for t in trials}
    completed = summary[summary["status"] == "completed"]
    assert len(told) == 12
    assert sorted(told.values()) == pytest.approx(sorted(completed["val_accuracy"]))
    assert search.study.best_value == pytest.approx(completed["val_accuracy"].max())


def test_failing_runs_are_told_to_optuna_as_failed_and_the_search_goes_on(tmp_path):
    space = {**SPACE, "fail": [True, False]}
    search = OptunaSearch(space, 10, metric="val_accuracy", seed=1)
    summary = RunManager(tmp_path, verbose=0).sweep(scripted, search, max_consecutive_failures=0)
    failed = (summary["status"] == "failed").sum()
    assert 0 < failed < 10 and len(summary) == 10
    states = [t.state.name for t in search.study.trials]
    assert states.count("FAIL") == failed and states.count("COMPLETE") == 10 - failed


def test_a_metric_the_runs_never_log_fails_the_first_run_and_names_the_metrics_there_are(tmp_path):
    m = RunManager(tmp_path, verbose=0)
    with pytest.raises(InvalidArgumentError, match=r"optimises 'val_acc', which run 1 never logged \(it logged "
                                                   r"loss, val_accuracy\); pass one of those"):
        m.sweep(scripted, OptunaSearch(SPACE, 5, metric="val_acc", seed=0))
    summary = load_summary(tmp_path)
    assert summary["status"].tolist() == ["failed"] and "never logged" in summary["error"][0]


def test_optuna_asks_for_a_run_whenever_an_in_memory_worker_is_free(tmp_path):
    search = OptunaSearch(SPACE, 9, metric="val_accuracy", seed=2)
    summary = RunManager(tmp_path, verbose=0).sweep(scripted, search, executor=InMemoryExecutor(3))
    assert summary["status"].tolist() == ["completed"] * 9 and len(search.study.trials) == 9


def slow(run, callbacks):
    time.sleep(0.3)
    scripted(run, callbacks)


def test_no_run_starts_after_the_time_budget_and_the_sweep_says_so(tmp_path, capsys):
    m = RunManager(tmp_path, verbose=1)
    summary = m.sweep(slow, RandomSearch(SPACE, 50, seed=0), timeout=0.5)
    assert 1 <= len(summary) <= 3 and (summary["status"] == "completed").all()
    assert summary.attrs["sweep_end"] == "timeout"
    out = capsys.readouterr().out
    assert "the time budget of 0.5 s is spent" in out and "sweep stopped by its time budget" in out
    assert RunManager(tmp_path / "b", verbose=0).sweep(scripted, {"units": [1]}).attrs["sweep_end"] == "finished"


@pytest.mark.parametrize("timeout", [0, -1, "60", True])
def test_a_bad_timeout_is_refused(tmp_path, timeout):
    with pytest.raises(InvalidArgumentError, match="timeout must be a positive number of seconds"):
        RunManager(tmp_path, verbose=0).sweep(scripted, RandomSearch(SPACE, 2), timeout=timeout)


def test_random_search_on_worker_processes_gives_the_runs_of_sequential(tmp_path):
    space = {"units": randint(2, 17), "learning_rate": loguniform(0.01, 0.2)}
    sequential = RunManager(tmp_path / "a", verbose=0).sweep(training.train, RandomSearch(space, 4, seed=5), seed=0)
    parallel = RunManager(tmp_path / "b", verbose=0).sweep(training.train, RandomSearch(space, 4, seed=5), seed=0,
                                                           executor="processes", workers=2)
    columns = ["run", "units", "learning_rate", "status", "epochs"]
    pd.testing.assert_frame_equal(parallel[columns], sequential[columns])
    assert parallel["val_loss"].tolist() == pytest.approx(sequential["val_loss"].tolist(), rel=1e-3)


# --------------------------------------------------------------------------------------
# Several objectives: val_accuracy (max) and the model's size, an extra column (min)
# --------------------------------------------------------------------------------------
SIZES = {"lr": loguniform(1e-4, 1e-1), "units": [8, 16, 32, 64, 128, 256], "dropout": uniform(0, 0.5),
         "optimizer": ["adam", "sgd"]}
TWO = {"metric": ["val_accuracy", "params"], "mode": ["max", "min"]}


class SizeManager(RunManager):
    """Logs each run's parameter count as the extra column ``params``, as ``model.count_params()`` would."""

    def extra_columns(self):
        return {"params": self.run_params.units * 74 + 10}


def values_by_params(summary, metrics=("val_accuracy", "params")):
    """Each completed run's values of ``metrics``, keyed by its params (as Optuna's trials hold them)."""
    done = summary[summary["status"] == "completed"]
    return {tuple(sorted((name, row[name]) for name in SIZES)): [row[m] for m in metrics]
            for row in done.to_dict("records")}


def test_a_search_of_two_metrics_tells_optuna_both_values_with_a_seeded_nsga_ii(tmp_path):
    import optuna

    search = OptunaSearch(SIZES, 6, **TWO, seed=0)
    assert isinstance(search.study.sampler, optuna.samplers.NSGAIISampler)
    assert search.study.directions == [optuna.study.StudyDirection.MAXIMIZE, optuna.study.StudyDirection.MINIMIZE]
    assert (search.metric, search.mode) == ("val_accuracy", "max")
    summary = SizeManager(tmp_path / "a", verbose=0).sweep(scripted, search)
    assert (summary["status"] == "completed").all() and len(summary) == 6
    expected = values_by_params(summary)
    told = [t for t in search.study.trials if t.state.name == "COMPLETE"]
    assert len(told) >= 6
    for trial in told:
        assert trial.values == pytest.approx(expected[tuple(sorted(trial.params.items()))])
    assert summary.attrs["objectives"] == [["val_accuracy", "max"], ["params", "min"]] and "pareto" in summary
    # Seeded: the same runs for the same seed, other runs for another.
    again = SizeManager(tmp_path / "b", verbose=0).sweep(scripted, OptunaSearch(SIZES, 6, **TWO, seed=0))
    other = SizeManager(tmp_path / "c", verbose=0).sweep(scripted, OptunaSearch(SIZES, 6, **TWO, seed=1))
    pd.testing.assert_frame_equal(again[list(SIZES)], summary[list(SIZES)])
    assert not other[list(SIZES)].equals(summary[list(SIZES)])


def test_a_search_of_two_metrics_keeps_a_sampler_given_and_one_metric_keeps_tpe():
    import optuna

    given = optuna.samplers.RandomSampler(seed=0)
    assert OptunaSearch(SIZES, 3, **TWO, sampler=given).study.sampler is given
    assert isinstance(OptunaSearch(SIZES, 3, metric="val_accuracy", seed=0).study.sampler, optuna.samplers.TPESampler)
    assert OptunaSearch(SIZES, 3, metric=["val_loss", "params"]).objectives == [("val_loss", "min"), ("params", "max")]
    assert "metric=['val_accuracy', 'params']" in repr(OptunaSearch(SIZES, 3, **TWO))


@pytest.mark.parametrize(("metric", "mode", "match"), [
    (["val_accuracy", "params"], ["max"], r"2 metrics .* and 1 modes"),
    ([], None, r"empty list of metrics"),
    (["val_accuracy", "params"], ["max", "least"], r"mode must be 'min' or 'max', got 'least'"),
    (["val_accuracy", "params"], "min", r"several metrics .* and one mode 'min'"),
])
def test_bad_lists_of_metrics_are_refused_when_the_search_is_made(metric, mode, match):
    with pytest.raises(InvalidArgumentError, match=match):
        OptunaSearch(SIZES, 3, metric=metric, mode=mode)


def test_failed_runs_of_a_search_of_two_metrics_are_told_as_failed(tmp_path):
    space = {**SIZES, "fail": [True, False]}
    search = OptunaSearch(space, 8, **TWO, seed=1)
    summary = SizeManager(tmp_path, verbose=0).sweep(scripted, search, max_consecutive_failures=0)
    failed = int((summary["status"] == "failed").sum())
    assert 0 < failed < 8
    states = [t.state.name for t in search.study.trials]
    assert states.count("FAIL") >= failed and states.count("COMPLETE") >= 8 - failed
    assert all(len(t.values) == 2 for t in search.study.trials if t.state.name == "COMPLETE")


def test_a_run_that_never_logs_one_of_the_metrics_stops_the_sweep_naming_it(tmp_path):
    with pytest.raises(InvalidArgumentError, match=r"optimises 'params', which run 1 never logged \(it logged "
                                                   r"loss, val_accuracy\); pass one of those"):
        RunManager(tmp_path, verbose=0).sweep(scripted, OptunaSearch(SIZES, 4, **TWO, seed=0))
    assert load_summary(tmp_path)["status"].tolist() == ["failed"]


def test_a_resumed_search_of_two_metrics_tells_the_journals_runs_both_values_first(tmp_path):
    first = Calls(interrupt_at=4)
    with pytest.raises(KeyboardInterrupt):
        SizeManager(tmp_path, verbose=0).sweep(first, OptunaSearch(SIZES, 8, **TWO, seed=0))
    before = values_by_params(load_summary(tmp_path))
    assert len(before) == 3
    search = OptunaSearch(SIZES, 8, **TWO, seed=0)
    again = Calls()
    summary = SizeManager(tmp_path, verbose=0).sweep(again, search, resume=True)
    assert len(again.runs) == 5 and (summary["status"] == "completed").sum() == 8
    journal = search.study.trials[:3]  # told from the journal before the first ask
    told = {tuple(sorted(t.params.items())): t.values for t in journal}
    assert told.keys() == before.keys()
    for key, values in before.items():
        assert told[key] == pytest.approx(values)


def test_with_repeats_each_metric_is_told_as_its_mean_over_the_repeats(tmp_path):
    search = OptunaSearch(SIZES, 3, **TWO, seed=0)

    def noisy(run, callbacks):
        level = score(run) + (0.01 if run.repeat == 2 else 0.0)
        training.fit_without_model(callbacks, [{"loss": 1 - level, "val_accuracy": level}])

    summary = SizeManager(tmp_path, verbose=0).sweep(noisy, search, repeats=2, seed=0)
    assert len(summary) == 6
    means = summary.groupby(list(SIZES))[["val_accuracy", "params"]].mean()
    told = [t for t in search.study.trials if t.state.name == "COMPLETE"]
    assert len(told) == 3
    for trial in told:
        key = tuple(trial.params[name] for name in SIZES)
        assert trial.values == pytest.approx(means.loc[key].tolist())
    assert aggregate_has_front(summary)


def aggregate_has_front(summary) -> bool:
    from runmanager import aggregate

    return aggregate(summary)["pareto"].dtype == bool

"""Searches beyond the grid: RandomSearch, OptunaSearch, time budgets, resume, bad input."""

from __future__ import annotations

import time

import numpy as np
import pandas as pd
import pytest
import training
from scipy.stats import loguniform, norm, randint, uniform

from runmanager import (
    InvalidArgumentError,
    InvalidGridError,
    InvalidGridTypeError,
    OptunaSearch,
    RandomSearch,
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


def test_a_random_search_over_a_small_space_gives_its_distinct_runs_once():
    runs = RandomSearch({"units": [4, 8], "optimizer": ["adam"]}, n_runs=10, seed=0)
    assert sorted(run.units for run in runs) == [4, 8]


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

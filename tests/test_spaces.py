"""Conditional spaces and warm starts: a list of spaces for RandomSearch and OptunaSearch, a
define-by-run space function, warm_start= and enqueue=; real sweeps of a Keras model, sequential
and on worker processes, resumed, and what TensorBoard, the files and the report make of a
param that a run does not have (None)."""

from __future__ import annotations

import json
import warnings

import pandas as pd
import pytest
import training
from scipy.stats import loguniform, randint
from test_search import Calls, scripted
from test_tensorboard import experiment, hparam_values, run_folder, session

import runmanager
from runmanager import (
    InvalidArgumentError,
    InvalidArgumentTypeError,
    InvalidGridError,
    InvalidGridTypeError,
    OptunaSearch,
    RandomSearch,
    RunManager,
    aggregate,
    load_results,
    load_summary,
)

#: A dense model has units and a learning rate, a deep one a depth: 4 + 3 runs.
UNION = [{"model": ["dense"], "units": [4, 16], "learning_rate": [0.05, 0.1]}, {"model": ["deep"], "depth": [1, 2, 3]}]
FIELDS = ("model", "units", "learning_rate", "depth")
EVERY_RUN = {("dense", units, lr, None) for units in (4, 16) for lr in (0.05, 0.1)} | {
    ("deep", None, None, depth) for depth in (1, 2, 3)}
#: The same spaces for the scripted train of test_search (its score needs lr, units, dropout, optimizer).
SCRIPTED = [{"optimizer": ["adam"], "lr": loguniform(1e-3, 1e-1), "units": randint(16, 257), "dropout": [0.1]},
            {"optimizer": ["sgd"], "lr": loguniform(1e-3, 1e-2), "units": [64, 128], "dropout": [0.0, 0.2]}]


def rows(frame: pd.DataFrame, names=FIELDS) -> list[tuple]:
    """The params of each row, NaN (how a DataFrame holds a run's None) as None."""
    return [tuple(None if pd.isna(value) else value for value in row) for row in frame[list(names)].itertuples(index=False)]


# --------------------------------------------------------------------------------------
# RandomSearch over a list of spaces
# --------------------------------------------------------------------------------------
def test_a_union_of_finite_spaces_gives_every_run_once_with_none_for_the_names_its_space_lacks():
    with pytest.warns(UserWarning, match=r"The 2 spaces have 7 distinct runs, fewer than n_runs=10"):
        search = RandomSearch(UNION, 10, seed=0)
    assert search.fields == FIELDS and len(search) == 7
    runs = list(search)
    assert {tuple(run) for run in runs} == EVERY_RUN
    assert {run.model for run in runs[:4]} == {"dense", "deep"}  # the spaces take turns
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        assert list(RandomSearch(UNION, 7, seed=0)) == runs  # the same runs for the same seed
    assert list(RandomSearch(UNION, 7, seed=1)) != runs
    assert search.domain("depth") == ("discrete", [1, 2, 3]) and search.values_of("model") == ["dense", "deep"]


def test_a_union_with_an_endless_space_takes_turns_until_the_finite_one_is_spent():
    search = RandomSearch([{"model": ["dense"], "units": randint(2, 33)}, {"model": ["deep"], "depth": [1, 2]}], 8, seed=0)
    runs = list(search)
    assert search[3] == runs[3] and search[2:5] == runs[2:5]  # one sequence, by index too
    deep = [run for run in runs if run.model == "deep"]
    assert sorted(run.depth for run in deep) == [1, 2] and all(run.units is None for run in deep)
    assert {run.model for run in runs[:2]} == {"dense", "deep"}
    assert all(run.model == "dense" and 2 <= run.units <= 32 and run.depth is None for run in runs[4:])
    assert search.domain("units") == ("interval", (2.0, 32.0, True))
    assert "2 spaces" in repr(search)


@pytest.mark.parametrize(("space", "error", "match"), [
    ([], InvalidGridError, r"The list of spaces is empty; give at least one mapping"),
    ([{"units": [4]}, ["depth", 2]], InvalidGridTypeError, r"Each space in the list must be a mapping.*got \['depth', 2\]"),
    ([{"units": [4]}, {"depth": []}], InvalidGridError, r"depth"),
    ("units", InvalidGridTypeError, r"(a list of such mappings \(a union\)|a list of spaces).*, got 'units'"),
])
def test_a_bad_list_of_spaces_is_refused_by_both_searches(space, error, match):
    with pytest.raises(error, match=match):
        RandomSearch(space, 4, seed=0)
    with pytest.raises(error, match=match):
        OptunaSearch(space, 4, metric="val_loss", seed=0)


def test_a_union_sweep_on_worker_processes_gives_the_runs_of_sequential_with_none_in_every_file(tmp_path):
    sequential = RunManager(tmp_path / "a", verbose=0, tensorboard=True).sweep(
        training.train_conditional, RandomSearch(UNION, 5, seed=3), seed=0)
    parallel = RunManager(tmp_path / "b", verbose=0).sweep(
        training.train_conditional, RandomSearch(UNION, 5, seed=3), seed=0, executor="processes", workers=2)
    assert rows(parallel) == rows(sequential) == [tuple(run) for run in RandomSearch(UNION, 5, seed=3)]
    assert (sequential["status"] == "completed").all()
    assert parallel["val_loss"].tolist() == pytest.approx(sequential["val_loss"].tolist(), rel=1e-3)
    log_dir = tmp_path / "a"
    # The journal and summary.json hold None (null); the CSV an empty cell, read back as NaN.
    starts = [json.loads(line)["params"] for line in (log_dir / "journal.jsonl").read_text().splitlines()
              if json.loads(line)["type"] == "run_start"]
    assert [tuple(params[name] for name in FIELDS) for params in starts] == rows(sequential)
    records = json.loads((log_dir / "summary.json").read_text())
    assert [tuple(record[name] for name in FIELDS) for record in records] == rows(sequential)
    assert rows(load_summary(log_dir / "summary.csv")) == rows(load_results(log_dir).drop_duplicates("run"))
    # TensorBoard: every param in the config with the union's domain; a run's session leaves its None out.
    infos = {info.name: info for info in experiment(log_dir).hparam_infos}
    assert list(infos) == list(FIELDS)
    assert [value for value in infos["depth"].domain_discrete] == [1, 2, 3]
    for number, run in enumerate(RandomSearch(UNION, 5, seed=3), start=1):
        params = run._asdict()
        start, end = session(run_folder(log_dir, number, params))
        assert hparam_values(start) == {name: value for name, value in params.items() if value is not None}
        assert end is not None
    # aggregate keeps a None apart from every value; the report shows it as an empty cell.
    table = aggregate(sequential)
    assert len(table) == 5 and table["depth"].isna().sum() == table["model"].eq("dense").sum()
    page = runmanager.report(log_dir).read_text(encoding="utf-8")
    assert "<td>deep</td>" in page and "<td>nan</td>" not in page.lower() and ">NaN<" not in page


# --------------------------------------------------------------------------------------
# OptunaSearch: a list of spaces, a space function
# --------------------------------------------------------------------------------------
def test_optuna_over_a_union_suggests_the_space_then_its_params_and_learns_from_shared_names(tmp_path):
    search = OptunaSearch(SCRIPTED, 12, metric="val_accuracy", seed=0)
    assert search.fields == ("optimizer", "lr", "units", "dropout")
    summary = RunManager(tmp_path, verbose=0).sweep(scripted, search)
    assert (summary["status"] == "completed").all() and len(summary) == 12
    assert set(summary["optimizer"]) == {"adam", "sgd"}
    # The space is a param of the study, not of the run. lr, a log-float in both spaces, is one param of
    # the study, which learns from both; the others differ in kind or choices, so each space has its own.
    for trial in search.study.trials:
        space = trial.params["_space"]
        own = space + 1
        assert set(trial.params) == {"_space", "lr", f"optimizer@{own}", f"units@{own}", f"dropout@{own}"}
        assert trial.params[f"optimizer@{own}"] == ("adam", "sgd")[space]
    assert "_space" not in summary.columns
    told = sorted(trial.value for trial in search.study.trials)
    assert told == pytest.approx(sorted(summary["val_accuracy"]))
    again = RunManager(tmp_path / "again", verbose=0).sweep(scripted, OptunaSearch(SCRIPTED, 12, metric="val_accuracy", seed=0))
    pd.testing.assert_frame_equal(again[list(search.fields)], summary[list(search.fields)])


#: What an earlier sweep of the conditional space learned, and a configuration to run first.
KNOWN = {"warm_start": [{"model": "dense", "learning_rate": 0.1, "units": 16, "val_loss": 0.5},
                        {"model": "deep", "learning_rate": 0.05, "depth": 2, "units": None, "val_loss": 0.6}],
         "enqueue": [{"model": "deep", "depth": 3}]}


def test_a_space_function_finds_its_fields_and_runs_each_branch_with_none_for_the_other(tmp_path):
    search = OptunaSearch(training.conditional_space, 6, metric="val_loss", seed=0, **KNOWN)
    assert search.warm_started == 2
    assert set(search.fields) == {"model", "learning_rate", "units", "depth"} and search.fields[:2] == ("model", "learning_rate")
    assert search.space_fn is training.conditional_space and "conditional_space, 4 parameters" in repr(search)
    summary = RunManager(tmp_path / "a", verbose=0).sweep(training.train_conditional, search, seed=0)
    assert (summary["status"] == "completed").all() and len(summary) == 6
    dense, deep = summary[summary["model"] == "dense"], summary[summary["model"] == "deep"]
    assert len(dense) and len(deep)
    assert dense["depth"].isna().all() and dense["units"].between(2, 32).all()
    assert deep["units"].isna().all() and deep["depth"].between(1, 4).all()
    assert summary["depth"][0] == 3 and 0.01 <= summary["learning_rate"][0] <= 0.2  # enqueued, its lr drawn
    # The names given as fields= set the columns' order.
    ordered = ["model", "units", "depth", "learning_rate"]
    named = OptunaSearch(training.conditional_space, 6, metric="val_loss", seed=0, fields=ordered)
    assert named.fields == tuple(ordered)
    # Seeded, warm started and asked in the same order, worker processes run the same configurations.
    parallel = RunManager(tmp_path / "b", verbose=0).sweep(
        training.train_conditional, OptunaSearch(training.conditional_space, 6, metric="val_loss", seed=0, **KNOWN),
        seed=0, executor="processes", workers=2)
    assert sorted(rows(parallel, search.fields), key=str) == sorted(rows(summary, search.fields), key=str)


def test_a_resumed_search_of_a_space_function_replays_the_journal_and_goes_on_to_n_runs(tmp_path):
    def space(trial):
        optimizer = trial.suggest_categorical("optimizer", ["adam", "sgd"])
        lr = trial.suggest_float("lr", 1e-3, 1e-1, log=True)
        units = trial.suggest_int("units", 16, 256) if optimizer == "adam" else 64
        return {"optimizer": optimizer, "lr": lr, "units": units, "dropout": 0.1}

    first = Calls(interrupt_at=5)
    with pytest.raises(KeyboardInterrupt):
        RunManager(tmp_path, verbose=0).sweep(first, OptunaSearch(space, 10, metric="val_accuracy", seed=0))
    search = OptunaSearch(space, 10, metric="val_accuracy", seed=0)
    again = Calls()
    summary = RunManager(tmp_path, verbose=0).sweep(again, search, resume=True)
    assert len(again.runs) == 6 and (summary["status"] == "completed").sum() == 10
    replayed = search.study.trials[:4]
    assert [trial.value for trial in replayed] == pytest.approx(summary["val_accuracy"][:4].tolist())
    for trial in replayed:  # told with the distributions the function drew them from
        assert set(trial.distributions) == ({"optimizer", "lr", "units"} if trial.params["optimizer"] == "adam"
                                            else {"optimizer", "lr"})


def raises_for_deep(trial):
    model = trial.suggest_categorical("model", ["dense", "deep"])
    if model == "deep":
        raise KeyError("depth")
    return {"model": model}


def only_dense_named(trial):
    model = trial.suggest_categorical("model", ["dense", "deep"])
    return {"model": model, "units": 8} if model == "dense" else {"model": model, "width": 8}


@pytest.mark.parametrize(("space", "kwargs", "error", "match"), [
    (raises_for_deep, {}, InvalidGridError,
     r"The space function raises_for_deep raised KeyError: 'depth', when OptunaSearch called it with a trial "
     r"\(params so far: \{'model': 'deep'\}\); fix it"),
    (lambda trial: [trial.suggest_int("units", 1, 4)], {}, InvalidGridTypeError,
     r"must return a dict of params, such as .*, got \[\d\]"),
    (lambda trial: {}, {}, InvalidGridError, r"returned no params in 100 calls"),
    (lambda trial: {"val_loss": 1}, {}, InvalidGridError, r"val_loss"),
    (only_dense_named, {"fields": ["model", "units"]}, InvalidGridError,
     r"returned 'width', which is not among the fields of the search \('model', 'units', which were given as "
     r"fields=\); pass fields=\[\.\.\.\] with every name it can return"),
    (only_dense_named, {"fields": "model"}, InvalidGridTypeError, r"fields must be a non-empty list"),
    ({"units": [4]}, {"fields": ["units"]}, InvalidArgumentError, r"drop fields="),
])
def test_a_bad_space_function_is_refused_when_the_search_is_made(space, kwargs, error, match):
    with pytest.raises(error, match=match):
        OptunaSearch(space, 4, metric="val_loss", seed=0, **kwargs)


def test_a_name_the_function_returns_only_later_stops_the_sweep_and_says_to_pass_fields(tmp_path):
    calls = {"n": 0}

    def late(trial):
        calls["n"] += 1
        lr = trial.suggest_float("lr", 1e-3, 1e-1, log=True)
        return {"lr": lr, "units": 64, "optimizer": "adam", "dropout": 0.1, **({"extra": 1} if calls["n"] > 102 else {})}

    with pytest.raises(InvalidGridError, match=r"returned 'extra', which is not among the fields of the search "
                                               r".*100 calls when the search was made\); pass fields="):
        RunManager(tmp_path, verbose=0).sweep(scripted, OptunaSearch(late, 6, metric="val_accuracy", seed=0))
    assert len(load_summary(tmp_path)) == 2


# --------------------------------------------------------------------------------------
# Warm starts and enqueued configurations
# --------------------------------------------------------------------------------------
@pytest.fixture(scope="module")
def earlier(tmp_path_factory):
    """An earlier grid sweep of 4 configurations, each twice, and a fifth that failed (its param
    ``fail``, None in the others)."""
    log_dir = tmp_path_factory.mktemp("earlier")
    space = {"optimizer": ["adam"], "lr": [0.001, 0.01], "units": [64, 128], "dropout": [0.1]}
    RunManager(log_dir, verbose=0).sweep(scripted, [space, {**space, "lr": [0.05], "units": [32], "fail": [True]}],
                                         repeats=2)
    return log_dir


def test_a_warm_start_from_a_log_dir_tells_optuna_its_completed_configurations_first(tmp_path, earlier):
    space = {"optimizer": ["adam", "sgd"], "lr": loguniform(1e-4, 1e-1), "units": [32, 64, 128], "dropout": [0.1]}
    search = OptunaSearch(space, 3, metric="val_accuracy", seed=0, warm_start=earlier)
    assert search.warm_started == 4
    told = search.study.trials
    assert [trial.user_attrs for trial in told] == [{"warm_start": True}] * 4
    summary = load_summary(earlier)
    means = summary[summary["status"] == "completed"].groupby(["lr", "units"])["val_accuracy"].mean()
    assert {(t.params["lr"], t.params["units"]): t.value for t in told} == pytest.approx(means.to_dict())
    result = RunManager(tmp_path, verbose=0).sweep(scripted, search)
    assert len(result) == 3 and result["run"].tolist() == [1, 2, 3]  # none of them counts as a run here
    assert len(search.study.trials) == 7
    # The same configurations from the summary DataFrame, or from a list of dicts.
    assert OptunaSearch(space, 3, metric="val_accuracy", warm_start=load_summary(earlier)).warm_started == 4
    dicts = [{"optimizer": "adam", "lr": 0.01, "units": 64, "dropout": 0.1, "val_accuracy": 0.9, "loss": 0.1},
             {"optimizer": "adam", "lr": 0.02, "units": 64, "dropout": 0.1, "val_accuracy": None}]
    listed = OptunaSearch(space, 3, metric="val_accuracy", warm_start=dicts)
    assert listed.warm_started == 1 and listed.study.trials[0].params == {k: v for k, v in dicts[0].items()
                                                                          if k not in ("val_accuracy", "loss")}


def test_runs_of_a_warm_start_outside_the_space_are_left_out_with_a_warning(earlier):
    with pytest.warns(UserWarning, match=r"warm_start: 2 of 4 completed configurations do not fit this space and are "
                                         r"not told to Optuna \(the first, .*units=128 is outside"):
        search = OptunaSearch({"optimizer": ["adam"], "lr": [0.001, 0.01], "units": [64], "dropout": [0.1]}, 2,
                              metric="val_accuracy", warm_start=earlier)
    assert search.warm_started == 2


def test_a_warm_start_of_a_space_function_replays_each_run_through_it(earlier):
    def space(trial):
        return {"optimizer": "adam", "lr": trial.suggest_float("lr", 1e-4, 1e-1, log=True),
                "units": trial.suggest_categorical("units", [64, 128]), "dropout": 0.1}

    search = OptunaSearch(space, 2, metric="val_accuracy", seed=0, warm_start=earlier)
    assert search.warm_started == 4
    assert set(search.study.trials[0].distributions) == {"lr", "units"}


def test_enqueued_configurations_run_first_within_n_runs_with_the_rest_drawn(tmp_path):
    enqueue = [{"optimizer": "sgd", "lr": 0.01, "units": 128, "dropout": 0.2}, {"optimizer": "adam", "units": 100}]
    search = OptunaSearch(SCRIPTED, 4, metric="val_accuracy", seed=0, enqueue=enqueue)
    summary = RunManager(tmp_path, verbose=0).sweep(scripted, search)
    assert len(summary) == 4
    assert rows(summary.head(1), ("optimizer", "lr", "units", "dropout")) == [("sgd", 0.01, 128, 0.2)]
    second = summary.iloc[1]
    assert (second["optimizer"], second["units"], second["dropout"]) == ("adam", 100, 0.1)
    assert 1e-3 <= second["lr"] <= 1e-1  # drawn


@pytest.mark.parametrize(("kwargs", "error", "match"), [
    ({"warm_start": "/no/such/sweep"}, InvalidArgumentError, r"warm_start '/no/such/sweep' does not exist; give the log_dir"),
    ({"warm_start": [{"lr": 0.01}]}, InvalidArgumentError, r"has no 'val_accuracy', the metric OptunaSearch optimises"),
    ({"warm_start": []}, InvalidArgumentError, r"warm_start is an empty list"),
    ({"warm_start": 3}, InvalidArgumentTypeError, r"warm_start must be the log_dir of an earlier sweep"),
    ({"enqueue": [{"optimizer": "adam", "width": 3}]}, InvalidGridError,
     r"'width' is not a parameter of the space, whose parameters are 'optimizer', 'lr', 'units', 'dropout'"),
    ({"enqueue": [{"optimizer": "sgd", "units": 300}]}, InvalidGridError,
     r"fits none of the 2 spaces that have its names \(space 1: optimizer='sgd' is outside .*; space 2: units=300 is "
     r"outside CategoricalDistribution\(choices=\(64, 128\)\)\); give values one space can draw"),
    ({"enqueue": [{"units": 64}] * 5}, InvalidArgumentError, r"enqueue holds 5 configurations, more than n_runs=4"),
    ({"enqueue": {"units": 64}}, InvalidArgumentTypeError, r"enqueue must be a list of dicts of params"),
])
def test_bad_warm_starts_and_enqueued_configurations_are_refused_when_the_search_is_made(kwargs, error, match):
    with pytest.raises(error, match=match):
        OptunaSearch(SCRIPTED, 4, metric="val_accuracy", seed=0, **kwargs)


def test_a_warm_start_from_a_folder_without_the_metric_names_the_columns(tmp_path, earlier):
    with pytest.raises(InvalidArgumentError, match=r"has no column 'val_auc', the metric OptunaSearch optimises; "
                                                   r"its columns are run, optimizer"):
        OptunaSearch(SCRIPTED, 4, metric="val_auc", warm_start=earlier)

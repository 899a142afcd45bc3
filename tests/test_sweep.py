"""Sequential sweeps: statuses, failures, divergence, resume, seeds, bad input."""

from __future__ import annotations

import functools
import math

import keras
import pandas as pd
import pytest
import training

from runmanager import (
    ColumnClashError,
    InvalidArgumentError,
    InvalidArgumentTypeError,
    LogDirError,
    RunBuilder,
    RunManager,
    SweepError,
    load_results,
    load_summary,
)

GRID = {"units": [4, 8], "learning_rate": [0.05, 0.1]}


def sweep(log_dir, params=GRID, train=training.train, **kwargs):
    m = RunManager(log_dir, verbose=0)
    summary = m.sweep(train, params, **kwargs)
    m.close()
    return summary


class Recorder:
    """A train function that remembers which runs it was given."""

    def __init__(self, train=training.train):
        self.runs = []
        self.train = train

    def __call__(self, run, callbacks):
        self.runs.append(run)
        self.train(run, callbacks)


def test_sweep_runs_every_run_in_grid_order_and_summarises(tmp_path):
    summary = sweep(tmp_path, seed=0)
    assert summary["run"].tolist() == [1, 2, 3, 4]
    assert summary[["units", "learning_rate"]].values.tolist() == [[4, 0.05], [4, 0.1], [8, 0.05], [8, 0.1]]
    assert summary["status"].tolist() == ["completed"] * 4
    assert summary["epochs"].tolist() == [3] * 4
    assert list(summary.columns) == [
        "run", "units", "learning_rate", "status", "epochs",
        "accuracy", "loss", "val_accuracy", "val_loss", "run_duration", "error",
    ]
    results = load_results(tmp_path)
    last = results.groupby("run").tail(1).reset_index(drop=True)
    assert summary["val_loss"].tolist() == pytest.approx(last["val_loss"].tolist())
    pd.testing.assert_frame_equal(load_summary(tmp_path), summary)
    assert len(pd.read_csv(tmp_path / "summary.csv")) == 4


def test_sweep_accepts_a_runbuilder_with_a_filter(tmp_path):
    grid = RunBuilder(GRID, where=lambda run: run.units == 8)
    assert sweep(tmp_path, grid)["units"].tolist() == [8, 8]


def test_seed_makes_sweeps_reproducible(tmp_path):
    a = load_results(tmp_path / "a") if sweep(tmp_path / "a", seed=7) is not None else None
    b = load_results(tmp_path / "b") if sweep(tmp_path / "b", seed=7) is not None else None
    assert a["loss"].tolist() == b["loss"].tolist()
    assert a["val_accuracy"].tolist() == b["val_accuracy"].tolist()


def test_keras_session_is_cleared_between_runs(tmp_path):
    names = []

    def train(run, callbacks):
        model = training.build_model(run.units)
        names.append(model.layers[0].name)
        training.train(run, callbacks)

    sweep(tmp_path, train=train)
    assert names == ["dense"] * 4  # a fresh session each run: no "dense_6"


def test_a_failing_run_is_recorded_and_the_sweep_goes_on(tmp_path):
    params = [{"units": [4], "fail": [None]}, {"units": [8], "fail": ["yes"]}, {"units": [16], "fail": [None]}]
    summary = sweep(tmp_path, params)
    assert summary["status"].tolist() == ["completed", "failed", "completed"]
    assert summary["error"].tolist()[1] == "RuntimeError: run asked to fail: yes"
    assert summary["epochs"].tolist() == [3, 0, 3]
    journal = (tmp_path / "journal.jsonl").read_text()
    assert "Traceback (most recent call last)" in journal and "training.py" in journal


def test_consecutive_failures_stop_the_sweep(tmp_path):
    params = {"units": [4, 8, 16, 32], "fail": ["always"]}
    with pytest.raises(SweepError, match=r"after 3 failed runs in a row.*RuntimeError: run asked to fail"):
        sweep(tmp_path, params)
    assert load_summary(tmp_path)["status"].tolist() == ["failed"] * 3


def test_zero_means_never_stop_on_failures(tmp_path):
    params = {"units": [4, 8, 16, 32], "fail": ["always"]}
    summary = sweep(tmp_path, params, max_consecutive_failures=0)
    assert summary["status"].tolist() == ["failed"] * 4


def test_a_success_resets_the_failure_count(tmp_path):
    params = [{"units": [4, 8], "fail": ["x"]}, {"units": [4], "fail": [None]}, {"units": [16, 32], "fail": ["x"]}]
    summary = sweep(tmp_path, params, max_consecutive_failures=3)
    assert summary["status"].tolist() == ["failed", "failed", "completed", "failed", "failed"]


def train_diverging(run, callbacks):
    x, y = training.data()
    model = training.build_diverging_model(learning_rate=run.learning_rate)
    model.fit(x, y, epochs=30, batch_size=32, callbacks=callbacks, verbose=0)


def test_a_diverged_run_stops_at_the_nan_epoch_and_is_never_best(tmp_path):
    summary = sweep(tmp_path, {"learning_rate": [1e-9, 1e12]}, train=train_diverging)
    assert summary["status"].tolist() == ["completed", "diverged"]
    results = load_results(tmp_path)
    diverged = results[results["run"] == 2]
    assert len(diverged) < 30 and not math.isfinite(diverged["loss"].iloc[-1])
    assert diverged["loss"].iloc[:-1].map(math.isfinite).all()
    from runmanager.analysis import best_run

    assert best_run(summary, "loss")["run"] == 1


def test_train_that_never_fits_records_zero_epochs_with_a_warning(tmp_path):
    with pytest.warns(RuntimeWarning, match="recorded no epochs"):
        summary = sweep(tmp_path, {"units": [4]}, train=training.train_no_fit)
    assert summary["status"].tolist() == ["completed"] and summary["epochs"].tolist() == [0]


def test_train_may_fit_twice_and_epochs_keep_counting(tmp_path):
    def train(run, callbacks):
        x, y = training.data()
        model = training.build_model(run.units)
        model.fit(x, y, epochs=2, callbacks=callbacks, verbose=0)
        model.fit(x, y, epochs=1, callbacks=callbacks, verbose=0)

    sweep(tmp_path, {"units": [4]}, train=train)
    assert load_results(tmp_path)["epoch"].tolist() == [1, 2, 3]


def test_train_that_catches_a_failed_fit_and_fits_again_continues_the_run(tmp_path):
    def train(run, callbacks):
        x, y = training.data()
        model = training.build_model(run.units)

        class Boom(keras.callbacks.Callback):
            def on_epoch_end(self, epoch, logs=None):
                raise ValueError("out of memory, say")

        try:
            model.fit(x, y, epochs=2, callbacks=[Boom(), *callbacks], verbose=0)
        except ValueError:
            model.fit(x, y, epochs=2, callbacks=callbacks, verbose=0)

    summary = sweep(tmp_path, {"units": [4]}, train=train)
    assert summary["status"].tolist() == ["completed"]
    assert load_results(tmp_path)["epoch"].tolist() == [1, 2]


# ------------------------------------------------------------------------------------------
# Resume
# ------------------------------------------------------------------------------------------
def test_resuming_a_finished_sweep_runs_nothing(tmp_path):
    sweep(tmp_path)
    before = load_results(tmp_path)
    recorder = Recorder()
    summary = sweep(tmp_path, train=recorder, resume=True)
    assert recorder.runs == []
    assert summary["run"].tolist() == [1, 2, 3, 4]
    pd.testing.assert_frame_equal(load_results(tmp_path), before)


def test_resume_with_new_values_runs_only_the_new_runs_with_new_numbers(tmp_path):
    sweep(tmp_path)
    recorder = Recorder()
    # New values, and the grid order changed: matching is by params, not position.
    summary = sweep(tmp_path, {"units": [16, 8, 4], "learning_rate": [0.1, 0.05]}, train=recorder, resume=True)
    assert sorted(r.units for r in recorder.runs) == [16, 16]
    numbers = dict(zip(zip(summary["units"], summary["learning_rate"]), summary["run"]))
    assert numbers[(4, 0.05)] == 1 and numbers[(8, 0.1)] == 4
    assert {numbers[(16, 0.1)], numbers[(16, 0.05)]} == {5, 6}
    assert (summary["status"] == "completed").all() and len(summary) == 6


def test_resume_reruns_an_unfinished_run_from_its_start_without_duplicate_epochs(tmp_path):
    # A process that died during run 2, epoch 2: its run_start and one epoch are in the journal.
    m = RunManager(tmp_path, verbose=0)
    m.sweep(training.train, {"units": [4], "learning_rate": [0.05]})
    run = RunBuilder(GRID)[1]
    m.begin_run(run)
    m.begin_epoch()
    m.track_loss(9.0, 1)
    m.end_epoch()
    m.close()
    # No process writes the log_dir any more: the run that was going is shown interrupted.
    assert load_summary(tmp_path)["status"].tolist() == ["completed", "interrupted"]
    recorder = Recorder()
    summary = sweep(tmp_path, train=recorder, resume=True)
    assert [tuple(r) for r in recorder.runs] == [(4, 0.1), (8, 0.05), (8, 0.1)]
    assert summary["run"].tolist() == [1, 2, 3, 4] and (summary["status"] == "completed").all()
    results = load_results(tmp_path)
    assert results.groupby("run")["epoch"].apply(list).tolist() == [[1, 2, 3]] * 4
    assert 9.0 not in results["loss"].tolist()


def test_failed_and_diverged_runs_are_skipped_unless_retried(tmp_path):
    params = {"units": [4, 8], "fail": [None, "x"]}
    sweep(tmp_path, params)
    recorder = Recorder()
    sweep(tmp_path, params, train=recorder, resume=True)
    assert recorder.runs == []
    retried = Recorder()
    summary = sweep(tmp_path, params, train=retried, resume=True, retry_failed=True)
    assert [r.units for r in retried.runs] == [4, 8]
    assert summary["status"].tolist() == ["completed", "failed", "completed", "failed"]


def test_resume_with_other_parameter_names_is_refused_unless_allowed(tmp_path):
    sweep(tmp_path, {"units": [4]})
    journal = (tmp_path / "journal.jsonl").read_bytes()
    with pytest.raises(LogDirError, match=r"added \['learning_rate'\], removed \[\]"):
        sweep(tmp_path, GRID, resume=True)
    assert (tmp_path / "journal.jsonl").read_bytes() == journal
    summary = sweep(tmp_path, GRID, resume=True, allow_grid_change=True)
    assert len(summary) == 5


def test_overwrite_replaces_an_earlier_sweep(tmp_path):
    sweep(tmp_path, {"units": [4, 8]})
    m = RunManager(tmp_path, verbose=0, overwrite=True)
    summary = m.sweep(training.train, {"units": [16], "learning_rate": [0.05]})
    assert summary["units"].tolist() == [16]
    assert load_summary(tmp_path)[["run", "units", "learning_rate"]].values.tolist() == [[1, 16, 0.05]]


class Lifecycle(RunManager):
    """A subclass that hooks the lifecycle methods, as research code does."""

    def __init__(self, *args, **kwargs):
        super().__init__(*args, **kwargs)
        self.calls = []

    def begin_run(self, run, model=None):
        self.calls.append(("begin_run", run.units))
        super().begin_run(run, model)

    def end_run(self):
        self.calls.append(("end_run", self.run_count))
        super().end_run()


def test_a_sweep_calls_the_lifecycle_methods_of_a_subclass_for_every_status(tmp_path):
    m = Lifecycle(tmp_path, verbose=0)
    summary = m.sweep(training.train, [{"units": [4]}, {"units": [8], "fail": ["x"]}])
    assert summary["status"].tolist() == ["completed", "failed"]
    assert m.calls == [("begin_run", 4), ("end_run", 1), ("begin_run", 8), ("end_run", 2)]


def test_sweeping_into_a_used_log_dir_without_resume_is_refused(tmp_path):
    sweep(tmp_path, {"units": [4]})
    with pytest.raises(LogDirError, match=r"already holds 1 run\(s\)"):
        sweep(tmp_path, {"units": [4]})


# ------------------------------------------------------------------------------------------
# Bad input: a clear error before any run starts, nothing on disk damaged
# ------------------------------------------------------------------------------------------
@pytest.mark.parametrize(
    ("kwargs", "error", "match"),
    [
        ({"train": "train"}, InvalidArgumentTypeError, r"train must be a function train\(run, callbacks\), got 'train'"),
        ({"executor": "threads"}, InvalidArgumentError, r"Unknown executor 'threads'; choose one of 'sequential'"),
        ({"seed": "1"}, InvalidArgumentTypeError, r"seed must be an int or None, got '1'"),
        ({"seed": 1.5}, InvalidArgumentTypeError, r"seed must be an int or None, got 1\.5"),
        ({"seed": -1}, InvalidArgumentError, r"^seed=-1 is out of range: NumPy, Keras and Optuna take seeds from 0 to "
                                             r"2\*\*32 - 1, so give a seed from 0 to 4294967295, e.g. seed=0\.$"),
        ({"seed": 2**40}, InvalidArgumentError, r"^seed=1099511627776 is out of range: .* from 0 to 4294967295"),
        ({"seed": 2**32 - 1, "repeats": 2}, InvalidArgumentError,
         r"^seed=4294967295 is out of range: repeat r is seeded seed \+ r - 1, and with repeats=2 every repeat's seed "
         r"must be one NumPy takes \(0 to 2\*\*32 - 1\), so give a seed from 0 to 4294967294 \(2\*\*32 - 2\), "
         r"e.g. seed=0\.$"),
        ({"max_consecutive_failures": -1}, InvalidArgumentError, r"max_consecutive_failures must be"),
        ({"workers": 0}, InvalidArgumentError, r"workers must be an int of at least 1 \(runs at once\), got 0"),
        ({"params": {"units": 4}}, TypeError, r"wrapped in a list: units=\[4\]"),
    ],
)
def test_bad_sweep_arguments_fail_before_any_run(tmp_path, kwargs, error, match):
    sweep(tmp_path, {"units": [4]})
    # Every file, in the folders too (on JAX the sweep left its compilation cache there).
    before = {p.relative_to(tmp_path): p.read_bytes() for p in tmp_path.rglob("*") if p.is_file()}
    recorder = Recorder()
    args = {"train": recorder, "params": GRID, "resume": True, **kwargs}
    m = RunManager(tmp_path, verbose=0)
    with pytest.raises(error, match=match):
        m.sweep(args.pop("train"), args.pop("params"), **args)
    assert recorder.runs == []
    assert {p.relative_to(tmp_path): p.read_bytes() for p in tmp_path.rglob("*") if p.is_file()} == before


def test_log_dir_that_cannot_be_created_is_refused():
    with pytest.raises(LogDirError, match="Cannot create log_dir '/proc/runmanager-test/x'"):
        RunManager("/proc/runmanager-test/x")


def test_partial_train_with_options_works(tmp_path):
    summary = sweep(tmp_path, {"units": [4]}, train=functools.partial(training.train, epochs=1))
    assert summary["epochs"].tolist() == [1]


def test_results_in_memory_equal_results_on_disk(tmp_path):
    m = RunManager(tmp_path, verbose=0)
    m.sweep(training.train, GRID, seed=0)
    pd.testing.assert_frame_equal(m.results, load_results(tmp_path))
    pd.testing.assert_frame_equal(m.results, load_results(tmp_path / "results.csv"), check_dtype=False)
    assert isinstance(m.callback(None), keras.callbacks.Callback)


def train_with_halving_learning_rate(run, callbacks):
    """Fit with a LearningRateScheduler, which logs the learning rate as a metric named learning_rate."""
    x, y = training.data()
    model = training.build_model(8, run.learning_rate)
    schedule = keras.callbacks.LearningRateScheduler(lambda epoch, rate: rate * 0.5)
    model.fit(x, y, epochs=2, batch_size=32, callbacks=[schedule, *callbacks], verbose=0)


def test_a_param_that_keras_also_logs_as_a_metric_stops_the_sweep_at_its_first_run(tmp_path):
    recorder = Recorder(train_with_halving_learning_rate)
    with pytest.raises(ColumnClashError, match=r"^Run 1 failed: Metric 'learning_rate' has the name of a parameter; "
                                               r"rename the metric or the parameter\. Every run of this sweep would "
                                               r"fail the same way, so the sweep stopped\.$"):
        sweep(tmp_path, {"learning_rate": [0.1, 0.01, 0.001]}, train=recorder, max_consecutive_failures=0)
    assert len(recorder.runs) == 1
    summary = load_summary(tmp_path)
    assert summary["status"].tolist() == ["failed"] and summary["error"][0].startswith("ColumnClashError: Metric")


def quits_on_units_8(run, callbacks):
    """The user's train calls sys.exit(3) in its second epoch for units == 8."""
    def logs(epoch):
        if run.units == 8 and epoch == 1:
            raise SystemExit(3)
        return {"loss": 1.0 / (epoch + 1)}

    training.fit_without_model(callbacks, [logs] * 3)


def test_a_train_that_exits_ends_its_run_interrupted_and_the_exit_goes_on(tmp_path):
    m = RunManager(tmp_path, verbose=0)
    with pytest.raises(SystemExit) as raised:
        m.sweep(quits_on_units_8, {"units": [4, 8, 16]})
    assert raised.value.code == 3
    m.close()
    summary = load_summary(tmp_path)
    assert summary[["run", "status", "epochs"]].values.tolist() == [[1, "completed", 3], [2, "interrupted", 1]]
    assert summary["error"][1] == "SystemExit: 3"
    again = sweep(tmp_path, {"units": [4, 8, 16]}, train=functools.partial(training.train, epochs=1), resume=True)
    assert again["status"].tolist() == ["completed"] * 3  # the exited run is run again, as an interrupted one is

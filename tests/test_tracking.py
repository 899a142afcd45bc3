"""RunManager: the manual calls, the Keras callback, rows, columns and errors."""

from __future__ import annotations

import json
import math

import keras
import numpy as np
import pandas as pd
import pytest
from training import build_diverging_model, build_model, data

from runmanager import (
    ColumnClashError,
    LifecycleError,
    LogDirError,
    RunBuilder,
    RunManager,
    RunManagerError,
    load_results,
    load_summary,
)
from runmanager.errors import InvalidArgumentError, InvalidArgumentTypeError
from runmanager.storage import results_from_journal

PARAMS = {"units": [4, 8], "learning_rate": [0.05]}


def fit_all(manager, params=PARAMS, epochs=2, **fit):
    x, y = data()
    for run in RunBuilder.get_runs(params):
        model = build_model(run.units, run.learning_rate)
        model.fit(x, y, epochs=epochs, batch_size=32, validation_split=0.25,
                  callbacks=[manager.callback(run)], verbose=0, **fit)


def test_callback_records_every_keras_metric_in_api_column_order():
    m = RunManager(verbose=0)
    fit_all(m)
    df = m.results
    assert list(df.columns) == [
        "run", "epoch", "accuracy", "loss", "val_accuracy", "val_loss",
        "epoch_duration", "run_duration", "units", "learning_rate",
    ]
    assert df["run"].tolist() == [1, 1, 2, 2] and df["epoch"].tolist() == [1, 2, 1, 2]
    assert df["units"].tolist() == [4, 4, 8, 8]
    assert (df["epoch_duration"] > 0).all()
    assert (df.groupby("run")["run_duration"].diff().dropna() > 0).all()
    assert m.run_count == 2 and m.epoch_count == 2
    assert m.run_params == RunBuilder.get_runs(PARAMS)[-1]
    assert isinstance(m.callback(None), keras.callbacks.Callback)


def test_callback_values_equal_keras_history():
    m = RunManager(verbose=0)
    x, y = data()
    run = RunBuilder.get_runs(PARAMS)[0]
    history = build_model(run.units).fit(x, y, epochs=3, validation_split=0.25, verbose=0,
                                         callbacks=[m.callback(run)])
    for name, values in history.history.items():
        assert m.results[name].tolist() == pytest.approx(values, rel=1e-6)


def test_run_data_rows_match_results_frame():
    m = RunManager(verbose=0)
    fit_all(m)
    assert [list(row) for row in m.run_data] == [list(m.results.columns)] * 4
    assert pd.DataFrame(m.run_data).equals(m.results)


def test_manual_calls_weight_loss_by_batch_size_exactly():
    x, y = data()
    rng = np.random.default_rng(1)
    losses = rng.random(len(x))
    m = RunManager(verbose=0)
    m.begin_run({"units": 4})
    m.begin_epoch()
    for start in range(0, len(x), 100):  # batches of 100, 100, 40: a short last batch
        batch = losses[start:start + 100]
        m.track_loss(batch.mean(), batch_size=len(batch))
    m.end_epoch()
    m.end_run()
    assert m.results["loss"].item() == pytest.approx(losses.mean(), rel=1e-12)


@pytest.mark.parametrize(
    ("preds", "labels", "correct"),
    [
        ([[0.9, 0.1], [0.2, 0.8], [0.6, 0.4]], [0, 1, 1], 2),         # probabilities vs ids
        ([[2.0, -1.0], [-3.0, 4.0]], [1, 1], 1),                       # logits vs ids
        ([[0.9, 0.1], [0.2, 0.8]], [[1, 0], [1, 0]], 1),               # one-hot labels
        ([[0.7], [0.2], [0.9]], [1, 0, 0], 2),                         # binary, one column
        ([0.7, 0.2, 0.9], [1, 0, 0], 2),                               # binary, flat
        ([3, 1, 2], [3, 1, 0], 2),                                     # class ids
    ],
)
def test_track_num_correct_accepts_probabilities_logits_and_ids(preds, labels, correct):
    m = RunManager(verbose=0)
    m.begin_run({"units": 4})
    m.begin_epoch()
    assert m.track_num_correct(np.array(preds), np.array(labels)) == correct
    m.end_epoch()
    assert m.results["accuracy"].item() == pytest.approx(correct / len(labels))


def test_track_num_correct_takes_tensors_and_accumulates_over_batches():
    m = RunManager(verbose=0)
    m.begin_run({"units": 4})
    m.begin_epoch()
    m.track_num_correct(keras.ops.convert_to_tensor([[0.9, 0.1], [0.1, 0.9]]), keras.ops.convert_to_tensor([0, 0]))
    m.track_num_correct(np.array([[0.9, 0.1]]), np.array([0]))
    m.end_epoch()
    assert m.results["accuracy"].item() == pytest.approx(2 / 3)


def test_track_num_correct_rejects_mismatched_shapes():
    m = RunManager(verbose=0)
    m.begin_run({"units": 4})
    m.begin_epoch()
    with pytest.raises(RunManagerError, match=r"shape \(3,\) do not match labels of shape \(2,\)"):
        m.track_num_correct(np.array([1, 0, 1]), np.array([1, 0]))


def test_track_weighted_mean_and_extra_columns_in_order():
    m = RunManager(verbose=0)
    m.begin_run({"units": 4})
    m.begin_epoch()
    m.track_loss(1.0, 10)
    m.track("grad_norm", 1.0, weight=1)
    m.track("grad_norm", 4.0, weight=3)
    m.end_epoch(lr=0.1, note="warmup")
    m.end_run()
    row = m.run_data[0]
    assert list(row) == ["run", "epoch", "loss", "grad_norm", "lr", "note", "epoch_duration", "run_duration", "units"]
    assert row["grad_norm"] == pytest.approx(13 / 4)
    assert row["note"] == "warmup"


class WithParams(RunManager):
    def extra_columns(self):
        return {"params_count": self.model.count_params(), "lr_now": float(self.model.optimizer.learning_rate)}


def test_subclass_extra_columns_sees_the_model():
    m = WithParams(verbose=0)
    fit_all(m, epochs=1)
    df = m.results
    assert df.columns[6:8].tolist() == ["params_count", "lr_now"]  # after the metrics, before durations
    assert df["params_count"].tolist() == [4 * 8 + 4 + 4 * 2 + 2, 8 * 8 + 8 + 8 * 2 + 2]
    assert df["lr_now"].tolist() == pytest.approx([0.05, 0.05])


class Clashing(RunManager):
    def extra_columns(self):
        return {"note": 1}


@pytest.mark.parametrize(
    ("manager", "extra", "match"),
    [
        (RunManager, {"loss": 1}, r"Extra column 'loss' clashes"),
        (RunManager, {"units": 1}, r"Extra column 'units' clashes"),
        (RunManager, {"epoch": 1}, r"Extra column 'epoch' clashes"),
        (Clashing, {"note": 2}, r"'note' is given by both extra_columns\(\) and end_epoch\(\)"),
    ],
)
def test_extra_column_clashing_with_another_column_is_an_error(manager, extra, match):
    m = manager(verbose=0)
    m.begin_run({"units": 4})
    m.begin_epoch()
    m.track_loss(1.0, 1)
    with pytest.raises(ColumnClashError, match=match):
        m.end_epoch(**extra)


def test_metric_named_like_a_param_is_an_error():
    m = RunManager(verbose=0)
    m.begin_run({"units": 4})
    m.begin_epoch()
    m.track("units", 1.0)
    with pytest.raises(ColumnClashError, match=r"Metric 'units' has the name of a parameter"):
        m.end_epoch()


def _begun(m):
    m.begin_run({"units": 4})


def _in_epoch(m):
    m.begin_run({"units": 4})
    m.begin_epoch()


@pytest.mark.parametrize(
    ("setup", "call", "match"),
    [
        (lambda m: None, lambda m: m.begin_epoch(), r"begin_epoch\(\) was called before begin_run\(\)"),
        (lambda m: None, lambda m: m.end_epoch(), r"end_epoch\(\) was called before begin_epoch\(\)"),
        (lambda m: None, lambda m: m.end_run(), r"end_run\(\) was called before begin_run\(\)"),
        (_begun, lambda m: m.end_epoch(), r"end_epoch\(\) was called before begin_epoch\(\)"),
        (_begun, lambda m: m.track_loss(1.0, 2), r"track_loss\(\) was called outside an epoch"),
        (_begun, lambda m: m.track_num_correct([1], [1]), r"track_num_correct\(\) was called outside an epoch"),
        (_begun, lambda m: m.begin_run({"units": 8}), r"while run 1 is still going"),
        (_in_epoch, lambda m: m.begin_epoch(), r"while epoch 1 is still going"),
        (_in_epoch, lambda m: m.end_run(), r"end_run\(\) was called while epoch 1 is still going"),
        (_in_epoch, lambda m: m.track_loss(1.0, 0), r"batch_size must be a positive number"),
        (_in_epoch, lambda m: m.track("", 1.0), r"needs a metric name"),
        (_in_epoch, lambda m: m.track("x", 1.0, weight=0), r"weight must be positive"),
        (lambda m: None, lambda m: m.begin_run({"run": 1}), r"Parameter 'run' has the name of a column"),
    ],
)
def test_calls_out_of_order_or_with_bad_values_raise_clear_errors(setup, call, match):
    m = RunManager(verbose=0)
    setup(m)
    with pytest.raises(RunManagerError, match=match):
        call(m)


def test_lifecycle_error_is_a_runtime_error():
    with pytest.raises(RuntimeError):
        RunManager(verbose=0).end_run()
    assert issubclass(LifecycleError, RunManagerError)


def test_callback_refuses_reuse_across_two_fits():
    m = RunManager(verbose=0)
    x, y = data()
    callback = m.callback({"units": 4})
    model = build_model(4)
    model.fit(x, y, epochs=1, callbacks=[callback], verbose=0)
    with pytest.raises(LifecycleError, match="create a new one with m.callback"):
        model.fit(x, y, epochs=1, callbacks=[callback], verbose=0)


def test_a_fit_that_raised_is_recorded_failed_and_the_next_run_goes_on():
    m = RunManager(verbose=0)
    x, y = data()

    class Boom(keras.callbacks.Callback):
        def on_epoch_end(self, epoch, logs=None):
            if epoch == 1:
                raise ValueError("boom")

    with pytest.raises(ValueError, match="boom"):
        build_model(4).fit(x, y, epochs=3, callbacks=[m.callback({"units": 4}), Boom()], verbose=0)
    build_model(8).fit(x, y, epochs=1, callbacks=[m.callback({"units": 8})], verbose=0)
    summary = m.summary()
    assert summary["status"].tolist() == ["failed", "completed"]
    assert summary["epochs"].tolist() == [2, 1]


def test_log_dir_files_after_each_run_and_journal_after_each_epoch(tmp_path):
    m = RunManager(tmp_path, verbose=0)
    x, y = data()
    run = RunBuilder.get_runs(PARAMS)[0]

    class Check(keras.callbacks.Callback):
        def on_epoch_begin(self, epoch, logs=None):
            # Every finished epoch is on disk before the next one begins.
            assert len(load_results(tmp_path)) == epoch

    build_model(4).fit(x, y, epochs=3, callbacks=[m.callback(run), Check()], verbose=0)
    csv = pd.read_csv(tmp_path / "results.csv")
    assert len(csv) == 3 and list(csv.columns) == list(m.results.columns)
    records = json.loads((tmp_path / "results.json").read_text())
    assert isinstance(records, list) and records[0]["units"] == 4 and len(records) == 3
    pd.testing.assert_frame_equal(load_results(tmp_path), m.results)
    pd.testing.assert_frame_equal(load_results(tmp_path / "results.csv"), m.results, check_dtype=False)
    pd.testing.assert_frame_equal(load_results(tmp_path / "results.json"), m.results, check_dtype=False)
    assert (tmp_path / "summary.csv").exists() and (tmp_path / "summary.json").exists()


def test_save_writes_csv_and_json_with_a_prefix(tmp_path):
    m = RunManager(verbose=0)
    fit_all(m, epochs=1)
    csv, js = m.save(tmp_path / "results")
    assert csv == tmp_path / "results.csv" and js == tmp_path / "results.json"
    pd.testing.assert_frame_equal(pd.read_csv(csv), m.results, check_dtype=False)
    assert [r["run"] for r in json.loads(js.read_text())] == [1, 2]


def test_existing_sweep_is_never_mixed_into(tmp_path):
    first = RunManager(tmp_path, verbose=0)
    fit_all(first, epochs=1)
    first.close()
    again = RunManager(tmp_path, verbose=0)
    with pytest.raises(LogDirError, match=r"already holds 2 run\(s\).*resume=True.*overwrite=True"):
        fit_all(again, epochs=1)
    assert len(load_results(tmp_path)) == 2  # nothing on disk was touched
    replaced = RunManager(tmp_path, verbose=0, overwrite=True)
    fit_all(replaced, params={"units": [16], "learning_rate": [0.05]}, epochs=1)
    assert load_results(tmp_path)["units"].tolist() == [16]


def test_diverged_loss_stops_training_at_that_epoch():
    m = RunManager(verbose=0)
    x, y = data()
    model = build_diverging_model(learning_rate=1e12)
    model.fit(x, y, epochs=20, batch_size=32, callbacks=[m.callback({"units": 4})], verbose=0)
    df = m.results
    assert not math.isfinite(df["loss"].iloc[-1])
    assert all(math.isfinite(v) for v in df["loss"].iloc[:-1])
    assert len(df) < 20
    assert m.summary()["status"].item() == "diverged"


def test_verbose_prints_one_aligned_table(capsys):
    m = RunManager(verbose=1)
    fit_all(m)
    lines = capsys.readouterr().out.splitlines()
    assert lines[0].split() == [
        "run", "epoch", "accuracy", "loss", "val_accuracy", "val_loss",
        "epoch_duration", "run_duration", "units", "learning_rate",
    ]
    assert set(lines[1]) == {"-", " "} and len(lines) == 2 + 4
    ends = {len(line) for line in lines[1:]}
    assert len(ends) == 1  # every row ends under the header's last column


@pytest.mark.parametrize(
    ("kwargs", "match"),
    [({"log_dir": 5}, r"log_dir must be a path"),
     ({"verbose": 3}, r"verbose must be 0 \(quiet\), 1 \(a row per epoch\) or 2 \(a row per run\), got 3")],
)
def test_bad_constructor_arguments(kwargs, match):
    with pytest.raises(RunManagerError, match=match):
        RunManager(**kwargs)


def test_log_dir_that_is_a_file_is_refused(tmp_path):
    path = tmp_path / "file"
    path.write_text("keep me")
    with pytest.raises(LogDirError, match="is a file, not a folder"):
        RunManager(path)
    assert path.read_text() == "keep me"


def test_every_run_records_its_keras_backend_and_versions(tmp_path):
    m = RunManager(tmp_path, verbose=0)
    fit_all(m, params={"units": [4], "learning_rate": [0.05]}, epochs=1)
    m.close()
    backend = keras.backend.backend()
    library = {"tensorflow": "tensorflow", "jax": "jax", "torch": "torch"}[backend]
    expected = {"backend": backend, "keras": keras.__version__, library: __import__(library).__version__}
    assert results_from_journal(tmp_path / "journal.jsonl").runs[1].backend == expected
    journal = [json.loads(line) for line in (tmp_path / "journal.jsonl").read_text().splitlines()]
    assert next(e for e in journal if e["type"] == "run_start")["backend"] == expected


@pytest.mark.parametrize(
    ("call", "match"),
    [
        (lambda m: m.track("x", "abc"), r"track\(\): the value of metric 'x' must be a number .*got 'abc'"),
        (lambda m: m.track("x", [1.0, 2.0]), r"metric 'x' must be a number .*got \[1.0, 2.0\]"),
        (lambda m: m.track("x", 1.0, weight="heavy"), r"track\('x'\): weight must be a number .*got 'heavy'"),
        (lambda m: m.track_loss("low", 32), r"track_loss\(\): the batch's loss must be a number .*got 'low'"),
        (lambda m: m.track_loss(0.5, "32"), r"batch_size must be a number .*got '32'"),
    ],
)
def test_a_value_that_is_not_a_number_is_a_type_error_naming_the_metric_and_value(call, match):
    m = RunManager(verbose=0)
    m.begin_run({"units": 4})
    m.begin_epoch()
    with pytest.raises(InvalidArgumentTypeError, match=match):
        call(m)
    m.track("x", np.float32(2.0))  # NumPy scalars and scalar tensors are numbers
    m.track("x", keras.ops.convert_to_tensor(4.0))
    m.end_epoch()
    assert m.results["x"].item() == 3.0


def test_a_batch_size_that_is_not_a_whole_number_of_samples_is_refused():
    m = RunManager(verbose=0)
    m.begin_run({"units": 4})
    m.begin_epoch()
    with pytest.raises(InvalidArgumentError, match=r"batch_size must be a positive number of samples, got 2.5"):
        m.track_loss(0.5, 2.5)


def test_a_fit_that_exits_inside_a_with_block_ends_its_run_interrupted(tmp_path):
    x, y = data()

    class Quit(keras.callbacks.Callback):
        def on_epoch_end(self, epoch, logs=None):
            if epoch == 1:
                raise SystemExit(3)  # the user's code calls sys.exit(3) during training

    with pytest.raises(SystemExit):
        with RunManager(tmp_path, verbose=0) as m:
            build_model(4).fit(x, y, epochs=5, callbacks=[m.callback({"units": 4}), Quit()], verbose=0)
    summary = load_summary(tmp_path)
    assert summary[["status", "epochs", "error"]].values.tolist() == [["interrupted", 2, "SystemExit: 3"]]
    journal = [json.loads(line) for line in (tmp_path / "journal.jsonl").read_text().splitlines()]
    assert journal[-1]["type"] == "run_end" and "raise SystemExit(3)" in journal[-1]["traceback"]


def test_an_exception_leaving_a_with_block_mid_run_ends_the_run_failed_with_it(tmp_path):
    with pytest.raises(ValueError, match="bad batch"):
        with RunManager(tmp_path, verbose=0) as m:
            m.begin_run({"units": 4})
            m.begin_epoch()
            raise ValueError("bad batch")
    assert load_summary(tmp_path)[["status", "error"]].values.tolist() == [["failed", "ValueError: bad batch"]]


def test_resume_without_a_log_dir_is_refused_before_any_run():
    calls = []
    with pytest.raises(InvalidArgumentError, match=r"resume=True continues the sweep recorded in a log_dir, and "
                                                   r"this RunManager has none .*or drop resume=True"):
        RunManager(verbose=0).sweep(lambda run, callbacks: calls.append(run), {"units": [4]}, resume=True)
    assert calls == []

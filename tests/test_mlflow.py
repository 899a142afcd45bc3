"""MLflowSink and ``runmanager mlflow``: a sweep in MLflow as one run with a nested run per run.

The fast tests log to a SQLite tracking database (no server); the slow ones start a real
``mlflow server`` and look at its UI in headless Chromium.
"""

from __future__ import annotations

import itertools
import json
import math
import os
import shutil
import signal
import socket
import subprocess
import sys
import time
import urllib.request
import warnings
from pathlib import Path

import pytest
import training
from mlflow import MlflowClient
from process_groups import end_group

from runmanager import (
    InvalidArgumentError,
    InvalidArgumentTypeError,
    LogDirError,
    Pruner,
    RunManager,
    load_results,
    load_summary,
)
from runmanager.cli import main
from runmanager.errors import MLflowError
from runmanager.sinks import MLflowSink
from runmanager.sinks.mlflow import upload
from runmanager.storage import JOURNAL_NAME, read_journal

_names = itertools.count(1)


@pytest.fixture(scope="module")
def database(tmp_path_factory):
    """One SQLite tracking database for the module (making one costs ~1.5 s of migrations)."""
    return f"sqlite:///{tmp_path_factory.mktemp('mlflow')}/mlflow.db"


@pytest.fixture
def uri(database, tmp_path, monkeypatch):
    """The database, with this test's folder as the working directory: MLflow puts a new
    experiment's artifacts under ./mlruns there."""
    monkeypatch.chdir(tmp_path)
    return database


@pytest.fixture
def experiment():
    """A new experiment name for each test, so tests never see each other's runs."""
    return f"test-{os.getpid()}-{next(_names)}"


def crafted(run, callbacks):
    """Three epochs with known values, no model: fast; ``fail``/``nan``/``stop`` make it fail,
    diverge, or be interrupted (Ctrl-C) during its second epoch."""
    def logs(epoch):
        if epoch == 1 and run.x == getattr(run, "stop", None):
            raise KeyboardInterrupt
        if epoch == 1 and run.x == getattr(run, "fail", None):
            raise RuntimeError(f"run asked to fail at x={run.x}")
        loss = float("nan") if epoch == 2 and run.x == getattr(run, "nan", None) else 1.0 / (epoch + 1) / run.x
        return {"loss": loss, "val_loss": 2.0 / (epoch + 1) + run.x / 100, "val_accuracy": 0.5 + epoch * run.x / 100}

    training.fit_without_model(callbacks, [logs] * 3)


class PruneX4(Pruner):
    """Stops the run with x == 4 after its second epoch."""

    def __init__(self):
        super().__init__("val_loss")

    def prune(self, results, record):
        return record.params["x"] == 4 and len(record.epochs) >= 2


def read_back(uri: str, experiment: str):
    """The experiment's runs as MLflow holds them: (client, parents, children by run number)."""
    client = MlflowClient(uri)
    found = client.get_experiment_by_name(experiment)
    assert found is not None, f"no experiment {experiment!r}"
    runs = client.search_runs([found.experiment_id], max_results=1000)
    parents = [run for run in runs if "mlflow.parentRunId" not in run.data.tags]
    children = [run for run in runs if "mlflow.parentRunId" in run.data.tags]
    by_number = {int(run.data.tags["runmanager.run"]): run for run in children}
    assert len(by_number) == len(children), "two MLflow runs for one runmanager run"
    return client, parents, by_number


def same(a: float, b: float) -> bool:
    return (math.isnan(a) and math.isnan(b)) or math.isclose(a, b, rel_tol=1e-12, abs_tol=0.0)


def metric_names(rows) -> list[str]:
    """The metric columns of load_results (between ``epoch`` and the durations), and ``epoch_duration``."""
    columns = rows.columns.tolist()
    return columns[2:columns.index("epoch_duration")] + ["epoch_duration"]


def assert_points_are_the_results(client, children, log_dir, *, once: bool = True) -> None:
    """Every metric of every epoch of load_results is in MLflow at step = epoch; with ``once``, as the
    only point of that step; otherwise the latest point of each step (by time) is the journal's."""
    rows = load_results(log_dir)
    assert sorted(children) == sorted(rows["run"].unique().tolist())
    for number, group in rows.groupby("run"):
        for name in metric_names(rows):
            history = client.get_metric_history(children[number].info.run_id, name)
            expected = list(zip(group["epoch"].tolist(), group[name].tolist()))
            if once:
                points = sorted((point.step, point.value) for point in history)
                assert len(points) == len(expected), (number, name, points)
                assert all(s == e and same(v, w) for (s, v), (e, w) in zip(points, expected)), (number, name)
            else:
                latest = {}
                for point in sorted(history, key=lambda p: (p.timestamp, p.step)):
                    latest[point.step] = point.value
                assert sorted(latest) == [epoch for epoch, _ in expected], (number, name)
                assert all(same(latest[epoch], value) for epoch, value in expected), (number, name)


# --------------------------------------------------------------------------------------
# What a sweep looks like in MLflow
# --------------------------------------------------------------------------------------
def test_a_sweep_is_one_mlflow_run_with_a_nested_run_per_run_holding_params_metrics_and_tags(
        uri, experiment, tmp_path):
    log_dir = tmp_path / "cnn-sweep"
    m = RunManager(log_dir, verbose=0, sinks=[MLflowSink(uri, experiment)])
    m.sweep(training.train, {"units": [4, 8], "learning_rate": [0.05]}, repeats=2, seed=0)
    m.close()
    client, parents, children = read_back(uri, experiment)
    assert len(parents) == 1 and parents[0].info.run_name == "cnn-sweep"
    parent = parents[0]
    assert parent.info.status == "FINISHED" and parent.data.tags["runmanager.sweep_end"] == "finished"
    assert parent.data.tags["runmanager.log_dir"] == str(log_dir.resolve())
    summary = load_results(log_dir).groupby("run").last()
    assert sorted(children) == [1, 2, 3, 4]
    for number, run in children.items():
        tags = run.data.tags
        assert tags["mlflow.parentRunId"] == parent.info.run_id
        assert tags["runmanager.sweep_id"] == parent.data.tags["runmanager.sweep_id"]
        assert run.info.run_name == f"run {number}" and tags["runmanager.run"] == str(number)
        assert tags["runmanager.repeat"] == str(summary.loc[number, "repeat"])
        assert tags["runmanager.backend"] == "tensorflow" and "keras 3." in tags["runmanager.versions"]
        assert run.info.status == "FINISHED" and tags["runmanager.status"] == "completed"
        assert tags["runmanager.epochs"] == "3"
        assert run.data.params == {"units": str(summary.loc[number, "units"]),
                                   "learning_rate": str(summary.loc[number, "learning_rate"]),
                                   "repeat": str(summary.loc[number, "repeat"])}
    assert_points_are_the_results(client, children, log_dir)
    # The journal keeps the MLflow ids: the parent's, and each run's.
    state = {(e["key"]): e["value"] for e in read_journal(log_dir / JOURNAL_NAME) if e["type"] == "sink_state"}
    assert state["parent"]["run_id"] == parent.info.run_id and state["parent"]["tracking_uri"] == uri
    assert {state[f"run {n}"] for n in children} == {run.info.run_id for run in children.values()}


def test_each_status_maps_to_mlflows_and_the_sweeps_run_is_killed_by_an_interrupt(uri, experiment, tmp_path):
    m = RunManager(tmp_path / "s", verbose=0, sinks=[MLflowSink(uri, experiment)])
    with pytest.raises(KeyboardInterrupt):
        m.sweep(crafted, {"x": [1, 2, 3, 4, 5], "fail": [2], "nan": [3], "stop": [5]}, pruner=PruneX4())
    m.close()
    client, parents, children = read_back(uri, experiment)
    expected = {1: ("completed", "FINISHED"), 2: ("failed", "FAILED"), 3: ("diverged", "FAILED"),
                4: ("pruned", "KILLED"), 5: ("interrupted", "KILLED")}
    assert {n: (run.data.tags["runmanager.status"], run.info.status) for n, run in children.items()} == expected
    assert "asked to fail at x=2" in children[2].data.tags["runmanager.error"]
    assert "runmanager.error" not in children[1].data.tags
    assert [run.data.tags["runmanager.epochs"] for _, run in sorted(children.items())] == ["3", "1", "3", "2", "1"]
    assert parents[0].info.status == "KILLED" and parents[0].data.tags["runmanager.sweep_end"] == "interrupted"
    assert_points_are_the_results(client, children, tmp_path / "s")  # NaN included


def test_the_exports_the_report_and_the_best_model_are_artifacts_of_the_sweeps_run(uri, experiment, tmp_path):
    import runmanager

    log_dir = tmp_path / "kept"
    m = RunManager(log_dir, verbose=0, sinks=[MLflowSink(uri, experiment)])
    m.sweep(training.train_resumable, {"units": [4, 8, 16], "num_epochs": [3]}, seed=0, checkpoint=True,
            metric="val_loss")
    m.close()
    client, parents, children = read_back(uri, experiment)
    parent = parents[0].info.run_id
    names = sorted(artifact.path for artifact in client.list_artifacts(parent))
    assert names == ["model", "results.csv", "results.json", "summary.csv", "summary.json"]
    # The best run, found here from the epochs: the lowest val_loss of any epoch.
    rows = load_results(log_dir)
    best = int(rows.loc[rows["val_loss"].idxmin(), "run"])
    assert client.get_run(parent).data.tags["runmanager.best_run"] == str(best)
    assert [a.path for a in client.list_artifacts(parent, "model")] == ["model/best.keras"]
    got = Path(client.download_artifacts(parent, "model/best.keras", str(tmp_path / "down")))
    kept = load_summary(log_dir).set_index("run").loc[best, "checkpoint"]
    assert got.read_bytes() == (log_dir / kept).read_bytes() and kept.endswith("best.keras")
    got = Path(client.download_artifacts(parent, "summary.csv", str(tmp_path / "down")))
    assert got.read_bytes() == (log_dir / "summary.csv").read_bytes()
    # A report made afterwards goes up with the next upload; nothing else is sent again.
    runmanager.report(log_dir)
    sent = upload(log_dir, uri, experiment)
    assert (sent["created"], sent["epochs"], sent["ended"]) == (0, 0, 0) and sent["run_id"] == parent
    assert "report.html" in [artifact.path for artifact in client.list_artifacts(parent)]


def test_log_models_false_logs_no_model(uri, experiment, tmp_path):
    m = RunManager(tmp_path / "s", verbose=0, sinks=[MLflowSink(uri, experiment, log_models=False)])
    m.sweep(training.train_resumable, {"units": [4], "num_epochs": [2]}, seed=0, checkpoint=True)
    m.close()
    client, parents, _ = read_back(uri, experiment)
    assert "model" not in [artifact.path for artifact in client.list_artifacts(parents[0].info.run_id)]
    assert "runmanager.best_run" not in parents[0].data.tags


def test_runs_made_by_hand_are_nested_runs_too_ended_when_the_manager_closes(uri, experiment, tmp_path):
    with RunManager(tmp_path / "by-hand", verbose=0, sinks=[MLflowSink(uri, experiment)]) as m:
        for lr in (0.1, 0.01):
            m.begin_run({"lr": lr})
            for loss in (0.5, 0.25):
                m.begin_epoch()
                m.track_loss(loss / lr, batch_size=4)
                m.end_epoch()
            m.end_run()
    client, parents, children = read_back(uri, experiment)
    assert len(parents) == 1 and parents[0].info.status == "FINISHED" and parents[0].info.run_name == "by-hand"
    assert {n: run.data.params["lr"] for n, run in children.items()} == {1: "0.1", 2: "0.01"}
    assert_points_are_the_results(client, children, tmp_path / "by-hand")


# --------------------------------------------------------------------------------------
# Resuming
# --------------------------------------------------------------------------------------
def train_interrupted(run, callbacks, checkpoint):
    """Four epochs of a tiny MLP from ``checkpoint``; the run with units == 8 is interrupted (Ctrl-C)
    right after its second epoch was recorded, once."""
    import keras

    class CtrlC(keras.callbacks.Callback):
        def on_epoch_end(self, epoch, logs=None):
            if run.units == 8 and epoch == 1 and not INTERRUPTED:
                INTERRUPTED.append(run)
                raise KeyboardInterrupt

    x, y = training.data()
    model = checkpoint.model or training.build_model(run.units)
    model.fit(x, y, epochs=4, initial_epoch=checkpoint.epoch, batch_size=32, validation_split=0.25,
              callbacks=[*callbacks, CtrlC()], verbose=0)


INTERRUPTED: list = []


def test_a_resumed_sweep_goes_on_in_the_same_mlflow_runs_with_no_duplicated_point(uri, experiment, tmp_path):
    INTERRUPTED.clear()
    grid = {"units": [4, 8, 16]}
    with pytest.raises(KeyboardInterrupt):
        RunManager(tmp_path, verbose=0, sinks=[MLflowSink(uri, experiment)]).sweep(
            train_interrupted, grid, seed=0, checkpoint=True)
    client, parents, before = read_back(uri, experiment)
    assert sorted(before) == [1, 2] and before[2].info.status == "KILLED"
    assert before[2].data.tags["runmanager.epochs"] == "2" and parents[0].info.status == "KILLED"
    m = RunManager(tmp_path, verbose=0, sinks=[MLflowSink(uri, experiment)])
    m.sweep(train_interrupted, grid, seed=0, checkpoint=True, resume=True)
    m.close()
    assert load_results(tmp_path).groupby("run").size().tolist() == [4, 4, 4]
    client, again, children = read_back(uri, experiment)
    assert [p.info.run_id for p in again] == [parents[0].info.run_id] and again[0].info.status == "FINISHED"
    assert {n: before[n].info.run_id for n in before} == {n: children[n].info.run_id for n in before}
    assert all(run.info.status == "FINISHED" for run in children.values())
    assert_points_are_the_results(client, children, tmp_path)  # steps 1-4 once each: run 2 went on after 2


def test_a_run_started_again_from_scratch_logs_its_epochs_again_and_mlflows_latest_values_are_the_journals(
        uri, experiment, tmp_path):
    attempts = []

    def train(run, callbacks):
        attempts.append(run.x)
        attempt = attempts.count(run.x)

        def logs(epoch):
            if run.x == 2 and attempt == 1 and epoch == 2:
                raise KeyboardInterrupt
            return {"loss": run.x + epoch + attempt / 10}

        training.fit_without_model(callbacks, [logs] * 3)

    with pytest.raises(KeyboardInterrupt):
        RunManager(tmp_path, verbose=0, sinks=[MLflowSink(uri, experiment)]).sweep(train, {"x": [1, 2]})
    RunManager(tmp_path, verbose=0, sinks=[MLflowSink(uri, experiment)]).sweep(train, {"x": [1, 2]}, resume=True)
    client, parents, children = read_back(uri, experiment)
    assert len(parents) == 1 and sorted(children) == [1, 2]
    # Run 2's first attempt reached epoch 2: MLflow keeps those two points, and the new ones after them.
    history = client.get_metric_history(children[2].info.run_id, "loss")
    assert sorted((p.step, round(p.value, 6)) for p in history) == [(1, 2.1), (1, 2.2), (2, 3.1), (2, 3.2), (3, 4.2)]
    assert children[2].data.metrics["loss"] == pytest.approx(4.2)
    assert_points_are_the_results(client, children, tmp_path, once=False)
    assert len(client.get_metric_history(children[1].info.run_id, "loss")) == 3


def test_overwrite_starts_a_new_mlflow_run_for_the_new_sweep(uri, experiment, tmp_path):
    RunManager(tmp_path, verbose=0, sinks=[MLflowSink(uri, experiment)]).sweep(crafted, {"x": [1]})
    RunManager(tmp_path, verbose=0, overwrite=True, sinks=[MLflowSink(uri, experiment)]).sweep(crafted, {"x": [2]})
    client = MlflowClient(uri)
    runs = client.search_runs([client.get_experiment_by_name(experiment).experiment_id])
    parents = {run.info.run_id: run for run in runs if "runmanager.run" not in run.data.tags}
    assert len(parents) == 2 and len({p.data.tags["runmanager.sweep_id"] for p in parents.values()}) == 2
    under = {run.data.tags["mlflow.parentRunId"]: run.data.params["x"] for run in runs if run.info.run_id not in parents}
    assert sorted(under.values()) == ["1", "2"] and set(under) == set(parents)


# --------------------------------------------------------------------------------------
# runmanager mlflow LOG_DIR
# --------------------------------------------------------------------------------------
def test_runmanager_mlflow_uploads_a_sweep_made_without_the_sink_and_twice_sends_nothing_twice(
        uri, experiment, tmp_path, capsys):
    log_dir = tmp_path / "plain"
    m = RunManager(log_dir, verbose=0)
    with pytest.raises(KeyboardInterrupt):
        m.sweep(crafted, {"x": [1, 2, 3], "fail": [2], "stop": [3]})
    m.close()
    command = ["mlflow", str(log_dir), "--tracking-uri", uri, "--experiment", experiment]
    assert main(command) == 0
    first = capsys.readouterr().out
    assert "4 runs created, 5 epochs and 3 run ends sent, 4 artifacts logged" in first
    assert main(command) == 0
    assert "0 runs created, 0 epochs and 0 run ends sent" in capsys.readouterr().out
    client, parents, children = read_back(uri, experiment)
    assert len(parents) == 1 and parents[0].info.run_name == "plain" and parents[0].info.status == "KILLED"
    assert {n: run.info.status for n, run in children.items()} == {1: "FINISHED", 2: "FAILED", 3: "KILLED"}
    assert_points_are_the_results(client, children, log_dir)
    # The journal was only read: nothing was written into the log_dir.
    assert not [e for e in read_journal(log_dir / JOURNAL_NAME) if e["type"] == "sink_state"]


def test_runmanager_mlflow_sends_a_crashed_sweep_and_only_what_mlflow_lacks(uri, experiment, tmp_path):
    """A sweep killed while its sink had sent part of it: the upload sends the rest, once."""
    log_dir = tmp_path / "crashed"
    script = (f"import sys; sys.path.insert(0, {str(Path(__file__).parent)!r})\n"
              "import os, signal, training\n"
              "from runmanager import RunManager\n"
              "from runmanager.sinks import MLflowSink\n"
              "def train(run, callbacks):\n"
              "    def logs(epoch):\n"
              "        if run.x == 2 and epoch == 2:\n"
              "            os.kill(os.getpid(), signal.SIGKILL)\n"
              "        return {'loss': run.x + epoch}\n"
              "    training.fit_without_model(callbacks, [logs] * 3, pause=0.3)\n"
              f"RunManager({str(log_dir)!r}, verbose=0, sinks=[MLflowSink({uri!r}, {experiment!r})])"
              ".sweep(train, {'x': [1, 2]})\n")
    done = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, timeout=120)
    assert done.returncode == -signal.SIGKILL, done.stderr[-2000:]
    client, parents, before = read_back(uri, experiment)
    assert len(parents) == 1 and before[2].info.status == "RUNNING"
    sent = upload(log_dir, uri, experiment)
    assert sent["created"] == 0 and sent["run_id"] == parents[0].info.run_id
    client, parents, children = read_back(uri, experiment)
    assert children[2].info.status == "KILLED" and children[2].data.tags["runmanager.status"] == "interrupted"
    assert parents[0].info.status == "KILLED"
    assert_points_are_the_results(client, children, log_dir)


# --------------------------------------------------------------------------------------
# MLflow down, bad addresses
# --------------------------------------------------------------------------------------
def closed_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def test_mlflow_down_never_stalls_the_sweep_warns_once_then_the_upload_and_a_resume_send_it_all(
        uri, experiment, tmp_path):
    dead = f"http://127.0.0.1:{closed_port()}"
    log_dir = tmp_path / "offline"
    start = time.perf_counter()
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        m = RunManager(log_dir, verbose=0, sinks=[MLflowSink(dead, "offline")])
        m.sweep(crafted, {"x": [1, 2, 3]})
        m.close()
    took = time.perf_counter() - start
    ours = [w for w in caught if "MLflow" in str(w.message)]
    assert len(ours) == 1 and ours[0].category is RuntimeWarning, [str(w.message) for w in caught]
    assert dead in str(ours[0].message) and f"runmanager mlflow {log_dir}" in str(ours[0].message)
    assert took < 20, took
    assert load_summary(log_dir)["status"].tolist() == ["completed"] * 3
    failed = [e for e in read_journal(log_dir / JOURNAL_NAME) if e["type"] == "sink_state"]
    assert [e["key"] for e in failed] == ["failed"] and "127.0.0.1" in failed[0]["value"]["error"]
    # Afterwards, to a MLflow that answers: everything, then a resume adds to the same runs.
    upload(log_dir, uri, experiment)
    m = RunManager(log_dir, verbose=0, sinks=[MLflowSink(uri, experiment)])
    m.sweep(crafted, {"x": [1, 2, 3, 4]}, resume=True)
    m.close()
    client, parents, children = read_back(uri, experiment)
    assert len(parents) == 1 and sorted(children) == [1, 2, 3, 4]
    assert_points_are_the_results(client, children, log_dir)


def test_mlflow_that_fails_only_after_the_last_run_is_still_said_once_and_journaled(tmp_path):
    """A server that takes the connection but never answers: the first call fails at its timeout
    (5 s), after the sweep's runs have all ended, while the sink waits at the sweep's end."""
    with socket.socket() as silent:
        silent.bind(("127.0.0.1", 0))
        silent.listen(16)  # the kernel accepts the connections; nothing reads or answers them
        address = f"http://127.0.0.1:{silent.getsockname()[1]}"
        log_dir = tmp_path / "silent"
        with warnings.catch_warnings(record=True) as caught:
            warnings.simplefilter("always")
            m = RunManager(log_dir, verbose=0, sinks=[MLflowSink(address, "silent")])
            m.sweep(crafted, {"x": [1, 2, 3]})
            m.close()
    ours = [w for w in caught if "MLflow" in str(w.message)]
    assert len(ours) == 1 and address in str(ours[0].message), [str(w.message) for w in caught]
    failed = [e for e in read_journal(log_dir / JOURNAL_NAME) if e["type"] == "sink_state"]
    assert [e["key"] for e in failed] == ["failed"]
    assert load_summary(log_dir)["status"].tolist() == ["completed"] * 3


def test_a_sweep_begun_with_mlflow_down_and_resumed_with_it_up_sends_everything(uri, experiment, tmp_path):
    """The resumed run's epochs from before the interrupt (kept by its checkpoint) go up too."""
    INTERRUPTED.clear()
    grid = {"units": [4, 8]}
    with warnings.catch_warnings(record=True) as caught, pytest.raises(KeyboardInterrupt):
        warnings.simplefilter("always")
        RunManager(tmp_path, verbose=0, sinks=[MLflowSink(f"http://127.0.0.1:{closed_port()}")]).sweep(
            train_interrupted, grid, seed=0, checkpoint=True)
    assert len([w for w in caught if "MLflow" in str(w.message)]) == 1
    m = RunManager(tmp_path, verbose=0, sinks=[MLflowSink(uri, experiment)])
    m.sweep(train_interrupted, grid, seed=0, checkpoint=True, resume=True)
    m.close()
    client, parents, children = read_back(uri, experiment)
    assert len(parents) == 1 and sorted(children) == [1, 2]
    assert children[2].data.tags["runmanager.epochs"] == "4" and children[1].info.status == "FINISHED"
    assert_points_are_the_results(client, children, tmp_path)


def test_the_bounds_on_mlflows_calls_hold_while_the_sweep_goes_and_the_users_own_settings_stay(
        uri, experiment, tmp_path, monkeypatch):
    names = ("MLFLOW_HTTP_REQUEST_MAX_RETRIES", "MLFLOW_HTTP_REQUEST_TIMEOUT", "MLFLOW_SUPPRESS_PRINTING_URL_TO_STDOUT")
    monkeypatch.delenv(names[0], raising=False)
    monkeypatch.delenv(names[2], raising=False)
    monkeypatch.setenv(names[1], "77")  # the user's own choice
    seen = []

    def train(run, callbacks):
        seen.append(tuple(os.environ.get(name) for name in names))
        crafted(run, callbacks)

    m = RunManager(tmp_path, verbose=0, sinks=[MLflowSink(uri, experiment)])
    m.sweep(train, {"x": [1, 2]})
    m.close()
    assert seen == [("0", "77", "true")] * 2
    assert tuple(os.environ.get(name) for name in names) == (None, "77", None)


def test_upload_to_a_dead_server_is_one_clear_error_fast(tmp_path, capsys):
    with RunManager(tmp_path, verbose=0) as m:
        m.sweep(crafted, {"x": [1]})
    start = time.perf_counter()
    with pytest.raises(MLflowError, match="running the same command again"):
        upload(tmp_path, f"http://127.0.0.1:{closed_port()}")
    assert time.perf_counter() - start < 10
    assert main(["mlflow", str(tmp_path), "--tracking-uri", f"http://127.0.0.1:{closed_port()}"]) == 2
    assert capsys.readouterr().err.startswith("runmanager: error: MLflow at http://127.0.0.1:")


@pytest.mark.parametrize("bad, error, match", [
    ("foo://somewhere", InvalidArgumentError, "scheme MLflow does not know"),
    ("http://", InvalidArgumentError, "names no host"),
    ("https://:5000", InvalidArgumentError, "names no host"),
    (5000, InvalidArgumentTypeError, "tracking_uri must be a string"),
])
def test_a_bad_tracking_uri_is_one_clear_error_when_the_sink_is_made(bad, error, match):
    with pytest.raises(error, match=match):
        MLflowSink(bad)


@pytest.mark.parametrize("kwargs, match", [({"experiment": ""}, "experiment must be"),
                                           ({"log_models": "yes"}, "log_models must be")])
def test_bad_options_are_one_clear_error(kwargs, match, database):
    with pytest.raises((InvalidArgumentError, InvalidArgumentTypeError), match=match):
        MLflowSink(database, **kwargs)


def test_runmanager_mlflow_refuses_a_folder_without_a_journal_and_a_bad_uri(tmp_path, capsys):
    assert main(["mlflow", str(tmp_path), "--tracking-uri", "sqlite:///x.db"]) == 2
    assert "needs a log_dir with its journal.jsonl" in capsys.readouterr().err
    with RunManager(tmp_path, verbose=0) as m:
        m.sweep(crafted, {"x": [1]})
    assert main(["mlflow", str(tmp_path), "--tracking-uri", "nope://x"]) == 2
    assert "scheme MLflow does not know" in capsys.readouterr().err
    with pytest.raises(LogDirError):
        upload(tmp_path / "missing")


def test_runmanager_mlflow_refuses_a_log_dir_a_sweep_is_writing(uri, experiment, tmp_path):
    m = RunManager(tmp_path, verbose=0)
    m.begin_run({"x": 1})  # takes the writer lock
    with pytest.raises(LogDirError, match="still writing"):
        upload(tmp_path, uri, experiment)
    m.end_run()
    m.close()


# --------------------------------------------------------------------------------------
# A real MLflow tracking server (slow: it takes ~10 s to start)
# --------------------------------------------------------------------------------------
@pytest.fixture(scope="module")
def server(tmp_path_factory):
    """``mlflow server`` in its lean start, on a free port, stopped with its process group."""
    folder = tmp_path_factory.mktemp("server")
    port = closed_port()
    env = {**os.environ, "MLFLOW_SERVER_ENABLE_JOB_EXECUTION": "false"}
    command = [shutil.which("mlflow") or str(Path(sys.executable).parent / "mlflow"), "server",
               "--backend-store-uri", f"sqlite:///{folder}/mlflow.db", "--artifacts-destination",
               str(folder / "artifacts"), "--host", "127.0.0.1", "--port", str(port), "--workers", "1"]
    log = open(folder / "server.log", "wb")
    process = subprocess.Popen(command, stdout=log, stderr=subprocess.STDOUT, env=env, start_new_session=True)
    address = f"http://127.0.0.1:{port}"
    deadline = time.monotonic() + 120
    try:
        while True:
            assert process.poll() is None, (folder / "server.log").read_text()[-3000:]
            assert time.monotonic() < deadline, "mlflow server did not answer /health in 120 s"
            try:
                with urllib.request.urlopen(f"{address}/health", timeout=2) as answer:
                    if answer.status == 200:
                        break
            except OSError:
                time.sleep(0.3)
        yield address
    finally:
        end_group(process, grace=30)
        log.close()


@pytest.mark.slow
def test_a_sweep_on_worker_processes_is_logged_to_a_real_tracking_server(server, experiment, tmp_path, capfd):
    log_dir = tmp_path / "served"
    m = RunManager(log_dir, verbose=0, sinks=[MLflowSink(server, experiment)])
    m.sweep(training.train_resumable, {"units": [4, 8], "num_epochs": [3, 4]}, executor="processes", workers=2,
            seed=0, checkpoint=True, metric="val_loss")
    m.close()
    assert "View run" not in capfd.readouterr().out  # MLflow's own lines stay out of the sweep's output
    client, parents, children = read_back(server, experiment)
    assert len(parents) == 1 and sorted(children) == [1, 2, 3, 4]
    assert all(run.info.status == "FINISHED" for run in [*parents, *children.values()])
    assert_points_are_the_results(client, children, log_dir)
    parent = parents[0].info.run_id
    got = Path(client.download_artifacts(parent, "summary.json", str(tmp_path / "down")))
    assert json.loads(got.read_text()) == json.loads((log_dir / "summary.json").read_text())
    assert [a.path for a in client.list_artifacts(parent, "model")] == ["model/best.keras"]
    # Uploading it again sends nothing twice.
    sent = upload(log_dir, server, experiment)
    assert (sent["created"], sent["epochs"], sent["ended"], sent["run_id"]) == (0, 0, 0, parent)


@pytest.mark.slow
def test_the_mlflow_ui_shows_the_sweep_with_its_nested_runs_in_headless_chromium(server, tmp_path):
    """The demo's sweep (2 epochs a run) in MLflow's UI: the sweep's run, expanded, shows its four
    runs with their params, metrics and status. The screenshot is the one in docs/mlflow.md."""
    import functools

    from browser import chromium_path
    from playwright.sync_api import sync_playwright

    from runmanager.demo import DEMO_PARAMS, train_digits

    log_dir = tmp_path / "digits-sweep"
    m = RunManager(log_dir, verbose=0, sinks=[MLflowSink(server, "digits")])
    m.sweep(functools.partial(train_digits, epochs=2), DEMO_PARAMS, seed=0)
    m.close()
    client, parents, children = read_back(server, "digits")
    shot = tmp_path / "mlflow.png"
    with sync_playwright() as playwright:
        browser = playwright.chromium.launch(executable_path=chromium_path(), args=["--no-sandbox"])
        try:
            page = browser.new_page(viewport={"width": 1600, "height": 520})
            page.goto(f"{server}/#/experiments/{parents[0].info.experiment_id}/runs", wait_until="load")
            page.get_by_text("digits-sweep").first.wait_for(timeout=60_000)  # the UI is JavaScript
            assistant = page.get_by_role("button", name="Close")
            if assistant.count():
                assistant.first.click()
            page.get_by_role("button", name="Columns").click()
            for name in ("Dataset", "Source", "Models", "units", "learning_rate", "val_accuracy", "val_loss",
                         "runmanager.status"):
                page.get_by_role("dialog").get_by_text(name, exact=True).first.click()
            page.keyboard.press("Escape")
            page.locator("[role=gridcell][col-id='attributes.`Run Name`'] button").first.click()  # expand
            page.get_by_text("run 4").first.wait_for(timeout=30_000)
            table = page.inner_text("[role=grid]")
            page.screenshot(path=str(shot))
        finally:
            browser.close()
    assert all(f"run {n}" in table for n in children) and table.count("completed") == 4
    for run in children.values():  # the cells show a value's first digits
        assert str(run.data.metrics["val_loss"])[:6] in table and str(run.data.metrics["val_accuracy"])[:6] in table
    assert shot.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    if os.environ.get("RUNMANAGER_DOCS_IMAGES"):
        shutil.copyfile(shot, Path(os.environ["RUNMANAGER_DOCS_IMAGES"]) / "mlflow.png")

"""Checkpoints: the model of every run kept, the best one back, a killed run resumed from its last epoch."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import textwrap
from pathlib import Path

import numpy as np
import pytest
import training

import runmanager
from runmanager import Checkpoint, CheckpointError, RunManager, load_results, load_summary
from runmanager.checkpoints import checkpoint_file
from runmanager.cli import main as cli
from runmanager.errors import InvalidArgumentError


def flat(model) -> np.ndarray:
    return np.concatenate([w.ravel() for w in model.get_weights()])


def files(log_dir: Path) -> list[str]:
    return sorted(str(p.relative_to(log_dir)) for p in (log_dir / "checkpoints").rglob("*.keras"))


def journal(log_dir: Path) -> list[dict]:
    return [json.loads(line) for line in (log_dir / "journal.jsonl").read_text().splitlines()]


@pytest.fixture
def weights(tmp_path, monkeypatch):
    folder = tmp_path / "weights"
    folder.mkdir()
    monkeypatch.setenv("RM_TEST_WEIGHTS", str(folder))
    return folder


def test_the_kept_model_is_the_best_epochs_not_the_last(tmp_path, weights):
    """score peaks at epoch 2 of 5: best_model() has the weights after epoch 2, compiled, with
    its optimizer state; a finished run keeps best.keras alone."""
    log_dir = tmp_path / "runs"
    m = RunManager(log_dir, verbose=0)
    summary = m.sweep(training.train_peaking, {"units": [8, 16]}, checkpoint=True, metric="score", mode="max")
    assert summary["checkpoint"].tolist() == [checkpoint_file(1, "best"), checkpoint_file(2, "best")]
    assert summary["checkpoint_epoch"].tolist() == [2, 2]
    assert files(log_dir) == ["checkpoints/0001/best.keras", "checkpoints/0002/best.keras"]
    best = m.best_model()
    assert np.allclose(flat(best), np.load(weights / "16-2.npy"))  # run 2 has the higher score
    assert not np.allclose(flat(best), np.load(weights / "16-5.npy"))
    assert best.optimizer is not None and int(best.optimizer.iterations.numpy()) > 0
    x, y = training.data()
    best.evaluate(x, y, verbose=0)  # compiled: it evaluates as it comes back
    assert np.allclose(flat(m.load_model(1)), np.load(weights / "8-2.npy"))
    m.close()
    # From the files alone, in another process's way: the log_dir is all it needs.
    assert np.allclose(flat(runmanager.load_model(log_dir)), np.load(weights / "16-2.npy"))
    assert np.allclose(flat(runmanager.load_model(log_dir, run=1, compile=False)), np.load(weights / "8-2.npy"))


def test_the_journal_names_a_checkpoint_only_after_its_file_is_complete(tmp_path, weights):
    log_dir = tmp_path / "runs"
    RunManager(log_dir, verbose=0).sweep(training.train_peaking, {"units": [8]}, checkpoint=True,
                                         metric="score", mode="max")
    events = [e for e in journal(log_dir) if e["type"] in ("checkpoint", "checkpoint_removed")]
    saved = [(e["epoch"], e["kind"]) for e in events if e["type"] == "checkpoint"]
    assert saved == [(1, "best"), (1, "last"), (2, "best"), (2, "last"), (3, "last"), (4, "last"), (5, "last")]
    assert events[-1] == {"type": "checkpoint_removed", "run": 1, "kind": "last", "reason": "finished"}
    for event in events[:-1]:
        assert event["event"] == "checkpoint" and event["file"] == checkpoint_file(1, event["kind"])
        assert event["bytes"] > 1000
    best = (log_dir / checkpoint_file(1, "best"))
    assert best.stat().st_size == [e for e in events if e.get("kind") == "best"][-1]["bytes"]
    assert not list((log_dir / "checkpoints").rglob("*.tmp.keras"))  # no temporary file left


def test_last_mode_keeps_only_the_final_model_and_checkpoint_every_skips_epochs(tmp_path, weights):
    log_dir = tmp_path / "runs"
    m = RunManager(log_dir, verbose=0)
    m.sweep(training.train_peaking, {"units": [8]}, checkpoint="last", checkpoint_every=2)
    saved = [(e["epoch"], e["kind"]) for e in journal(log_dir) if e["type"] == "checkpoint"]
    assert saved == [(2, "last"), (4, "last"), (5, "last")]  # every 2nd epoch, and the run's last
    assert files(log_dir) == ["checkpoints/0001/last.keras"]
    assert np.allclose(flat(m.load_model(1)), np.load(weights / "8-5.npy"))


def test_keep_models_keeps_the_k_best_runs_models_and_says_why_the_others_are_gone(tmp_path, weights):
    log_dir = tmp_path / "runs"
    m = RunManager(log_dir, verbose=0)
    summary = m.sweep(training.train_peaking, {"units": [4, 16, 8, 12]}, checkpoint=True, keep_models=2,
                      metric="score", mode="max")
    # score scales with units: runs 2 (16) and 4 (12) are the two best
    assert files(log_dir) == ["checkpoints/0002/best.keras", "checkpoints/0004/best.keras"]
    assert summary["checkpoint"].tolist() == ["", checkpoint_file(2, "best"), "", checkpoint_file(4, "best")]
    with pytest.raises(CheckpointError, match="Run 1 has no kept model: its model was deleted by keep_models"):
        m.load_model(1)
    assert np.allclose(flat(m.best_model()), np.load(weights / "16-2.npy"))


def test_a_run_without_a_kept_model_gets_an_error_that_says_why(tmp_path):
    log_dir = tmp_path / "runs"
    m = RunManager(log_dir, verbose=0)
    m.sweep(training.train, {"units": [4], "fail": [None, "boom"]}, max_consecutive_failures=0)
    with pytest.raises(CheckpointError, match="Run 1 has no kept model: it was never checkpointed: run the sweep "
                                              "with checkpoint=True"):
        m.load_model(1)
    with pytest.raises(CheckpointError, match=r"Run 2 has no kept model: it failed before its first epoch "
                                              r"\(RuntimeError: run asked to fail: boom\)"):
        runmanager.load_model(log_dir, run=2)
    with pytest.raises(CheckpointError, match="There is no run 9; the log_dir holds runs 1 to 2"):
        m.load_model(9)
    with pytest.raises(CheckpointError, match="No run has a kept model: the sweep was run without checkpoints"):
        m.best_model()
    assert cli(["best", str(log_dir), "--metric", "val_accuracy", "--model"]) == 2


@pytest.mark.parametrize(("options", "message"), [
    ({"checkpoint": "sometimes"}, r"checkpoint must be False, True, 'best' or 'last', got 'sometimes'"),
    ({"checkpoint": True, "checkpoint_every": 0}, r"checkpoint_every must be a positive int .* got 0"),
    ({"checkpoint": True, "keep_models": 0}, r"keep_models must be None .* or a positive int .* got 0"),
    ({"keep_models": 2}, r"keep_models=2 needs checkpoints; pass checkpoint=True as well"),
])
def test_bad_checkpoint_options_are_refused_before_any_run(tmp_path, options, message):
    m = RunManager(tmp_path / "runs", verbose=0)
    with pytest.raises(InvalidArgumentError, match=message):
        m.sweep(training.train, {"units": [4]}, **options)
    assert not (tmp_path / "runs" / "journal.jsonl").exists()


def test_a_param_named_as_a_checkpoint_column_is_refused_when_checkpoints_are_kept(tmp_path):
    m = RunManager(tmp_path / "runs", verbose=0)
    with pytest.raises(runmanager.ColumnClashError, match=r"Parameter 'checkpoint' has the name of a column of the "
                                                          r"summary of a sweep with checkpoints .* 'checkpoint_name'"):
        m.sweep(training.train, {"units": [4], "checkpoint": ["bert-base"]}, checkpoint=True)
    assert not (tmp_path / "runs" / "journal.jsonl").exists()


def test_a_train_that_takes_a_checkpoint_needs_checkpoints_on(tmp_path):
    m = RunManager(tmp_path / "runs", verbose=0)
    with pytest.raises(InvalidArgumentError, match=r"train=train_resumable takes a third parameter, the checkpoint "
                                                   r"a run goes on from, but the sweep keeps no checkpoints"):
        m.sweep(training.train_resumable, {"units": [4], "num_epochs": [2]})


KILLED_SWEEP = textwrap.dedent("""
    import sys
    from training import {train}
    from runmanager import RunManager
    RunManager(sys.argv[1], verbose=0).sweep({train}, {{"units": [8], "num_epochs": [6]}}, checkpoint=True)
""")


def kill_at_epoch_4(log_dir: Path, starts: Path, train: str = "train_resumable") -> None:
    """A sweep in a process that SIGKILLs itself at the end of epoch 4 of 6 (after its checkpoint)."""
    env = {**os.environ, "RM_TEST_STARTS": str(starts), "RM_TEST_KILL_AT": "4"}
    done = subprocess.run([sys.executable, "-c", KILLED_SWEEP.format(train=train), str(log_dir)], env=env,
                          capture_output=True, text=True, timeout=180)
    assert done.returncode == -9, done.stderr[-3000:]
    assert files(log_dir) == ["checkpoints/0001/best.keras", "checkpoints/0001/last.keras"]


def test_a_run_killed_at_epoch_4_of_6_resumes_at_epoch_5_with_its_restored_model(tmp_path, monkeypatch):
    log_dir, starts = tmp_path / "runs", tmp_path / "starts.txt"
    kill_at_epoch_4(log_dir, starts)
    assert load_summary(log_dir)["status"].tolist() == ["interrupted"]  # its writer is gone
    monkeypatch.setenv("RM_TEST_STARTS", str(starts))
    m = RunManager(log_dir, verbose=0)
    summary = m.sweep(training.train_resumable, {"units": [8], "num_epochs": [6]}, checkpoint=True, resume=True)
    assert starts.read_text().splitlines() == ["8 0 False", "8 4 True"]  # the second start, after epoch 4
    assert summary["status"].tolist() == ["completed"] and summary["epochs"].tolist() == [6]
    results = load_results(log_dir)
    assert results["epoch"].tolist() == [1, 2, 3, 4, 5, 6]  # one row per epoch
    assert results["run_duration"].is_monotonic_increasing  # the time trained goes on from the checkpoint's
    assert files(log_dir) == ["checkpoints/0001/best.keras"]  # finished: no last.keras to resume from


def test_a_corrupt_checkpoint_is_a_note_and_a_restart_from_epoch_1_never_a_dead_sweep(tmp_path, monkeypatch):
    log_dir, starts = tmp_path / "runs", tmp_path / "starts.txt"
    kill_at_epoch_4(log_dir, starts)
    last = log_dir / checkpoint_file(1, "last")
    last.write_bytes(last.read_bytes()[:500])  # a disk error, a copy gone wrong
    monkeypatch.setenv("RM_TEST_STARTS", str(starts))
    with pytest.warns(RuntimeWarning, match=r"checkpoints/0001/last.keras' cannot be read as a Keras model .* Run 1 "
                                            r"starts again from epoch 1"):
        summary = RunManager(log_dir, verbose=0).sweep(training.train_resumable, {"units": [8], "num_epochs": [6]},
                                                       checkpoint=True, resume=True)
    assert starts.read_text().splitlines() == ["8 0 False", "8 0 False"]
    assert summary["status"].tolist() == ["completed"]
    assert load_results(log_dir)["epoch"].tolist() == [1, 2, 3, 4, 5, 6]
    notes = [e for e in journal(log_dir) if e["type"] == "note"]
    assert len(notes) == 1 and "cannot be read" in notes[0]["text"] and notes[0]["run"] == 1


def test_a_train_without_the_third_parameter_still_keeps_models_but_restarts_from_epoch_1(tmp_path, monkeypatch):
    log_dir, starts = tmp_path / "runs", tmp_path / "starts.txt"
    kill_at_epoch_4(log_dir, starts, train="train_resumable_two_arguments")
    monkeypatch.setenv("RM_TEST_STARTS", str(starts))
    summary = RunManager(log_dir, verbose=0).sweep(training.train_resumable_two_arguments,
                                                   {"units": [8], "num_epochs": [6]}, checkpoint=True, resume=True)
    assert starts.read_text().splitlines() == ["8 0 False", "8 0 False"]
    assert load_results(log_dir)["epoch"].tolist() == [1, 2, 3, 4, 5, 6]
    assert summary["checkpoint"].tolist() == [checkpoint_file(1, "best")]


@pytest.mark.parametrize("executor", ["processes", "dask", pytest.param("ray", marks=pytest.mark.slow)])
def test_a_worker_killed_mid_run_is_retried_from_its_checkpoint(tmp_path, monkeypatch, executor):
    starts = tmp_path / "starts.txt"
    monkeypatch.setenv("RM_TEST_STARTS", str(starts))
    monkeypatch.setenv("RM_TEST_KILL_AT", "4")
    log_dir = tmp_path / "runs"
    m = RunManager(log_dir, verbose=0)
    summary = m.sweep(training.train_resumable, {"units": [4, 8], "num_epochs": [6]}, executor, workers=2,
                      checkpoint=True)
    assert summary["status"].tolist() == ["completed", "completed"]
    assert sorted(starts.read_text().splitlines()) == ["4 0 False", "8 0 False", "8 4 True"]
    results = load_results(log_dir)
    assert results.groupby("run")["epoch"].apply(list).tolist() == [[1, 2, 3, 4, 5, 6]] * 2
    assert files(log_dir) == ["checkpoints/0001/best.keras", "checkpoints/0002/best.keras"]
    m.best_model().evaluate(*training.data(), verbose=0)


def test_a_custom_loop_saves_and_restores_by_hand(tmp_path):
    log_dir = tmp_path / "runs"
    x, y = training.data()
    run = {"units": 8}

    def epochs(m, model, first, last):
        for _ in range(first, last):
            m.begin_epoch()
            history = model.fit(x, y, epochs=1, batch_size=32, validation_split=0.25, verbose=0)
            m.record_logs({k: v[-1] for k, v in history.history.items()})
            m.end_epoch()
            m.save_checkpoint(model)

    m = RunManager(log_dir, verbose=0)
    model, done = m.restore(run)
    assert (model, done) == (None, 0)
    model = training.build_model(8)
    m.begin_run(run, model)
    epochs(m, model, 0, 3)
    after_3 = flat(model)
    m.close()  # the process stops here, the run unfinished
    assert files(log_dir) == ["checkpoints/0001/best.keras", "checkpoints/0001/last.keras"]

    m = RunManager(log_dir, verbose=0)
    model, done = m.restore(run)
    assert done == 3 and np.allclose(flat(model), after_3)
    m.begin_run(run, model)
    assert m.run_count == 1 and m.epoch_count == 3
    epochs(m, model, 3, 5)
    m.end_run()
    assert load_results(log_dir)["epoch"].tolist() == [1, 2, 3, 4, 5]
    assert load_summary(log_dir)["status"].tolist() == ["completed"]
    assert files(log_dir) == ["checkpoints/0001/best.keras"]


def test_save_checkpoint_needs_a_log_dir_and_an_ended_epoch(tmp_path):
    m = RunManager(verbose=0)
    m.begin_run({"units": 8}, training.build_model(8))
    with pytest.raises(runmanager.LogDirError, match="save_checkpoint\\(\\) needs a log_dir"):
        m.save_checkpoint()
    m = RunManager(tmp_path, verbose=0)
    m.begin_run({"units": 8}, training.build_model(8))
    with pytest.raises(runmanager.LifecycleError, match="before the run's first end_epoch"):
        m.save_checkpoint()


def test_best_model_prints_its_path_from_the_command_line(tmp_path, weights, capsys):
    log_dir = tmp_path / "runs"
    RunManager(log_dir, verbose=0).sweep(training.train_peaking, {"units": [8, 16]}, checkpoint=True,
                                         metric="score", mode="max")
    assert cli(["best", str(log_dir), "--model"]) == 0
    assert capsys.readouterr().out.strip() == str(log_dir / checkpoint_file(2, "best"))
    assert cli(["best", str(log_dir), "--metric", "loss", "--model"]) == 0
    assert capsys.readouterr().out.strip().endswith(".keras")


def test_a_fresh_run_gets_an_empty_checkpoint():
    assert Checkpoint() == Checkpoint(0, None)


def test_tensorboard_says_which_model_a_run_keeps_and_a_resumed_run_has_each_epoch_once(tmp_path, weights):
    from tensorboard.backend.event_processing.event_accumulator import EventAccumulator
    from tensorboard.util.tensor_util import make_ndarray

    from runmanager.naming import safe_name

    def board(folder):
        accumulator = EventAccumulator(str(folder))
        accumulator.Reload()
        return accumulator

    log_dir = tmp_path / "runs"
    RunManager(log_dir, verbose=0, tensorboard=True).sweep(training.train_peaking, {"units": [8]}, checkpoint=True,
                                                           metric="score", mode="max")
    folder = log_dir / "tensorboard" / safe_name(1, {"units": 8})
    texts = [(event.step, make_ndarray(event.tensor_proto).item().decode())
             for event in board(folder).Tensors("checkpoint")]
    assert texts[-1] == (2, "kept model: checkpoints/0001/best.keras (epoch 2, best)")

    # A run resumed by hand after epoch 3: TensorBoard shows epochs 1 to 5, each once.
    resumed = tmp_path / "resumed"
    x, y = training.data()
    for first, last in ((0, 3), (3, 5)):
        m = RunManager(resumed, verbose=0, tensorboard=True)
        model, done = m.restore({"units": 8})
        assert done == first
        model = model or training.build_model(8)
        m.begin_run({"units": 8}, model)
        for _ in range(first, last):
            m.begin_epoch()
            m.record_logs({k: v[-1] for k, v in model.fit(x, y, epochs=1, verbose=0).history.items()})
            m.end_epoch()
            m.save_checkpoint()
        m.close()
    steps = [event.step for event in board(resumed / "tensorboard" / safe_name(1, {"units": 8}) / "train")
             .Scalars("loss")]
    assert sorted(steps) == [1, 2, 3, 4, 5]


def test_a_worker_without_the_log_dir_sends_the_bytes_once_and_the_driver_writes_both_files(tmp_path):
    """What a Ray node without the log_dir does, in one process: the model's bytes travel once, the
    driver writes best.keras from them and last.keras as a copy, then journals both."""
    from runmanager.checkpoints import CheckpointWriter
    from runmanager.events import ModelBytes, RunStarted
    from runmanager.recorder import Recorder
    from runmanager.sinks import SinkList

    model = training.build_model(8)
    sent = CheckpointWriter(None).save(model, 1, 3, ["best", "last"])
    assert [type(m) for m in sent] == [ModelBytes, ModelBytes]
    assert len(sent[0].data) > 1000 and sent[1].data == b"" and sent[1].same_as == checkpoint_file(1, "best")
    recorder = Recorder(SinkList())
    recorder.log_dir = tmp_path
    recorder.record(RunStarted.of(1, {"units": 8}))
    for message in sent:
        recorder.record(message)
    saved = recorder.run(1).checkpoints
    assert {kind: (e.epoch, e.bytes) for kind, e in saved.items()} == {"best": (3, len(sent[0].data)),
                                                                        "last": (3, len(sent[0].data))}
    assert (tmp_path / checkpoint_file(1, "last")).read_bytes() == sent[0].data
    assert np.allclose(flat(runmanager.checkpoints.read_model(tmp_path / checkpoint_file(1, "best"))), flat(model))


class ParamsManager(RunManager):
    """Logs each run's real parameter count as the extra column ``params``."""

    def extra_columns(self):
        return {"params": self.model.count_params() if self.model is not None else 0}


def test_a_sweep_judged_by_an_extra_column_keeps_and_returns_the_model_it_names(tmp_path, weights):
    """The first objective may be a numeric extra column (the model's size): the kept model, the
    progress line and best_model() all judge by it."""
    log_dir = tmp_path / "runs"
    m = ParamsManager(log_dir, verbose=0)
    summary = m.sweep(training.train_peaking, {"units": [16, 4, 8]}, checkpoint=True, metric="params", mode="min")
    assert summary["checkpoint"].tolist() == [checkpoint_file(n, "best") for n in (1, 2, 3)]
    smallest = m.best_model()
    assert smallest.count_params() == summary["params"].min() == training.build_model(4).count_params()

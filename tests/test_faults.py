"""Faults users meet on shared machines and schedulers: SIGTERM, a full disk, file modes. Real processes."""

from __future__ import annotations

import json
import shutil
import signal
import stat
import subprocess
import sys
import textwrap
import time

import pandas as pd
import psutil
import pytest
import training

from runmanager import LogDirError, RunManager, load_results, load_summary
from runmanager.errors import LogDirWriteError
from runmanager.lock import LOCK_NAME

DRIVER = textwrap.dedent(
    """
    import sys
    import training
    from runmanager import RunManager

    def train(run, callbacks):  # slow epochs, no model: the signal comes while a run is going
        training.fit_without_model(
            callbacks, [{"loss": 1.0 / (run.units + epoch)} for epoch in range(run.num_epochs)], pause=0.05)

    if __name__ == "__main__":
        log_dir, executor, epochs = sys.argv[1], sys.argv[2], int(sys.argv[3])
        m = (RunManager if executor == "sequential" else training.WorkerInfoManager)(log_dir, verbose=1)
        work = train if executor == "sequential" else training.train_slow
        m.sweep(work, {"units": [4, 8, 16], "num_epochs": [epochs]}, executor=executor, workers=2,
                resume="--resume" in sys.argv)
        m.close()
    """
)


def start_driver(tmp_path, log_dir, executor, epochs, *extra):
    script = tmp_path / "driver.py"
    script.write_text(DRIVER)
    return subprocess.Popen([sys.executable, str(script), str(log_dir), executor, str(epochs), *extra],
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)


def assert_exports_match_the_journal(log_dir):
    # CSV cannot tell the string "1" from 1: WorkerInfoManager's text columns are compared through JSON.
    text = ["cuda", "threads"]
    for name, load in (("results", load_results), ("summary", load_summary)):
        journal = load(log_dir)
        pd.testing.assert_frame_equal(pd.read_csv(log_dir / f"{name}.csv").drop(columns=text, errors="ignore"),
                                      journal.drop(columns=text, errors="ignore"), check_dtype=False)
        pd.testing.assert_frame_equal(load(log_dir / f"{name}.json"), journal, check_dtype=False)


def test_sigterm_ends_a_sequential_sweep_like_ctrl_c_with_status_143_and_resume_finishes(tmp_path):
    log_dir = tmp_path / "sweep"
    driver = start_driver(tmp_path, log_dir, "sequential", 40)
    training.wait_for_epochs(driver, log_dir, 3)
    driver.send_signal(signal.SIGTERM)
    out, err = driver.communicate(timeout=60)
    assert driver.returncode == 143, err[-3000:]
    summary = load_summary(log_dir)
    assert summary["status"].tolist() == ["interrupted"] and summary["error"].tolist() == ["SIGTERM"]
    assert "sweep interrupted: 1 interrupted" in out
    assert_exports_match_the_journal(log_dir)
    assert not (log_dir / LOCK_NAME).exists()
    resumed = start_driver(tmp_path, log_dir, "sequential", 40, "--resume")
    out, err = resumed.communicate(timeout=120)
    assert resumed.returncode == 0, err[-3000:]
    assert load_summary(log_dir)["status"].tolist() == ["completed"] * 3
    assert load_results(log_dir).groupby("run")["epoch"].apply(list).tolist() == [list(range(1, 41))] * 3


def test_sigterm_to_the_driver_of_worker_processes_stops_them_and_records_their_runs(tmp_path):
    log_dir = tmp_path / "sweep"
    driver = start_driver(tmp_path, log_dir, "processes", 200)
    training.wait_for_epochs(driver, log_dir, 4)
    workers = [p.pid for p in psutil.Process(driver.pid).children(recursive=True)]
    driver.send_signal(signal.SIGTERM)
    out, err = driver.communicate(timeout=90)
    assert driver.returncode == 143, err[-3000:]
    time.sleep(0.5)
    assert not [pid for pid in workers if psutil.pid_exists(pid) and psutil.Process(pid).status() != "zombie"]
    summary = load_summary(log_dir)
    assert summary["status"].tolist() == ["interrupted", "interrupted"]
    assert set(summary["error"]) == {"SIGTERM"}
    assert_exports_match_the_journal(log_dir)


def test_sigterm_to_one_worker_ends_its_attempt_interrupted_and_the_run_is_retried_on_another(tmp_path):
    """A scheduler's preemption: the worker's run ends interrupted, then runs again elsewhere."""
    log_dir = tmp_path / "sweep"
    driver = start_driver(tmp_path, log_dir, "processes", 60)
    training.wait_for_epochs(driver, log_dir, 2)
    latest = load_results(log_dir).iloc[-1]  # each row says which worker process ran it
    victim_run, victim_pid = int(latest["run"]), int(latest["pid"])
    psutil.Process(victim_pid).send_signal(signal.SIGTERM)
    out, err = driver.communicate(timeout=180)
    assert driver.returncode == 0, err[-3000:]
    ended = [(e["run"], e["status"], e["error"]) for e in map(json.loads, (log_dir / "journal.jsonl").open())
             if e["type"] == "run_end"]
    assert (victim_run, "interrupted", "SIGTERM") in ended
    assert f"run {victim_run}: its worker was stopped (SIGTERM); running it again (retry 1 of 1)" in out, out
    summary = load_summary(log_dir)
    assert summary["status"].tolist() == ["completed"] * 3
    results = load_results(log_dir)
    assert not results.duplicated(["run", "epoch"]).any()
    assert victim_pid not in set(results.loc[results["run"] == victim_run, "pid"])  # all of it ran elsewhere


@pytest.fixture
def small_disk(tmp_path):
    mount = tmp_path / "small"
    mount.mkdir()
    done = subprocess.run(["mount", "-t", "tmpfs", "-o", "size=64k", "tmpfs", str(mount)],
                          capture_output=True, text=True)
    if done.returncode != 0:
        pytest.skip(f"cannot mount a small tmpfs here (needs root): {done.stderr.strip()}")
    yield mount
    subprocess.run(["umount", "-l", str(mount)], check=False)


def scripted(run, callbacks):
    training.fit_without_model(callbacks, [
        {"loss": 1.0 / (run.x + epoch + 1), "val_loss": 2.0 / (run.x + epoch + 1)} for epoch in range(20)])


def test_a_full_disk_stops_the_sweep_with_a_clear_error_and_resume_finishes_elsewhere(small_disk, tmp_path):
    log_dir = small_disk / "sweep"
    m = RunManager(log_dir, verbose=0)
    with pytest.raises(LogDirError) as caught:
        m.sweep(scripted, {"x": list(range(100))})
    message = str(caught.value)
    assert isinstance(caught.value, LogDirWriteError)
    assert "No space left on device" in message and "resume=True" in message
    assert str(log_dir) in message and "are safely in" in message
    kept = load_results(log_dir)  # the journal is readable, with no torn line
    epochs = kept.groupby("run")["epoch"].apply(list)
    assert all(e == list(range(1, len(e) + 1)) for e in epochs)  # nothing lost, nothing twice
    assert f"{len(kept)} epochs of {kept['run'].nunique()} runs" in message
    in_memory = m.summary()
    assert "running" not in set(in_memory["status"]) and in_memory["status"].iloc[-1] == "interrupted"
    with pytest.warns(RuntimeWarning, match="are not up to date: Writing"):
        m.close()  # the disk is still full: said once as an error, then only warned
    bigger = tmp_path / "bigger"
    shutil.copytree(log_dir, bigger, ignore=shutil.ignore_patterns(".*"))
    m = RunManager(bigger, verbose=0)
    summary = m.sweep(scripted, {"x": list(range(100))}, resume=True)
    m.close()
    assert summary["status"].tolist() == ["completed"] * 100
    assert load_results(bigger).groupby("run")["epoch"].apply(list).tolist() == [list(range(1, 21))] * 100


MODES = textwrap.dedent(
    """
    import os, sys
    os.umask(int(sys.argv[2], 8))
    from runmanager import RunManager
    m = RunManager(sys.argv[1], verbose=0, tensorboard=True)
    for units in (4, 8):
        m.begin_run({"units": units})
        m.begin_epoch()
        m.track_loss(0.5, batch_size=2)
        m.end_epoch()
        m.end_run()
    m.close()
    """
)


@pytest.mark.parametrize("umask, mode", [("022", 0o644), ("002", 0o664)])
def test_files_get_the_mode_the_umask_gives(tmp_path, umask, mode):
    log_dir = tmp_path / "sweep"
    done = subprocess.run([sys.executable, "-c", MODES, str(log_dir), umask], capture_output=True, text=True,
                          timeout=120)
    assert done.returncode == 0, done.stderr
    files = [p for p in log_dir.rglob("*") if p.is_file()]
    names = {p.name for p in files}
    assert {"journal.jsonl", "results.csv", "results.json", "summary.csv", "summary.json"} <= names
    assert any(name.startswith("events.out.tfevents") for name in names)
    assert {str(p.relative_to(log_dir)): oct(stat.S_IMODE(p.stat().st_mode)) for p in files} == {
        str(p.relative_to(log_dir)): oct(mode) for p in files}


def test_a_log_dir_removed_under_the_manager_stops_with_a_clear_error(tmp_path):
    log_dir = tmp_path / "sweep"
    m = RunManager(log_dir, verbose=0)
    m.begin_run({"x": 1})
    shutil.rmtree(log_dir)
    m.begin_epoch()
    m.track_loss(0.5, batch_size=2)
    m.end_epoch()  # the journal's file is gone with its folder, but still open: it takes the epoch
    with pytest.raises(LogDirWriteError, match=r"Writing .*sweep.* failed: No such file or directory.*resume=True"):
        m.end_run()  # the exports cannot be written into a folder that is gone
    assert m.summary()["status"].tolist() == ["completed"]


def shown_run_statuses(out):
    return [word for line in out.splitlines() for word in line.split()
            if word in ("running", "interrupted", "completed")]


def quick(run, callbacks):
    training.fit_without_model(callbacks, [{"loss": 0.5}] * run.num_epochs)


def test_a_sweep_killed_with_sigkill_shows_its_run_interrupted_once_no_process_writes_the_log_dir(tmp_path, capsys):
    from runmanager import report
    from runmanager.cli import main
    from runmanager.storage import read_journal

    log_dir = tmp_path / "sweep"
    driver = start_driver(tmp_path, log_dir, "sequential", 2000)
    training.wait_for_epochs(driver, log_dir, 3)
    # While the sweep's process lives, its run is running for every reader.
    assert main(["show", str(log_dir)]) == 0
    assert shown_run_statuses(capsys.readouterr().out) == ["running"]
    assert load_summary(log_dir)["status"].tolist() == ["running"]
    driver.kill()
    driver.communicate(timeout=60)
    assert driver.returncode == -signal.SIGKILL and (log_dir / LOCK_NAME).exists()  # the dead writer's lock stays
    assert main(["show", str(log_dir)]) == 0
    out = capsys.readouterr().out
    assert shown_run_statuses(out) == ["interrupted"] and "the process writing thi" in out  # the table cuts it
    summary = load_summary(log_dir)
    assert summary["status"].tolist() == ["interrupted"] and summary["epochs"].item() >= 3
    page = report(log_dir).read_text()
    assert "the process writing this run ended without finishing it" in page and ">running<" not in page
    # A new manager resuming with another grid keeps the killed run, ended in the journal itself.
    m = RunManager(log_dir, verbose=0)
    summary = m.sweep(quick, {"units": [32], "num_epochs": [2]}, resume=True)
    m.close()
    assert summary["status"].tolist() == ["interrupted", "completed"]
    assert m.summary()["status"].tolist() == ["interrupted", "completed"]
    ends = [event for event in read_journal(log_dir / "journal.jsonl") if event["type"] == "run_end"]
    assert [(event["run"], event["status"]) for event in ends] == [(1, "interrupted"), (2, "completed")]

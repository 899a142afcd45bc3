"""One writer per log_dir, with real processes: refused at once, never two at once, dead ones taken over."""

from __future__ import annotations

import json
import os
import signal
import socket
import subprocess
import sys
import time

import pytest
import training

from runmanager import LogDirError, RunManager, load_results, load_summary
from runmanager.lock import LOCK_NAME, read_holder

# A sweep of ``runs`` runs of ``epochs`` epochs that sleep ``pause`` s each; no model is built.
DRIVER = r"""
import json, sys, time
from pathlib import Path
import training
from runmanager import LogDirError, RunManager

log_dir, runs, epochs, pause, barrier = sys.argv[1], int(sys.argv[2]), int(sys.argv[3]), float(sys.argv[4]), sys.argv[5]

def train(run, callbacks):
    training.fit_without_model(callbacks, [{"loss": 1.0 / (run.x + epoch + 1)} for epoch in range(epochs)],
                               pause=pause)

import keras  # before the barrier, so both processes are ready to write at the same moment
if barrier != "-":
    Path(barrier + ".ready." + str(__import__("os").getpid())).touch()
    while not Path(barrier).exists():
        time.sleep(0.001)
start = time.perf_counter()
try:
    m = RunManager(log_dir, verbose=0)
    m.sweep(train, {"x": list(range(runs))}, resume="--resume" in sys.argv)
    m.close()
except LogDirError as exc:
    print(json.dumps({"refused": str(exc), "after": time.perf_counter() - start}))
    sys.exit(3)
print(json.dumps({"done": True}))
"""


def start(tmp_path, log_dir, runs=3, epochs=3, pause=0.0, barrier="-", *extra):
    script = tmp_path / "driver.py"
    script.write_text(DRIVER)
    return subprocess.Popen([sys.executable, str(script), str(log_dir), str(runs), str(epochs), str(pause), barrier,
                             *extra], stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)


def finish(process, timeout=120):
    out, err = process.communicate(timeout=timeout)
    lines = out.strip().splitlines()
    return process.returncode, (json.loads(lines[-1]) if lines else {}), err


def assert_each_run_once(log_dir, runs, epochs, *, started_once=True):
    """Every epoch of every run is in the results once; each run was started once (no resume)."""
    results = load_results(log_dir)
    assert results.groupby("run")["epoch"].apply(list).tolist() == [list(range(1, epochs + 1))] * runs
    if started_once:
        events = [json.loads(line) for line in (log_dir / "journal.jsonl").read_text().splitlines()]
        assert sorted(e["run"] for e in events if e["type"] == "run_start") == list(range(1, runs + 1))


def test_a_second_writer_is_refused_at_once_naming_pid_and_host_and_the_first_sweep_goes_on(tmp_path):
    log_dir = tmp_path / "sweep"
    first = start(tmp_path, log_dir, 3, 30, 0.1)  # long enough for the second to start while it runs
    deadline = time.monotonic() + 60
    while read_holder(log_dir) is None or not (log_dir / "journal.jsonl").exists():
        assert time.monotonic() < deadline and first.poll() is None, first.stderr.read() if first.poll() else "slow"
        time.sleep(0.05)
    holder = read_holder(log_dir)
    assert holder["pid"] == first.pid
    second = start(tmp_path, log_dir, 3, 30, 0.0, "-", "--resume")
    code, out, err = finish(second)
    assert code == 3, err
    assert out["after"] < 1.0  # at once, not after waiting for the first sweep
    assert f"process {first.pid}" in out["refused"] and socket.gethostname() in out["refused"]
    assert first.poll() is None  # the refusal came while the first sweep was still running
    code, out, err = finish(first)
    assert code == 0 and out == {"done": True}, err
    assert_each_run_once(log_dir, 3, 30)
    assert load_summary(log_dir)["status"].tolist() == ["completed"] * 3
    assert not (log_dir / LOCK_NAME).exists()  # released when the first sweep closed


def test_two_writers_started_together_never_both_run_a_run(tmp_path):
    log_dir = tmp_path / "sweep"
    barrier = tmp_path / "go"
    writers = [start(tmp_path, log_dir, 3, 2, 0.02, str(barrier), "--resume") for _ in range(2)]
    deadline = time.monotonic() + 90
    while len(list(tmp_path.glob("go.ready.*"))) < 2:
        assert time.monotonic() < deadline, [w.stderr.read() for w in writers if w.poll() is not None]
        time.sleep(0.05)
    barrier.touch()
    outcomes = sorted(finish(writer)[:2] for writer in writers)
    assert [code for code, _ in outcomes] == [0, 3], outcomes
    assert "process" in outcomes[1][1]["refused"] and socket.gethostname() in outcomes[1][1]["refused"]
    assert_each_run_once(log_dir, 3, 2)


def test_the_lock_of_a_killed_writer_is_taken_over_and_the_sweep_resumes(tmp_path):
    log_dir = tmp_path / "sweep"
    victim = start(tmp_path, log_dir, 3, 20, 0.05)
    training.wait_for_epochs(victim, log_dir, 2, timeout=60)
    victim.send_signal(signal.SIGKILL)
    victim.wait()
    assert read_holder(log_dir)["pid"] == victim.pid  # left behind by the dead process
    code, out, err = finish(start(tmp_path, log_dir, 3, 20, 0.0, "-", "--resume"))
    assert code == 0, err
    assert_each_run_once(log_dir, 3, 20, started_once=False)  # the killed run was started again


def test_in_one_process_a_new_manager_takes_over_from_an_idle_one(tmp_path):
    first = RunManager(tmp_path, verbose=0)
    first.begin_run({"x": 1})
    first.begin_epoch()
    first.track_loss(0.5, batch_size=2)
    first.end_epoch()  # a notebook cell interrupted mid-run, then run again:
    second = RunManager(tmp_path, verbose=0, overwrite=True)
    second.begin_run({"x": 2})
    assert read_holder(tmp_path)["pid"] == os.getpid()
    with pytest.raises(LogDirError, match="took over log_dir"):
        first.begin_epoch()
        first.end_epoch()
    second.end_run()
    second.close()
    assert load_summary(tmp_path)["x"].tolist() == [2]
    assert not (tmp_path / LOCK_NAME).exists()


def test_in_one_process_a_manager_in_a_sweep_is_not_taken_over(tmp_path):
    def train(run, callbacks):
        other = RunManager(tmp_path, verbose=0, overwrite=True)
        other.begin_run({"x": 9})

    m = RunManager(tmp_path, verbose=0)
    summary = m.sweep(train, {"x": [1]})
    assert summary["status"].tolist() == ["failed"]
    assert "Another RunManager in this process" in summary["error"][0]
    assert summary["error"][0].startswith("LogDirError")
    m.close()

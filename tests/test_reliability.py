"""Crash safety with real processes: SIGKILL at random moments, and Ctrl-C."""

from __future__ import annotations

import random
import signal
import subprocess
import sys
import textwrap
import threading
import time
import warnings

import pandas as pd
import pytest

from runmanager import load_results, load_summary

CHILD = textwrap.dedent(
    """
    import sys
    import keras
    import training
    from runmanager import RunManager

    class Announce(keras.callbacks.Callback):
        # Runs after runmanager's callback has returned for the epoch.
        def on_epoch_end(self, epoch, logs=None):
            print(f"done {m.run_count} {epoch + 1}", flush=True)

    def train(run, callbacks):
        training.train_slow(run, [*callbacks, Announce()])

    m = RunManager(sys.argv[1], verbose=0)
    m.sweep(train, {"units": [4, 8, 16, 32, 64], "num_epochs": [int(sys.argv[2])]}, resume=True)
    print("finished", flush=True)
    """
)


class Child:
    """A sweep in a subprocess whose stdout lines are collected as they come."""

    def __init__(self, tmp_path, log_dir, epochs):
        script = tmp_path / "child.py"
        script.write_text(CHILD)
        self.lines: list[str] = []
        self.process = subprocess.Popen(
            [sys.executable, str(script), str(log_dir), str(epochs)],
            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
        )
        self.reader = threading.Thread(target=self._read, daemon=True)
        self.reader.start()

    def _read(self):
        for line in self.process.stdout:
            self.lines.append(line.strip())

    def wait_for(self, pair=None, timeout=120):
        """Wait until epoch ``pair`` = (run, epoch), or any epoch, is announced.

        Returns False if the child finished its sweep first; fails if it died.
        """
        deadline = time.monotonic() + timeout
        while (pair not in self.announced()) if pair else not self.announced():
            if self.process.poll() == 0:
                return False
            assert self.process.poll() is None, self.process.stderr.read()
            assert time.monotonic() < deadline, "the child sweep made no progress"
            time.sleep(0.01)
        return True

    def announced(self):
        return {tuple(map(int, line.split()[1:])) for line in self.lines if line.startswith("done")}

    def wait(self, timeout=120):
        self.process.wait(timeout=timeout)
        self.reader.join(timeout=10)
        return self.process.returncode


def epochs_on_disk(log_dir):
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", RuntimeWarning)  # a torn last line is expected after a kill
        results = load_results(log_dir)
    return list(zip(results["run"], results["epoch"]))


@pytest.mark.slow
def test_sigkill_at_random_moments_loses_no_finished_epoch_and_resume_completes(tmp_path):
    log_dir = tmp_path / "sweep"
    rng = random.Random(1234)
    kills = 0
    for _ in range(8):
        child = Child(tmp_path, log_dir, epochs=25)
        if not child.wait_for():
            break  # the sweep finished before this child was killed
        time.sleep(rng.uniform(0.0, 1.5))  # mid-epoch, between runs, while exporting, while exiting...
        if child.process.poll() is not None:
            break
        child.process.send_signal(signal.SIGKILL)
        assert child.wait() == -signal.SIGKILL
        kills += 1
        on_disk = epochs_on_disk(log_dir)
        assert child.announced() <= set(on_disk), "an epoch the callback returned from is missing"
        assert len(on_disk) == len(set(on_disk)), "an epoch appears twice"
    assert kills >= 5
    child = Child(tmp_path, log_dir, epochs=25)
    assert child.wait() == 0, child.process.stderr.read()
    assert child.lines[-1] == "finished"
    summary = load_summary(log_dir)
    assert summary["status"].tolist() == ["completed"] * 5
    assert summary["run"].tolist() == [1, 2, 3, 4, 5] and summary["units"].tolist() == [4, 8, 16, 32, 64]
    results = load_results(log_dir)
    assert results.groupby("run")["epoch"].apply(list).tolist() == [list(range(1, 26))] * 5
    pd.testing.assert_frame_equal(pd.read_csv(log_dir / "results.csv"), results, check_dtype=False)


def test_ctrl_c_marks_the_run_interrupted_keeps_earlier_runs_and_reraises(tmp_path):
    log_dir = tmp_path / "sweep"
    child = Child(tmp_path, log_dir, epochs=20)
    child.wait_for((2, 3))
    child.process.send_signal(signal.SIGINT)
    code = child.wait()
    stderr = child.process.stderr.read()
    assert code != 0 and "KeyboardInterrupt" in stderr
    assert "finished" not in child.lines
    summary = load_summary(log_dir)
    assert summary["status"].tolist() == ["completed", "interrupted"]
    assert summary["error"].tolist()[1] == "KeyboardInterrupt"
    assert summary["epochs"].tolist()[0] == 20 and summary["epochs"].tolist()[1] >= 3
    pd.testing.assert_frame_equal(load_summary(log_dir / "summary.csv"), summary, check_dtype=False)
    pd.testing.assert_frame_equal(pd.read_csv(log_dir / "results.csv"), load_results(log_dir), check_dtype=False)
    assert sorted(p.name for p in log_dir.iterdir()) == [
        "journal.jsonl", "results.csv", "results.json", "summary.csv", "summary.json"]
    # Resuming reruns the interrupted run from its start, and those never begun.
    child = Child(tmp_path, log_dir, epochs=20)
    assert child.wait() == 0, child.process.stderr.read()
    assert {run for run, _ in child.announced()} == {2, 3, 4, 5}
    summary = load_summary(log_dir)
    assert summary["status"].tolist() == ["completed"] * 5 and summary["epochs"].tolist() == [20] * 5

"""Progress while a sweep runs: one line per run with counts, ETA and the best run; a row per run."""

from __future__ import annotations

import re
import time

import training
from IPython.core.interactiveshell import InteractiveShell
from test_display import Recorder

from runmanager import RunBuilder, RunManager
from runmanager.display import LiveTable
from runmanager.search import Search


def paced(run, callbacks):
    """One epoch after ``run.pause`` seconds; val_accuracy ``run.score``; ``fail`` raises."""
    if run.fail:
        raise RuntimeError("asked to fail")
    time.sleep(run.pause)
    training.fit_without_model(callbacks, [{"loss": 1 - run.score, "val_accuracy": run.score}])


def progress_lines(out):
    return [line for line in out.splitlines() if line.startswith("progress: ")]


def test_a_progress_line_after_every_run_with_counts_eta_and_the_best_run(tmp_path, capsys):
    runs = RunBuilder([{"score": [0.5, 0.9, 0.7], "pause": [1.0], "fail": [False]},
                       {"score": [0.8], "pause": [1.0], "fail": [True]},
                       {"score": [0.6, 0.95], "pause": [1.0], "fail": [False]}])
    m = RunManager(tmp_path, verbose=1)
    m.sweep(paced, runs)
    lines = progress_lines(capsys.readouterr().out)
    assert len(lines) == 6
    assert re.fullmatch(r"progress: 1/6 runs \(1 completed\) \| \d+s elapsed, ETA 5s \| best: run 1, val_accuracy 0.5000",
                        lines[0])
    assert "4/6 runs (3 completed, 1 failed)" in lines[3] and "best: run 2, val_accuracy 0.9000" in lines[3]
    assert lines[5].startswith("progress: 6/6 runs (5 completed, 1 failed)") and "ETA" not in lines[5]
    assert lines[5].endswith("best: run 6, val_accuracy 0.9500")
    # The ETA after run 2 said 4 runs of about a second were left: loosely, what happened.
    eta = int(re.search(r"ETA (\d+)s", lines[1]).group(1))
    assert 2 <= eta <= 6


def test_the_sweeps_metric_is_the_one_judged_and_an_unknown_total_has_no_eta(tmp_path, capsys):
    class Three(Search):
        fields = ("score", "pause", "fail")

        def __init__(self):
            self.left = [0.3, 0.2, 0.1]
            self.metric = "loss"  # a search's metric decides what "best" means

        def ask(self):
            return self.make_run({"score": self.left.pop(), "pause": 0.0, "fail": False}) if self.left else None

    RunManager(tmp_path, verbose=1).sweep(paced, Three())
    lines = progress_lines(capsys.readouterr().out)
    assert [line.split(" | ")[0] for line in lines] == [
        "progress: 1 runs (1 completed)", "progress: 2 runs (2 completed)", "progress: 3 runs (3 completed)"]
    assert not any("ETA" in line for line in lines)
    assert lines[-1].endswith("best: run 3, loss 0.7000")  # loss is 1 - score: run 3 (score 0.3) is lowest


def test_verbose_2_prints_one_row_per_finished_run(tmp_path, capsys):
    runs = RunBuilder([{"score": [0.5, 0.9], "pause": [0.0], "fail": [False]},
                       {"score": [0.8], "pause": [0.0], "fail": [True]}])
    RunManager(tmp_path, verbose=2).sweep(paced, runs)
    out = capsys.readouterr().out.splitlines()
    header = next(line for line in out if line.split()[:1] == ["run"])
    assert header.split() == ["run", "score", "pause", "fail", "status", "epochs", "loss", "val_accuracy",
                              "run_duration"]
    rows = [line.split() for line in out if re.match(r"^\s+\d+\s", line)]
    assert [row[0] for row in rows] == ["1", "2", "3"]
    assert [row[4] for row in rows] == ["completed", "completed", "failed"]
    assert "run 3 failed: RuntimeError: asked to fail" in out
    assert not any(line.split()[:1] == ["epoch"] for line in out)


def test_in_jupyter_the_progress_is_one_display_updated_and_the_table_stays_bounded():
    shell = InteractiveShell.instance()
    recorder = Recorder(shell=shell)
    shell.display_pub = recorder
    try:
        table = LiveTable(jupyter=True, max_rows=3)
        for epoch in range(1, 6):
            table.add({"run": 1, "epoch": epoch, "loss": 1 / epoch})
            table.status(f"progress: {epoch}/5 runs")
    finally:
        InteractiveShell.clear_instance()
    ids = {m["id"] for m in recorder.messages}
    assert len(ids) == 2  # the table and the progress line, each updated in place
    last_table = [m for m in recorder.messages if m["html"]][-1]["html"]
    assert last_table.count("<tr>") == 4 and "the latest 3 of 5 rows" in last_table


def grid(scores):
    return {"score": scores, "pause": [0.0], "fail": [False]}


def test_after_a_resume_the_progress_counts_the_runs_from_before_and_names_the_best_of_all(tmp_path, capsys):
    RunManager(tmp_path, verbose=1).sweep(paced, grid([0.5, 0.6, 0.9]))  # run 3 is the best
    capsys.readouterr()
    RunManager(tmp_path, verbose=1).sweep(paced, grid([0.5, 0.6, 0.9, 0.7]), resume=True)  # the grid grew by one
    out = capsys.readouterr().out
    lines = progress_lines(out)
    assert len(lines) == 1
    assert re.fullmatch(r"progress: 4/4 runs \(4 completed\) \| \d+s elapsed \| best: run 3, val_accuracy 0.9000",
                        lines[0])
    assert "sweep finished: 4 completed (3 of them from before the resume); results in" in out


def test_runs_from_before_that_come_after_the_last_new_run_reach_the_last_progress_line(tmp_path, capsys):
    RunManager(tmp_path, verbose=1).sweep(paced, grid([0.5, 0.6]))
    capsys.readouterr()
    RunManager(tmp_path, verbose=1).sweep(paced, grid([0.1, 0.5, 0.6]), resume=True)  # the new run comes first
    out = capsys.readouterr().out
    lines = [line.split(" | ")[0] for line in progress_lines(out)]
    assert lines == ["progress: 1/3 runs (1 completed)", "progress: 3/3 runs (3 completed)"]
    assert progress_lines(out)[-1].endswith("best: run 2, val_accuracy 0.6000")
    assert "sweep finished: 3 completed (2 of them from before the resume)" in out


def test_a_resume_with_nothing_left_to_run_says_all_runs_are_from_before(tmp_path, capsys):
    RunManager(tmp_path, verbose=1).sweep(paced, RunBuilder([grid([0.5]), {**grid([0.8]), "fail": [True]}]))
    capsys.readouterr()
    RunManager(tmp_path, verbose=1).sweep(paced, RunBuilder([grid([0.5]), {**grid([0.8]), "fail": [True]}]),
                                          resume=True)
    out = capsys.readouterr().out
    assert progress_lines(out) == []
    assert "sweep finished: 1 completed, 1 failed (all of them from before the resume)" in out

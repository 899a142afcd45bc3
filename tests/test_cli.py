"""The runmanager command: demo, show, best, and one-line errors."""

from __future__ import annotations

import subprocess
import sys

import pandas as pd
import pytest

from runmanager import load_summary
from runmanager.cli import main


def cli(*args, cwd=None, timeout=300):
    return subprocess.run([sys.executable, "-m", "runmanager.cli", *map(str, args)], cwd=cwd,
                          capture_output=True, text=True, timeout=timeout)


@pytest.fixture(scope="module")
def demo_dir(tmp_path_factory):
    log_dir = tmp_path_factory.mktemp("demo") / "run"
    done = cli("demo", "--log-dir", log_dir, "--epochs", "2")
    assert done.returncode == 0, done.stderr
    # TensorFlow's C++ start-up notices are kept off the terminal.
    assert "absl::InitializeLog" not in done.stderr and "oneDNN" not in done.stderr, done.stderr
    return log_dir, done.stdout


def test_demo_runs_a_real_sweep_with_a_live_table(demo_dir):
    log_dir, out = demo_dir
    lines = out.splitlines()
    assert lines[0].startswith("Sweeping 4 runs")
    assert lines[1].split()[:4] == ["run", "epoch", "accuracy", "loss"]
    assert sum(1 for line in lines if line.split()[:1] in (["1"], ["2"], ["3"], ["4"])) == 8
    assert "sweep finished: 4 completed" in out
    summary = load_summary(log_dir)
    best = summary.loc[summary["val_accuracy"].idxmax()]
    assert f"Best run: {best['run']} " in out
    assert f"val_accuracy {best['val_accuracy']:.4f}" in out
    assert (summary["status"] == "completed").all() and summary["val_accuracy"].max() > 0.5


def test_show_prints_one_line_per_run(demo_dir, capsys):
    log_dir, _ = demo_dir
    assert main(["show", str(log_dir)]) == 0
    lines = capsys.readouterr().out.splitlines()
    assert lines[0].split() == ["run", "units", "learning_rate", "status", "epochs", "accuracy", "loss",
                                "val_accuracy", "val_loss", "run_duration"]
    assert len(lines) == 2 + 4 and all("completed" in line for line in lines[2:])


def test_show_epochs_reads_csv_and_json_too(demo_dir, capsys):
    log_dir, _ = demo_dir
    for path in (log_dir, log_dir / "results.csv", log_dir / "results.json"):
        assert main(["show", str(path), "--epochs"]) == 0
        lines = capsys.readouterr().out.splitlines()
        assert lines[0].split()[:2] == ["run", "epoch"] and len(lines) == 2 + 8


@pytest.mark.parametrize(("metric", "mode", "pick"), [("val_loss", None, "idxmin"), ("val_accuracy", None, "idxmax"),
                                                      ("val_loss", "max", "idxmax")])
def test_best_prints_the_best_run(demo_dir, capsys, metric, mode, pick):
    log_dir, _ = demo_dir
    summary = load_summary(log_dir)
    expected = summary.loc[getattr(summary[metric], pick)()]
    assert main(["best", str(log_dir), "--metric", metric] + (["--mode", mode] if mode else [])) == 0
    out = capsys.readouterr().out.splitlines()
    assert out[0] == f"Best run by {metric} ({mode or ('min' if 'loss' in metric else 'max')}): run {expected['run']}"
    assert out[3].split()[:3] == [str(expected["run"]), str(expected["units"]), f"{expected['learning_rate']:g}"]


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["show", "/nonexistent/sweep"], "'/nonexistent/sweep' does not exist"),
        (["best", "/nonexistent/sweep", "--metric", "loss"], "does not exist"),
        (["best", "{demo}", "--metric", "f1"], "Unknown metric 'f1'; the sweep has accuracy, loss, val_accuracy, val_loss."),
        (["show", "{demo}/journal.jsonl"], "give a log_dir, a .csv or a .json file"),
    ],
)
def test_bad_paths_and_metrics_are_one_line_errors(demo_dir, args, message):
    log_dir, _ = demo_dir
    done = cli(*[a.format(demo=log_dir) for a in args], timeout=60)
    assert done.returncode == 2
    assert done.stderr.count("\n") == 1 and done.stderr.startswith("runmanager: error: ")
    assert message in done.stderr and "Traceback" not in done.stderr


def test_best_of_a_sweep_without_completed_runs_is_an_error(tmp_path, capsys):
    pd.DataFrame({"run": [1], "units": [4], "status": ["failed"], "epochs": [0], "loss": [float("nan")],
                  "run_duration": [0.1], "error": ["x"]}).to_csv(tmp_path / "summary.csv", index=False)
    assert main(["best", str(tmp_path / "summary.csv"), "--metric", "loss"]) == 2
    assert "No completed run has a finite 'loss'" in capsys.readouterr().err


def test_usage_errors_exit_2_with_usage():
    done = cli("best", "somewhere", timeout=60)
    assert done.returncode == 2 and "--metric" in done.stderr


@pytest.mark.parametrize("epochs", ["0", "-3", "two"])
def test_demo_refuses_fewer_than_one_epoch_before_it_starts(tmp_path, epochs):
    done = cli("demo", "--epochs", epochs, cwd=tmp_path, timeout=60)
    assert done.returncode == 2 and done.stdout == ""
    assert done.stderr.strip().splitlines()[-1] == (
        f"runmanager demo: error: argument --epochs: must be a whole number of at least 1, got {epochs!r}")
    assert list(tmp_path.iterdir()) == []  # no runs/ folder: nothing started


def test_show_info_says_which_backend_and_versions_ran_the_runs(demo_dir):
    import keras
    import tensorflow

    log_dir, _ = demo_dir
    done = cli("show", log_dir, "--info")
    assert done.returncode == 0, done.stderr
    assert done.stdout.splitlines()[0] == (
        f"backend tensorflow (keras {keras.__version__}, tensorflow {tensorflow.__version__}): runs 1, 2, 3, 4")


@pytest.mark.parametrize("shown", [False, True])
def test_the_backends_start_up_notices_are_hidden_unless_asked(shown):
    code = ("import os, sys\n"
            + ("os.environ['RUNMANAGER_BACKEND_NOTICES'] = '1'\n" if shown else "")
            + "from runmanager.backend import import_keras\nimport_keras()\n"
            "print('kept', file=sys.stderr)")
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120)
    assert done.returncode == 0 and done.stderr.endswith("kept\n")
    assert ("absl::InitializeLog" in done.stderr) is shown

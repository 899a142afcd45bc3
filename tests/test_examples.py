"""Every script in examples/ runs, offline, and produces the results it promises.

Each example is run as a user would run it: ``python examples/NAME.py LOG_DIR``
in a fresh folder. Any new ``examples/*.py`` is picked up by the glob and must at
least exit with 0 and leave a non-empty sweep in LOG_DIR; the examples known here
get stricter checks of what they wrote and printed.
"""

from __future__ import annotations

import ast
import itertools
import math
import os
import re
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

import runmanager
from runmanager.analysis import best_run

EXAMPLES_DIR = Path(__file__).resolve().parent.parent / "examples"
EXAMPLES = sorted(EXAMPLES_DIR.glob("*.py"))
TIMEOUT_S = 300


def _runs_and_epochs(results) -> tuple[int, set[int]]:
    return results["run"].nunique(), set(results.groupby("run").size())


def check_nested_loops_to_runbuilder(log_dir: Path, stdout: str) -> None:
    results = runmanager.load_results(log_dir)
    assert _runs_and_epochs(results) == (4, {3})
    pairs = set(results[["lr", "batch_size"]].itertuples(index=False, name=None))
    assert pairs == set(itertools.product([0.01, 0.001], [32, 128]))
    # m.save() wrote the same rows beside the automatic exports.
    saved = runmanager.load_results(log_dir / "nested_loops.csv")
    assert len(saved) == 12 and list(saved.columns) == list(results.columns)
    assert "12 epoch rows from 4 runs" in stdout


def check_tensorboard_hparams(log_dir: Path, stdout: str) -> None:
    summary = runmanager.load_summary(log_dir)
    assert len(summary) == 8
    assert (summary["status"] == "completed").all(), summary[["run", "status", "error"]]
    combos = set(summary[["num_units", "dropout", "optimizer"]].itertuples(index=False, name=None))
    assert combos == set(itertools.product([16, 32], [0.1, 0.2], ["adam", "sgd"]))
    assert (summary["epochs"] == 5).all()
    best = best_run(summary, "val_accuracy")
    assert f"Best: run {best['run']} " in stdout
    # tensorboard=True: event files for the sweep's hparams_config and for every run.
    event_folders = {path.parent for path in (log_dir / "tensorboard").rglob("events.out.tfevents*")}
    assert len(event_folders) > 8, f"TensorBoard event files in only {len(event_folders)} folders"


def check_dataframe_analysis(log_dir: Path, stdout: str) -> None:
    summary = runmanager.load_summary(log_dir)
    assert len(summary) == 6 and (summary["status"] == "completed").all()
    best = best_run(summary, "val_accuracy")
    assert f"Best run: {best['run']} (units={best['units']}, " in stdout
    assert "Final val_accuracy, units x learning_rate:" in stdout
    assert "24 epoch rows from 6 runs" in stdout


def check_custom_training_loop(log_dir: Path, stdout: str) -> None:
    results = runmanager.load_results(log_dir)
    assert _runs_and_epochs(results) == (4, {5})
    assert list(results.columns[2:6]) == ["loss", "accuracy", "val_loss", "val_accuracy"]
    for run, rows in results.groupby("run"):
        losses = rows.sort_values("epoch")["loss"].tolist()
        assert all(math.isfinite(v) for v in losses), (run, losses)
        assert all(b < a for a, b in itertools.pairwise(losses)), f"run {run}: loss not decreasing: {losses}"
        assert rows["accuracy"].between(0, 1).all() and rows["val_accuracy"].between(0, 1).all()
    # Training works: the best run gets most validation digits right.
    assert results["val_accuracy"].max() > 0.9
    assert (runmanager.load_summary(log_dir)["status"] == "completed").all()


def check_subclass_extra_columns(log_dir: Path, stdout: str) -> None:
    results = runmanager.load_results(log_dir)
    assert _runs_and_epochs(results) == (4, {4})
    # Dense(64 -> units) + Dense(units -> 10), weights and biases.
    expected_params = results["units"] * 64 + results["units"] + results["units"] * 10 + 10
    assert (results["num_params"] == expected_params).all()
    # The staircase schedule decays once per epoch: 0.01 * decay_rate ** epoch at each epoch's end.
    expected_lr = 0.01 * results["decay_rate"] ** results["epoch"]
    assert ((results["current_lr"] - expected_lr).abs() < 1e-6).all(), results[["epoch", "current_lr"]]
    columns = list(results.columns)
    assert columns.index("val_loss") < columns.index("num_params") < columns.index("epoch_duration")


def check_repeats_and_report(log_dir: Path, stdout: str) -> None:
    summary = runmanager.load_summary(log_dir)
    assert len(summary) == 12 and (summary["status"] == "completed").all()
    assert summary["repeat"].tolist() == [1, 2, 3] * 4
    ranked = runmanager.aggregate(log_dir, "val_accuracy")
    assert ranked["runs"].tolist() == [3] * 4 and ranked["rank"].tolist() == [1, 2, 3, 4]
    expected = summary.groupby(["units", "learning_rate"])["val_accuracy"].agg(["mean", "std"])
    for row in ranked.itertuples():
        mean, std = expected.loc[(row.units, row.learning_rate)]
        assert math.isclose(row.val_accuracy_mean, mean) and math.isclose(row.val_accuracy_std, std)
        assert f"{row.val_accuracy_mean:.4f} $\\pm$ {row.val_accuracy_std:.4f}" in stdout
    assert ranked["val_accuracy_mean"].iloc[0] > 0.8  # training works
    assert "\\begin{tabular}" in stdout and "\\toprule" in stdout and stdout.count("\\textbf{") == 2
    assert "best_epoch" in stdout
    report = log_dir / "report.html"
    page = report.read_text(encoding="utf-8")
    assert page.count("<svg") == 6 and "<script" not in page and "Summary over repeats" in page
    assert (log_dir / "val_accuracy.svg").stat().st_size > 10_000
    # The report in a real browser: nothing fails to load; the screenshot is the one in docs/analysis.md.
    from browser import render

    shot = log_dir / "report.png"
    seen = render(report, shot)
    assert seen["failed"] == [] and seen["errors"] == [] and seen["requests"] == [report.resolve().as_uri()]
    if os.environ.get("RUNMANAGER_DOCS_IMAGES"):
        shutil.copyfile(shot, Path(os.environ["RUNMANAGER_DOCS_IMAGES"]) / "report.png")


def check_two_objectives(log_dir: Path, stdout: str) -> None:
    summary = runmanager.load_summary(log_dir)
    assert len(summary) == 10 and (summary["status"] == "completed").all()
    # The extra column is the model's parameter count: Dense(64 -> units) + Dense(units -> 10).
    assert (summary["params"] == summary["units"] * 75 + 10).all()
    # The pareto column is the front found by brute force over all pairs.
    points = summary[["run", "val_accuracy", "params"]].itertuples(index=False, name=None)
    points = {run: (accuracy, params) for run, accuracy, params in points}
    front = {run for run, (a, p) in points.items()
             if not any(a2 >= a and p2 <= p and (a2 > a or p2 < p) for r2, (a2, p2) in points.items() if r2 != run)}
    assert set(summary.loc[summary["pareto"], "run"]) == front and 1 < len(front) < 10
    ranked = summary[summary["pareto"]].sort_values("val_accuracy", ascending=False)["run"].tolist()
    assert runmanager.pareto(log_dir, ["val_accuracy", "params"], ["max", "min"])["run"].tolist() == ranked
    assert f"{len(summary)} runs, {len(front)} on the Pareto front" in stdout
    assert f"Pareto front by val_accuracy (max), params (min): {len(front)} of 10 completed runs" in stdout
    # The report's front in a real browser; the screenshot is the one in docs/analysis.md.
    from browser import render

    report = log_dir / "report.html"
    page = report.read_text(encoding="utf-8")
    assert '<section id="pareto">' in page and "<script" not in page
    shot = log_dir / "pareto.png"
    seen = render(report, shot, section="#pareto")
    assert seen["failed"] == [] and seen["errors"] == [] and seen["requests"] == [report.resolve().as_uri()]
    assert shot.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    if os.environ.get("RUNMANAGER_DOCS_IMAGES"):
        shutil.copyfile(shot, Path(os.environ["RUNMANAGER_DOCS_IMAGES"]) / "pareto.png")


CHECKS = {
    "nested_loops_to_runbuilder": check_nested_loops_to_runbuilder,
    "tensorboard_hparams": check_tensorboard_hparams,
    "dataframe_analysis": check_dataframe_analysis,
    "custom_training_loop": check_custom_training_loop,
    "subclass_extra_columns": check_subclass_extra_columns,
    "repeats_and_report": check_repeats_and_report,
    "two_objectives": check_two_objectives,
}


def test_examples_are_found_and_documented() -> None:
    """The glob finds the examples, and examples/README.md names every one of them."""
    assert EXAMPLES, f"no examples found in {EXAMPLES_DIR}"
    assert set(CHECKS) <= {path.stem for path in EXAMPLES}, "an example with checks below is missing"
    readme = (EXAMPLES_DIR / "README.md").read_text(encoding="utf-8")
    for path in EXAMPLES:
        assert path.name in readme, f"examples/README.md does not mention {path.name}"


@pytest.mark.parametrize("example", EXAMPLES, ids=[path.stem for path in EXAMPLES])
def test_example_runs(example: Path, tmp_path: Path) -> None:
    """The example exits with 0, leaves a non-empty sweep in LOG_DIR, and (if known) the right one."""
    tree = ast.parse(example.read_text(encoding="utf-8"))
    assert ast.get_docstring(tree), f"{example.name} has no module docstring"
    assert re.search(r'^if __name__ == "__main__":', example.read_text(encoding="utf-8"), re.M), (
        f"{example.name} has no `if __name__ == \"__main__\":` guard")

    log_dir = tmp_path / "out"
    env = {**os.environ, "TF_CPP_MIN_LOG_LEVEL": "2"}
    proc = subprocess.run(
        [sys.executable, str(example), str(log_dir)],
        cwd=tmp_path, env=env, capture_output=True, text=True, timeout=TIMEOUT_S,
    )
    assert proc.returncode == 0, (
        f"{example.name} exited with {proc.returncode}\n--- stdout ---\n{proc.stdout[-4000:]}"
        f"\n--- stderr ---\n{proc.stderr[-4000:]}"
    )
    assert not (tmp_path / "runs").exists(), "the example ignored its LOG_DIR argument"
    results = runmanager.load_results(log_dir)
    assert len(results) > 0, f"{example.name} recorded no epochs in {log_dir}"
    check = CHECKS.get(example.stem)
    if check is not None:
        check(log_dir, proc.stdout)

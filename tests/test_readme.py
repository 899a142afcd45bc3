"""Every code block of the README runs: the Python blocks in order, the shell commands too."""

from __future__ import annotations

import re
import shlex
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
README = (ROOT / "README.md").read_text()


def blocks(language):
    return re.findall(rf"```{language}\n(.*?)```", README, flags=re.S)


def test_python_blocks_run_in_order(tmp_path):
    script = tmp_path / "readme.py"
    script.write_text("\n\n".join(blocks("python")))
    done = subprocess.run([sys.executable, str(script)], cwd=tmp_path, capture_output=True, text=True, timeout=600)
    assert done.returncode == 0, done.stderr[-3000:]
    out = done.stdout
    assert "Run(lr=0.01, batch_size=32, optimizer='sgd')" in out
    assert "4 Run(lr=0.001, batch_size=64, optimizer='adam')" in out
    assert "Parameter 'lr' has the value 0.01, which is not a list of values" in out
    assert "['run', 'epoch', 'accuracy', 'loss', 'val_accuracy', 'val_loss', 'epoch_duration'" in out
    assert "4 runs, none rerun" in out
    assert "interrupted after epoch 2" in out and "[[1, 2, 3, 4], [1, 2, 3, 4]]" in out
    assert "checkpoints/0002/best.keras" in out or "checkpoints/0001/best.keras" in out
    assert re.search(r"\bpruned\s+[12]\s*$", out, flags=re.M)  # the random sweep pruned a run
    assert (tmp_path / "runs/tour-results.csv").exists() and (tmp_path / "runs/sweep/journal.jsonl").exists()
    # The shell tour runs against the sweep the Python blocks made (TensorBoard serves forever: not here).
    commands = [line.split("#")[0].strip() for block in blocks("bash") for line in block.splitlines()]
    tour = [c for c in commands if c.startswith("runmanager ") and c.split()[1] in ("show", "best", "report")]
    assert len(tour) == 6
    for command in tour:
        args = shlex.split(command)[1:]
        shown = subprocess.run([sys.executable, "-m", "runmanager.cli", *args], cwd=tmp_path,
                               capture_output=True, text=True, timeout=120)
        assert shown.returncode == 0, (command, shown.stderr)
        first = shown.stdout.splitlines()[0]
        assert "run" in first or first.startswith(("\\begin{tabular}", "Wrote runs/sweep/report.html")), first
    assert "0.8" in out or "0.9" in out  # the aggregate printed real accuracies
    assert (tmp_path / "runs/repeats/report.html").exists() and (tmp_path / "runs/sweep/report.html").exists()


def test_quick_start_commands_are_the_ones_ci_runs():
    commands = [line.strip() for block in blocks("bash") for line in block.splitlines()]
    test_command = next(c for c in commands if c.endswith("&& pytest"))
    assert test_command in (ROOT / ".ci/run").read_text()
    assert 'pip install ".[tensorflow,examples]" && runmanager demo' in commands

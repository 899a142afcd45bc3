"""The public surface: exactly the names of API.md, typed, importable without TensorFlow."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import runmanager
from runmanager import errors

PUBLIC = [
    "Checkpoint", "CheckpointError", "ColumnClashError", "InvalidArgumentError", "InvalidArgumentTypeError", "InvalidGridError",
    "InvalidGridTypeError", "JournalError", "LifecycleError", "LogDirError", "MedianPruner", "MissingExtraError",
    "MissingMetricError", "OptunaSearch", "Pruner", "RandomSearch", "RunBuilder", "SuccessiveHalvingPruner", "RunManager", "RunManagerError",
    "SweepError", "aggregate", "load_model", "load_results", "load_summary", "pareto", "plot", "report",
]


def test_all_is_exactly_the_public_api_and_sorted():
    assert runmanager.__all__ == sorted(PUBLIC)
    for name in PUBLIC:
        assert getattr(runmanager, name) is not None


def test_every_error_is_a_runmanager_error_and_a_builtin():
    for name in errors.__all__:
        error = getattr(errors, name)
        assert issubclass(error, runmanager.RunManagerError)
        if error is not runmanager.RunManagerError:
            assert issubclass(error, (ValueError, TypeError, RuntimeError, ImportError)), name


def test_core_imports_without_tensorflow_or_keras():
    code = ("import sys, runmanager, runmanager.grid, runmanager.storage, runmanager.tracking, "
            "runmanager.display, runmanager.analysis, runmanager.cli, runmanager.sweep, runmanager.reporting, "
            "runmanager.plotting, runmanager.tables, runmanager.repeats; "
            "print(sorted(m for m in ('tensorflow', 'keras', 'matplotlib') if m in sys.modules))")
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=60)
    assert done.returncode == 0, done.stderr
    assert done.stdout.strip() == "[]"


def test_package_is_typed():
    assert (Path(runmanager.__file__).parent / "py.typed").exists()


def test_public_callables_have_docstrings_with_an_example():
    from runmanager import RunBuilder, RunManager

    members = [runmanager.load_results, runmanager.load_summary, RunBuilder, RunBuilder.get_runs,
               RunBuilder.from_hparams, RunBuilder.sample, RunManager, RunManager.track_loss,
               RunManager.track_num_correct, RunManager.track, RunManager.callback, RunManager.sweep,
               RunManager.save, RunManager.extra_columns, RunManager.summary, RunManager.pareto, runmanager.pareto,
               runmanager.aggregate]
    for member in members:
        assert "Example" in (member.__doc__ or ""), member

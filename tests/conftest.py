"""Shared test set-up: quiet TensorFlow logs, small real data."""

from __future__ import annotations

import os
import sys
from pathlib import Path

import pytest

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
os.environ.setdefault("KERAS_BACKEND", "tensorflow")
# Subprocesses started by tests import tests/training.py as "training".
TESTS = str(Path(__file__).parent)
if TESTS not in sys.path:
    sys.path.insert(0, TESTS)
os.environ["PYTHONPATH"] = os.pathsep.join(p for p in (TESTS, os.environ.get("PYTHONPATH")) if p)


@pytest.fixture(scope="session")
def layers_sweep(tmp_path_factory):
    """A real Keras sweep over a list param and a dict param, two repeats each: its log_dir,
    and copies of it that hold only the CSV exports or only the JSON ones."""
    import shutil

    import training

    from runmanager import RunManager

    root = tmp_path_factory.mktemp("layers")
    log_dir = root / "sweep"
    RunManager(log_dir, verbose=0).sweep(training.train_layers, {"layers": [[8], [8, 4]],
                                                                 "opt": [{"name": "sgd", "lr": 0.05}]},
                                         repeats=2, seed=0)
    copies = {}
    for kind in ("csv", "json"):
        copies[kind] = root / f"only-{kind}"
        copies[kind].mkdir()
        for path in log_dir.glob(f"*.{kind}"):
            shutil.copy(path, copies[kind] / path.name)
    return log_dir, copies


@pytest.fixture(scope="session")
def models_sweep(tmp_path_factory):
    """A sweep over two model names that differ only after their 28th character, two repeats
    each; the better one completed only 1 of its 2 repeats."""
    import training

    from runmanager import RunManager

    log_dir = tmp_path_factory.mktemp("models") / "sweep"
    RunManager(log_dir, verbose=0).sweep(training.train_by_model, {"model": [training.FROZEN, training.FINETUNED]},
                                         repeats=2, seed=0, max_consecutive_failures=0)
    return log_dir

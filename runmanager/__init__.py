"""runmanager: hyperparameter sweeps for Keras, as namedtuple runs and pandas DataFrames.

Examples:
    >>> from runmanager import RunBuilder
    >>> RunBuilder.get_runs({"lr": [0.01, 0.001], "batch_size": [32]})
    [Run(lr=0.01, batch_size=32), Run(lr=0.001, batch_size=32)]
"""

from __future__ import annotations

from runmanager.analysis import aggregate
from runmanager.checkpoints import Checkpoint, load_model
from runmanager.errors import (
    CheckpointError,
    ColumnClashError,
    InvalidArgumentError,
    InvalidArgumentTypeError,
    InvalidGridError,
    InvalidGridTypeError,
    JournalError,
    LifecycleError,
    LogDirError,
    MissingExtraError,
    MissingMetricError,
    RunManagerError,
    SweepError,
)
from runmanager.grid import RunBuilder
from runmanager.pareto import pareto
from runmanager.plotting import plot
from runmanager.pruning import MedianPruner, Pruner, SuccessiveHalvingPruner
from runmanager.reporting import report
from runmanager.search import OptunaSearch, RandomSearch
from runmanager.storage import load_results, load_summary
from runmanager.tracking import RunManager

__version__ = "0.1.0"

__all__ = [
    "Checkpoint",
    "CheckpointError",
    "ColumnClashError",
    "InvalidArgumentError",
    "InvalidArgumentTypeError",
    "InvalidGridError",
    "InvalidGridTypeError",
    "JournalError",
    "LifecycleError",
    "LogDirError",
    "MedianPruner",
    "MissingExtraError",
    "MissingMetricError",
    "OptunaSearch",
    "Pruner",
    "RandomSearch",
    "RunBuilder",
    "RunManager",
    "RunManagerError",
    "SuccessiveHalvingPruner",
    "SweepError",
    "aggregate",
    "load_model",
    "load_results",
    "load_summary",
    "pareto",
    "plot",
    "report",
]

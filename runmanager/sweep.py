"""Running a sweep: every run of a grid through the user's ``train`` function.

The sequential executor runs them one after another in this process. Each run
is recorded with a status: ``completed``, ``failed`` (``train`` raised; the
sweep goes on), ``diverged`` (a loss became NaN/inf; training stopped at that
epoch) or ``interrupted`` (Ctrl-C; the interrupt is re-raised after the files
are made consistent).
"""

from __future__ import annotations

import os
import traceback
import warnings
from collections.abc import Callable, Iterator
from typing import TYPE_CHECKING, Any

from runmanager.errors import InvalidArgumentError, InvalidArgumentTypeError, SweepError
from runmanager.naming import params_of, run_id

if TYPE_CHECKING:
    from runmanager.grid import RunBuilder
    from runmanager.tracking import RunManager

__all__ = ["EXECUTORS", "Tally", "check_sweep_arguments", "plan_runs", "run_one", "run_sequential"]

EXECUTORS = ("sequential", "processes", "ray")
#: Statuses of runs that a resumed sweep does not run again (failed/diverged: unless retried).
_DONE = {"completed"}
_FAILED = {"failed", "diverged"}


def check_sweep_arguments(
    train: Any, executor: Any, seed: Any, max_consecutive_failures: Any, workers: Any
) -> None:
    """Reject bad sweep arguments before any run starts."""
    if not callable(train):
        raise InvalidArgumentTypeError(
            f"train must be a function train(run, callbacks), got {train!r}."
        )
    if executor not in EXECUTORS:
        raise InvalidArgumentError(
            f"Unknown executor {executor!r}; choose one of {', '.join(map(repr, EXECUTORS))}."
        )
    if seed is not None and (not isinstance(seed, int) or isinstance(seed, bool)):
        raise InvalidArgumentTypeError(f"seed must be an int or None, got {seed!r}.")
    if (not isinstance(max_consecutive_failures, int) or isinstance(max_consecutive_failures, bool)
            or max_consecutive_failures < 0):
        raise InvalidArgumentError(
            "max_consecutive_failures must be a non-negative int (0: never stop), "
            f"got {max_consecutive_failures!r}."
        )
    if workers is not None and (not isinstance(workers, int) or isinstance(workers, bool) or workers < 1):
        raise InvalidArgumentError(f"workers must be a positive int, got {workers!r}.")


def plan_runs(manager: RunManager, grid: RunBuilder, *, retry_failed: bool) -> Iterator[tuple[int, Any]]:
    """``(run number, run)`` for each run still to do, lazily, in grid order.

    A run already in the journal keeps its number; a new one takes the next free number.
    A run that appears twice in the grid (a union of grids can repeat one) runs once.
    """
    results = manager._results
    next_number = results.next_number
    seen: set[str] = set()
    for run in grid:
        rid = run_id(params_of(run))
        if rid in seen:
            continue
        seen.add(rid)
        record = results.by_id.get(rid)
        if record is None:
            yield next_number, run
            next_number += 1
        elif record.status in _DONE or (record.status in _FAILED and not retry_failed):
            continue
        else:
            yield record.number, run


def clear_keras_session() -> None:
    """Free the last run's graph and layers cheaply.

    ``clear_session()``'s default ``gc.collect()`` grows slower with every run
    (167 ms at run 1, 515 ms at run 60 measured with Keras 3.15), so it is skipped.
    """
    import keras

    keras.backend.clear_session(free_memory=False)


def seed_everything(seed: int) -> None:
    """Seed Python, NumPy and the Keras backend, so runs differ only by their params."""
    import keras

    keras.utils.set_random_seed(seed)


def run_one(manager: RunManager, train: Callable[..., Any], number: int, run: Any, seed: int | None) -> str:
    """Run ``train`` for one run under ``manager``; return its status.

    Exceptions from ``train`` are recorded, not raised; KeyboardInterrupt is
    recorded as ``interrupted`` and raised again.
    """
    from runmanager.keras_callback import RunCallback

    clear_keras_session()
    if seed is not None:
        seed_everything(seed)
    manager._assigned_number = number
    manager.begin_run(run)
    manager._owner = "sweep"
    callback = RunCallback(manager, run, managed=True)
    try:
        train(run, [callback])
    except KeyboardInterrupt:
        manager._ending = ("interrupted", "KeyboardInterrupt", None)
        manager.end_run()
        raise
    except Exception as exc:  # noqa: BLE001 - one bad run must not kill the sweep
        manager._ending = ("failed", f"{type(exc).__name__}: {exc}", traceback.format_exc())
        manager.end_run()
        return "failed"
    if manager._epoch is not None:
        manager._epoch = None  # a custom loop that began an epoch and never ended it
    if manager.epoch_count == 0:
        warnings.warn(
            f"Run {number} {tuple(run)} recorded no epochs: train() must pass `callbacks` to "
            "model.fit(), or drive them in a custom loop.",
            RuntimeWarning,
            stacklevel=2,
        )
    status = "diverged" if manager.run_diverged else "completed"
    manager.end_run()
    return status


class Tally:
    """Counts runs by status, and stops the sweep after too many failures in a row."""

    def __init__(self, manager: RunManager, max_consecutive_failures: int) -> None:
        self.manager = manager
        self.limit = max_consecutive_failures
        self.counts: dict[str, int] = {}
        self.failures = 0

    def add(self, number: int, status: str) -> None:
        """Count run ``number``'s ``status``; raise SweepError once the limit of failures is reached."""
        self.counts[status] = self.counts.get(status, 0) + 1
        # A worker that died takes its run with it: that counts as a failure too.
        self.failures = self.failures + 1 if status in ("failed", "interrupted") else 0
        if self.limit and self.failures >= self.limit:
            log_dir = self.manager.log_dir
            raise SweepError(
                f"The sweep stopped after {self.failures} failed runs in a row; the last one, run {number}, "
                f"ended with {self.manager._results.runs[number].error}. Something is wrong for every "
                f"run: check train() (tracebacks are in "
                f"{os.fspath(log_dir / 'journal.jsonl') if log_dir else 'the journal of a log_dir'}), "
                "or pass max_consecutive_failures=0 to never stop."
            )


def run_sequential(
    manager: RunManager, train: Callable[..., Any], plan: Iterator[tuple[int, Any]], *,
    seed: int | None, max_consecutive_failures: int,
) -> dict[str, int]:
    """Run the planned runs one after another in this process; return counts by status."""
    tally = Tally(manager, max_consecutive_failures)
    for number, run in plan:
        tally.add(number, run_one(manager, train, number, run, seed))
    return tally.counts

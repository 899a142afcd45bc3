"""Running tasks in this process, one after another: the default executor, and the body
of every worker (a worker process or a Ray actor runs its tasks with :func:`run_task` too)."""

from __future__ import annotations

import contextlib
import traceback
import warnings
from collections.abc import Callable
from typing import Any

from runmanager.errors import LogDirWriteError
from runmanager.events import EpochEnded, Status
from runmanager.executors import Executor, Task
from runmanager.signals import exception_text, interrupt_reason

__all__ = ["SequentialExecutor", "clear_keras_session", "run_task", "seed_everything"]


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


def run_task(manager: Any, train: Callable[..., Any], task: Task,
             judge: Callable[[EpochEnded], bool] | None = None) -> Status:
    """Run ``train`` for one task under ``manager``; return the run's status.

    Exceptions from ``train`` are recorded, not raised; KeyboardInterrupt (and SIGTERM
    during a sweep) is recorded as ``interrupted`` and raised again, and so is a failure
    to write the log_dir, and any other exception that is not an ``Exception``
    (``SystemExit`` from ``sys.exit()`` in ``train``: the user's code quitting, not a run
    that failed on its own), with its text and traceback.

    ``judge`` is asked after every epoch whether the run should stop there (pruning).

    Examples:
        status = run_task(m, train, Task(1, run, seed=0))
    """
    from runmanager.backend import import_keras

    import_keras()  # first, and without TensorFlow's start-up notices
    from runmanager.keras_callback import RunCallback

    clear_keras_session()
    if task.seed is not None:
        seed_everything(task.seed)
    manager.begin_run_as(task.run, task.number)
    callback = RunCallback(manager, task.run, managed=True, judge=judge)
    try:
        train(task.run, [callback])
    except KeyboardInterrupt as exc:  # Ctrl-C, or SIGTERM during a sweep
        manager.end_run_as(Status.INTERRUPTED, interrupt_reason(exc))
        raise
    except LogDirWriteError:
        # Not the run's fault: record it interrupted if the journal can still take it, and stop.
        with contextlib.suppress(LogDirWriteError):
            manager.end_run_as(Status.INTERRUPTED, "the log_dir could not be written")
        raise
    except Exception as exc:  # noqa: BLE001 - one bad run must not kill the sweep
        manager.end_run_as(Status.FAILED, exception_text(exc), traceback.format_exc())
        return Status.FAILED
    except BaseException as exc:
        # sys.exit() and the like: the process is asked to stop. The run did not fail by itself,
        # so it ends interrupted (a resumed sweep runs it again), and the exit goes on.
        manager.end_run_as(Status.INTERRUPTED, exception_text(exc), traceback.format_exc())
        raise
    manager.discard_epoch()  # a custom loop that began an epoch and never ended it
    if manager.epoch_count == 0:
        warnings.warn(
            f"Run {task.number} {tuple(task.run)} recorded no epochs: train() must pass `callbacks` to "
            "model.fit(), or drive them in a custom loop.",
            RuntimeWarning,
            stacklevel=2,
        )
    status = manager.run_status
    manager.end_run_as(status)
    return status


class SequentialExecutor(Executor):
    """Runs each task in this process as soon as the sweep waits for it.

    Examples:
        m.sweep(train, grid, executor="sequential")
    """

    def __init__(self) -> None:
        self._task: Task | None = None

    def submit(self, task: Task) -> None:
        self._task = task

    def running(self) -> int:
        return 0 if self._task is None else 1

    def wait(self) -> list[tuple[Task, Status]]:
        task, self._task = self._task, None
        if task is None:
            return []
        return [(task, run_task(self.manager, self.train, task, self.judge))]

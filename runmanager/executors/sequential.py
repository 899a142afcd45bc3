"""Running tasks in this process, one after another: the default executor, and the body
of every worker (a worker process or a Ray actor runs its tasks with :func:`run_task` too)."""

from __future__ import annotations

import contextlib
import traceback
import warnings
from typing import Any

from runmanager.checkpoints import Checkpoint, restore, takes_checkpoint
from runmanager.errors import CheckpointError, LogDirWriteError
from runmanager.events import Status
from runmanager.executors.base import Executor, SweepContext, Task
from runmanager.handle import RunHandle
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


def _restored(context: SweepContext, task: Task, resumes: bool) -> tuple[Checkpoint, float, str | None]:
    """The checkpoint ``task`` goes on from, the seconds it had trained, and a note when its
    checkpoint cannot be read (it then starts afresh: the sweep never dies of a bad file)."""
    settings, point = context.checkpoints, task.resume
    if point is None or settings is None or not resumes:
        return Checkpoint(), 0.0, None
    try:
        model = restore(point, settings.log_dir if settings.sees_log_dir() else None)
    except CheckpointError as exc:
        note = f"{exc} Run {task.number} starts again from epoch 1."
        warnings.warn(note, RuntimeWarning, stacklevel=3)
        return Checkpoint(), 0.0, note
    return Checkpoint(point.epoch, model), point.elapsed, None

def run_task(context: SweepContext, task: Task, manager: Any = None) -> Status:
    """Run ``context.train`` for one task under ``manager`` (default: the sweep's, in this
    process); return the run's status.

    The run goes on from ``task.resume`` when ``train`` takes a third parameter (the
    checkpoint), and saves the checkpoints the sweep asks for. Exceptions from ``train`` are
    recorded, not raised; KeyboardInterrupt (and SIGTERM during a sweep) is recorded as
    ``interrupted`` and raised again, and so is a failure to write the log_dir, and any
    other exception that is not an ``Exception`` (``SystemExit`` from ``sys.exit()`` in
    ``train``: the user's code quitting, not a run that failed on its own), with its text
    and traceback.

    Examples:
        status = run_task(context, Task(1, run, seed=0))
    """
    from runmanager.backend import import_keras

    import_keras()  # first, and without TensorFlow's start-up notices
    from runmanager.keras_callback import RunCallback

    manager = context.manager if manager is None else manager
    train, settings = context.train, context.checkpoints
    clear_keras_session()
    if task.seed is not None:
        seed_everything(task.seed)
    takes = takes_checkpoint(train)
    resumes = bool(takes) or (takes is None and settings is not None)
    restored, elapsed, note = _restored(context, task, resumes)
    plan = None if settings is None else settings.plan(task.resume.best if restored.epoch else None)
    handle = RunHandle(task.run, task.number, restored=restored, judge=context.judge, plan=plan,
                       writer=None if settings is None else settings.writer(), note=note, elapsed=elapsed,
                       seed=task.seed)
    manager.prepare_run(handle)
    manager.begin_run(task.run)
    callback = RunCallback(manager, task.run, handle=handle)
    try:
        if resumes:
            train(task.run, [callback], restored)
        else:
            train(task.run, [callback])
    except KeyboardInterrupt as exc:  # Ctrl-C, or SIGTERM during a sweep
        handle.finish(Status.INTERRUPTED, interrupt_reason(exc))
        manager.end_run()
        raise
    except LogDirWriteError:
        # Not the run's fault: record it interrupted if the journal can still take it, and stop.
        with contextlib.suppress(LogDirWriteError):
            handle.finish(Status.INTERRUPTED, "the log_dir could not be written")
            manager.end_run()
        raise
    except Exception as exc:  # noqa: BLE001 - one bad run must not kill the sweep
        handle.finish(Status.FAILED, exception_text(exc), traceback.format_exc())
        manager.end_run()
        return Status.FAILED
    except BaseException as exc:
        # sys.exit() and the like: the process is asked to stop. The run did not fail by itself,
        # so it ends interrupted (a resumed sweep runs it again), and the exit goes on.
        handle.finish(Status.INTERRUPTED, exception_text(exc), traceback.format_exc())
        manager.end_run()
        raise
    handle.discard_epoch()  # a custom loop that began an epoch and never ended it
    if handle.epochs == restored.epoch:
        warnings.warn(
            f"Run {task.number} {tuple(task.run)} recorded no epochs: train() must pass `callbacks` to "
            "model.fit(), or drive them in a custom loop.",
            RuntimeWarning,
            stacklevel=2,
        )
    handle.checkpoint(final=True)  # its last epoch, where checkpoint_every skipped it
    manager.end_run()
    return handle.status


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
        return [(task, run_task(self.context, task))]

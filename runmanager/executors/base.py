"""The executor interface: what a sweep hands an executor (:class:`Task`, :class:`SweepContext`)
and what every executor does (:class:`Executor`). The executors themselves live beside it and
are exported by :mod:`runmanager.executors`."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from runmanager.errors import InvalidArgumentError, is_int
from runmanager.events import EpochEnded, Status
from runmanager.naming import params_of

if TYPE_CHECKING:
    from runmanager.checkpoints import CheckpointSettings, ResumePoint
    from runmanager.recorder import Recorder
    from runmanager.search import Search

__all__ = ["EXECUTORS", "Executor", "SweepContext", "Task", "check_count", "check_max_retries", "check_workers"]

#: The executors ``sweep(executor=...)`` knows by name.
EXECUTORS = ("sequential", "processes", "ray", "dask")


def check_count(name: str, value: Any, minimum: int, what: str) -> int:
    """``value`` if it is an int of at least ``minimum``, else a clear error naming ``name``
    and saying ``what`` it counts.

    Examples:
        >>> check_count("workers", 0, 1, "runs at once")
        Traceback (most recent call last):
        ...
        runmanager.errors.InvalidArgumentError: workers must be an int of at least 1 (runs at once), got 0.
    """
    if not is_int(value) or value < minimum:
        raise InvalidArgumentError(f"{name} must be an int of at least {minimum} ({what}), got {value!r}.")
    return value


def check_workers(workers: Any) -> int | None:
    """``workers`` if it is None (the executor's default) or a positive int."""
    return None if workers is None else check_count("workers", workers, 1, "runs at once")


def check_max_retries(max_retries: Any) -> int:
    """``max_retries`` if it is a non-negative int."""
    return check_count("max_retries", max_retries, 0,
                       "how many times a run whose worker died or was stopped is run again; 0: never")


@dataclass(frozen=True)
class Task:
    """One run to carry out: its number in the sweep, its ``Run`` namedtuple, its seed, and the
    checkpoint it goes on from (None: from its first epoch)."""

    number: int
    run: Any
    seed: int | None = None
    resume: ResumePoint | None = None

    @property
    def params(self) -> dict[str, Any]:
        return params_of(self.run)

    def message(self) -> tuple[int, dict[str, Any], int | None, ResumePoint | None]:
        """The task as a worker gets it: the params as a dict, since a ``Run`` namedtuple class
        made at run time cannot be pickled by reference (the worker makes its own)."""
        return self.number, self.params, self.seed, self.resume


@dataclass
class SweepContext:
    """What an executor gets from the sweep it carries out.

    ``manager`` is the user's RunManager (workers get a copy of it, so its subclass hooks run
    beside the model); ``recorder`` is where the driver records every event that reaches it;
    ``judge`` is the pruner's verdict on an epoch (None: no pruning; it may raise
    :class:`~runmanager.errors.MissingMetricError`, which fails the run); ``max_retries`` is how
    many times a run whose worker died runs again; ``checkpoints`` are the sweep's checkpoint
    settings (None: off) and ``resume_point(number)`` where a retried run goes on from;
    ``compile_cache`` is the XLA compilation cache folder every worker of a sweep on Keras's JAX
    backend uses (None: another backend), so a model shape is compiled once per sweep.
    """

    manager: Any
    recorder: Recorder | None  # None in a worker: its manager's copy forwards the events
    train: Callable[..., Any]
    search: Search | None = None
    judge: Callable[[EpochEnded], bool] | None = None
    max_retries: int = 1
    checkpoints: CheckpointSettings | None = None
    resume_point: Callable[[int], ResumePoint | None] = lambda number: None
    compile_cache: str | None = None


class Executor:
    """Carries out tasks, at most :attr:`capacity` at once.

    The sweep calls :meth:`open` once, then :meth:`submit` while :meth:`running`
    is below :attr:`capacity`, and :meth:`wait` for tasks to end; on Ctrl-C or a
    stopped sweep it calls :meth:`abort`, and always :meth:`close`.

    Examples:
        class Inline(Executor):              # the whole contract, in a few lines
            def submit(self, task):
                self.done = [(task, run_task(self.context, task))]
            def running(self):
                return len(self.done)
            def wait(self):
                done, self.done = self.done, []
                return done
    """

    capacity: int = 1
    #: how many times a run whose worker died (or was stopped by SIGTERM) runs again before it is
    #: recorded ``interrupted``; executors with workers take it as an option
    max_retries: int = 0

    def open(self, context: SweepContext) -> None:
        """Get ready to carry out the runs of the sweep ``context`` describes: start workers,
        and reject what cannot work before any run starts."""
        self.context = context

    def submit(self, task: Task) -> None:
        """Start ``task``; the sweep calls it only while :meth:`running` is below :attr:`capacity`."""
        raise NotImplementedError

    def running(self) -> int:
        """How many submitted tasks have not been returned by :meth:`wait` yet."""
        raise NotImplementedError

    def wait(self) -> list[tuple[Task, Status]]:
        """Block until at least one task ended, or a short poll interval passed; return the
        tasks that ended with their status. Their events have reached the manager."""
        raise NotImplementedError

    def abort(self, reason: str) -> None:
        """Stop every running task at once and record it ``interrupted`` with ``reason``."""

    def close(self) -> None:
        """Stop workers and release what :meth:`open` took; called once, also after :meth:`abort`."""


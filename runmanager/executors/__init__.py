"""Executors: how a sweep's runs are carried out, behind one written interface.

The :class:`~runmanager.sweep.Sweep` owns the loop: it asks its search for runs,
numbers them, and hands each one to an executor as a :class:`Task` whenever the
executor has room. The executor runs it (here, in worker processes, on Ray, or
in memory for tests) and makes sure every event of the run reaches the driver's
RunManager, which alone writes files. :meth:`Executor.wait` returns the tasks
that ended, with their status; the sweep counts them and tells the search.

- ``"sequential"``: :class:`~runmanager.executors.sequential.SequentialExecutor`
- ``"processes"``: :class:`~runmanager.executors.processes.ProcessExecutor`
- ``"ray"``: :class:`~runmanager.executors.ray_actors.RayExecutor`
- in-memory workers for fast tests: :class:`~runmanager.executors.memory.InMemoryExecutor`
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from runmanager.events import EpochEnded, Status
from runmanager.naming import params_of

if TYPE_CHECKING:
    from runmanager.checkpoints import CheckpointSettings, ResumePoint
    from runmanager.recorder import Recorder
    from runmanager.search import Search

__all__ = ["EXECUTORS", "Executor", "SweepContext", "Task"]

#: The executors ``sweep(executor=...)`` knows by name.
EXECUTORS = ("sequential", "processes", "ray")


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
    settings (None: off) and ``resume_point(number)`` where a retried run goes on from.
    """

    manager: Any
    recorder: Recorder | None  # None in a worker: its manager's copy forwards the events
    train: Callable[..., Any]
    search: Search | None = None
    judge: Callable[[EpochEnded], bool] | None = None
    max_retries: int = 1
    checkpoints: CheckpointSettings | None = None
    resume_point: Callable[[int], ResumePoint | None] = lambda number: None


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


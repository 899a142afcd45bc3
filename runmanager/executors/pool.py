"""The driver side of every executor with workers: slots, events, dead workers, recycling.

A :class:`PoolExecutor` keeps one :class:`Slot` per worker place and talks to
its workers through a :class:`Pool`: local processes, Ray actors, or in-memory
stand-ins for tests. Workers import the Keras backend once and run many runs
each; every event streams back as it happens and is recorded by the driver's
RunManager. A worker that dies marks its run ``interrupted`` with the reason
and is replaced; a worker is recycled after ``max_runs_per_worker`` runs
because Keras keeps a few MiB per model built in a process.

Messages from a pool are tuples ``(kind, slot index, generation, payload)``:
``("event", i, g, event)``, ``("done", i, g, (number, status))``,
``("died", i, g, reason)`` and ``("broken", i, g, error)``, a worker that could not
start (its error or traceback): every worker would fail the same, so the sweep stops
at once with that error and the runs given out are recorded ``interrupted``. A message
from a replaced worker (older generation) is ignored. When the sweep prunes, a worker waits after every
epoch for the driver's verdict (:meth:`Pool.answer`): the decision is made in
the driver, from the epoch events of every run, before the run's next epoch.
"""

from __future__ import annotations

import contextlib
import dataclasses
import pickle
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

from runmanager.errors import (
    InvalidArgumentTypeError,
    LogDirWriteError,
    MissingMetricError,
    SweepError,
    missing_extra,
)
from runmanager.events import EpochEnded, RunStarted, Status
from runmanager.executors.base import Executor, SweepContext, Task, check_count, check_max_retries

if TYPE_CHECKING:
    from runmanager.checkpoints import CheckpointSettings, ResumePoint

__all__ = ["CANNOT_START_FIX", "Pool", "PoolExecutor", "Slot", "cannot_start", "check_picklable", "retry_note",
           "verdict", "with_checkpoint_bytes", "worker_content", "worker_payload"]


@dataclass
class Slot:
    """One worker place: its current worker (by generation) and the task it is doing."""

    index: int
    generation: int = 0
    handle: Any = None
    runs_done: int = 0
    task: Task | None = None
    started: bool = False
    #: its worker died and the pool had no room for another (a node of the cluster is gone)
    retired: bool = False


class Pool:
    """The workers of a :class:`PoolExecutor`: how to start, feed, watch and end them."""

    def start(self, slot: Slot) -> None:
        """Start a new worker for ``slot`` (``slot.generation`` grows by one)."""
        raise NotImplementedError

    def submit(self, slot: Slot, task: Task) -> None:
        """Send ``task`` to the worker of ``slot``."""
        raise NotImplementedError

    def poll(self, slots: list[Slot]) -> Iterator[tuple[str, int, int, Any]]:
        """The messages that arrived (waiting a short while for the first), then a ``died``
        message for each worker found dead."""
        raise NotImplementedError

    def answer(self, slot: Slot, verdict: bool | str) -> None:
        """Tell the worker of ``slot``, waiting after an epoch, whether its run stops there (True),
        goes on (False), or fails (a message)."""
        raise NotImplementedError

    def kill(self, slot: Slot) -> None:
        """End the worker of ``slot`` now, whatever it is doing."""
        raise NotImplementedError

    def stop(self, slot: Slot) -> None:
        """End the idle worker of ``slot`` (to recycle it)."""
        self.kill(slot)

    def can_replace(self, slot: Slot, slots: list[Slot]) -> bool:
        """Whether a new worker for ``slot``, whose worker died, has room beside the others."""
        return True

    def close(self, slots: list[Slot]) -> None:
        """End every worker and what the pool itself started."""


def check_picklable(train: Any, manager: Any) -> None:
    """Pickle what workers need, or say clearly why it cannot be sent."""
    try:
        pickle.dumps(train)
    except Exception as exc:  # noqa: BLE001 - pickling raises many types
        name = getattr(train, "__qualname__", repr(train))
        raise InvalidArgumentTypeError(
            f"train={name} cannot be sent to worker processes ({type(exc).__name__}: {exc}). "
            "Define it with def at module level (not a lambda, a closure or a method of a local "
            "class), and let it load its data itself, cached per process."
        ) from None
    try:
        pickle.dumps(manager)
    except Exception as exc:  # noqa: BLE001
        raise InvalidArgumentTypeError(
            f"{type(manager).__name__} cannot be sent to worker processes ({type(exc).__name__}: {exc}). "
            "Define the RunManager subclass at module level and keep its attributes picklable."
        ) from None


def worker_content(context: SweepContext) -> tuple[Any, ...]:
    """What every worker starts from: a copy of the manager, ``train``, the run fields, whether to
    wait for the driver's verdict after every epoch (pruning), the checkpoint settings, and the
    XLA compilation cache folder (None: not on JAX)."""
    assert context.search is not None
    return (context.manager, context.train, tuple(context.search.fields), context.judge is not None,
            context.checkpoints, context.compile_cache)


def worker_payload(context: SweepContext, *, by_value: bool, always_by_value: bool = False,
                   cloudpickle: Any = None) -> bytes:
    """:func:`worker_content` pickled. With ``by_value`` (Ray, Dask), what pickle cannot send by
    reference (a closure) is sent by value with ``cloudpickle`` (default: Ray's copy of it);
    ``always_by_value`` sends it so whatever pickle can do.
    """
    content = worker_content(context)
    try:
        if always_by_value:
            raise pickle.PicklingError("sent by value")
        return pickle.dumps(content)
    except Exception:  # noqa: BLE001 - a closure: only cloudpickle can send it
        if not by_value:
            raise
        if cloudpickle is None:
            try:
                from ray import cloudpickle
            except ImportError:
                raise missing_extra("ray", "ray", 'executor="ray"') from None
        return cloudpickle.dumps(content)


def verdict(context: SweepContext, event: EpochEnded) -> bool | str:
    """The pruner's answer for a worker waiting after ``event``: stop (True) or go on (False), or
    why the run must fail (a message)."""
    assert context.judge is not None
    try:
        return context.judge(event)
    except MissingMetricError as exc:
        return str(exc)


def with_checkpoint_bytes(resume: ResumePoint | None, settings: CheckpointSettings | None) -> ResumePoint | None:
    """``resume`` carrying its checkpoint file's bytes, for a worker that may not see the log_dir
    (a node of a cluster); None when the file is gone (the run then starts afresh)."""
    if resume is None or resume.data is not None or settings is None or not settings.log_dir:
        return resume
    try:
        return resume.with_data(Path(settings.log_dir))
    except OSError:
        return None


def retry_note(number: int, reason: str, resume: Any, retry: int, max_retries: int) -> str:
    """The line that says run ``number`` runs again (``retry`` of ``max_retries``), and from where.

    Examples:
        >>> retry_note(2, "worker process exited with code 3", None, 1, 2)
        'run 2: worker process exited with code 3; running it again (retry 1 of 2)'
    """
    where = f" from its checkpoint after epoch {resume.epoch}" if resume is not None else ""
    return f"run {number}: {reason}; running it again{where} (retry {retry} of {max_retries})"


#: What a worker that cannot start usually lacks, in the words of the executors whose workers are
#: new Python processes (a Dask cluster adds how its workers get the code).
CANNOT_START_FIX = ("Workers load train and the RunManager by module and name, as a new Python process would: "
                    "check that their module imports without error there (python -c \"import your_module\"), "
                    'or pass executor="sequential".')


def cannot_start(recorder: Any, lost: list[tuple[Task, bool]], error: str, fix: str = CANNOT_START_FIX) -> SweepError:
    """A worker could not start, so no run can: record the runs given out (``lost``: each task and
    whether its start was recorded) ``interrupted``, and return the error that stops the sweep,
    with the worker's own error text (its last line first, then all of it)."""
    lines = [line for line in error.strip().splitlines() if line.strip()]
    summary = lines[-1].strip() if lines else "no error text"
    for task, started in lost:
        with contextlib.suppress(LogDirWriteError):  # recorded where the journal can still take it
            recorder.lost(task.number, task.run, f"its worker could not start: {summary}", started=started)
    message = (f"A worker could not start, so no run of this sweep can: {summary}. {fix} The runs given to "
               "workers are recorded interrupted; resume=True runs them once this is fixed.")
    if len(lines) > 1:
        message += "\n\nThe worker's error:\n" + error.rstrip()
    return SweepError(message)


def _workers(count: int) -> str:
    return f"{count} worker{'' if count == 1 else 's'}"


class PoolExecutor(Executor):
    """Runs tasks on a pool of long-lived workers, one task per worker at a time.

    A run whose worker died (a crash, a kill, a node of the cluster gone) or was stopped by
    SIGTERM (a scheduler's preemption) is run again on the next free worker, from its last
    checkpoint where checkpoints are on, else from its start, up to ``max_retries`` times (set
    by the sweep); then it is recorded ``interrupted`` with the reason. Its new start supersedes
    the epochs of the attempt that died after that checkpoint. Where the pool has no room for a
    new worker, the sweep goes on with fewer.

    Subclasses make the pool in :meth:`make_pool`.
    """

    def __init__(self, workers: int, *, max_runs_per_worker: int = 100, max_retries: int = 1) -> None:
        self.capacity = workers
        self.max_runs_per_worker = check_count("max_runs_per_worker", max_runs_per_worker, 1,
                                               "runs before a worker is replaced, so memory stays flat")
        self.max_retries = check_max_retries(max_retries)
        self.slots: list[Slot] = []
        self.pool: Pool | None = None
        self._retries: list[Task] = []  # runs whose worker died, waiting for a free worker
        self._attempts: dict[int, int] = {}  # run number: how many times it was retried

    def make_pool(self, payload: bytes) -> Pool:
        raise NotImplementedError

    def payload(self, context: SweepContext) -> bytes:
        return worker_payload(context, by_value=False)

    def open(self, context: SweepContext) -> None:
        super().open(context)
        self.pool = self.make_pool(self.payload(context))
        self.slots = [Slot(i) for i in range(self.capacity)]
        for slot in self.slots:
            self.pool.start(slot)

    def submit(self, task: Task) -> None:
        self._place_retries()
        self._place(task)

    def _place(self, task: Task) -> bool:
        """Give ``task`` to a free worker; False when none is free."""
        assert self.pool is not None
        slot = next((slot for slot in self.slots if slot.task is None and not slot.retired), None)
        if slot is None:
            return False
        if slot.runs_done >= self.max_runs_per_worker:
            self.pool.stop(slot)
            self.pool.start(slot)
        slot.task, slot.started = task, False
        self.pool.submit(slot, self.outgoing(task))
        return True

    def outgoing(self, task: Task) -> Task:
        """``task`` as it goes to a worker (a subclass may add what the worker needs, such as the
        bytes of the checkpoint it goes on from)."""
        return task

    def _place_retries(self) -> None:
        while self._retries and self._place(self._retries[0]):
            self._retries.pop(0)

    def running(self) -> int:
        return sum(slot.task is not None for slot in self.slots) + len(self._retries)

    def wait(self) -> list[tuple[Task, Status]]:
        assert self.pool is not None
        self._place_retries()
        ended = [end for end in (self.handle(message) for message in self.pool.poll(self.slots)) if end is not None]
        self._place_retries()
        return ended

    def handle(self, message: tuple[str, int, int, Any]) -> tuple[Task, Status] | None:
        """Act on one message from a worker; return its task and status when it ended a run."""
        assert self.pool is not None
        kind, index, generation, payload = message
        slot = self.slots[index]
        if generation != slot.generation:
            return None  # from a worker that was replaced
        task = slot.task
        if kind == "event":
            if task is not None and payload.run == task.number:
                slot.started = slot.started or isinstance(payload, RunStarted)
                self.context.recorder.record(payload)
                if self.context.judge is not None and isinstance(payload, EpochEnded):
                    self.pool.answer(slot, verdict(self.context, payload))
            return None
        if kind == "broken":
            raise self._cannot_start(payload)
        recorder = self.context.recorder
        if kind == "done":
            slot.runs_done += 1
            status = Status(payload[1])
            if task is not None and self._preempted(task) and self._retry(task, slot, "its worker was stopped (SIGTERM)"):
                slot.task = None
                return None
        else:  # died
            self._replace(slot, payload)
            if task is None:
                return None
            slot.task = None
            record = recorder.run(task.number) if slot.started else None
            if record is not None and record.status != Status.RUNNING:
                status = record.status  # it died after reporting the end of its run
                if self._preempted(task) and self._retry(task, slot, "its worker was stopped (SIGTERM)"):
                    return None
            elif self._retry(task, slot, payload):
                return None
            else:
                status = Status.INTERRUPTED
                recorder.lost(task.number, task.run, payload, started=slot.started)
        if task is None:
            return None
        slot.task = None
        return task, status

    def _preempted(self, task: Task) -> bool:
        """Whether ``task``'s run ended interrupted by a SIGTERM to its worker (a scheduler's
        preemption or walltime), which a retry may finish elsewhere; a train that called
        ``sys.exit()`` is not retried."""
        record = self.context.recorder.run(task.number)
        return record is not None and record.status == Status.INTERRUPTED and record.error == "SIGTERM"

    def _retry(self, task: Task, slot: Slot, reason: str) -> bool:
        """Queue ``task`` to run again on the next free worker, from its last checkpoint where it has
        one, while it has retries left; False when it has none."""
        attempts = self._attempts.get(task.number, 0)
        if attempts >= self.context.max_retries:
            return False
        self._attempts[task.number] = attempts + 1
        resume = self.context.resume_point(task.number) if slot.started else task.resume
        self.context.recorder.note(retry_note(task.number, reason, resume, attempts + 1, self.context.max_retries))
        self._retries.append(dataclasses.replace(task, resume=resume))
        return True

    def _cannot_start(self, error: str) -> SweepError:
        """A worker could not start: record the runs given out ``interrupted`` (none of them ran),
        and the error that stops the sweep, with the worker's own error text."""
        lost = [(slot.task, slot.started) for slot in self.slots if slot.task is not None]
        recorder = self.context.recorder
        lost += [(task, recorder.run(task.number) is not None) for task in self._retries]
        self._retries.clear()
        assert self.pool is not None
        for slot in self.slots:
            slot.task = None
            if slot.handle is not None:  # the others would fail the same way, after a slow start
                self.pool.kill(slot)
        return cannot_start(recorder, lost, error)

    def _replace(self, slot: Slot, reason: str) -> None:
        """A new worker for ``slot``, whose worker died; or, where the pool has no room for one
        (a node of the cluster died with it), the sweep goes on with one worker fewer."""
        assert self.pool is not None
        if self.pool.can_replace(slot, self.slots):
            self.pool.start(slot)
            return
        slot.handle, slot.retired = None, True
        self.capacity -= 1
        self.context.recorder.note(f"a worker is gone ({reason}) and there is no room for a new one: "
                          f"the sweep goes on with {_workers(self.capacity)}")
        if self.capacity == 0:
            raise SweepError(f"Every worker of the sweep is gone, the last with: {reason}. Check the cluster "
                             "(`ray status`) and resume the sweep with resume=True.")

    def abort(self, reason: str) -> None:
        """Kill the workers that are running a task and record their runs interrupted (and the
        runs waiting to be retried)."""
        recorder = self.context.recorder
        for task in self._retries:
            with contextlib.suppress(LogDirWriteError):
                recorder.lost(task.number, task.run, reason, started=recorder.run(task.number) is not None)
        self._retries.clear()
        for slot in self.slots:
            if slot.handle is not None and slot.task is not None:
                assert self.pool is not None
                self.pool.kill(slot)
                with contextlib.suppress(LogDirWriteError):  # recorded where the journal can still take it
                    recorder.lost(slot.task.number, slot.task.run, reason, started=slot.started)
                slot.task = None

    def close(self) -> None:
        if self.pool is not None:
            self.pool.close(self.slots)
            self.pool = None

"""In-memory workers: the parallel executors' driver logic, with the processes taken out.

:class:`InMemoryExecutor` is a :class:`~runmanager.executors.pool.PoolExecutor`
whose workers are copies of the manager made by pickling, as a worker process
gets them, running in this process. A task runs to its end when it is
submitted; its events are held back and reach the driver when the sweep waits,
in the order ``order`` picks, so tests of planning, resume, the failure limit
and scheduling see what they would see with real workers, in milliseconds. A
run listed in ``die_after_first_epoch`` loses its worker after its first epoch.
When the sweep prunes, a run's events reach the driver as each epoch ends, as
they must for the driver to decide before the next epoch.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator, Sequence
from typing import Any

from runmanager.events import EpochEnded
from runmanager.executors.base import Task
from runmanager.executors.pool import Pool, PoolExecutor, Slot

__all__ = ["InMemoryExecutor", "MemoryPool"]


class MemoryPool(Pool):
    """Workers that run in this process and hold their messages until polled."""

    def __init__(self, payload: bytes, order: str | Callable[[Sequence[Task]], int],
                 die_after_first_epoch: frozenset[int], handler: Callable[[tuple[str, int, int, Any]], Any]) -> None:
        self._payload = payload
        self._handler = handler  # the executor's: a pruning verdict needs the driver to see the epoch now
        self._verdicts: dict[int, bool | str] = {}
        self._order = order
        self._die = die_after_first_epoch
        self._outboxes: dict[int, list[tuple[str, int, int, Any]]] = {}
        self._submitted: list[int] = []  # slot indices in the order their tasks were submitted
        self.started = 0

    def start(self, slot: Slot) -> None:
        from runmanager.worker import WorkerSetup

        slot.generation += 1
        slot.runs_done = 0
        self.started += 1
        outbox: list[tuple[str, int, int, Any]] = []
        index, generation = slot.index, slot.generation

        def receive() -> bool | str:
            # A worker waiting for a verdict: the driver takes this worker's events so far, then answers.
            for message in outbox:
                self._handler(message)
            outbox.clear()
            return self._verdicts.pop(index)

        slot.handle = (WorkerSetup(self._payload, lambda event: outbox.append(("event", index, generation, event)),
                                   receive), outbox)

    def submit(self, slot: Slot, task: Task) -> None:
        setup, outbox = slot.handle
        outbox.clear()
        status = setup.run(*task.message())
        if task.number in self._die:
            first = next((i for i, m in enumerate(outbox) if isinstance(m[3], EpochEnded)), len(outbox) - 1)
            del outbox[first + 1:]
            outbox.append(("died", slot.index, slot.generation, "worker died (in-memory test)"))
        else:
            outbox.append(("done", slot.index, slot.generation, (task.number, status.value)))
        self._outboxes[slot.index] = list(outbox)
        self._submitted.append(slot.index)

    def poll(self, slots: list[Slot]) -> Iterator[tuple[str, int, int, Any]]:
        if not self._submitted:
            return
        if callable(self._order):
            position = self._order([slots[i].task for i in self._submitted])  # type: ignore[misc]
        else:
            position = 0 if self._order == "fifo" else len(self._submitted) - 1
        index = self._submitted.pop(position)
        yield from self._outboxes.pop(index)

    def answer(self, slot: Slot, verdict: bool | str) -> None:
        self._verdicts[slot.index] = verdict

    def kill(self, slot: Slot) -> None:
        self._outboxes.pop(slot.index, None)
        if slot.index in self._submitted:
            self._submitted.remove(slot.index)

    stop = kill


class InMemoryExecutor(PoolExecutor):
    """``workers`` in-memory workers; see the module docstring.

    Args:
        workers: how many tasks are in flight at once.
        order: which in-flight task ends first: ``"fifo"``, ``"lifo"``, or a function
            from the list of in-flight tasks (oldest first) to the position of the one.
        die_after_first_epoch: run numbers whose worker dies after their first epoch.
        max_runs_per_worker: recycle a worker after this many runs.
        max_retries: run a run whose worker died again this many times.

    Examples:
        m.sweep(train, grid, executor=InMemoryExecutor(workers=3, order="lifo"))
    """

    def __init__(self, workers: int = 2, *, order: str | Callable[[Sequence[Task]], int] = "fifo",
                 die_after_first_epoch: Sequence[int] = (), max_runs_per_worker: int = 100,
                 max_retries: int = 1) -> None:
        super().__init__(workers, max_runs_per_worker=max_runs_per_worker, max_retries=max_retries)
        self.order = order
        self.die_after_first_epoch = frozenset(die_after_first_epoch)
        self._memory_pool: MemoryPool | None = None

    def make_pool(self, payload: bytes) -> Pool:
        self._memory_pool = MemoryPool(payload, self.order, self.die_after_first_epoch, self.handle)
        return self._memory_pool

    @property
    def workers_started(self) -> int:
        """How many workers were started (recycling starts new ones)."""
        return self._memory_pool.started

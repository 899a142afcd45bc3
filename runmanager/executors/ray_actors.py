"""Long-lived actors on a Ray cluster, each importing the Keras backend once and running many runs."""

from __future__ import annotations

import os
import queue as queue_module
import re
import sys
from collections.abc import Callable, Iterator
from typing import TYPE_CHECKING, Any

from runmanager.errors import missing_extra
from runmanager.executors import Task
from runmanager.executors.pool import Pool, PoolExecutor, Slot, worker_payload
from runmanager.executors.processes import POLL_SECONDS

if TYPE_CHECKING:
    from runmanager.search import Search

__all__ = ["RayExecutor", "RayPool"]


def _main_script() -> str | None:
    """The driver's script, when ``train`` may live in it (``python sweep.py``); else None."""
    path = getattr(sys.modules.get("__main__"), "__file__", None)
    return os.path.abspath(path) if path and path.endswith(".py") and os.path.exists(path) else None


def _root_cause(error: BaseException) -> str:
    """The line of a Ray error that says what went wrong (``ModuleNotFoundError: ...``)."""
    lines = [line.strip() for line in str(error).splitlines() if line.strip()]
    causes = [line for line in lines if re.match(r"^[A-Za-z_.]*(Error|Exception|Exit)\b.*:", line)]
    return (causes[-1] if causes else lines[0] if lines else type(error).__name__)[:300]


class RayPool(Pool):
    """Ray actors reporting through one Ray queue; a local Ray is started if none is running."""

    def __init__(self, payload: bytes, workers: int, *, address: str | None, num_cpus: float,
                 num_gpus: float, main_path: str | None) -> None:
        try:
            import ray
            from ray.util.queue import Queue
        except ImportError:
            raise missing_extra("ray", "ray", 'executor="ray"') from None
        self._ray = ray
        self._owns_ray = False
        if not ray.is_initialized():
            os.environ.setdefault("RAY_USAGE_STATS_ENABLED", "0")
            if address:
                ray.init(address=address, include_dashboard=False, log_to_driver=True)
            else:
                ray.init(num_cpus=max(1, int(workers * num_cpus + 0.999)), include_dashboard=False)
            self._owns_ray = True
        from runmanager.worker import RunActor

        self._queue = Queue()
        self._actor = ray.remote(num_cpus=num_cpus, num_gpus=num_gpus, max_restarts=0)(RunActor)
        self._payload = payload
        self._main_path = main_path
        self._threads = max(1, int(num_cpus))
        self._refs: dict[int, Any] = {}

    def start(self, slot: Slot) -> None:
        slot.generation += 1
        # Actors import train's module as the driver does: they get the driver's sys.path
        # (a runtime_env would do it too, at about 1.5 s more per actor start).
        slot.handle = self._actor.remote(slot.index, slot.generation, self._payload, self._queue, self._threads,
                                         self._main_path, [p for p in sys.path if p])
        slot.runs_done = 0
        self._refs.pop(slot.index, None)

    def submit(self, slot: Slot, task: Task) -> None:
        self._refs[slot.index] = slot.handle.run.remote(task.number, task.params, task.seed)

    def kill(self, slot: Slot) -> None:
        self._ray.kill(slot.handle)
        self._refs.pop(slot.index, None)

    def poll(self, slots: list[Slot]) -> Iterator[tuple[str, int, int, Any]]:
        try:
            yield self._queue.get(block=True, timeout=POLL_SECONDS)
        except queue_module.Empty:
            pass
        yield from self._drain()
        refs = {ref: index for index, ref in self._refs.items()}
        if not refs:
            return
        ready, _ = self._ray.wait(list(refs), num_returns=len(refs), timeout=0)
        for ref in ready:
            index = refs[ref]
            try:
                self._ray.get(ref)
            except self._ray.exceptions.RayActorError as exc:
                yield from self._drain()
                slot = slots[index]
                yield ("died", index, slot.generation, f"Ray actor died: {_root_cause(exc)}")
            self._refs.pop(index, None)

    def _drain(self) -> Iterator[tuple[str, int, int, Any]]:
        size = self._queue.qsize()
        if size:
            yield from self._queue.get_nowait_batch(size)

    def close(self, slots: list[Slot]) -> None:
        for slot in slots:
            if slot.handle is not None:
                self._ray.kill(slot.handle)
        self._ray.kill(self._queue.actor)
        if self._owns_ray:
            self._ray.shutdown()


class RayExecutor(PoolExecutor):
    """``executor="ray"``: ``workers`` long-lived actors on the Ray cluster at ``address``, or
    on a local Ray started for the sweep; ``num_cpus``/``num_gpus`` per actor.

    Example:
        m.sweep(train, grid, executor="ray", workers=2)
    """

    def __init__(self, workers: int | None, *, max_runs_per_worker: int, address: str | None,
                 num_cpus: float, num_gpus: float) -> None:
        count = workers or max(1, int((os.cpu_count() or 1) // max(num_cpus, 1)))
        super().__init__(count, max_runs_per_worker=max_runs_per_worker)
        self.address, self.num_cpus, self.num_gpus = address, num_cpus, num_gpus

    def payload(self, manager: Any, train: Callable[..., Any], search: Search) -> bytes:
        return worker_payload(manager, train, tuple(search.fields), by_value=True)

    def make_pool(self, payload: bytes) -> Pool:
        return RayPool(payload, self.capacity, address=self.address, num_cpus=self.num_cpus,
                       num_gpus=self.num_gpus, main_path=_main_script())

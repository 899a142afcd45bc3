"""Running sweeps in parallel: local worker processes, or long-lived actors on Ray.

Both executors share one driver loop. Workers import the Keras backend once
and run many runs each; every event (a run starts, an epoch ends, a run ends)
streams back to the driver, which alone writes the journal, the exports and
TensorBoard and prints the table, so workers need no shared file system. A
worker that dies marks its run ``interrupted`` with the reason, is replaced,
and the sweep goes on; a worker is recycled after ``max_runs_per_worker`` runs
because Keras keeps a few MiB per model built in a process.
"""

from __future__ import annotations

import os
import pickle
import queue as queue_module
import re
import shutil
import subprocess
import sys
import time
from collections.abc import Iterator
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from runmanager.errors import InvalidArgumentError, InvalidArgumentTypeError, missing_extra
from runmanager.naming import jsonable, params_of, run_id
from runmanager.sweep import Tally

if TYPE_CHECKING:
    from runmanager.tracking import RunManager

__all__ = ["ProcessPool", "RayPool", "run_parallel", "visible_gpus"]

# How often the driver looks at its workers when no event arrives.
_POLL_SECONDS = 0.2


def visible_gpus() -> list[str]:
    """The ids of the NVIDIA GPUs this process may use, without importing TensorFlow.

    ``CUDA_VISIBLE_DEVICES`` wins when set; otherwise ``nvidia-smi -L`` is asked.

    Example:
        >>> isinstance(visible_gpus(), list)
        True
    """
    listed = os.environ.get("CUDA_VISIBLE_DEVICES")
    if listed is not None:
        return [g.strip() for g in listed.split(",") if g.strip() and g.strip() != "-1"]
    if shutil.which("nvidia-smi") is None:
        return []
    try:
        out = subprocess.run(["nvidia-smi", "-L"], capture_output=True, text=True, timeout=10).stdout
    except (OSError, subprocess.SubprocessError):
        return []
    return [str(i) for i, line in enumerate(line for line in out.splitlines() if line.startswith("GPU "))]


def check_picklable(train: Any, manager: RunManager) -> None:
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


@dataclass
class Slot:
    """One worker place: its current worker (by generation) and the run it is doing."""

    index: int
    generation: int = 0
    handle: Any = None
    runs_done: int = 0
    number: int | None = None
    run: Any = None
    started: bool = False


class ProcessPool:
    """Local ``spawn`` worker processes (TensorFlow is not fork-safe)."""

    def __init__(self, payload: bytes, workers: int, gpus: list[str] | None) -> None:
        import multiprocessing

        self._context = multiprocessing.get_context("spawn")
        self._events = self._context.Queue()
        self._payload = payload
        self._threads = max(1, (os.cpu_count() or 1) // workers)
        self._gpus = gpus

    def start(self, slot: Slot) -> None:
        slot.generation += 1
        gpu = None if self._gpus is None else (self._gpus[slot.index % len(self._gpus)] if self._gpus else "")
        tasks = self._context.Queue()
        process = self._context.Process(
            target=_process_main,
            args=(slot.index, slot.generation, tasks, self._events, self._payload, self._threads, gpu),
            name=f"runmanager-worker-{slot.index}",
            daemon=True,
        )
        process.start()
        slot.handle = (process, tasks)
        slot.runs_done = 0

    def submit(self, slot: Slot, number: int, params: dict[str, Any]) -> None:
        slot.handle[1].put((number, params))

    def stop(self, slot: Slot) -> None:
        self.close([slot])

    def kill(self, slot: Slot) -> None:
        process, _ = slot.handle
        process.kill()
        process.join()

    def poll(self, slots: list[Slot]) -> Iterator[tuple]:
        try:
            yield self._events.get(timeout=_POLL_SECONDS)
        except queue_module.Empty:
            pass
        yield from self._drain()
        for slot in slots:
            process = slot.handle[0]
            if process.exitcode is not None:
                yield from self._drain()  # what the worker sent before it died comes first
                yield ("died", slot.index, slot.generation, f"worker process exited with code {process.exitcode}")

    def _drain(self) -> Iterator[tuple]:
        while True:
            try:
                yield self._events.get_nowait()
            except queue_module.Empty:
                return

    def close(self, slots: list[Slot]) -> None:
        """Ask the workers of ``slots`` to finish, then wait; one that does not exit is killed."""
        running = [slot.handle for slot in slots if slot.handle is not None and slot.handle[0].is_alive()]
        for _, tasks in running:  # all at once: each worker takes about a second to exit
            tasks.put(None)
        for process, _ in running:
            process.join(timeout=30)
            if process.is_alive():
                process.kill()
                process.join()


def _process_main(*args: Any) -> None:
    from runmanager.worker import process_main

    process_main(*args)


def _main_script() -> str | None:
    """The driver's script, when ``train`` may live in it (``python sweep.py``); else None."""
    path = getattr(sys.modules.get("__main__"), "__file__", None)
    return os.path.abspath(path) if path and path.endswith(".py") and os.path.exists(path) else None


def _root_cause(error: BaseException) -> str:
    """The line of a Ray error that says what went wrong (``ModuleNotFoundError: ...``)."""
    lines = [line.strip() for line in str(error).splitlines() if line.strip()]
    causes = [line for line in lines if re.match(r"^[A-Za-z_.]*(Error|Exception|Exit)\b.*:", line)]
    return (causes[-1] if causes else lines[0] if lines else type(error).__name__)[:300]


class RayPool:
    """Long-lived Ray actors, each importing the Keras backend once and running many runs."""

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

    def submit(self, slot: Slot, number: int, params: dict[str, Any]) -> None:
        self._refs[slot.index] = slot.handle.run.remote(number, params)

    def stop(self, slot: Slot) -> None:
        self._ray.kill(slot.handle)
        self._refs.pop(slot.index, None)

    kill = stop

    def poll(self, slots: list[Slot]) -> Iterator[tuple]:
        try:
            yield self._queue.get(block=True, timeout=_POLL_SECONDS)
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

    def _drain(self) -> Iterator[tuple]:
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


def _record_lost_run(manager: RunManager, slot: Slot, status: str, error: str) -> None:
    """End a run whose worker can no longer report: record it with ``status`` and ``error``."""
    params = params_of(slot.run)
    number = slot.number
    rid = run_id(params)
    if not slot.started:
        manager._record({"type": "run_start", "run": number, "run_id": rid, "params": jsonable(params),
                         "time": time.time()})
    record = manager._results.runs[number]
    manager._record({
        "type": "run_end", "run": number, "run_id": rid, "status": status, "epochs": len(record.epochs),
        "run_duration": record.run_duration or 0.0, "error": error, "traceback": None,
    })


def run_parallel(
    manager: RunManager,
    train: Any,
    plan: Iterator[tuple[int, Any]],
    fields: tuple[str, ...],
    *,
    executor: str,
    workers: int | None,
    seed: int | None,
    max_consecutive_failures: int,
    max_runs_per_worker: int,
    gpus: list[str] | None,
    ray_address: str | None,
    num_cpus: float,
    num_gpus: float,
) -> dict[str, int]:
    """Run the planned runs on worker processes or Ray actors; return counts by status."""
    if executor == "processes":
        check_picklable(train, manager)
        gpus = (visible_gpus() or None) if gpus is None else [str(g) for g in gpus]
        count = workers or (len(gpus) if gpus else os.cpu_count() or 1)
    else:
        count = workers or max(1, int((os.cpu_count() or 1) // max(num_cpus, 1)))
    try:
        payload = pickle.dumps((manager, train, fields, seed))
    except Exception:  # noqa: BLE001 - only Ray gets here (processes checked above): a closure
        try:
            from ray import cloudpickle
        except ImportError:
            raise missing_extra("ray", "ray", 'executor="ray"') from None
        payload = cloudpickle.dumps((manager, train, fields, seed))
    pool: Any = (ProcessPool(payload, count, gpus) if executor == "processes"
                 else RayPool(payload, count, address=ray_address, num_cpus=num_cpus, num_gpus=num_gpus,
                              main_path=_main_script()))
    slots = [Slot(i) for i in range(count)]
    tally = Tally(manager, max_consecutive_failures)
    exhausted = False
    try:
        for slot in slots:
            pool.start(slot)
        while True:
            for slot in slots:
                if slot.number is not None or exhausted:
                    continue
                task = next(plan, None)
                if task is None:
                    exhausted = True
                    break
                if slot.runs_done >= max_runs_per_worker:
                    pool.stop(slot)
                    pool.start(slot)
                slot.number, slot.run = task
                slot.started = False
                pool.submit(slot, slot.number, params_of(slot.run))
            if exhausted and all(slot.number is None for slot in slots):
                break
            for kind, index, generation, payload_ in pool.poll(slots):
                slot = slots[index]
                if generation != slot.generation:
                    continue  # from a worker that was replaced
                if kind == "event":
                    if payload_["run"] != slot.number:
                        continue
                    slot.started = slot.started or payload_["type"] == "run_start"
                    manager._record(payload_)
                    continue
                if kind == "done":
                    status = payload_[1]
                    slot.runs_done += 1
                else:  # died
                    if slot.number is None:
                        pool.start(slot)
                        continue
                    record = manager._results.runs.get(slot.number) if slot.started else None
                    if record is not None and record.status != "running":
                        status = record.status  # it died after reporting the end of its run
                    else:
                        status = "interrupted"
                        _record_lost_run(manager, slot, status, payload_)
                    pool.start(slot)
                number = slot.number
                slot.number = slot.run = None
                tally.add(number, status)
    except BaseException as exc:
        # Ctrl-C, a stopped sweep, or a driver error: stop the workers, record their runs.
        reason = "KeyboardInterrupt" if isinstance(exc, KeyboardInterrupt) else f"sweep stopped: {type(exc).__name__}"
        for slot in slots:
            if slot.handle is not None and slot.number is not None:
                pool.kill(slot)
                _record_lost_run(manager, slot, "interrupted", reason)
                slot.number = None
        raise
    finally:
        pool.close(slots)
    return tally.counts


def check_parallel_arguments(max_runs_per_worker: Any, gpus: Any, num_cpus: Any, num_gpus: Any) -> None:
    """Reject bad options of the parallel executors before any worker starts."""
    if not isinstance(max_runs_per_worker, int) or isinstance(max_runs_per_worker, bool) or max_runs_per_worker < 1:
        raise InvalidArgumentError(f"max_runs_per_worker must be a positive int, got {max_runs_per_worker!r}.")
    if gpus is not None and not (isinstance(gpus, (list, tuple)) and all(isinstance(g, (int, str)) for g in gpus)):
        raise InvalidArgumentTypeError(
            f"gpus must be None (use every visible GPU) or a list of GPU ids such as [0, 1], got {gpus!r}."
        )
    for name, value in (("num_cpus", num_cpus), ("num_gpus", num_gpus)):
        if not isinstance(value, (int, float)) or isinstance(value, bool) or value < 0:
            raise InvalidArgumentError(f"{name} must be a non-negative number, got {value!r}.")

"""Local ``spawn`` worker processes (TensorFlow is not fork-safe), one run at a time each."""

from __future__ import annotations

import os
import pickle
import pickletools
import shutil
import subprocess
import sys
from collections.abc import Iterator
from typing import Any

from runmanager.compile_cache import driver_holds_gpu
from runmanager.errors import InvalidArgumentTypeError
from runmanager.executors.base import SweepContext, Task, check_workers
from runmanager.executors.pool import Pool, PoolExecutor, Slot, check_picklable

__all__ = ["ProcessExecutor", "ProcessPool", "check_spawnable", "main_is_importable", "visible_gpus"]

# How often the driver looks at its workers when no event arrives.
POLL_SECONDS = 0.2
_MAIN = ("__main__", "__mp_main__")
_INTERACTIVE = ("this interactive session (a notebook, IPython, `python -c` or standard input: its __main__ "
                "has no file)")
_FIX = ("Move it into a .py file (beside the notebook) and import it from there, or pass "
        'executor="sequential" (runs in this process) or executor="ray" (sends notebook code by value).')


def main_is_importable() -> bool:
    """Whether a ``spawn`` worker imports this process's ``__main__`` again, as multiprocessing
    does for a script (``python sweep.py``) or a module (``python -m pkg.sweep``), so that what
    it defines is found by name; not so in a notebook, IPython, ``python -c`` or standard input.

    Examples:
        >>> isinstance(main_is_importable(), bool)
        True
    """
    main = sys.modules.get("__main__")
    if getattr(getattr(main, "__spec__", None), "name", None):
        return True
    path = getattr(main, "__file__", None)
    # multiprocessing itself skips a main named ipython (IPython's own launcher script).
    return bool(path) and os.path.isfile(path) and os.path.splitext(os.path.basename(path))[0] != "ipython"


def _main_names(content: Any) -> list[str]:
    """The objects of ``__main__`` that unpickling ``content`` would look up by name."""
    names: list[str] = []
    try:
        data = pickle.dumps(content, protocol=2)  # protocol 2 names each global in one GLOBAL opcode
    except Exception:  # noqa: BLE001 - what protocol 2 cannot write, the check above let through
        return names
    for opcode, arg, _ in pickletools.genops(data):
        if opcode.name == "GLOBAL":
            module, name = str(arg).split(" ", 1)
            if module in _MAIN and name not in names:
                names.append(name)
    return names


def check_spawnable(train: Any, manager: Any) -> None:
    """Refuse, before any worker starts, a ``train`` or a RunManager subclass that a ``spawn``
    worker could not load: one that pickle cannot send, or one defined in an interactive
    ``__main__`` (a notebook cell), which workers cannot import by name.

    Raises:
        InvalidArgumentTypeError: what cannot be sent, and how to fix it.

    Examples:
        >>> import os.path
        >>> check_spawnable(os.path.join, None)
    """
    name = getattr(train, "__qualname__", None) or repr(train)
    interactive = not main_is_importable()
    if interactive and getattr(train, "__module__", None) in _MAIN:
        raise InvalidArgumentTypeError(
            f"train={name!r} is defined in {_INTERACTIVE}, and worker processes cannot import it: they "
            f"find train by its module and name. {_FIX}"
        )
    if interactive and type(manager).__module__ in _MAIN:
        raise InvalidArgumentTypeError(
            f"The RunManager subclass {type(manager).__qualname__!r} is defined in {_INTERACTIVE}, and worker "
            f"processes cannot import it: they find it by its module and name. {_FIX}"
        )
    check_picklable(train, manager)
    names = _main_names((manager, train)) if interactive else []
    if names:
        raise InvalidArgumentTypeError(
            f"train={name!r} or the RunManager uses {', '.join(map(repr, names))}, defined in {_INTERACTIVE}; "
            f"worker processes cannot import {'it' if len(names) == 1 else 'them'}. {_FIX}"
        )


def visible_gpus() -> list[str]:
    """The ids of the NVIDIA GPUs this process may use, without importing TensorFlow.

    ``CUDA_VISIBLE_DEVICES`` wins when set; otherwise ``nvidia-smi -L`` is asked.

    Examples:
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


class ProcessPool(Pool):
    """Worker processes started with ``spawn``, fed through a task queue each, each reporting
    through a pipe of its own.

    A pipe per worker, not one queue shared by all: a worker that dies while writing (killed
    by the kernel for memory, ``os._exit``) can leave a shared queue's write lock held forever,
    and every other worker would then block on its next message. A dead worker's pipe only
    ends, or holds half a message, which the driver reads as its death.
    """

    def __init__(self, payload: bytes, workers: int, gpus: list[str] | None, *,
                 compile_cache: str | None = None) -> None:
        import multiprocessing

        self._context = multiprocessing.get_context("spawn")
        self._payload = payload
        self._threads = max(1, (os.cpu_count() or 1) // workers)
        self._gpus = gpus
        # More workers than GPUs, or a driver that holds a GPU through JAX already: each GPU is
        # shared, so no worker may take all its memory.
        self._share_gpu = (bool(gpus) and workers > len(gpus)) or (gpus != [] and driver_holds_gpu())
        self._compile_cache = compile_cache
        self._ready: set[tuple[int, int]] = set()  # (slot, generation) of the workers that started

    def start(self, slot: Slot) -> None:
        slot.generation += 1
        gpu = None if self._gpus is None else (self._gpus[slot.index % len(self._gpus)] if self._gpus else "")
        tasks = self._context.Queue()
        receiver, sender = self._context.Pipe(duplex=False)
        process = self._context.Process(
            target=_process_main,
            args=(slot.index, slot.generation, tasks, sender, self._payload, self._threads, gpu, self._share_gpu,
                  self._compile_cache),
            name=f"runmanager-worker-{slot.index}",
            daemon=True,
        )
        process.start()
        sender.close()  # the worker holds the only writing end: its death ends the pipe
        if slot.handle is not None:  # the worker this one replaces: dead, or its pipe broke
            old, _, old_receiver = slot.handle
            if old.is_alive():
                old.kill()
                old.join()
            old_receiver.close()
        slot.handle = (process, tasks, receiver)
        slot.runs_done = 0

    def submit(self, slot: Slot, task: Task) -> None:
        slot.handle[1].put(task.message())

    def answer(self, slot: Slot, verdict: bool | str) -> None:
        slot.handle[1].put(("verdict", verdict))

    def stop(self, slot: Slot) -> None:
        self.close([slot])

    def kill(self, slot: Slot) -> None:
        process = slot.handle[0]
        process.kill()
        process.join()

    def poll(self, slots: list[Slot]) -> Iterator[tuple[str, int, int, Any]]:
        from multiprocessing.connection import wait

        by_receiver = {slot.handle[2]: slot for slot in slots if slot.handle is not None}
        broken: set[int] = set()
        for receiver in wait(list(by_receiver), timeout=POLL_SECONDS):
            yield from self._read(receiver, by_receiver[receiver], broken)
        for slot in slots:
            if slot.handle is None:  # a retired slot
                continue
            process = slot.handle[0]
            if process.exitcode is not None or slot.index in broken:
                yield from self._read(slot.handle[2], slot, broken)  # what it sent before it died comes first
                process.join(timeout=5)
                code = process.exitcode
                if code is not None and code > 0 and (slot.index, slot.generation) not in self._ready:
                    # An error before process_main could report it: the driver's script failed as
                    # the worker imported it again. It would fail the same in every new worker.
                    yield ("broken", slot.index, slot.generation,
                           f"worker process exited with code {code} while starting, before it could take a "
                           "run; its traceback is on the standard error of this process above. A script that calls sweep() needs the "
                           "`if __name__ == \"__main__\":` guard, as each worker imports it again")
                    continue
                yield ("died", slot.index, slot.generation,
                       f"worker process exited with code {code}" if code is not None
                       else "worker process stopped answering")

    def _read(self, receiver: Any, slot: Slot, broken: set[int]) -> Iterator[tuple[str, int, int, Any]]:
        """Every message waiting in ``receiver``; a pipe that ended or broke marks ``slot`` broken."""
        if slot.index in broken:
            return
        try:
            while receiver.poll():
                message = receiver.recv()
                if message[0] == "ready":
                    self._ready.add((message[1], message[2]))
                else:
                    yield message
        except (EOFError, OSError, pickle.UnpicklingError, ValueError, TypeError, AttributeError):
            broken.add(slot.index)

    def close(self, slots: list[Slot]) -> None:
        """Ask the workers of ``slots`` to finish, then wait; one that does not exit is killed."""
        running = [slot.handle for slot in slots if slot.handle is not None and slot.handle[0].is_alive()]
        for _, tasks, _ in running:  # all at once: each worker takes about a second to exit
            tasks.put(None)
        for process, _, _ in running:
            process.join(timeout=30)
            if process.is_alive():
                process.kill()
                process.join()


def _process_main(*args: Any) -> None:
    from runmanager.worker import process_main

    process_main(*args)


class ProcessExecutor(PoolExecutor):
    """Runs on ``workers`` local worker processes (``spawn``), each importing the Keras backend
    once and running many runs; ``executor="processes"`` is its shorthand.

    Args:
        workers: runs at once; default: one per visible GPU, else one per CPU core.
        gpus: GPU ids, one per worker in turn, each worker seeing only its own
            (``CUDA_VISIBLE_DEVICES``, set before the backend loads); default: every visible
            GPU; ``[]`` hides them. More workers than GPUs share them, growing their memory.
        max_runs_per_worker: replace a worker after this many runs, so memory stays flat.
        max_retries: run a run whose worker died (a crash, a kill, out of memory) or was
            stopped by SIGTERM again, from its last checkpoint where it has one, up to this
            many times; then it is recorded ``interrupted``.

    Raises:
        InvalidArgumentError: an option out of its range (the message says which).

    Examples:
        m.sweep(train, grid, executor=ProcessExecutor(workers=4, gpus=[0, 1]))
    """

    def __init__(self, workers: int | None = None, *, gpus: list[Any] | None = None, max_runs_per_worker: int = 100,
                 max_retries: int = 1) -> None:
        workers = check_workers(workers)
        if gpus is not None and not (isinstance(gpus, (list, tuple)) and all(isinstance(g, (int, str)) for g in gpus)):
            raise InvalidArgumentTypeError(
                f"gpus must be None (use every visible GPU) or a list of GPU ids such as [0, 1], got {gpus!r}."
            )
        self.gpus = (visible_gpus() or None) if gpus is None else [str(g) for g in gpus]
        count = workers or (len(self.gpus) if self.gpus else os.cpu_count() or 1)
        super().__init__(count, max_runs_per_worker=max_runs_per_worker, max_retries=max_retries)

    def payload(self, context: SweepContext) -> bytes:
        check_spawnable(context.train, context.manager)
        return super().payload(context)

    def make_pool(self, payload: bytes) -> Pool:
        return ProcessPool(payload, self.capacity, self.gpus, compile_cache=self.context.compile_cache)

"""What runs inside a worker: a local process or a Ray actor.

A worker imports the Keras backend once and runs many runs. It holds a copy of
the user's RunManager (its subclass, so ``extra_columns`` runs beside the
model) whose events go to the driver instead of to files: the driver alone
writes the journal, the exports and TensorBoard, and prints the table.
"""

from __future__ import annotations

import collections
import os
import pickle
import signal
import traceback
from collections.abc import Callable, Mapping
from typing import TYPE_CHECKING, Any

from runmanager.backend import import_keras
from runmanager.compile_cache import use_compile_cache
from runmanager.errors import MissingMetricError
from runmanager.events import EpochEnded, Event, Status
from runmanager.executors.base import SweepContext, Task
from runmanager.signals import Terminated, install_in_worker

if TYPE_CHECKING:
    from runmanager.checkpoints import ResumePoint

__all__ = ["RunActor", "WorkerSetup", "adopt_main", "configure_environment", "process_main"]


def configure_environment(threads: int | None, gpu: str | None, share_gpu: bool = False,
                          compile_cache: str | None = None) -> None:
    """Thread counts, GPU visibility and JAX's compilation cache for this process; must run
    before the Keras backend is imported.

    Args:
        threads: intra-op threads, so that N workers do not oversubscribe the cores.
        gpu: the GPU ids this worker may see (``"0"``, ``""`` for none); ``None`` leaves them as they are.
        share_gpu: other workers (or the driver) use the same GPU: TensorFlow grows its GPU memory
            as needed (``TF_FORCE_GPU_ALLOW_GROWTH``) and JAX does not preallocate it
            (``XLA_PYTHON_CLIENT_PREALLOCATE``), instead of each taking the whole GPU. A value
            the user set is kept.
        compile_cache: the sweep's XLA compilation cache folder (JAX backend), shared by its
            workers; None: none.

    Examples:
        configure_environment(threads=1, gpu="0", share_gpu=True)
    """
    if compile_cache is not None:
        use_compile_cache(compile_cache)
    if share_gpu:
        os.environ.setdefault("TF_FORCE_GPU_ALLOW_GROWTH", "true")
        os.environ.setdefault("XLA_PYTHON_CLIENT_PREALLOCATE", "false")
    if threads is not None:
        for name in ("TF_NUM_INTRAOP_THREADS", "OMP_NUM_THREADS"):
            os.environ[name] = str(threads)
        os.environ["TF_NUM_INTEROP_THREADS"] = "1" if threads == 1 else "2"
    if gpu is not None:
        os.environ["CUDA_VISIBLE_DEVICES"] = gpu


class WorkerSetup:
    """The pickled manager, train function and run fields, restored in a worker.

    The manager copy keeps only the run it is doing, and sends its events through
    ``send`` (a :class:`~runmanager.sinks.forward.ForwardSink`) instead of writing files.
    """

    def __init__(self, payload: bytes, send: Callable[[Event], None],
                 receive: Callable[[], bool | str] | None = None) -> None:
        from runmanager.sinks.forward import ForwardSink

        manager, train, fields, pruning, checkpoints, compile_cache = pickle.loads(payload)
        if compile_cache is not None:  # a Ray actor or a Dask worker may have imported JAX already
            use_compile_cache(compile_cache)
        manager.add_sink(ForwardSink(send))
        self.run_type = collections.namedtuple("Run", fields)  # type: ignore[misc]
        self.receive = receive if pruning else None
        self.context = SweepContext(manager, None, train, judge=self.judge if pruning else None,
                                    checkpoints=checkpoints, compile_cache=compile_cache)

    @property
    def manager(self) -> Any:
        return self.context.manager

    def judge(self, event: EpochEnded) -> bool:
        """Wait for the driver's verdict on the epoch just sent: stop, go on, or fail."""
        assert self.receive is not None
        verdict = self.receive()
        if isinstance(verdict, str):
            raise MissingMetricError(verdict)
        return bool(verdict)

    def run(self, number: int, params: Mapping[str, Any], seed: int | None, resume: ResumePoint | None = None) -> Status:
        from runmanager.executors.sequential import run_task

        return run_task(self.context, Task(number, self.run_type(**params), seed, resume))


def process_main(slot: int, generation: int, tasks: Any, events: Any, payload: bytes,
                 threads: int | None, gpu: str | None, share_gpu: bool = False,
                 compile_cache: str | None = None) -> None:
    """The loop of a local worker process: take (number, params) tasks until ``None``; report
    through ``events``, the sending end of this worker's own pipe to the driver.

    It says ``ready`` once it has loaded the payload, or, if it cannot start (the module of
    ``train`` fails to import here), sends ``broken`` with the traceback and exits."""
    # Ctrl-C reaches the whole process group; the driver alone decides what stops. SIGTERM
    # (a scheduler ending the job) ends the run in progress `interrupted`, then the worker.
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    install_in_worker()
    try:
        configure_environment(threads, gpu, share_gpu, compile_cache)
        import_keras()
        setup = WorkerSetup(payload, lambda event: events.send(("event", slot, generation, event)),
                            lambda: tasks.get()[1])  # the driver's verdicts come on the task queue
    except Terminated:
        return
    except Exception:  # noqa: BLE001 - whatever stops the start (train's module fails to import) fails every worker
        # The driver shows it: this process's stderr may be nowhere the user looks (a notebook's kernel).
        events.send(("broken", slot, generation, traceback.format_exc()))
        return
    events.send(("ready", slot, generation, None))
    try:
        while (task := tasks.get()) is not None:
            number, params, seed, resume = task
            status = setup.run(number, params, seed, resume)
            events.send(("done", slot, generation, (number, status.value)))
    except Terminated:
        pass  # the run's end was sent to the driver already


def adopt_main(path: str) -> None:
    """Import the driver's script as ``__main__``, as multiprocessing's spawn does.

    What the script defines at module level (``train``, a cached data loader, a
    RunManager subclass) is then found by name when the payload is unpickled.
    Its ``if __name__ == "__main__":`` block does not run.
    """
    import runpy
    import sys
    import types

    module = types.ModuleType("__mp_main__")
    sys.modules["__mp_main__"] = module
    module.__dict__.update(runpy.run_path(path, run_name="__mp_main__"))
    sys.modules["__main__"] = module


class RunActor:
    """A long-lived Ray actor running many runs; events go to the driver through a Ray queue.

    It runs two calls at a time (``max_concurrency=2``), so the driver's pruning verdicts
    (:meth:`verdict`) reach a run that waits for them after an epoch.
    """

    def __init__(self, slot: int, generation: int, payload: bytes, queue: Any, threads: int | None,
                 main_path: str | None = None, sys_path: list[str] | None = None, share_gpu: bool = False) -> None:
        import sys

        configure_environment(threads, None, share_gpu)  # Ray itself assigns GPUs to actors that ask for them
        import_keras()
        sys.path.extend(p for p in sys_path or () if p not in sys.path)
        if main_path is not None:  # relative: the driver's script in the working_dir shipped with the job
            main_path = os.path.join(os.getcwd(), main_path)
            if os.path.exists(main_path):
                adopt_main(main_path)
        import queue as queue_module

        self.slot, self.generation, self.queue = slot, generation, queue
        self._verdicts: queue_module.Queue[bool | str] = queue_module.Queue()
        self.setup = WorkerSetup(payload, lambda event: queue.put(("event", slot, generation, event)),
                                 self._verdicts.get)

    def verdict(self, verdict: bool | str) -> None:
        """The driver's pruning verdict on the epoch the run is waiting after."""
        self._verdicts.put(verdict)

    def run(self, number: int, params: Mapping[str, Any], seed: int | None, resume: ResumePoint | None = None) -> str:
        status = self.setup.run(number, params, seed, resume).value
        # Through the same queue as the events, so the driver sees them all before "done".
        self.queue.put(("done", self.slot, self.generation, (number, status)))
        return status

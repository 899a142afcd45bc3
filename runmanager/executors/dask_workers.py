"""Runs as tasks on a Dask distributed cluster: a ``LocalCluster``, the nodes of a batch scheduler
through dask-jobqueue (Slurm, PBS, SGE, LSF), Kubernetes through dask-kubernetes.

Each run is one Dask task. The workers are not ours (a user's cluster, whose jobs come and go),
so instead of long-lived workers of its own (:class:`~runmanager.executors.pool.PoolExecutor`)
the executor talks to each *attempt* of a run:

- A task first loads the sweep's payload, once per worker process (cached by the sweep's key),
  then tells the driver ``("start", run, attempt id, worker)`` on the sweep's event queue and
  waits for the answer on its run's reply queue: go on (with the checkpoint to resume from, its
  bytes included for a worker that does not see the log_dir), or do not run (retries spent).
- Its events follow on the event queue, as they happen; the driver records them (it alone
  writes files) and, when the sweep prunes, answers each epoch on the reply queue. Its last
  message is ``("done", ...)``.

Retries: Dask itself runs the task of a dead worker again elsewhere (up to
``distributed.scheduler.allowed-failures``, then ``KilledWorker``), and a dask-jobqueue worker
whose batch job ended is gone the same way. The driver counts the deaths of each run, whoever
reschedules it: it learns of one when a second attempt of the run says "start", when the
attempt's worker leaves the scheduler's list, or when Dask gives up on the task (the driver
then submits it again itself). Each death costs one of ``max_retries``; once they are spent
the run is recorded ``interrupted`` with the reason and the next attempt is told not to run.
A new attempt resumes from the run's last checkpoint, and its start supersedes the epochs of
the attempt that died after it. Events of an attempt the driver no longer waits for are
ignored, so no epoch is recorded twice.

A worker process runs one run at a time (Keras's session and seeds are per process), so the
default number of runs at once is the number of workers; a worker with several threads still
runs one run at a time. Tasks cancelled by the driver (Ctrl-C, a stopped sweep) end at their
next epoch: the task sees that Dask cancelled it.
"""

from __future__ import annotations

import contextlib
import os
import pickle
import queue as queue_module
import sys
import threading
import time
import traceback
import uuid
from dataclasses import dataclass
from typing import Any

from runmanager.errors import (
    InvalidArgumentError,
    InvalidArgumentTypeError,
    LogDirWriteError,
    SweepError,
    missing_extra,
)
from runmanager.events import EpochEnded, RunStarted, Status
from runmanager.executors.base import Executor, SweepContext, Task, check_max_retries, check_workers
from runmanager.executors.pool import (
    cannot_start,
    retry_note,
    verdict,
    with_checkpoint_bytes,
    worker_content,
    worker_payload,
)
from runmanager.executors.processes import POLL_SECONDS
from runmanager.executors.shipping import main_script, own_paths, referenced_modules

__all__ = ["DaskExecutor", "check_dask_client", "check_resources", "run_attempt"]

#: How often (seconds) the driver reads the cluster's list of workers: its size, and whose are gone.
REFRESH_SECONDS = 2.0
#: The longest pause (seconds) between two looks of a task for the driver's answer (the first
#: pauses are milliseconds: the driver answers at once).
ANSWER_SECONDS = 0.2
_MAIN = frozenset({"__main__", "__mp_main__"})
_EXTRA = ("dask[distributed]", "dask", 'executor="dask"')
_FIX = ("Dask workers load train and the RunManager by module and name: install their module where the workers "
        "run, or keep it on a file system the workers see, in a folder on this process's sys.path (the workers "
        "add those folders), or send it with client.upload_file(...); a train defined in the driver's script is "
        "imported from that script's path. Check that it imports there (python -c \"import your_module\"), or "
        'pass executor="sequential".')


def _distributed() -> Any:
    try:
        import distributed
    except ImportError:
        raise missing_extra(*_EXTRA) from None
    return distributed


def check_dask_client(client: Any) -> None:
    """Reject a ``client`` that is not a ``dask.distributed.Client``, before anything starts.

    Examples:
        >>> check_dask_client("tcp://10.0.0.5:8786")
        Traceback (most recent call last):
        ...
        runmanager.errors.InvalidArgumentTypeError: client must be None (a private LocalCluster...
    """
    distributed = _distributed()
    if client is None or isinstance(client, distributed.Client):
        return
    hint = (f" To use the scheduler at {client!r}, pass DaskExecutor(Client({client!r})) "
            "(from dask.distributed import Client)." if isinstance(client, str) else "")
    raise InvalidArgumentTypeError(
        f"client must be None (a private LocalCluster for the sweep) or a dask.distributed.Client, got {client!r}.{hint}"
    )


def check_resources(resources: Any) -> dict[str, float] | None:
    """``resources`` as a dict of Dask worker resources each run needs (None: none).

    Examples:
        >>> check_resources({"GPU": 1})
        {'GPU': 1}
        >>> check_resources("GPU")
        Traceback (most recent call last):
        ...
        runmanager.errors.InvalidArgumentTypeError: resources must be None or a dict of Dask worker resources...
    """
    if resources is None:
        return None
    example = "such as {'GPU': 1} (workers started with --resources GPU=1)"
    if not isinstance(resources, dict) or not all(isinstance(name, str) and name for name in resources):
        raise InvalidArgumentTypeError(f"resources must be None or a dict of Dask worker resources per run, {example}, "
                                       f"got {resources!r}.")
    for name, amount in resources.items():
        if not isinstance(amount, (int, float)) or isinstance(amount, bool):
            raise InvalidArgumentTypeError(f"resources[{name!r}] must be a number, {example}, got {amount!r}.")
        if not amount > 0:
            raise InvalidArgumentError(f"resources[{name!r}] must be a positive amount, {example}, got {amount!r}.")
    return dict(resources) or None


class _Inbox:
    """The sweep's event queue, read in the driver by a thread that waits on it. (A get with a
    timeout would do without the thread, but each timeout that expires is logged as an error
    by the scheduler.)"""

    def __init__(self, events: Any) -> None:
        self.events = events
        self.local: queue_module.SimpleQueue[Any] = queue_module.SimpleQueue()
        self.thread = threading.Thread(target=self._carry, name="runmanager-dask-events", daemon=True)
        self.thread.start()

    def _carry(self) -> None:
        while True:
            try:
                message = self.events.get()
            except BaseException as exc:  # noqa: BLE001 - the scheduler is gone: the driver says so
                self.local.put(exc)
                return
            self.local.put(message)
            if message == _CLOSE:
                return

    def take(self, timeout: float) -> list[bytes]:
        """The messages that arrived, waiting up to ``timeout`` seconds for the first."""
        messages = []
        with contextlib.suppress(queue_module.Empty):
            messages.append(self.local.get(timeout=timeout) if timeout else self.local.get_nowait())
            while True:
                messages.append(self.local.get_nowait())
        for message in messages:
            if isinstance(message, BaseException):
                raise SweepError(f"The Dask scheduler stopped answering ({type(message).__name__}: {message}). "
                                 "Check the cluster, and resume the sweep with resume=True.") from message
        return [message for message in messages if message != _CLOSE]

    def close(self) -> None:
        if self.thread.is_alive():
            with contextlib.suppress(OSError, TimeoutError):
                self.events.put(_CLOSE)
            self.thread.join(timeout=5)


#: What the driver puts on its own event queue to end the thread that reads it.
_CLOSE = b"close"


@dataclass
class _InFlight:
    """A run given to the cluster, as the driver follows it."""

    task: Task
    future: Any
    replies: Any  # the run's queue of answers from the driver
    attempt: str | None = None  # the attempt that started last
    worker: str | None = None  # where it runs
    alive: bool = False  # that attempt runs: not found dead yet
    started: bool = False  # a RunStarted of the run was recorded in this sweep
    retries: int = 0


class DaskExecutor(Executor):
    """Runs each run as a task on a Dask distributed cluster; ``executor="dask"`` is its shorthand.

    Args:
        client: a ``dask.distributed.Client`` of yours (a ``LocalCluster``, dask-jobqueue's
            ``SLURMCluster``/``PBSCluster``/..., dask-kubernetes), left running after the sweep;
            None starts a private ``LocalCluster`` of ``workers`` single-threaded worker
            processes for the sweep and closes it after.
        workers: with a client, the most runs at once (default: the cluster's workers, read
            again as the sweep goes, so workers that join are used); without one, the private
            cluster's worker processes (default: one per CPU core).
        resources: the Dask resources each run needs, such as ``{"GPU": 1}``, for a cluster
            whose workers were started with them (``dask worker --resources GPU=1``).
        max_retries: run a run whose worker died (a crash, out of memory, a batch job ended or
            preempted) again, from its last checkpoint where it has one, up to this many times,
            whoever reschedules it (Dask or the sweep); then it is recorded ``interrupted``.

    Raises:
        InvalidArgumentError: an option out of its range (the message says which).
        InvalidArgumentTypeError: a client that is not a Dask client, resources that are not a dict.
        MissingExtraError: Dask's ``distributed`` is not installed.

    Examples:
        from dask.distributed import Client
        from dask_jobqueue import SLURMCluster

        cluster = SLURMCluster(cores=1, processes=1, memory="4GB", walltime="04:00:00")
        cluster.scale(jobs=8)
        m.sweep(train, grid, executor=DaskExecutor(Client(cluster), max_retries=2))
    """

    def __init__(self, client: Any = None, *, workers: int | None = None, resources: dict[str, float] | None = None,
                 max_retries: int = 2) -> None:
        check_dask_client(client)
        self.client = client
        self.workers = check_workers(workers)
        self.resources = check_resources(resources)
        if client is None and self.resources:
            raise InvalidArgumentError(
                f"resources={resources!r} needs a cluster whose workers offer them, but client=None starts a "
                "private LocalCluster without any. Pass your own client, e.g. "
                f"DaskExecutor(Client(LocalCluster(resources={resources!r}))), or ProcessExecutor(gpus=[...]) to give "
                "each local worker a GPU of its own."
            )
        self.max_retries = check_max_retries(max_retries)
        self.capacity = self.workers or (os.cpu_count() or 1)
        self._client: Any = None  # the client in use: the user's, or the private cluster's
        self._cluster: Any = None  # the private LocalCluster
        self._environment: dict[str, str | None] = {}  # what starting it changed here, and the old values
        self._events: Any = None
        self._inbox: _Inbox | None = None
        self._runs: dict[int, _InFlight] = {}
        self._key = ""
        self._payload = b""
        #: how a worker process sets itself up for the sweep (see _WorkerProcess)
        self._setting: dict[str, Any] = {}
        self._refreshed = 0.0

    # ----------------------------------------------------------------------------------------
    # Starting and ending
    # ----------------------------------------------------------------------------------------
    def open(self, context: SweepContext) -> None:
        super().open(context)
        distributed = _distributed()
        self._key = uuid.uuid4().hex[:12]
        self._setting = {"main_path": None, "paths": own_paths(), "threads": None, "private": False}
        self._payload = self._make_payload(context)
        if self.client is None:
            self._start_private(distributed)
            context.recorder.note(f"dask: started a private LocalCluster of {self.capacity} worker processes "
                                  "for this sweep")
        else:
            if self.client.asynchronous or self.client.status != "running":
                raise InvalidArgumentError(
                    f"The Dask client {self.client!r} is {'asynchronous' if self.client.asynchronous else 'closed'}: "
                    "pass a running, synchronous Client (Client(cluster), not Client(..., asynchronous=True))."
                )
            self._client = self.client
        self._events = distributed.Queue(f"runmanager-{self._key}-events", client=self._client)
        self._inbox = _Inbox(self._events)
        workers = self._refresh(force=True) or {}
        if self.client is not None:
            self._check_fits(workers)
            count = sum(map(self._fits, workers.values()))
            needs = f" offering {self.resources}" if self.resources else ""
            later = "; runs wait for workers to join" if not count else ""
            context.recorder.note(f"dask: using the cluster at {self._client.scheduler.address} ({count} "
                                  f"worker{'' if count == 1 else 's'}{needs}; {self.capacity} "
                                  f"run{'' if self.capacity == 1 else 's'} at once){later}")

    def _make_payload(self, context: SweepContext) -> bytes:
        """The workers' payload: by reference where pickle can (a module the workers import, the
        driver's script, which they import from its path), else by value with cloudpickle (a closure,
        or a notebook's code, which has no file to import)."""
        import cloudpickle

        content = worker_content(context)
        try:
            needs_main = bool(referenced_modules(content) & _MAIN)
        except Exception:  # noqa: BLE001 - pickle cannot send it: cloudpickle sends it by value
            needs_main = False
        main_path = main_script() if needs_main else None
        self._setting["main_path"] = main_path
        return worker_payload(context, by_value=True, always_by_value=needs_main and main_path is None,
                              cloudpickle=cloudpickle)

    def _start_private(self, distributed: Any) -> None:
        """A LocalCluster of single-threaded worker processes. Starting one sets OMP_NUM_THREADS=1 and
        a few other variables in this process (for the workers it spawns) and leaves them set: what it
        changed is put back here at once, and again when the cluster is closed (a worker it restarts
        sets them again)."""
        before = dict(os.environ)
        try:
            # No dashboard, and its HTTP server (health checks) on a free port, not on 8787, which
            # another cluster may hold.
            self._cluster = distributed.LocalCluster(n_workers=self.capacity, threads_per_worker=1, processes=True,
                                                     dashboard_address=None,
                                                     scheduler_kwargs={"dashboard_address": ":0"})
            self._client = distributed.Client(self._cluster)
        except BaseException:
            self._close_private()
            raise
        finally:
            changed = {name for name in set(before) | set(os.environ) if before.get(name) != os.environ.get(name)}
            self._environment = {name: before.get(name) for name in changed}
            _restore(self._environment)
        self._setting.update(threads=max(1, (os.cpu_count() or 1) // self.capacity), private=True)

    def _close_private(self) -> None:
        for part in (self._client, self._cluster):
            if part is not None:
                with contextlib.suppress(Exception):  # noqa: BLE001 - closing what may be half started
                    part.close()
        self._client = self._cluster = None
        _restore(self._environment)

    def close(self) -> None:
        if self._client is None:
            return
        for run in list(self._runs.values()):
            self._forget(run, cancel=True)
        if self._inbox is not None:
            self._inbox.close()
        with contextlib.suppress(OSError, TimeoutError):
            if self._events is not None:
                self._events.close()
        self._events = self._inbox = None
        if self._cluster is not None:
            self._close_private()
        self._client = None

    # ----------------------------------------------------------------------------------------
    # The cluster's workers
    # ----------------------------------------------------------------------------------------
    def _fits(self, worker: dict[str, Any]) -> bool:
        offered = worker.get("resources") or {}
        return all(offered.get(name, 0) >= amount for name, amount in (self.resources or {}).items())

    def _check_fits(self, workers: dict[str, dict[str, Any]]) -> None:
        if workers and self.resources and not any(map(self._fits, workers.values())):
            offered = sorted({f"{name}={amount:g}" for worker in workers.values()
                              for name, amount in (worker.get("resources") or {}).items()})
            raise InvalidArgumentError(
                f"No worker of the Dask cluster at {self._client.scheduler.address} offers resources="
                f"{self.resources!r} (they offer {', '.join(offered) or 'no resources'}), so no run could start. "
                "Start the workers with them (dask worker --resources \"GPU=1\"; in dask-jobqueue, "
                "worker_extra_args=[\"--resources\", \"GPU=1\"]), or pass the resources they have."
            )

    def _refresh(self, force: bool = False) -> dict[str, dict[str, Any]] | None:
        """The scheduler's workers, read at most every REFRESH_SECONDS (None between): the number of
        runs at once follows them (workers of a batch cluster join over time), and a run whose
        worker left the list died with it."""
        now = time.monotonic()
        if not force and now - self._refreshed < REFRESH_SECONDS:
            return None
        self._refreshed = now
        workers = dict(self._client.scheduler_info(n_workers=-1).get("workers", {}))
        if self.client is not None and self.workers is None:
            self.capacity = max(1, sum(map(self._fits, workers.values())))
        return workers

    # ----------------------------------------------------------------------------------------
    # The interface
    # ----------------------------------------------------------------------------------------
    def submit(self, task: Task) -> None:
        distributed = _distributed()
        replies = distributed.Queue(f"runmanager-{self._key}-run-{task.number}", client=self._client)
        self._runs[task.number] = _InFlight(task, self._submit(task), replies)

    def _submit(self, task: Task) -> Any:
        return self._client.submit(
            run_attempt, self._key, self._payload, self._events.name, f"runmanager-{self._key}-run-{task.number}",
            task.number, task.params, task.seed, self._setting,
            key=f"runmanager-run-{task.number}-{uuid.uuid4().hex[:8]}", pure=False, resources=self.resources,
        )

    def running(self) -> int:
        return len(self._runs)

    def wait(self) -> list[tuple[Task, Status]]:
        assert self._inbox is not None
        ended: list[tuple[Task, Status] | None] = []
        workers = self._refresh()
        if workers is not None:
            for run in list(self._runs.values()):
                if run.alive and run.worker not in workers:
                    ended.append(self._died(run, self._reason(run)))
        for message in self._inbox.take(0 if any(ended) else POLL_SECONDS):
            ended.append(self._handle(*pickle.loads(message)))
        done = [run for run in self._runs.values() if run.future.done()]
        if done:
            ended += self._catch_up()
            for run in done:
                if self._runs.get(run.task.number) is run and run.future.done():
                    ended.append(self._future_ended(run))
        return [end for end in ended if end is not None]

    def _catch_up(self) -> list[tuple[Task, Status] | None]:
        """Handle every message already put on the event queue. A task puts its messages before
        it returns, so those of a task seen done are handled once a mark put now comes back."""
        assert self._inbox is not None
        mark = uuid.uuid4().hex
        self._events.put(pickle.dumps(("mark", 0, mark, None)))
        ended = []
        while True:
            for message in self._inbox.take(POLL_SECONDS):
                kind, number, attempt, payload = pickle.loads(message)
                if kind == "mark" and attempt == mark:
                    return ended
                ended.append(self._handle(kind, number, attempt, payload))

    def _handle(self, kind: str, number: int, attempt: str, payload: Any) -> tuple[Task, Status] | None:
        """Act on one message from a task; return its run and status when the run ended."""
        if kind == "broken":
            raise self._cannot_start(payload)
        run = self._runs.get(number)
        if kind == "mark":
            return None
        if run is None:
            return None  # an attempt of a run that ended (its task is cancelled)
        if kind == "start":
            return self._start(run, attempt, *payload)
        if attempt != run.attempt or not run.alive:
            # An attempt the sweep gave up for dead: its events are not the run's any more, and if it
            # waits after an epoch it is told to stop there.
            if kind == "event" and isinstance(payload, EpochEnded) and self.context.judge is not None:
                self._answer(run, attempt, True)
            return None
        if kind == "event":
            run.started = run.started or isinstance(payload, RunStarted)
            self.context.recorder.record(payload)
            if self.context.judge is not None and isinstance(payload, EpochEnded):
                self._answer(run, attempt, verdict(self.context, payload))
            return None
        # "done"
        self._forget(run)
        return run.task, Status(payload)

    def _start(self, run: _InFlight, attempt: str, worker: str, sees_log_dir: bool) -> tuple[Task, Status] | None:
        """A task of ``run`` starts on ``worker``: answer with where the run goes on from, or, when
        this start is a retry the run has no more of, tell it not to run."""
        if run.attempt is not None and run.alive:  # Dask ran the task again: the worker of the last attempt died
            if run.retries >= self.context.max_retries:
                self._answer(run, attempt, ("skip", None))
            ended = self._died(run, self._reason(run))
            if ended is not None:
                return ended
        resume = self.context.resume_point(run.task.number) if run.started else run.task.resume
        if not sees_log_dir:
            resume = with_checkpoint_bytes(resume, self.context.checkpoints)
        run.attempt, run.worker, run.alive = attempt, worker, True
        self._answer(run, attempt, ("go", resume))
        return None

    def _reason(self, run: _InFlight) -> str:
        return f"its Dask worker {run.worker} died or left the cluster"

    def _died(self, run: _InFlight, reason: str) -> tuple[Task, Status] | None:
        """The attempt of ``run`` (or its task, before it started) is lost: count a retry, or, with
        none left, record the run ``interrupted`` with ``reason`` and return its end."""
        run.alive = False
        max_retries = self.context.max_retries
        if run.retries >= max_retries:
            return self._lose(run, reason)
        run.retries += 1
        resume = self.context.resume_point(run.task.number) if run.started else run.task.resume
        self.context.recorder.note(retry_note(run.task.number, reason, resume, run.retries, max_retries))
        return None

    def _future_ended(self, run: _InFlight) -> tuple[Task, Status] | None:
        """The task of ``run`` ended without the run's end: Dask gave up on it (``KilledWorker``: its
        workers kept dying), it was cancelled from outside, or it failed. Before the run started,
        an error other than a lost worker stops the sweep: every task would fail the same way."""
        distributed = _distributed()
        future = run.future
        if future.status == "error":
            error = future.exception()
            if not isinstance(error, distributed.KilledWorker) and run.attempt is None:
                raise self._cannot_start("".join(traceback.format_exception(error)))
            reason = ("Dask gave up on its task, whose workers kept dying (KilledWorker)"
                      if isinstance(error, distributed.KilledWorker) else
                      f"its Dask task failed: {type(error).__name__}: {error}")
        elif future.status == "cancelled":
            reason = "its Dask task was cancelled from outside the sweep (a restart of the cluster?)"
        else:
            reason = f"its Dask task ended ({future.status}) without the run's end"
        if run.alive or run.attempt is None:  # a death not counted yet
            ended = self._died(run, reason)
            if ended is not None:
                return ended
        # It runs again: a new task of the same run.
        run.attempt, run.alive = None, False
        run.future = self._submit(run.task)
        return None

    def _lose(self, run: _InFlight, reason: str) -> tuple[Task, Status]:
        self._forget(run, cancel=True)
        recorder = self.context.recorder
        record = recorder.run(run.task.number)
        if run.started and record is not None and record.status != Status.RUNNING:
            return run.task, record.status  # it reported its end, then its worker died
        recorder.lost(run.task.number, run.task.run, reason, started=run.started)
        return run.task, Status.INTERRUPTED

    def _answer(self, run: _InFlight, attempt: str, answer: Any) -> None:
        run.replies.put(pickle.dumps((attempt, answer)))

    def _forget(self, run: _InFlight, cancel: bool = False) -> None:
        del self._runs[run.task.number]
        with contextlib.suppress(OSError, TimeoutError):
            if cancel:
                run.future.cancel()
            run.replies.close()

    def _cannot_start(self, error: str) -> SweepError:
        """A task could not load the payload: every task would fail the same way."""
        lost = [(run.task, run.started) for run in self._runs.values()]
        for run in list(self._runs.values()):
            self._forget(run, cancel=True)
        return cannot_start(self.context.recorder, lost, error, fix=_FIX)

    def abort(self, reason: str) -> None:
        """Cancel every task (a running one stops at its next epoch) and record its run interrupted."""
        recorder = self.context.recorder
        runs = list(self._runs.values())
        if not runs:
            return
        with contextlib.suppress(OSError, TimeoutError):
            self._client.cancel([run.future for run in runs])
        for run in runs:
            self._forget(run)
            record = recorder.run(run.task.number)
            if run.started and record is not None and record.status != Status.RUNNING:
                continue  # it ended
            with contextlib.suppress(LogDirWriteError):  # recorded where the journal can still take it
                recorder.lost(run.task.number, run.task.run, reason, started=run.started)


def _restore(environment: dict[str, str | None]) -> None:
    """Set these variables back (None: unset)."""
    for name, value in environment.items():
        if value is None:
            os.environ.pop(name, None)
        else:
            os.environ[name] = value


# --------------------------------------------------------------------------------------------
# In the worker
# --------------------------------------------------------------------------------------------
class _Stopped(Exception):
    """The driver no longer wants this attempt (Dask cancelled its task)."""


class _Attempt:
    """One attempt of a run in this worker: its messages to the driver, and the driver's answers."""

    def __init__(self, worker: Any, number: int, events: Any, replies: Any) -> None:
        self.worker = worker
        self.key = worker.get_current_task()
        self.number = number
        self.id = uuid.uuid4().hex
        self.events, self.replies = events, replies
        self.stopped = False

    def cancelled(self) -> bool:
        """Whether Dask cancelled this task (the sweep was stopped, or gave the run up)."""
        task = self.worker.state.tasks.get(self.key)
        return task is None or task.state in ("cancelled", "released", "forgotten")

    def send(self, kind: str, payload: Any) -> None:
        self.events.put(pickle.dumps((kind, self.number, self.id, payload)))

    def forward(self, event: Any) -> None:
        """Send a run event; stop the run (an exception in its callback) once the task was cancelled."""
        if self.stopped:
            return
        if self.cancelled():
            self.stopped = True
            raise _Stopped(f"run {self.number} was cancelled by the sweep")
        self.send("event", event)

    def receive(self) -> Any:
        """The driver's next answer to this attempt. (Looked for without a blocking get, whose
        timeouts the scheduler would log as errors, so that a cancelled task notices.)"""
        pause = 0.002
        while True:
            for message in self.replies.get(batch=True):
                attempt, answer = pickle.loads(message)
                if attempt == self.id:  # an answer to an attempt of the run that died is dropped
                    return answer
            if self.cancelled():
                self.stopped = True
                raise _Stopped(f"run {self.number} was cancelled by the sweep")
            time.sleep(pause)
            pause = min(2 * pause, ANSWER_SECONDS)


class _WorkerProcess:
    """This worker process's part in one sweep: the WorkerSetup, and the attempt it runs now.

    ``setting`` says how to set the process up: ``threads`` for the backend (a private cluster:
    the process's share of the cores), the driver's script to import where the payload names it
    (``main_path``), the driver's own folders to add to ``sys.path`` where they exist (``paths``:
    a shared file system), and whether the process belongs to the sweep's private cluster.
    """

    def __init__(self, payload: bytes, setting: dict[str, Any]) -> None:
        from runmanager.backend import import_keras
        from runmanager.worker import WorkerSetup, adopt_main, configure_environment

        if setting["threads"] is not None:
            configure_environment(setting["threads"], None)
        import_keras()
        if setting["private"]:
            import atexit

            atexit.register(_exit_at_once)
        sys.path.extend(path for path in setting["paths"] if path not in sys.path and os.path.isdir(path))
        main_path = setting["main_path"]
        if main_path is not None and os.path.isfile(main_path):
            main = getattr(sys.modules.get("__main__"), "__file__", None)
            if main is None or os.path.abspath(main) != main_path:  # a LocalCluster's worker imported it already
                adopt_main(main_path)
        self.attempt: _Attempt | None = None
        self.setup = WorkerSetup(payload, self._forward, self._receive)

    def _forward(self, event: Any) -> None:
        assert self.attempt is not None
        self.attempt.forward(event)

    def _receive(self) -> Any:
        assert self.attempt is not None
        return self.attempt.receive()


def _exit_at_once() -> None:
    """The last step of a private cluster's worker process, once Dask has shut it down: skip the
    teardown of TensorFlow, which takes seconds (2-4 s measured) and outlasts the nanny's
    patience, so that closing the cluster takes a fraction of a second."""
    import logging

    logging.shutdown()
    with contextlib.suppress(Exception):  # noqa: BLE001 - streams that are closed already
        sys.stdout.flush()
        sys.stderr.flush()
    os._exit(0)


#: This process's part in the sweep it works for, by the sweep's key (one at a time).
_PROCESSES: dict[str, _WorkerProcess] = {}
#: One run at a time in a worker process, whatever its threads: Keras's session and seeds are per process.
_ONE_RUN = threading.Lock()


def run_attempt(sweep: str, payload: bytes, events: str, replies: str, number: int, params: dict[str, Any],
                seed: int | None, setting: dict[str, Any]) -> str:
    """The Dask task of one run (see the module's docstring); returns how it ended: a status, or
    ``"skipped"``, ``"cancelled"``, ``"broken"``.

    Examples:
        future = client.submit(run_attempt, sweep, payload, events, replies, 3, {"lr": 0.1}, 0, setting)
    """
    import distributed

    worker = distributed.get_worker()
    event_queue, reply_queue = distributed.Queue(events), distributed.Queue(replies)
    try:
        attempt = _Attempt(worker, number, event_queue, reply_queue)
        while not _ONE_RUN.acquire(timeout=ANSWER_SECONDS):
            if attempt.cancelled():
                return "cancelled"
        try:
            return _run(attempt, sweep, payload, params, seed, setting)
        finally:
            _ONE_RUN.release()
    finally:
        with contextlib.suppress(Exception):  # noqa: BLE001 - a queue of a sweep that is gone
            event_queue.close()
            reply_queue.close()


def _run(attempt: _Attempt, sweep: str, payload: bytes, params: dict[str, Any], seed: int | None,
         setting: dict[str, Any]) -> str:
    here = _PROCESSES.get(sweep)
    if here is None:
        _PROCESSES.clear()  # an earlier sweep's manager and models go
        try:
            here = _WorkerProcess(payload, setting)
        except Exception:  # noqa: BLE001 - whatever stops the start (train's module fails to import) stops every task
            attempt.send("broken", traceback.format_exc())
            return "broken"
        _PROCESSES[sweep] = here
    settings = here.setup.context.checkpoints
    attempt.send("start", (attempt.worker.address, settings is not None and settings.sees_log_dir()))
    try:
        go, resume = attempt.receive()
    except _Stopped:
        return "cancelled"
    if go != "go":
        return "skipped"
    here.attempt = attempt
    try:
        status = here.setup.run(attempt.number, params, seed, resume)
    except BaseException:  # noqa: BLE001 - sys.exit() in train, a cancelled start: the run's end is sent already
        _PROCESSES.pop(sweep, None)  # the manager's copy may be mid-run: the next run starts from the payload
        status = Status.INTERRUPTED
    finally:
        here.attempt = None
    if attempt.stopped:
        return "cancelled"
    attempt.send("done", status.value)
    return status.value

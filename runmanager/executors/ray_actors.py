"""Long-lived actors on a Ray cluster, each importing the Keras backend once and running many runs.

Where the actors run depends on ``RayExecutor(address=...)``:

- ``None``: join the running Ray cluster that ``ray start`` recorded on this machine (or that
  ``RAY_ADDRESS`` names) when it answers, else start a private local Ray for the sweep; an
  address file left by a cluster that is gone (``ray start`` ended without ``ray stop``, a
  restart) is ignored.
- ``"local"``: always a private local Ray, ended with the sweep.
- ``"auto"`` or an address (``"10.0.0.5:6379"``, ``"ray://..."``): join that cluster, or fail.

A joined cluster must have the CPUs and GPUs the sweep asks for; it is never shut down,
only left. The first line of the sweep's progress says which it did and where. The nodes of a
joined cluster get the driver's code through Ray's ``runtime_env`` (see ``shipping.py``); the
actors of a private Ray import it from the driver's files, which is faster to start.
"""

from __future__ import annotations

import dataclasses
import os
import queue as queue_module
import re
import socket
import sys
import time
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

from runmanager.compile_cache import driver_holds_gpu
from runmanager.errors import InvalidArgumentError, InvalidArgumentTypeError, SweepError, missing_extra
from runmanager.executors.base import SweepContext, Task, check_workers
from runmanager.executors.pool import (
    Pool,
    PoolExecutor,
    Slot,
    with_checkpoint_bytes,
    worker_content,
    worker_payload,
)
from runmanager.executors.processes import POLL_SECONDS
from runmanager.executors.shipping import Shipment, check_runtime_env, main_script, plan_shipment

__all__ = ["RayConnection", "RayExecutor", "RayPool", "check_ray_address", "connect_ray"]

#: Seconds to wait for a Ray head to answer (TCP, then HTTP/2) before calling it gone.
CONNECT_TIMEOUT = 2.0
_START = "start the cluster with `ray start --head`"


def _root_cause(error: BaseException) -> str:
    """The line of a Ray error that says what went wrong (``ModuleNotFoundError: ...``)."""
    lines = [line.strip() for line in str(error).splitlines() if line.strip()]
    causes = [line for line in lines if re.match(r"^[A-Za-z_.]*(Error|Exception|Exit)\b.*:", line)]
    return (causes[-1] if causes else lines[0] if lines else type(error).__name__)[:300]


def _host_port(address: str) -> tuple[str, int] | None:
    """``("10.0.0.5", 6379)`` for ``"10.0.0.5:6379"`` or ``"ray://10.0.0.5:10001"``; None when
    the address has no port.

    Examples:
        >>> _host_port("ray://[::1]:10001"), _host_port("10.0.0.5:6379"), _host_port("auto")
        (('::1', 10001), ('10.0.0.5', 6379), None)
    """
    rest = address.split("://", 1)[-1].split("/", 1)[0]
    host, sep, port = rest.rpartition(":")
    if not sep or not port.isdigit() or not 0 < int(port) < 65536:
        return None
    return host.strip("[]") or "127.0.0.1", int(port)


def check_ray_address(address: Any) -> None:
    """Reject a Ray ``address`` that can name no cluster, before anything starts.

    Examples:
        >>> check_ray_address("10.0.0.5:6379")
        >>> check_ray_address("10.0.0.5")
        Traceback (most recent call last):
        ...
        runmanager.errors.InvalidArgumentError: address='10.0.0.5' is not a Ray address...
    """
    if address is None:
        return
    if not isinstance(address, str):
        raise InvalidArgumentTypeError(f"address must be None or a str (the Ray cluster to join), got {address!r}.")
    if address in ("local", "auto") or "://" in address or _host_port(address) is not None:
        return
    raise InvalidArgumentError(
        f"address={address!r} is not a Ray address. Pass None (join the Ray cluster running on "
        "this machine, else start a private one), 'local' (always a private Ray), 'auto' (join the "
        "running cluster) or the cluster's head address with its port, such as '10.0.0.5:6379'."
    )


#: What an HTTP/2 client sends first (the preface and an empty SETTINGS frame); a Ray head,
#: a gRPC server, answers with a SETTINGS frame of its own.
_HTTP2_HELLO = b"PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n" + b"\x00\x00\x00\x04\x00\x00\x00\x00\x00"


def _unreachable(address: str, timeout: float = CONNECT_TIMEOUT) -> str | None:
    """Why no Ray head answers at ``address`` (``"connection refused"``), or None when one does.

    A TCP connection and the first HTTP/2 frames, within ``timeout`` seconds: ``ray.init`` itself
    retries a head that is gone for minutes, and joins anything that accepts connections.
    """
    target = _host_port(address)
    if target is None:
        return None  # no port to try: let Ray find out
    deadline = time.monotonic() + timeout
    try:
        sock = socket.create_connection(target, timeout=timeout)
    except TimeoutError:
        return f"no answer within {timeout:g} s"
    except OSError as exc:
        return (exc.strerror or str(exc) or type(exc).__name__).lower()
    with sock:
        if os.environ.get("RAY_USE_TLS", "0").lower() in ("1", "true"):
            return None  # a TLS handshake is Ray's to do
        reply = b""
        try:
            sock.settimeout(max(0.1, deadline - time.monotonic()))
            sock.sendall(_HTTP2_HELLO)
            while len(reply) < 9 and (chunk := sock.recv(9 - len(reply))):
                reply += chunk
        except OSError:
            pass
    if len(reply) == 9 and reply[3] == 4:  # a SETTINGS frame
        return None
    return "something accepts connections there, but it does not answer as a Ray head does"


def _address_file() -> str:
    """The file where ``ray start`` records its head's address (``/tmp/ray/ray_current_cluster``,
    or under ``RAY_TMPDIR``), as Ray itself finds it."""
    try:
        from ray._common.utils import get_ray_address_file
    except ImportError:  # older Ray
        from ray._private.utils import get_ray_address_file
    return get_ray_address_file(None)


def _recorded_address() -> tuple[str | None, str]:
    """The cluster ``ray.init()`` would join on its own, and where that address comes from."""
    env = os.environ.get("RAY_ADDRESS")
    if env and env not in ("auto", "local"):
        return env, "the RAY_ADDRESS environment variable"
    path = _address_file()  # RAY_ADDRESS=auto joins the cluster recorded there too
    try:
        with open(path, encoding="utf-8") as file:
            return file.read().strip() or None, path
    except OSError:
        return None, path


def _plural(count: float, noun: str) -> str:
    return f"{count:g} {noun}{'' if count == 1 else 's'}"


@dataclass
class RayConnection:
    """How :func:`connect_ray` got Ray: whether the sweep owns it (it started or joined it, and
    ``close`` must leave it), how many workers fit, and the line that tells the user."""

    owns: bool
    workers: int
    note: str
    #: the driver's code went to the cluster with the job's runtime_env (the actors import it from there)
    shipped: bool = False


def _where(ray: Any, fallback: str) -> str:
    try:
        return str(ray.get_runtime_context().gcs_address)
    except Exception:  # noqa: BLE001 - Ray client, or an older Ray
        return fallback


def _fit(ray: Any, what: str, workers: int | None, num_cpus: float, num_gpus: float, *,
         fix: str) -> tuple[int, str]:
    """How many workers the Ray that is up takes (``workers``, or as many as fit when None),
    and a remark when its resources are busy; raise when it cannot hold the sweep."""
    total, free = ray.cluster_resources(), ray.available_resources()
    needs = {"CPU": num_cpus, "GPU": num_gpus}
    if workers is None:
        fits = [int(total.get(name, 0) / per + 1e-9) for name, per in needs.items() if per > 0]
        workers = max(1, min(fits) if fits else int(total.get("CPU", 1)))
    missing = [f"{_plural(workers * per, name)} (it has {total.get(name, 0):g})"
               for name, per in needs.items() if workers * per > total.get(name, 0) + 1e-9]
    if missing:
        raise InvalidArgumentError(
            f"{what} is too small for this sweep: {workers} workers with num_cpus={num_cpus:g} and "
            f"num_gpus={num_gpus:g} need {' and '.join(missing)}. Pass fewer workers or a smaller "
            f"num_cpus/num_gpus{fix}."
        )
    busy = [f"{free.get(name, 0):g} of {total.get(name, 0):g} {name}s free now"
            for name, per in needs.items() if workers * per > free.get(name, 0) + 1e-9]
    return workers, f"; {', '.join(busy)}, so some runs wait for them" if busy else ""


def _on_this_node(ray: Any) -> dict[str, Any]:
    """Actor options that keep an actor on the driver's node (as long as that node lives)."""
    options: dict[str, Any] = {"num_cpus": 0}
    try:
        from ray.util.scheduling_strategies import NodeAffinitySchedulingStrategy

        node = ray.get_runtime_context().get_node_id()
        options["scheduling_strategy"] = NodeAffinitySchedulingStrategy(node, soft=True)
    except Exception:  # noqa: BLE001 - Ray client: the driver is on no node
        pass
    return options


def _quiet_shutdown(ray: Any) -> None:
    try:
        ray.shutdown()
    except Exception:  # noqa: BLE001 - it was not up
        pass


def _join(ray: Any, address: str, shown: str, otherwise: str, runtime_env: dict[str, Any] | None = None) -> None:
    """``ray.init`` to join the cluster at ``address``; a failure becomes a SweepError that says
    what to do (``otherwise``: the other choice the user has)."""
    try:
        ray.init(address=address, include_dashboard=False, log_to_driver=True, runtime_env=runtime_env or None)
    except Exception as exc:  # noqa: BLE001 - Ray raises ConnectionError, ValueError, RuntimeError...
        _quiet_shutdown(ray)
        cause = _root_cause(exc)
        if "could not find any running ray" in cause.lower():
            raise SweepError(
                "address='auto' found no running Ray cluster on this machine. "
                f"{_START.capitalize()}, pass the address of a running cluster, or {otherwise}."
            ) from exc
        auth = (" If the cluster uses token authentication, set RAY_AUTH_MODE=token and give this "
                "process its token (RAY_AUTH_TOKEN)." if "auth" in cause.lower() or "token" in cause.lower()
                else "")
        raise SweepError(
            f"Could not join the Ray cluster at {shown}: {cause.rstrip('.')}.{auth} Check the cluster "
            f"with `ray status`, or {otherwise}."
        ) from exc


def _start_local(ray: Any, workers: int, num_cpus: float, runtime_env: dict[str, Any] | None = None) -> int:
    """Start a private local Ray with the CPUs the sweep needs; return how many."""
    cpus = max(1, int(workers * num_cpus + 0.999))
    try:
        # "local" starts a new Ray whatever RAY_ADDRESS or an address file says.
        ray.init(address="local", num_cpus=cpus, include_dashboard=False, runtime_env=runtime_env or None)
    except Exception as exc:  # noqa: BLE001
        _quiet_shutdown(ray)
        logs = os.path.join(os.path.dirname(_address_file()), "session_latest", "logs")
        raise SweepError(
            f"Could not start a local Ray for the sweep: {_root_cause(exc).rstrip('.')}. Check the free "
            f"space of {os.path.dirname(logs)} and /dev/shm and the Ray logs in {logs}, or "
            f"{_START} and join it with address='auto'."
        ) from exc
    return cpus


def connect_ray(ray: Any, address: str | None, workers: int | None, *, num_cpus: float, num_gpus: float,
                default_workers: int, runtime_env: dict[str, Any] | None = None,
                shipment: Shipment | None = None) -> RayConnection:
    """Join or start Ray for a sweep as ``address`` says (see the module's docstring).

    ``workers=None`` takes ``default_workers`` on a private Ray, and as many as fit on a
    joined cluster. A private Ray gets the user's ``runtime_env``; a joined cluster gets the
    ``shipment``'s, which adds the driver's code to it.

    Examples:
        connection = connect_ray(ray, "10.0.0.5:6379", 2, num_cpus=1, num_gpus=0, default_workers=2)
    """
    os.environ.setdefault("RAY_USAGE_STATS_ENABLED", "0")
    private = "pass address='local' for a private Ray on this machine"
    if ray.is_initialized():  # the user's own ray.init(): use it, never end it
        where = _where(ray, "the current cluster")
        count, busy = _fit(ray, f"The Ray cluster at {where}", workers, num_cpus, num_gpus,
                           fix=", or add nodes to the cluster")
        ignored = (f"; address={address!r} is not used: call ray.shutdown() first to change it"
                   if address not in (None, "auto") else "")
        return RayConnection(False, count, f"ray: using the Ray this process is connected to at {where} "
                                           f"({count} workers){busy}{ignored}")
    stale = ""
    join: str | None = None  # the address to pass to ray.init, when joining
    shown = ""
    if address is None and os.environ.get("RAY_ADDRESS") in ("auto", "local"):
        address = os.environ["RAY_ADDRESS"]  # what ray.init() would take
    recorded, source = _recorded_address() if address in (None, "auto") else (None, "")
    if address is None:
        reason = _unreachable(recorded) if recorded else None
        if recorded and reason is None:
            # "auto" resolves the same address as ray.init() would, and uses a local cluster's token.
            join, shown = "auto", recorded
        elif recorded and source.startswith("the RAY_ADDRESS"):
            raise SweepError(
                f"RAY_ADDRESS={recorded!r} names a Ray cluster that does not answer ({reason}). Unset "
                f"RAY_ADDRESS or fix it, {_START}, or {private}."
            )
        elif recorded:
            stale = (f"; the cluster recorded in {source} ({recorded}) is gone ({reason}), "
                     "so it was not joined")
    elif address == "auto":
        reason = _unreachable(recorded) if recorded else None
        if reason is not None:
            raise SweepError(
                f"address='auto' found the cluster address {recorded} in {source}, but that cluster "
                f"is gone ({reason}). "
                f"{_START.capitalize()}, pass the address of a running cluster, or pass address=None "
                "(or 'local') for a private Ray."
            )
        join, shown = "auto", recorded or "auto"
    elif address != "local":
        reason = _unreachable(address)
        if reason is not None:
            raise SweepError(
                f"No Ray cluster answers at address={address!r} ({reason}). Check the address and "
                f"that the cluster runs (`ray status` on its head), {_START}, or pass "
                "address=None (or 'local') for a private Ray."
            )
        join, shown = address, address

    if join is None:
        count = workers or default_workers
        cpus = _start_local(ray, count, num_cpus, runtime_env)
        try:  # the CPUs were sized to the sweep; GPUs are the machine's (fewer workers by default)
            fitted, _ = _fit(ray, "This machine", workers, num_cpus, num_gpus,
                             fix=", or join a cluster that has them with address")
        except BaseException:
            ray.shutdown()
            raise
        count = min(count, fitted)
        return RayConnection(True, count, f"ray: started a private local Ray ({_plural(cpus, 'CPU')}) "
                                          f"for this sweep{stale}")
    shipped = shipment.runtime_env if shipment is not None else runtime_env
    _join(ray, join, shown, private if address is None else
          "pass address=None (or 'local') for a private Ray", shipped)
    where = _where(ray, shown)
    try:
        count, busy = _fit(ray, f"The Ray cluster at {where}", workers, num_cpus, num_gpus,
                           fix=f", add nodes to the cluster, or {private}")
        total = ray.cluster_resources()
    except BaseException:
        ray.shutdown()  # only this driver leaves: the cluster runs on
        raise
    return RayConnection(True, count, f"ray: joined the running cluster at {where} "
                                      f"({_plural(total.get('CPU', 0), 'CPU')}, "
                                      f"{_plural(total.get('GPU', 0), 'GPU')}; {count} workers){busy}",
                         shipped=shipment is not None)


class RayPool(Pool):
    """Ray actors reporting through one Ray queue, on the cluster that :func:`connect_ray` got.

    ``main_path`` is the driver's script for the actors to import: its own path on a private
    Ray (whose actors also get the driver's ``sys.path``, as ``sys_path``), or its path inside
    the shipped working_dir on a joined cluster. ``actor_env`` is a runtime_env for the actors
    alone (the user's, on a Ray this process was already connected to).
    """

    def __init__(self, payload: bytes, workers: int, *, num_cpus: float, num_gpus: float,
                 main_path: str | None, owns_ray: bool, sys_path: list[str] | None = None,
                 actor_env: dict[str, Any] | None = None) -> None:
        import ray
        from ray.util.queue import Queue

        self._ray = ray
        self._owns_ray = owns_ray  # ray.shutdown() at the end: stops a private Ray, leaves a joined one
        from runmanager.worker import RunActor

        try:
            # On the driver's node, so that it outlives any worker node, and without CPUs, so
            # that a head started with --num-cpus=0 takes it.
            self._queue = Queue(actor_options=_on_this_node(ray))
        except BaseException:
            if owns_ray:
                ray.shutdown()
            raise
        # Two calls at a time: a run waiting after an epoch gets the driver's pruning verdict.
        options: dict[str, Any] = {"num_cpus": num_cpus, "num_gpus": num_gpus, "max_restarts": 0,
                                   "max_concurrency": 2}
        if actor_env:
            options["runtime_env"] = actor_env
        try:
            self._actor = ray.remote(**options)(RunActor)
        except ValueError as exc:  # Ray refuses local paths in an actor's runtime_env
            self.close([])
            raise InvalidArgumentError(
                f"runtime_env={actor_env!r} cannot be given to the actors of the Ray this process is "
                f"already connected to ({_root_cause(exc)}). Pass it to your own ray.init(runtime_env=...) "
                "instead, or call ray.shutdown() first and let the sweep join the cluster."
            ) from None
        self._payload = payload
        self._main_path = main_path
        self._sys_path = sys_path
        self._threads = max(1, int(num_cpus))
        # Several actors on one GPU, or a driver that holds a GPU through JAX already: no actor may
        # take a whole GPU's memory.
        self._share_gpu = 0 < num_gpus < 1 or (num_gpus > 0 and driver_holds_gpu())
        self._needs = {"CPU": num_cpus, "GPU": num_gpus}
        self._refs: dict[int, Any] = {}

    def start(self, slot: Slot) -> None:
        slot.generation += 1
        slot.handle = self._actor.remote(slot.index, slot.generation, self._payload, self._queue, self._threads,
                                         self._main_path, self._sys_path, self._share_gpu)
        slot.runs_done = 0
        self._refs.pop(slot.index, None)

    def can_replace(self, slot: Slot, slots: list[Slot]) -> bool:
        """Whether the cluster, as it is now (a node may have died), holds one more actor beside
        the other live ones; else the slot is retired and the sweep goes on with fewer workers."""
        total = self._ray.cluster_resources()
        live = sum(other.handle is not None for other in slots if other is not slot) + 1
        return all(live * per <= total.get(name, 0) + 1e-9 for name, per in self._needs.items() if per > 0)

    def submit(self, slot: Slot, task: Task) -> None:
        self._refs[slot.index] = slot.handle.run.remote(*task.message())

    def answer(self, slot: Slot, verdict: bool | str) -> None:
        slot.handle.verdict.remote(verdict)

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
    """Runs on long-lived Ray actors, on the Ray cluster ``address`` names or on a private local
    Ray started for the sweep (see the module's docstring); ``executor="ray"`` is its shorthand.

    Args:
        address: the cluster to join: None (the running one, else a private local Ray),
            ``"auto"``, ``"local"``, or the head's ``host:port``.
        workers: runs at once; default: as many as the cluster's CPUs hold at ``num_cpus`` each.
        num_cpus: Ray CPUs per worker (per concurrent run).
        num_gpus: Ray GPUs per worker; a fraction such as 0.5 packs that many runs on one GPU
            (their backend then grows its GPU memory as needed instead of taking it all).
        runtime_env: the user's Ray runtime environment (pip packages, env vars), to which the
            driver's code is added on a joined cluster.
        max_runs_per_worker: replace an actor after this many runs, so memory stays flat.
        max_retries: run a run whose actor or node died, or whose worker was stopped by
            SIGTERM, again on the workers left, from its last checkpoint where it has one, up
            to this many times; then it is recorded ``interrupted``.

    Raises:
        InvalidArgumentError: an option out of its range (the message says which).

    Examples:
        m.sweep(train, grid, executor=RayExecutor(address="auto", num_gpus=0.5, max_retries=2))
    """

    def __init__(self, address: str | None = None, *, workers: int | None = None, num_cpus: float = 1,
                 num_gpus: float = 0, runtime_env: dict[str, Any] | None = None, max_runs_per_worker: int = 100,
                 max_retries: int = 1) -> None:
        check_ray_address(address)
        workers = check_workers(workers)
        for name, value in (("num_cpus", num_cpus), ("num_gpus", num_gpus)):
            if not isinstance(value, (int, float)) or isinstance(value, bool) or value < 0:
                raise InvalidArgumentError(f"{name} must be a non-negative number, got {value!r}.")
            if value > 1 and value != int(value):  # Ray's rule for resources
                raise InvalidArgumentError(
                    f"{name}={value!r}: a Ray resource above 1 must be a whole number; pass {int(value)} or "
                    f"{int(value) + 1}, or a fraction below 1 to share one {name[4:].upper()} between runs."
                )
        check_runtime_env(runtime_env)
        count = workers or max(1, int((os.cpu_count() or 1) // max(num_cpus, 1)))
        super().__init__(count, max_runs_per_worker=max_runs_per_worker, max_retries=max_retries)
        self.workers = workers
        self.address, self.num_cpus, self.num_gpus = address, num_cpus, num_gpus
        self.runtime_env = runtime_env
        self.shipment = Shipment()

    def payload(self, context: SweepContext) -> bytes:
        train = context.train
        try:
            self.shipment = plan_shipment(worker_content(context), self.runtime_env,
                                          what=f"train={getattr(train, '__qualname__', repr(train))}")
        except ImportError:
            raise missing_extra("ray", "ray", 'executor="ray"') from None
        return worker_payload(context, by_value=True, always_by_value=self.shipment.by_value)

    def outgoing(self, task: Task) -> Task:
        # A node of the cluster may not see the log_dir: the checkpoint travels with the task.
        resume = with_checkpoint_bytes(task.resume, self.context.checkpoints)
        return task if resume is task.resume else dataclasses.replace(task, resume=resume)

    def make_pool(self, payload: bytes) -> Pool:
        try:
            import ray
            import ray.util.queue  # noqa: F401 - the pool's queue
        except ImportError:
            raise missing_extra("ray", "ray", 'executor="ray"') from None
        shipment = self.shipment
        connection = connect_ray(ray, self.address, self.workers, num_cpus=self.num_cpus,
                                 num_gpus=self.num_gpus, default_workers=self.capacity,
                                 runtime_env=self.runtime_env, shipment=shipment)
        self.capacity = connection.workers  # a joined cluster sizes the default number of workers
        self.context.recorder.note(connection.note)
        if connection.shipped:  # the actors find the code in their working_dir and py_modules
            if shipment.note:
                self.context.recorder.note(f"ray: {shipment.note}")
            return RayPool(payload, self.capacity, num_cpus=self.num_cpus, num_gpus=self.num_gpus,
                           main_path=shipment.main, owns_ray=connection.owns)
        # A private Ray, or this process's own: the actors see the driver's files.
        actor_env = None if connection.owns else self.runtime_env
        if not connection.owns and set(shipment.runtime_env) - set(self.runtime_env or {}):
            self.context.recorder.note("ray: the driver's code is not shipped to a Ray that this process joined itself; "
                              "on nodes without the driver's files, pass runtime_env={'working_dir': ...} to "
                              "ray.init, or let the sweep join the cluster (address)")
        return RayPool(payload, self.capacity, num_cpus=self.num_cpus, num_gpus=self.num_gpus,
                       main_path=main_script(), owns_ray=connection.owns, sys_path=[p for p in sys.path if p],
                       actor_env=actor_env)

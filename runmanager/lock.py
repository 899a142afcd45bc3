"""One writing process per ``log_dir``: the lock file ``log_dir / LOCK_NAME``.

- It is created with ``O_CREAT | O_EXCL``, atomic on local disks and on NFS, where
  ``fcntl`` locks may be missing or local to one client.
- It names its holder by pid, host and a token, the process start time from
  ``/proc/<pid>/stat``, so a reused pid is not mistaken for a dead holder (without
  /proc the token is ``""`` and only pid liveness counts). Another host's pid is
  never judged.
- A registry maps each log_dir to the lock this process holds on it, so a notebook
  re-running a cell (a new RunManager, same log_dir) takes the lock over from the
  old, idle manager instead of locking itself out.

Readers never need the lock.
"""

from __future__ import annotations

import atexit
import contextlib
import json
import os
import socket
import threading
import time
import warnings
import weakref
from collections.abc import Callable
from pathlib import Path
from typing import Any

from runmanager.errors import LogDirError

__all__ = ["LOCK_NAME", "LogDirLock", "acquire", "read_holder", "writer_alive"]

LOCK_NAME = ".runmanager.lock"
_TAKEOVER_NAME = LOCK_NAME + ".takeover"
_EMPTY_GRACE_S = 5.0  # an empty/corrupt lock file younger than this belongs to a writer just starting
_FILL_WAIT_S = 1.0  # how long to wait for a just-created lock file to get its contents
_TAKEOVER_STALE_S = 30.0  # a takeover mutex older than this was left by a dead process
_TAKEOVER_WAIT_S = 5.0
_registry: dict[str, LogDirLock] = {}
_guard = threading.RLock()


def _proc_token(pid: int) -> str | None:
    """Return ``pid``'s start time in clock ticks, ``""`` without /proc, or None if it is gone."""
    if pid <= 0:
        return None
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return None
    except PermissionError:
        pass  # alive, owned by another user
    if not os.path.isdir("/proc/self"):
        return ""
    try:
        with open(f"/proc/{pid}/stat", "rb") as f:
            fields = f.read().rsplit(b")", 1)[1].split()  # the command name may hold spaces and ')'
    except (OSError, IndexError):
        return None
    return None if fields[0] == b"Z" else fields[19].decode()  # fields[0] is field 3; starttime is 22


def _weak(fn: Callable[[], Any] | None) -> Callable[[], Any]:
    """Wrap a callback so that the registry does not keep a bound method's object alive."""
    if fn is None:
        return lambda: None
    if getattr(fn, "__self__", None) is not None and hasattr(fn, "__func__"):
        ref = weakref.WeakMethod(fn)  # type: ignore[arg-type]
        return lambda: m() if (m := ref()) is not None else None
    return fn


def _read(path: Path) -> tuple[bytes, os.stat_result] | None:
    try:
        with open(path, "rb") as f:
            return f.read(), os.fstat(f.fileno())
    except FileNotFoundError:
        return None


def _parse(raw: bytes) -> dict[str, Any] | None:
    try:
        d = json.loads(raw)
        return {"pid": int(d["pid"]), "host": str(d["host"]), "started": float(d["started"]),
                "token": str(d["token"])}
    except (ValueError, TypeError, KeyError):
        return None


def _create(path: Path, info: dict[str, Any]) -> bool:
    """Create ``path`` holding ``info`` if it does not exist; False if it does."""
    try:
        fd = os.open(path, os.O_CREAT | os.O_EXCL | os.O_WRONLY, 0o666)
    except FileExistsError:
        return False
    with os.fdopen(fd, "w") as f:
        json.dump(info, f)
        f.flush()
        os.fsync(f.fileno())
    return True


def _judge(holder: dict[str, Any]) -> str:
    """Say whose a lock is: "foreign" (another host), "self", "live" (another process) or "stale"."""
    if holder["host"] != socket.gethostname():
        return "foreign"
    current = _proc_token(holder["pid"])
    if current is None or (holder["token"] and current and holder["token"] != current):
        return "stale"
    return "self" if holder["pid"] == os.getpid() else "live"


def _take_over(path: Path, seen: tuple[bytes, os.stat_result], info: dict[str, Any]) -> bool:
    """Replace the stale lock file ``seen`` by ours; False if it changed before we got to it."""
    mutex = path.with_name(_TAKEOVER_NAME)
    deadline = time.monotonic() + _TAKEOVER_WAIT_S
    while not _create(mutex, info):
        other = _read(mutex)
        if other is not None and time.time() - other[1].st_mtime > _TAKEOVER_STALE_S:
            with contextlib.suppress(FileNotFoundError):
                os.unlink(mutex)
        elif time.monotonic() > deadline:
            raise LogDirError(
                f"Another process is taking over the stale lock of the log_dir {path.parent} "
                f"(see {mutex}). Try again in a moment, or use another log_dir."
            )
        else:
            time.sleep(0.01)
    try:
        now = _read(path)
        if now is None or now[0] != seen[0] or now[1].st_ino != seen[1].st_ino:
            return False
        os.unlink(path)
        return _create(path, info)
    finally:
        with contextlib.suppress(FileNotFoundError):
            os.unlink(mutex)


def _held_message(log_dir: Path, path: Path, holder: dict[str, Any], foreign: bool) -> str:
    when = time.strftime("%Y-%m-%d %H:%M:%S", time.localtime(holder["started"]))
    who = f"process {holder['pid']} on {'another host, ' if foreign else 'host '}{holder['host']}"
    msg = (f"The log_dir {log_dir} is in use: {who} has been writing to it since {when} "
           f"(lock file {path}). Wait for that sweep to finish, or use another log_dir.")
    if foreign:
        msg += (f" A process on another host cannot be checked from here: if that process is gone, "
                f"delete the lock file {path} by hand.")
    return msg


class LogDirLock:
    """This process's hold on one ``log_dir``; made by :func:`acquire`, ended by :meth:`release`.

    Attributes:
        log_dir: The locked folder (resolved to an absolute path).
        path: The lock file, ``log_dir / LOCK_NAME``.

    Examples:
        lock = acquire("logs/sweep1")
        try:
            ...  # write journal.jsonl and the result files
        finally:
            lock.release()
    """

    def __init__(self, log_dir: Path, info: dict[str, Any],
                 busy: Callable[[], Any] | None, lost: Callable[[], Any] | None) -> None:
        self.log_dir = log_dir
        self.path = log_dir / LOCK_NAME
        self.pid: int = info["pid"]
        self.host: str = info["host"]
        self.token: str = info["token"]
        self._busy, self._lost = _weak(busy), _weak(lost)
        self._held = True

    @property
    def held(self) -> bool:
        """False once released, or once another owner in this process took the lock over."""
        return self._held

    def release(self) -> None:
        """Give the lock up; the file is removed only if it still names this process. Idempotent."""
        with _guard:
            if not self._held:
                return
            self._held = False
            if _registry.get(str(self.log_dir)) is self:
                del _registry[str(self.log_dir)]
            if os.getpid() != self.pid:
                return  # a forked child: the lock is its parent's
            holder = read_holder(self.log_dir)
            if holder and (holder["pid"], holder["host"], holder["token"]) == (self.pid, self.host, self.token):
                with contextlib.suppress(FileNotFoundError):
                    os.unlink(self.path)

    def __repr__(self) -> str:
        return f"LogDirLock({str(self.log_dir)!r}, pid={self.pid}, held={self._held})"


def read_holder(log_dir: str | os.PathLike[str]) -> dict[str, Any] | None:
    """Return who holds ``log_dir``'s lock: ``{"pid", "host", "started", "token"}``, or None.

    None means there is no lock file, or it is empty or corrupt.

    Examples:
        >>> import tempfile
        >>> with tempfile.TemporaryDirectory() as d:
        ...     lock = acquire(d)
        ...     read_holder(d)["pid"] == os.getpid()
        ...     lock.release()
        ...     read_holder(d) is None
        True
        True
    """
    seen = _read(Path(log_dir) / LOCK_NAME)
    return None if seen is None else _parse(seen[0])


def writer_alive(log_dir: str | os.PathLike[str]) -> bool:
    """Whether a process that may be writing ``log_dir`` holds its lock, judged without taking it.

    True for a live process on this host (this one included), for a process on another host
    (which cannot be checked from here), and for a lock file still being filled by a writer that
    is just starting; False when there is no lock file, or it names a process that is gone.

    Examples:
        >>> import tempfile
        >>> with tempfile.TemporaryDirectory() as d:
        ...     before = writer_alive(d)
        ...     lock = acquire(d)
        ...     during = writer_alive(d)
        ...     lock.release()
        ...     before, during, writer_alive(d)
        (False, True, False)
    """
    seen = _read(Path(log_dir) / LOCK_NAME)
    if seen is None:
        return False
    holder = _parse(seen[0])
    if holder is None:
        return time.time() - seen[1].st_mtime < _EMPTY_GRACE_S
    return _judge(holder) != "stale"


def acquire(log_dir: str | os.PathLike[str], busy: Callable[[], Any] | None = None,
            lost: Callable[[], Any] | None = None) -> LogDirLock:
    """Make this process the one writer of ``log_dir`` (created if missing), or raise at once.

    Args:
        log_dir: The folder to lock.
        busy: Asked when another owner in this process wants the lock; True ("I am sweeping")
            makes that acquire raise. Bound methods are held weakly.
        lost: Called when another owner in this process takes the lock over; it should close
            its files. Bound methods are held weakly.

    Returns:
        The lock; release it when done (an ``atexit`` hook releases what is left).

    Raises:
        LogDirError: Another live process, another host or a sweeping owner in this process
            holds the lock, or the folder cannot hold a lock file.

    Examples:
        >>> import tempfile
        >>> with tempfile.TemporaryDirectory() as d:
        ...     first = acquire(d)
        ...     second = acquire(d)  # first is not sweeping: taken over in place
        ...     first.held, second.held
        ...     second.release()
        (False, True)
    """
    log_dir = Path(log_dir).resolve()
    path = log_dir / LOCK_NAME
    with _guard:
        old = _registry.get(str(log_dir))
        if old is not None and old.held and old._busy():
            raise LogDirError(f"Another RunManager in this process is sweeping into the log_dir {log_dir}. "
                              f"Wait for its sweep to finish, or use another log_dir.")
        info = {"pid": os.getpid(), "host": socket.gethostname(), "started": time.time(),
                "token": _proc_token(os.getpid()) or ""}
        try:
            log_dir.mkdir(parents=True, exist_ok=True)
            fill_deadline, attempts = time.monotonic() + _FILL_WAIT_S, 0
            while not _create(path, info):
                if attempts > 50:
                    raise LogDirError(f"The lock file {path} keeps changing. Try again, or use another log_dir.")
                if (seen := _read(path)) is None:  # released meanwhile: try again
                    attempts += 1
                    continue
                holder = _parse(seen[0])
                if holder is None and time.time() - seen[1].st_mtime < _EMPTY_GRACE_S:
                    if time.monotonic() < fill_deadline:
                        time.sleep(0.01)
                        continue
                    raise LogDirError(f"Another writer is just starting in the log_dir {log_dir}: its lock "
                                      f"file {path} is still incomplete. Wait for it, or use another log_dir.")
                state = "stale" if holder is None else _judge(holder)
                if state == "self":  # ours, from an idle or collected owner: rewrite it for the new one
                    tmp = path.with_name(f"{LOCK_NAME}.{os.getpid()}.tmp")
                    tmp.write_text(json.dumps(info))
                    os.replace(tmp, path)
                    break
                if holder is not None and state != "stale":
                    raise LogDirError(_held_message(log_dir, path, holder, state == "foreign"))
                if _take_over(path, seen, info):
                    break
                attempts += 1
        except OSError as e:
            raise LogDirError(f"Cannot lock the log_dir {log_dir}: {e}.") from e
        lock = _registry[str(log_dir)] = LogDirLock(log_dir, info, busy, lost)
        if old is not None and old.held:
            old._held = False  # the file is the new owner's now: do not delete it
            try:
                old._lost()
            except Exception as e:  # the new owner has the lock either way
                warnings.warn(f"The previous owner of {log_dir} failed to close: {e!r}.",
                              RuntimeWarning, stacklevel=2)
        return lock


@atexit.register
def _release_all() -> None:
    for lock in list(_registry.values()):
        lock.release()

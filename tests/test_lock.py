"""runmanager.lock with real processes: one writer per log_dir, stale locks taken over, no races."""

from __future__ import annotations

import gc
import json
import os
import socket
import subprocess
import sys
import threading
import time
import weakref
from collections.abc import Callable
from pathlib import Path

import pytest

from runmanager import lock as lock_module
from runmanager.errors import LogDirError
from runmanager.lock import LOCK_NAME, acquire, read_holder

# Holds the lock of argv[1] until its stdin closes, then exits normally (without release()).
HOLD = """
import sys
from runmanager.lock import acquire
acquire(sys.argv[1])
print("held", flush=True)
sys.stdin.read()
"""

# Waits for the "go" file, tries once, writes "won" or "lost <message>", then holds until "end".
RACE = """
import os, sys, time
from pathlib import Path
from runmanager.errors import LogDirError
from runmanager.lock import acquire
log_dir, sync, i = Path(sys.argv[1]), Path(sys.argv[2]), sys.argv[3]
(sync / f"ready-{i}").touch()
while not (sync / "go").exists():
    time.sleep(0.001)
try:
    acquire(log_dir)
    result = "won"
except LogDirError as e:
    result = "lost " + str(e)
(sync / f"result-{i}.tmp").write_text(result)
os.replace(sync / f"result-{i}.tmp", sync / f"result-{i}")
while not (sync / "end").exists():
    time.sleep(0.01)
"""


@pytest.fixture(autouse=True)
def _release_everything():
    yield
    for lock in list(lock_module._registry.values()):
        lock.release()


def start_holder(log_dir: Path) -> subprocess.Popen[str]:
    proc = subprocess.Popen([sys.executable, "-c", HOLD, str(log_dir)],
                            stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True)
    assert proc.stdout is not None and proc.stdout.readline() == "held\n"
    return proc


def stop(proc: subprocess.Popen[str]) -> None:
    assert proc.stdin is not None
    proc.stdin.close()
    assert proc.wait(timeout=10) == 0


def wait_for(condition: Callable[[], bool], timeout: float = 20.0) -> None:
    deadline = time.monotonic() + timeout
    while not condition():
        assert time.monotonic() < deadline, "timed out"
        time.sleep(0.005)


def dead_pid() -> int:
    proc = subprocess.Popen(["true"])
    proc.wait()
    return proc.pid


def write_lock(log_dir: Path, pid: int, token: str = "", host: str | None = None) -> Path:
    path = log_dir / LOCK_NAME
    info = {"pid": pid, "host": host or socket.gethostname(), "started": time.time() - 100, "token": token}
    path.write_text(json.dumps(info))
    return path


class Owner:
    """Stands for a RunManager: says whether it is sweeping, counts how often it lost the lock."""

    def __init__(self, busy: bool = False) -> None:
        self.is_busy = busy
        self.lost_calls = 0

    def busy(self) -> bool:
        return self.is_busy

    def lost(self) -> None:
        self.lost_calls += 1


def test_a_second_process_is_refused_at_once(tmp_path):
    holder = start_holder(tmp_path)
    try:
        before = (tmp_path / LOCK_NAME).read_bytes()
        start = time.monotonic()
        with pytest.raises(LogDirError) as err:
            acquire(tmp_path)
        assert time.monotonic() - start < 0.3
        message = str(err.value)
        assert f"process {holder.pid} on host {socket.gethostname()}" in message
        assert str(tmp_path.resolve()) in message
        assert "Wait for that sweep to finish, or use another log_dir." in message
        assert (tmp_path / LOCK_NAME).read_bytes() == before
        assert read_holder(tmp_path)["pid"] == holder.pid
    finally:
        stop(holder)
    assert not (tmp_path / LOCK_NAME).exists()  # a normal exit releases through atexit


def test_a_killed_holder_leaves_its_lock_which_is_taken_over(tmp_path):
    holder = start_holder(tmp_path)
    holder.kill()
    holder.wait(timeout=10)
    assert read_holder(tmp_path)["pid"] == holder.pid
    lock = acquire(tmp_path)
    holder_now = read_holder(tmp_path)
    assert holder_now["pid"] == os.getpid() and holder_now["token"] == lock.token
    lock.release()
    assert not (tmp_path / LOCK_NAME).exists()


@pytest.mark.skipif(not os.path.isdir("/proc/self"), reason="start-time tokens need /proc")
def test_a_reused_pid_is_taken_over_and_the_real_holder_is_not(tmp_path):
    sleeper = subprocess.Popen(["sleep", "30"])
    try:
        token = lock_module._proc_token(sleeper.pid)
        assert token
        write_lock(tmp_path, sleeper.pid, token)  # the live process itself: refused
        with pytest.raises(LogDirError, match=f"process {sleeper.pid} "):
            acquire(tmp_path)
        write_lock(tmp_path, sleeper.pid, str(int(token) - 1))  # a process that had this pid before
        lock = acquire(tmp_path)
        assert read_holder(tmp_path)["pid"] == os.getpid()
        lock.release()
    finally:
        sleeper.kill()
        sleeper.wait()


def test_a_lock_from_another_host_is_refused_and_explained(tmp_path):
    path = write_lock(tmp_path, dead_pid(), "1", host="elsewhere.example")
    before = path.read_bytes()
    with pytest.raises(LogDirError) as err:
        acquire(tmp_path)
    message = str(err.value)
    assert "on another host, elsewhere.example" in message
    assert f"if that process is gone, delete the lock file {path.resolve()} by hand." in message
    assert path.read_bytes() == before


def race(tmp_path: Path, n: int = 6) -> tuple[dict[int, str], dict | None]:
    """Start n processes that acquire tmp_path/"logs" together; return pid -> result and the holder."""
    sync = tmp_path / "sync"
    sync.mkdir()
    procs = [subprocess.Popen([sys.executable, "-c", RACE, str(tmp_path / "logs"), str(sync), str(i)])
             for i in range(n)]
    try:
        wait_for(lambda: all((sync / f"ready-{i}").exists() for i in range(n)))
        (sync / "go").touch()
        wait_for(lambda: all((sync / f"result-{i}").exists() for i in range(n)))
        results = {p.pid: (sync / f"result-{i}").read_text() for i, p in enumerate(procs)}
        holder = read_holder(tmp_path / "logs")
    finally:
        (sync / "end").touch()
        for p in procs:
            p.wait(timeout=10)
    assert [p.returncode for p in procs] == [0] * n
    assert not (tmp_path / "logs" / LOCK_NAME).exists()
    return results, holder


def check_one_winner(results: dict[int, str], holder: dict | None) -> None:
    winners = [pid for pid, result in results.items() if result == "won"]
    assert len(winners) == 1, results
    assert holder is not None and holder["pid"] == winners[0]
    for pid, result in results.items():
        if pid != winners[0]:
            assert result.startswith("lost ") and f"process {winners[0]} " in result, result


def test_racing_for_a_fresh_lock_exactly_one_wins(tmp_path):
    check_one_winner(*race(tmp_path))


def test_racing_for_a_stale_lock_exactly_one_wins(tmp_path):
    (tmp_path / "logs").mkdir()
    write_lock(tmp_path / "logs", dead_pid(), "1")
    check_one_winner(*race(tmp_path))


def test_same_process_takes_over_from_an_idle_owner_but_not_a_sweeping_one(tmp_path):
    first = Owner()
    first_lock = acquire(tmp_path, busy=first.busy, lost=first.lost)
    second = Owner()
    second_lock = acquire(tmp_path, busy=second.busy, lost=second.lost)
    assert first.lost_calls == 1 and not first_lock.held
    assert second_lock.held and second.lost_calls == 0
    assert read_holder(tmp_path)["pid"] == os.getpid()

    second.is_busy = True
    with pytest.raises(LogDirError, match="Another RunManager in this process is sweeping into"):
        acquire(tmp_path)
    assert second_lock.held and second.lost_calls == 0 and read_holder(tmp_path)["pid"] == os.getpid()


def test_an_owner_that_was_garbage_collected_is_taken_over(tmp_path):
    owner = Owner(busy=True)
    old_lock = acquire(tmp_path, busy=owner.busy, lost=owner.lost)
    owner_ref = weakref.ref(owner)
    del owner
    gc.collect()
    assert owner_ref() is None  # the registry did not keep it alive
    new_lock = acquire(tmp_path)
    assert new_lock.held and not old_lock.held and read_holder(tmp_path)["pid"] == os.getpid()


def test_a_lock_file_being_written_is_waited_for_and_its_writer_named(tmp_path):
    path = tmp_path / LOCK_NAME
    path.write_bytes(b"")  # a writer between its O_EXCL create and its write
    holder = start_holder(tmp_path / "elsewhere")
    writer = threading.Timer(0.1, lambda: path.write_bytes((tmp_path / "elsewhere" / LOCK_NAME).read_bytes()))
    writer.start()
    try:
        with pytest.raises(LogDirError, match=f"process {holder.pid} on host"):
            acquire(tmp_path)
    finally:
        writer.join()
        stop(holder)


def test_release_removes_only_our_own_lock_file(tmp_path):
    lock = acquire(tmp_path)
    assert lock.path == tmp_path.resolve() / LOCK_NAME and lock.path.exists()
    lock.release()
    lock.release()
    assert not lock.held and not lock.path.exists()

    old, new = acquire(tmp_path), None
    new = acquire(tmp_path)
    old.release()  # it was taken over: the file is the new holder's
    assert new.held and read_holder(tmp_path)["token"] == new.token
    new.release()
    assert not new.path.exists()


def test_release_never_removes_another_process_lock(tmp_path):
    lock = acquire(tmp_path)
    lock.path.unlink()  # deleted by hand, and another process took the log_dir
    holder = start_holder(tmp_path)
    try:
        lock.release()
        assert read_holder(tmp_path)["pid"] == holder.pid
    finally:
        stop(holder)


def test_a_takeover_in_progress_is_respected_and_a_stale_one_removed(tmp_path, monkeypatch):
    monkeypatch.setattr(lock_module, "_TAKEOVER_WAIT_S", 0.2)
    stale = write_lock(tmp_path, dead_pid(), "1").read_bytes()
    mutex = tmp_path / (LOCK_NAME + ".takeover")
    mutex.write_text("{}")
    with pytest.raises(LogDirError, match="Another process is taking over the stale lock"):
        acquire(tmp_path)
    assert (tmp_path / LOCK_NAME).read_bytes() == stale and mutex.exists()
    old = time.time() - 60
    os.utime(mutex, (old, old))  # left by a process that died while taking over
    lock = acquire(tmp_path)
    assert read_holder(tmp_path)["pid"] == os.getpid() and not mutex.exists()
    lock.release()


def test_a_normal_exit_without_release_leaves_no_lock_file(tmp_path):
    code = "import sys; from runmanager.lock import acquire; acquire(sys.argv[1]); print('ok')"
    done = subprocess.run([sys.executable, "-c", code, str(tmp_path)], capture_output=True, text=True, timeout=20)
    assert done.stdout == "ok\n", done.stderr
    assert not (tmp_path / LOCK_NAME).exists()


def test_an_empty_lock_file_is_refused_while_young_and_taken_over_when_old(tmp_path):
    path = tmp_path / LOCK_NAME
    path.write_bytes(b"")
    start = time.monotonic()
    with pytest.raises(LogDirError, match="just starting"):
        acquire(tmp_path)
    assert time.monotonic() - start < 2
    assert path.read_bytes() == b""
    old = time.time() - 10
    os.utime(path, (old, old))
    lock = acquire(tmp_path)
    assert read_holder(tmp_path)["pid"] == os.getpid()
    lock.release()

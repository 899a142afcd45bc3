"""executor="ray" and the Ray clusters already on the machine (issue 14).

``RayExecutor(address=None)`` joins the cluster ``ray start`` recorded when it answers, else starts a
private Ray, whatever stale address file is left; ``"local"`` always starts a private Ray;
``"auto"`` and an address join or fail with a RunManagerError that says what to do.

Every test has a Ray temp dir of its own (``RAY_TMPDIR``), so it never reads or writes the
``/tmp/ray`` of other users, and ends only the Ray processes it started: the head of
``ray start --head --block`` in its own process group, ended with ``os.killpg`` (never
``ray stop``, which ends every Ray on the machine).
"""

from __future__ import annotations

import os
import shutil
import socket
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import pytest
import training
from process_groups import end_group

from runmanager import RunManager
from runmanager.errors import InvalidArgumentError, InvalidArgumentTypeError, RunManagerError, SweepError
from runmanager.executors import RayExecutor

ray = pytest.importorskip("ray")
psutil = pytest.importorskip("psutil")

RAY_CLI = str(Path(sys.executable).with_name("ray"))
GRID = {"units": [4, 8]}


def _free_ports(count: int) -> list[int]:
    """``count`` different TCP ports nothing listens on (just closed)."""
    socks = [socket.socket() for _ in range(count)]
    try:
        for sock in socks:
            sock.bind(("", 0))
        return [sock.getsockname()[1] for sock in socks]
    finally:
        for sock in socks:
            sock.close()


def _free_port() -> int:
    return _free_ports(1)[0]


def _reset_auth() -> None:
    """Make this process see RAY_AUTH_MODE again (Ray caches it, and a private ray.init sets it)."""
    try:
        from ray._private.authentication_test_utils import reset_auth_token_state
    except ImportError:  # a Ray without token authentication
        return
    reset_auth_token_state()


def _ours(root: str) -> list[psutil.Process]:
    """The Ray processes of one test: those started with ``RAY_TMPDIR=root`` or naming ``root``
    on their command line (Ray's workers rename theirs ``ray::IDLE``). Zombies are gone already."""
    found = []
    for proc in psutil.process_iter(["cmdline"]):
        if proc.pid == os.getpid():
            continue
        try:
            if root in " ".join(proc.info["cmdline"] or ()) or proc.environ().get("RAY_TMPDIR") == root:
                found.append(proc)
        except (psutil.NoSuchProcess, psutil.AccessDenied):
            continue
    return found


def _wait_gone(root: str, seconds: float) -> list[psutil.Process]:
    deadline = time.monotonic() + seconds
    while (left := _ours(root)) and time.monotonic() < deadline:
        time.sleep(0.2)
    return left


@pytest.fixture
def ray_tmp():
    """A Ray temp dir of this test's own, and an environment that uses it; at the end, no Ray
    process of this test may be left."""
    # Short, under /tmp: Ray's socket paths live in it and must fit in 107 bytes.
    root = tempfile.mkdtemp(prefix="rmray-", dir="/tmp")
    mp = pytest.MonkeyPatch()
    mp.setenv("RAY_TMPDIR", root)
    mp.setenv("RAY_AUTH_MODE", "disabled")
    mp.setenv("RAY_USAGE_STATS_ENABLED", "0")
    mp.delenv("RAY_ADDRESS", raising=False)
    _reset_auth()
    try:
        yield Path(root) / "ray"
    finally:
        if ray.is_initialized():
            ray.shutdown()
        left = _wait_gone(root, 20)
        for proc in left:  # ours: they run from this test's own temp dir
            proc.kill()
        mp.undo()
        _reset_auth()
        shutil.rmtree(root, ignore_errors=True)
        assert not left, f"Ray processes of this test outlived it: {[p.pid for p in left]}"


class Head:
    """A Ray head started by a test with ``ray start --head --block``, in its own process group."""

    def __init__(self, temp: Path, cpus: int = 2) -> None:
        self.temp = temp
        # Ports of its own, not Ray's fixed defaults (10001, 52365...): another Ray on the
        # machine (a test running beside this one, a user's cluster) may hold those.
        self.port, client, agent_http, agent_grpc, metrics, runtime_env = _free_ports(6)
        self.log = temp.parent / "head.log"
        with open(self.log, "wb") as log:
            self.proc = subprocess.Popen(
                [RAY_CLI, "start", "--head", "--block", f"--port={self.port}", f"--num-cpus={cpus}",
                 "--num-gpus=0", "--include-dashboard=false", "--disable-usage-stats", f"--temp-dir={temp}",
                 f"--ray-client-server-port={client}", f"--dashboard-agent-listen-port={agent_http}",
                 f"--dashboard-agent-grpc-port={agent_grpc}", f"--metrics-export-port={metrics}",
                 f"--runtime-env-agent-port={runtime_env}"],
                stdout=log, stderr=subprocess.STDOUT, start_new_session=True, env=dict(os.environ))
        self.address_file = temp / "ray_current_cluster"
        self.address = self._wait_until_up(90)

    def _wait_until_up(self, seconds: float) -> str:
        deadline = time.monotonic() + seconds
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                self.stop()
                pytest.fail(f"ray start --head exited ({self.proc.returncode}):\n"
                            f"{self.log.read_text()[-3000:]}")
            recorded = self.address_file.read_text().strip() if self.address_file.exists() else ""
            if recorded.endswith(f":{self.port}") and self.answers():
                return recorded
            time.sleep(0.2)
        self.stop()
        pytest.fail(f"ray start --head was not up in {seconds} s:\n{self.log.read_text()[-3000:]}")

    def answers(self) -> bool:
        try:
            with socket.create_connection(("127.0.0.1", self.port), timeout=1):
                return True
        except OSError:
            return False

    def class_names(self) -> list[str]:
        """The classes of every actor the head's GCS knows, dead or alive (from a new connection)."""
        ray.init(address=self.address, include_dashboard=False, log_to_driver=False)
        try:
            return [actor["ActorClassName"] for actor in ray._private.state.actors().values()]
        finally:
            ray.shutdown()

    def stop(self) -> None:
        """End the head's process group (and nothing else); remove the address file it left."""
        end_group(self.proc)
        if self.address_file.exists() and self.address_file.read_text().strip().endswith(f":{self.port}"):
            self.address_file.unlink()


@pytest.fixture
def head(ray_tmp):
    started = Head(ray_tmp)
    try:
        yield started
    finally:
        started.stop()


def _sweep(tmp_path, address=None):
    m = RunManager(tmp_path / "runs", verbose=1)
    return m.sweep(training.train, GRID, executor=RayExecutor(address, workers=2))


def _check_sweep(summary, capsys) -> str:
    """Both runs completed; return the sweep's first progress line (where Ray is)."""
    assert summary["status"].tolist() == ["completed", "completed"], summary.to_string()
    lines = capsys.readouterr().out.splitlines()
    assert lines and lines[0].startswith("ray: "), lines[:5]
    return lines[0]


def test_a_ray_address_that_names_no_cluster_is_refused_before_ray_starts():
    with pytest.raises(InvalidArgumentError,
                       match=r"address='10\.0\.0\.5' is not a Ray address.*'10\.0\.0\.5:6379'"):
        RayExecutor("10.0.0.5")
    with pytest.raises(InvalidArgumentTypeError, match=r"address must be None or a str \(the Ray cluster to join\), "
                                                       r"got 6379"):
        RayExecutor(6379)
    assert not ray.is_initialized()


def test_a_cluster_that_does_not_answer_is_a_clear_error_at_once(tmp_path, ray_tmp):
    dead = f"{ray.util.get_node_ip_address()}:{_free_port()}"
    started = time.monotonic()
    with pytest.raises(SweepError, match=rf"No Ray cluster answers at address='{dead}' "
                       r"\(connection refused\).*address=None \(or 'local'\)"):
        _sweep(tmp_path, address=dead)
    # "auto" follows the address file that a `ray start` left: it names the file.
    ray_tmp.mkdir(parents=True)
    (ray_tmp / "ray_current_cluster").write_text(dead)
    with pytest.raises(SweepError, match=rf"address='auto' found the cluster address {dead} in "
                       r".*ray_current_cluster, but that cluster is gone \(connection refused\)"):
        _sweep(tmp_path, address="auto")
    # RAY_ADDRESS is the user's own choice: not silently replaced by a private Ray.
    os.environ["RAY_ADDRESS"] = dead
    try:
        with pytest.raises(SweepError, match=rf"RAY_ADDRESS='{dead}' names a Ray cluster that does not "
                           r"answer \(connection refused\)\. Unset RAY_ADDRESS"):
            _sweep(tmp_path)
    finally:
        del os.environ["RAY_ADDRESS"]
    assert time.monotonic() - started < 10
    assert not ray.is_initialized()


@pytest.mark.slow
def test_a_stale_address_file_starts_a_private_ray(tmp_path, ray_tmp, capsys):
    # What a `ray start --head` leaves behind when it ends without `ray stop` (or the machine
    # restarts): the address of a head that is gone. ray.init() would try to join it.
    dead = f"{ray.util.get_node_ip_address()}:{_free_port()}"
    ray_tmp.mkdir(parents=True)
    (ray_tmp / "ray_current_cluster").write_text(dead)
    first = _check_sweep(_sweep(tmp_path), capsys)
    assert first == ("ray: started a private local Ray (2 CPUs) for this sweep; the cluster recorded in "
                     f"{ray_tmp / 'ray_current_cluster'} ({dead}) is gone (connection refused), "
                     "so it was not joined")
    assert not ray.is_initialized()
    assert (ray_tmp / "ray_current_cluster").read_text() == dead  # not ours to remove


@pytest.mark.slow
def test_a_running_cluster_is_joined_and_its_resources_checked(tmp_path, head, capsys):
    first = _check_sweep(_sweep(tmp_path), capsys)
    assert first == f"ray: joined the running cluster at {head.address} (2 CPUs, 0 GPUs; 2 workers)"
    assert not ray.is_initialized()  # the driver left the cluster...
    assert head.answers()  # ...which runs on,
    names = head.class_names()  # and holds the sweep's two actors (ended) and its queue's.
    assert names.count("RunActor") == 2, names

    # Too small a cluster: a clear error before any run, whichever way it is joined.
    for address in (None, "auto", head.address):
        with pytest.raises(InvalidArgumentError,
                           match=rf"The Ray cluster at {head.address} is too small for this sweep: 3 workers "
                           r"with num_cpus=1 and num_gpus=0 need 3 CPUs \(it has 2\)\. Pass fewer workers"):
            RunManager(tmp_path / "small", verbose=0).sweep(
                training.train, GRID, executor=RayExecutor(address, workers=3))
        assert not ray.is_initialized()
    assert head.class_names().count("RunActor") == 2


@pytest.mark.slow
def test_local_starts_a_private_ray_beside_a_running_cluster(tmp_path, head, capsys):
    first = _check_sweep(_sweep(tmp_path, address="local"), capsys)
    assert first == "ray: started a private local Ray (2 CPUs) for this sweep"
    assert not ray.is_initialized()
    assert head.answers()
    assert "RunActor" not in head.class_names()  # nothing ran on the user's cluster


def test_errors_from_ray_reach_the_user_as_runmanager_errors(tmp_path, ray_tmp, monkeypatch):
    def refuse(*args, **kwargs):
        raise ValueError("When connecting to an existing cluster, num_cpus and num_gpus must not be "
                         "provided.")

    monkeypatch.setattr(ray, "init", refuse)
    with pytest.raises(SweepError, match="Could not start a local Ray for the sweep: When connecting"
                       r".*join it with address='auto'\.$") as info:
        _sweep(tmp_path)
    assert isinstance(info.value, RunManagerError) and isinstance(info.value.__cause__, ValueError)
    # A head that answers, but that Ray cannot join:
    monkeypatch.setattr("runmanager.executors.ray_actors._unreachable", lambda address: None)
    with pytest.raises(SweepError, match=r"Could not join the Ray cluster at 10\.0\.0\.5:6379: When "
                       r"connecting .*Check the cluster with `ray status`, or pass address=None "
                       r"\(or 'local'\)"):
        _sweep(tmp_path, address="10.0.0.5:6379")
    assert not ray.is_initialized()

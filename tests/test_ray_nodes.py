"""Ray clusters of several nodes, as a user of a real cluster has them (issue 13).

A head without CPUs (``ray start --head --num-cpus=0``) and worker nodes joined to it with
``ray start --address ... --block``, each in its own process group, ended with
``os.killpg`` by the test (never ``ray stop``). A node may run in its own mount namespace
(``unshare -m``) with an empty tmpfs over the driver's folder, so that it sees none of the
driver's files, as a node of a cluster without a shared file system.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
import textwrap
import threading
import time
from pathlib import Path

import pytest
import training
from test_ray_cluster import RAY_CLI, Head, _free_ports, end_group, ray_tmp  # noqa: F401 - ray_tmp is a fixture

from runmanager import RunManager, load_results, load_summary
from runmanager.errors import InvalidArgumentError, InvalidArgumentTypeError
from runmanager.executors import RayExecutor

ray = pytest.importorskip("ray")

#: A node found dead within about two seconds (Ray's default is about fifteen).
FAST_HEALTH_CHECK = {"RAY_health_check_period_ms": "500", "RAY_health_check_failure_threshold": "3",
                     "RAY_health_check_timeout_ms": "500"}


class Node:
    """A worker node joined to ``head`` with ``ray start --address ... --block``, in its own process
    group; with ``hide``, in a mount namespace of its own with an empty tmpfs over that folder."""

    def __init__(self, head: Head, name: str, cpus: int, hide: Path | None = None) -> None:
        self.name = name
        agent_http, agent_grpc, metrics, runtime_env, manager = _free_ports(5)
        command = [RAY_CLI, "start", f"--address={head.address}", "--block", f"--num-cpus={cpus}", "--num-gpus=0",
                   "--disable-usage-stats", f"--dashboard-agent-listen-port={agent_http}",
                   f"--dashboard-agent-grpc-port={agent_grpc}", f"--metrics-export-port={metrics}",
                   f"--runtime-env-agent-port={runtime_env}", f"--node-manager-port={manager}"]
        if hide is not None:
            if shutil.which("unshare") is None:
                pytest.fail("this test needs unshare (util-linux) and the right to mount (root)")
            quoted = " ".join(f"'{part}'" for part in command)
            command = ["unshare", "-m", "sh", "-c", f"mount -t tmpfs tmpfs '{hide}' && exec {quoted}"]
        self.log = head.temp.parent / f"node-{name}.log"
        with open(self.log, "wb") as log:
            self.proc = subprocess.Popen(command, stdout=log, stderr=subprocess.STDOUT, start_new_session=True,
                                         env={**os.environ, "RM_TEST_NODE": name})
        deadline = time.monotonic() + 90
        while "Ray runtime started" not in self.log.read_text(errors="replace"):
            if self.proc.poll() is not None or time.monotonic() > deadline:
                self.stop()
                pytest.fail(f"node {name} did not start:\n{self.log.read_text(errors='replace')[-3000:]}")
            time.sleep(0.2)

    def kill(self) -> None:
        """The node dies at once, as a machine that loses power: its raylet and workers, SIGKILL."""
        end_group(self.proc, grace=0)

    def stop(self) -> None:
        end_group(self.proc)


@pytest.fixture
def cluster(ray_tmp):  # noqa: F811 - the fixture of test_ray_cluster
    """Start nodes with ``cluster(kind, ...)``: a head without CPUs, then worker nodes; all are
    ended at the end of the test, whatever happens."""
    started: list = []

    def start(name: str | None = None, cpus: int = 1, hide: Path | None = None):
        if name is None:
            with pytest.MonkeyPatch.context() as mp:
                for key, value in FAST_HEALTH_CHECK.items():
                    mp.setenv(key, value)
                started.append(Head(ray_tmp, cpus=0))
        else:
            started.append(Node(started[0], name, cpus, hide))
        return started[-1]

    try:
        yield start
    finally:
        for node in reversed(started):
            node.stop()


DRIVER = '''
import functools, os, sys

import helper
from runmanager import RunManager
from runmanager.executors import RayExecutor


@functools.cache
def data():                          # cached per worker, as the docs recommend
    return helper.make_data()


def train(run, callbacks):
    x, y = data()
    helper.model(run.units).fit(x, y, epochs=2, batch_size=32, callbacks=callbacks, verbose=0)


class WhereManager(RunManager):
    def extra_columns(self):
        return {"node": os.environ.get("RM_TEST_NODE", "driver"),
                "user_env": os.environ.get("RM_TEST_FROM_RUNTIME_ENV", "unset"),
                "sees_driver_files": os.path.exists(os.path.join(DRIVER_DIR, "helper.py"))}


DRIVER_DIR = "__DRIVER_DIR__"  # the driver's own folder (the actors run in a copy of it)

if __name__ == "__main__":
    summary = WhereManager(sys.argv[1], verbose=1).sweep(
        train, {"units": [4, 8]}, executor=RayExecutor(sys.argv[2], workers=2,
                                                       runtime_env={"env_vars": {"RM_TEST_FROM_RUNTIME_ENV": "yes"}}))
    print(summary[["run", "status", "error"]].to_string())
'''

HELPER = '''
import numpy as np


def make_data():
    rng = np.random.default_rng(0)
    x = rng.normal(size=(200, 8)).astype("float32")
    return x, (x[:, 0] > 0).astype("int32")


def model(units):
    import keras

    net = keras.Sequential([keras.Input((8,)), keras.layers.Dense(units, activation="relu"),
                            keras.layers.Dense(2, activation="softmax")])
    net.compile(optimizer="sgd", loss="sparse_categorical_crossentropy", metrics=["accuracy"])
    return net
'''


@pytest.mark.slow
def test_a_node_without_the_drivers_files_runs_every_run(tmp_path, cluster):
    driver_dir = tmp_path / "project"
    driver_dir.mkdir()
    (driver_dir / "sweep.py").write_text(textwrap.dedent(DRIVER).replace("__DRIVER_DIR__", str(driver_dir)))
    (driver_dir / "helper.py").write_text(textwrap.dedent(HELPER))
    head = cluster()
    cluster("worker", cpus=2, hide=driver_dir)
    log_dir = tmp_path / "runs"  # outside the hidden folder: the driver alone writes it
    done = subprocess.run([sys.executable, "sweep.py", str(log_dir), head.address], cwd=driver_dir,
                          capture_output=True, text=True, timeout=240)
    assert done.returncode == 0, done.stdout[-3000:] + done.stderr[-3000:]
    results = load_results(log_dir)
    summary = results.groupby("run").last()
    assert set(summary["node"]) == {"worker"}, results.to_string()
    assert not results["sees_driver_files"].any()  # so the code came with the job, not from the disk
    assert set(results["user_env"]) == {"yes"}  # the user's runtime_env reached the actors too
    assert load_summary(log_dir)["status"].tolist() == ["completed", "completed"]
    assert f"ray: ships {driver_dir} (working_dir, with the driver's script)" in done.stdout


class NodeManager(RunManager):
    def extra_columns(self):
        return {"node": os.environ.get("RM_TEST_NODE", "driver")}


@pytest.mark.slow
def test_a_node_that_dies_mid_sweep_has_its_run_retried_on_the_other(tmp_path, cluster, capsys):
    head = cluster()
    nodes = {name: cluster(name, cpus=1) for name in ("a", "b")}
    log_dir = tmp_path / "runs"
    killed: list[tuple[str, int]] = []

    def kill_a_node_mid_run():
        # As soon as a run has finished two epochs on some node, that node dies.
        deadline = time.monotonic() + 180
        while time.monotonic() < deadline and not killed:
            time.sleep(0.3)
            try:
                rows = load_results(log_dir)
            except Exception:  # noqa: BLE001 - nothing written yet
                continue
            if len(rows) and "node" in rows and (rows["epoch"] >= 2).any():
                name, run = rows.loc[rows["epoch"] >= 2, ["node", "run"]].iloc[0]
                nodes[name].kill()
                killed.append((name, int(run)))

    watcher = threading.Thread(target=kill_a_node_mid_run, daemon=True)
    watcher.start()
    m = NodeManager(log_dir, verbose=1)
    # Epochs of a third of a second (the pause reaches the actors through the runtime_env), so
    # that the node dies in the middle of a run.
    summary = m.sweep(training.train_slow, {"units": [4, 8, 16], "num_epochs": [6]},
                      executor=RayExecutor(head.address, workers=2, runtime_env={"env_vars": {"RM_TEST_PAUSE": "0.3"}}))
    watcher.join(timeout=5)
    assert killed, "no node was killed"
    (dead, run), = killed
    survivor = ({"a", "b"} - {dead}).pop()
    assert summary["status"].tolist() == ["completed"] * 3, summary.to_string()
    results = load_results(log_dir)
    assert not results.duplicated(["run", "epoch"]).any(), results.to_string()
    assert results.groupby("run")["epoch"].max().tolist() == [6, 6, 6]
    # The run on the dead node ran again, from its start, on the other node; its first attempt is gone.
    assert set(results.loc[results["run"] == run, "node"]) == {survivor}, results.to_string()
    out = capsys.readouterr().out
    assert f"run {run}: Ray actor died" in out and "(retry 1 of 1)" in out, out
    assert "the sweep goes on with 1 worker" in out, out
    assert not ray.is_initialized()


def test_ray_options_are_checked_when_the_executor_is_made(tmp_path):
    with pytest.raises(InvalidArgumentError, match=r"max_retries must be an int of at least 0 .* got -1"):
        RayExecutor(max_retries=-1)
    with pytest.raises(InvalidArgumentTypeError, match=r"runtime_env must be None or a dict .* got 'pip'"):
        RayExecutor(runtime_env="pip")
    with pytest.raises(InvalidArgumentError, match=r"num_gpus=1\.5: a Ray resource above 1 must be a whole number"):
        RayExecutor(num_gpus=1.5)
    assert not ray.is_initialized()


def test_train_that_cannot_be_shipped_is_refused_before_any_run(tmp_path):
    from runmanager.executors.shipping import plan_shipment

    # The driver's script is not in the working_dir the user gives: the actors could not import it.
    main = sys.modules["__main__"]
    script = tmp_path / "sweep.py"
    script.write_text("")
    fake_train = type(training.train)(training.train.__code__, {}, "train")
    fake_train.__module__ = "__main__"
    monkey = pytest.MonkeyPatch()
    monkey.setattr(main, "__file__", str(script), raising=False)
    monkey.setattr(main, "train", fake_train, raising=False)
    try:
        with pytest.raises(InvalidArgumentError, match=r"runtime_env\['working_dir'\]='/elsewhere' does not hold "
                           r"the driver's script .*sweep\.py"):
            plan_shipment((None, fake_train), {"working_dir": "/elsewhere"}, what="train=train")
        plan = plan_shipment((None, fake_train), None, what="train=train")
        assert plan.runtime_env == {"working_dir": str(tmp_path)} and plan.main == "sweep.py"
        # A module of the driver's own that is not beside the script goes as py_modules.
        # A module of the driver's own that is not beside the script goes as py_modules, with
        # the modules beside it that it may import.
        plan = plan_shipment((None, training.train), None, what="train=train")
        assert list(plan.runtime_env) == ["py_modules"] and plan.main is None
        assert training.__file__ in plan.runtime_env["py_modules"], plan
        assert sys.modules["test_ray_cluster"].__file__ in plan.runtime_env["py_modules"], plan
    finally:
        monkey.undo()


CHECKPOINT_DRIVER = '''
import os, signal, sys

import helper
from runmanager import RunManager
from runmanager.executors import RayExecutor

STARTS = "__STARTS__"


def train(run, callbacks, checkpoint):
    import keras

    with open(STARTS, "a") as starts:
        starts.write(f"{os.environ.get('RM_TEST_NODE', 'driver')} {checkpoint.epoch} {checkpoint.model is not None}\\n")

    class Die(keras.callbacks.Callback):
        def on_epoch_end(self, epoch, logs=None):  # the actor dies once, after epoch 4's checkpoint
            if epoch + 1 == 4 and not os.path.exists(STARTS + ".killed"):
                open(STARTS + ".killed", "w").close()
                os.kill(os.getpid(), signal.SIGKILL)

    x, y = helper.make_data()
    model = checkpoint.model or helper.model(run.units)
    model.fit(x, y, epochs=6, initial_epoch=checkpoint.epoch, batch_size=32, callbacks=[*callbacks, Die()],
              verbose=0)


if __name__ == "__main__":
    summary = RunManager(sys.argv[1], verbose=1).sweep(train, {"units": [8]},
                                                       executor=RayExecutor(sys.argv[2], workers=1), checkpoint=True)
    print(summary[["run", "status", "checkpoint", "error"]].to_string())
'''


@pytest.mark.slow
def test_a_node_without_the_log_dir_sends_checkpoints_to_the_driver_and_resumes_from_them(tmp_path, cluster):
    driver_dir = tmp_path / "project"
    driver_dir.mkdir()
    starts = tmp_path / "starts.txt"  # outside the hidden folder: the node writes it too
    (driver_dir / "sweep.py").write_text(textwrap.dedent(CHECKPOINT_DRIVER).replace("__STARTS__", str(starts)))
    (driver_dir / "helper.py").write_text(textwrap.dedent(HELPER))
    head = cluster()
    cluster("worker", cpus=1, hide=driver_dir)
    log_dir = driver_dir / "runs"  # inside the hidden folder: the node cannot see it
    done = subprocess.run([sys.executable, "sweep.py", str(log_dir), head.address], cwd=driver_dir,
                          capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stdout[-3000:] + done.stderr[-3000:]
    # The second start, on the node, goes on from the checkpoint the driver wrote from its bytes.
    assert starts.read_text().splitlines() == ["worker 0 False", "worker 4 True"], done.stdout
    assert "from its checkpoint after epoch 4" in done.stdout, done.stdout
    assert load_results(log_dir)["epoch"].tolist() == [1, 2, 3, 4, 5, 6]
    summary = load_summary(log_dir)
    assert summary["status"].tolist() == ["completed"] and summary["checkpoint"][0] == "checkpoints/0001/best.keras"
    assert sorted(p.name for p in (log_dir / "checkpoints" / "0001").iterdir()) == ["best.keras"]
    runmanager_load = __import__("runmanager").load_model(log_dir)
    assert runmanager_load.count_params() > 0

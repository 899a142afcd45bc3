"""Sweeps on a real Dask cluster: a private LocalCluster, a user's client, killed workers and
retries, Ctrl-C, pruning, repeats, an Optuna search, workers started apart from the driver, bad
options."""

from __future__ import annotations

import json
import operator
import os
import re
import shutil
import signal
import subprocess
import sys
import textwrap
import time

import dask
import pandas as pd
import psutil
import pytest
import test_pruning
import training
from distributed import Client, LocalCluster
from process_groups import end_group

from runmanager import (
    InvalidArgumentError,
    InvalidArgumentTypeError,
    MissingExtraError,
    OptunaSearch,
    RunManager,
    SweepError,
    load_results,
    load_summary,
)
from runmanager.executors import DaskExecutor
from runmanager.pruning import SuccessiveHalvingPruner
from runmanager.sinks import Sink

GRID = {"units": [4, 8], "learning_rate": [0.05, 0.1]}
WORKER_COLUMNS = ["pid", "cuda", "threads"]
REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
#: A user's LocalCluster: two single-threaded worker processes, no dashboard (and its HTTP server
#: on a free port).
CLUSTER = {"n_workers": 2, "threads_per_worker": 1, "processes": True, "dashboard_address": None,
           "scheduler_kwargs": {"dashboard_address": ":0"}}


@pytest.fixture(scope="module")
def client():
    """A user's cluster, shared by the tests of this module: two single-threaded worker processes,
    each offering a resource GPU=1 (as `dask worker --resources GPU=1` would; Dask's resources are
    labels). Starting it sets OMP_NUM_THREADS=1 and more in this process: they are put back."""
    before = dict(os.environ)
    cluster = LocalCluster(**CLUSTER, resources={"GPU": 1})
    os.environ.clear()
    os.environ.update(before)
    client = Client(cluster)
    yield client
    client.close()
    cluster.close()
    os.environ.clear()
    os.environ.update(before)


@pytest.fixture(scope="module")
def sequential(tmp_path_factory):
    log_dir = tmp_path_factory.mktemp("sequential")
    RunManager(log_dir, verbose=0).sweep(training.train, GRID, seed=0)
    return load_results(log_dir), load_summary(log_dir)


def same_rows(a: pd.DataFrame, b: pd.DataFrame) -> None:
    """The same columns, runs, epochs and params; metrics within rtol 1e-4."""
    assert list(a.columns) == list(b.columns)
    columns = [c for c in a.columns if not c.endswith("duration")]
    pd.testing.assert_frame_equal(a[columns], b[columns], check_dtype=False, rtol=1e-4)


def journal(log_dir) -> list[dict]:
    return [json.loads(line) for line in (log_dir / "journal.jsonl").read_text().splitlines()]


def starts(log_dir, run: int) -> int:
    return sum(1 for event in journal(log_dir) if event["type"] == "run_start" and event["run"] == run)


def train_paused(run, callbacks):
    """``run.num_epochs`` epochs of a tiny MLP, each followed by a pause of ``run.pause`` seconds."""
    import keras

    class Pause(keras.callbacks.Callback):
        def on_epoch_end(self, epoch, logs=None):
            time.sleep(run.pause)

    x, y = training.data()
    model = training.build_model(run.units)
    model.fit(x, y, epochs=run.num_epochs, batch_size=64, callbacks=[*callbacks, Pause()], verbose=0)


class KillWorker(Sink):
    """In the driver: send ``signum`` to the worker process that runs ``run`` when its epoch
    ``epoch`` arrives (its pid is in the row's extra column), once."""

    def __init__(self, run: int, epoch: int, signum: int = signal.SIGKILL) -> None:
        self.run, self.epoch, self.signum = run, epoch, signum
        self.killed: int | None = None

    def on_epoch_end(self, event, record):
        if (event.run, event.epoch) == (self.run, self.epoch) and self.killed is None:
            self.killed = event.extras["pid"]
            os.kill(self.killed, self.signum)


class CtrlC(Sink):
    """In the driver: Ctrl-C as the epoch ``epoch`` of run 1 arrives."""

    def __init__(self, epoch: int) -> None:
        self.epoch = epoch

    def on_epoch_end(self, event, record):
        if (event.run, event.epoch) == (1, self.epoch):
            raise KeyboardInterrupt


def test_a_private_cluster_gives_the_rows_of_sequential_and_leaves_the_environment_as_it_was(
        tmp_path, sequential, capsys):
    before = dict(os.environ)
    m = training.WorkerInfoManager(tmp_path, verbose=1)
    summary = m.sweep(training.train, GRID, executor="dask", workers=2, seed=0)
    assert dict(os.environ) == before  # no OMP_NUM_THREADS=1 left behind by the LocalCluster
    results = load_results(tmp_path)
    same_rows(results.drop(columns=WORKER_COLUMNS), sequential[0])
    same_rows(summary.drop(columns=WORKER_COLUMNS), sequential[1])
    pids = set(results["pid"])
    assert len(pids) == 2 and os.getpid() not in pids  # two worker processes ran them, not the driver
    assert set(results["threads"]) == {str(max(1, os.cpu_count() // 2))}  # each its share of the cores
    out = capsys.readouterr().out
    assert "dask: started a private LocalCluster of 2 worker processes for this sweep" in out
    assert sum(1 for line in out.splitlines() if line.split()[:1] in (["1"], ["2"], ["3"], ["4"])) == 12
    assert "sweep finished: 4 completed" in out
    time.sleep(0.5)
    assert not [pid for pid in pids if psutil.pid_exists(pid) and psutil.Process(pid).status() != "zombie"]


def test_a_users_client_is_left_running_and_workers_caps_the_runs_at_once(tmp_path, client):
    m = training.WorkerInfoManager(tmp_path / "one", verbose=0)
    summary = m.sweep(training.train, [{"units": [4, 8]}, {"units": [16], "fail": ["x"]}],
                      executor=DaskExecutor(client, workers=1))
    assert summary["status"].tolist() == ["completed", "completed", "failed"]
    assert summary["error"].tolist()[2] == "RuntimeError: run asked to fail: x"
    ends = [(event["type"], event["run"]) for event in journal(tmp_path / "one") if event["type"] in ("run_start", "run_end")]
    assert ends == [("run_start", 1), ("run_end", 1), ("run_start", 2), ("run_end", 2), ("run_start", 3), ("run_end", 3)]
    assert client.status == "running" and client.submit(operator.add, 1, 2).result(timeout=30) == 3
    # Without workers=, as many runs at once as the cluster has workers.
    RunManager(tmp_path / "all", verbose=0).sweep(training.train, {"units": [4, 8]}, executor=DaskExecutor(client))
    assert next(event for event in journal(tmp_path / "all") if event["type"] == "sweep")["workers"] == 2
    assert client.submit(operator.add, 2, 2).result(timeout=30) == 4


@pytest.mark.parametrize(("signum", "max_retries"), [(signal.SIGKILL, 2), (signal.SIGKILL, 0), (signal.SIGTERM, 2)],
                         ids=["SIGKILL", "SIGKILL-no-retries", "SIGTERM"])
def test_a_run_whose_worker_is_killed_runs_again_within_max_retries(tmp_path, client, capsys, signum, max_retries):
    """SIGKILL as out of memory does it; SIGTERM as a batch scheduler preempts a job."""
    killer = KillWorker(run=2, epoch=2, signum=signum)
    m = training.WorkerInfoManager(tmp_path, verbose=1, sinks=[killer])
    summary = m.sweep(train_paused, {"units": [4, 8, 16], "num_epochs": [8], "pause": [0.1]},
                      executor=DaskExecutor(client, max_retries=max_retries), max_consecutive_failures=0)
    results = load_results(tmp_path)
    assert not results.duplicated(["run", "epoch"]).any()
    out = capsys.readouterr().out
    retried = re.findall(r"run 2: its Dask worker (tcp://\S+) died or left the cluster; running it again "
                         r"\(retry 1 of 2\)", out)
    if max_retries:
        assert summary["status"].tolist() == ["completed"] * 3
        assert starts(tmp_path, 2) == 2
        assert results.groupby("run")["epoch"].apply(list).tolist() == [list(range(1, 9))] * 3
        assert killer.killed not in set(results[results["run"] == 2]["pid"])  # its second start, elsewhere
        assert len(retried) == 1
    else:
        assert summary["status"].tolist() == ["completed", "interrupted", "completed"]
        assert re.fullmatch(r"its Dask worker tcp://\S+ died or left the cluster", summary["error"][1])
        assert 2 <= summary["epochs"][1] < 8 and starts(tmp_path, 2) == 1
        assert not retried
    assert client.submit(operator.add, 1, 2).result(timeout=60) == 3
    client.wait_for_workers(2, timeout=120)  # the cluster replaced its worker (slowly on a busy machine)


def test_a_run_dask_gave_up_on_is_submitted_again_by_the_sweep(tmp_path, capsys):
    """With allowed-failures=0 the scheduler gives up on a task at its worker's first death
    (KilledWorker): the sweep submits it again, within max_retries."""
    before = dict(os.environ)
    with dask.config.set({"distributed.scheduler.allowed-failures": 0}):
        cluster = LocalCluster(**CLUSTER)
    os.environ.clear()
    os.environ.update(before)
    try:
        with Client(cluster) as own:
            m = training.WorkerInfoManager(tmp_path, verbose=1, sinks=[KillWorker(run=1, epoch=2)])
            summary = m.sweep(train_paused, {"units": [4], "num_epochs": [6], "pause": [0.1]},
                              executor=DaskExecutor(own, max_retries=1))
    finally:
        cluster.close()
        os.environ.clear()
        os.environ.update(before)
    assert summary["status"].tolist() == ["completed"] and starts(tmp_path, 1) == 2
    assert load_results(tmp_path)["epoch"].tolist() == [1, 2, 3, 4, 5, 6]
    out = capsys.readouterr().out
    assert out.count("run 1: ") == 1 and "; running it again (retry 1 of 1)" in out


def test_ctrl_c_cancels_the_tasks_records_their_runs_interrupted_and_frees_the_workers(tmp_path, client):
    client.wait_for_workers(2, timeout=120)  # both runs start, one on each worker
    m = RunManager(tmp_path, verbose=0, sinks=[CtrlC(epoch=2)])
    with pytest.raises(KeyboardInterrupt):
        m.sweep(train_paused, {"units": [4, 8], "num_epochs": [2000], "pause": [0.05]}, executor=DaskExecutor(client))
    summary = load_summary(tmp_path)
    assert summary["status"].tolist() == ["interrupted", "interrupted"]
    assert set(summary["error"]) == {"KeyboardInterrupt"}
    # Each run had at least 100 s of epochs left (2000 x 0.05 s): the workers free within 30 s only
    # because a cancelled run stops at its next epoch. (Run 2 may be far ahead of run 1, whose
    # worker, a replacement of a killed one, imported Keras first.)
    deadline = time.monotonic() + 30
    while any(client.processing().values()):
        assert time.monotonic() < deadline, client.processing()
        time.sleep(0.1)
    assert load_results(tmp_path).groupby("run").size().max() < 600


def test_a_pruner_in_the_driver_stops_runs_on_dask_workers_as_worked_by_hand(tmp_path, client):
    pruner = SuccessiveHalvingPruner("val_accuracy", reduction_factor=3)
    summary = test_pruning.sweep(tmp_path, test_pruning.ASHA_SCORES, 9, pruner,
                                 executor=DaskExecutor(client, workers=1))
    assert summary["status"].tolist() == test_pruning.ASHA_STATUSES
    assert summary["epochs"].tolist() == test_pruning.ASHA_EPOCHS
    assert load_results(tmp_path).groupby("run").size().tolist() == test_pruning.ASHA_EPOCHS


def test_repeats_and_an_optuna_search_run_on_dask_with_resources(tmp_path, client):
    client.wait_for_workers(2, timeout=120)
    summary = RunManager(tmp_path / "repeats", verbose=0).sweep(
        training.train, {"units": [4, 8]}, executor=DaskExecutor(client, resources={"GPU": 1}), repeats=2, seed=0)
    assert summary["repeat"].tolist() == [1, 2, 1, 2] and (summary["status"] == "completed").all()
    assert next(event for event in journal(tmp_path / "repeats") if event["type"] == "sweep")["workers"] == 2
    assert summary["val_loss"][0] != summary["val_loss"][1]  # repeats are seeded apart
    search = OptunaSearch({"units": [4, 8, 16], "learning_rate": [0.01, 0.05, 0.1]}, 4, metric="val_loss", seed=0)
    summary = RunManager(tmp_path / "optuna", verbose=0).sweep(training.train, search, executor=DaskExecutor(client))
    assert (summary["status"] == "completed").all() and len(summary) == 4
    told = {(trial.params["units"], trial.params["learning_rate"]): trial.value
            for trial in search.study.trials if trial.state.name == "COMPLETE"}
    runs = zip(summary["units"], summary["learning_rate"])
    assert [told[run] for run in runs] == pytest.approx(summary["val_loss"].tolist())  # each told with its metric


def test_a_worker_that_cannot_import_train_stops_the_sweep_with_its_own_error(tmp_path, client):
    folder = tmp_path / "experiments"
    folder.mkdir()
    (folder / "elsewhere_dask.py").write_text("import training\n\n\ndef train(run, callbacks):\n"
                                              "    training.train(run, callbacks)\n")
    sys.path.insert(0, str(folder))
    try:
        import elsewhere_dask
    finally:
        sys.path.remove(str(folder))
    try:
        m = RunManager(tmp_path / "log", verbose=0)
        with pytest.raises(SweepError) as caught:
            m.sweep(elsewhere_dask.train, {"units": [2, 4]}, executor=DaskExecutor(client))
    finally:
        sys.modules.pop("elsewhere_dask", None)
    message = str(caught.value)
    assert message.startswith("A worker could not start, so no run of this sweep can: ModuleNotFoundError: "
                              "No module named 'elsewhere_dask'. Dask workers load train")
    assert "client.upload_file" in message and "The worker's error:\nTraceback" in message
    summary = load_summary(tmp_path / "log")
    assert set(summary["status"]) == {"interrupted"}


SCRIPT = textwrap.dedent(
    """
    import sys

    from dask.distributed import Client

    import training
    from runmanager import RunManager
    from runmanager.executors import DaskExecutor


    def train(run, callbacks, checkpoint):  # in the driver's script: the workers import it from its path
        training.train_resumable(run, callbacks, checkpoint)


    if __name__ == "__main__":
        with Client(sys.argv[1]) as client:
            RunManager(sys.argv[2], verbose=1).sweep(train, {"units": [4, 8], "num_epochs": [6]},
                                                     executor=DaskExecutor(client), checkpoint=True)
    """
)


def test_a_worker_started_apart_imports_the_drivers_script_and_sends_checkpoints_it_cannot_write(tmp_path):
    """A scheduler and a worker started on their own, as dask-jobqueue starts them in batch jobs.
    The worker knows neither the driver's script nor the tests' folder, and runs in a mount
    namespace where the log_dir's folder is an empty tmpfs: it imports the script from its path,
    finds `training` in the driver's folders, sends its checkpoints' bytes to the driver, and,
    killed mid-run, its run goes on from its checkpoint, whose bytes the driver sends back."""
    if shutil.which("unshare") is None:
        pytest.fail("this test needs unshare (util-linux) and the right to mount (root)")
    env = {k: v for k, v in os.environ.items() if not k.startswith(("OMP_", "MKL_", "OPENBLAS_"))}
    env["PYTHONPATH"] = REPO  # runmanager alone: the folder of `training` reaches them from the driver
    starts = tmp_path / "starts.txt"
    worker_env = {**env, "RM_TEST_STARTS": str(starts), "RM_TEST_KILL_AT": "4"}
    elsewhere, logs = tmp_path / "elsewhere", tmp_path / "logs"
    elsewhere.mkdir()
    logs.mkdir()
    address_file = tmp_path / "scheduler.json"
    processes = [subprocess.Popen([sys.executable, "-m", "distributed.cli.dask_scheduler", "--host", "127.0.0.1",
                                   "--port", "0", "--no-dashboard", "--scheduler-file", str(address_file)],
                                  cwd=elsewhere, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
                                  start_new_session=True)]
    worker_log = tmp_path / "worker.log"
    try:
        deadline = time.monotonic() + 60
        while not address_file.exists():
            assert time.monotonic() < deadline, "the scheduler did not start"
            time.sleep(0.1)
        time.sleep(0.2)
        address = json.loads(address_file.read_text())["address"]
        worker = " ".join(f"'{part}'" for part in [sys.executable, "-m", "distributed.cli.dask_worker", address,
                                                   "--nthreads", "1", "--no-dashboard"])
        with open(worker_log, "wb") as log:
            processes.append(subprocess.Popen(["unshare", "-m", "sh", "-c",
                                               f"mount -t tmpfs tmpfs '{logs}' && exec {worker}"],
                                              cwd=elsewhere, env=worker_env, stdout=log, stderr=subprocess.STDOUT,
                                              start_new_session=True))
        with Client(address) as probe:
            probe.wait_for_workers(1, timeout=60)
        script = tmp_path / "driver" / "sweep.py"
        script.parent.mkdir()
        script.write_text(SCRIPT)
        driver_env = {**env, "PYTHONPATH": os.pathsep.join([REPO, os.path.dirname(training.__file__)])}
        done = subprocess.run([sys.executable, str(script), address, str(logs / "log")], cwd=script.parent,
                              env=driver_env, capture_output=True, text=True, timeout=300)
        assert done.returncode == 0, done.stderr[-3000:] + worker_log.read_text(errors="replace")[-3000:]
    finally:
        for process in reversed(processes):
            end_group(process, grace=10)
    assert f"dask: using the cluster at {address} (1 worker; 1 run at once)" in done.stdout
    assert re.search(r"run 2: its Dask worker tcp://\S+ died or left the cluster; running it again from its "
                     r"checkpoint after epoch 4 \(retry 1 of 2\)", done.stdout)
    summary = load_summary(logs / "log")
    assert summary["status"].tolist() == ["completed", "completed"]
    assert sorted(starts.read_text().splitlines()) == ["4 0 False", "8 0 False", "8 4 True"]
    results = load_results(logs / "log")
    assert results.groupby("run")["epoch"].apply(list).tolist() == [[1, 2, 3, 4, 5, 6]] * 2
    assert sorted(str(path.relative_to(logs / "log")) for path in (logs / "log").rglob("*.keras")) == [
        "checkpoints/0001/best.keras", "checkpoints/0002/best.keras"]  # written by the driver alone


@pytest.mark.parametrize(("make", "error", "match"), [
    (lambda: DaskExecutor(workers=0), InvalidArgumentError, r"workers must be an int of at least 1 \(runs at once\), "
                                                            r"got 0"),
    (lambda: DaskExecutor(client="tcp://x:8786"), InvalidArgumentTypeError,
     r"client must be None .* or a dask.distributed.Client, got 'tcp://x:8786'\. To use the scheduler at "
     r"'tcp://x:8786', pass DaskExecutor\(Client\('tcp://x:8786'\)\)"),
    (lambda: DaskExecutor(resources="GPU"), InvalidArgumentTypeError, r"resources must be None or a dict of Dask "
                                                                      r"worker resources per run.*got 'GPU'"),
    (lambda: DaskExecutor(resources={"GPU": 0}), InvalidArgumentError, r"resources\['GPU'\] must be a positive"),
    (lambda: DaskExecutor(resources={"GPU": 1}), InvalidArgumentError, r"needs a cluster whose workers offer them"),
    (lambda: DaskExecutor(max_retries=-1), InvalidArgumentError, r"max_retries must be an int of at least 0"),
])
def test_bad_options_are_refused_when_the_executor_is_made(make, error, match):
    with pytest.raises(error, match=match):
        make()


def test_resources_no_worker_offers_are_refused_before_any_run(tmp_path, client):
    m = RunManager(tmp_path, verbose=0)
    with pytest.raises(InvalidArgumentError, match=r"No worker of the Dask cluster at tcp://\S+ offers "
                                                   r"resources=\{'GPU': 2\} \(they offer GPU=1\)"):
        m.sweep(training.train, {"units": [4]}, executor=DaskExecutor(client, resources={"GPU": 2}))
    assert not [event for event in journal(tmp_path) if event["type"] == "run_start"]


def test_missing_dask_names_the_extra(tmp_path):
    code = ("import sys; sys.modules['distributed'] = None\n"
            "import training\nfrom runmanager import RunManager\n"
            f"RunManager({str(tmp_path)!r}, verbose=0).sweep(training.train, {{'units': [4]}}, executor='dask')")
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120)
    assert done.returncode != 0
    assert 'pip install "runmanager[dask]"' in done.stderr and MissingExtraError.__name__ in done.stderr
    assert "executor=\"dask\" needs the 'dask[distributed]' package" in done.stderr

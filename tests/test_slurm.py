"""Sweeps on a real Slurm cluster, through dask-jobqueue: Dask workers as Slurm batch jobs.

A one-node Slurm cluster (tests/slurm.py: slurmctld, slurmd and munge, started as root
without systemd) runs ``SLURMCluster`` jobs; the sweep's ``DaskExecutor`` gets the user's
``Client``. A job that is cancelled (``scancel``) or preempted (``scancel --signal=TERM``)
in the middle of a run takes its worker with it, and the run goes on in another job from
its last checkpoint, with no epoch twice.
"""

from __future__ import annotations

import os
import threading
import time

import pytest
import training
from slurm import ensure_installed, slurm_cluster

from runmanager import load_results, load_summary
from runmanager.executors import DaskExecutor

pytestmark = pytest.mark.slow


@pytest.fixture(scope="module")
def slurm(tmp_path_factory):
    missing = ensure_installed()
    if missing is not None:
        pytest.fail(f"these tests need a one-node Slurm cluster: {missing}")
    with slurm_cluster(tmp_path_factory.mktemp("slurm")) as cluster:
        yield cluster


@pytest.fixture
def jobs(slurm, tmp_path, monkeypatch):
    """Start ``count`` Dask workers as Slurm jobs; return the user's client, its cluster and the
    Slurm cluster. Everything a job needs comes with the submitting environment (sbatch
    exports it): PYTHONPATH for tests/training.py, and the variables a test sets first."""
    from dask.distributed import Client
    from dask_jobqueue import SLURMCluster

    monkeypatch.setenv("SLURM_CONF", slurm.env["SLURM_CONF"])
    made = []

    def start(count: int):
        before = dict(os.environ)
        cluster = SLURMCluster(cores=1, processes=1, memory="2GB", walltime="00:30:00", queue="debug",
                               interface="lo", log_directory=str(tmp_path / "dask-logs"),
                               job_extra_directives=[f"--chdir={tmp_path}"])
        cluster.scale(jobs=count)
        client = Client(cluster)
        client.wait_for_workers(count, timeout=120)
        made.append((client, cluster))
        os.environ.clear()
        os.environ.update(before)
        return client, cluster

    yield start
    for client, cluster in made:
        client.close()
        cluster.close()


def test_a_sweep_runs_in_slurm_jobs_and_leaves_the_users_cluster_running(tmp_path, slurm, jobs):
    client, cluster = jobs(2)
    log_dir = tmp_path / "runs"
    m = training.SlurmJobManager(log_dir, verbose=0)
    summary = m.sweep(training.train, {"units": [4, 8], "learning_rate": [0.05, 0.1]},
                      executor=DaskExecutor(client), seed=0)
    assert summary["status"].tolist() == ["completed"] * 4
    results = load_results(log_dir)
    job_ids = {line[0] for line in slurm.jobs()}
    assert set(results["slurm_job"].astype(str)) <= job_ids and len(set(results["slurm_job"])) == 2
    assert client.submit(sum, [1, 2]).result(timeout=60) == 3  # the user's cluster runs on
    assert len(slurm.jobs()) == 2


def _kill_a_job_mid_run(log_dir, slurm, signal_name: str | None, killed: list) -> None:
    """As soon as run 2 (units 8) has 2 epochs, cancel the Slurm job running it (with
    ``signal_name``, only that signal, as a preemption sends first)."""
    deadline = time.monotonic() + 180
    while time.monotonic() < deadline and not killed:
        time.sleep(0.2)
        try:
            rows = load_results(log_dir)
        except Exception:  # noqa: BLE001 - nothing written yet
            continue
        mine = rows[(rows["run"] == 2) & (rows["epoch"] >= 2)] if "slurm_job" in rows else rows.iloc[0:0]
        if len(mine):
            job = str(mine["slurm_job"].iloc[0])
            if signal_name is None:
                slurm.run("scancel", job)
            else:
                slurm.run("scancel", f"--signal={signal_name}", "--full", job)
            killed.append(job)


@pytest.mark.parametrize("signal_name", [None, "TERM"], ids=["cancelled", "preempted-by-sigterm"])
def test_a_job_ended_mid_run_has_its_run_go_on_in_another_job_from_its_checkpoint(
        tmp_path, slurm, jobs, monkeypatch, signal_name):
    starts = tmp_path / "starts.txt"
    monkeypatch.setenv("RM_TEST_STARTS", str(starts))
    monkeypatch.setenv("RM_TEST_PAUSE", "0.4")  # epochs long enough to end a job in the middle of a run
    client, _ = jobs(2)
    log_dir = tmp_path / "runs"
    killed: list[str] = []
    watcher = threading.Thread(target=_kill_a_job_mid_run, args=(log_dir, slurm, signal_name, killed), daemon=True)
    watcher.start()
    m = training.SlurmJobManager(log_dir, verbose=0)
    summary = m.sweep(training.train_resumable, {"units": [4, 8], "num_epochs": [8]},
                      executor=DaskExecutor(client), checkpoint=True)
    watcher.join(timeout=5)
    assert killed, "no job was ended"
    assert summary["status"].tolist() == ["completed", "completed"], summary.to_string()
    results = load_results(log_dir)
    assert not results.duplicated(["run", "epoch"]).any(), results.to_string()
    assert results.groupby("run")["epoch"].apply(list).tolist() == [list(range(1, 9))] * 2
    # Run 2 began in the job that ended, and went on in the other from its last checkpoint (the job
    # ended after epoch 2's row; epoch 2's checkpoint may or may not have been saved by then).
    second = [line.split() for line in starts.read_text().splitlines() if line.startswith("8 ")]
    assert second[0] == ["8", "0", "False"] and second[-1][2] == "True" and int(second[-1][1]) >= 1, second
    later = results[(results["run"] == 2) & (results["epoch"] > int(second[-1][1]))]
    assert killed[0] not in set(later["slurm_job"].astype(str))
    assert load_summary(log_dir)["checkpoint"].tolist() == ["checkpoints/0001/best.keras",
                                                            "checkpoints/0002/best.keras"]

"""Parallel sweeps on worker processes and on a real local Ray: same rows, faults, recycling, resume."""

from __future__ import annotations

import importlib
import json
import os
import pickle
import signal
import subprocess
import sys
import textwrap
import time

import pandas as pd
import psutil
import pytest
import training

from runmanager import (
    InvalidArgumentError,
    InvalidArgumentTypeError,
    MissingExtraError,
    RunBuilder,
    RunManager,
    SweepError,
    load_results,
    load_summary,
)
from runmanager.executors import ProcessExecutor

GRID = {"units": [4, 8], "learning_rate": [0.05, 0.1]}
os.environ.setdefault("RAY_USAGE_STATS_ENABLED", "0")


def same_rows(a: pd.DataFrame, b: pd.DataFrame) -> None:
    """Equal params, epochs and statuses; metrics within a small tolerance."""
    assert list(a.columns) == list(b.columns)
    exact = [c for c in a.columns if a[c].dtype.kind not in "f" or c in ("units", "learning_rate")]
    exact = [c for c in exact if not c.endswith("duration")]
    pd.testing.assert_frame_equal(a[exact], b[exact], check_dtype=False)
    metrics = [c for c in a.columns if c not in exact and not c.endswith("duration") and c not in ("run_duration",)]
    for column in metrics:
        assert a[column].tolist() == pytest.approx(b[column].tolist(), rel=1e-3, abs=1e-4, nan_ok=True), column


@pytest.fixture(scope="module")
def sequential(tmp_path_factory):
    log_dir = tmp_path_factory.mktemp("sequential")
    m = RunManager(log_dir, verbose=0)
    m.sweep(training.train, GRID, seed=0)
    return load_results(log_dir), load_summary(log_dir)


def test_processes_give_the_same_rows_as_sequential(tmp_path, sequential, capsys):
    m = training.WorkerInfoManager(tmp_path, verbose=1)
    summary = m.sweep(training.train, GRID, executor="processes", workers=2, seed=0)
    results = load_results(tmp_path)
    same_rows(results.drop(columns=["pid", "cuda", "threads"]), sequential[0])
    same_rows(summary.drop(columns=["pid", "cuda", "threads"]), sequential[1])
    pd.testing.assert_frame_equal(m.results, results)
    # Two workers ran the runs, not the driver; each limited to its share of the cores.
    pids = set(results["pid"])
    assert len(pids) == 2 and os.getpid() not in pids
    assert set(results["threads"]) == {str(max(1, os.cpu_count() // 2))}
    # The driver printed the live table, one line per epoch.
    out = capsys.readouterr().out
    assert sum(1 for line in out.splitlines() if line.split()[:1] in (["1"], ["2"], ["3"], ["4"])) == 12
    assert "sweep finished: 4 completed" in out


def test_a_killed_worker_marks_its_run_interrupted_and_is_replaced(tmp_path):
    start = time.monotonic()
    m = RunManager(tmp_path, verbose=0)
    summary = m.sweep(training.train_exit_on_units_8, {"units": [4, 8, 16, 32]}, executor="processes", workers=2)
    assert summary["status"].tolist() == ["completed", "interrupted", "completed", "completed"]
    assert summary["error"].tolist()[1] == "worker process exited with code 3"
    assert summary["epochs"].tolist() == [3, 1, 3, 3]  # the epoch before the death is kept
    assert time.monotonic() - start < 120


def test_a_worker_whose_train_calls_sys_exit_ends_that_run_interrupted_and_the_sweep_goes_on(tmp_path):
    m = RunManager(tmp_path, verbose=0)
    summary = m.sweep(training.train_sys_exit_on_units_8, {"units": [4, 8, 16]}, executor="processes", workers=2)
    assert summary["status"].tolist() == ["completed", "interrupted", "completed"]
    assert summary["error"].tolist()[1] == "SystemExit: 3"  # said by the run itself, not run a second time
    assert summary["epochs"].tolist() == [3, 1, 3]


def test_workers_are_recycled_after_max_runs(tmp_path):
    m = training.WorkerInfoManager(tmp_path, verbose=0)
    m.sweep(training.train, {"units": [2, 3, 4, 5, 6]}, executor=ProcessExecutor(1, max_runs_per_worker=2))
    pids = load_results(tmp_path).groupby("run")["pid"].first().tolist()
    assert pids[0] == pids[1] != pids[2] == pids[3] != pids[4]


def test_each_worker_sees_only_its_own_gpu(tmp_path):
    m = training.WorkerInfoManager(tmp_path, verbose=0)
    m.sweep(training.train, {"units": [2, 3, 4, 5]}, executor=ProcessExecutor(2, gpus=[0, 1]))
    results = load_results(tmp_path)
    by_pid = results.groupby("pid")["cuda"].agg(set)
    assert sorted(next(iter(s)) for s in by_pid) == ["0", "1"] and all(len(s) == 1 for s in by_pid)


def a_closure():
    data = training.data()

    def train(run, callbacks):
        return data

    return train


@pytest.mark.parametrize("train", [lambda run, callbacks: None, a_closure()], ids=["lambda", "closure"])
def test_a_train_that_cannot_be_pickled_is_rejected_before_any_run(tmp_path, train):
    m = RunManager(tmp_path, verbose=0)
    with pytest.raises(InvalidArgumentTypeError, match=r"cannot be sent to worker processes.*at module level"):
        m.sweep(train, GRID, executor="processes", workers=2)
    assert not (tmp_path / "journal.jsonl").exists()  # refused before the log_dir was touched


@pytest.mark.slow
def test_resume_across_executors(tmp_path):
    m = RunManager(tmp_path, verbose=0)
    m.sweep(training.train, {"units": [4], "learning_rate": [0.05, 0.1]}, seed=0)
    m.close()
    m = RunManager(tmp_path, verbose=0)
    summary = m.sweep(training.train, GRID, executor="processes", workers=2, resume=True, seed=0)
    m.close()
    assert summary["run"].tolist() == [1, 2, 3, 4] and (summary["status"] == "completed").all()
    assert load_results(tmp_path).groupby("run").size().tolist() == [3, 3, 3, 3]
    m = RunManager(tmp_path, verbose=0)
    summary = m.sweep(training.train, {**GRID, "units": [4, 8, 16]}, executor="ray", workers=2, resume=True)
    assert summary["run"].tolist() == [1, 2, 3, 4, 5, 6] and summary["units"].tolist()[4:] == [16, 16]


@pytest.mark.slow
def test_a_sample_of_runs_sweeps_on_processes_and_resumes_on_ray(tmp_path):
    grid = RunBuilder({"units": [2, 4, 8, 16], "learning_rate": [0.05, 0.1]})
    runs = grid.sample(3, seed=0)
    m = RunManager(tmp_path, verbose=0)
    summary = m.sweep(training.train, runs, executor="processes", workers=2, seed=0)
    m.close()
    assert [tuple(row) for row in summary[["units", "learning_rate"]].itertuples(index=False)] == [
        tuple(run) for run in runs]
    extra = next(run for run in grid if run not in runs)
    m = RunManager(tmp_path, verbose=0)
    summary = m.sweep(training.train, [*grid.sample(3, seed=0), extra], executor="ray", workers=2, resume=True)
    m.close()
    assert summary["run"].tolist() == [1, 2, 3, 4] and (summary["status"] == "completed").all()
    assert tuple(summary.loc[3, ["units", "learning_rate"]]) == tuple(extra)
    assert load_results(tmp_path).groupby("run")["epoch"].apply(list).tolist() == [[1, 2, 3]] * 4


@pytest.mark.slow
def test_ray_gives_the_same_rows_and_handles_failures_and_dead_actors(tmp_path, sequential):
    m = RunManager(tmp_path / "same", verbose=0)
    m.sweep(training.train, GRID, executor="ray", workers=2, seed=0)
    same_rows(load_results(tmp_path / "same"), sequential[0])
    m = RunManager(tmp_path / "faults", verbose=0)
    summary = m.sweep(training.train_exit_on_units_8, {"units": [4, 8, 16]}, executor="ray", workers=2)
    assert summary["status"].tolist() == ["completed", "interrupted", "completed"]
    assert summary["error"].tolist()[1].startswith("Ray actor died")
    failing = RunManager(tmp_path / "failing", verbose=0).sweep(
        training.train, [{"units": [4]}, {"units": [8], "fail": ["x"]}], executor="ray", workers=1)
    assert failing["status"].tolist() == ["completed", "failed"]
    assert failing["error"].tolist()[1] == "RuntimeError: run asked to fail: x"


def test_tensorboard_is_written_by_the_driver_for_worker_runs(tmp_path):
    pytest.importorskip("tensorboard")
    m = RunManager(tmp_path, verbose=0, tensorboard=True)
    m.sweep(training.train, {"units": [4, 8]}, executor="processes", workers=2)
    runs = [p for p in (tmp_path / "tensorboard").iterdir() if p.name.startswith("run-")]
    assert len(runs) == 2 and all(any(p.rglob("events.out.tfevents.*")) for p in runs)


DRIVER = textwrap.dedent(
    """
    import sys
    import training
    from runmanager import RunManager

    if __name__ == "__main__":  # worker processes are spawned: they import this file
        m = RunManager(sys.argv[1], verbose=1)
        m.sweep(training.train_slow, {"units": [4, 8, 16, 32], "num_epochs": [200]}, executor="processes",
                workers=2)
    """
)


def test_ctrl_c_stops_all_workers_and_leaves_consistent_files(tmp_path):
    script = tmp_path / "driver.py"
    script.write_text(DRIVER)
    log_dir = tmp_path / "sweep"
    # A new session, so Ctrl-C can go to the whole process group as a terminal sends it.
    driver = subprocess.Popen([sys.executable, str(script), str(log_dir)], stdout=subprocess.PIPE,
                              stderr=subprocess.PIPE, text=True, start_new_session=True)
    training.wait_for_epochs(driver, log_dir, 4)
    workers = [p.pid for p in psutil.Process(driver.pid).children(recursive=True)]
    os.killpg(driver.pid, signal.SIGINT)
    driver.wait(timeout=60)
    assert driver.returncode != 0 and "KeyboardInterrupt" in driver.stderr.read()
    time.sleep(0.5)
    assert not [pid for pid in workers if psutil.pid_exists(pid) and psutil.Process(pid).status() != "zombie"]
    summary = load_summary(log_dir)
    assert set(summary["status"]) == {"interrupted"} and len(summary) == 2
    assert (summary["error"] == "KeyboardInterrupt").all()
    pd.testing.assert_frame_equal(pd.read_csv(log_dir / "results.csv"), load_results(log_dir), check_dtype=False)
    assert not [p for p in log_dir.iterdir() if p.name.endswith(".tmp")]


def test_missing_ray_names_the_extra(tmp_path):
    code = ("import sys; sys.modules['ray'] = None\n"
            "import training\nfrom runmanager import RunManager\n"
            f"RunManager({str(tmp_path)!r}, verbose=0).sweep(training.train, {{'units': [4]}}, executor='ray')")
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120)
    assert done.returncode != 0
    assert 'pip install "runmanager[ray]"' in done.stderr and MissingExtraError.__name__ in done.stderr


def test_a_manager_sent_to_a_worker_leaves_driver_state_behind(tmp_path):
    m = RunManager(tmp_path, verbose=1)
    copy = pickle.loads(pickle.dumps(m))
    assert copy.log_dir is None and copy.verbose == 0 and copy.sinks == () and copy.summary().empty


def _starts(log_dir, run: int) -> int:
    """How many times run ``run`` was started, from the journal."""
    lines = (json.loads(line) for line in (log_dir / "journal.jsonl").read_text().splitlines())
    return sum(1 for event in lines if event["type"] == "run_start" and event["run"] == run)


@pytest.mark.parametrize("max_retries", [0, 2])
def test_a_run_whose_worker_died_is_retried_max_retries_times(tmp_path, capsys, max_retries):
    m = RunManager(tmp_path, verbose=1)
    summary = m.sweep(training.train_exit_on_units_8, {"units": [4, 8]},
                      executor=ProcessExecutor(2, max_retries=max_retries), max_consecutive_failures=0)
    assert summary["status"].tolist() == ["completed", "interrupted"]
    assert summary["error"].tolist()[1] == "worker process exited with code 3"
    assert _starts(tmp_path, 2) == 1 + max_retries
    results = load_results(tmp_path)
    assert not results.duplicated(["run", "epoch"]).any()
    assert summary["epochs"].tolist() == [3, 1]  # the last attempt's epoch, not one per attempt
    out = capsys.readouterr().out
    assert out.count("run 2: worker process exited with code 3; running it again") == max_retries


def test_a_worker_that_cannot_import_train_stops_the_sweep_at_once_with_the_workers_own_error(tmp_path, capfd):
    """train's module was imported from a folder on sys.path only while it was imported: a worker, which
    starts with the driver's sys.path of now, cannot import it. The sweep stops at the first such worker
    and shows its error; the runs given out are interrupted (none ran), not failed."""
    folder = tmp_path / "experiments"
    folder.mkdir()
    (folder / "elsewhere_train.py").write_text("import training\n\n\ndef train(run, callbacks):\n"
                                               "    training.train(run, callbacks)\n")
    sys.path.insert(0, str(folder))
    try:
        module = importlib.import_module("elsewhere_train")
    finally:
        sys.path.remove(str(folder))
    try:
        m = RunManager(tmp_path / "log", verbose=0)
        with pytest.raises(SweepError) as caught:
            m.sweep(module.train, {"units": [2, 4, 8]}, executor="processes", workers=2)
    finally:
        sys.modules.pop("elsewhere_train", None)
    message = str(caught.value)
    assert message.startswith("A worker could not start, so no run of this sweep can: ModuleNotFoundError: "
                              "No module named 'elsewhere_train'.")
    assert "The worker's error:\nTraceback (most recent call last):" in message
    assert "journal" not in message  # which holds no traceback of this
    summary = load_summary(tmp_path / "log")
    assert summary["status"].tolist() == ["interrupted", "interrupted"]
    assert set(summary["error"]) == {"its worker could not start: ModuleNotFoundError: No module named "
                                     "'elsewhere_train'"}
    assert "elsewhere_train" not in capfd.readouterr().err  # shown once, in the error, not by every worker


def test_a_script_without_the_main_guard_stops_at_its_first_worker_with_the_fix(tmp_path):
    """Each worker imports the driver's script again; without the guard that import sweeps too, and
    fails on the log_dir the driver holds, before the worker can report anything itself."""
    script = tmp_path / "sweep.py"
    script.write_text("import training\nfrom runmanager import RunManager\n\n"
                      f"RunManager({str(tmp_path / 'log')!r}, verbose=0).sweep(\n"
                      "    training.train, {'units': [2, 4]}, executor='processes', workers=1)\n")
    done = subprocess.run([sys.executable, str(script)], capture_output=True, text=True, timeout=300, cwd=tmp_path)
    assert done.returncode == 1
    last = done.stderr.strip().splitlines()[-1]
    assert last.startswith("runmanager.errors.SweepError: A worker could not start, so no run of this sweep can: "
                           "worker process exited with code 1 while starting")
    assert 'needs the `if __name__ == "__main__":` guard' in last
    assert done.stderr.count("runmanager.errors.LogDirError: ") == 1  # the one worker's traceback: no other worker was started
    assert load_summary(tmp_path / "log")["status"].tolist() == ["interrupted"]


@pytest.mark.parametrize(("make", "error", "match"), [
    (lambda: ProcessExecutor(0), InvalidArgumentError, r"workers must be an int of at least 1 \(runs at once\), got 0"),
    (lambda: ProcessExecutor(gpus="0"), InvalidArgumentTypeError, r"gpus must be None .* or a list of GPU ids"),
    (lambda: ProcessExecutor(max_runs_per_worker=0), InvalidArgumentError, r"max_runs_per_worker must be an int of "
                                                                             r"at least 1 .* got 0"),
    (lambda: ProcessExecutor(max_retries=-1), InvalidArgumentError, r"max_retries must be an int of at least 0"),
    (lambda: ProcessExecutor(max_retries=1.5), InvalidArgumentError, r"max_retries must be an int .* got 1\.5"),
])
def test_an_executor_object_checks_its_own_options_when_it_is_made(make, error, match):
    with pytest.raises(error, match=match):
        make()


def test_old_sweep_keywords_still_work_for_one_release_with_a_deprecation_warning(tmp_path):
    m = training.WorkerInfoManager(tmp_path, verbose=0)
    with pytest.warns(DeprecationWarning, match=r"sweep\(max_runs_per_worker=\.\.\.\) is deprecated and goes in the "
                                                r"next release: pass executor=ProcessExecutor\(\.\.\., "
                                                r"max_runs_per_worker=2\) \(from runmanager.executors\)\.$"):
        m.sweep(training.train, {"units": [2, 3, 4]}, executor="processes", workers=1, max_runs_per_worker=2)
    pids = load_results(tmp_path).groupby("run")["pid"].first().tolist()
    assert pids[0] == pids[1] != pids[2]  # the option still took effect
    with pytest.warns(DeprecationWarning, match=r"executor=ProcessExecutor\(\.\.\., max_retries=2\) .*; "
                                                r"executor='sequential' does not use it"):
        RunManager(tmp_path / "b", verbose=0).sweep(training.train, {"units": [2]}, max_retries=2)


def test_an_option_of_the_executor_beside_an_executor_object_is_refused(tmp_path):
    m = RunManager(tmp_path, verbose=0)
    with pytest.raises(InvalidArgumentError, match=r"sweep\(max_retries=\.\.\.\) beside an executor object: give it "
                                                   r"to the object, ProcessExecutor\(\.\.\., max_retries=3\)"):
        m.sweep(training.train, {"units": [2]}, executor=ProcessExecutor(1), max_retries=3)
    with pytest.raises(InvalidArgumentError, match=r"workers=2 goes to the executor object itself"):
        m.sweep(training.train, {"units": [2]}, executor=ProcessExecutor(1), workers=2)
    with pytest.raises(TypeError, match=r"sweep\(\) got an unexpected keyword argument 'ray_adress'"):
        m.sweep(training.train, {"units": [2]}, executor="ray", ray_adress="auto")
    assert not (tmp_path / "journal.jsonl").exists()


def test_the_executors_package_imports_no_backend_and_no_cluster_library():
    code = ("import sys, runmanager.executors as e; "
            "assert e.ProcessExecutor.__name__ == 'ProcessExecutor'; "
            "print(sorted(m for m in ('ray', 'dask', 'distributed', 'tensorflow', 'keras', 'jax') if m in sys.modules))")
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stderr
    assert done.stdout.strip() == "[]"

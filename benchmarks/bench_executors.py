"""Wall time and peak memory of a sweep: runmanager's executors against a hand loop and the peers.

Every variant trains the same grid (units [16, 32] x dropout [0.1, 0.2] x optimizer
[adam, sgd]; 8 runs) of the same MLP on scikit-learn's digits with the same epochs,
each in a fresh Python process, timed as a whole process (imports included). Peak
memory is the largest total RSS of the process and all its children, sampled every
50 ms. Ratios are against a hand-written ``itertools.product`` loop measured in the
same invocation. A second table runs a 24-run sweep (the grid x 3 repeats) to compare
``processes(2)``, ``dask(2)`` (a private Dask ``LocalCluster``) and ``ray(2)`` with ``sequential``.

The row "dask(2), two Slurm jobs" starts a one-node Slurm cluster (the tests' own) before it is
timed, then, inside the timing, two Dask workers as Slurm jobs through dask-jobqueue's
``SLURMCluster``, as a user's driver script would; it is left out where Slurm cannot run.

The row "ray(2), two-node cluster" joins a local cluster started before it is timed, as a
user's cluster would be: a head without CPUs and one worker node with 2 CPUs, which (where
``unshare -m`` is allowed) runs in a mount namespace of its own with an empty tmpfs over
this folder, so the driver's code reaches it only by being shipped.

    python benchmarks/bench_executors.py [--epochs 20] [--only NAME ...] [--no-repeats]

The peers need ``pip install optuna keras-tuner "ray[tune]"``, and dask(2)
``pip install "dask[distributed]"``; a missing one is reported and left out.
"""

from __future__ import annotations

import argparse
import functools
import itertools
import os
import subprocess
import sys
import tempfile
import time
from typing import Any

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
os.environ.setdefault("RAY_USAGE_STATS_ENABLED", "0")

UNITS = [16, 32]
DROPOUT = [0.1, 0.2]
OPTIMIZER = ["adam", "sgd"]
EPOCHS = int(os.environ.get("BENCH_EPOCHS", "20"))
REPEATS = int(os.environ.get("BENCH_REPEATS", "1"))


def grid() -> dict:
    params = {"units": UNITS, "dropout": DROPOUT, "optimizer": OPTIMIZER}
    return {**params, "repeat": list(range(REPEATS))} if REPEATS > 1 else params


@functools.cache
def data():
    from runmanager.demo import load_digits_data

    return load_digits_data()


def build(units: int, dropout: float, optimizer: str):
    import keras

    model = keras.Sequential([
        keras.Input((64,)),
        keras.layers.Dense(units, activation="relu"),
        keras.layers.Dropout(dropout),
        keras.layers.Dense(10, activation="softmax"),
    ])
    model.compile(optimizer=optimizer, loss="sparse_categorical_crossentropy", metrics=["accuracy"])
    return model


def fit(model, callbacks=()):
    x, y = data()
    return model.fit(x, y, epochs=EPOCHS, batch_size=64, validation_split=0.2, callbacks=list(callbacks), verbose=0)


def train(run, callbacks):
    """runmanager's train function (module level, so workers can import it)."""
    fit(build(run.units, run.dropout, run.optimizer), callbacks)


# --------------------------------------------------------------------------------------
# The variants, each run in its own process
# --------------------------------------------------------------------------------------
def hand_loop(folder: str) -> None:
    """The classic answer: nested loops as itertools.product, rows kept by hand, a DataFrame."""
    import pandas as pd

    rows = []
    values = [UNITS, DROPOUT, OPTIMIZER, range(REPEATS)]
    for run, (units, dropout, optimizer, _) in enumerate(itertools.product(*values), start=1):
        history = fit(build(units, dropout, optimizer))
        for epoch in range(EPOCHS):
            rows.append({"run": run, "epoch": epoch + 1, **{k: v[epoch] for k, v in history.history.items()},
                         "units": units, "dropout": dropout, "optimizer": optimizer})
    pd.DataFrame(rows).to_csv(os.path.join(folder, "results.csv"), index=False)


def runmanager_sweep(folder: str, executor: str) -> None:
    from runmanager import RunManager
    from runmanager.executors import DaskExecutor, RayExecutor

    m = RunManager(os.path.join(folder, "sweep"), verbose=0)
    if executor == "slurm":  # two Dask workers as Slurm jobs, their start inside the timing
        from dask.distributed import Client
        from dask_jobqueue import SLURMCluster

        cluster = SLURMCluster(cores=1, processes=1, memory="2GB", walltime="01:00:00", queue="debug",
                               interface="lo", log_directory=os.path.join(folder, "dask-logs"))
        cluster.scale(jobs=2)
        client = Client(cluster)
        client.wait_for_workers(2, timeout=300)
        try:
            summary = m.sweep(train, grid(), executor=DaskExecutor(client))
        finally:
            client.close()
            cluster.close()
    elif executor == "ray":
        summary = m.sweep(train, grid(), executor=RayExecutor(os.environ.get("BENCH_RAY_ADDRESS"), workers=2))
    else:
        summary = m.sweep(train, grid(), executor=executor, workers=None if executor == "sequential" else 2)
    assert (summary["status"] == "completed").all(), summary


class LocalCluster:
    """A head without CPUs and one worker node with 2 CPUs, each ``ray start --block`` in its own
    process group and Ray temp dir; the worker node does not see this folder where it can be hidden."""

    def __init__(self) -> None:
        import shutil
        import socket

        self.root = tempfile.mkdtemp(prefix="rmbench-", dir="/tmp")
        env = {**os.environ, "RAY_TMPDIR": self.root, "RAY_AUTH_MODE": "disabled"}
        ray_cli = os.path.join(os.path.dirname(sys.executable), "ray")
        socks = [socket.socket() for _ in range(12)]
        for sock in socks:
            sock.bind(("", 0))
        ports = [sock.getsockname()[1] for sock in socks]
        for sock in socks:
            sock.close()
        port = ports[0]
        head = [ray_cli, "start", "--head", "--block", f"--port={port}", "--num-cpus=0", "--num-gpus=0",
                "--include-dashboard=false", "--disable-usage-stats", f"--temp-dir={self.root}/ray",
                f"--ray-client-server-port={ports[1]}", f"--dashboard-agent-listen-port={ports[2]}",
                f"--dashboard-agent-grpc-port={ports[3]}", f"--metrics-export-port={ports[4]}",
                f"--runtime-env-agent-port={ports[5]}"]
        self.procs = [subprocess.Popen(head, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, env=env,
                                       start_new_session=True)]
        address_file = os.path.join(self.root, "ray", "ray_current_cluster")
        deadline = time.monotonic() + 90
        while not (os.path.exists(address_file) and open(address_file).read().strip().endswith(f":{port}")):
            if time.monotonic() > deadline:
                self.close()
                raise RuntimeError("the benchmark's Ray head did not start")
            time.sleep(0.2)
        self.address = open(address_file).read().strip()
        node = [ray_cli, "start", f"--address={self.address}", "--block", "--num-cpus=2", "--num-gpus=0",
                "--disable-usage-stats", f"--dashboard-agent-listen-port={ports[6]}",
                f"--dashboard-agent-grpc-port={ports[7]}", f"--metrics-export-port={ports[8]}",
                f"--runtime-env-agent-port={ports[9]}", f"--node-manager-port={ports[10]}"]
        here = os.path.dirname(os.path.abspath(__file__))
        self.hidden = shutil.which("unshare") is not None and subprocess.run(
            ["unshare", "-m", "sh", "-c", f"mount -t tmpfs tmpfs '{here}'"], capture_output=True).returncode == 0
        if self.hidden:
            node = ["unshare", "-m", "sh", "-c", f"mount -t tmpfs tmpfs '{here}' && exec " +
                    " ".join(f"'{part}'" for part in node)]
        self.log = os.path.join(self.root, "node.log")
        with open(self.log, "wb") as log:
            self.procs.append(subprocess.Popen(node, stdout=log, stderr=subprocess.STDOUT, env=env,
                                               start_new_session=True))
        while "Ray runtime started" not in open(self.log, errors="replace").read():
            if time.monotonic() > deadline or self.procs[-1].poll() is not None:
                self.close()
                raise RuntimeError("the benchmark's Ray worker node did not start")
            time.sleep(0.2)

    def close(self) -> None:
        import shutil
        import signal

        for proc in reversed(self.procs):
            try:
                os.killpg(proc.pid, signal.SIGTERM)
                proc.wait(timeout=5)
            except ProcessLookupError:
                pass
            except subprocess.TimeoutExpired:
                os.killpg(proc.pid, signal.SIGKILL)
                proc.wait()
        shutil.rmtree(self.root, ignore_errors=True)


def optuna_grid(folder: str) -> None:
    import keras
    import optuna

    optuna.logging.set_verbosity(optuna.logging.WARNING)
    space = {"units": UNITS, "dropout": DROPOUT, "optimizer": OPTIMIZER, "repeat": list(range(REPEATS))}

    def objective(trial):
        keras.backend.clear_session()  # as Optuna's Keras examples do
        params = {name: trial.suggest_categorical(name, values) for name, values in space.items()}
        history = fit(build(params["units"], params["dropout"], params["optimizer"]))
        return history.history["val_accuracy"][-1]

    study = optuna.create_study(direction="maximize", sampler=optuna.samplers.GridSampler(space, seed=0))
    study.optimize(objective, n_trials=len(UNITS) * len(DROPOUT) * len(OPTIMIZER) * REPEATS)


def keras_tuner_grid(folder: str) -> None:
    import keras_tuner

    def hypermodel(hp):
        hp.Choice("repeat", list(range(REPEATS)))
        return build(hp.Choice("units", UNITS), hp.Choice("dropout", DROPOUT), hp.Choice("optimizer", OPTIMIZER))

    tuner = keras_tuner.GridSearch(hypermodel, objective="val_accuracy", directory=folder, project_name="kt",
                                   overwrite=True)
    x, y = data()
    tuner.search(x, y, epochs=EPOCHS, batch_size=64, validation_split=0.2, verbose=0)


def ray_tune_grid(folder: str) -> None:
    import ray
    from ray import tune

    ray.init(num_cpus=2, include_dashboard=False, log_to_driver=False,
             runtime_env={"env_vars": {"PYTHONPATH": os.pathsep.join(p for p in sys.path if p)}})

    def trainable(config):
        # Ray Tune's workers have their own __main__: reach the helpers through their module.
        from bench_executors import build, fit

        history = fit(build(config["units"], config["dropout"], config["optimizer"]))
        tune.report({"val_accuracy": history.history["val_accuracy"][-1]})

    space = {"units": tune.grid_search(UNITS), "dropout": tune.grid_search(DROPOUT),
             "optimizer": tune.grid_search(OPTIMIZER), "repeat": tune.grid_search(list(range(REPEATS)))}
    tuner = tune.Tuner(
        tune.with_resources(trainable, {"cpu": 1}),
        param_space=space,
        tune_config=tune.TuneConfig(reuse_actors=True, max_concurrent_trials=2),
        run_config=tune.RunConfig(storage_path=folder, verbose=0),
    )
    results = tuner.fit()
    assert not results.errors, results.errors
    ray.shutdown()


CLUSTER = "runmanager ray(2), two-node cluster"
SLURM = "runmanager dask(2), two Slurm jobs"
VARIANTS = {
    "hand loop (baseline)": hand_loop,
    "runmanager sequential": functools.partial(runmanager_sweep, executor="sequential"),
    "runmanager processes(2)": functools.partial(runmanager_sweep, executor="processes"),
    "runmanager ray(2)": functools.partial(runmanager_sweep, executor="ray"),
    "runmanager dask(2)": functools.partial(runmanager_sweep, executor="dask"),
    CLUSTER: functools.partial(runmanager_sweep, executor="ray"),
    SLURM: functools.partial(runmanager_sweep, executor="slurm"),
    "Optuna GridSampler": optuna_grid,
    "KerasTuner GridSearch": keras_tuner_grid,
    "Ray Tune grid_search (2 at once)": ray_tune_grid,
}
PEERS = {"Optuna GridSampler": "optuna", "KerasTuner GridSearch": "keras_tuner",
         "Ray Tune grid_search (2 at once)": "ray.tune", "runmanager dask(2)": "distributed",
         SLURM: "dask_jobqueue"}


# --------------------------------------------------------------------------------------
# Measuring
# --------------------------------------------------------------------------------------
def measure(name: str, epochs: int, repeats: int, cluster: Any = None) -> tuple[float, float]:
    """Run one variant in a fresh process; return (wall seconds, peak MiB of its process tree;
    the cluster's own daemons, started before, are not counted: a Slurm job is slurmd's child, so
    the Slurm row's peak is the driver's alone)."""
    import psutil

    env = {**os.environ, "BENCH_EPOCHS": str(epochs), "BENCH_REPEATS": str(repeats)}
    if name == CLUSTER:
        assert cluster is not None
        env.update(BENCH_RAY_ADDRESS=cluster.address, RAY_TMPDIR=cluster.root, RAY_AUTH_MODE="disabled")
    if name == SLURM:
        env.update(cluster.env)
    with tempfile.TemporaryDirectory() as folder, tempfile.TemporaryFile("w+") as log:
        start = time.perf_counter()
        process = subprocess.Popen([sys.executable, __file__, "--variant", name, "--folder", folder], env=env,
                                   stdout=log, stderr=subprocess.STDOUT)
        peak = 0.0
        root = psutil.Process(process.pid)
        while process.poll() is None:
            try:
                tree = [root, *root.children(recursive=True)]
                peak = max(peak, sum(p.memory_info().rss for p in tree if p.is_running()) / 2**20)
            except psutil.Error:
                pass
            time.sleep(0.05)
        wall = time.perf_counter() - start
        if process.returncode != 0:
            log.seek(0)
            raise RuntimeError(f"{name} exited with code {process.returncode}:\n{log.read()[-3000:]}")
    return wall, peak


def _slurm() -> Any:
    """A one-node Slurm cluster to start (the tests' own, tests/slurm.py), or None where there is
    no Slurm (said on stderr)."""
    sys.path.insert(0, os.path.join(os.path.dirname(os.path.dirname(os.path.abspath(__file__))), "tests"))
    from slurm import ensure_installed, slurm_cluster

    missing = ensure_installed()
    if missing is not None:
        print(f"skipping {SLURM}: {missing}", file=sys.stderr)
        return None
    from pathlib import Path

    return slurm_cluster(Path(tempfile.mkdtemp(prefix="rmbench-slurm-")))


def table(names: list[str], epochs: int, repeats: int) -> list[list[str]]:
    from importlib.util import find_spec

    results = {}
    for name in names:
        module = PEERS.get(name)
        if module and find_spec(module.split(".")[0]) is None:
            print(f"skipping {name}: {module} is not installed", file=sys.stderr)
            continue
        if name == SLURM:
            slurm = _slurm()
            if slurm is None:
                continue
            with slurm as running:
                results[name] = measure(name, epochs, repeats, running)
        elif name == CLUSTER:
            cluster = LocalCluster()
            try:
                results[name] = measure(name, epochs, repeats, cluster)
            finally:
                cluster.close()
            if not cluster.hidden:
                print(f"  {name}: this folder could not be hidden from the worker node (no unshare -m)",
                      file=sys.stderr)
        else:
            results[name] = measure(name, epochs, repeats)
        print(f"  {name}: {results[name][0]:.1f}s, {results[name][1]:.0f} MiB", file=sys.stderr, flush=True)
    base_time, base_memory = results[names[0]]
    return [[name, f"{wall:.1f}", f"{wall / base_time:.2f}x", f"{peak:.0f}", f"{peak / base_memory:.2f}x"]
            for name, (wall, peak) in results.items()]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--epochs", type=int, default=20)
    parser.add_argument("--only", nargs="*", help="variant names to run (the baseline always runs)")
    parser.add_argument("--no-repeats", action="store_true", help="skip the 24-run table")
    parser.add_argument("--variant", help=argparse.SUPPRESS)
    parser.add_argument("--folder", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.variant:
        VARIANTS[args.variant](args.folder)
        return
    from tabulate import tabulate

    names = list(VARIANTS)
    if args.only:
        names = [names[0], *[n for n in names[1:] if any(o.lower() in n.lower() for o in args.only)]]
    headers = ["variant", "wall s", "time vs hand loop", "peak MiB", "memory vs hand loop"]
    print(f"8 runs x {args.epochs} epochs, digits MLP, 2 workers where parallel", file=sys.stderr)
    first = table(names, args.epochs, 1)
    print(f"\n8 runs x {args.epochs} epochs (units x dropout x optimizer), whole process, 2 CPU cores\n")
    print(tabulate(first, headers=headers))
    if args.no_repeats:
        return
    print("24 runs (the grid x 3 repeats)", file=sys.stderr)
    second = table(["runmanager sequential", "runmanager processes(2)", "runmanager dask(2)", "runmanager ray(2)"],
                   args.epochs, 3)
    print(f"\n24 runs x {args.epochs} epochs: the parallel executors against sequential\n")
    print(tabulate([[r[0], r[1], f"{float(second[0][1]) / float(r[1]):.2f}x faster", r[3]] for r in second],
                   headers=["variant", "wall s", "speed-up vs sequential", "peak MiB"]))


if __name__ == "__main__":
    main()

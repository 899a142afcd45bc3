"""The shared XLA compilation cache on Keras's JAX backend (CPU): what a second worker's first
run of a model shape costs against the first worker's, with and without the cache.

Each round is one sweep, in a fresh Python process, on two worker processes
(``ProcessExecutor(workers=2)``), over a few MLP shapes, two runs of each. The runs go one at
a time, in a chain: worker A runs shape 1, then worker B runs shape 1, then A shape 2, B
shape 2, ... so A compiles every shape first and B comes second, and only one process works
at a time. A run's time is its model's build and fit (its compiles included), from inside
the worker. "Without" sweeps set ``JAX_ENABLE_COMPILATION_CACHE=false``, which is how every
worker compiled every shape before the cache was shared; rounds with and without alternate,
and the table shows each run's median over the rounds.

    python benchmarks/bench_compile_cache.py [--rounds 3] [--epochs 2]

JAX must be installed (``pip install "jax[cpu]"``).
"""

from __future__ import annotations

import argparse
import functools
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time

SHAPES = [[64], [256, 256], [512, 512, 512], [128, 128, 128, 128, 128, 128]]
EPOCHS = int(os.environ.get("BENCH_EPOCHS", "2"))


@functools.cache
def data():
    import numpy as np

    rng = np.random.default_rng(0)
    x = rng.normal(size=(2000, 32)).astype("float32")
    return x, (x[:, :10].argmax(axis=1)).astype("int32")


def train(run, callbacks):
    """One link of the chain: wait for the run before this one, then build and fit, timed."""
    import keras

    folder = os.environ["BENCH_FOLDER"]
    position = SHAPES.index(list(run.layers)) * 2 + run.turn - 1
    while position and not os.path.exists(os.path.join(folder, f"done-{position - 1}")):
        time.sleep(0.01)
    start = time.perf_counter()
    x, y = data()
    model = keras.Sequential([keras.Input((32,)), *[keras.layers.Dense(n, activation="relu") for n in run.layers],
                              keras.layers.Dense(10, activation="softmax")])
    model.compile(optimizer="adam", loss="sparse_categorical_crossentropy", metrics=["accuracy"])
    model.fit(x, y, epochs=EPOCHS, batch_size=64, validation_split=0.2, callbacks=callbacks, verbose=0)
    seconds = time.perf_counter() - start
    with open(os.path.join(folder, f"time-{position}.json"), "w", encoding="utf-8") as handle:
        json.dump({"layers": list(run.layers), "turn": run.turn, "seconds": seconds, "pid": os.getpid()}, handle)
    open(os.path.join(folder, f"done-{position}"), "w").close()


def sweep(folder: str) -> None:
    from runmanager import RunManager
    from runmanager.executors import ProcessExecutor

    os.environ["BENCH_FOLDER"] = folder
    summary = RunManager(os.path.join(folder, "sweep"), verbose=0).sweep(
        train, {"layers": SHAPES, "turn": [1, 2]}, executor=ProcessExecutor(workers=2))
    assert (summary["status"] == "completed").all(), summary


def measure(cache: bool, epochs: int) -> dict[tuple[str, int], float]:
    """One round: (shape, turn) -> seconds of that run."""
    env = {**os.environ, "KERAS_BACKEND": "jax", "JAX_PLATFORMS": "cpu", "BENCH_EPOCHS": str(epochs)}
    env.pop("JAX_COMPILATION_CACHE_DIR", None)
    if not cache:
        env["JAX_ENABLE_COMPILATION_CACHE"] = "false"
    with tempfile.TemporaryDirectory() as folder:
        done = subprocess.run([sys.executable, __file__, "--sweep", folder], env=env, capture_output=True, text=True)
        if done.returncode != 0:
            raise RuntimeError(f"the sweep exited with code {done.returncode}:\n{done.stderr[-3000:]}")
        times = [json.load(open(os.path.join(folder, f"time-{i}.json"))) for i in range(2 * len(SHAPES))]
    pids = {(t["turn"], t["pid"]) for t in times}
    assert len({pid for _, pid in pids}) == 2 and len(pids) == 2, f"each turn ran on a worker of its own: {pids}"
    return {(str(t["layers"]), t["turn"]): t["seconds"] for t in times}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rounds", type=int, default=3, help="rounds with the cache, and as many without")
    parser.add_argument("--epochs", type=int, default=EPOCHS)
    parser.add_argument("--sweep", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.sweep:
        sweep(args.sweep)
        return
    from tabulate import tabulate

    rounds: dict[bool, list[dict[tuple[str, int], float]]] = {True: [], False: []}
    walls: dict[bool, list[float]] = {True: [], False: []}
    for number in range(args.rounds):
        for cache in (False, True) if number % 2 == 0 else (True, False):
            start = time.perf_counter()
            rounds[cache].append(measure(cache, args.epochs))
            walls[cache].append(time.perf_counter() - start)
            print(f"  round {number + 1}, {'with' if cache else 'without'} the cache: {walls[cache][-1]:.1f} s",
                  file=sys.stderr, flush=True)

    def median(cache: bool, shape: str, turn: int) -> float:
        return statistics.median(r[(shape, turn)] for r in rounds[cache])

    rows = []
    for layers in SHAPES:
        shape = str(layers)
        off = median(False, shape, 1), median(False, shape, 2)
        on = median(True, shape, 1), median(True, shape, 2)
        rows.append([f"Dense {'-'.join(map(str, layers))}", f"{off[0]:.2f}", f"{off[1]:.2f}", f"{off[1] / off[0]:.2f}x",
                     f"{on[0]:.2f}", f"{on[1]:.2f}", f"{on[1] / on[0]:.2f}x", f"{off[1] / on[1]:.2f}x"])
    print(f"\nA model shape's first run on each of 2 worker processes, JAX on CPU, {args.epochs} epochs of 1,600 rows; "
          f"seconds (median of {args.rounds} rounds each)\n")
    print(tabulate(rows, headers=["model", "without: worker 1", "worker 2", "2 / 1", "with cache: worker 1",
                                  "worker 2", "2 / 1", "worker 2 faster by"], disable_numparse=True))
    off, on = statistics.median(walls[False]), statistics.median(walls[True])
    print(f"\nThe whole sweep ({2 * len(SHAPES)} runs in a chain, its process and workers' start included): "
          f"{off:.1f} s without the cache, {on:.1f} s with it ({off / on:.2f}x faster; medians)")


if __name__ == "__main__":
    main()

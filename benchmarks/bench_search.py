"""Grid, random and Optuna (TPE) search on the same budget: which finds the better run, and at what cost?

A real Keras problem: an MLP on scikit-learn's digits, 3 epochs a run (``validation_split=0.2``;
about 1.1 s a run on 2 shared cores, most of it Keras building and tracing the model), over a
space of learning rate (log-uniform, 1e-4 to 1e-1), hidden units (16 to 256), dropout (0 to
0.5), optimizer (adam or sgd) and batch size (32, 64 or 128). Three searches, each given 40
runs per seed:

- grid (the baseline): a coarse grid over the same five parameters, lr [1e-3, 1e-2, 1e-1] x
  units [32, 128] x dropout [0, 0.25] x optimizer [adam, sgd] x batch [32, 128] (48 runs),
  in a seeded random order: ``grid.sample(40, seed=s)``, whose first k runs are
  ``grid.sample(k, seed=s)``;
- ``RandomSearch(space, 40, seed=s)``;
- ``OptunaSearch(space, 40, metric="val_accuracy", seed=s)`` (TPE; its first 10 runs are
  random draws, as TPE starts).

Every sweep is seeded (``sweep(..., seed=s)``) and runs once per seed; the best final
``val_accuracy`` after the first 10, 20 and 40 runs is read from its summary in run order
(the best-so-far curve), so a budget of 10 is the first 10 runs of the 40-run sweep, not
another sweep. Reported per search and budget: the mean, the standard deviation and the
range over the seeds of that best. Then the cost: wall time a run, time in ``train`` a
run, and the search's own overhead, the time of the sweep not spent in ``train``
((sweep wall time - sum of train times) / runs, as a share of a run; target under 2%),
split into the time inside the search's ``ask`` and ``tell``, clearing the Keras session
and seeding before each run (which a hand loop does too), and the rest (the journal's
lines and the CSV/JSON exports). The share of runs at batch size 32 (the slowest to
train) is shown beside the train time; the searches' runs differ in cost, and the
machine's load moves the train time from one invocation to the next as much.

Each (search, seed) sweep runs in a fresh process of this script (sequential executor,
a temporary log_dir, ``verbose=0``) that prints its results as JSON on its last stdout
line: no search inherits another's Keras state, compiled functions or memory, and the
seeds are interleaved (seed 0: grid, random, optuna; seed 1: ...), so a change in the
load of the machine falls on every search alike. Importing TensorFlow (a few seconds a
process) is outside the timed sweep.

    python benchmarks/bench_search.py [--seeds 5] [--runs 40] [--epochs 3] [--quick]

``--quick`` is 2 seeds x 10 runs (about 2 minutes). The full benchmark (3 searches x 5 seeds
x 40 runs = 600 runs) takes 13-16 minutes on 2 shared cores. Needs ``pip install optuna
scipy scikit-learn``.
"""

from __future__ import annotations

import argparse
import json
import math
import os
import statistics
import subprocess
import sys
import tempfile
import time

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")

EPOCHS = int(os.environ.get("BENCH_EPOCHS", "3"))
GRID = {"learning_rate": [1e-3, 1e-2, 1e-1], "units": [32, 128], "dropout": [0.0, 0.25],
        "optimizer": ["adam", "sgd"], "batch_size": [32, 128]}
SEARCHES = ("grid", "random", "optuna")
BUDGETS = (10, 20, 40)

#: seconds spent in train, one entry a run (filled in the process that runs the sweep)
TRAIN_SECONDS: list[float] = []


def space() -> dict:
    from scipy.stats import loguniform, randint, uniform

    return {"learning_rate": loguniform(1e-4, 1e-1), "units": randint(16, 257), "dropout": uniform(0, 0.5),
            "optimizer": ["adam", "sgd"], "batch_size": [32, 64, 128]}


def train(run, callbacks):
    """One run: build the MLP with the run's optimizer and fit it; the time it takes is recorded."""
    start = time.perf_counter()
    from runmanager.demo import build_model, load_digits_data

    x, y = load_digits_data()
    model = build_model(run.units, run.learning_rate, run.dropout, run.optimizer)
    try:
        model.fit(x, y, epochs=EPOCHS, batch_size=run.batch_size, validation_split=0.2, callbacks=callbacks,
                  verbose=0)
    finally:
        TRAIN_SECONDS.append(time.perf_counter() - start)


def make_search(name: str, runs: int, seed: int):
    from runmanager import OptunaSearch, RandomSearch, RunBuilder
    from runmanager.search import RunList

    if name == "grid":
        grid = RunBuilder(GRID)
        sample = grid.sample(runs, seed=seed)
        assert sample[:10] == grid.sample(min(10, runs), seed=seed)  # a budget's runs are a prefix
        return RunList(sample)
    if name == "random":
        return RandomSearch(space(), runs, seed=seed)
    return OptunaSearch(space(), runs, metric="val_accuracy", seed=seed)


def timed(method, seconds: list[float]):
    def wrapper(*args, **kwargs):
        start = time.perf_counter()
        try:
            return method(*args, **kwargs)
        finally:
            seconds.append(time.perf_counter() - start)

    return wrapper


def sweep(name: str, runs: int, seed: int) -> dict:
    """One sweep of one search, in this process: the final val_accuracy of each run in run order, and times."""
    import keras  # noqa: F401 - imported before the clock starts, as the data is

    from runmanager import RunManager
    from runmanager.demo import load_digits_data
    from runmanager.executors import sequential

    load_digits_data()
    search = make_search(name, runs, seed)
    search_seconds: list[float] = []
    search.ask = timed(search.ask, search_seconds)
    search.tell = timed(search.tell, search_seconds)
    # What a hand loop does between runs too: clear the Keras session and seed.
    keras_seconds: list[float] = []
    sequential.clear_keras_session = timed(sequential.clear_keras_session, keras_seconds)
    sequential.seed_everything = timed(sequential.seed_everything, keras_seconds)
    with tempfile.TemporaryDirectory() as folder:
        m = RunManager(folder, verbose=0)
        start = time.perf_counter()
        summary = m.sweep(train, search, seed=seed)
        wall = time.perf_counter() - start
        m.close()
    summary = summary.sort_values("run")
    values = [float(v) if status == "completed" and not math.isnan(v) else None
              for v, status in zip(summary["val_accuracy"], summary["status"])]
    return {"search": name, "seed": seed, "val_accuracy": values, "wall": wall, "train": sum(TRAIN_SECONDS),
            "search_seconds": sum(search_seconds), "keras_seconds": sum(keras_seconds), "runs": len(summary),
            "batch_32": int((summary["batch_size"] == 32).sum()),
            "statuses": summary["status"].value_counts().to_dict()}


def measure(name: str, runs: int, seed: int, epochs: int) -> dict:
    done = subprocess.run([sys.executable, __file__, "--search", name, "--runs", str(runs), "--seed", str(seed)],
                          capture_output=True, text=True, env={**os.environ, "BENCH_EPOCHS": str(epochs)})
    if done.returncode != 0:
        sys.stderr.write(done.stderr[-3000:])
        raise SystemExit(f"{name} seed {seed} failed with exit code {done.returncode}")
    return json.loads(done.stdout.strip().splitlines()[-1])


def best_within(values: list[float | None], budget: int) -> float:
    done = [v for v in values[:budget] if v is not None]
    return max(done) if done else float("nan")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seeds", type=int, default=5, help="seeds 0..N-1 (default 5)")
    parser.add_argument("--runs", type=int, default=40, help="runs of each sweep (default 40, at most 48)")
    parser.add_argument("--epochs", type=int, default=EPOCHS, help="epochs a run (default 3)")
    parser.add_argument("--quick", action="store_true", help="2 seeds x 10 runs")
    parser.add_argument("--search", choices=SEARCHES, help=argparse.SUPPRESS)
    parser.add_argument("--seed", type=int, default=0, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.search:
        print(json.dumps(sweep(args.search, args.runs, args.seed)))
        return
    if args.quick:
        args.seeds, args.runs = 2, 10
    from tabulate import tabulate

    started = time.perf_counter()
    results: dict[str, list[dict]] = {name: [] for name in SEARCHES}
    for seed in range(args.seeds):
        for name in SEARCHES:
            result = measure(name, args.runs, seed, args.epochs)
            results[name].append(result)
            best = best_within(result["val_accuracy"], args.runs)
            print(f"  {name} seed {seed}: best {best:.4f}, {result['wall']:.1f} s, {result['statuses']}",
                  file=sys.stderr, flush=True)
    budgets = [b for b in BUDGETS if b < args.runs] + [args.runs]

    rows = []
    for budget in budgets:
        grid_bests = [best_within(r["val_accuracy"], budget) for r in results["grid"]]
        for name in SEARCHES:
            bests = [best_within(r["val_accuracy"], budget) for r in results[name]]
            gaps = [b - g for b, g in zip(bests, grid_bests)]
            spread = statistics.stdev(bests) if len(bests) > 1 else 0.0
            rows.append([budget, name, f"{statistics.mean(bests):.4f}", f"{spread:.4f}",
                         f"{min(bests):.4f}-{max(bests):.4f}", f"{statistics.mean(gaps):+.4f}",
                         f"{sum(g > 0 for g in gaps)}/{sum(g == 0 for g in gaps)}/{sum(g < 0 for g in gaps)}"])
    print(f"\nBest final val_accuracy after the first k runs; {args.seeds} seeds x {args.runs} runs a search, "
          f"digits MLP, {args.epochs} epochs a run, 2 CPU cores\n")
    print(tabulate(rows, headers=["runs", "search", "mean best", "std", "min-max", "mean - grid's",
                                  "seeds better/level/worse than grid"]))

    rows = []
    for name in SEARCHES:
        runs = sum(r["runs"] for r in results[name])
        wall = sum(r["wall"] for r in results[name]) / runs
        in_train = sum(r["train"] for r in results[name]) / runs
        overhead = wall - in_train
        search_ms = sum(r["search_seconds"] for r in results[name]) / runs * 1000
        keras_ms = sum(r["keras_seconds"] for r in results[name]) / runs * 1000
        batch_32 = sum(r["batch_32"] for r in results[name]) / runs
        rows.append([name, runs, f"{batch_32:.0%}", f"{wall:.3f}", f"{in_train:.3f}", f"{overhead * 1000:.1f}",
                     f"{overhead / in_train:.2%}", f"{search_ms:.2f}", f"{keras_ms:.1f}",
                     f"{overhead * 1000 - search_ms - keras_ms:.1f}"])
    print("\nCost a run: wall and train seconds; the sweep's time outside train (target under 2% of a run), and "
          "of it: the search's ask+tell, clearing the Keras session and seeding, the rest (journal, exports)\n")
    print(tabulate(rows, headers=["search", "runs", "batch 32", "wall s", "train s", "outside train ms",
                                  "outside / train", "ask+tell ms", "clear+seed ms", "rest ms"]))
    print(f"\nWhole benchmark: {time.perf_counter() - started:.0f} s")


if __name__ == "__main__":
    main()

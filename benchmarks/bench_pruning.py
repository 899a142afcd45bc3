"""What does stopping bad runs early save, and what does it cost?

A real Keras grid on scikit-learn's digits: learning rate [1e-4, 1e-3, 1e-2, 0.1, 1.0]
x units [16, 64] x optimizer [adam, sgd] (20 configurations, some with poor learning
rates), 9 epochs a run, each seed's runs in their own random order (``grid.sample``),
for 3 seeds. The full grid (baseline, measured in the same invocation) against
``SuccessiveHalvingPruner("val_accuracy", min_epochs=1, reduction_factor=3)`` and
``MedianPruner("val_accuracy", warmup_epochs=2, min_runs=5)``, each sweep in a fresh
process. Reported: the epochs run and the share saved, the wall time and the share
saved, and the best ``val_accuracy`` of a completed run against the full grid's.
Targets: ASHA saves at least 50% of the epochs and finds a best within 0.01 of the full
grid's; the median rule saves at least 25%.

Then the cost of the decision's round trip for a worker process, which waits after every
epoch for the driver's verdict: 300 epochs of a train without a model on one worker,
with a pruner that never stops a run against none.

    python benchmarks/bench_pruning.py [--seeds 3] [--epochs 9]
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")

GRID = {"learning_rate": [1e-4, 1e-3, 1e-2, 0.1, 1.0], "units": [16, 64], "optimizer": ["adam", "sgd"]}
VARIANTS = ("full", "asha", "median")


def train(run, callbacks, epochs: int = 9):
    from runmanager.demo import build_model, load_digits_data

    x, y = load_digits_data()
    model = build_model(run.units, run.learning_rate, optimizer=run.optimizer)
    model.fit(x, y, epochs=epochs, batch_size=64, validation_split=0.2, callbacks=callbacks, verbose=0)


def sweep(variant: str, seed: int, epochs: int) -> dict:
    import functools

    from runmanager import MedianPruner, RunBuilder, RunManager, SuccessiveHalvingPruner

    pruner = {"full": None, "asha": SuccessiveHalvingPruner("val_accuracy", min_epochs=1, reduction_factor=3),
              "median": MedianPruner("val_accuracy", warmup_epochs=2, min_runs=5)}[variant]
    grid = RunBuilder(GRID)
    with tempfile.TemporaryDirectory() as folder:
        m = RunManager(folder, verbose=0)
        start = time.perf_counter()
        summary = m.sweep(functools.partial(train, epochs=epochs), grid.sample(len(grid), seed=seed), seed=seed,
                          pruner=pruner)
        wall = time.perf_counter() - start
        m.close()
    completed = summary[summary["status"] == "completed"]
    return {"epochs": int(summary["epochs"].sum()), "wall": wall, "best": float(completed["val_accuracy"].max()),
            "pruned": int((summary["status"] == "pruned").sum())}


def no_model(run, callbacks):
    model = type("Model", (), {"stop_training": False})()
    for callback in callbacks:
        callback.set_model(model)
        callback.on_train_begin()
    for epoch in range(run.num_epochs):
        for callback in callbacks:
            callback.on_epoch_begin(epoch)
        for callback in callbacks:
            callback.on_epoch_end(epoch, {"loss": 1.0 / (epoch + 1), "val_accuracy": 0.5})
    for callback in callbacks:
        callback.on_train_end()


def round_trip(judged: bool) -> float:
    """Seconds per epoch on one worker process, judged by a pruner or not."""
    from runmanager import RunManager
    from runmanager.pruning import Pruner

    class NeverStop(Pruner):
        def report(self, run, epoch, value):
            return False

    with tempfile.TemporaryDirectory() as folder:
        m = RunManager(folder, verbose=0)
        summary = m.sweep(no_model, {"num_epochs": [300], "repeat": [1, 2, 3]}, executor="processes", workers=1,
                          pruner=NeverStop("val_accuracy") if judged else None)
        m.close()
    durations = summary["run_duration"].tolist()[1:]  # the first run warms the worker up
    return statistics.median(durations) / 300


def measure(*args: str) -> dict:
    done = subprocess.run([sys.executable, __file__, *args], capture_output=True, text=True)
    if done.returncode != 0:
        sys.stderr.write(done.stderr[-3000:])
        raise SystemExit(f"{args} failed")
    return json.loads(done.stdout.strip().splitlines()[-1])


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seeds", type=int, default=3)
    parser.add_argument("--epochs", type=int, default=9)
    parser.add_argument("--variant", choices=(*VARIANTS, "round_trip"), help=argparse.SUPPRESS)
    parser.add_argument("--seed", type=int, default=0, help=argparse.SUPPRESS)
    parser.add_argument("--judged", action="store_true", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.variant == "round_trip":
        print(json.dumps(round_trip(args.judged)))
        return
    if args.variant:
        print(json.dumps(sweep(args.variant, args.seed, args.epochs)))
        return
    from tabulate import tabulate

    results = {v: [measure("--variant", v, "--seed", str(s), "--epochs", str(args.epochs)) for s in range(args.seeds)]
               for v in VARIANTS}
    full = results["full"]
    rows = []
    for variant in VARIANTS:
        runs = results[variant]
        epochs = statistics.mean(r["epochs"] for r in runs)
        wall = statistics.mean(r["wall"] for r in runs)
        gaps = [r["best"] - f["best"] for r, f in zip(runs, full)]
        rows.append([variant, f"{epochs:.0f}", f"{1 - epochs / statistics.mean(r['epochs'] for r in full):.0%}",
                     f"{wall:.1f}", f"{1 - wall / statistics.mean(r['wall'] for r in full):.0%}",
                     f"{statistics.mean(r['pruned'] for r in runs):.1f}",
                     f"{statistics.mean(r['best'] for r in runs):.4f}", f"{min(gaps):+.4f} to {max(gaps):+.4f}"])
    print(f"{len(list(full))} seeds; 20 configurations x {args.epochs} epochs; means over the seeds")
    print(tabulate(rows, headers=["variant", "epochs", "epochs saved", "wall s", "time saved", "runs pruned",
                                  "best val_accuracy", "best - full grid's (per seed)"]))
    print("Targets: asha saves >= 50% of the epochs with a best within 0.01 of the full grid's; median >= 25%.")
    plain = statistics.median(measure("--variant", "round_trip") for _ in range(3))
    judged = statistics.median(measure("--variant", "round_trip", "--judged") for _ in range(3))
    print(f"\nOne worker process, 300 epochs a run: {plain * 1000:.2f} ms an epoch without a pruner, "
          f"{judged * 1000:.2f} ms with one: the verdict's round trip costs {(judged - plain) * 1000:.2f} ms an epoch.")


if __name__ == "__main__":
    main()

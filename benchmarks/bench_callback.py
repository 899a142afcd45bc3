"""Overhead of recording a run: ``model.fit`` bare vs with ``m.callback(run)`` and a log_dir.

Both variants train the same small MLP on scikit-learn's digits, interleaved in
one process so that drifts in machine load hit both alike. Prints the median
time of each and the median of the per-pair ratios. Target: at most 1.02x.

    python benchmarks/bench_callback.py [--repeats 15] [--epochs 10]
"""

from __future__ import annotations

import argparse
import os
import statistics
import tempfile
import time

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

import keras  # noqa: E402
from tabulate import tabulate  # noqa: E402

from runmanager import RunManager  # noqa: E402
from runmanager.demo import build_model, load_digits_data  # noqa: E402


def fit_once(epochs: int, callbacks: list) -> float:
    x, y = load_digits_data()
    keras.utils.set_random_seed(0)
    model = build_model(32, 0.01)
    start = time.perf_counter()
    model.fit(x, y, epochs=epochs, batch_size=64, validation_split=0.2, callbacks=callbacks, verbose=0)
    elapsed = time.perf_counter() - start
    keras.backend.clear_session(free_memory=False)
    return elapsed


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeats", type=int, default=15)
    parser.add_argument("--epochs", type=int, default=10)
    args = parser.parse_args()
    fit_once(1, [])  # warm up: graph tracing and the first allocations
    bare, recorded, ratios = [], [], []
    with tempfile.TemporaryDirectory() as folder:
        for repeat in range(args.repeats):
            manager = RunManager(os.path.join(folder, f"r{repeat}"), verbose=0)
            run = {"units": 32, "learning_rate": 0.01}
            # Alternate the order so neither variant always runs second.
            if repeat % 2:
                with_cb = fit_once(args.epochs, [manager.callback(run)])
                without = fit_once(args.epochs, [])
            else:
                without = fit_once(args.epochs, [])
                with_cb = fit_once(args.epochs, [manager.callback(run)])
            manager.close()
            bare.append(without)
            recorded.append(with_cb)
            ratios.append(with_cb / without)
    per_epoch_ms = (statistics.median(recorded) - statistics.median(bare)) / args.epochs * 1000
    print(tabulate(
        [
            ["model.fit (baseline)", f"{statistics.median(bare):.3f}", "1.000x"],
            ["model.fit + m.callback(run), log_dir", f"{statistics.median(recorded):.3f}",
             f"{statistics.median(ratios):.3f}x"],
        ],
        headers=["variant", f"median s ({args.epochs} epochs)", "median ratio"],
    ))
    print(f"\n{args.repeats} interleaved repeats; about {per_epoch_ms:.2f} ms per epoch of overhead. Target: <= 1.02x")


if __name__ == "__main__":
    main()

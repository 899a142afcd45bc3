"""Does run 60 cost as much as run 1? Time and memory across a long sequential sweep.

Runs 60 small runs in one process with ``m.sweep`` and compares the last ten runs
with the first ten: the median time per run (from one run's start to the next, so
clearing the Keras session between runs is counted) and the resident memory growth
per run. The baseline, measured in the same invocation in its own fresh process, is
a plain loop over the same runs that clears the Keras session the same cheap way:
its memory growth is what Keras itself keeps per model built in a process.
Targets: time at most 1.1x; memory growth no more than the baseline's (about 4 MiB).

    python benchmarks/bench_sweep_scaling.py [--runs 60]
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

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")


def rss_mib() -> float:
    import psutil

    return psutil.Process().memory_info().rss / 2**20


def train(run, callbacks):
    from runmanager.demo import build_model, load_digits_data

    x, y = load_digits_data()
    model = build_model(run.units, 0.01)
    model.fit(x[:600], y[:600], epochs=2, batch_size=64, callbacks=callbacks, verbose=0)


def sweep(runs: int) -> tuple[list[float], list[float]]:
    """The runmanager sweep, with a log_dir: start times of the runs and RSS after each."""
    from runmanager import RunManager

    class Measured(RunManager):
        def begin_run(self, run, model=None):
            starts.append(time.perf_counter())
            super().begin_run(run, model)

        def end_run(self):
            super().end_run()
            rss.append(rss_mib())

    starts: list[float] = []
    rss: list[float] = []
    with tempfile.TemporaryDirectory() as folder:
        m = Measured(folder, verbose=0)
        m.sweep(train, {"units": [16], "repeat": list(range(runs))})
        starts.append(time.perf_counter())
        m.close()
    return starts, rss


def keras_loop(runs: int) -> tuple[list[float], list[float]]:
    """The baseline: the same runs in a plain loop, clearing the session as the sweep does."""
    import collections

    import keras

    run_type = collections.namedtuple("Run", "units repeat")
    starts: list[float] = []
    rss: list[float] = []
    for repeat in range(runs):
        starts.append(time.perf_counter())
        keras.backend.clear_session(free_memory=False)
        train(run_type(16, repeat), [])
        rss.append(rss_mib())
    starts.append(time.perf_counter())
    return starts, rss


def measure(variant: str, runs: int) -> dict[str, float]:
    done = subprocess.run([sys.executable, __file__, "--variant", variant, "--runs", str(runs)],
                          capture_output=True, text=True, check=True)
    starts, rss = json.loads(done.stdout.strip().splitlines()[-1])
    durations = [b - a for a, b in zip(starts, starts[1:])]
    return {
        "first": statistics.median(durations[:10]),
        "last": statistics.median(durations[-10:]),
        "rss10": rss[9],
        "rss_end": rss[-1],
        "growth": (rss[-1] - rss[9]) / (len(rss) - 10),
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=60)
    parser.add_argument("--variant", choices=("sweep", "keras_loop"), help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.variant:
        print(json.dumps(globals()[args.variant](args.runs)))
        return
    from tabulate import tabulate

    base, ours = measure("keras_loop", args.runs), measure("sweep", args.runs)
    rows = []
    for name, m in (("plain loop, clear_session(free_memory=False) (baseline)", base), ("runmanager m.sweep", ours)):
        rows.append([name, f"{m['first']:.3f}", f"{m['last']:.3f}", f"{m['last'] / m['first']:.2f}x",
                     f"{m['rss10']:.0f} -> {m['rss_end']:.0f}", f"{m['growth']:+.2f}"])
    print(tabulate(rows, headers=["variant", "s/run, runs 1-10", f"s/run, last 10 of {args.runs}",
                                  "last / first", "RSS MiB, run 10 -> last", "MiB per run"]))
    print(f"\nrunmanager against the baseline: time per run (last 10) {ours['last'] / base['last']:.2f}x, "
          f"memory growth per run {ours['growth'] - base['growth']:+.2f} MiB. "
          "Targets: last/first <= 1.10x; growth no more than the baseline's.")


if __name__ == "__main__":
    main()

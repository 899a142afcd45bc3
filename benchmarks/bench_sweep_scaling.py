"""Does run 60 cost as much as run 1, and what does a sweep cost per run against a plain loop?

Runs 60 small runs in one process with ``m.sweep`` and compares the last ten runs
with the first ten: the median time per run (from one run's start to the next, so
clearing the Keras session between runs is counted) and the resident memory growth
per run. The baseline, measured in the same invocation in its own fresh process, is
a plain loop over the same runs that clears the Keras session the same cheap way:
its memory growth is what Keras itself keeps per model built in a process.
Targets: time at most 1.1x; memory growth no more than the baseline's (about 4 MiB).

Then the cost per run against the plain loop. Whole processes differ by 10-25% from
one to the next on a small machine, more than the difference asked about, so this
part runs in one process: blocks of runs of the plain loop and of ``m.sweep``
alternate (ABBA, after a warm-up), and each run's time is split into the time
inside ``fit`` (from ``on_train_begin`` to ``on_train_end``) and the rest (building
the model, clearing the session, runmanager's bookkeeping). Target: at most 1.05x.

    python benchmarks/bench_sweep_scaling.py [--runs 60] [--rounds 30]
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


def interleaved(rounds: int, block: int = 6) -> dict[str, list[float]]:
    """Blocks of ``block`` runs, plain loop and sweep in turn (ABBA); per-run and in-fit times."""
    import collections

    import keras

    from runmanager import RunManager

    times: dict[str, list[float]] = collections.defaultdict(list)

    class FitTimer(keras.callbacks.Callback):
        def __init__(self, variant: str) -> None:
            super().__init__()
            self.variant = variant

        def on_train_begin(self, logs=None):
            self.start = time.perf_counter()

        def on_train_end(self, logs=None):
            times[f"{self.variant}_fit"].append(time.perf_counter() - self.start)

    def timed_train(run, callbacks):
        train(run, [*callbacks, FitTimer("sweep")])

    def record(variant: str, starts: list[float]) -> None:
        times[variant] += [b - a for a, b in zip(starts[1:], starts[2:])]  # the first run of a block warms up
        del times[f"{variant}_fit"][-block]

    def plain_block() -> None:
        run_type = collections.namedtuple("Run", "units repeat")
        starts = []
        for repeat in range(block):
            starts.append(time.perf_counter())
            keras.backend.clear_session(free_memory=False)
            train(run_type(16, repeat), [FitTimer("plain")])
        starts.append(time.perf_counter())
        record("plain", starts)

    def sweep_block() -> None:
        starts: list[float] = []

        class Timed(RunManager):
            def begin_run(self, run, model=None):
                starts.append(time.perf_counter())
                super().begin_run(run, model)

        with tempfile.TemporaryDirectory() as folder:
            m = Timed(folder, verbose=0)
            m.sweep(timed_train, {"units": [16], "repeat": list(range(block))})
            starts.append(time.perf_counter())
            m.close()
        record("sweep", starts)

    plain_block()  # warm-up, not counted
    times.clear()
    for index in range(rounds):
        for variant in ((plain_block, sweep_block) if index % 2 == 0 else (sweep_block, plain_block)):
            variant()
    return dict(times)


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
    parser.add_argument("--rounds", type=int, default=30, help="plain/sweep block pairs in the per-run part")
    parser.add_argument("--variant", choices=("sweep", "keras_loop", "interleaved"), help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.variant == "interleaved":
        print(json.dumps(interleaved(args.rounds)))
        return
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

    done = subprocess.run([sys.executable, __file__, "--variant", "interleaved", "--rounds", str(args.rounds)],
                          capture_output=True, text=True, check=True)
    times = json.loads(done.stdout.strip().splitlines()[-1])
    med = {name: statistics.median(values) * 1000 for name, values in times.items()}
    rows = [[variant, len(times[variant]), f"{med[variant]:.1f}", f"{med[variant + '_fit']:.1f}",
             f"{med[variant] - med[variant + '_fit']:.1f}", f"{med[variant] / med['plain']:.3f}x"]
            for variant in ("plain", "sweep")]
    print(f"\nPer run against the plain loop, one process, {args.rounds} ABBA rounds of 5 counted runs each:")
    print(tabulate(rows, headers=["variant", "runs", "median ms/run", "inside fit", "outside fit",
                                  "vs plain loop"]))
    ratios = [s / p for s, p in zip(times["sweep"], times["plain"])]
    print(f"runmanager against the plain loop: {med['sweep'] / med['plain']:.3f}x a run "
          f"(paired runs: median {statistics.median(ratios):.3f}x, quartiles "
          f"{statistics.quantiles(ratios, n=4)[0]:.3f}-{statistics.quantiles(ratios, n=4)[2]:.3f}); "
          f"outside fit +{(med['sweep'] - med['sweep_fit']) - (med['plain'] - med['plain_fit']):.1f} ms. "
          "Target: at most 1.05x.")


if __name__ == "__main__":
    main()

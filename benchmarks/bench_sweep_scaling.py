"""Does run 60 cost as much as run 1? Time and memory across a long sequential sweep.

Runs 60 small runs in one process with ``m.sweep`` and compares the last ten
runs with the first ten: the median time per run (from one run's start to the
next, so clearing the Keras session between runs is counted) and the resident
memory growth per run. Targets: time at most 1.1x; memory growth at most about
4 MiB per run, the floor that Keras itself keeps per model built in a process.

    python benchmarks/bench_sweep_scaling.py [--runs 60]
"""

from __future__ import annotations

import argparse
import os
import statistics
import tempfile
import time

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

import psutil  # noqa: E402
from tabulate import tabulate  # noqa: E402

from runmanager import RunManager  # noqa: E402
from runmanager.demo import build_model, load_digits_data  # noqa: E402


class Measured(RunManager):
    """Records when each run began and the process's RSS when it ended."""

    def __init__(self, *args, **kwargs):
        super().__init__(*args, **kwargs)
        self.starts: list[float] = []
        self.rss: list[float] = []

    def begin_run(self, run, model=None):
        self.starts.append(time.perf_counter())
        super().begin_run(run, model)

    def end_run(self):
        super().end_run()
        self.rss.append(psutil.Process().memory_info().rss / 2**20)


def train(run, callbacks):
    x, y = load_digits_data()
    model = build_model(run.units, 0.01)
    model.fit(x[:600], y[:600], epochs=2, batch_size=64, callbacks=callbacks, verbose=0)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=60)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as folder:
        m = Measured(folder, verbose=0)
        m.sweep(train, {"units": [16], "repeat": list(range(args.runs))})
        m.starts.append(time.perf_counter())
        m.close()
    durations = [b - a for a, b in zip(m.starts, m.starts[1:])]
    first, last = statistics.median(durations[:10]), statistics.median(durations[-10:])
    rss_growth = (m.rss[-1] - m.rss[9]) / (len(m.rss) - 10)
    print(tabulate(
        [
            ["median time per run (s)", f"{first:.3f}", f"{last:.3f}", f"{last / first:.2f}x", "<= 1.10x"],
            ["RSS after run (MiB)", f"{m.rss[9]:.0f}", f"{m.rss[-1]:.0f}",
             f"{rss_growth:+.2f} MiB/run", "<= ~4 MiB/run"],
        ],
        headers=["", "runs 1-10", f"runs {args.runs - 9}-{args.runs}", "last / first", "target"],
    ))


if __name__ == "__main__":
    main()

"""Does runmanager's bookkeeping per run stay constant over a very long sweep?

Runs 2,000 short runs of 10 epochs (with a ``log_dir`` in a temporary folder,
``verbose=0``) with ``m.sweep``. ``train`` builds no model: it drives the Keras
callbacks it is given as ``model.fit`` would (``on_train_begin``, then
``on_epoch_begin`` / ``on_epoch_end`` with ``loss``, ``accuracy``, ``val_loss`` and
``val_accuracy`` each epoch, then ``on_train_end``), so what is timed is
runmanager's own work: the journal, the CSV/JSON exports, the statuses. The time of
a run is from its start to the next run's start, so everything between runs
(clearing the Keras session, the exports) is counted.

The baseline, measured in the same invocation, is the same ``train`` in a plain
Python loop over the same runs, with a trivial callback that keeps each epoch's logs
in a list (what a hand-written loop would keep), clearing the Keras session between
runs as the sweep does. Each variant runs in a fresh process of this script.

Reported for each variant: the median ms a run over the first 100 runs and over the
last 100, their ratio, and the total; then runmanager's bookkeeping a run, the
sweep's median less the plain loop's. Targets: the sweep's last 100 runs at most
1.3x its first 100, and at most 15 ms of bookkeeping a run in the last 100.

    python benchmarks/bench_long_sweep.py [--runs 2000] [--epochs 10] [--out times.json]
    python benchmarks/bench_long_sweep.py --quick      # 300 runs, a smoke check
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

WINDOW = 100  # runs at each end of the sweep that are compared
TARGET_RATIO = 1.3  # the sweep's last runs against its first
TARGET_BOOKKEEPING_MS = 15.0  # runmanager's cost a run, in the last runs


def grid(runs: int) -> dict[str, list[int]]:
    return {"units": list(range(1, runs + 1))}


def epoch_logs(run, epoch: int) -> dict[str, float]:
    """Four metrics, deterministic in the run's params and the epoch, never NaN."""
    scale = 1.0 + (run.units % 7) / 10
    loss = scale / (epoch + 2)
    return {
        "loss": loss,
        "accuracy": 1.0 - loss / 2,
        "val_loss": loss * 1.1,
        "val_accuracy": 1.0 - loss * 0.55,
    }


def make_train(epochs: int):
    def train(run, callbacks):
        for cb in callbacks:
            cb.on_train_begin()
        for epoch in range(epochs):
            for cb in callbacks:
                cb.on_epoch_begin(epoch)
            logs = epoch_logs(run, epoch)
            for cb in callbacks:
                cb.on_epoch_end(epoch, logs)
        for cb in callbacks:
            cb.on_train_end()

    return train


def sweep(runs: int, epochs: int) -> list[float]:
    """The runmanager sweep, with a log_dir: start times of the runs, then the end of the sweep."""
    import runmanager
    from runmanager import RunManager

    print(f"runmanager: {runmanager.__file__}", file=sys.stderr, flush=True)

    class Measured(RunManager):
        def begin_run(self, run, model=None):
            starts.append(time.perf_counter())
            super().begin_run(run, model)

    starts: list[float] = []
    with tempfile.TemporaryDirectory() as folder:
        m = Measured(folder, verbose=0)
        m.sweep(make_train(epochs), grid(runs))
        starts.append(time.perf_counter())
        m.close()
    return starts


def plain(runs: int, epochs: int) -> list[float]:
    """The baseline: the same runs in a plain loop, keeping the logs in a list."""
    import keras

    from runmanager import RunBuilder

    class Keep(keras.callbacks.Callback):
        def __init__(self, rows: list) -> None:
            super().__init__()
            self.rows = rows

        def on_epoch_end(self, epoch, logs=None):
            self.rows.append(dict(logs or {}))

    train = make_train(epochs)
    rows: list[dict] = []
    starts: list[float] = []
    for run in RunBuilder(grid(runs)):
        starts.append(time.perf_counter())
        keras.backend.clear_session(free_memory=False)
        train(run, [Keep(rows)])
    starts.append(time.perf_counter())
    assert len(rows) == runs * epochs
    return starts


def measure(variant: str, runs: int, epochs: int) -> list[float]:
    """Per-run seconds of ``variant``, run in a fresh process of this script."""
    done = subprocess.run(
        [sys.executable, __file__, "--variant", variant, "--runs", str(runs), "--epochs", str(epochs)],
        capture_output=True, text=True,
    )
    if done.returncode:
        sys.stderr.write(done.stderr)
        raise SystemExit(f"The {variant} variant failed with exit status {done.returncode}.")
    for line in done.stderr.splitlines():  # TensorFlow's start-up chatter is left out
        if line.startswith("runmanager: "):
            print(line, file=sys.stderr)
    starts = json.loads(done.stdout.strip().splitlines()[-1])
    return [b - a for a, b in zip(starts, starts[1:])]


def stats(durations: list[float], window: int) -> dict[str, float]:
    return {
        "first": statistics.median(durations[:window]) * 1000,
        "last": statistics.median(durations[-window:]) * 1000,
        "total": sum(durations),
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=2000)
    parser.add_argument("--epochs", type=int, default=10)
    parser.add_argument("--quick", action="store_true", help="300 runs, a smoke check")
    parser.add_argument("--out", help="also write the per-run times of both variants to this JSON file")
    parser.add_argument("--variant", choices=("sweep", "plain"), help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.quick:
        args.runs = 300
    if args.variant:
        print(json.dumps(globals()[args.variant](args.runs, args.epochs)))
        return
    from tabulate import tabulate

    window = min(WINDOW, max(1, args.runs // 2))
    start = time.perf_counter()
    times = {"plain": measure("plain", args.runs, args.epochs), "sweep": measure("sweep", args.runs, args.epochs)}
    wall = time.perf_counter() - start
    base, ours = stats(times["plain"], window), stats(times["sweep"], window)
    book = {"first": ours["first"] - base["first"], "last": ours["last"] - base["last"],
            "total": ours["total"] - base["total"]}
    rows = []
    for name, m in (("plain loop, logs kept in a list (baseline)", base), ("runmanager m.sweep, log_dir", ours),
                    ("runmanager bookkeeping (sweep - plain)", book)):
        ratio = f"{m['last'] / m['first']:.2f}x" if m["first"] > 0 else "n/a"
        rows.append([name, m["first"], m["last"], ratio, m["total"]])
    print(f"{args.runs} runs x {args.epochs} epochs; medians over the first and last {window} runs")
    print(tabulate(rows, headers=["variant", f"ms/run, runs 1-{window}",
                                  f"ms/run, last {window} of {args.runs}", "last / first", "total s"],
                   floatfmt=("", ".2f", ".2f", "", ".2f")))
    ratio = ours["last"] / ours["first"]
    print(f"\nTargets: sweep last {window} / first {window} <= {TARGET_RATIO:.2f}x: {ratio:.2f}x "
          f"({'met' if ratio <= TARGET_RATIO else 'missed'}); bookkeeping in the last {window} "
          f"<= {TARGET_BOOKKEEPING_MS:.0f} ms a run: {book['last']:.2f} ms "
          f"({'met' if book['last'] <= TARGET_BOOKKEEPING_MS else 'missed'}). Wall time {wall:.0f} s.")
    if args.out:
        with open(args.out, "w") as f:
            json.dump({"runs": args.runs, "epochs": args.epochs, "seconds_per_run": times}, f)
        print(f"Per-run times written to {args.out}")


if __name__ == "__main__":
    main()

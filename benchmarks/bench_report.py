"""The HTML report of a 1,000-run sweep: how long it takes to write, how much it weighs, and how
fast headless Chromium opens it, against a baseline page of the same summary as a plain table.

Two sweeps of 1,000 runs × 20 epochs each, written quickly without a model (``train`` drives
the Keras callback with made-up metrics that depend on the params, as ``model.fit`` would):

- ``random``: ``RandomSearch`` over learning rate (log-uniform), units (6 values), dropout
  (uniform) and optimizer: 1,000 distinct configurations, one run each;
- ``repeats``: 250 random configurations × ``repeats=4``.

For each: the time to write the report (``runmanager.report``, reading the journal
included), its size, and the time Chromium takes to open it (navigation to the ``load``
event, then a full-page screenshot, which forces layout and paint of every figure), best
of 3 opens. The baseline is the same summary written by ``DataFrame.to_html`` (a page
of numbers, no figures), opened the same way in the same browser. Targets: the report
opens in under 2 s and weighs under 5 MB.

    python benchmarks/bench_report.py [--runs 1000] [--epochs 20]

Needs ``pip install "runmanager[report]" playwright`` and Chromium (``apt-get install
chromium``). About a minute on 2 cores.
"""

from __future__ import annotations

import argparse
import math
import shutil
import sys
import tempfile
import time
from pathlib import Path

import runmanager
from runmanager import RandomSearch, RunManager


def drive(callbacks, epochs, level):
    """Drive the callbacks as ``model.fit`` would, ``epochs`` epochs of made-up metrics."""
    import types

    model = types.SimpleNamespace(stop_training=False)
    for callback in callbacks:
        callback.set_model(model)
        callback.on_train_begin()
    for epoch in range(epochs):
        progress = 1 - math.exp(-(epoch + 1) / 4)
        logs = {"loss": 2.3 * (1 - level * progress), "accuracy": level * progress,
                "val_loss": 2.4 * (1 - level * progress) + 0.01 * epoch, "val_accuracy": level * progress - 0.02}
        for callback in callbacks:
            callback.on_epoch_begin(epoch)
            callback.on_epoch_end(epoch, logs)
    for callback in callbacks:
        callback.on_train_end()


class Train:
    def __init__(self, epochs):
        self.epochs = epochs

    def __call__(self, run, callbacks):
        import random

        level = (0.95 - abs(math.log10(run.learning_rate) + 2.5) * 0.15 - run.dropout * 0.2
                 + (0.02 if run.optimizer == "adam" else 0.0) + run.units / 5000 + random.gauss(0, 0.01))
        drive(callbacks, self.epochs, max(0.1, min(level, 0.99)))


def open_seconds(browser, path: Path, shot: Path) -> tuple[float, float]:
    """(to the load event, to a full-page screenshot), in seconds, of a fresh page."""
    page = browser.new_page(viewport={"width": 1280, "height": 900})
    failed = []
    page.on("requestfailed", lambda request: failed.append(request.url))
    start = time.perf_counter()
    page.goto(path.resolve().as_uri(), wait_until="load")
    loaded = time.perf_counter() - start
    page.screenshot(path=str(shot), full_page=True)
    painted = time.perf_counter() - start
    page.close()
    if failed:
        raise SystemExit(f"{path} failed to load {failed}")
    return loaded, painted


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=1000)
    parser.add_argument("--epochs", type=int, default=20)
    args = parser.parse_args()
    from playwright.sync_api import sync_playwright
    from scipy.stats import loguniform, uniform

    chromium = shutil.which("chromium") or shutil.which("chromium-browser")
    if chromium is None:
        raise SystemExit("Chromium is not installed: apt-get install chromium")
    space = {"learning_rate": loguniform(1e-4, 1e-1), "units": [16, 32, 64, 128, 256, 512],
             "dropout": uniform(0, 0.5), "optimizer": ["adam", "sgd"]}
    root = Path(tempfile.mkdtemp(prefix="bench-report-"))
    rows = []
    with sync_playwright() as playwright:
        browser = playwright.chromium.launch(executable_path=chromium, args=["--no-sandbox"])
        for name, search, repeats in (("random", RandomSearch(space, args.runs, seed=0), 1),
                                      ("repeats", RandomSearch(space, args.runs // 4, seed=0), 4)):
            log_dir = root / name
            start = time.perf_counter()
            RunManager(log_dir, verbose=0, durable=False).sweep(Train(args.epochs), search, repeats=repeats, seed=0)
            sweep_s = time.perf_counter() - start
            start = time.perf_counter()
            report = runmanager.report(log_dir)
            write_s = time.perf_counter() - start
            baseline = log_dir / "baseline.html"
            baseline.write_text(runmanager.load_summary(log_dir).to_html(), encoding="utf-8")
            opens = {page: min(open_seconds(browser, page, log_dir / "shot.png") for _ in range(3))
                     for page in (baseline, report)}
            rows.append((name, sweep_s, write_s, report.stat().st_size, baseline.stat().st_size,
                         opens[report], opens[baseline]))
        browser.close()
    print(f"{args.runs} runs x {args.epochs} epochs per sweep; Chromium {chromium}; best of 3 opens\n")
    header = (f"{'sweep':8} {'sweep s':>8} {'write s':>8} {'report MB':>10} {'table MB':>9} "
              f"{'load s':>7} {'paint s':>8} {'table paint s':>14} {'paint ratio':>12}")
    print(header)
    print("-" * len(header))
    for name, sweep_s, write_s, size, base_size, (load, paint), (_, base_paint) in rows:
        print(f"{name:8} {sweep_s:8.1f} {write_s:8.2f} {size / 1e6:10.2f} {base_size / 1e6:9.2f} "
              f"{load:7.2f} {paint:8.2f} {base_paint:14.2f} {paint / base_paint:12.2f}")
    worst = max(row[5][1] for row in rows)
    heaviest = max(row[3] for row in rows)
    print(f"\ntargets: opens in under 2 s (worst {worst:.2f} s), under 5 MB (largest {heaviest / 1e6:.2f} MB)")
    shutil.rmtree(root, ignore_errors=True)
    if worst >= 2 or heaviest >= 5e6:
        sys.exit(1)


if __name__ == "__main__":
    main()

"""What does MLflowSink cost a sweep?

The demo sweep (``runmanager.demo``: its 2 x 2 grid, its ``train_digits``, 5 epochs a run)
without a sink, and with an ``MLflowSink`` logging to a SQLite database and, where ``mlflow
server`` starts, to a real tracking server on this machine (its lean start). The variants
alternate, round after round, in one process; the median wall time of a whole sweep is
reported (the sink's end included: the sweep waits for what is queued, then logs the exports
as artifacts). The MLflow calls the sink made, and their time, are counted in its thread.
Target: at most 1.05x the sweep without the sink.

    python benchmarks/bench_mlflow.py [--rounds 5] [--no-server]
"""

from __future__ import annotations

import argparse
import os
import shutil
import signal
import socket
import statistics
import subprocess
import sys
import tempfile
import time
import urllib.request
from pathlib import Path

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")


def start_server(folder: Path) -> tuple[subprocess.Popen, str] | None:
    """``mlflow server`` in its lean start on a free port, or None when it does not answer in 120 s."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    command = [shutil.which("mlflow") or str(Path(sys.executable).parent / "mlflow"), "server",
               "--backend-store-uri", f"sqlite:///{folder}/server.db", "--artifacts-destination",
               str(folder / "artifacts"), "--host", "127.0.0.1", "--port", str(port), "--workers", "1"]
    env = {**os.environ, "MLFLOW_SERVER_ENABLE_JOB_EXECUTION": "false"}
    process = subprocess.Popen(command, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, env=env,
                               start_new_session=True)
    address = f"http://127.0.0.1:{port}"
    deadline = time.monotonic() + 120
    while time.monotonic() < deadline and process.poll() is None:
        try:
            with urllib.request.urlopen(f"{address}/health", timeout=2):
                return process, address
        except OSError:
            time.sleep(0.3)
    stop_server(process)
    return None


def stop_server(process: subprocess.Popen) -> None:
    os.killpg(process.pid, signal.SIGTERM)
    try:
        process.wait(timeout=30)
    except subprocess.TimeoutExpired:
        os.killpg(process.pid, signal.SIGKILL)


class CountedClient:
    """The sink's MlflowClient, counting its calls and their time (they run in the sink's thread)."""

    def __init__(self, client) -> None:
        self._client = client
        self.calls = 0
        self.seconds = 0.0

    def __getattr__(self, name):
        attribute = getattr(self._client, name)
        if not callable(attribute):
            return attribute

        def timed(*args, **kwargs):
            start = time.perf_counter()
            try:
                return attribute(*args, **kwargs)
            finally:
                self.calls += 1
                self.seconds += time.perf_counter() - start

        return timed


def one_sweep(folder: Path, uri: str | None, round_: int) -> tuple[float, int, float]:
    """Seconds for the demo sweep, and the MLflow calls (count, seconds) of its sink."""
    from runmanager import RunManager
    from runmanager.demo import DEMO_PARAMS, train_digits
    from runmanager.sinks import MLflowSink

    sinks = []
    if uri is not None:
        sink = MLflowSink(uri, experiment="bench")  # made before the clock starts, as a user does
        sink.client = CountedClient(sink.client)
        sinks.append(sink)
    log_dir = folder / f"{'none' if uri is None else uri.split(':')[0]}-{round_}"
    m = RunManager(log_dir, verbose=0, sinks=sinks)
    start = time.perf_counter()
    m.sweep(train_digits, DEMO_PARAMS, seed=0)
    m.close()
    seconds = time.perf_counter() - start
    if uri is None:
        return seconds, 0, 0.0
    return seconds, sinks[0].client.calls, sinks[0].client.seconds


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--rounds", type=int, default=5)
    parser.add_argument("--no-server", action="store_true", help="leave the real tracking server out")
    args = parser.parse_args()

    with tempfile.TemporaryDirectory() as name:
        folder = Path(name)
        os.chdir(folder)  # MLflow puts a SQLite store's artifacts under ./mlruns
        variants: dict[str, str | None] = {"no sink": None, "MLflowSink, sqlite:///": f"sqlite:///{folder}/m.db"}
        server = None if args.no_server else start_server(folder)
        if server is not None:
            variants["MLflowSink, mlflow server (http)"] = server[1]
        try:
            for uri in variants.values():
                one_sweep(folder, uri, -1)  # warm-up: imports, the first graph, the database's tables
            times: dict[str, list[float]] = {label: [] for label in variants}
            calls: dict[str, list[tuple[int, float]]] = {label: [] for label in variants}
            for round_ in range(args.rounds):
                for label, uri in variants.items():
                    seconds, count, spent = one_sweep(folder, uri, round_)
                    times[label].append(seconds)
                    calls[label].append((count, spent))
        finally:
            if server is not None:
                stop_server(server[0])
    base = statistics.median(times["no sink"])
    print(f"The demo sweep (4 runs x 5 epochs), median of {args.rounds} alternating rounds:\n")
    print("| variant | sweep wall time | ratio | MLflow calls a sweep | their time (sink's thread) |")
    print("|---|---|---|---|---|")
    for label in variants:
        median = statistics.median(times[label])
        count = statistics.median(c for c, _ in calls[label])
        spent = statistics.median(s for _, s in calls[label])
        made = "-" if label == "no sink" else f"{count:.0f}"
        took = "-" if label == "no sink" else f"{spent * 1000:.0f} ms"
        print(f"| {label} | {median:.2f} s | {median / base:.3f}x | {made} | {took} |")
    if "MLflowSink, mlflow server (http)" not in variants and not args.no_server:
        print("\n(mlflow server did not start here: no row for it.)")


if __name__ == "__main__":
    main()

"""What do checkpoints cost, and what does resuming from one save?

1. The cost per epoch of ``sweep(..., checkpoint="best")`` against Keras's own
   ``ModelCheckpoint`` doing the same saves (``save_best_only=True`` into ``best.keras``
   and a second one into ``last.keras``, as runmanager keeps both while a run goes), both
   inside the same runmanager sweep so that only the checkpointing differs; a sweep with no
   checkpoints at all is shown for scale. Two models on scikit-learn's digits: the demo's
   MLP (64-32-10) and one of about 5 M parameters (64-2048-2048-10). The variants alternate,
   round after round, in one process; the median per epoch is reported. Target: at most
   1.05x Keras's.

2. A 20-epoch run killed (SIGKILL) at the end of epoch 15, then resumed with
   ``resume=True`` in a fresh process, against the same run never killed, in a fresh
   process too (start-up included in both), and against start-up alone (the finished
   sweep resumed, with nothing left to run). Target: the resumed sweep takes the 5
   remaining epochs plus start-up (about 0.25x of the 20 epochs' training time), not 20.

    python benchmarks/bench_checkpoint.py [--rounds 5] [--epochs 20]
"""

from __future__ import annotations

import argparse
import os
import signal
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")

MODELS = {"demo MLP (64-32-10)": (32,), "5M MLP (64-2048-2048-10)": (2048, 2048)}


def build(hidden: tuple[int, ...]):
    import keras

    model = keras.Sequential([keras.Input((64,)), *[keras.layers.Dense(u, activation="relu") for u in hidden],
                              keras.layers.Dense(10, activation="softmax")])
    model.compile(optimizer=keras.optimizers.Adam(1e-3), loss="sparse_categorical_crossentropy",
                  metrics=["accuracy"])
    return model


def make_train(hidden: tuple[int, ...], epochs: int, keras_folder: str | None):
    """A train function; with ``keras_folder``, Keras's ModelCheckpoint does runmanager's saves."""

    def train(run, callbacks):
        import keras

        from runmanager.demo import load_digits_data

        x, y = load_digits_data()
        extra = []
        if keras_folder is not None:
            extra = [keras.callbacks.ModelCheckpoint(os.path.join(keras_folder, "best.keras"), monitor="val_accuracy",
                                                     mode="max", save_best_only=True),
                     keras.callbacks.ModelCheckpoint(os.path.join(keras_folder, "last.keras"))]
        build(hidden).fit(x, y, epochs=epochs, batch_size=64, validation_split=0.2, callbacks=[*callbacks, *extra],
                          verbose=0)

    return train


def per_epoch(variant: str, hidden: tuple[int, ...], epochs: int) -> float:
    """Seconds per epoch of one run of the sweep, measured from its epoch rows."""
    from runmanager import RunManager

    with tempfile.TemporaryDirectory() as folder:
        keras_folder = os.path.join(folder, "keras") if variant == "keras" else None
        if keras_folder:
            os.makedirs(keras_folder)
        m = RunManager(os.path.join(folder, "runs"), verbose=0)
        start = time.perf_counter()
        m.sweep(make_train(hidden, epochs, keras_folder), {"seed": [0]}, seed=0,
                checkpoint="best" if variant == "runmanager" else False, metric="val_accuracy")
        wall = time.perf_counter() - start
        m.close()
    return wall / epochs


KILLED = """
import os, signal, sys, time
import keras
from runmanager import RunManager
from runmanager.demo import build_model, load_digits_data

KILL_AT = int(os.environ.get("BENCH_KILL_AT", "0"))


class Kill(keras.callbacks.Callback):
    def on_epoch_end(self, epoch, logs=None):
        if epoch + 1 == KILL_AT:
            os.kill(os.getpid(), signal.SIGKILL)


def train(run, callbacks, checkpoint):
    x, y = load_digits_data()
    model = checkpoint.model or build_model(64, 0.001)
    model.fit(x, y, epochs=20, initial_epoch=checkpoint.epoch, batch_size=64, validation_split=0.2,
              callbacks=[*callbacks, Kill()], verbose=0)


if __name__ == "__main__":
    RunManager(sys.argv[1], verbose=0).sweep(train, {"units": [64]}, checkpoint=True, resume=True, seed=0)
"""


def timed_process(script: Path, log_dir: Path, kill_at: int = 0) -> tuple[float, int]:
    env = {**os.environ, "BENCH_KILL_AT": str(kill_at)}
    start = time.perf_counter()
    done = subprocess.run([sys.executable, str(script), str(log_dir)], env=env, capture_output=True, text=True)
    return time.perf_counter() - start, done.returncode


def resume_rows(rounds: int) -> list[tuple[str, float]]:
    from runmanager import load_results

    timings: dict[str, list[float]] = {"never killed: 20 epochs": [], "resumed after epoch 15": [],
                                       "killed attempt (15 epochs)": [], "start-up alone (nothing left to run)": []}
    with tempfile.TemporaryDirectory() as folder:
        script = Path(folder) / "killed.py"
        script.write_text(KILLED)
        for r in range(rounds):
            whole = Path(folder) / f"whole-{r}"
            seconds, code = timed_process(script, whole)
            assert code == 0, code
            timings["never killed: 20 epochs"].append(seconds)
            killed = Path(folder) / f"killed-{r}"
            seconds, code = timed_process(script, killed, kill_at=15)
            assert code == -signal.SIGKILL, code
            timings["killed attempt (15 epochs)"].append(seconds)
            seconds, code = timed_process(script, killed)
            assert code == 0, code
            timings["resumed after epoch 15"].append(seconds)
            assert load_results(killed)["epoch"].tolist() == list(range(1, 21))
            seconds, code = timed_process(script, whole)  # resumed with every run completed
            assert code == 0, code
            timings["start-up alone (nothing left to run)"].append(seconds)
    return [(name, statistics.median(values)) for name, values in timings.items()]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--rounds", type=int, default=5)
    parser.add_argument("--epochs", type=int, default=20)
    args = parser.parse_args()

    print(f"Cost per epoch, median of {args.rounds} alternating rounds of {args.epochs} epochs:\n")
    print("| model | no checkpoints | Keras ModelCheckpoint (best + last) | checkpoint=\"best\" | ratio to Keras |")
    print("|---|---|---|---|---|")
    for name, hidden in MODELS.items():
        per_epoch("none", hidden, 2)  # warm-up: imports, the first graph
        times: dict[str, list[float]] = {"none": [], "keras": [], "runmanager": []}
        for _ in range(args.rounds):
            for variant in times:
                times[variant].append(per_epoch(variant, hidden, args.epochs))
        none, keras_, ours = (statistics.median(times[v]) for v in ("none", "keras", "runmanager"))
        print(f"| {name} | {none * 1000:.0f} ms | {keras_ * 1000:.0f} ms | {ours * 1000:.0f} ms | {ours / keras_:.2f}x |")

    print(f"\nA 20-epoch run killed at epoch 15, each in a fresh process, median of {args.rounds}:\n")
    print("| sweep | wall (start-up included) | training time (wall less start-up) | ratio to 20 epochs' |")
    print("|---|---|---|---|")
    rows = dict(resume_rows(args.rounds))
    start_up = rows["start-up alone (nothing left to run)"]
    whole = rows["never killed: 20 epochs"] - start_up
    for name, seconds in rows.items():
        trained = seconds - start_up
        print(f"| {name} | {seconds:.2f} s | {trained:.2f} s | {trained / whole:.2f}x |")


if __name__ == "__main__":
    main()

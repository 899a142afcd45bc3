"""The sweeps of ``gpu_check.sh``: one small sweep per executor with GPUs, and where each run ran.

    python benchmarks/gpu_check.py            # all executors, then CPU in a subprocess
    python benchmarks/gpu_check.py --cpu      # only the CPU sweep (the GPU hidden)

Each epoch row records the process, ``CUDA_VISIBLE_DEVICES``, the GPUs TensorFlow sees
(``tf.config.list_logical_devices``), the device of the model's first weight, the GPU memory
the process holds (``nvidia-smi``) and whether memory growth was set.
"""

from __future__ import annotations

import functools
import os
import shutil
import subprocess
import sys
import tempfile
import time

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
os.environ.setdefault("RAY_USAGE_STATS_ENABLED", "0")

from runmanager import RunManager  # noqa: E402 - after the environment

GRID = {"units": [512, 1024], "layers": [2, 3]}
EPOCHS = 3


@functools.cache
def data():
    import numpy as np

    rng = np.random.default_rng(0)
    x = rng.normal(size=(20000, 128)).astype("float32")
    y = (x[:, :10].argmax(axis=1)).astype("int32")
    return x, y


def train(run, callbacks):
    import keras

    x, y = data()
    model = keras.Sequential([keras.Input((128,)),
                              *[keras.layers.Dense(run.units, activation="relu") for _ in range(run.layers)],
                              keras.layers.Dense(10, activation="softmax")])
    model.compile(optimizer="adam", loss="sparse_categorical_crossentropy", metrics=["accuracy"])
    model.fit(x, y, epochs=EPOCHS, batch_size=256, callbacks=callbacks, verbose=0)


def gpu_memory_mib(pid: int) -> str:
    """The GPU memory ``pid`` holds, from nvidia-smi ("-" without one)."""
    if shutil.which("nvidia-smi") is None:
        return "-"
    out = subprocess.run(["nvidia-smi", "--query-compute-apps=pid,used_memory", "--format=csv,noheader,nounits"],
                         capture_output=True, text=True).stdout
    used = [line.split(",")[1].strip() for line in out.splitlines() if line.split(",")[0].strip() == str(pid)]
    return used[0] if used else "0"


class Where(RunManager):
    """Columns that say where each epoch ran."""

    def extra_columns(self):
        import tensorflow as tf

        try:
            device = str(self.model.weights[0].value.device).split("device:")[-1]
        except Exception:  # noqa: BLE001 - another backend
            device = "?"
        return {"pid": os.getpid(),
                "cuda_visible": os.environ.get("CUDA_VISIBLE_DEVICES", "unset"),
                "logical_gpus": ",".join(d.name.split("device:")[-1] for d in tf.config.list_logical_devices("GPU"))
                or "none",
                "weights_on": device,
                "gpu_mib": gpu_memory_mib(os.getpid()),
                "growth": os.environ.get("TF_FORCE_GPU_ALLOW_GROWTH", "unset")}


def sweep(name: str, **kwargs) -> float:
    """Run the grid on one executor; print where each run ran; return seconds per run."""
    folder = tempfile.mkdtemp(prefix="gpucheck-")
    start = time.perf_counter()
    summary = Where(folder, verbose=0).sweep(train, GRID, **kwargs)
    wall = time.perf_counter() - start
    from runmanager import load_results

    rows = load_results(folder)
    where = rows.groupby("run").last()[["units", "layers", "pid", "cuda_visible", "logical_gpus", "weights_on",
                                        "gpu_mib", "growth", "epoch_duration"]]
    print(f"\n== {name}: {list(summary['status'])}, {wall:.1f} s for {len(summary)} runs")
    print(where.to_string())
    shutil.rmtree(folder, ignore_errors=True)
    return wall / len(summary)


def main() -> None:
    if "--cpu" in sys.argv:
        print(f"CPU_SECONDS_PER_RUN={sweep('sequential, GPU hidden (CPU)', executor='sequential'):.3f}")
        return
    times = {"sequential": sweep("sequential", executor="sequential")}
    times["processes(2) sharing GPU 0"] = sweep("processes, 2 workers sharing GPU 0", executor="processes",
                                                workers=2, gpus=[0])
    times["ray(2), num_gpus=0.5"] = sweep("ray, 2 actors packed on one GPU (num_gpus=0.5)", executor="ray",
                                          workers=2, num_gpus=0.5, ray_address="local")
    cpu = subprocess.run([sys.executable, __file__, "--cpu"], capture_output=True, text=True,
                         env={**os.environ, "CUDA_VISIBLE_DEVICES": ""})
    print(cpu.stdout, cpu.stderr[-2000:] if cpu.returncode else "")
    per_run = float(cpu.stdout.rsplit("CPU_SECONDS_PER_RUN=", 1)[1].split()[0])
    print("\n== seconds per run (wall time of the sweep / runs), and speed against CPU (sequential)")
    print(f"{'CPU (sequential)':32} {per_run:7.2f} s   1.00x")
    for name, seconds in times.items():
        print(f"{name:32} {seconds:7.2f} s   {per_run / seconds:.2f}x")


if __name__ == "__main__":
    main()

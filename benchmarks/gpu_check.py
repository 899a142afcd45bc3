"""The sweeps of ``gpu_check.sh``: one small sweep per executor with GPUs, and where each run ran.

    python benchmarks/gpu_check.py            # all executors, then CPU in a subprocess
    python benchmarks/gpu_check.py --cpu      # only the CPU sweep (the GPU hidden)
    python benchmarks/gpu_check.py --jax      # Keras on JAX: 1 worker against 4 sharing GPU 0

Each epoch row records the process, ``CUDA_VISIBLE_DEVICES``, the GPUs TensorFlow sees
(``tf.config.list_logical_devices``), the device of the model's first weight, the GPU memory
the process holds (``nvidia-smi``) and whether memory growth was set.

``--jax`` runs 16 runs of an MLP (4 shapes x 4 learning rates, 5 epochs) on Keras's JAX
backend, on one worker process and then on 4 sharing GPU 0, each sweep with a compilation
cache of its own (``LOG_DIR/compile_cache``), from a driver whose JAX holds the GPU already
(as a notebook that used JAX does). Targets: 4 workers at least 2x faster than 1, each
shape compiled once per sweep (the other workers' first runs of it are cache hits), and no
out-of-memory line from a worker.
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
from runmanager.compile_cache import count_compiles  # noqa: E402

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


# --------------------------------------------------------------------------------------
# Keras on JAX: 1 worker against 4 sharing one GPU, with the sweep's compilation cache
# --------------------------------------------------------------------------------------
# The shape varies fastest (its parameters last), so the 4 workers' first runs are 4 different
# shapes: workers that start the same shape at the same moment each compile it.
JAX_GRID = {"learning_rate": [1e-3, 2e-3, 5e-3, 1e-2], "units": [512, 1024], "layers": [2, 3]}
JAX_EPOCHS = 5
#: What a worker that cannot take the GPU memory it asks for prints.
OUT_OF_MEMORY = ("out of memory", "RESOURCE_EXHAUSTED", "CUDA_ERROR_OUT_OF_MEMORY")




def train_jax(run, callbacks):
    import keras

    count_compiles()
    x, y = data()
    model = keras.Sequential([keras.Input((128,)),
                              *[keras.layers.Dense(run.units, activation="relu") for _ in range(run.layers)],
                              keras.layers.Dense(10, activation="softmax")])
    model.compile(optimizer=keras.optimizers.Adam(run.learning_rate), loss="sparse_categorical_crossentropy",
                  metrics=["accuracy"])
    model.fit(x, y, epochs=JAX_EPOCHS, batch_size=256, callbacks=callbacks, verbose=0)


class JaxWhere(RunManager):
    """Columns that say where each epoch ran on JAX, and what its process compiled."""

    def extra_columns(self):
        import jax

        counts = count_compiles()
        return {"pid": os.getpid(),
                "cuda_visible": os.environ.get("CUDA_VISIBLE_DEVICES", "unset"),
                "devices": ",".join(str(d) for d in jax.local_devices()),
                "preallocate": os.environ.get("XLA_PYTHON_CLIENT_PREALLOCATE", "unset"),
                "gpu_mib": gpu_memory_mib(os.getpid()),
                "cache_hits": counts["hits"], "cache_misses": counts["misses"]}


def jax_sweep(name: str, workers: int) -> float:
    """The JAX grid on ``workers`` worker processes sharing GPU 0; print where each run ran and
    what its worker had compiled by then; return the sweep's wall seconds."""
    from runmanager import load_results
    from runmanager.executors import ProcessExecutor

    folder = tempfile.mkdtemp(prefix="gpucheck-jax-")
    start = time.perf_counter()
    summary = JaxWhere(folder, verbose=0).sweep(train_jax, JAX_GRID, executor=ProcessExecutor(workers, gpus=[0]))
    wall = time.perf_counter() - start
    rows = load_results(folder)
    where = rows.groupby("run").last()[["units", "layers", "learning_rate", "pid", "devices", "preallocate",
                                        "gpu_mib", "cache_hits", "cache_misses", "run_duration"]]
    entries = len(os.listdir(os.path.join(folder, "compile_cache")))
    print(f"\n== {name}: {list(summary['status']).count('completed')} of {len(summary)} runs completed, "
          f"{wall:.1f} s; {entries} entries in the sweep's compilation cache")
    print(where.to_string())
    shutil.rmtree(folder, ignore_errors=True)
    return wall


def jax_sweeps() -> None:
    """Both JAX sweeps, in this process (``KERAS_BACKEND=jax``), from a driver that holds the GPU."""
    import jax

    print(f"driver: JAX {jax.__version__}, devices {jax.devices()} (this process now holds the GPU)")
    one = jax_sweep("JAX, 1 worker on GPU 0", 1)
    four = jax_sweep("JAX, 4 workers sharing GPU 0", 4)
    print(f"JAX_SPEEDUP={one / four:.3f}")


def jax_check() -> None:
    """Run :func:`jax_sweeps` in a process on Keras's JAX backend; count the out-of-memory lines of
    its workers (they write to its stderr) and say how the targets went."""
    done = subprocess.run([sys.executable, __file__, "--jax-sweeps"], capture_output=True, text=True,
                          env={**os.environ, "KERAS_BACKEND": "jax"})
    print(done.stdout)
    if done.returncode != 0:
        print(done.stderr[-4000:])
        raise SystemExit(f"the JAX sweeps exited with code {done.returncode}")
    oom = [line for line in done.stderr.splitlines() if any(mark in line for mark in OUT_OF_MEMORY)]
    speedup = float(done.stdout.rsplit("JAX_SPEEDUP=", 1)[1].split()[0])
    print("\n== JAX: 4 workers sharing GPU 0 against 1 worker, 16 runs")
    print(f"speed-up         {speedup:.2f}x   (target: at least 2x)  {'OK' if speedup >= 2 else 'MISSED'}")
    print(f"out-of-memory    {len(oom)} lines (target: 0)  {'OK' if not oom else 'MISSED'}")
    for line in oom[:5]:
        print("   ", line[:200])


def main() -> None:
    if "--jax-sweeps" in sys.argv:
        jax_sweeps()
        return
    if "--jax" in sys.argv:
        jax_check()
        return
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

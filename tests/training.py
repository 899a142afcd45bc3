"""Module-level training functions for the tests: real Keras models on a few hundred rows.

Kept in a module of their own so that subprocesses and worker processes can import them.
"""

from __future__ import annotations

import functools
import os
import signal
import time

import numpy as np

from runmanager import RunManager, load_results
from runmanager.compile_cache import count_compiles


@functools.cache
def data(rows: int = 240, features: int = 8) -> tuple[np.ndarray, np.ndarray]:
    """A small, learnable two-class problem, the same in every process."""
    rng = np.random.default_rng(0)
    x = rng.normal(size=(rows, features)).astype("float32")
    y = (x[:, 0] + 0.5 * x[:, 1] > 0).astype("int32")
    return x, y


def build_model(units: int = 8, learning_rate: float = 0.01):
    import keras

    model = keras.Sequential([
        keras.Input((8,)),
        keras.layers.Dense(units, activation="relu"),
        keras.layers.Dense(2, activation="softmax"),
    ])
    model.compile(
        optimizer=keras.optimizers.SGD(learning_rate),
        loss="sparse_categorical_crossentropy",
        metrics=["accuracy"],
    )
    return model


def train(run, callbacks, epochs: int = 3):
    """Fit a tiny MLP; ``run`` needs ``units`` and may have ``learning_rate`` and ``fail``."""
    params = run._asdict()
    if params.get("fail"):
        raise RuntimeError(f"run asked to fail: {params['fail']}")
    x, y = data()
    model = build_model(params.get("units", 8), params.get("learning_rate", 0.01))
    model.fit(x, y, epochs=params.get("num_epochs", epochs), batch_size=32, validation_split=0.25,
              callbacks=callbacks, verbose=0)


def train_layers(run, callbacks, epochs: int = 2):
    """Fit an MLP whose hidden layers are the list param ``layers`` (e.g. ``[8, 4]``), with the
    optimizer of the dict param ``opt`` (e.g. ``{"name": "sgd", "lr": 0.05}``) when given."""
    import keras

    params = run._asdict()
    opt = params.get("opt") or {"name": "sgd", "lr": 0.05}
    x, y = data()
    model = keras.Sequential([keras.Input((8,)), *(keras.layers.Dense(n, activation="relu") for n in run.layers),
                              keras.layers.Dense(2, activation="softmax")])
    optimizer = {"sgd": keras.optimizers.SGD, "adam": keras.optimizers.Adam}[opt["name"]](opt["lr"])
    model.compile(optimizer=optimizer,
                  loss="sparse_categorical_crossentropy", metrics=["accuracy"])
    model.fit(x, y, epochs=epochs, batch_size=32, validation_split=0.25, callbacks=callbacks, verbose=0)


FROZEN = "resnet50_pretrained_imagenet_frozen"
FINETUNED = "resnet50_pretrained_imagenet_finetuned"


def train_by_model(run, callbacks):
    """Two epochs whose val_accuracy is set by the param ``model`` (the fine-tuned one is better);
    its second repeat fails, so its mean is over 1 completed repeat and the frozen one's over 2."""
    params = run._asdict()
    if params["model"] == FINETUNED and params.get("repeat") == 2:
        raise RuntimeError("simulated out of memory")
    level = (0.9 if params["model"] == FINETUNED else 0.8) + params.get("repeat", 1) / 100
    fit_without_model(callbacks, [{"loss": 1.2 - level * e / 2, "val_accuracy": level * e / 2} for e in (1, 2)])


def train_no_fit(run, callbacks):
    """Builds a model and never trains it."""
    build_model()


def train_slow(run, callbacks):
    """Many short epochs, each ending with a pause: for kill and interrupt tests."""
    x, y = data()
    model = build_model(run.units)
    pause = float(os.environ.get("RM_TEST_PAUSE", "0.02"))

    import keras

    class Pause(keras.callbacks.Callback):
        def on_epoch_end(self, epoch, logs=None):
            time.sleep(pause)

    model.fit(x, y, epochs=run.num_epochs, batch_size=64, callbacks=[*callbacks, Pause()], verbose=0)


def train_interrupt_at(run, callbacks):
    """Raises KeyboardInterrupt (as Ctrl-C would) during epoch 2 of the run with units == 16."""
    import keras

    class CtrlC(keras.callbacks.Callback):
        def on_epoch_begin(self, epoch, logs=None):
            if run.units == 16 and epoch == 1:
                os.kill(os.getpid(), signal.SIGINT)
                time.sleep(5)  # the signal arrives while "training"

    x, y = data()
    model = build_model(run.units)
    model.fit(x, y, epochs=3, batch_size=32, callbacks=[*callbacks, CtrlC()], verbose=0)


def train_exit_on_units_8(run, callbacks):
    """The worker process dies (as on out-of-memory) during epoch 2 of the run with units == 8."""
    import keras

    class Die(keras.callbacks.Callback):
        def on_epoch_begin(self, epoch, logs=None):
            if run.units == 8 and epoch == 1:
                os._exit(3)

    x, y = data()
    model = build_model(run.units)
    model.fit(x, y, epochs=3, batch_size=32, callbacks=[*callbacks, Die()], verbose=0)


def train_sys_exit_on_units_8(run, callbacks):
    """The user's code calls sys.exit(3) during epoch 2 of the run with units == 8."""
    import sys

    import keras

    class Quit(keras.callbacks.Callback):
        def on_epoch_begin(self, epoch, logs=None):
            if run.units == 8 and epoch == 1:
                sys.exit(3)

    x, y = data()
    model = build_model(run.units)
    model.fit(x, y, epochs=3, batch_size=32, callbacks=[*callbacks, Quit()], verbose=0)


class WorkerInfoManager(RunManager):
    """A RunManager subclass recording which process ran the epoch, and what it was allowed to use."""

    def extra_columns(self):
        return {
            "pid": os.getpid(),
            "cuda": os.environ.get("CUDA_VISIBLE_DEVICES", "unset"),
            "threads": os.environ.get("TF_NUM_INTRAOP_THREADS", "unset"),
        }


def fit_without_model(callbacks, epoch_logs, pause: float = 0.0):
    """Drive ``callbacks`` as ``model.fit`` would, with no model: one epoch per item of
    ``epoch_logs`` (a logs dict, or a function of the epoch giving one), stopping early when
    a callback sets ``stop_training``. ``pause`` seconds pass inside each epoch."""
    import types

    model = types.SimpleNamespace(stop_training=False)
    for callback in callbacks:
        callback.set_model(model)
        callback.on_train_begin()
    for epoch, logs in enumerate(epoch_logs):
        for callback in callbacks:
            callback.on_epoch_begin(epoch)
        if pause:
            time.sleep(pause)
        logs = logs(epoch) if callable(logs) else logs
        for callback in callbacks:
            callback.on_epoch_end(epoch, logs)
        if model.stop_training:
            break
    for callback in callbacks:
        callback.on_train_end()


def build_diverging_model(learning_rate: float = 1e12):
    """A linear regression whose loss overflows within a few epochs at a huge learning rate,
    on every Keras backend (a classifier's clipped cross-entropy may not)."""
    import keras

    model = keras.Sequential([keras.Input((8,)), keras.layers.Dense(4), keras.layers.Dense(1)])
    model.compile(optimizer=keras.optimizers.SGD(learning_rate), loss="mse")
    return model


def wait_for_epochs(process, log_dir, count: int, timeout: float = 120) -> None:
    """Wait until ``log_dir`` holds ``count`` epoch rows, while ``process`` (its writer, with its
    stderr piped) keeps running; fail with its stderr if it ends first, or after ``timeout`` s."""
    deadline = time.monotonic() + timeout
    while True:
        assert process.poll() is None, (process.communicate()[1] or "")[-3000:]
        assert time.monotonic() < deadline, "the sweep did not get going"
        try:
            if len(load_results(log_dir)) >= count:
                return
        except Exception:  # noqa: BLE001 - the journal does not exist yet
            pass
        time.sleep(0.05)


def train_resumable(run, callbacks, checkpoint):
    """Fit a tiny MLP for ``run.num_epochs`` epochs, going on from ``checkpoint``. Each start is
    appended to the file ``RM_TEST_STARTS`` names (units, epoch it starts after, restored or not);
    with ``RM_TEST_KILL_AT=N`` the process kills itself (SIGKILL) at the end of epoch N of the
    run with ``units == 8``, once (a file ``<RM_TEST_STARTS>.killed`` remembers it)."""
    import keras

    starts = os.environ.get("RM_TEST_STARTS")
    if starts:
        with open(starts, "a", encoding="utf-8") as handle:
            handle.write(f"{run.units} {checkpoint.epoch} {checkpoint.model is not None}\n")
    kill_at = int(os.environ.get("RM_TEST_KILL_AT", "0"))

    class Kill(keras.callbacks.Callback):
        def on_epoch_end(self, epoch, logs=None):
            marker = f"{starts}.killed"
            if run.units == 8 and epoch + 1 == kill_at and not os.path.exists(marker):
                open(marker, "w").close()
                os.kill(os.getpid(), signal.SIGKILL)
            time.sleep(float(os.environ.get("RM_TEST_PAUSE", "0")))

    x, y = data()
    model = checkpoint.model or build_model(run.units)
    model.fit(x, y, epochs=run.num_epochs, initial_epoch=checkpoint.epoch, batch_size=32, validation_split=0.25,
              callbacks=[*callbacks, Kill()], verbose=0)


SCORES = (0.2, 0.9, 0.5, 0.3, 0.4)


def train_peaking(run, callbacks):
    """A run whose ``score`` (put in Keras's logs before runmanager's callback sees them) peaks at
    epoch 2 of 5; the weights after each epoch go to ``RM_TEST_WEIGHTS/<units>-<epoch>.npy``."""
    import keras

    folder = os.environ["RM_TEST_WEIGHTS"]

    class Score(keras.callbacks.Callback):
        def on_epoch_end(self, epoch, logs=None):
            logs["score"] = SCORES[epoch] * run.units / 16
            flat = np.concatenate([w.ravel() for w in self.model.get_weights()])
            np.save(os.path.join(folder, f"{run.units}-{epoch + 1}.npy"), flat)

    x, y = data()
    model = build_model(run.units)
    model.fit(x, y, epochs=len(SCORES), batch_size=32, callbacks=[Score(), *callbacks], verbose=0)


def train_resumable_two_arguments(run, callbacks):
    """``train_resumable`` without the third parameter: it always starts afresh."""
    train_resumable(run, callbacks, _FRESH)


class _Fresh:
    epoch, model = 0, None


_FRESH = _Fresh()


# --------------------------------------------------------------------------------------
# Keras on JAX: what a worker's XLA compilation cache did
# --------------------------------------------------------------------------------------


def cache_files(folder) -> int:
    """The entries of a JAX compilation cache folder (0 when it does not exist)."""
    return len([name for name in os.listdir(folder) if not name.startswith(".")]) if os.path.isdir(folder) else 0


def train_in_turn(run, callbacks):
    """``train`` on JAX, counting compiles; a run with ``turn`` > 1 starts only after the run of the
    turn before it has ended (a file in ``RM_TEST_MARKERS``), so a second worker compiles a shape
    after the first one did. Each run leaves the number of cache entries there once it ends."""
    import jax

    count_compiles()
    markers = os.environ["RM_TEST_MARKERS"]
    deadline = time.monotonic() + 180
    while run.turn > 1 and not os.path.exists(os.path.join(markers, str(run.turn - 1))):
        assert time.monotonic() < deadline, f"turn {run.turn - 1} never ended"
        time.sleep(0.05)
    train(run, callbacks)
    with open(os.path.join(markers, str(run.turn)), "w", encoding="utf-8") as handle:
        handle.write(str(cache_files(jax.config.jax_compilation_cache_dir or "")))


class CompileCacheManager(RunManager):
    """Records beside every epoch what the worker's JAX was told and did: its process, the cache
    folder in its environment and in its JAX, whether it may preallocate GPU memory, and its
    compiles so far that were cache hits and misses."""

    def extra_columns(self):
        import jax

        counts = count_compiles()
        return {
            "pid": os.getpid(),
            "cache_env": os.environ.get("JAX_COMPILATION_CACHE_DIR", "unset"),
            "cache_dir": jax.config.jax_compilation_cache_dir or "unset",
            "preallocate": os.environ.get("XLA_PYTHON_CLIENT_PREALLOCATE", "unset"),
            "cache_hits": counts["hits"],
            "cache_misses": counts["misses"],
        }


class WorkerEnvironmentManager(RunManager):
    """Records, beside every epoch, the compilation cache and GPU memory settings in the worker's
    environment, on any backend."""

    def extra_columns(self):
        return {
            "pid": os.getpid(),
            "cache_env": os.environ.get("JAX_COMPILATION_CACHE_DIR", "unset"),
            "preallocate": os.environ.get("XLA_PYTHON_CLIENT_PREALLOCATE", "unset"),
        }


class SlurmJobManager(RunManager):
    """A RunManager subclass recording the Slurm job that ran each epoch (empty outside Slurm)."""

    def extra_columns(self):
        return {"slurm_job": os.environ.get("SLURM_JOB_ID", "")}


def train_conditional(run, callbacks):
    """A run of a conditional space: a ``dense`` model has ``units``, a ``deep`` one has ``depth``
    (its width is 4 * depth) and ``units`` None; ``learning_rate`` as the run has it, else 0.05."""
    params = run._asdict()
    if params["model"] == "dense":
        assert params.get("depth") is None, params
        units = params["units"]
    else:
        assert params.get("units") is None, params
        units = 4 * params["depth"]
    x, y = data()
    model = build_model(units, params.get("learning_rate") or 0.05)
    model.fit(x, y, epochs=2, batch_size=32, validation_split=0.25, callbacks=callbacks, verbose=0)


def conditional_space(trial):
    """A define-by-run space: ``units`` only for a dense model, ``depth`` only for a deep one."""
    model = trial.suggest_categorical("model", ["dense", "deep"])
    learning_rate = trial.suggest_float("learning_rate", 0.01, 0.2, log=True)
    if model == "dense":
        return {"model": model, "learning_rate": learning_rate, "units": trial.suggest_int("units", 2, 32, log=True)}
    return {"model": model, "learning_rate": learning_rate, "depth": trial.suggest_int("depth", 1, 4)}

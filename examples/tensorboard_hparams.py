"""The TensorBoard HParams tutorial, with runmanager doing the bookkeeping.

The tutorial (https://www.tensorflow.org/tensorboard/hparams_tuning) declares its
hyperparameters as ``hp.HParam`` objects, then writes three nested for-loops over
their domains and a ``run(run_dir, hparams)`` helper that logs each run by hand.
Here the same HParams become the grid directly: ``RunBuilder.from_hparams`` takes
each one's values from its domain (``Discrete`` -> its values, ``RealInterval`` ->
``[min, max]``, as the tutorial does), and ``m.sweep`` runs ``train`` once per
combination, seeded, recording every epoch. A run that crashes is recorded as
``failed`` and the sweep goes on.

Run it (about 20 s on two CPU cores)::

    python examples/tensorboard_hparams.py [LOG_DIR]
    tensorboard --logdir LOG_DIR/tensorboard      # then open the HPARAMS tab

LOG_DIR defaults to a new ``runs/hparam_tuning-<date>-<time>`` folder under the current folder
(a RunManager refuses to mix a new sweep into a folder that already holds runs).
"""

import sys
import time

import keras
from tensorboard.plugins.hparams import api as hp

from runmanager import RunBuilder, RunManager
from runmanager.analysis import best_run
from runmanager.demo import load_digits_data

# The tutorial's three hyperparameters, unchanged.
HP_NUM_UNITS = hp.HParam("num_units", hp.Discrete([16, 32]))
HP_DROPOUT = hp.HParam("dropout", hp.RealInterval(0.1, 0.2))
HP_OPTIMIZER = hp.HParam("optimizer", hp.Discrete(["adam", "sgd"]))


def train(run, callbacks):
    """Build and fit one model; ``run`` is a namedtuple (run.num_units, run.dropout, run.optimizer).

    It must be a module-level function: a sweep may run it in another process.
    """
    x, y = load_digits_data()
    model = keras.Sequential([
        keras.Input((64,)),
        keras.layers.Dense(run.num_units, activation="relu"),
        keras.layers.Dropout(run.dropout),
        keras.layers.Dense(10, activation="softmax"),
    ])
    model.compile(optimizer=run.optimizer, loss="sparse_categorical_crossentropy", metrics=["accuracy"])
    # Passing `callbacks` on is all it takes for every epoch to be recorded.
    model.fit(x, y, epochs=5, batch_size=32, validation_split=0.2, callbacks=callbacks, verbose=0)


def main(log_dir):
    # 2 x 2 x 2 = 8 runs, in itertools.product order (num_units varies slowest).
    grid = RunBuilder.from_hparams([HP_NUM_UNITS, HP_DROPOUT, HP_OPTIMIZER])
    print(f"{len(grid)} runs, e.g. {grid[0]}")

    # tensorboard=True also writes each run's scalars and the HParams dashboard data
    # (the sweep's hparams_config, each run's hparams) under LOG_DIR/tensorboard.
    m = RunManager(log_dir, tensorboard=True)  # verbose=1: a live table, one line per epoch
    summary = m.sweep(train, grid, seed=0)  # seed=0: runs differ only by their params
    m.close()

    print()
    print(summary[["run", *grid.fields, "status", "accuracy", "val_accuracy"]].to_string(index=False))
    best = best_run(summary, "val_accuracy")
    params = ", ".join(f"{name}={best[name]}" for name in grid.fields)
    print(f"\nBest: run {best['run']} ({params}) with val_accuracy {best['val_accuracy']:.4f}")


if __name__ == "__main__":
    main(sys.argv[1] if len(sys.argv) > 1 else time.strftime("runs/hparam_tuning-%Y%m%d-%H%M%S"))

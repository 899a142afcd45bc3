"""Not a fan of TensorBoard? Every sweep is a pandas DataFrame.

A small sweep writes its epoch rows and per-run summary to LOG_DIR; then, as you
would in a notebook the next day, the results are read back with
``runmanager.load_results`` / ``runmanager.load_summary`` and questioned with plain
pandas: the best epoch of each run, the runs sorted by a metric, a pivot table of
one metric by two hyperparameters, and ``runmanager.analysis.best_run``.

Run it (about 15 s on two CPU cores)::

    python examples/dataframe_analysis.py [LOG_DIR]

LOG_DIR defaults to a new ``runs/dataframe_analysis-<date>-<time>`` folder under the
current folder. The analysis half works on any finished (or half-finished) sweep.
"""

import sys
import time
from collections import OrderedDict

import keras
import pandas as pd

import runmanager
from runmanager.analysis import best_run
from runmanager.demo import load_digits_data


def train(run, callbacks):
    """One run: an MLP on the digits with ``run.units`` hidden units and ``run.learning_rate``."""
    x, y = load_digits_data()
    model = keras.Sequential([
        keras.Input((64,)),
        keras.layers.Dense(run.units, activation="relu"),
        keras.layers.Dense(10, activation="softmax"),
    ])
    model.compile(optimizer=keras.optimizers.Adam(run.learning_rate),
                  loss="sparse_categorical_crossentropy", metrics=["accuracy"])
    model.fit(x, y, epochs=4, batch_size=64, validation_split=0.2, shuffle=True,
              callbacks=callbacks, verbose=0)


def run_sweep(log_dir):
    params = OrderedDict(units=[16, 64], learning_rate=[0.01, 0.003, 0.001])  # 6 runs
    m = runmanager.RunManager(log_dir, verbose=0)  # quiet: the analysis below is the point
    m.sweep(train, params, seed=0)
    m.close()


def analyse(log_dir):
    pd.set_option("display.width", 120)

    # One row per epoch: run, epoch, the metrics Keras logged, durations, then the params.
    results = runmanager.load_results(log_dir)
    # One row per run: run, the params, status, epochs, final metrics, run_duration, error.
    summary = runmanager.load_summary(log_dir)
    print(f"{len(results)} epoch rows from {results['run'].nunique()} runs in {log_dir}\n")

    # The best epoch of each run (the final epoch is not always the best one).
    print("Best val_accuracy of each run:")
    print(results.groupby("run")["val_accuracy"].max().to_string(), "\n")
    best_epochs = results.loc[results.groupby("run")["val_accuracy"].idxmax(),
                              ["run", "epoch", "units", "learning_rate", "val_accuracy"]]
    print("...and the epoch it came at:")
    print(best_epochs.to_string(index=False), "\n")

    # Runs sorted by their final val_loss, lowest first.
    print("Runs by final val_loss:")
    columns = ["run", "units", "learning_rate", "status", "val_loss", "val_accuracy", "run_duration"]
    print(summary.sort_values("val_loss")[columns].to_string(index=False), "\n")

    # Final val_accuracy by units (rows) and learning_rate (columns).
    print("Final val_accuracy, units x learning_rate:")
    pivot = summary.pivot_table(index="units", columns="learning_rate", values="val_accuracy")
    print(pivot.round(4).to_string(), "\n")

    # The best completed run; failed or diverged runs are left out.
    best = best_run(summary, "val_accuracy")
    print(f"Best run: {best['run']} (units={best['units']}, learning_rate={best['learning_rate']}) "
          f"with val_accuracy {best['val_accuracy']:.4f}")


if __name__ == "__main__":
    log_dir = sys.argv[1] if len(sys.argv) > 1 else time.strftime("runs/dataframe_analysis-%Y%m%d-%H%M%S")
    run_sweep(log_dir)
    analyse(log_dir)

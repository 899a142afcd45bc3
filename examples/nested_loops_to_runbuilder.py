"""From nested for-loops to RunBuilder + RunManager.

Before: one loop per hyperparameter, and the bookkeeping done by hand::

    history_by_run = {}
    for lr in [0.01, 0.001]:
        for batch_size in [32, 128]:
            model = build_model(lr)
            history = model.fit(x, y, epochs=3, batch_size=batch_size, validation_split=0.2)
            history_by_run[f"lr={lr},bs={batch_size}"] = history.history
    # ...then glue the dicts into a table, and hope the process did not die halfway.

After: the grid is data (one OrderedDict, one line per hyperparameter, however many
there are), each run is a namedtuple (``run.lr``, ``run.batch_size``), and a
RunManager records every epoch of every run as a row of one DataFrame, on disk as
soon as the epoch ends.

Run it (about 15 s on two CPU cores)::

    python examples/nested_loops_to_runbuilder.py [LOG_DIR]

LOG_DIR defaults to a new ``runs/nested_loops-<date>-<time>`` folder under the current folder
(a RunManager refuses to mix a new sweep into a folder that already holds runs).
"""

import sys
import time
from collections import OrderedDict
from pathlib import Path

import keras

from runmanager import RunBuilder, RunManager
from runmanager.demo import load_digits_data


def build_model(lr):
    """A small MLP for the 8x8 digits (64 pixels in, 10 classes out)."""
    model = keras.Sequential([
        keras.Input((64,)),
        keras.layers.Dense(32, activation="relu"),
        keras.layers.Dense(10, activation="softmax"),
    ])
    model.compile(optimizer=keras.optimizers.Adam(lr), loss="sparse_categorical_crossentropy",
                  metrics=["accuracy"])
    return model


def main(log_dir):
    x, y = load_digits_data()  # scikit-learn's bundled digits: no download
    keras.utils.set_random_seed(0)

    # One key per former for-loop; the first key varies slowest, as the outer loop did.
    params = OrderedDict(lr=[0.01, 0.001], batch_size=[32, 128])

    m = RunManager(log_dir)  # verbose=1: a live table, one line per epoch
    for run in RunBuilder.get_runs(params):  # Run(lr=0.01, batch_size=32), ...
        model = build_model(run.lr)
        # The callback begins the run when fit() starts, records every epoch's logs
        # (loss, accuracy, val_loss, val_accuracy) and ends the run when fit() returns.
        model.fit(x, y, epochs=3, batch_size=run.batch_size, validation_split=0.2,
                  callbacks=[m.callback(run)], verbose=0)

    # log_dir already holds results.csv/json and summary.csv/json, rewritten after
    # every run; save() writes the epoch rows anywhere else you like.
    csv_path, json_path = m.save(Path(log_dir) / "nested_loops")
    m.close()

    print(f"\n{len(m.results)} epoch rows from {m.run_count} runs, saved to {csv_path} and {json_path}:")
    print(m.results.to_string(index=False))


if __name__ == "__main__":
    main(sys.argv[1] if len(sys.argv) > 1 else time.strftime("runs/nested_loops-%Y%m%d-%H%M%S"))

"""Extra columns in every epoch row, from a RunManager subclass.

Research code often wants more in the table than Keras logs: the model's size,
the learning rate a schedule has reached, a weight norm... Override
``extra_columns(self)``: it is called at the end of every epoch, ``self.model`` is
the run's model, and what it returns becomes columns of the row (after the
metrics, before the durations and params), in the live table, the CSV/JSON files
and the summary alike.

Run it (about 15 s on two CPU cores)::

    python examples/subclass_extra_columns.py [LOG_DIR]

LOG_DIR defaults to a new ``runs/extra_columns-<date>-<time>`` folder under the current folder.
"""

import sys
import time
from collections import OrderedDict

import keras

from runmanager import RunManager
from runmanager.demo import load_digits_data

BATCH_SIZE = 64
VALIDATION_SPLIT = 0.2


class ResearchRunManager(RunManager):
    """A RunManager that also records the model's size and its current learning rate.

    With worker executors it runs in the worker, beside the model, so keep such a
    subclass at module level (importable), like ``train``.
    """

    def extra_columns(self):
        optimizer = self.model.optimizer
        return {
            "num_params": self.model.count_params(),
            # With a LearningRateSchedule this is the rate the schedule has reached by now.
            # Not named "learning_rate": Keras's LR callbacks (ReduceLROnPlateau,
            # LearningRateScheduler) log that name, and a column may appear only once.
            "current_lr": float(optimizer.learning_rate),
        }


def train(run, callbacks):
    """One run: ``run.units`` hidden units, the learning rate decayed by ``run.decay_rate`` per epoch."""
    x, y = load_digits_data()
    steps_per_epoch = -(-int(len(x) * (1 - VALIDATION_SPLIT)) // BATCH_SIZE)  # ceil division
    schedule = keras.optimizers.schedules.ExponentialDecay(
        0.01, decay_steps=steps_per_epoch, decay_rate=run.decay_rate, staircase=True)
    model = keras.Sequential([
        keras.Input((64,)),
        keras.layers.Dense(run.units, activation="relu"),
        keras.layers.Dense(10, activation="softmax"),
    ])
    model.compile(optimizer=keras.optimizers.Adam(schedule), loss="sparse_categorical_crossentropy",
                  metrics=["accuracy"])
    model.fit(x, y, epochs=4, batch_size=BATCH_SIZE, validation_split=VALIDATION_SPLIT,
              callbacks=callbacks, verbose=0)


def main(log_dir):
    params = OrderedDict(units=[16, 64], decay_rate=[0.5, 0.9])
    m = ResearchRunManager(log_dir)
    summary = m.sweep(train, params, seed=0)
    m.close()

    print()
    print(m.results[["run", "epoch", "units", "decay_rate", "num_params", "current_lr",
                     "val_accuracy"]].to_string(index=False))
    print("\nPer run (extra columns hold their last value, like the metrics):")
    print(summary[["run", "units", "decay_rate", "num_params", "current_lr", "val_accuracy"]]
          .to_string(index=False))


if __name__ == "__main__":
    main(sys.argv[1] if len(sys.argv) > 1 else time.strftime("runs/extra_columns-%Y%m%d-%H%M%S"))

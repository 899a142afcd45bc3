"""A custom training loop (tf.GradientTape) recorded with RunManager's manual calls.

When training is not ``model.fit`` there is no callback to pass: tell the
RunManager what happens instead, PyTorch style::

    m.begin_run(run, model)            # once per run
        m.begin_epoch()                # once per epoch
            m.track_loss(loss, n)      # every batch: its mean loss and its size n
            m.track_num_correct(p, y)  # every batch: counts into the epoch's accuracy
        m.track("val_loss", v, weight=n)   # any other metric, a weighted mean per epoch
        m.end_epoch(val_accuracy=a)    # keyword arguments become extra columns
    m.end_run()

The epoch's ``loss`` is weighted by batch size, so the short last batch counts
exactly as much as the samples it holds. The rows are the same as with
``m.callback(run)``: ``load_results``, ``best_run`` and the CLI work unchanged.

Run it (about 20 s on two CPU cores; needs the TensorFlow backend of Keras)::

    python examples/custom_training_loop.py [LOG_DIR]

LOG_DIR defaults to a new ``runs/custom_loop-<date>-<time>`` folder under the current folder.
"""

import os
import sys
import time
from collections import OrderedDict

os.environ["KERAS_BACKEND"] = "tensorflow"  # tf.GradientTape needs Keras on TensorFlow

import keras  # noqa: E402 - after choosing the backend
import numpy as np  # noqa: E402
import tensorflow as tf  # noqa: E402

from runmanager import RunBuilder, RunManager  # noqa: E402
from runmanager.demo import load_digits_data  # noqa: E402


def split_digits(seed=0):
    """The digits, shuffled once, as (x_train, y_train, x_val, y_val): 1437 / 360 samples."""
    x, y = load_digits_data()
    order = np.random.default_rng(seed).permutation(len(x))
    x, y = x[order], y[order]
    return x[:1437], y[:1437], x[1437:], y[1437:]


def batches(x, y, batch_size, rng=None):
    """(x, y) batches in a random order if ``rng`` is given; the last one may be short."""
    order = rng.permutation(len(x)) if rng is not None else np.arange(len(x))
    for start in range(0, len(x), batch_size):
        index = order[start:start + batch_size]
        yield x[index], y[index]


def build_model(units):
    return keras.Sequential([
        keras.Input((64,)),
        keras.layers.Dense(units, activation="relu"),
        keras.layers.Dense(10, activation="softmax"),
    ])


def main(log_dir, epochs=5):
    x_train, y_train, x_val, y_val = split_digits()
    loss_fn = keras.losses.SparseCategoricalCrossentropy()
    # 1437 samples: with batch_size 32 or 100 the last batch of every epoch is short (29 or 37).
    params = OrderedDict(lr=[0.01, 0.001], batch_size=[32, 100])

    m = RunManager(log_dir)
    for run in RunBuilder(params):
        keras.utils.set_random_seed(0)  # the same initial weights and batch order for every run
        rng = np.random.default_rng(0)
        model = build_model(units=32)
        optimizer = keras.optimizers.Adam(run.lr)

        m.begin_run(run, model)  # the model is optional; a subclass's extra_columns() can use it
        for _ in range(epochs):
            m.begin_epoch()
            for xb, yb in batches(x_train, y_train, run.batch_size, rng):
                with tf.GradientTape() as tape:
                    probs = model(xb, training=True)
                    loss = loss_fn(yb, probs)  # the batch's mean loss
                grads = tape.gradient(loss, model.trainable_variables)
                optimizer.apply_gradients(zip(grads, model.trainable_variables, strict=True))
                m.track_loss(loss, batch_size=len(xb))
                m.track_num_correct(probs, yb)  # class probabilities vs class ids

            # Validation: val_loss tracked batch by batch (a weighted mean, like loss)...
            for xb, yb in batches(x_val, y_val, 128):
                m.track("val_loss", loss_fn(yb, model(xb, training=False)), weight=len(xb))
            # ...and val_accuracy computed in one go and handed to end_epoch as a column.
            val_accuracy = float(np.mean(np.argmax(model(x_val, training=False), axis=-1) == y_val))
            m.end_epoch(val_accuracy=val_accuracy)
        m.end_run()
    m.close()

    print()
    print(m.summary()[["run", "lr", "batch_size", "status", "epochs", "loss", "accuracy",
                       "val_loss", "val_accuracy"]].to_string(index=False))
    print("\nloss by epoch (one column per run):")
    print(m.results.pivot(index="epoch", columns="run", values="loss").round(4).to_string())


if __name__ == "__main__":
    main(sys.argv[1] if len(sys.argv) > 1 else time.strftime("runs/custom_loop-%Y%m%d-%H%M%S"))

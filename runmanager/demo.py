"""The demo sweep: a small MLP on scikit-learn's bundled digits, no download needed.

Also the pattern for real code: ``train`` is a module-level function, and the
data is loaded once per process and cached, so worker processes load it once too.
"""

from __future__ import annotations

import functools
from collections import OrderedDict
from typing import Any

from runmanager.errors import InvalidArgumentError, missing_extra

__all__ = ["DEMO_PARAMS", "load_digits_data", "train_digits"]

#: The demo grid: 2 x 2 = 4 runs.
DEMO_PARAMS = OrderedDict(units=[32, 64], learning_rate=[0.01, 0.001])
DEMO_EPOCHS = 5


@functools.cache
def load_digits_data() -> tuple[Any, Any]:
    """The 1,797 8x8 digit images of scikit-learn, scaled to [0, 1], as (x, y).

    Examples:
        >>> x, y = load_digits_data()
        >>> x.shape, y.shape
        ((1797, 64), (1797,))
    """
    try:
        from sklearn.datasets import load_digits
    except ImportError:
        raise missing_extra("scikit-learn", "examples", "The digits demo") from None
    digits = load_digits()
    x = (digits.data / 16.0).astype("float32")
    return x, digits.target.astype("int32")


def build_model(units: int, learning_rate: float, dropout: float = 0.0, optimizer: str = "adam") -> Any:
    """A one-hidden-layer MLP for the 10 digit classes, trained with Adam or SGD.

    Examples:
        model = build_model(64, 0.01, dropout=0.25, optimizer="sgd")
    """
    import keras

    optimizers = {"adam": keras.optimizers.Adam, "sgd": keras.optimizers.SGD}
    if optimizer not in optimizers:
        raise InvalidArgumentError(f"optimizer must be 'adam' or 'sgd', got {optimizer!r}.")

    model = keras.Sequential([
        keras.Input((64,)),
        keras.layers.Dense(units, activation="relu"),
        keras.layers.Dropout(dropout),
        keras.layers.Dense(10, activation="softmax"),
    ])
    model.compile(
        optimizer=optimizers[optimizer](learning_rate),
        loss="sparse_categorical_crossentropy",
        metrics=["accuracy"],
    )
    return model


def train_digits(run: Any, callbacks: list[Any], epochs: int = DEMO_EPOCHS) -> Any:
    """Train the digits MLP for one run of the demo grid.

    Examples:
        m.sweep(train_digits, DEMO_PARAMS)
    """
    x, y = load_digits_data()
    model = build_model(run.units, run.learning_rate)
    model.fit(x, y, epochs=epochs, batch_size=64, validation_split=0.2, shuffle=True,
              callbacks=callbacks, verbose=0)
    return model

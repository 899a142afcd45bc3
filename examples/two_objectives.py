"""Accurate and small: a search of two objectives, and the runs no other run beats on both.

A bigger hidden layer buys a little accuracy at many more parameters. Here Optuna
(NSGA-II, seeded) searches an MLP on scikit-learn's digits for both at once:
``val_accuracy`` (higher is better) and ``params``, the model's parameter count,
which a ``RunManager`` subclass adds to every epoch row (lower is better). Then:

- ``summary()`` has a ``pareto`` column: True for the runs on the Pareto front;
- ``m.pareto(["val_accuracy", "params"], ["max", "min"])``: those runs, best first;
- the same from the command line: ``runmanager best LOG_DIR --metric val_accuracy --metric params:min``;
- ``runmanager.report``: the runs in the plane of the two objectives, the front drawn.

Run it (about 30 s on two CPU cores)::

    python examples/two_objectives.py [LOG_DIR]

LOG_DIR defaults to a new ``runs/two_objectives-<date>-<time>`` folder under the current folder.
"""

import sys
import time

from scipy.stats import loguniform

import runmanager
from runmanager import OptunaSearch, RunManager
from runmanager.cli import main as runmanager_command
from runmanager.demo import build_model, load_digits_data

SPACE = {"units": [4, 8, 16, 32, 64, 128, 256], "learning_rate": loguniform(1e-3, 3e-2)}
RUNS = 10
EPOCHS = 8


class SizeManager(RunManager):
    """Records each run's parameter count as the column ``params``, an objective like any metric."""

    def extra_columns(self):
        return {"params": self.model.count_params()}


def train(run, callbacks):
    """One run: the digits MLP with ``run.units`` hidden units and ``run.learning_rate``."""
    x, y = load_digits_data()
    model = build_model(run.units, run.learning_rate)
    model.fit(x, y, epochs=EPOCHS, batch_size=64, validation_split=0.2, shuffle=True,
              callbacks=callbacks, verbose=0)


def main(log_dir: str) -> None:
    search = OptunaSearch(SPACE, n_runs=RUNS, metric=["val_accuracy", "params"], mode=["max", "min"], seed=0)
    m = SizeManager(log_dir, verbose=0)
    summary = m.sweep(train, search, seed=0)
    print(f"{len(summary)} runs, {int(summary['pareto'].sum())} on the Pareto front of val_accuracy and params:\n")
    print(summary[["run", "units", "learning_rate", "val_accuracy", "params", "pareto"]].to_string(index=False))

    front = m.pareto(["val_accuracy", "params"], ["max", "min"])
    print("\nThe front, best val_accuracy first (m.pareto):")
    print(front[["run", "units", "learning_rate", "val_accuracy", "params"]].to_string(index=False))
    m.close()

    print(f"\n$ runmanager best {log_dir} --metric val_accuracy --metric params:min")
    runmanager_command(["best", log_dir, "--metric", "val_accuracy", "--metric", "params:min"])
    report = runmanager.report(log_dir)
    print(f"\nReport: {report} (its section 'Pareto front' draws the front; open it in a browser)")


if __name__ == "__main__":
    main(sys.argv[1] if len(sys.argv) > 1 else f"runs/two_objectives-{time.strftime('%Y%m%d-%H%M%S')}")

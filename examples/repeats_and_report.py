"""Is that difference real? Repeat every configuration over seeds, rank by the mean, write a report.

One run per configuration tells you little when two configurations are close: the
seed alone moves validation accuracy by a point or more. Here each of 4
configurations of an MLP on scikit-learn's digits runs 3 times (``repeats=3``, seeds
0, 1, 2), then:

- ``m.aggregate("val_accuracy")``: one row per configuration, mean ± std over its
  repeats, ranked, with a 95% confidence interval of the mean;
- ``m.summary(at="best", metric="val_loss")``: each run at its best epoch;
- a LaTeX (booktabs) table for a paper, as ``runmanager show --aggregate --format latex``;
- ``runmanager.report``: one HTML file that opens offline, and ``runmanager.plot``: a figure.

Run it (about a minute on two CPU cores)::

    python examples/repeats_and_report.py [LOG_DIR]

LOG_DIR defaults to a new ``runs/repeats-<date>-<time>`` folder under the current folder.
"""

import sys
import time
from collections import OrderedDict

import runmanager
from runmanager.demo import build_model, load_digits_data
from runmanager.tables import format_table

PARAMS = OrderedDict(units=[16, 64], learning_rate=[0.03, 0.001])
EPOCHS = 12


def train(run, callbacks):
    """One run: the digits MLP with ``run.units`` hidden units and ``run.learning_rate``."""
    x, y = load_digits_data()
    model = build_model(run.units, run.learning_rate)
    model.fit(x, y, epochs=EPOCHS, batch_size=64, validation_split=0.2, shuffle=True,
              callbacks=callbacks, verbose=0)


def main(log_dir: str) -> None:
    m = runmanager.RunManager(log_dir, verbose=0)
    summary = m.sweep(train, PARAMS, repeats=3, seed=0)
    print(f"{len(summary)} runs: {len(summary) // 3} configurations x 3 repeats, "
          f"{(summary['status'] == 'completed').sum()} completed\n")

    ranked = m.aggregate("val_accuracy")
    print("Configurations ranked by mean val_accuracy over their repeats:")
    print(ranked[["rank", "units", "learning_rate", "completed", "val_accuracy_mean", "val_accuracy_std",
                  "val_accuracy_ci95"]].to_string(index=False))

    best = m.summary(at="best", metric="val_loss")
    print("\nEach run at its best epoch by val_loss (first 4 runs):")
    print(best[["run", "units", "learning_rate", "repeat", "epochs", "best_epoch", "val_loss",
                "val_accuracy"]].head(4).to_string(index=False))

    print("\nFor the paper (runmanager show LOG_DIR --aggregate --metric val_accuracy --format latex):")
    table = ranked.drop(columns=["loss_mean", "loss_std", "accuracy_mean", "accuracy_std", "val_accuracy_ci95"])
    print(format_table(table, "latex", params=list(PARAMS)))

    m.close()
    report = runmanager.report(log_dir, metric="val_accuracy")
    figure = runmanager.plot(log_dir, "val_accuracy", by="learning_rate")
    figure.savefig(f"{log_dir}/val_accuracy.svg")
    print(f"\nReport: {report} (open it in a browser, no network needed)")
    print(f"Figure: {log_dir}/val_accuracy.svg")


if __name__ == "__main__":
    main(sys.argv[1] if len(sys.argv) > 1 else f"runs/repeats-{time.strftime('%Y%m%d-%H%M%S')}")

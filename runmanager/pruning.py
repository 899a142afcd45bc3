"""Pruning: stop bad runs early.

A :class:`Pruner` is asked, in the driver, after every epoch of every run whether
that run should stop now (so every executor behaves the same). It decides from
the fold of the sweep's events (:class:`runmanager.results.Results`: every run's
epochs, those of the journal included), as Optuna's pruners read the study's
storage, so a resumed sweep needs nothing replayed. The run then ends at the end
of that epoch with status ``"pruned"``, its epochs kept. The whole interface is
:meth:`Pruner.prune`; a rule that needs only the run's own value is
:meth:`Pruner.report`, a few lines::

    class StopHighLoss(Pruner):
        '''Stop a run whose val_loss is above 2.0 after epoch 3.'''

        def __init__(self):
            super().__init__("val_loss")

        def report(self, run, epoch, value):
            return epoch > 3 and value > 2.0

- :class:`MedianPruner`: the median stopping rule (Optuna's ``MedianPruner``, Ray
  Tune's ``MedianStoppingRule``).
- :class:`SuccessiveHalvingPruner`: asynchronous successive halving (ASHA, Li et al.,
  arXiv 1810.05934), promoting as Optuna's ``SuccessiveHalvingPruner`` does.
"""

from __future__ import annotations

import math
from typing import TYPE_CHECKING

from runmanager.errors import InvalidArgumentError, is_int
from runmanager.events import resolve_mode

if TYPE_CHECKING:
    from runmanager.results import Results, RunRecord

__all__ = ["MedianPruner", "Pruner", "SuccessiveHalvingPruner", "value_at", "values_at"]


class Pruner:
    """A rule that stops runs early, judging one metric.

    Args:
        metric: the metric it judges, e.g. ``"val_accuracy"``.
        mode: ``"max"`` or ``"min"``; default ``"min"`` for a loss or an error, else ``"max"``.

    Examples:
        >>> class StopHighLoss(Pruner):
        ...     def __init__(self):
        ...         super().__init__("val_loss")
        ...     def report(self, run, epoch, value):
        ...         return epoch > 3 and value > 2.0
        >>> rule = StopHighLoss()
        >>> rule.mode, rule.report(1, 4, 2.5), rule.report(1, 2, 2.5)
        ('min', True, False)
    """

    def __init__(self, metric: str, mode: str | None = None) -> None:
        self.mode = resolve_mode(metric, mode, who="A pruner")
        self.metric = metric

    def better(self, a: float, b: float) -> bool:
        """True when ``a`` is strictly better than ``b`` in this pruner's mode."""
        return a < b if self.mode == "min" else a > b

    def prune(self, results: Results, record: RunRecord) -> bool:
        """Whether run ``record``, whose latest epoch just ended, stops now; ``results`` holds every
        run of the sweep (``results.runs``), with the epochs each has reached so far. By default
        :meth:`report` decides from the run's own value of the metric."""
        epoch = record.epochs[-1]
        return self.report(record.number, epoch.epoch, epoch.metrics[self.metric])

    def report(self, run: int, epoch: int, value: float) -> bool:
        """Run ``run`` reached the end of ``epoch`` (1-based) with ``value`` of the metric;
        return True to stop it now. Override it for a rule that needs only that value, or
        :meth:`prune` for one that compares runs."""
        raise NotImplementedError(
            f"{type(self).__name__} must implement report(run, epoch, value) -> bool, or "
            "prune(results, record) -> bool to compare runs."
        )


def value_at(record: RunRecord, epoch: int, metric: str) -> float | None:
    """Run ``record``'s value of ``metric`` at ``epoch`` (1-based), or None when it has none.

    Examples:
        >>> from runmanager.events import EpochEnded
        >>> from runmanager.results import RunRecord
        >>> record = RunRecord(1, "r1", {}, epochs=[EpochEnded(1, "r1", 1, {"loss": 0.5}, {}, 0.1, 0.1)])
        >>> value_at(record, 1, "loss"), value_at(record, 2, "loss")
        (0.5, None)
    """
    epochs = record.epochs
    # Epochs are 1, 2, 3... in order, so the lookup is direct; a search covers anything else.
    found = epochs[epoch - 1] if 0 < epoch <= len(epochs) and epochs[epoch - 1].epoch == epoch else next(
        (e for e in epochs if e.epoch == epoch), None)
    return None if found is None else found.metrics.get(metric)


def values_at(results: Results, epoch: int, metric: str, *, besides: int | None = None) -> list[float]:
    """The finite values of ``metric`` at ``epoch`` of every run that reached it (but ``besides``), sorted."""
    values = []
    for number, record in results.runs.items():
        if number != besides:
            value = value_at(record, epoch, metric)
            if value is not None and math.isfinite(value):
                values.append(value)
    values.sort()
    return values


def _check_count(name: str, value: object, minimum: int) -> int:
    if not is_int(value) or value < minimum:  # type: ignore[operator]
        raise InvalidArgumentError(f"{name} must be an int of at least {minimum}, got {value!r}.")
    return value  # type: ignore[return-value]


class MedianPruner(Pruner):
    """Stop a run whose metric at epoch e is worse than the median of the values the earlier
    runs had at epoch e, once ``min_runs`` of them reached it; never at epochs up to
    ``warmup_epochs``.

    Examples:
        >>> from runmanager.events import EpochEnded, RunStarted
        >>> from runmanager.results import Results
        >>> pruner, results = MedianPruner("val_accuracy", warmup_epochs=1, min_runs=2), Results()
        >>> def epochs(run, *values):
        ...     results.apply(RunStarted.of(run, {"i": run}))
        ...     for epoch, value in enumerate(values, start=1):
        ...         record = results.apply(EpochEnded(run, "", epoch, {"val_accuracy": value}, {}, 0.1, 0.1))
        ...     return pruner.prune(results, record)
        >>> [epochs(1, 0.5, 0.9), epochs(2, 0.5, 0.8), epochs(3, 0.5, 0.5), epochs(4, 0.5, 0.95)]
        [False, False, True, False]
    """

    def __init__(self, metric: str, mode: str | None = None, *, warmup_epochs: int = 1, min_runs: int = 5) -> None:
        super().__init__(metric, mode)
        self.warmup_epochs = _check_count("warmup_epochs", warmup_epochs, 0)
        self.min_runs = _check_count("min_runs", min_runs, 1)

    def prune(self, results: Results, record: RunRecord) -> bool:
        epoch = record.epochs[-1]
        if epoch.epoch <= self.warmup_epochs:
            return False
        values = values_at(results, epoch.epoch, self.metric, besides=record.number)
        if len(values) < self.min_runs:
            return False
        value = epoch.metrics[self.metric]
        middle = len(values) // 2
        median = values[middle] if len(values) % 2 else (values[middle - 1] + values[middle]) / 2
        return not math.isfinite(value) or self.better(median, value)


class SuccessiveHalvingPruner(Pruner):
    """Asynchronous successive halving: rungs at epochs ``min_epochs * reduction_factor**k``; a
    run reaching a rung goes on only if it is in the top ``1/reduction_factor`` of the runs that
    reached that rung so far (while fewer than ``reduction_factor`` did, only the best goes on).

    Examples:
        >>> from runmanager.events import EpochEnded, RunStarted
        >>> from runmanager.results import Results
        >>> pruner, results = SuccessiveHalvingPruner("val_accuracy", min_epochs=1, reduction_factor=2), Results()
        >>> def first_epoch(run, value):
        ...     results.apply(RunStarted.of(run, {"i": run}))
        ...     return pruner.prune(results, results.apply(EpochEnded(run, "", 1, {"val_accuracy": value}, {}, 0.1, 0.1)))
        >>> [first_epoch(run, value) for run, value in ((1, 0.5), (2, 0.7), (3, 0.8), (4, 0.6))]
        [False, False, False, True]
    """

    def __init__(self, metric: str, mode: str | None = None, *, min_epochs: int = 1,
                 reduction_factor: int = 3) -> None:
        super().__init__(metric, mode)
        self.min_epochs = _check_count("min_epochs", min_epochs, 1)
        self.reduction_factor = _check_count("reduction_factor", reduction_factor, 2)

    def is_rung(self, epoch: int) -> bool:
        """True for the epochs ``min_epochs * reduction_factor**k``."""
        if epoch < self.min_epochs or epoch % self.min_epochs:
            return False
        steps = epoch // self.min_epochs
        while steps % self.reduction_factor == 0:
            steps //= self.reduction_factor
        return steps == 1

    def prune(self, results: Results, record: RunRecord) -> bool:
        epoch = record.epochs[-1]
        if not self.is_rung(epoch.epoch):
            return False
        value = epoch.metrics[self.metric]
        if not math.isfinite(value):
            return True
        values = values_at(results, epoch.epoch, self.metric)  # this run's value among them
        kept = max(1, len(values) // self.reduction_factor)
        threshold = values[-kept] if self.mode == "max" else values[kept - 1]
        return self.better(threshold, value)

"""Pruning: stop bad runs early.

A :class:`Pruner` is told every run's metric at every epoch, in the driver, from
the epoch events (so every executor behaves the same), and answers whether that
run should stop now. The run then ends at the end of that epoch with status
``"pruned"``, its epochs kept. The whole interface is :meth:`Pruner.report`; a
rule of your own is a few lines::

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

import bisect
import math

from runmanager.errors import InvalidArgumentError, is_int
from runmanager.events import resolve_mode

__all__ = ["MedianPruner", "Pruner", "SuccessiveHalvingPruner"]


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

    def report(self, run: int, epoch: int, value: float) -> bool:
        """Run ``run`` reached the end of ``epoch`` (1-based) with ``value`` of the metric;
        return True to stop it now. Called once per run and epoch, in the order they happen
        (for a resumed sweep, first with the epochs already in the journal)."""
        raise NotImplementedError(
            f"{type(self).__name__} does not implement report(run, epoch, value); a pruner subclasses Pruner and "
            "overrides report() to return True when the run should stop."
        )


def _check_count(name: str, value: object, minimum: int) -> int:
    if not is_int(value) or value < minimum:  # type: ignore[operator]
        raise InvalidArgumentError(f"{name} must be an int of at least {minimum}, got {value!r}.")
    return value  # type: ignore[return-value]


class MedianPruner(Pruner):
    """Stop a run whose metric at epoch e is worse than the median of the values the earlier
    runs had at epoch e, once ``min_runs`` of them reached it; never at epochs up to
    ``warmup_epochs``.

    Examples:
        >>> pruner = MedianPruner("val_accuracy", warmup_epochs=1, min_runs=2)
        >>> [pruner.report(run, 2, value) for run, value in ((1, 0.9), (2, 0.8), (3, 0.5), (4, 0.95))]
        [False, False, True, False]
    """

    def __init__(self, metric: str, mode: str | None = None, *, warmup_epochs: int = 1, min_runs: int = 5) -> None:
        super().__init__(metric, mode)
        self.warmup_epochs = _check_count("warmup_epochs", warmup_epochs, 0)
        self.min_runs = _check_count("min_runs", min_runs, 1)
        self._values: dict[int, list[float]] = {}  # epoch -> the values of the runs that reached it, sorted

    def report(self, run: int, epoch: int, value: float) -> bool:
        values = self._values.setdefault(epoch, [])
        stop = False
        if epoch > self.warmup_epochs and len(values) >= self.min_runs:
            middle = len(values) // 2
            median = values[middle] if len(values) % 2 else (values[middle - 1] + values[middle]) / 2
            stop = not math.isfinite(value) or self.better(median, value)
        if math.isfinite(value):
            bisect.insort(values, value)
        return stop


class SuccessiveHalvingPruner(Pruner):
    """Asynchronous successive halving: rungs at epochs ``min_epochs * reduction_factor**k``; a
    run reaching a rung goes on only if it is in the top ``1/reduction_factor`` of the runs that
    reached that rung so far (while fewer than ``reduction_factor`` did, only the best goes on).

    Examples:
        >>> pruner = SuccessiveHalvingPruner("val_accuracy", min_epochs=1, reduction_factor=2)
        >>> [pruner.report(run, 1, value) for run, value in ((1, 0.5), (2, 0.7), (3, 0.8), (4, 0.6))]
        [False, False, False, True]
    """

    def __init__(self, metric: str, mode: str | None = None, *, min_epochs: int = 1,
                 reduction_factor: int = 3) -> None:
        super().__init__(metric, mode)
        self.min_epochs = _check_count("min_epochs", min_epochs, 1)
        self.reduction_factor = _check_count("reduction_factor", reduction_factor, 2)
        self._rungs: dict[int, list[float]] = {}  # rung epoch -> the values of the runs that reached it, sorted

    def is_rung(self, epoch: int) -> bool:
        """True for the epochs ``min_epochs * reduction_factor**k``."""
        if epoch < self.min_epochs or epoch % self.min_epochs:
            return False
        steps = epoch // self.min_epochs
        while steps % self.reduction_factor == 0:
            steps //= self.reduction_factor
        return steps == 1

    def report(self, run: int, epoch: int, value: float) -> bool:
        if not self.is_rung(epoch):
            return False
        if not math.isfinite(value):
            return True
        values = self._rungs.setdefault(epoch, [])
        bisect.insort(values, value)
        kept = max(1, len(values) // self.reduction_factor)
        threshold = values[-kept] if self.mode == "max" else values[kept - 1]
        return self.better(threshold, value)

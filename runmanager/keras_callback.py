"""The Keras adapter: a real ``keras.callbacks.Callback`` that feeds a RunManager.

It hooks epochs only (a plain Python ``on_epoch_end`` costs about 30 µs; batch
hooks would cost on every batch), records every key Keras puts in ``logs``,
and stops training at the epoch whose loss became NaN or infinite. It uses the
RunManager's public methods only.
"""

from __future__ import annotations

import weakref
from collections.abc import Callable
from typing import TYPE_CHECKING, Any

import keras

from runmanager.errors import LifecycleError
from runmanager.events import EpochEnded, Status

if TYPE_CHECKING:
    from runmanager.tracking import RunManager

__all__ = ["RunCallback"]

# The standalone callback whose run each manager is in, to spot a fit() that raised.
_BEGUN_BY: weakref.WeakKeyDictionary[Any, RunCallback] = weakref.WeakKeyDictionary()


class RunCallback(keras.callbacks.Callback):
    """Records one run of a RunManager; get it with ``m.callback(run)``.

    Standalone, it begins the run when training begins and ends it when
    training ends. Inside a sweep (``managed=True``) the sweep owns the run, so
    ``train`` may call ``fit`` several times and the epochs keep counting.

    Examples:
        model.fit(x, y, epochs=3, callbacks=[m.callback(run)], verbose=0)
    """

    def __init__(self, manager: RunManager, run: Any, *, managed: bool = False,
                 judge: Callable[[EpochEnded], bool] | None = None) -> None:
        super().__init__()
        self.manager = manager
        self.run = run
        self.managed = managed
        self.judge = judge  # a sweep's pruner, asked after every epoch
        self._used = False

    def on_train_begin(self, logs: dict[str, Any] | None = None) -> None:
        manager = self.manager
        if self.managed:
            manager.discard_epoch()  # an earlier fit() of this run raised mid-epoch and train() went on
            manager.model = self.model
            return
        if self._used:
            raise LifecycleError(
                f"This callback already recorded run {manager.run_count}; "
                "create a new one with m.callback(run) for each fit()."
            )
        self._used = True
        if manager.run_active and _BEGUN_BY.get(manager) is not None:
            # The fit() of an earlier callback raised, so its on_train_end never came.
            manager.end_run_as(Status.FAILED, "fit() raised before the run ended")
        manager.begin_run(self.run, model=self.model)
        _BEGUN_BY[manager] = self

    def on_epoch_begin(self, epoch: int, logs: dict[str, Any] | None = None) -> None:
        self.manager.begin_epoch()

    def on_epoch_end(self, epoch: int, logs: dict[str, Any] | None = None) -> None:
        manager = self.manager
        manager.record_logs(logs or {})
        manager.end_epoch()
        if self.judge is not None:
            record = manager.run_record(manager.run_count)
            if record is not None and record.epochs and self.judge(record.epochs[-1]):
                manager.prune_run(manager.run_count)
        if (manager.run_diverged or manager.run_pruned) and self.model is not None:
            self.model.stop_training = True

    def on_train_end(self, logs: dict[str, Any] | None = None) -> None:
        if not self.managed:
            _BEGUN_BY.pop(self.manager, None)
            self.manager.end_run()

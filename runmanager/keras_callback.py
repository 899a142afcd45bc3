"""The Keras adapter: a real ``keras.callbacks.Callback`` that feeds a RunManager.

It hooks epochs only (a plain Python ``on_epoch_end`` costs about 30 µs; batch
hooks would cost on every batch), records every key Keras puts in ``logs``,
and stops training at the epoch whose loss became NaN or infinite.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

import keras

from runmanager.errors import LifecycleError

if TYPE_CHECKING:
    from runmanager.tracking import RunManager

__all__ = ["RunCallback"]


class RunCallback(keras.callbacks.Callback):
    """Records one run of a RunManager; get it with ``m.callback(run)``.

    Standalone, it begins the run when training begins and ends it when
    training ends. Inside a sweep (``managed=True``) the sweep owns the run, so
    ``train`` may call ``fit`` several times and the epochs keep counting.

    Example:
        model.fit(x, y, epochs=3, callbacks=[m.callback(run)], verbose=0)
    """

    def __init__(self, manager: RunManager, run: Any, *, managed: bool = False) -> None:
        super().__init__()
        self.manager = manager
        self.run = run
        self.managed = managed
        self._used = False

    def on_train_begin(self, logs: dict[str, Any] | None = None) -> None:
        if self.managed:
            if self.manager._epoch is not None:
                # An earlier fit() of this run raised mid-epoch and train() went on: drop that epoch.
                self.manager._epoch = None
                self.manager.epoch_count -= 1
            self.manager.model = self.model
            return
        if self._used:
            raise LifecycleError(
                f"This callback already recorded run {self.manager.run_count}; "
                "create a new one with m.callback(run) for each fit()."
            )
        self._used = True
        manager = self.manager
        if manager._run is not None and isinstance(manager._owner, RunCallback):
            # The fit() of an earlier callback raised, so its on_train_end never came.
            manager._ending = ("failed", "fit() raised before the run ended", None)
            manager.end_run()
        manager.begin_run(self.run, model=self.model)
        manager._owner = self

    def on_epoch_begin(self, epoch: int, logs: dict[str, Any] | None = None) -> None:
        self.manager.begin_epoch()

    def on_epoch_end(self, epoch: int, logs: dict[str, Any] | None = None) -> None:
        self.manager._log_keras_metrics(logs or {})
        self.manager.end_epoch()
        if self.manager.run_diverged:
            self.model.stop_training = True

    def on_train_end(self, logs: dict[str, Any] | None = None) -> None:
        if not self.managed:
            self.manager._owner = None
            self.manager.end_run()

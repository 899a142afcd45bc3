"""The Keras adapter: a real ``keras.callbacks.Callback`` that feeds a run.

It hooks epochs only (a plain Python ``on_epoch_end`` costs about 30 µs; batch
hooks would cost on every batch), records every key Keras puts in ``logs``,
saves the run's checkpoints, and stops training at the epoch whose loss became
NaN or infinite or that a pruner judged. It talks to the run's handle
(:class:`~runmanager.handle.RunHandle`), and to the manager only through its
public, overridable calls (``begin_run``, ``begin_epoch``, ``end_epoch``,
``end_run``), so a subclass's hooks see every run.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

import keras

from runmanager.errors import LifecycleError
from runmanager.events import Status

if TYPE_CHECKING:
    from runmanager.handle import RunHandle

__all__ = ["RunCallback"]


class RunCallback(keras.callbacks.Callback):
    """Records one run of a RunManager; get it with ``m.callback(run)``.

    Standalone, it begins the run when training begins and ends it when
    training ends. Inside a sweep (``handle`` given) the sweep owns the run, so
    ``train`` may call ``fit`` several times and the epochs keep counting.

    Examples:
        model.fit(x, y, epochs=3, callbacks=[m.callback(run)], verbose=0)
    """

    def __init__(self, manager: Any, run: Any, *, handle: RunHandle | None = None) -> None:
        super().__init__()
        self.manager = manager
        self.run = run
        self.handle = handle
        self._used = False

    def on_train_begin(self, logs: dict[str, Any] | None = None) -> None:
        if self.handle is not None:  # a sweep's run: fit() may be called again
            self.handle.discard_epoch()  # an earlier fit() of this run raised mid-epoch and train() went on
            self.handle.model = self.model
            return
        manager = self.manager
        if self._used:
            raise LifecycleError(
                f"This callback already recorded run {manager.run_count}; "
                "create a new one with m.callback(run) for each fit()."
            )
        self._used = True
        current = manager.current_run
        if current is not None and current.owner is not None:
            # The fit() of an earlier callback raised, so its on_train_end never came.
            current.finish(Status.FAILED, "fit() raised before the run ended")
            manager.end_run()
        manager.begin_run(self.run, model=self.model)
        manager.current_run.owner = self

    def on_epoch_begin(self, epoch: int, logs: dict[str, Any] | None = None) -> None:
        self.manager.begin_epoch()

    def on_epoch_end(self, epoch: int, logs: dict[str, Any] | None = None) -> None:
        manager = self.manager
        handle = self.handle or manager.current_run
        handle.record_logs(logs or {})
        manager.end_epoch()
        # The run's last epoch is always checkpointed, whatever checkpoint_every says.
        handle.checkpoint(self.model, final=epoch + 1 == (self.params or {}).get("epochs"))
        if handle.should_stop and self.model is not None:
            self.model.stop_training = True

    def on_train_end(self, logs: dict[str, Any] | None = None) -> None:
        if self.handle is None:
            self.manager.end_run()

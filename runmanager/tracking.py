"""Tracking runs and epochs: the RunManager.

A RunManager is fed either by the PyTorch-style manual calls (``begin_run``,
``begin_epoch``, ``track_loss``, ``end_epoch``, ``end_run``) or by a Keras
callback (:meth:`RunManager.callback`). Every change becomes an event
(``run_start``, ``epoch``, ``run_end``) that is folded into the in-memory
results, appended to the journal in ``log_dir``, shown in the live table and,
when asked, written for TensorBoard. Keras is imported only where it is used.
"""

from __future__ import annotations

import math
import os
import shutil
import time
import warnings
from collections import OrderedDict
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from runmanager.display import LiveTable
from runmanager.errors import (
    ColumnClashError,
    InvalidArgumentError,
    InvalidArgumentTypeError,
    LifecycleError,
    LogDirError,
)
from runmanager.grid import RESERVED_NAMES
from runmanager.naming import jsonable, params_of, run_id
from runmanager.storage import (
    EXPORT_NAMES,
    JOURNAL_NAME,
    Journal,
    Results,
    prepare_log_dir,
    results_from_journal,
    write_exports,
    write_frame,
)

__all__ = ["RunManager"]

TENSORBOARD_DIR = "tensorboard"


def _to_numpy(value: Any) -> Any:
    import numpy as np

    detach = getattr(value, "detach", None)  # a torch tensor that needs grad
    if detach is not None:
        value = detach().cpu()
    return np.asarray(value)


def _is_loss(name: str) -> bool:
    return name == "loss" or name.endswith("_loss")


@dataclass
class _ActiveRun:
    number: int
    run_id: str
    params: dict[str, Any]
    start: float
    diverged: bool = False


@dataclass
class _ActiveEpoch:
    start: float
    logged: dict[str, float] = field(default_factory=dict)
    # name -> [weighted total, total weight]
    sums: dict[str, list[float]] = field(default_factory=dict)


class RunManager:
    """Tracks runs and epochs, and keeps the results as rows, on disk and on screen.

    Args:
        log_dir: folder for the journal and the result files; ``None`` keeps
            everything in memory. Created if missing.
        verbose: 1 prints a live table, one line per epoch; 0 prints nothing.
        tensorboard: also write TensorBoard scalars and HParams data under
            ``log_dir/tensorboard`` (needs ``runmanager[tensorboard]``).
        overwrite: replace the runs already in ``log_dir`` instead of refusing.
        durable: fsync the journal after every event (on by default).

    Raises:
        LogDirError: ``log_dir`` is a file or not writable.

    Example:
        >>> m = RunManager(verbose=0)
        >>> m.begin_run({"lr": 0.1})
        >>> m.begin_epoch()
        >>> m.track_loss(0.5, batch_size=32)
        >>> m.track_loss(0.25, batch_size=32)
        >>> m.end_epoch()
        >>> m.end_run()
        >>> m.results[["run", "epoch", "loss", "lr"]].to_dict("records")
        [{'run': 1, 'epoch': 1, 'loss': 0.375, 'lr': 0.1}]
    """

    def __init__(
        self,
        log_dir: str | os.PathLike[str] | None = None,
        *,
        verbose: int = 1,
        tensorboard: bool = False,
        overwrite: bool = False,
        durable: bool = True,
    ) -> None:
        if log_dir is not None and not isinstance(log_dir, (str, os.PathLike)):
            raise InvalidArgumentTypeError(f"log_dir must be a path or None, got {log_dir!r}.")
        if verbose not in (0, 1, True, False):
            raise InvalidArgumentTypeError(f"verbose must be 0 or 1, got {verbose!r}.")
        self.log_dir: Path | None = prepare_log_dir(log_dir) if log_dir is not None else None
        self.verbose = int(verbose)
        self.overwrite = bool(overwrite)
        self.durable = bool(durable)
        self.run_count = 0
        self.epoch_count = 0
        self.run_params: Any = None
        self.model: Any = None
        self._results = Results()
        self._journal: Journal | None = None
        self._opened = False
        self._run: _ActiveRun | None = None
        self._epoch: _ActiveEpoch | None = None
        self._owner: Any = None  # what began the current run: a callback, the sweep, or the user
        self._assigned_number: int | None = None  # set by a sweep just before begin_run()
        self._ending: tuple[str, str | None, str | None] | None = None  # set by a sweep before end_run()
        self._sink: Callable[[Mapping[str, Any]], None] | None = None  # in a worker: sends events to the driver
        self._table = LiveTable() if self.verbose else None
        self._tensorboard: Any = None
        if tensorboard:
            self._enable_tensorboard()

    def _enable_tensorboard(self) -> None:
        if self._tensorboard is not None:
            return
        if self.log_dir is None:
            raise LogDirError("tensorboard=True needs a log_dir to write the event files into.")
        from runmanager.tensorboard import TensorBoardWriter

        self._tensorboard = TensorBoardWriter(self.log_dir / TENSORBOARD_DIR)

    # ------------------------------------------------------------------------------
    # State, as in the original RunManager
    # ------------------------------------------------------------------------------
    @property
    def run_data(self) -> list[OrderedDict[str, Any]]:
        """Every epoch row so far, as ``OrderedDict`` rows in column order."""
        return list(self._results.rows())

    @property
    def results(self) -> Any:
        """Every epoch row so far as a pandas DataFrame (one row per epoch)."""
        return self._results.frame()

    def summary(self) -> Any:
        """One row per run: ``run``, params, ``status``, ``epochs``, final metrics,
        ``run_duration``, ``error``.

        Example:
            >>> RunManager(verbose=0).summary().columns.tolist()
            ['run', 'status', 'epochs', 'run_duration', 'error']
        """
        return self._results.summary()

    @property
    def run_diverged(self) -> bool:
        """True once a loss of the current run became NaN or infinite: stop training it."""
        return self._run is not None and self._run.diverged

    def extra_columns(self) -> Mapping[str, Any]:
        """Extra columns for the epoch row; override in a subclass. Called at every epoch end.

        ``self.model`` is the run's model (``None`` if none was given).

        Example:
            >>> class WithWeights(RunManager):
            ...     def extra_columns(self):
            ...         return {"weights": self.model.count_params() if self.model else 0}
        """
        return {}

    # ------------------------------------------------------------------------------
    # The manual, PyTorch-style calls
    # ------------------------------------------------------------------------------
    def begin_run(self, run: Any, model: Any = None) -> None:
        """Start a run with these params (a ``Run`` namedtuple or a mapping).

        Subclasses may override it, calling ``super().begin_run(run, model)``;
        sweeps call it for every run too.

        Raises:
            LifecycleError: a run is still going; call ``end_run()`` first.
            LogDirError: ``log_dir`` already holds runs of an earlier sweep.
        """
        if self._run is not None:
            raise LifecycleError(
                f"begin_run() was called while run {self._run.number} is still going; "
                "call end_run() first."
            )
        params = params_of(run)
        for name in params:
            if name in RESERVED_NAMES:
                raise ColumnClashError(
                    f"Parameter {name!r} has the name of a column runmanager writes; rename it."
                )
        self._open()
        # A sweep assigns the number (a resumed run keeps its own); otherwise the next free one.
        number, self._assigned_number = self._assigned_number or self._results.next_number, None
        self.run_count = number
        self.epoch_count = 0
        self.run_params = run
        self.model = model
        self._run = _ActiveRun(number, run_id(params), params, time.perf_counter())
        self._emit({
            "type": "run_start",
            "run": number,
            "run_id": self._run.run_id,
            "params": jsonable(params),
            "time": time.time(),
        })

    def begin_epoch(self) -> None:
        """Start an epoch of the current run."""
        if self._run is None:
            raise LifecycleError("begin_epoch() was called before begin_run(); start a run first.")
        if self._epoch is not None:
            raise LifecycleError(
                f"begin_epoch() was called while epoch {self.epoch_count} is still going; "
                "call end_epoch() first."
            )
        self.epoch_count += 1
        self._epoch = _ActiveEpoch(time.perf_counter())

    def _accumulate(self, caller: str, name: str, total: float, weight: float) -> None:
        if self._epoch is None:
            raise LifecycleError(f"{caller}() was called outside an epoch; call begin_epoch() first.")
        sums = self._epoch.sums.setdefault(name, [0.0, 0.0])
        sums[0] += total
        sums[1] += weight

    def track_loss(self, loss: Any, batch_size: int) -> None:
        """Add a batch's mean loss; the epoch's ``loss`` is the mean weighted by batch size,
        so a short last batch counts exactly as much as its samples.

        Example:
            >>> m = RunManager(verbose=0); m.begin_run({"lr": 0.1}); m.begin_epoch()
            >>> m.track_loss(1.0, batch_size=3); m.track_loss(4.0, batch_size=1)
            >>> m.end_epoch(); m.results["loss"].item()
            1.75
        """
        size = int(batch_size)
        if size <= 0:
            raise InvalidArgumentError(f"batch_size must be a positive number of samples, got {batch_size!r}.")
        self._accumulate("track_loss", "loss", float(loss) * size, size)

    def track_num_correct(self, preds: Any, labels: Any) -> int:
        """Count a batch's correct predictions into the epoch's ``accuracy``; return the count.

        ``preds`` are class probabilities or logits (one more axis than
        ``labels``; a single column means binary probabilities, cut at 0.5) or
        class ids; ``labels`` are class ids or one-hot rows.

        Example:
            >>> m = RunManager(verbose=0); m.begin_run({"lr": 0.1}); m.begin_epoch()
            >>> m.track_num_correct([[0.9, 0.1], [0.2, 0.8]], [0, 0])
            1
        """
        p, y = _to_numpy(preds), _to_numpy(labels)
        if y.ndim == p.ndim and y.ndim >= 2 and y.shape[-1] > 1:
            y = y.argmax(axis=-1)  # one-hot labels
        if p.ndim == y.ndim + 1:
            p = (p[..., 0] > 0.5).astype(y.dtype) if p.shape[-1] == 1 else p.argmax(axis=-1)
        elif p.ndim == y.ndim and p.dtype.kind == "f" and y.dtype.kind in "iub":
            if not (p == p.round()).all():
                p = (p > 0.5).astype(y.dtype)
        if p.shape != y.shape:
            raise InvalidArgumentError(
                f"track_num_correct: predictions of shape {p.shape} do not match labels of shape "
                f"{y.shape}; give class probabilities (batch, classes) or class ids (batch,)."
            )
        correct = int((p == y).sum())
        self._accumulate("track_num_correct", "accuracy", correct, y.size)
        return correct

    def track(self, name: str, value: Any, weight: float = 1) -> None:
        """Add a value of any metric; the epoch's value is the weighted mean of what was tracked.

        Example:
            >>> m = RunManager(verbose=0); m.begin_run({"lr": 0.1}); m.begin_epoch()
            >>> m.track("grad_norm", 2.0); m.track("grad_norm", 4.0)
            >>> m.end_epoch(); m.results["grad_norm"].item()
            3.0
        """
        if not isinstance(name, str) or not name:
            raise InvalidArgumentTypeError(f"track() needs a metric name as a non-empty str, got {name!r}.")
        weight = float(weight)
        if weight <= 0:
            raise InvalidArgumentError(f"track({name!r}): weight must be positive, got {weight!r}.")
        self._accumulate("track", name, float(value) * weight, weight)

    def end_epoch(self, **extra: Any) -> None:
        """Finish the epoch: compute its metrics and write its row.

        Keyword arguments become extra columns of the row, after the metrics.

        Raises:
            LifecycleError: no epoch is going.
            ColumnClashError: an extra column has the name of another column.
        """
        if self._epoch is None or self._run is None:
            raise LifecycleError("end_epoch() was called before begin_epoch(); start an epoch first.")
        epoch, run = self._epoch, self._run
        metrics: dict[str, float] = dict(epoch.logged)
        for name, (total, weight) in epoch.sums.items():
            metrics[name] = total / weight
        extras: dict[str, Any] = dict(self.extra_columns() or {})
        for name, value in extra.items():
            if name in extras:
                raise ColumnClashError(
                    f"Extra column {name!r} is given by both extra_columns() and end_epoch(); "
                    "give it once, or rename one of them."
                )
            extras[name] = value
        self._check_columns(metrics, extras, run.params)
        now = time.perf_counter()
        event = {
            "type": "epoch",
            "run": run.number,
            "run_id": run.run_id,
            "epoch": self.epoch_count,
            "metrics": metrics,
            "extras": jsonable(extras),
            "epoch_duration": now - epoch.start,
            "run_duration": now - run.start,
        }
        self._epoch = None
        if any(_is_loss(name) and not math.isfinite(value) for name, value in metrics.items()):
            run.diverged = True
        self._emit(event)

    @staticmethod
    def _check_columns(metrics: Mapping[str, Any], extras: Mapping[str, Any], params: Mapping[str, Any]) -> None:
        for name in metrics:
            if name in RESERVED_NAMES or name in params:
                raise ColumnClashError(
                    f"Metric {name!r} has the name of "
                    f"{'a parameter' if name in params else 'a column runmanager writes'}; "
                    "rename the metric or the parameter."
                )
        for name in extras:
            if name in RESERVED_NAMES or name in params or name in metrics:
                raise ColumnClashError(
                    f"Extra column {name!r} clashes with another column of the row "
                    "(a metric, a parameter, or one runmanager writes); give it another name."
                )

    def end_run(self) -> None:
        """Finish the current run: ``completed``, or ``diverged`` if a loss became NaN/inf.

        Subclasses may override it, calling ``super().end_run()``; sweeps call it
        at the end of every run, whatever its status.
        """
        if self._run is None:
            raise LifecycleError("end_run() was called before begin_run(); start a run first.")
        ending, self._ending = self._ending, None
        if ending is None:
            if self._epoch is not None:
                raise LifecycleError(
                    f"end_run() was called while epoch {self.epoch_count} is still going; "
                    "call end_epoch() first."
                )
            ending = ("diverged" if self._run.diverged else "completed", None, None)
        self._finish_run(*ending)

    # ------------------------------------------------------------------------------
    # Keras
    # ------------------------------------------------------------------------------
    def callback(self, run: Any) -> Any:
        """A ``keras.callbacks.Callback`` that records ``run``: it begins the run when
        training begins, records every epoch's logs, and ends the run when training ends.

        Example:
            model.fit(x, y, epochs=3, callbacks=[m.callback(run)])
        """
        from runmanager.keras_callback import RunCallback

        return RunCallback(self, run)

    def _log_keras_metrics(self, logs: Mapping[str, Any]) -> None:
        """Record the metrics Keras logged for the current epoch, in Keras's order."""
        assert self._epoch is not None
        for name, value in logs.items():
            try:
                self._epoch.logged[name] = float(value)
            except (TypeError, ValueError):
                warnings.warn(f"Keras logged {name!r} = {value!r}, which is not a number; it is not recorded.",
                              RuntimeWarning, stacklevel=3)

    # ------------------------------------------------------------------------------
    # Sweeps
    # ------------------------------------------------------------------------------
    def sweep(
        self,
        train: Callable[..., Any],
        params: Any,
        executor: str = "sequential",
        *,
        workers: int | None = None,
        resume: bool = False,
        seed: int | None = None,
        retry_failed: bool = False,
        max_consecutive_failures: int = 3,
        allow_grid_change: bool = False,
        max_runs_per_worker: int = 100,
        gpus: list[int | str] | None = None,
        ray_address: str | None = None,
        num_cpus: float = 1,
        num_gpus: float = 0,
        tensorboard: bool = False,
    ) -> Any:
        """Run ``train(run, callbacks)`` for every run of ``params``; return :meth:`summary`.

        Args:
            train: a module-level function that builds and fits a model for one
                run, passing ``callbacks`` to ``fit``.
            params: anything :class:`RunBuilder` takes, or a RunBuilder.
            executor: ``"sequential"`` (this process), ``"processes"`` (local
                worker processes) or ``"ray"`` (actors on a Ray cluster).
            workers: how many runs at once with ``"processes"`` or ``"ray"``;
                default: one per visible GPU, else one per CPU core.
            resume: skip runs already completed in ``log_dir`` (matched by their
                params) and rerun the rest.
            seed: seed Python, NumPy and Keras before every run.
            retry_failed: with ``resume``, rerun failed and diverged runs too.
            max_consecutive_failures: stop the sweep after this many failed runs
                in a row (0: never stop).
            allow_grid_change: with ``resume``, accept a grid whose parameter
                names differ from the journal's.
            max_runs_per_worker: replace a worker process after this many runs,
                so memory stays flat over a long sweep.
            gpus: GPU ids for ``"processes"`` workers, one per worker in turn,
                each worker seeing only its own; default: every visible GPU;
                ``[]``: hide the GPUs from the workers.
            ray_address: the Ray cluster to join; default: the running one, or
                a local Ray started for the sweep.
            num_cpus, num_gpus: Ray resources per worker (per concurrent run).
            tensorboard: also write TensorBoard data for this sweep, as
                ``RunManager(..., tensorboard=True)`` does.

        Example:
            def train(run, callbacks):
                model = build_model(run)
                model.fit(x, y, epochs=3, callbacks=callbacks, verbose=0)
            m.sweep(train, {"units": [16, 32]}, seed=0)
        """
        from runmanager.executors import check_parallel_arguments, run_parallel
        from runmanager.grid import as_run_builder
        from runmanager.sweep import check_sweep_arguments, plan_runs, run_sequential

        check_sweep_arguments(train, executor, seed, max_consecutive_failures, workers)
        check_parallel_arguments(max_runs_per_worker, gpus, num_cpus, num_gpus)
        grid = as_run_builder(params)
        if self._run is not None:
            raise LifecycleError(
                f"sweep() was called while run {self._run.number} is still going; call end_run() first."
            )
        self._open(resume=resume, fields=grid.fields, allow_grid_change=allow_grid_change)
        if tensorboard:
            self._enable_tensorboard()
        if self._tensorboard is not None:
            self._tensorboard.set_grid(grid)
        plan = plan_runs(self, grid, retry_failed=retry_failed)
        if executor == "sequential":
            counts = run_sequential(self, train, plan, seed=seed, max_consecutive_failures=max_consecutive_failures)
        else:
            counts = run_parallel(
                self, train, plan, grid.fields, executor=executor, workers=workers, seed=seed,
                max_consecutive_failures=max_consecutive_failures, max_runs_per_worker=max_runs_per_worker,
                gpus=gpus, ray_address=ray_address, num_cpus=num_cpus, num_gpus=num_gpus,
            )
        if self._table is not None:
            done = ", ".join(f"{n} {status}" for status, n in counts.items()) or "nothing to run"
            where = f"; results in {self.log_dir}" if self.log_dir is not None else ""
            self._table.note(f"sweep finished: {done}{where}")
        return self.summary()

    # ------------------------------------------------------------------------------
    # Files
    # ------------------------------------------------------------------------------
    def save(self, name: str | os.PathLike[str]) -> tuple[Path, Path]:
        """Write the epoch rows to ``name.csv`` and ``name.json`` (a JSON list of records).

        Example:
            m.save("results")  # results.csv and results.json in the current folder
        """
        return write_frame(self.results, name)

    def close(self) -> None:
        """Close the journal and TensorBoard files (also done when the object is collected)."""
        if self._journal is not None:
            self._journal.close()
            self._journal = None
        if self._tensorboard is not None:
            self._tensorboard.close()
        self._opened = False

    # Driver-only state stays behind when a manager is sent to a worker process.
    _DRIVER_ONLY = ("_journal", "_table", "_tensorboard", "_results", "_sink", "_run", "_epoch", "model",
                    "_owner", "run_params")

    def __getstate__(self) -> dict[str, Any]:
        state = {k: v for k, v in self.__dict__.items() if k not in self._DRIVER_ONLY}
        state.update(log_dir=None, verbose=0, _opened=False)
        return state

    def __setstate__(self, state: dict[str, Any]) -> None:
        self.__dict__.update(state)
        self.__dict__.update(dict.fromkeys(self._DRIVER_ONLY), _results=Results())

    def __enter__(self) -> RunManager:
        return self

    def __exit__(self, *exc_info: Any) -> None:
        self.close()

    # ------------------------------------------------------------------------------
    # Internals shared with the sweep
    # ------------------------------------------------------------------------------
    def _open(self, *, resume: bool = False, fields: tuple[str, ...] | None = None,
              allow_grid_change: bool = False) -> None:
        """Open ``log_dir`` for writing once: refuse, resume or replace an earlier sweep."""
        if self._opened or self.log_dir is None:
            self._opened = True
            if fields is not None and self.log_dir is not None:
                self._write_event({"type": "sweep", "fields": list(fields), "time": time.time()})
            return
        journal = self.log_dir / JOURNAL_NAME
        loaded = results_from_journal(journal) if journal.exists() else Results()
        if loaded.runs and self.overwrite:
            self._remove_old_files()
            loaded = Results()
        elif loaded.runs and not resume:
            raise LogDirError(
                f"log_dir {str(self.log_dir)!r} already holds {len(loaded.runs)} run(s) of an earlier sweep. "
                "Pass resume=True to sweep() to continue it, overwrite=True to RunManager() to "
                "replace it, or choose another log_dir."
            )
        if loaded.runs and fields is not None and not allow_grid_change:
            old, new = set(loaded.param_names), set(fields)
            if old != new:
                raise LogDirError(
                    f"log_dir {str(self.log_dir)!r} holds a sweep over other parameters: "
                    f"added {sorted(new - old)}, removed {sorted(old - new)}. Resume it with the "
                    "same parameter names, pass allow_grid_change=True, or choose another log_dir."
                )
        self._results = loaded  # nothing ran before the log_dir was opened
        self._journal = Journal(journal, durable=self.durable)
        self._opened = True
        if fields is not None:
            self._write_event({"type": "sweep", "fields": list(fields), "time": time.time()})

    def _remove_old_files(self) -> None:
        assert self.log_dir is not None
        for name in EXPORT_NAMES:
            (self.log_dir / name).unlink(missing_ok=True)
        shutil.rmtree(self.log_dir / TENSORBOARD_DIR, ignore_errors=True)
        if self._tensorboard is not None:
            self._tensorboard.reset()

    def _finish_run(self, status: str, error: str | None = None, traceback: str | None = None) -> None:
        """End the current run with ``status``; an epoch still open is dropped, not recorded."""
        run = self._run
        if run is None:
            return
        self._epoch = None
        self._run = None
        self._owner = None
        self.model = None
        self._emit({
            "type": "run_end",
            "run": run.number,
            "run_id": run.run_id,
            "status": status,
            "epochs": len(self._results.runs[run.number].epochs),
            "run_duration": time.perf_counter() - run.start,
            "error": error,
            "traceback": traceback,
        })

    def _write_event(self, event: Mapping[str, Any]) -> None:
        if self._journal is not None:
            self._journal.write(event)

    def _emit(self, event: Mapping[str, Any]) -> None:
        """Send one event where it belongs: to the driver from a worker, else record it here."""
        if self._sink is None:
            self._record(event)
            return
        # In a worker: keep only the current run's state, and send the event to the driver.
        self._results.apply(event)
        self._sink(event)
        if event["type"] == "run_end":
            record = self._results.runs.pop(event["run"])
            self._results.by_id.pop(record.run_id, None)

    def _record(self, event: Mapping[str, Any]) -> None:
        """Record one event: memory, journal, table, TensorBoard, and files after a run."""
        self._results.apply(event)
        self._write_event(event)
        kind = event["type"]
        record = self._results.runs[event["run"]]
        if self._tensorboard is not None:
            self._tensorboard.write(event, record)
        if kind == "epoch" and self._table is not None:
            self._table.add(self._results.row(record, event), params=record.params)
        elif kind == "run_end":
            if self._table is not None and event["status"] != "completed":
                self._table.note(f"run {record.number} {event['status']}"
                                 + (f": {event['error']}" if event.get("error") else ""))
            if self.log_dir is not None:
                write_exports(self.log_dir, self._results)

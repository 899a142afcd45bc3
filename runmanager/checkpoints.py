"""Checkpoints: every run's model on disk, complete or absent, and the models back.

A sweep with ``checkpoint=True`` (or ``"best"``) keeps, for each run,
``LOG_DIR/checkpoints/<run>/best.keras`` (its best epoch so far by the sweep's
metric) and, while the run is unfinished, ``last.keras`` (its latest checkpointed
epoch, which a resumed sweep goes on from); ``"last"`` keeps only ``last.keras``.
Files are Keras's ``.keras`` format (``model.save``): a model comes back compiled,
with its optimizer state.

Every file is written to a temporary name in the same folder, flushed to disk and
renamed, so a kill at any moment leaves the previous checkpoint whole; its journal
event (:class:`~runmanager.events.CheckpointSaved`) is written after the rename, so
the journal never names a file that is not complete. A worker that cannot see the
log_dir sends the file's bytes to the driver, which writes them the same way.

Keras is imported only where a model is saved or loaded.
"""

from __future__ import annotations

import bisect
import contextlib
import math
import os
import tempfile
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from runmanager.errors import (
    CheckpointError,
    InvalidArgumentError,
    InvalidArgumentTypeError,
    LogDirError,
    is_int,
)
from runmanager.events import CheckpointRemoved, CheckpointSaved, Event, ModelBytes, RunStarted, resolve_mode
from runmanager.results import Results, RunRecord, best_epoch, epoch_value

__all__ = [
    "CHECKPOINT_DIR",
    "Checkpoint",
    "CheckpointPlan",
    "CheckpointKeeper",
    "CheckpointSettings",
    "ResumePoint",
    "CheckpointWriter",
    "check_checkpoint_arguments",
    "check_param_names",
    "checkpoint_file",
    "copy_model_file",
    "load_model",
    "model_to_bytes",
    "pick_run",
    "read_model",
    "restore",
    "resume_point",
    "save_model",
    "sweep_metric",
    "takes_checkpoint",
    "write_model_bytes",
]

#: The folder of the checkpoints inside a log_dir.
CHECKPOINT_DIR = "checkpoints"
#: What ``sweep(checkpoint=...)`` takes; True means "best".
CHECKPOINT_MODES = ("best", "last")
#: The metrics a sweep judges runs by when nothing names one, in this order of preference.
PREFERRED_METRICS = ("val_accuracy", "val_loss", "accuracy", "loss")


@dataclass(frozen=True)
class Checkpoint:
    """What ``train(run, callbacks, checkpoint)`` gets: the epochs already done and the model
    restored after the last of them (weights, optimizer state, compile), or ``0`` and ``None``
    for a run that starts afresh.

    Examples:
        >>> fresh = Checkpoint()
        >>> fresh.epoch, fresh.model
        (0, None)

        def train(run, callbacks, checkpoint):
            model = checkpoint.model or build_model(run)
            model.fit(x, y, epochs=20, initial_epoch=checkpoint.epoch, callbacks=callbacks)
    """

    epoch: int = 0
    model: Any = None


def check_checkpoint_arguments(checkpoint: Any, checkpoint_every: Any, keep_models: Any) -> str | None:
    """Check ``sweep``'s checkpoint options; return the kind of checkpoints kept (``"best"``,
    ``"last"``) or None when checkpoints are off.

    Raises:
        InvalidArgumentError: a value outside what each option takes.

    Examples:
        >>> check_checkpoint_arguments(True, 1, None), check_checkpoint_arguments(False, 1, None)
        ('best', None)
    """
    if checkpoint is True:
        mode: str | None = "best"
    elif checkpoint is False or checkpoint is None:
        mode = None
    elif isinstance(checkpoint, str) and checkpoint in CHECKPOINT_MODES:
        mode = checkpoint
    else:
        raise InvalidArgumentError(
            f"checkpoint must be False, True, 'best' or 'last', got {checkpoint!r}. True and 'best' keep each "
            "run's best model (and its last one while it is unfinished, for resume); 'last' keeps its latest."
        )
    if not is_int(checkpoint_every) or checkpoint_every < 1:
        raise InvalidArgumentError(
            f"checkpoint_every must be a positive int (save every N epochs, and at a run's last epoch), "
            f"got {checkpoint_every!r}."
        )
    if keep_models is not None:
        if not is_int(keep_models) or keep_models < 1:
            raise InvalidArgumentError(
                f"keep_models must be None (keep every run's model) or a positive int (keep the models of "
                f"the k best runs), got {keep_models!r}."
            )
        if mode is None:
            raise InvalidArgumentError(
                f"keep_models={keep_models!r} needs checkpoints; pass checkpoint=True as well."
            )
    return mode


def takes_checkpoint(train: Any) -> bool | None:
    """Whether ``train`` takes a third argument, the checkpoint it goes on from: True when it
    needs one (a third parameter without a default), None when it may take one (with a
    default, or ``*args``), False when it takes two.

    Examples:
        >>> takes_checkpoint(lambda run, callbacks, checkpoint: None), takes_checkpoint(lambda run, callbacks: None)
        (True, False)
    """
    import inspect

    try:
        parameters = list(inspect.signature(train).parameters.values())
    except (TypeError, ValueError):  # a builtin or a C callable: called with two arguments, as ever
        return False
    positional = [p for p in parameters if p.kind in (p.POSITIONAL_ONLY, p.POSITIONAL_OR_KEYWORD)]
    if len(positional) >= 3:
        return True if positional[2].default is inspect.Parameter.empty else None
    if any(p.kind == p.VAR_POSITIONAL for p in parameters):
        return None
    return False


#: The summary's columns of a sweep with checkpoints, which its params must leave free.
SUMMARY_COLUMNS = ("checkpoint", "checkpoint_epoch")


def check_param_names(names: Any) -> None:
    """Refuse params named as the checkpoint columns of the summary, when checkpoints are kept.

    Raises:
        ColumnClashError: a param is named ``checkpoint`` or ``checkpoint_epoch``.
    """
    from runmanager.errors import ColumnClashError

    for name in names:
        if name in SUMMARY_COLUMNS:
            raise ColumnClashError(
                f"Parameter {name!r} has the name of a column of the summary of a sweep with checkpoints "
                f"(which model each run keeps); rename it, e.g. to {name + '_name'!r}."
            )


def checkpoint_file(number: int, kind: str) -> str:
    """The file of run ``number``'s ``kind`` checkpoint, relative to the log_dir.

    Examples:
        >>> checkpoint_file(7, "best")
        'checkpoints/0007/best.keras'
    """
    return f"{CHECKPOINT_DIR}/{number:04d}/{kind}.keras"


class CheckpointPlan:
    """Which checkpoints one run saves after an epoch: ``last`` at every ``every``-th epoch and at
    the run's final epoch; with ``mode="best"`` also ``best`` whenever such an epoch beats the
    best one saved so far by ``metric`` (``metric_mode``: ``"min"`` or ``"max"``).

    Examples:
        >>> plan = CheckpointPlan("best", every=1, metric="val_loss", metric_mode="min")
        >>> plan.kinds(1, {"val_loss": 0.5}), plan.kinds(2, {"val_loss": 0.7}), plan.kinds(3, {"val_loss": 0.4})
        (['best', 'last'], ['last'], ['best', 'last'])
    """

    def __init__(self, mode: str, *, every: int = 1, metric: str | None = None, metric_mode: str | None = None,
                 best: float | None = None) -> None:
        self.mode = mode
        self.every = every
        self.metric = metric
        self.metric_mode = metric_mode or ("max" if metric is None else resolve_mode(metric, None, who="A checkpoint"))
        self.best = best  # the metric's value at the best epoch saved so far

    def improves(self, value: float | None) -> bool:
        if value is None or not math.isfinite(value):
            return False
        if self.best is None:
            return True
        return value < self.best if self.metric_mode == "min" else value > self.best

    def kinds(self, epoch: int, metrics: Mapping[str, float], *, final: bool = False) -> list[str]:
        """The kinds to save after ``epoch`` with these ``metrics`` (``final``: the run's last epoch)."""
        if epoch % self.every and not final:
            return []
        kinds = []
        if self.mode == "best":
            if self.metric is None:
                self.metric = next((name for name in PREFERRED_METRICS if name in metrics), None)
                if self.metric is not None:
                    self.metric_mode = resolve_mode(self.metric, None, who="A checkpoint")
            value = metrics.get(self.metric) if self.metric is not None else None
            if self.improves(value):
                self.best = value
                kinds.append("best")
        kinds.append("last")
        return kinds


# --------------------------------------------------------------------------------------
# Files
# --------------------------------------------------------------------------------------
def _fsync_folder(folder: Path) -> None:
    with contextlib.suppress(OSError):  # not every file system lets a folder be opened
        fd = os.open(folder, os.O_RDONLY)
        try:
            os.fsync(fd)
        finally:
            os.close(fd)


def _replace_into(temp: Path, path: Path) -> int:
    """Flush ``temp`` to disk and rename it to ``path``; return its size."""
    with open(temp, "rb+") as handle:
        os.fsync(handle.fileno())
    size = temp.stat().st_size
    os.replace(temp, path)
    _fsync_folder(path.parent)
    return size


def save_model(model: Any, path: str | os.PathLike[str]) -> int:
    """Save ``model`` (Keras's ``.keras`` format, optimizer state included) to ``path`` all at once:
    a temporary file beside it, flushed, then renamed. Return the file's size in bytes.

    Examples:
        save_model(model, "runs/x/checkpoints/0001/best.keras")
    """
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    # Keras insists on the .keras suffix, so the temporary name ends with it too.
    fd, name = tempfile.mkstemp(prefix=f".{path.stem}.", suffix=".tmp.keras", dir=path.parent)
    os.close(fd)
    temp = Path(name)
    try:
        model.save(temp)
        return _replace_into(temp, path)
    except BaseException:
        temp.unlink(missing_ok=True)
        raise


def model_to_bytes(model: Any) -> bytes:
    """``model`` as the bytes of a ``.keras`` file (for a worker that sends it to the driver).

    Examples:
        data = model_to_bytes(model)
    """
    with tempfile.TemporaryDirectory(prefix="runmanager-") as folder:
        path = Path(folder) / "model.keras"
        model.save(path)
        return path.read_bytes()


def write_model_bytes(path: str | os.PathLike[str], data: bytes) -> int:
    """Write the bytes of a ``.keras`` file to ``path`` all at once; return their length.

    Examples:
        write_model_bytes("runs/x/checkpoints/0001/last.keras", data)
    """
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, name = tempfile.mkstemp(prefix=f".{path.stem}.", suffix=".tmp.keras", dir=path.parent)
    temp = Path(name)
    try:
        with os.fdopen(fd, "wb") as handle:
            handle.write(data)
        return _replace_into(temp, path)
    except BaseException:
        temp.unlink(missing_ok=True)
        raise


def copy_model_file(source: str | os.PathLike[str], path: str | os.PathLike[str]) -> int:
    """Copy a complete checkpoint file to ``path`` all at once; return its size.

    Examples:
        copy_model_file("runs/x/checkpoints/0001/best.keras", "runs/x/checkpoints/0001/last.keras")
    """
    import shutil

    path = Path(path)
    fd, name = tempfile.mkstemp(prefix=f".{path.stem}.", suffix=".tmp.keras", dir=path.parent)
    os.close(fd)
    temp = Path(name)
    try:
        shutil.copyfile(source, temp)
        return _replace_into(temp, path)
    except BaseException:
        temp.unlink(missing_ok=True)
        raise


def read_model(path: str | os.PathLike[str], *, compile: bool = True) -> Any:
    """Load the Keras model of a checkpoint file.

    Raises:
        CheckpointError: the file is missing or cannot be read as a Keras model (the message
            says which file and why).

    Examples:
        model = read_model("runs/x/checkpoints/0003/best.keras")
    """
    import keras

    path = Path(path)
    if not path.is_file():
        raise CheckpointError(f"The checkpoint {os.fspath(path)!r} does not exist; it was deleted or never written.")
    try:
        return keras.saving.load_model(path, compile=compile)
    except Exception as exc:  # noqa: BLE001 - a damaged zip, a missing custom layer, a Keras version
        raise CheckpointError(
            f"The checkpoint {os.fspath(path)!r} cannot be read as a Keras model ({type(exc).__name__}: "
            f"{str(exc).splitlines()[0] if str(exc) else ''}). If the model has custom layers, register them "
            "with keras.saving.register_keras_serializable before loading."
        ) from exc


class CheckpointWriter:
    """Saves a run's model as its ``kind`` checkpoint: into ``log_dir`` where this process can see
    it (the driver, a worker on the same machine or a shared file system), else as bytes for the
    driver to write (a Ray node without the log_dir).

    Examples:
        events = CheckpointWriter("runs/x").save(model, 3, 5, ["best", "last"])   # two CheckpointSaved
    """

    def __init__(self, log_dir: str | os.PathLike[str] | None) -> None:
        self.log_dir = None if log_dir is None else Path(log_dir)

    def save(self, model: Any, number: int, epoch: int, kinds: list[str]) -> list[CheckpointSaved | ModelBytes]:
        """Save ``model`` as run ``number``'s checkpoints of these ``kinds`` after ``epoch``; return
        their events. The model is serialised once: the other kinds are copies of the first file."""
        if not kinds:
            return []
        files = [checkpoint_file(number, kind) for kind in kinds]
        if self.log_dir is None:  # the bytes go to the driver once; the other kinds are copies it makes
            return [ModelBytes(number, epoch, kinds[0], files[0], model_to_bytes(model)),
                    *(ModelBytes(number, epoch, kind, file, b"", same_as=files[0])
                      for kind, file in zip(kinds[1:], files[1:]))]
        first = self.log_dir / files[0]
        events: list[CheckpointSaved | ModelBytes] = [CheckpointSaved(number, epoch, kinds[0], files[0],
                                                                      save_model(model, first))]
        for kind, file in zip(kinds[1:], files[1:]):
            events.append(CheckpointSaved(number, epoch, kind, file, copy_model_file(first, self.log_dir / file)))
        return events


#: A file in ``LOG_DIR/checkpoints`` whose content tells a worker that it sees the driver's log_dir.
TOKEN_NAME = ".sweep"


@dataclass(frozen=True)
class CheckpointSettings:
    """A sweep's checkpoint options, as every worker gets them.

    ``log_dir`` is the driver's log_dir and ``token`` the content of its ``checkpoints/.sweep``
    file: a worker that reads the same token there sees the log_dir and writes checkpoints in
    place; any other sends their bytes to the driver.
    """

    mode: str = "best"
    every: int = 1
    metric: str | None = None
    metric_mode: str | None = None
    keep_models: int | None = None
    log_dir: str | None = None
    token: str | None = None

    def plan(self, best: float | None = None) -> CheckpointPlan:
        """A run's plan, going on from a best value of ``best`` (a resumed run)."""
        return CheckpointPlan(self.mode, every=self.every, metric=self.metric, metric_mode=self.metric_mode, best=best)

    def sees_log_dir(self) -> bool:
        if self.log_dir is None:
            return False
        try:
            return (Path(self.log_dir) / CHECKPOINT_DIR / TOKEN_NAME).read_text(encoding="ascii") == self.token
        except (OSError, UnicodeDecodeError):
            return False

    def writer(self) -> CheckpointWriter:
        """Where this process writes checkpoints: in place when it sees the log_dir, else as bytes."""
        return CheckpointWriter(self.log_dir if self.sees_log_dir() else None)

    @classmethod
    def for_sweep(cls, log_dir: Path | None, mode: str, *, every: int, metric: str | None, metric_mode: str | None,
                  keep_models: int | None) -> CheckpointSettings:
        """The settings of a sweep into ``log_dir``, whose token file this writes."""
        import secrets

        token = None
        if log_dir is not None:
            token = secrets.token_hex(8)
            folder = log_dir / CHECKPOINT_DIR
            folder.mkdir(parents=True, exist_ok=True)
            (folder / TOKEN_NAME).write_text(token, encoding="ascii")
        return cls(mode, every, metric, metric_mode, keep_models,
                   None if log_dir is None else os.fspath(log_dir.resolve()), token)


@dataclass(frozen=True)
class ResumePoint:
    """Where a run goes on from: its ``last`` checkpoint after ``epoch`` (``file``, relative to the
    log_dir, or its bytes in ``data`` for a worker that cannot see the log_dir), the value of the
    sweep's metric at its best checkpoint so far, and the seconds it had trained."""

    epoch: int
    file: str
    best: float | None = None
    elapsed: float = 0.0
    data: bytes | None = None

    def with_data(self, log_dir: Path) -> ResumePoint:
        """The same point carrying the file's bytes, for a worker on another machine."""
        from dataclasses import replace

        return replace(self, data=(log_dir / self.file).read_bytes())

    def __repr__(self) -> str:
        size = "" if self.data is None else f", {len(self.data)} bytes"
        return f"ResumePoint(epoch={self.epoch}, file={self.file!r}{size})"


def resume_point(record: RunRecord, settings: CheckpointSettings) -> ResumePoint | None:
    """Where run ``record`` goes on from, or None (no ``last`` checkpoint: it starts afresh)."""
    last = record.checkpoints.get("last")
    if last is None:
        return None
    best = record.checkpoints.get("best")
    value = None
    metric = settings.metric or next((m for m in PREFERRED_METRICS if record.epochs and m in record.epochs[-1].metrics),
                                     None)
    if best is not None and metric is not None:
        value = next((epoch_value(e, metric) for e in record.epochs if e.epoch == best.epoch), None)
    elapsed = next((e.run_duration for e in record.epochs if e.epoch == last.epoch), 0.0)
    return ResumePoint(last.epoch, last.file, value, elapsed)


def restore(point: ResumePoint, log_dir: str | os.PathLike[str] | None) -> Any:
    """The model of a resume point, read from the log_dir or from the bytes it carries.

    Raises:
        CheckpointError: the file is missing or cannot be read.
    """
    if point.data is not None:
        with tempfile.TemporaryDirectory(prefix="runmanager-") as folder:
            path = Path(folder) / "last.keras"
            path.write_bytes(point.data)
            return read_model(path)
    if log_dir is None:
        raise CheckpointError(f"The checkpoint {point.file!r} cannot be found: this worker does not see the log_dir.")
    return read_model(Path(log_dir) / point.file)


class CheckpointKeeper:
    """Deletes, in the driver, the checkpoint files that runs no longer need, each with its journal
    event: a finished run's ``last.keras`` (with ``mode="best"``: nothing to resume), the files of
    an attempt that a rerun superseded, and with ``keep_models=k`` the models of the finished runs
    that are not among the k best by ``metric``. It keeps the k best in a sorted list, so a run's
    end costs the same however many runs the log_dir holds.

    Examples:
        keeper = CheckpointKeeper(Path("runs/x"), "best", keep_models=3, metric="val_accuracy")
    """

    def __init__(self, log_dir: Path, mode: str = "best", *, keep_models: int | None = None,
                 metric: str | None = None, metric_mode: str | None = None) -> None:
        self.log_dir = log_dir
        self.mode = mode
        self.keep_models = keep_models
        self.metric = metric
        self.metric_mode = metric_mode
        self.results = Results()
        self._kept: list[tuple[float, int]] = []  # (rank key, run) of the finished runs whose model is kept

    def start(self, results: Results, record_event: Callable[[Event], object]) -> None:
        """Learn which finished runs of ``results`` (a resumed log_dir's) keep a model, and apply
        ``keep_models`` to them."""
        self.results = results
        self._kept = []
        if self.keep_models is None:
            return
        for number in sorted(results.runs):
            record = results.runs[number]
            if record.status.finished and record.kept_model is not None:
                self._keep(record, record_event)

    def _key(self, record: RunRecord) -> float:
        """Smaller is better; a run without a finite value of the metric ranks last."""
        metric = self.metric or next((m for m in PREFERRED_METRICS if record.epochs and m in record.epochs[-1].metrics),
                                     None)
        if metric is None:
            return math.inf
        mode = self.metric_mode or resolve_mode(metric, None, who="keep_models")
        value = best_value(record, metric, mode)
        if value is None:
            return math.inf
        return value if mode == "min" else -value

    def _delete(self, record: RunRecord, kind: str, reason: str, record_event: Callable[[Event], object]) -> None:
        saved = record.checkpoints.get(kind)
        if saved is None:
            return
        (self.log_dir / saved.file).unlink(missing_ok=True)
        record_event(CheckpointRemoved(record.number, kind, reason))

    def run_started(self, old: RunRecord | None, event: RunStarted) -> None:
        """A run starts again: the files of its earlier attempt after the epoch it goes on from are
        superseded (the fold forgets them)."""
        if old is None:
            return
        for saved in old.checkpoints.values():
            if saved.epoch > event.from_epoch:
                (self.log_dir / saved.file).unlink(missing_ok=True)

    def run_ended(self, record: RunRecord, record_event: Callable[[Event], object]) -> None:
        """Run ``record`` ended: drop what it no longer needs, and the models that fell out of the best."""
        if not record.status.finished:
            return  # interrupted: both files stay, to resume from
        if self.mode == "best":
            self._delete(record, "last", "finished", record_event)
        if self.keep_models is not None and record.kept_model is not None:
            self._keep(record, record_event)

    def _keep(self, record: RunRecord, record_event: Callable[[Event], object]) -> None:
        assert self.keep_models is not None
        bisect.insort(self._kept, (self._key(record), record.number))
        while len(self._kept) > self.keep_models:
            _, number = self._kept.pop()
            loser = self.results.runs.get(number)
            if loser is not None:
                for kind in ("best", "last"):
                    self._delete(loser, kind, "keep_models", record_event)


# --------------------------------------------------------------------------------------
# Which run's model
# --------------------------------------------------------------------------------------
def sweep_metric(results: Results, metric: str | None = None, mode: str | None = None) -> tuple[str, str]:
    """The metric and mode runs are judged by: ``metric`` when given, else the sweep's (as its
    journal says), else the first of ``val_accuracy``, ``val_loss``, ``accuracy``, ``loss`` logged.

    Raises:
        InvalidArgumentError: no such metric was logged.

    Examples:
        metric, mode = sweep_metric(results_from_journal("runs/x/journal.jsonl"))
    """
    if metric is None:
        if results.sweep_metric is not None:
            metric = results.sweep_metric
            mode = mode or results.sweep_mode
        else:
            metric = next((name for name in PREFERRED_METRICS if name in results.metric_names), None)
    if metric is None:
        raise InvalidArgumentError(
            f"No metric to judge runs by: the runs logged {', '.join(results.metric_names) or 'no metrics'}; "
            "pass metric=, e.g. metric='val_accuracy'."
        )
    if results.runs and metric not in results.metric_names and metric not in results.extra_names:
        raise InvalidArgumentError(
            f"Unknown metric {metric!r}; the runs logged {', '.join(results.metric_names) or 'no metrics'}."
        )
    return metric, resolve_mode(metric, mode, who="metric")


def best_value(record: RunRecord, metric: str, mode: str) -> float | None:
    """The run's value of ``metric`` at its best epoch, or None."""
    position = best_epoch(record, metric, mode)
    return None if position is None else epoch_value(record.epochs[position], metric)


def pick_run(results: Results, metric: str, mode: str, *, kept_only: bool = True) -> RunRecord | None:
    """The run with the best value of ``metric`` at its best epoch (the first of equals), among
    the runs with a kept model (``kept_only``) or all runs with a value; None if there is none."""
    found: tuple[float, RunRecord] | None = None
    for number in sorted(results.runs):
        record = results.runs[number]
        if kept_only and record.kept_model is None:
            continue
        value = best_value(record, metric, mode)
        if value is None:
            continue
        if found is None or (value < found[0] if mode == "min" else value > found[0]):
            found = (value, record)
    return None if found is None else found[1]


def why_no_model(record: RunRecord) -> str:
    """Why run ``record`` has no kept model, in words."""
    if "best" in record.removed or "last" in record.removed:
        reason = record.removed.get("best") or record.removed.get("last")
        if reason == "keep_models":
            return "its model was deleted by keep_models, as it was not among the best runs"
        return f"its checkpoint was deleted ({reason})"
    if not record.epochs:
        return f"it {record.status.value} before its first epoch" + (f" ({record.error})" if record.error else "")
    return "it was never checkpointed: run the sweep with checkpoint=True"


def load_model(log_dir: str | os.PathLike[str], run: int | None = None, metric: str | None = None,
               mode: str | None = None, compile: bool = True) -> Any:
    """The kept model of run ``run`` of a log_dir, from its files alone; with ``run=None``, the
    model of the best run that has one, by ``metric`` (default: the sweep's) at each run's best epoch.

    Args:
        log_dir: a sweep's folder (it needs its ``journal.jsonl`` and ``checkpoints/``).
        run: a run number, or None for the best run with a kept model.
        metric: the metric that ranks runs when ``run`` is None.
        mode: ``"min"`` or ``"max"``; default ``"min"`` for a loss or an error, else ``"max"``.
        compile: restore the compiled model with its optimizer state (default), or the bare model.

    Raises:
        CheckpointError: the run has no kept model (the message says why) or its file cannot be read.
        LogDirError: ``log_dir`` holds no journal.

    Examples:
        model = runmanager.load_model("runs/cnn")          # the best run's model
        model = runmanager.load_model("runs/cnn", run=7)
    """
    from runmanager.storage import JOURNAL_NAME, results_from_journal

    if not isinstance(log_dir, (str, os.PathLike)):
        raise InvalidArgumentTypeError(f"load_model needs the path of a log_dir, got {log_dir!r}.")
    folder = Path(log_dir)
    journal = folder / JOURNAL_NAME
    if not journal.is_file():
        raise LogDirError(f"{os.fspath(folder)!r} holds no {JOURNAL_NAME}: give the log_dir of a sweep.")
    results = results_from_journal(journal)
    return read_model(folder / model_file(results, run, metric, mode), compile=compile)


def model_file(results: Results, run: int | None = None, metric: str | None = None, mode: str | None = None) -> str:
    """The kept model's file (relative to the log_dir) of run ``run``, or of the best run that has one.

    Raises:
        CheckpointError: no such run, or it has no kept model (the message says why).
    """
    if run is None:
        metric, mode = sweep_metric(results, metric, mode)
        record = pick_run(results, metric, mode)
        if record is None:
            checkpointed = any(r.checkpoints or r.removed for r in results.runs.values())
            raise CheckpointError(
                "No run has a kept model: " + (f"none logged a finite {metric!r}." if checkpointed else
                                                "the sweep was run without checkpoints; pass checkpoint=True to sweep().")
            )
    else:
        if not is_int(run):
            raise InvalidArgumentTypeError(f"run must be a run number (an int), got {run!r}.")
        record = results.runs.get(run)
        if record is None:
            known = f"runs 1 to {max(results.runs)}" if results.runs else "no runs"
            raise CheckpointError(f"There is no run {run}; the log_dir holds {known}.")
    kept = record.kept_model
    if kept is None:
        raise CheckpointError(f"Run {record.number} has no kept model: {why_no_model(record)}.")
    return kept.file

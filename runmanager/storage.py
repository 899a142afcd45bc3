"""Where results live: the append-only journal, the exported files, and loading them back.

A ``log_dir`` holds:

- ``journal.jsonl``: one JSON object a line, appended, flushed and fsynced as
  each event happens (a run starts, an epoch ends, a run ends). It is the
  truth: everything else is derived from it, and it survives a SIGKILL at any
  moment with every finished epoch in it.
- ``results.csv`` / ``results.json``: one row per epoch;
  ``summary.csv`` / ``summary.json``: one row per run. Rewritten atomically
  (a temporary file in the same folder, then :func:`os.replace`) after every run.

Nothing here needs TensorFlow or Keras.
"""

from __future__ import annotations

import json
import math
import os
import tempfile
import warnings
from collections import OrderedDict
from collections.abc import Iterable, Iterator, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from runmanager.errors import InvalidArgumentTypeError, JournalError, LogDirError

__all__ = [
    "EXPORT_NAMES",
    "JOURNAL_NAME",
    "Journal",
    "Results",
    "atomic_write",
    "load_results",
    "load_summary",
    "prepare_log_dir",
    "read_journal",
]

JOURNAL_NAME = "journal.jsonl"
RESULTS_NAME = "results"
SUMMARY_NAME = "summary"
#: Every file a sweep writes in its log_dir (``overwrite=True`` removes exactly these).
EXPORT_NAMES = (
    JOURNAL_NAME,
    f"{RESULTS_NAME}.csv",
    f"{RESULTS_NAME}.json",
    f"{SUMMARY_NAME}.csv",
    f"{SUMMARY_NAME}.json",
)
STATUSES = ("running", "completed", "failed", "diverged", "interrupted")


# --------------------------------------------------------------------------------------
# The fold of events into runs and rows
# --------------------------------------------------------------------------------------
@dataclass
class RunRecord:
    """Everything known about one run, folded from its events."""

    number: int
    run_id: str
    params: dict[str, Any]
    status: str = "running"
    epochs: list[dict[str, Any]] = field(default_factory=list)
    error: str | None = None
    traceback: str | None = None
    run_duration: float | None = None


def _union(names: Iterable[str], into: dict[str, None]) -> None:
    for name in names:
        into.setdefault(name, None)


class Results:
    """Runs and epoch rows, built by applying events in order.

    The same fold serves a live RunManager and a journal read back from disk,
    so both always agree on what a sweep holds.
    """

    def __init__(self) -> None:
        self.runs: dict[int, RunRecord] = {}
        self.by_id: dict[str, RunRecord] = {}
        self._metrics: dict[str, None] = {}
        self._extras: dict[str, None] = {}
        self._params: dict[str, None] = {}

    def apply(self, event: Mapping[str, Any]) -> None:
        """Fold one journal event (``run_start``, ``epoch``, ``run_end``) into the state."""
        kind = event.get("type")
        if kind == "run_start":
            # A rerun of a run (resume) starts it afresh: its old partial epochs go.
            record = RunRecord(event["run"], event["run_id"], dict(event["params"]))
            self.runs[record.number] = record
            self.by_id[record.run_id] = record
            _union(record.params, self._params)
        elif kind == "epoch":
            record = self.runs[event["run"]]
            record.epochs.append(dict(event))
            record.run_duration = event["run_duration"]
            _union(event["metrics"], self._metrics)
            _union(event["extras"], self._extras)
        elif kind == "run_end":
            record = self.runs[event["run"]]
            record.status = event["status"]
            record.error = event.get("error")
            record.traceback = event.get("traceback")
            record.run_duration = event.get("run_duration", record.run_duration)
        # Other events ("sweep") describe the sweep, not its rows.

    @property
    def next_number(self) -> int:
        return max(self.runs, default=0) + 1

    @property
    def metric_names(self) -> list[str]:
        return list(self._metrics)

    @property
    def param_names(self) -> list[str]:
        return list(self._params)

    def columns(self) -> list[str]:
        """Epoch-row columns: run, epoch, metrics, extras, durations, params."""
        return [
            "run",
            "epoch",
            *self._metrics,
            *self._extras,
            "epoch_duration",
            "run_duration",
            *self._params,
        ]

    @staticmethod
    def row(record: RunRecord, epoch: Mapping[str, Any]) -> OrderedDict[str, Any]:
        """One epoch row in API order."""
        row: OrderedDict[str, Any] = OrderedDict(run=record.number, epoch=epoch["epoch"])
        row.update(epoch["metrics"])
        row.update(epoch["extras"])
        row["epoch_duration"] = epoch["epoch_duration"]
        row["run_duration"] = epoch["run_duration"]
        row.update(record.params)
        return row

    def rows(self) -> Iterator[OrderedDict[str, Any]]:
        for number in sorted(self.runs):
            record = self.runs[number]
            for epoch in record.epochs:
                yield self.row(record, epoch)

    def frame(self) -> Any:
        """Every epoch row as a pandas DataFrame, one aligned column per name."""
        import pandas as pd

        return pd.DataFrame(list(self.rows()), columns=self.columns())

    def summary_columns(self) -> list[str]:
        return [
            "run",
            *self._params,
            "status",
            "epochs",
            *self._metrics,
            *self._extras,
            "run_duration",
            "error",
        ]

    def summary(self) -> Any:
        """One row per run: params, status, epochs, final metrics, duration, error."""
        import pandas as pd

        rows = []
        for number in sorted(self.runs):
            record = self.runs[number]
            row: dict[str, Any] = {"run": number, **record.params}
            row["status"] = record.status
            row["epochs"] = len(record.epochs)
            # The final value of each metric: from the last epoch that has it.
            for epoch in record.epochs:
                row.update(epoch["metrics"])
                row.update(epoch["extras"])
            row["run_duration"] = record.run_duration
            row["error"] = record.error
            rows.append(row)
        return pd.DataFrame(rows, columns=self.summary_columns())


# --------------------------------------------------------------------------------------
# The journal
# --------------------------------------------------------------------------------------
def _dumps(event: Mapping[str, Any]) -> str:
    # NaN and inf are kept (a diverged loss is worth seeing); Python's json reads them back.
    return json.dumps(event, separators=(",", ":"), ensure_ascii=False, allow_nan=True)


class Journal:
    """An append-only JSON-lines file: every event is on disk before ``write`` returns.

    Args:
        path: the journal file; created if missing.
        durable: fsync after each event (default), so a power loss loses nothing
            either; without it a killed process still loses nothing.
    """

    def __init__(self, path: str | os.PathLike[str], *, durable: bool = True) -> None:
        self.path = Path(path)
        self.durable = durable
        _truncate_torn_tail(self.path)
        self._file = open(self.path, "a", encoding="utf-8", newline="\n")  # noqa: SIM115

    def write(self, event: Mapping[str, Any]) -> None:
        self._file.write(_dumps(event) + "\n")
        self._file.flush()
        if self.durable:
            os.fsync(self._file.fileno())

    def close(self) -> None:
        if not self._file.closed:
            self._file.close()

    def __del__(self) -> None:  # pragma: no cover - best effort at interpreter exit
        try:
            self.close()
        except Exception:
            pass


def _truncate_torn_tail(path: Path) -> None:
    """Cut a last line that a dying process left half-written, so appends start clean."""
    if not path.exists():
        return
    with open(path, "rb+") as handle:
        data = handle.read()
        if not data or data.endswith(b"\n"):
            return
        cut = data.rfind(b"\n") + 1
        handle.truncate(cut)


def read_journal(path: str | os.PathLike[str]) -> list[dict[str, Any]]:
    """Every event in a journal file, in order.

    A torn last line (the process died while writing it) is skipped with a
    warning; a corrupt line anywhere else raises :class:`JournalError` naming
    the file and line.

    Example:
        events = read_journal("runs/digits/journal.jsonl")
    """
    path = Path(path)
    events: list[dict[str, Any]] = []
    with open(path, encoding="utf-8", newline="\n") as handle:
        lines = handle.read().split("\n")
    # A complete journal ends with "\n", so the text after the last newline is "" or torn.
    complete, tail = lines[:-1], lines[-1]
    for number, line in enumerate(complete, start=1):
        if not line.strip():
            continue
        try:
            event = json.loads(line)
        except json.JSONDecodeError as exc:
            raise JournalError(
                f"{path}: line {number} is not valid JSON ({exc.msg}); the journal is corrupt "
                "before its end. Restore it from a backup or remove the broken line."
            ) from None
        if not isinstance(event, dict) or "type" not in event:
            raise JournalError(f"{path}: line {number} is not a journal event: {line[:80]!r}.")
        events.append(event)
    if tail.strip():
        try:
            event = json.loads(tail)
        except json.JSONDecodeError:
            warnings.warn(
                f"{path}: skipped a torn last line (the process died while writing it).",
                RuntimeWarning,
                stacklevel=2,
            )
        else:
            events.append(event)
    return events


def results_from_journal(path: str | os.PathLike[str]) -> Results:
    results = Results()
    for event in read_journal(path):
        results.apply(event)
    return results


# --------------------------------------------------------------------------------------
# Exports
# --------------------------------------------------------------------------------------
def atomic_write(path: str | os.PathLike[str], text: str) -> None:
    """Replace ``path`` with ``text`` all at once: readers see the old file or the new one.

    Example:
        atomic_write("results.csv", "run,epoch\\n")
    """
    path = Path(path)
    fd, temp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    try:
        with os.fdopen(fd, "w", encoding="utf-8", newline="") as handle:
            handle.write(text)
            handle.flush()
            os.fsync(handle.fileno())
        os.replace(temp, path)
    except BaseException:
        try:
            os.unlink(temp)
        except FileNotFoundError:
            pass
        raise


def _finite_or_none(value: Any) -> Any:
    if isinstance(value, float) and not math.isfinite(value):
        return None
    return value


def frame_to_json(frame: Any) -> str:
    """A DataFrame as a JSON list of records; missing and non-finite numbers are null."""
    records = []
    for values in frame.itertuples(index=False, name=None):
        record = {}
        for column, value in zip(frame.columns, values):
            item = getattr(value, "item", None)
            if item is not None and getattr(value, "shape", None) == ():
                value = item()
            if value is not None and not isinstance(value, (str, bool, int, float, list, dict)):
                value = str(value)
            record[column] = _finite_or_none(value)
        records.append(record)
    return json.dumps(records, indent=1, ensure_ascii=False, allow_nan=False) + "\n"


def write_frame(frame: Any, prefix: str | os.PathLike[str]) -> tuple[Path, Path]:
    """Write ``prefix.csv`` and ``prefix.json`` atomically; return both paths."""
    prefix = Path(prefix)
    csv_path = prefix.with_name(prefix.name + ".csv")
    json_path = prefix.with_name(prefix.name + ".json")
    atomic_write(csv_path, frame.to_csv(index=False))
    atomic_write(json_path, frame_to_json(frame))
    return csv_path, json_path


def write_exports(log_dir: Path, results: Results) -> None:
    """Rewrite results.csv/json and summary.csv/json in ``log_dir`` from ``results``."""
    write_frame(results.frame(), log_dir / RESULTS_NAME)
    write_frame(results.summary(), log_dir / SUMMARY_NAME)


# --------------------------------------------------------------------------------------
# log_dir checks
# --------------------------------------------------------------------------------------
def prepare_log_dir(log_dir: str | os.PathLike[str]) -> Path:
    """Create ``log_dir`` if needed and check that it is a writable folder."""
    path = Path(log_dir)
    if path.exists() and not path.is_dir():
        raise LogDirError(
            f"log_dir {str(path)!r} is a file, not a folder; give a folder path "
            "(it is created if missing)."
        )
    try:
        path.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise LogDirError(f"Cannot create log_dir {str(path)!r}: {exc.strerror}. Choose another folder.") from None
    if not os.access(path, os.W_OK | os.X_OK):
        raise LogDirError(
            f"log_dir {str(path)!r} is not writable; fix its permissions or choose another folder."
        )
    return path


# --------------------------------------------------------------------------------------
# Loading
# --------------------------------------------------------------------------------------
def _read_json_frame(path: Path) -> Any:
    import pandas as pd

    try:
        records = json.loads(path.read_text(encoding="utf-8"))
    except json.JSONDecodeError as exc:
        raise LogDirError(f"{path} is not valid JSON ({exc.msg} at line {exc.lineno}).") from None
    if not isinstance(records, list) or not all(isinstance(r, dict) for r in records):
        raise LogDirError(f"{path} is not a JSON list of records, as runmanager writes.")
    columns: dict[str, None] = {}
    for record in records:
        _union(record, columns)
    return pd.DataFrame(records, columns=list(columns))


def _load(path: str | os.PathLike[str], name: str, from_results: str) -> Any:
    import pandas as pd

    if not isinstance(path, (str, os.PathLike)):
        raise InvalidArgumentTypeError(
            f"load_{name} needs a path to a log_dir, a .csv or a .json file, got {path!r}."
        )
    path = Path(path)
    if path.is_dir():
        journal = path / JOURNAL_NAME
        if journal.exists():
            return getattr(results_from_journal(journal), from_results)()
        for suffix in (".csv", ".json"):
            candidate = path / f"{name}{suffix}"
            if candidate.exists():
                return _load(candidate, name, from_results)
        raise LogDirError(f"{str(path)!r} holds no runmanager results (no {JOURNAL_NAME} or {name}.csv).")
    if not path.exists():
        raise LogDirError(f"{str(path)!r} does not exist; give a log_dir, a .csv or a .json file.")
    if path.suffix == ".csv":
        return pd.read_csv(path)
    if path.suffix == ".json":
        return _read_json_frame(path)
    raise LogDirError(f"Cannot read {str(path)!r}: give a log_dir, a .csv or a .json file.")


def load_results(path: str | os.PathLike[str]) -> Any:
    """Read epoch rows back into a DataFrame from a log_dir, a ``.csv`` or a ``.json``.

    A log_dir is read from its journal, so it holds every finished epoch, even
    of a run that was still going when the process died. Nothing is unpickled
    or evaluated.

    Example:
        df = load_results("runs/digits")
        df.groupby("run")["val_accuracy"].max()
    """
    return _load(path, RESULTS_NAME, "frame")


def load_summary(path: str | os.PathLike[str]) -> Any:
    """Read the per-run summary back from a log_dir, a ``summary.csv`` or a ``summary.json``.

    Example:
        load_summary("runs/digits")[["run", "status", "epochs"]]
    """
    return _load(path, SUMMARY_NAME, "summary")

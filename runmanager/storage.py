"""Where results live: the append-only journal, the exported files, and loading them back.

A ``log_dir`` holds:

- ``journal.jsonl``: one JSON object a line, appended, flushed and fsynced as
  each event happens (a run starts, an epoch ends, a run ends). It is the
  truth: everything else is derived from it, and it survives a SIGKILL at any
  moment with every finished epoch in it.
- ``results.csv`` / ``results.json``: one row per epoch;
  ``summary.csv`` / ``summary.json``: one row per run. Rewritten atomically
  (a temporary file in the same folder, then :func:`os.replace`) after a run
  whenever that is cheap next to the run (see :mod:`runmanager.sinks.exports`),
  and always at the end of a sweep and on close.
- ``report.html`` (``runmanager report``), ``tensorboard/`` and ``checkpoints/``
  where those are asked for, and ``compile_cache/``, the XLA compilation cache that
  the processes of a sweep on Keras's JAX backend share (see :mod:`runmanager.compile_cache`).

A writer never replaces such files unless they came from runmanager (the folder
has a journal) or ``overwrite=True`` says so. A reader shows a run the journal
leaves ``running`` as ``interrupted`` once no process holds the log_dir's writer
lock (:func:`read_log_dir`): the process writing it was killed.

Nothing here needs TensorFlow or Keras.
"""

from __future__ import annotations

import contextlib
import json
import math
import os
import tempfile
import warnings
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from runmanager.errors import InvalidArgumentTypeError, JournalError, LogDirError, LogDirWriteError
from runmanager.events import RunEnded, Status, from_dict, to_dict
from runmanager.lock import writer_alive
from runmanager.results import Results, fold, union

__all__ = [
    "ABANDONED",
    "CHECKPOINTS_DIR",
    "COMPILE_CACHE_DIR",
    "EXPORT_NAMES",
    "JOURNAL_NAME",
    "OUTPUT_DIRS",
    "REPORT_NAME",
    "TENSORBOARD_DIR",
    "Journal",
    "atomic_write",
    "end_abandoned_runs",
    "file_mode",
    "load_results",
    "load_for_writing",
    "load_summary",
    "outputs_in",
    "prepare_log_dir",
    "read_journal",
    "read_log_dir",
    "remove_outputs",
    "results_from_journal",
    "write_exports",
    "write_failure",
    "write_frame",
]

JOURNAL_NAME = "journal.jsonl"
RESULTS_NAME = "results"
SUMMARY_NAME = "summary"
#: The HTML report's default file in a log_dir.
REPORT_NAME = "report.html"
#: Every file a sweep (or its report) writes in its log_dir (``overwrite=True`` removes exactly
#: these and :data:`OUTPUT_DIRS`).
EXPORT_NAMES = (
    JOURNAL_NAME,
    f"{RESULTS_NAME}.csv",
    f"{RESULTS_NAME}.json",
    f"{SUMMARY_NAME}.csv",
    f"{SUMMARY_NAME}.json",
    REPORT_NAME,
)
#: TensorBoard's folder inside a log_dir.
TENSORBOARD_DIR = "tensorboard"
#: The runs' saved models inside a log_dir.
CHECKPOINTS_DIR = "checkpoints"
#: The persistent XLA compilation cache of a sweep on Keras's JAX backend, inside its log_dir.
COMPILE_CACHE_DIR = "compile_cache"
#: The folders a sweep writes in its log_dir.
OUTPUT_DIRS = (TENSORBOARD_DIR, CHECKPOINTS_DIR, COMPILE_CACHE_DIR)
#: The error of a run the journal leaves ``running`` when no process holds the log_dir any more.
ABANDONED = "the process writing this run ended without finishing it"


# --------------------------------------------------------------------------------------
# The journal
# --------------------------------------------------------------------------------------
def _dumps(event: Mapping[str, Any]) -> str:
    # NaN and inf are kept (a diverged loss is worth seeing); Python's json reads them back.
    return json.dumps(event, separators=(",", ":"), ensure_ascii=False, allow_nan=True)


class Journal:
    """An append-only JSON-lines file: every event is on disk before ``write`` returns.

    A write that fails (a full disk, an I/O error) is cut off again, so the journal
    never keeps a torn line, and the error is raised.

    Args:
        path: the journal file; created if missing.
        durable: fsync after each event (default), so a power loss loses nothing
            either; without it a killed process still loses nothing.
    """

    def __init__(self, path: str | os.PathLike[str], *, durable: bool = True) -> None:
        self.path = Path(path)
        self.durable = durable
        _truncate_torn_tail(self.path)
        # Raw appends: a failed write is undone by ftruncate to the size before it.
        self._fd: int | None = os.open(self.path, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o666)
        self._size = os.fstat(self._fd).st_size

    def write(self, event: Mapping[str, Any]) -> None:
        if self._fd is None:
            raise ValueError(f"The journal {self.path} is closed.")
        line = (_dumps(event) + "\n").encode("utf-8")
        try:
            view = memoryview(line)
            while view:
                view = view[os.write(self._fd, view):]
            if self.durable:
                os.fsync(self._fd)
        except OSError as exc:
            with contextlib.suppress(OSError):
                os.ftruncate(self._fd, self._size)
            exc.filename = exc.filename or os.fspath(self.path)
            raise
        self._size += len(line)

    def close(self) -> None:
        if self._fd is not None:
            os.close(self._fd)
            self._fd = None

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
    warning; a corrupt line anywhere else (not JSON, not UTF-8 text, not an
    event) raises :class:`JournalError` naming the file and line.

    Examples:
        events = read_journal("runs/digits/journal.jsonl")
    """
    path = Path(path)
    events: list[dict[str, Any]] = []
    # Bytes, decoded line by line: a disk error or a bad copy damages some lines, not the
    # reading of the whole file.
    lines = path.read_bytes().split(b"\n")
    # A complete journal ends with "\n", so the text after the last newline is "" or torn.
    complete, tail = lines[:-1], lines[-1]
    for number, raw in enumerate(complete, start=1):
        if not raw.strip():
            continue
        try:
            line = raw.decode("utf-8")
        except UnicodeDecodeError as exc:
            raise JournalError(
                f"{path}: line {number} is not UTF-8 text (byte {raw[exc.start:exc.start + 1]!r} at "
                f"position {exc.start}); the journal is corrupt before its end (a disk error or a bad "
                "copy). Restore it from a backup or remove the broken line."
            ) from None
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
            event = json.loads(tail.decode("utf-8"))
        except (UnicodeDecodeError, json.JSONDecodeError):
            warnings.warn(
                f"{path}: skipped a torn last line (the process died while writing it).",
                RuntimeWarning,
                stacklevel=2,
            )
        else:
            events.append(event)
    return events


def results_from_journal(path: str | os.PathLike[str]) -> Results:
    """The runs of a journal file, folded from its events.

    Examples:
        results = results_from_journal("runs/digits/journal.jsonl")
    """
    return fold(event for event in map(from_dict, read_journal(path)) if event is not None)


def end_abandoned_runs(results: Results, error: str = ABANDONED) -> list[RunEnded]:
    """End every run ``results`` holds as ``running`` as ``interrupted`` with ``error``, through
    the fold; return the events. Only for runs that nothing is writing any more.

    Examples:
        >>> from runmanager.events import RunStarted
        >>> results = fold([RunStarted.of(1, {"lr": 0.1})])
        >>> [event.status.value for event in end_abandoned_runs(results)], results.runs[1].error
        (['interrupted'], 'the process writing this run ended without finishing it')
    """
    events = [RunEnded(record.number, record.run_id, Status.INTERRUPTED, len(record.epochs),
                       record.run_duration or 0.0, error)
              for record in results.runs.values() if record.status == Status.RUNNING]
    fold(events, into=results)
    return events


def read_log_dir(log_dir: str | os.PathLike[str]) -> Results:
    """The runs of a log_dir's journal as a reader shows them: a run left ``running`` by a
    writer that is gone (killed, or its machine went down) is ``interrupted`` with the error
    :data:`ABANDONED`; while a live process holds the writer lock, its runs stay ``running``.

    The lock is looked at before and after the journal is read, so a writer that starts or
    stops meanwhile is taken as live: a run is called abandoned only when no writer could
    have been going through the whole read.

    Examples:
        results = read_log_dir("runs/digits")
        [record.status for record in results.runs.values()]
    """
    log_dir = Path(log_dir)
    writing = writer_alive(log_dir)
    results = results_from_journal(log_dir / JOURNAL_NAME)
    if not (writing or writer_alive(log_dir)):
        end_abandoned_runs(results)
    return results


# --------------------------------------------------------------------------------------
# Exports
# --------------------------------------------------------------------------------------
def file_mode() -> int:
    """The mode a new file of this process gets, ``0o666`` less the umask (``0o644`` under 022).

    Examples:
        >>> file_mode() & 0o600
        384
    """
    try:  # thread-safe where /proc has it; os.umask() would change the umask for a moment
        with open("/proc/self/status", encoding="ascii") as status:
            for line in status:
                if line.startswith("Umask:"):
                    return 0o666 & ~int(line.split()[1], 8)
    except (OSError, ValueError):
        pass
    mask = os.umask(0o022)
    os.umask(mask)
    return 0o666 & ~mask


def atomic_write(path: str | os.PathLike[str], text: str) -> None:
    """Replace ``path`` with ``text`` all at once: readers see the old file or the new one.

    The file gets the usual mode of the process's new files (the umask is respected).

    Examples:
        atomic_write("results.csv", "run,epoch\\n")
    """
    path = Path(path)
    fd, temp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    try:
        os.fchmod(fd, file_mode())  # mkstemp makes it 0600, and the rename would keep that
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
    """Create ``log_dir`` if needed and check that it is a writable folder.

    Raises:
        LogDirError: ``log_dir`` is empty, a file, cannot be created, or is not writable.
    """
    if os.fspath(log_dir) == "":
        raise LogDirError(
            "log_dir '' is an empty path, which would put the sweep's files into the current folder. "
            "Pass None to keep everything in memory, or a folder name such as 'runs/sweep1'."
        )
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
    except UnicodeDecodeError as exc:
        raise LogDirError(f"{path} is not UTF-8 text (at byte {exc.start}); it is damaged.") from None
    if not isinstance(records, list) or not all(isinstance(r, dict) for r in records):
        raise LogDirError(f"{path} is not a JSON list of records, as runmanager writes.")
    columns: dict[str, None] = {}
    for record in records:
        union(record, columns)
    return pd.DataFrame(records, columns=list(columns))


def _read_csv(path: Path) -> Any:
    import pandas as pd

    try:
        return pd.read_csv(path)
    except UnicodeDecodeError as exc:
        raise LogDirError(f"{path} is not UTF-8 text (at byte {exc.start}); it is damaged.") from None


# The columns that tell a file of epoch rows from a summary, whatever its name.
_KIND_OF = {RESULTS_NAME: ("epoch", "one row per epoch"), SUMMARY_NAME: ("status", "one row per run")}


def _check_kind(frame: Any, path: Path, name: str) -> Any:
    """``frame`` if it is what ``load_<name>`` returns; an error when it is the other kind of file."""
    other = SUMMARY_NAME if name == RESULTS_NAME else RESULTS_NAME
    mine, theirs = _KIND_OF[name][0], _KIND_OF[other][0]
    if theirs in frame.columns and mine not in frame.columns:
        raise LogDirError(
            f"{str(path)!r} holds {other} ({_KIND_OF[other][1]}), not {name} ({_KIND_OF[name][1]}); "
            f"read it with load_{other}(), or pass its log_dir (or its {name}.csv) to load_{name}()."
        )
    return frame


def _load(path: str | os.PathLike[str], name: str, from_results: str) -> Any:
    if not isinstance(path, (str, os.PathLike)):
        raise InvalidArgumentTypeError(
            f"load_{name} needs a path to a log_dir, a .csv or a .json file, got {path!r}."
        )
    path = Path(path)
    if path.is_dir():
        if (path / JOURNAL_NAME).exists():
            return getattr(read_log_dir(path), from_results)()
        for suffix in (".csv", ".json"):
            candidate = path / f"{name}{suffix}"
            if candidate.exists():
                return _load(candidate, name, from_results)
        raise LogDirError(f"{str(path)!r} holds no runmanager results (no {JOURNAL_NAME} or {name}.csv).")
    if not path.exists():
        raise LogDirError(f"{str(path)!r} does not exist; give a log_dir, a .csv or a .json file.")
    if path.suffix == ".csv":
        return _check_kind(_read_csv(path), path, name)
    if path.suffix == ".json":
        return _check_kind(_read_json_frame(path), path, name)
    raise LogDirError(f"Cannot read {str(path)!r}: give a log_dir, a .csv or a .json file.")


def load_results(path: str | os.PathLike[str]) -> Any:
    """Read epoch rows back into a DataFrame from a log_dir, a ``.csv`` or a ``.json``.

    A log_dir is read from its journal, so it holds every finished epoch, even
    of a run that was still going when the process died. Nothing is unpickled
    or evaluated.

    Raises:
        LogDirError: the path holds no results, is damaged, or is a summary file.

    Examples:
        df = load_results("runs/digits")
        df.groupby("run")["val_accuracy"].max()
    """
    return _load(path, RESULTS_NAME, "frame")


def load_summary(path: str | os.PathLike[str]) -> Any:
    """Read the per-run summary back from a log_dir, a ``summary.csv`` or a ``summary.json``.

    A run the journal leaves ``running`` shows as ``interrupted`` when no process is
    writing the log_dir any more (see :func:`read_log_dir`).

    Raises:
        LogDirError: the path holds no results, is damaged, or is a results file (one row
            per epoch: pass its log_dir instead).

    Examples:
        load_summary("runs/digits")[["run", "status", "epochs"]]
    """
    return _load(path, SUMMARY_NAME, "summary")


# --------------------------------------------------------------------------------------
# Opening a log_dir for writing
# --------------------------------------------------------------------------------------
def outputs_in(log_dir: Path) -> list[str]:
    """The files a sweep writes that ``log_dir`` holds, by name, and its non-empty output folders,
    as ``name/`` (an empty folder holds nothing to lose).

    Examples:
        >>> import tempfile
        >>> with tempfile.TemporaryDirectory() as d:
        ...     _ = (Path(d) / "summary.json").write_text("[]")
        ...     _ = (Path(d) / "notes.txt").write_text("mine")
        ...     outputs_in(Path(d))
        ['summary.json']
    """
    found = [name for name in EXPORT_NAMES if (log_dir / name).exists()]
    found += [f"{name}/" for name in OUTPUT_DIRS if (log_dir / name).is_dir() and any((log_dir / name).iterdir())]
    return found


def remove_outputs(log_dir: Path) -> None:
    """Delete every file and folder a sweep wrote in ``log_dir`` (``overwrite=True``); other files stay."""
    import shutil

    for name in EXPORT_NAMES:
        (log_dir / name).unlink(missing_ok=True)
    for name in OUTPUT_DIRS:
        shutil.rmtree(log_dir / name, ignore_errors=True)  # a symlink is left alone: it is the user's


def load_for_writing(
    log_dir: Path, *, overwrite: bool, resume: bool, fields: tuple[str, ...] | None, allow_grid_change: bool
) -> Results:
    """The runs already in ``log_dir``, checked against what the writer wants to do with them.

    Call it holding the log_dir's writer lock. With ``overwrite`` every file and folder a sweep
    writes is removed (nothing else) and nothing is returned. Otherwise:

    - a folder without a journal that holds such files (the user's own ``results.csv``, an old
      ``report.html``, ...) is refused: they did not come from runmanager;
    - earlier runs are an error unless ``resume``, and a resumed sweep over other parameter
      names is an error unless ``allow_grid_change``;
    - a run the journal leaves ``running`` was being written by a process that is gone (this one
      holds the lock now): it is recorded ``interrupted`` in the journal.

    Raises:
        LogDirError: the log_dir holds files or an earlier sweep that may not be touched this way.
    """
    from runmanager.results import params_changed

    if overwrite:
        remove_outputs(log_dir)
        return Results()
    journal = log_dir / JOURNAL_NAME
    if not journal.exists():
        found = outputs_in(log_dir)
        if found:
            them = "it" if len(found) == 1 else "them"
            raise LogDirError(
                f"log_dir {str(log_dir)!r} already holds {', '.join(found)}, which runmanager did not write "
                f"there (it has no {JOURNAL_NAME}); a sweep would replace {them}. Pass overwrite=True to "
                f"RunManager() to replace {them}, or choose another log_dir."
            )
        return Results()
    loaded = results_from_journal(journal)
    if loaded.runs and not resume:
        raise LogDirError(
            f"log_dir {str(log_dir)!r} already holds {len(loaded.runs)} run(s) of an earlier sweep. "
            "Pass resume=True to sweep() to continue it, overwrite=True to RunManager() to "
            "replace it, or choose another log_dir."
        )
    changed = None if fields is None or allow_grid_change else params_changed(loaded, fields)
    if changed is not None:
        raise LogDirError(
            f"log_dir {str(log_dir)!r} holds a sweep over other parameters: added {changed[0]}, "
            f"removed {changed[1]}. Resume it with the same parameter names, pass "
            "allow_grid_change=True, or choose another log_dir."
        )
    abandoned = end_abandoned_runs(
        loaded, "the RunManager writing this run stopped without finishing it (its process ended, or "
                "another RunManager took the log_dir over)")
    if abandoned:
        # In the journal, so that readers see them ended while this writer holds the lock.
        writer = Journal(journal)
        try:
            for event in abandoned:
                writer.write(to_dict(event))
        except OSError as exc:
            raise write_failure(log_dir, exc) from exc
        finally:
            writer.close()
    return loaded


def write_failure(log_dir: Path, error: OSError) -> LogDirWriteError:
    """The error that stops a sweep whose log_dir cannot be written: the file, the OS error,
    what is safely on disk, and how to go on.

    Examples:
        raise write_failure(log_dir, exc) from exc
    """
    where = error.filename or log_dir
    what = f"{error.strerror or error}" + (f" (errno {error.errno})" if error.errno else "")
    try:
        kept = results_from_journal(log_dir / JOURNAL_NAME)
        ended = sum(1 for record in kept.runs.values() if record.status != "running")
        safe = (f"{kept.rows_count} epochs of {len(kept.runs)} runs ({ended} of them ended) are safely in "
                f"{log_dir / JOURNAL_NAME}")
    except (OSError, JournalError) as exc:
        safe = f"the journal cannot be read either ({exc})"
    return LogDirWriteError(
        f"Writing {os.fspath(where)} failed: {what}. Nothing more is written; {safe}. Fix the problem "
        "(free some space, raise the quota, check the disk or the folder), then run the same sweep "
        "with resume=True to continue where it stopped."
    )

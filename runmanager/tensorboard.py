"""TensorBoard for sweeps: scalars per run and the HParams dashboard, written from events alone.

:class:`TensorBoardWriter` turns the events of a :class:`~runmanager.RunManager`
(``run_start``, ``epoch``, ``run_end``) into TensorBoard event files; it never
sees a model, so it works the same whichever process trained the run.
:func:`serve` starts TensorBoard on 127.0.0.1 for a ``log_dir``.

Layout under ``log_dir/tensorboard``::

    hparams-config-002/             the sweep's hparams_config (only the newest is kept)
    run-001-lr=0.01,units=32-1a2b/  one folder per run: its hparams and its end status
        train/                      loss, accuracy, ... with step = epoch (1-based)
        validation/                 val_loss, val_accuracy, ... as loss, accuracy

Validation metrics go to ``validation`` under their name without ``val_``, as
TensorBoard's own Keras callback writes them, so the Scalars dashboard draws
training and validation curves in one chart; the HParams dashboard shows them
as ``val_loss`` and ``val_accuracy`` columns through the metrics' display names.

Only the ``tensorboard`` package is used, never TensorFlow: TensorBoard's own
``EventFileWriter`` and its ``hparams.summary`` module import TensorFlow when it
is installed (three seconds and a few hundred MB), so the event files are
written here with its record writer and protos.
"""

from __future__ import annotations

import functools
import itertools
import json
import math
import os
import shutil
import socket
import struct
import time
from pathlib import Path
from types import SimpleNamespace
from typing import IO, Any

from runmanager.errors import InvalidArgumentError, LogDirError, RunManagerError, missing_extra
from runmanager.events import CheckpointSaved, EpochEnded, RunEnded, RunStarted, Status, SweepStarted
from runmanager.naming import jsonable, safe_name
from runmanager.sinks.base import Sink
from runmanager.storage import TENSORBOARD_DIR

__all__ = ["TensorBoardWriter", "serve"]

#: Folder name prefix of the hparams_config; a number follows, growing with every update.
CONFIG_PREFIX = "hparams-config-"
TRAIN_GROUP = "train"
VALIDATION_GROUP = "validation"
_VALIDATION_PREFIX = "val_"
#: runmanager status -> TensorBoard ``api_pb2.Status`` name. TensorBoard has no
#: "aborted" status: an interrupted run is neither a success nor a failure of its params.
STATUSES = {
    Status.COMPLETED: "STATUS_SUCCESS",
    Status.FAILED: "STATUS_FAILURE",
    Status.DIVERGED: "STATUS_FAILURE",
    Status.INTERRUPTED: "STATUS_UNKNOWN",
    Status.PRUNED: "STATUS_UNKNOWN",  # stopped early: its params were not trained to the end
}
#: Above this many distinct values a parameter's domain is an interval or left out.
MAX_DISCRETE = 1000
_FILE_NUMBERS = itertools.count()


@functools.cache
def _tb() -> SimpleNamespace:
    """The parts of the ``tensorboard`` package used here, imported once.

    None of these import TensorFlow (``hparams.api`` and ``hparams.summary`` would).
    """
    try:
        from tensorboard.compat.proto import event_pb2, summary_pb2
        from tensorboard.plugins.hparams import api_pb2, metadata, plugin_data_pb2, summary_v2
        from tensorboard.summary.writer.record_writer import RecordWriter
    except ImportError:
        raise missing_extra("tensorboard", "tensorboard", "tensorboard=True") from None
    return SimpleNamespace(
        event_pb2=event_pb2,
        summary_pb2=summary_pb2,
        api_pb2=api_pb2,
        metadata=metadata,
        plugin_data_pb2=plugin_data_pb2,
        hp=summary_v2,
        RecordWriter=RecordWriter,
    )


def metric_location(name: str) -> tuple[str, str]:
    """Where a metric's scalars go: ``(group folder, tag)``, as Keras's TensorBoard callback does.

    Examples:
        >>> metric_location("val_accuracy"), metric_location("loss")
        (('validation', 'accuracy'), ('train', 'loss'))
    """
    if name.startswith(_VALIDATION_PREFIX) and len(name) > len(_VALIDATION_PREFIX):
        return VALIDATION_GROUP, name[len(_VALIDATION_PREFIX):]
    return TRAIN_GROUP, name


def _as_text(value: Any) -> str:
    return value if isinstance(value, str) else json.dumps(value, ensure_ascii=False)


def _kind(values: list[Any]) -> str:
    """``bool``, ``number`` or ``string``: the one TensorBoard type that fits every value."""
    if values and all(isinstance(v, bool) for v in values):
        return "bool"
    if values and all(isinstance(v, (int, float)) and not isinstance(v, bool) for v in values):
        return "number"
    return "string"


def _domain(values: list[Any]) -> Any:
    """The HParam domain of a parameter's values: ``Discrete``, or for very many values
    an interval (numbers) or none (strings), so the config stays small."""
    hp = _tb().hp
    kind = _kind(values)
    if kind == "number":
        values = [v for v in values if math.isfinite(v)]
        if any(isinstance(v, float) for v in values):
            values = [float(v) for v in values]
        if len(values) > MAX_DISCRETE:
            return hp.RealInterval(float(min(values)), float(max(values)))
    elif kind == "string":
        values = [_as_text(v) for v in values]
    if not values or len(values) > MAX_DISCRETE:
        return None
    return hp.Discrete(values)


class _EventFile:
    """One event file, written synchronously and flushed on demand.

    TensorBoard's ``EventFileWriter`` would import TensorFlow and start a thread
    per file; a run's few records a second need neither.
    """

    def __init__(self, folder: Path) -> None:
        tb = _tb()
        folder.mkdir(parents=True, exist_ok=True)
        # TensorBoard only reads files with "tfevents" in their name, in name order.
        name = (f"events.out.tfevents.{int(time.time()):010d}.{socket.gethostname()}."
                f"{os.getpid()}.{next(_FILE_NUMBERS)}.runmanager")
        self._file: IO[bytes] = open(folder / name, "ab")  # noqa: SIM115 - closed in close()
        self._records = tb.RecordWriter(self._file)
        self._event = tb.event_pb2.Event
        self._records.write(self._event(wall_time=time.time(), file_version="brain.Event:2").SerializeToString())

    def add(self, summary: Any, step: int = 0, wall_time: float | None = None) -> None:
        event = self._event(wall_time=time.time() if wall_time is None else wall_time, step=step,
                            summary=summary)
        self._records.write(event.SerializeToString())

    def flush(self) -> None:
        self._file.flush()

    def close(self) -> None:
        if not self._file.closed:
            self._file.close()


class _RunFiles:
    """The open event files of one run: its session folder and one folder per metric group."""

    def __init__(self, folder: Path) -> None:
        self.folder = folder
        self.session = _EventFile(folder)
        self.groups: dict[str, _EventFile] = {}

    def group(self, name: str) -> _EventFile:
        if name not in self.groups:
            self.groups[name] = _EventFile(self.folder / name)
        return self.groups[name]

    def close(self) -> None:
        for events in (self.session, *self.groups.values()):
            events.close()


def _plugin_summary(tag: str, data: Any) -> Any:
    """A summary holding HParams plugin data, as ``hparams.summary`` writes it without TensorFlow."""
    tb = _tb()
    summary = tb.summary_pb2.Summary()
    summary.value.add(tag=tag, metadata=tb.metadata.create_summary_metadata(data), tensor=tb.metadata.NULL_TENSOR)
    return summary


def _read_summaries(path: Path) -> list[Any]:
    """The summaries of one of our own event files (records of length, crc, data, crc)."""
    tb = _tb()
    data = path.read_bytes()
    summaries, position = [], 0
    while position + 12 <= len(data):
        (length,) = struct.unpack_from("<Q", data, position)
        start, end = position + 12, position + 12 + length
        if end + 4 > len(data):
            break  # a record cut short by a dying process
        event = tb.event_pb2.Event.FromString(data[start:end])
        if event.HasField("summary"):
            summaries.append(event.summary)
        position = end + 4
    return summaries


class TensorBoardWriter(Sink):
    """Writes a sweep's events as TensorBoard scalars and HParams dashboard data.

    A sink (:mod:`runmanager.sinks`): a :class:`~runmanager.RunManager` made with
    ``tensorboard=True`` holds one and sends it every event; it needs nothing
    else, so the events may come from runs trained in other processes.

    - ``hparams-config-N/``: the ``hparams_config``, one ``HParam`` per
      parameter (the user's own ``hp.HParam`` when the grid was built from
      them, else a ``Discrete`` domain of the values) and one ``Metric`` per
      metric logged so far. It is rewritten, in a new folder, whenever a
      parameter value or a metric appears that it lacks: TensorBoard keeps the
      first metadata it read for a run, so an update in place would never show.
    - one folder per run, named by :func:`runmanager.naming.safe_name`: the
      run's ``hparams`` when it starts, every epoch's metrics as scalars
      (flushed at each epoch end, so a live TensorBoard follows), and its status
      when it ends (completed: success; failed or diverged: failure;
      interrupted: unknown). A run that starts again (resume) starts from an
      empty folder, for the same reason.

    Args:
        folder: where to write, usually ``log_dir/tensorboard``; created when
            the first event comes.

    Raises:
        MissingExtraError: the ``tensorboard`` package is not installed.

    Examples:
        >>> import tempfile
        >>> from runmanager import RunManager
        >>> with tempfile.TemporaryDirectory() as log_dir:
        ...     m = RunManager(log_dir, tensorboard=True, verbose=0)
        ...     m.begin_run({"lr": 0.1}); m.begin_epoch(); m.track_loss(0.5, batch_size=32)
        ...     m.end_epoch(); m.end_run(); m.close()
        ...     sorted(p.name for p in (m.log_dir / "tensorboard").iterdir())
        ['hparams-config-002', 'run-001-lr=0.1-...']
    """

    def __init__(self, folder: str | os.PathLike[str]) -> None:
        _tb()  # fail now, not at the first epoch, if tensorboard is missing
        self.folder = Path(folder)
        self._version = 0  # never reused, so a live TensorBoard cannot mistake a new config for an old one
        self._runs: dict[int, _RunFiles] = {}
        self.reset()

    # -- what the config is made of ---------------------------------------------------
    def reset(self) -> None:
        """Forget everything written: the folder was just deleted (``overwrite=True``)."""
        for files in self._runs.values():
            files.close()
        self._runs = {}
        self._params: dict[str, None] = {}
        self._user_hparams: dict[str, Any] = {}
        self._values: dict[str, dict[str, Any]] = {}
        self._metrics: dict[str, None] = {}
        self._config_dirty = False
        self._looked_for_old_config = False

    def set_grid(self, grid: Any) -> None:
        """Take the parameters and their values from a sweep's grid or search (its ``fields``,
        ``values_of``, ``hparams`` and, for a search over a space, ``domain``), and write the
        ``hparams_config``.

        Examples:
            writer.set_grid(RunBuilder({"lr": [0.1, 0.01]}))
        """
        user_hparams = dict(getattr(grid, "hparams", {}) or {})
        domain_of = getattr(grid, "domain", lambda name: None)
        for name in grid.fields:
            self._add_param(name)
            if name in user_hparams:
                self._user_hparams[name] = user_hparams[name]
            elif (hparam := self._hparam_of_domain(name, domain_of(name))) is not None:
                self._user_hparams[name] = hparam
            for value in grid.values_of(name):
                self._add_value(name, jsonable(value))  # for a user HParam too: it tells what `differs`
        self._config_dirty = True  # once per sweep, even when nothing changed
        self._write_config()

    @staticmethod
    def _hparam_of_domain(name: str, domain: tuple[str, Any] | None) -> Any:
        """An ``HParam`` for a search space's dimension: an interval, or the list's values."""
        hp = _tb().hp
        if domain is None:
            return None
        kind, spec = domain
        if kind == "interval":
            low, high, integer = spec
            return hp.HParam(name, hp.IntInterval(int(low), int(high)) if integer
                             else hp.RealInterval(float(low), float(high)))
        try:
            return hp.HParam(name, hp.Discrete(list(spec)))
        except (TypeError, ValueError):  # values of mixed or unsupported types: described by what ran
            return None

    def _add_param(self, name: str) -> None:
        if name not in self._params:
            self._params[name] = None
            self._values[name] = {}
            self._config_dirty = True

    def _add_value(self, name: str, value: Any) -> None:
        if value is None:
            return  # a field that this run's part of a union grid lacks
        values = self._values[name]
        key = f"{type(value).__name__}:{_as_text(value)}"
        if key not in values:
            values[key] = value
            # A domain given by the user or the search does not change; only `differs` might.
            self._config_dirty = self._config_dirty or name not in self._user_hparams or len(values) == 2

    def _hparam_value(self, name: str, value: Any) -> Any:
        """A param value as TensorBoard takes it: bool, number or string, like its domain."""
        if name in self._user_hparams:
            return value
        if _kind(list(self._values[name].values())) == "string" or isinstance(value, (list, dict)):
            return _as_text(value)
        return value

    def _hparam_infos(self) -> list[Any]:
        tb = _tb()
        infos = []
        for name in self._params:
            values = list(self._values[name].values())
            hparam = self._user_hparams.get(name)
            if hparam is None:
                hparam = tb.hp.HParam(name, _domain(values))
            info = tb.api_pb2.HParamInfo(name=hparam.name, display_name=hparam.display_name,
                                         description=hparam.description, differs=len(values) > 1)
            if hparam.domain is not None:
                hparam.domain.update_hparam_info(info)
            elif values and _kind(values) == "string":
                info.type = tb.api_pb2.DATA_TYPE_STRING
            infos.append(info)
        return infos

    def _metrics_of_config(self) -> list[Any]:
        hp = _tb().hp
        metrics = []
        for name in self._metrics:
            group, tag = metric_location(name)
            dataset = hp.Metric.VALIDATION if group == VALIDATION_GROUP else hp.Metric.TRAINING
            metrics.append(hp.Metric(tag, group=group, display_name=name, dataset_type=dataset))
        return metrics

    def _carry_over_old_metrics(self) -> None:
        """Keep the metrics of an earlier config (a resumed sweep), which no event repeats."""
        tb = _tb()
        for old in sorted(self.folder.glob(f"{CONFIG_PREFIX}*/events.out.tfevents.*")):
            try:
                for summary in _read_summaries(old):
                    for value in summary.value:
                        if value.tag == tb.metadata.EXPERIMENT_TAG:
                            experiment = tb.metadata.parse_experiment_plugin_data(
                                value.metadata.plugin_data.content)
                            for info in experiment.metric_infos:
                                self._metrics.setdefault(info.display_name or info.name.tag, None)
            except Exception:  # noqa: BLE001 - an unreadable old config only loses its metric list
                continue

    def _write_config(self) -> None:
        if not self._config_dirty:
            return
        if not self._looked_for_old_config:
            self._looked_for_old_config = True
            self._carry_over_old_metrics()
        tb = _tb()
        # As hp.hparams_config_pb builds it, plus `differs`, which the dashboard uses to
        # pick the columns it shows first.
        experiment = tb.api_pb2.Experiment(
            hparam_infos=self._hparam_infos(),
            metric_infos=[metric.as_proto() for metric in self._metrics_of_config()],
            time_created_secs=time.time(),
        )
        summary = _plugin_summary(tb.metadata.EXPERIMENT_TAG,
                                  tb.plugin_data_pb2.HParamsPluginData(experiment=experiment))
        # Remove every older config first: TensorBoard reads whichever it finds first.
        old = [p for p in self.folder.glob(f"{CONFIG_PREFIX}*") if p.is_dir()]
        for path in old:
            number = path.name[len(CONFIG_PREFIX):]
            if number.isdigit():
                self._version = max(self._version, int(number))
            shutil.rmtree(path, ignore_errors=True)
        self._version += 1
        events = _EventFile(self.folder / f"{CONFIG_PREFIX}{self._version:03d}")
        try:
            events.add(summary)
        finally:
            events.close()
        self._config_dirty = False

    # -- the events ------------------------------------------------------------------------
    def on_sweep_start(self, event: SweepStarted, search: Any) -> None:
        self.set_grid(search)

    def on_run_start(self, event: RunStarted, record: Any) -> None:
        self._start_run(record, event.time)
        # A run resumed from a checkpoint keeps its epochs up to it (the fold dropped the later
        # ones of the attempt that died): its folder starts clean and gets them again.
        for epoch in record.epochs:
            self._write_epoch(record, epoch)

    def on_checkpoint(self, event: Any, record: Any) -> None:
        """Say in the run's TensorBoard text which model it keeps (the Text tab)."""
        if not isinstance(event, CheckpointSaved) or (event.kind == "last" and "best" in record.checkpoints):
            return  # a deletion, or the last model of a run that keeps its best
        tb = _tb()
        from tensorboard.compat.proto import tensor_pb2, tensor_shape_pb2, types_pb2

        text = f"kept model: {event.file} (epoch {event.epoch}, {event.kind})"
        metadata = tb.summary_pb2.SummaryMetadata(
            plugin_data=tb.summary_pb2.SummaryMetadata.PluginData(plugin_name="text"))
        tensor = tensor_pb2.TensorProto(dtype=types_pb2.DT_STRING, string_val=[text.encode()],
                                        tensor_shape=tensor_shape_pb2.TensorShapeProto())
        files = self._files(record)
        files.session.add(tb.summary_pb2.Summary(value=[tb.summary_pb2.Summary.Value(
            tag="checkpoint", metadata=metadata, tensor=tensor)]), step=event.epoch)
        files.session.flush()

    def on_epoch_end(self, event: EpochEnded, record: Any) -> None:
        self._write_epoch(record, event)

    def on_run_end(self, event: RunEnded, record: Any) -> None:
        self._end_run(record, event.status)

    def _run_folder(self, record: Any) -> Path:
        folder = self.folder / safe_name(record.number, record.params)
        if folder.parent != self.folder or folder.name in ("", ".", ".."):  # safe_name's promise, kept
            raise RunManagerError(f"Refusing to write TensorBoard files outside {self.folder}: {folder}.")
        return folder

    def _start_run(self, record: Any, start_time: float | None, *, fresh: bool = True) -> _RunFiles:
        tb = _tb()
        for name, value in record.params.items():
            self._add_param(name)
            self._add_value(name, value)
        self._write_config()
        old = self._runs.pop(record.number, None)
        if old is not None:
            old.close()
        folder = self._run_folder(record)
        if fresh:
            # A rerun starts clean: TensorBoard would keep the first start and end it read.
            shutil.rmtree(folder, ignore_errors=True)
        files = _RunFiles(folder)
        self._runs[record.number] = files
        hparams = {name: self._hparam_value(name, value)
                   for name, value in record.params.items() if value is not None}
        files.session.add(tb.hp.hparams_pb(hparams, trial_id=folder.name,
                                           start_time_secs=start_time or time.time()))
        files.session.flush()
        return files

    def _files(self, record: Any) -> _RunFiles:
        files = self._runs.get(record.number)
        # An event of a run whose start this writer did not see (it was reset or closed
        # mid-run): carry on in its folder, keeping what is there.
        return files if files is not None else self._start_run(record, None, fresh=False)

    def _write_epoch(self, record: Any, event: EpochEnded) -> None:
        tb = _tb()
        files = self._files(record)
        by_group: dict[str, list[Any]] = {}
        for name, value in event.metrics.items():
            if name not in self._metrics:
                self._metrics[name] = None
                self._config_dirty = True
            group, tag = metric_location(name)
            by_group.setdefault(group, []).append(tb.summary_pb2.Summary.Value(tag=tag, simple_value=value))
        self._write_config()
        now = time.time()
        for group, values in by_group.items():
            events = files.group(group)
            events.add(tb.summary_pb2.Summary(value=values), step=event.epoch, wall_time=now)
            events.flush()

    def _end_run(self, record: Any, status: Status) -> None:
        tb = _tb()
        files = self._files(record)
        end = tb.plugin_data_pb2.SessionEndInfo(
            status=tb.api_pb2.Status.Value(STATUSES.get(status, "STATUS_UNKNOWN")),
            end_time_secs=time.time(),
        )
        files.session.add(_plugin_summary(tb.metadata.SESSION_END_INFO_TAG,
                                          tb.plugin_data_pb2.HParamsPluginData(session_end_info=end)))
        files.close()
        del self._runs[record.number]

    def close(self) -> None:
        """Close the files of runs still going; they stay readable, with no end status."""
        for files in self._runs.values():
            files.close()
        self._runs.clear()


def serve(log_dir: str | os.PathLike[str], port: int = 0) -> int:
    """Run TensorBoard on 127.0.0.1 for a sweep's ``log_dir`` until Ctrl-C; return 0.

    Serves ``log_dir/tensorboard``, or ``log_dir`` itself if it has no
    ``tensorboard`` folder. The command ``runmanager tensorboard LOG_DIR`` calls it.

    Args:
        log_dir: the sweep's folder.
        port: the port to listen on; 0 takes a free one.

    Returns:
        0, once interrupted with Ctrl-C.

    Raises:
        LogDirError: ``log_dir`` is not an existing folder, or holds no TensorBoard event files.
        MissingExtraError: the ``tensorboard`` package is not installed.
        InvalidArgumentError: the port is out of range or TensorBoard cannot listen on it.

    Examples:
        serve("runs/digits")  # prints "TensorBoard for ... at http://127.0.0.1:PORT/"; 0 after Ctrl-C
    """
    path = Path(log_dir)
    if not path.is_dir():
        raise LogDirError(
            f"log_dir {str(path)!r} is not an existing folder; give the log_dir of a sweep "
            "run with tensorboard=True."
        )
    if isinstance(port, bool) or not isinstance(port, int) or not 0 <= port <= 65535:
        raise InvalidArgumentError(f"port must be an int from 0 to 65535 (0: a free port), got {port!r}.")
    board_dir = path / TENSORBOARD_DIR if (path / TENSORBOARD_DIR).is_dir() else path
    # TensorBoard would serve an empty page without a word; a sweep writes its first event file
    # (the hparams config) as it starts, so a folder without one has nothing to show.
    if next((True for p in board_dir.rglob("*tfevents*") if p.is_file()), False) is False:
        raise LogDirError(
            f"log_dir {str(path)!r} holds no TensorBoard event files (events.out.tfevents.*); run the sweep "
            "with TensorBoard on, RunManager(log_dir, tensorboard=True) or m.sweep(..., tensorboard=True), "
            "and serve its log_dir."
        )
    try:
        from tensorboard import program
    except ImportError:
        raise missing_extra("tensorboard", "tensorboard", "runmanager tensorboard") from None
    board = program.TensorBoard()
    board.configure(logdir=str(board_dir), host="127.0.0.1", port=port)
    try:
        url = board.launch()
    except program.TensorBoardServerException as exc:
        raise InvalidArgumentError(f"TensorBoard cannot listen on 127.0.0.1:{port}: {exc.msg}") from None
    print(f"TensorBoard for {board_dir} at {url} (press Ctrl-C to quit)", flush=True)
    try:
        while True:
            time.sleep(3600)
    except KeyboardInterrupt:
        return 0

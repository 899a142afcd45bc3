"""The MLflow sink: a sweep as one MLflow run with a nested run per runmanager run, and
:func:`upload`, the same afterwards from a log_dir's journal (``runmanager mlflow LOG_DIR``).

    m = RunManager("runs/cnn", sinks=[MLflowSink("http://127.0.0.1:5000", experiment="cnn")])

What MLflow gets: a run named after the log_dir's folder (tagged ``runmanager.sweep_id``), and
under it one run per runmanager run (``runmanager.run``, ``runmanager.repeat``,
``runmanager.backend``) with its params, every metric of every epoch at ``step`` = the epoch
(1-based, as in the results; one ``log_batch`` per epoch), and its status when it ends
(completed -> FINISHED, failed/diverged -> FAILED, interrupted/pruned -> KILLED, and the
``runmanager.status`` tag); at the end of the sweep the exports, ``report.html`` when it exists,
and the best run's kept model, as artifacts of the sweep's run.

How it stays out of the sweep's way:

- The MLflow calls are made by one thread of the sink's own, in the order of the events: the
  sweep never waits for MLflow (a call costs 5-60 ms), except at its end, for what is queued.
- Every call is bounded (no retries, a 5 s timeout; a dead server otherwise makes a call retry
  for minutes). The first call that fails stops the sink for the rest of the sweep: one
  ``RuntimeWarning`` says so, the journal records it, and :func:`upload` sends the rest later.

How a resumed sweep goes on in the same MLflow runs: the runs' ids are kept in the journal
(:class:`~runmanager.events.SinkState` events of the sink ``"mlflow"``), and every run also
carries the log_dir's sweep id (from the log_dir's name and the time of its first event), by
which :func:`upload` and a resumed sink find the runs the journal does not name. How far each
run got is in MLflow itself: its ``runmanager.epochs`` tag, sent in the same batch as an epoch's
metrics, is the last epoch MLflow holds, so only later epochs are sent. A run resumed from a
checkpoint after epoch ``k`` logs its later epochs again with the same steps: MLflow cannot
delete points, so it keeps both attempts, and its latest value of each step is the journal's.
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import os
import queue
import threading
import time
import uuid
import warnings
from collections import deque
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any, NamedTuple

from runmanager.errors import (
    InvalidArgumentError,
    InvalidArgumentTypeError,
    LogDirError,
    MLflowError,
    missing_extra,
)
from runmanager.events import EpochEnded, RunEnded, RunStarted, Status, SweepEnded, SweepStarted
from runmanager.sinks.base import Sink, SinkStore

if TYPE_CHECKING:
    from runmanager.results import Results, RunRecord

__all__ = ["MLflowSink", "upload"]

#: the sink's name in the journal's ``sink_state`` events
SINK = "mlflow"
#: MLflow's run status for each runmanager status
RUN_STATUS = {Status.COMPLETED: "FINISHED", Status.FAILED: "FAILED", Status.DIVERGED: "FAILED",
              Status.INTERRUPTED: "KILLED", Status.PRUNED: "KILLED", Status.RUNNING: "RUNNING"}
#: MLflow's status for the sweep's run, by how the sweep ended ("running": its writer died)
SWEEP_STATUS = {"finished": "FINISHED", "timeout": "FINISHED", "interrupted": "KILLED", "stopped": "FAILED",
                "running": "KILLED"}
EPOCHS_TAG = "runmanager.epochs"
# No retries and a 5 s timeout (a dead server otherwise holds a call for minutes); and no "View run
# at" lines printed (and fetched: a get_run call each) by set_terminated into the sweep's output.
_BOUNDS = {"MLFLOW_HTTP_REQUEST_MAX_RETRIES": "0", "MLFLOW_HTTP_REQUEST_TIMEOUT": "5",
           "MLFLOW_SUPPRESS_PRINTING_URL_TO_STDOUT": "true"}
# MLflow's limits on one log_batch and on a value (mlflow/utils/validation.py).
_METRICS_PER_BATCH, _PARAMS_PER_BATCH, _PARAM_LENGTH, _TAG_LENGTH = 1000, 100, 6000, 8000


class _Bounds:
    """The settings of :data:`_BOUNDS` that the user has not set, while a sweep with an MLflowSink
    goes (or :func:`upload` runs); what was there before comes back after it.

    MLflow reads them from the environment at each request and has no per-client option. They
    are set and removed in the thread that records the events, at a sweep's start and end, not
    around each call: changing the environment while other threads (TensorFlow's) read it is
    best done rarely.
    """

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._users = 0
        self._added: list[str] = []

    def __enter__(self) -> None:
        with self._lock:
            if self._users == 0:
                self._added = [name for name in _BOUNDS if name not in os.environ]
                for name in self._added:
                    os.environ[name] = _BOUNDS[name]
            self._users += 1

    def __exit__(self, *exc: Any) -> None:
        with self._lock:
            self._users -= 1
            if self._users == 0:
                for name in self._added:
                    os.environ.pop(name, None)
                self._added = []


_bounded = _Bounds()


def _client(tracking_uri: str | None) -> Any:
    """An ``MlflowClient`` for ``tracking_uri`` (None: MLflow's own default), checked without a network call.

    Raises:
        MissingExtraError: MLflow is not installed.
        InvalidArgumentTypeError: ``tracking_uri`` is not a string.
        InvalidArgumentError: a scheme MLflow does not know, or a server address without a host.
    """
    if tracking_uri is not None and not isinstance(tracking_uri, str):
        raise InvalidArgumentTypeError(f"tracking_uri must be a string such as 'http://127.0.0.1:5000' or None, "
                                       f"got {tracking_uri!r}.")
    try:
        from mlflow import MlflowClient
        from mlflow.tracking.registry import UnsupportedModelRegistryStoreURIException
    except ImportError:
        raise missing_extra("mlflow-skinny", "mlflow", "MLflowSink") from None
    example = "a tracking server such as 'http://127.0.0.1:5000' or a database such as 'sqlite:///mlflow.db'"
    if tracking_uri is not None:
        from urllib.parse import urlsplit

        parts = urlsplit(tracking_uri)
        if parts.scheme in ("http", "https") and not parts.hostname:
            raise InvalidArgumentError(f"tracking_uri {tracking_uri!r} names no host; give {example}.")
    try:
        return MlflowClient(tracking_uri)
    except UnsupportedModelRegistryStoreURIException:
        raise InvalidArgumentError(
            f"tracking_uri {tracking_uri!r} has a scheme MLflow does not know here; give {example} (a database "
            "needs the full mlflow package, not only mlflow-skinny)."
        ) from None
    except Exception as exc:  # noqa: BLE001 - MLflow raises many kinds here; one clear error is wanted
        raise InvalidArgumentError(f"MLflow cannot use tracking_uri {tracking_uri!r}: {_short(exc)} Give {example}.") \
            from None


def _short(exc: BaseException, limit: int = 300) -> str:
    text = " ".join(str(exc).split()) or type(exc).__name__
    return text if len(text) <= limit else text[: limit - 3] + "..."


def sweep_id(log_dir: Path | None, results: Results | None) -> str:
    """What identifies a log_dir's sweep in MLflow: a hash of the folder's name and the time of the
    journal's first event (the same whoever reads the journal, also after the folder was copied
    elsewhere; a new one after ``overwrite=True``); random without a log_dir.

    Examples:
        >>> from runmanager.results import fold
        >>> from runmanager.events import RunStarted
        >>> results = fold([RunStarted(1, "ab", {}, time=1700000000.25)])
        >>> sweep_id(Path("runs/cnn"), results) == sweep_id(Path("/elsewhere/cnn"), results)
        True
    """
    if log_dir is None or results is None or results.began is None:
        return uuid.uuid4().hex[:16]
    return hashlib.sha256(f"{log_dir.resolve().name}\n{results.began!r}".encode()).hexdigest()[:16]


def _param_text(value: Any) -> str:
    text = value if isinstance(value, str) else json.dumps(value) if isinstance(value, (list, dict)) else str(value)
    return text if len(text) <= _PARAM_LENGTH else text[: _PARAM_LENGTH - 3] + "..."


def _tag_text(text: str) -> str:
    return text if len(text) <= _TAG_LENGTH else text[: _TAG_LENGTH - 3] + "..."


def epoch_metrics(event: EpochEnded) -> dict[str, float]:
    """What MLflow gets of an epoch: every metric, the extra columns that are numbers, and ``epoch_duration``.

    Examples:
        >>> epoch_metrics(EpochEnded(1, "ab", 1, {"loss": 0.5}, {"lr": 0.1, "note": "x"}, 2.0, 2.0))
        {'loss': 0.5, 'lr': 0.1, 'epoch_duration': 2.0}
    """
    values = {name: float(value) for name, value in event.metrics.items()}
    for name, value in event.extras.items():
        if name not in values and isinstance(value, (int, float)) and not isinstance(value, bool):
            values[name] = float(value)
    values["epoch_duration"] = float(event.epoch_duration)
    return values


class _Run(NamedTuple):
    """What the sink's thread needs of a run, copied in the thread that records the events."""

    number: int
    params: Mapping[str, Any]
    backend: Mapping[str, str] | None
    status: str
    error: str | None
    epochs: tuple[tuple[int, dict[str, float]], ...]

    @classmethod
    def of(cls, record: RunRecord) -> _Run:
        return cls(record.number, dict(record.params), record.backend, record.status.value, record.error,
                   tuple((epoch.epoch, epoch_metrics(epoch)) for epoch in record.epochs))


def _run_tags(number: int, params: Mapping[str, Any], backend: Mapping[str, str] | None) -> dict[str, str]:
    from runmanager.repeats import REPEAT

    tags = {"runmanager.run": str(number), "runmanager.status": Status.RUNNING.value}
    if REPEAT in params:
        tags["runmanager.repeat"] = str(params[REPEAT])
    if backend:
        tags["runmanager.backend"] = str(backend.get("backend", ""))
        tags["runmanager.versions"] = ", ".join(f"{name} {version}" for name, version in backend.items()
                                                if name != "backend")
    return tags


@dataclass
class _Child:
    """A nested run in MLflow: its id, the last epoch it holds, its ``runmanager.status`` tag."""

    run_id: str
    epochs: int = 0
    status: str = Status.RUNNING.value
    mlflow_status: str = "RUNNING"
    has_params: bool = False


@dataclass
class _Mirror:
    """One log_dir's runs in MLflow: the sweep's run and a nested run per runmanager run.

    Every method is a few MLflow calls; one thread at a time uses a mirror. What the journal
    should keep (the runs' ids) is put in ``saves`` for the thread that records the events.
    """

    client: Any
    tracking_uri: str
    experiment: str | None
    sweep: str
    name: str
    log_dir: Path | None
    experiment_id: str = ""
    parent: str = ""
    children: dict[int, _Child] = field(default_factory=dict)
    saves: deque[tuple[str, Any]] = field(default_factory=deque)
    counts: dict[str, int] = field(default_factory=lambda: dict.fromkeys(("created", "epochs", "ended", "artifacts"), 0))

    def _experiment_id(self) -> str:
        name = self.experiment or os.environ.get("MLFLOW_EXPERIMENT_NAME")
        if name is None:
            return os.environ.get("MLFLOW_EXPERIMENT_ID") or "0"  # MLflow's "Default" experiment
        found = self.client.get_experiment_by_name(name)
        if found is None:
            try:
                return self.client.create_experiment(name)
            except Exception:
                found = self.client.get_experiment_by_name(name)  # another client made it meanwhile
                if found is None:
                    raise
        if found.lifecycle_stage == "deleted":
            raise MLflowError(f"the MLflow experiment {name!r} is deleted; restore it (mlflow experiments restore "
                              f"--experiment-id {found.experiment_id}) or log to another experiment.")
        return found.experiment_id

    def _search(self, filter_string: str) -> list[Any]:
        found: list[Any] = []
        token = None
        while True:
            page = self.client.search_runs([self.experiment_id], filter_string, max_results=1000, page_token=token)
            found += page
            token = page.token
            if not token:
                return found

    def open(self, state: Mapping[str, Any], *, look: bool, reopen: bool = True) -> None:
        """Find the sweep's run and its nested runs (when the journal names them, or ``look``), else
        create the sweep's run; ``reopen`` marks a found one running again (a resumed sweep)."""
        self.experiment_id = self._experiment_id()
        known = state.get("parent")
        if not (isinstance(known, dict) and known.get("tracking_uri") == self.tracking_uri
                and known.get("experiment_id") == self.experiment_id):
            known = None
        parent, runs = None, []
        if known is not None or look:
            runs = self._search(f"tags.`runmanager.sweep_id` = '{self.sweep}'")
            parents = {run.info.run_id: run for run in runs if "runmanager.run" not in run.data.tags}
            parent = parents.get(known["run_id"]) if known is not None else None
            parent = parent or next(iter(parents.values()), None)
        if parent is None:
            tags = {"runmanager.sweep_id": self.sweep}
            if self.log_dir is not None:
                tags["runmanager.log_dir"] = str(self.log_dir.resolve())
            self.parent = self.client.create_run(self.experiment_id, run_name=self.name, tags=tags).info.run_id
            self.counts["created"] += 1
        else:
            self.parent = parent.info.run_id
            if reopen and parent.info.status != "RUNNING":
                self.client.update_run(self.parent, status="RUNNING")
            for run in runs:
                tags = run.data.tags
                if tags.get("mlflow.parentRunId") != self.parent or "runmanager.run" not in tags:
                    continue
                number = int(tags["runmanager.run"])
                if number in self.children and state.get(f"run {number}") != run.info.run_id:
                    continue  # two runs for one number: the journal's is the one
                self.children[number] = _Child(run.info.run_id, int(tags.get(EPOCHS_TAG, 0)),
                                               tags.get("runmanager.status", Status.RUNNING.value),
                                               run.info.status, bool(run.data.params))
        if known is None or known["run_id"] != self.parent:
            self.saves.append(("parent", {"tracking_uri": self.tracking_uri, "experiment_id": self.experiment_id,
                                          "run_id": self.parent}))

    def _log_params(self, run_id: str, params: Mapping[str, Any]) -> None:
        from mlflow.entities import Param

        items = [Param(str(name), _param_text(value)) for name, value in params.items()]
        for start in range(0, len(items), _PARAMS_PER_BATCH):
            self.client.log_batch(run_id, params=items[start:start + _PARAMS_PER_BATCH])

    def _create(self, number: int, params: Mapping[str, Any], backend: Mapping[str, str] | None) -> _Child:
        tags = {"mlflow.parentRunId": self.parent, "runmanager.sweep_id": self.sweep,
                **_run_tags(number, params, backend)}
        run_id = self.client.create_run(self.experiment_id, run_name=f"run {number}", tags=tags).info.run_id
        self._log_params(run_id, params)
        child = self.children[number] = _Child(run_id, has_params=True)
        self.counts["created"] += 1
        self.saves.append((f"run {number}", run_id))
        return child

    def _send(self, child: _Child, epochs: Sequence[tuple[int, dict[str, float]]]) -> None:
        """Log ``epochs`` (epoch, metrics) in as few batches as MLflow takes, each with the last epoch it holds."""
        from mlflow.entities import Metric, RunTag

        now = int(time.time() * 1000)
        batch: list[Any] = []
        for position, (epoch, metrics) in enumerate(epochs):
            batch += [Metric(name, value, now, epoch) for name, value in metrics.items()]
            following = len(epochs[position + 1][1]) if position + 1 < len(epochs) else None
            if following is None or len(batch) + following > _METRICS_PER_BATCH:
                self.client.log_batch(child.run_id, metrics=batch, tags=[RunTag(EPOCHS_TAG, str(epoch))])
                child.epochs = epoch
                batch = []
        self.counts["epochs"] += len(epochs)

    def run_started(self, number: int, params: Mapping[str, Any], backend: Mapping[str, str] | None,
                    kept: Sequence[tuple[int, dict[str, float]]], from_epoch: int) -> None:
        """A run starts, or starts again after a resume: it goes on from ``from_epoch`` with the ``kept`` epochs."""
        child = self.children.get(number)
        if child is None:
            child = self._create(number, params, backend)
        else:
            from mlflow.entities import RunTag

            if child.mlflow_status != "RUNNING":
                self.client.update_run(child.run_id, status="RUNNING")
            tags = [RunTag("runmanager.status", Status.RUNNING.value)]
            if child.epochs > from_epoch:
                # Its points after from_epoch are of an attempt the journal superseded: the new
                # attempt's epochs are sent again, with the same steps.
                child.epochs = from_epoch
                tags.append(RunTag(EPOCHS_TAG, str(from_epoch)))
            self.client.log_batch(child.run_id, tags=tags)
            child.status, child.mlflow_status = Status.RUNNING.value, "RUNNING"
        self._send(child, [item for item in kept if child.epochs < item[0] <= from_epoch])

    def epoch(self, number: int, epoch: int, metrics: dict[str, float]) -> None:
        if number in self.children:  # else the sink was added while the run went: upload() sends it
            self._send(self.children[number], [(epoch, metrics)])

    def run_ended(self, number: int, status: str, error: str | None) -> None:
        from mlflow.entities import RunTag

        child = self.children.get(number)
        if child is None:
            return
        tags = [RunTag("runmanager.status", status)]
        if error:
            tags.append(RunTag("runmanager.error", _tag_text(error)))
        self.client.log_batch(child.run_id, tags=tags)
        self.client.set_terminated(child.run_id, RUN_STATUS[Status(status)])
        child.status, child.mlflow_status = status, RUN_STATUS[Status(status)]
        self.counts["ended"] += 1

    def sync(self, run: _Run) -> None:
        """Make MLflow hold all of ``run``: create it if missing, send the epochs it lacks, end it."""
        child = self.children.get(run.number)
        if child is None:
            child = self._create(run.number, run.params, run.backend)
        elif not child.has_params and run.params:
            self._log_params(child.run_id, run.params)
            child.has_params = True
        self._send(child, [item for item in run.epochs if item[0] > child.epochs])
        if run.status != Status.RUNNING.value and (child.status != run.status
                                                   or child.mlflow_status != RUN_STATUS[Status(run.status)]):
            self.run_ended(run.number, run.status, run.error)

    def sweep_ended(self, reason: str, artifacts: Sequence[tuple[Path, str | None]],
                    best_run: int | None) -> None:
        """Log the artifacts into the sweep's run and end it, by how the sweep ended."""
        from mlflow.entities import RunTag

        for path, folder in artifacts:
            self.client.log_artifact(self.parent, str(path), folder)
            self.counts["artifacts"] += 1
        tags = [RunTag("runmanager.sweep_end", reason)]
        if best_run is not None:
            tags.append(RunTag("runmanager.best_run", str(best_run)))
        self.client.log_batch(self.parent, tags=tags)
        self.client.set_terminated(self.parent, SWEEP_STATUS.get(reason, "KILLED"))


def _artifacts(log_dir: Path | None, results: Results, log_models: bool) -> tuple[list[tuple[Path, str | None]],
                                                                                  int | None]:
    """The files of a log_dir that go to the sweep's run (the exports, the report, the best run's
    model, in ``model/``), and the number of that run."""
    from runmanager.errors import CheckpointError
    from runmanager.storage import REPORT_NAME, RESULTS_NAME, SUMMARY_NAME

    if log_dir is None:
        return [], None
    names = (f"{RESULTS_NAME}.csv", f"{RESULTS_NAME}.json", f"{SUMMARY_NAME}.csv", f"{SUMMARY_NAME}.json", REPORT_NAME)
    found: list[tuple[Path, str | None]] = [(log_dir / name, None) for name in names if (log_dir / name).is_file()]
    best = None
    if log_models and results.checkpointed:
        from runmanager.checkpoints import model_file, pick_run, sweep_metric

        try:
            path = log_dir / model_file(results, None)
        except CheckpointError:
            path = None
        if path is not None and path.is_file():
            found.append((path, "model"))
            record = pick_run(results, *sweep_metric(results, None, None))
            best = None if record is None else record.number
    return found, best


class MLflowSink(Sink):
    """Sends a sweep to MLflow as it runs: one MLflow run per sweep with a nested run per run.

    See :mod:`runmanager.sinks.mlflow` for what is logged, how it behaves when MLflow is down,
    and how a resumed sweep goes on in the same MLflow runs. Needs ``runmanager[mlflow]``.

    Args:
        tracking_uri: the tracking server (``"http://127.0.0.1:5000"``) or database
            (``"sqlite:///mlflow.db"``); None: MLflow's own default (``MLFLOW_TRACKING_URI``).
        experiment: the experiment's name, created when missing; None: ``MLFLOW_EXPERIMENT_NAME``,
            else MLflow's ``Default``.
        log_models: log the best run's kept model (with ``checkpoint=True``) at the end of a sweep.

    Raises:
        MissingExtraError: MLflow is not installed.
        InvalidArgumentError: a tracking URI MLflow cannot use (checked here, without a network call).

    Example:
        m = RunManager("runs/cnn", sinks=[MLflowSink("http://127.0.0.1:5000", experiment="cnn")])
        m.sweep(train, {"units": [32, 64]}, checkpoint=True)
    """

    def __init__(self, tracking_uri: str | None = None, experiment: str | None = None, *,
                 log_models: bool = True) -> None:
        if experiment is not None and (not isinstance(experiment, str) or not experiment.strip()):
            raise InvalidArgumentError(f"experiment must be an MLflow experiment's name or None, got {experiment!r}.")
        if not isinstance(log_models, bool):
            raise InvalidArgumentTypeError(f"log_models must be True or False, got {log_models!r}.")
        self.client = _client(tracking_uri)
        self.tracking_uri: str = self.client.tracking_uri
        self.experiment = experiment
        self.log_models = log_models
        self._store: SinkStore | None = None
        self._mirror: _Mirror | None = None
        self._queue: queue.Queue[Any] = queue.Queue()
        self._thread: threading.Thread | None = None
        #: the first MLflow error of this sweep: nothing more is sent until the next sweep
        self.error: BaseException | None = None
        self._warned = False

    # -- the thread that talks to MLflow ------------------------------------------------------
    def _work(self) -> None:
        while True:
            item = self._queue.get()
            try:
                if item is None:
                    return
                if self.error is None:
                    call, args, kwargs = item
                    try:
                        call(*args, **kwargs)
                    except Exception as exc:  # noqa: BLE001 - any failure stops the sink, never the sweep
                        self.error = exc
            finally:
                self._queue.task_done()

    def _submit(self, call: Any, *args: Any, **kwargs: Any) -> None:
        if self.error is not None:
            return
        if self._thread is None or not self._thread.is_alive():
            self._thread = threading.Thread(target=self._work, name="runmanager-mlflow", daemon=True)
            self._thread.start()
        self._queue.put((call, args, kwargs))

    def _wait(self) -> None:
        if self._thread is not None:
            self._queue.join()

    # -- in the thread that records the events -------------------------------------------------
    def _open(self) -> _Mirror:
        """The MLflow side of this log_dir, opened at the first event of a sweep (or of a run made by hand)."""
        if self._mirror is None:
            store = self._store
            log_dir = store.log_dir if store is not None else None
            results = store.results if store is not None else None
            self.error, self._warned = None, False
            _bounded.__enter__()
            self._mirror = _Mirror(self.client, self.tracking_uri, self.experiment, sweep_id(log_dir, results),
                                   log_dir.name if log_dir is not None else "runmanager", log_dir)
            state = store.state(SINK) if store is not None else {}
            self._submit(self._mirror.open, state, look=bool(results is not None and results.runs))
        return self._mirror

    def _journal(self) -> None:
        """Journal the ids the thread found or made, and say once that MLflow failed."""
        mirror, store = self._mirror, self._store
        if mirror is None:
            return
        try:
            while mirror.saves:
                key, value = mirror.saves.popleft()
                if store is not None:
                    store.save(SINK, key, value)
            if self.error is not None and not self._warned:
                self._warned = True
                if store is not None:
                    store.save(SINK, "failed", {"time": time.time(), "error": _short(self.error)})
                self._warn(store.log_dir if store is not None else None)
        except LogDirError:
            pass  # the journal cannot be written: the sweep reports that itself

    def _warn(self, log_dir: Path | None) -> None:
        later = "" if log_dir is None else (
            f" Send the rest afterwards with: runmanager mlflow {log_dir} --tracking-uri {self.tracking_uri}"
            + (f" --experiment {self.experiment}" if self.experiment else ""))
        warnings.warn(f"MLflow at {self.tracking_uri} failed, so nothing more of this sweep is sent to it "
                      f"({_short(self.error)}); the sweep goes on, and its journal keeps every run.{later}",
                      RuntimeWarning, stacklevel=2)

    def on_attach(self, store: SinkStore) -> None:
        self._store = store

    def on_sweep_start(self, event: SweepStarted, search: Any) -> None:
        self._open()
        self._journal()

    def on_run_start(self, event: RunStarted, record: RunRecord) -> None:
        mirror = self._open()
        kept = [(epoch.epoch, epoch_metrics(epoch)) for epoch in record.epochs]
        self._submit(mirror.run_started, event.run, dict(event.params), event.backend, kept, event.from_epoch)
        self._journal()

    def on_epoch_end(self, event: EpochEnded, record: RunRecord) -> None:
        self._submit(self._open().epoch, event.run, event.epoch, epoch_metrics(event))
        self._journal()

    def on_run_end(self, event: RunEnded, record: RunRecord) -> None:
        self._submit(self._open().run_ended, event.run, event.status.value, event.error)
        self._journal()

    def on_run_kept(self, record: RunRecord) -> None:
        self._submit(self._open().sync, _Run.of(record))
        self._journal()

    def _end(self, reason: str) -> None:
        """End the sweep's MLflow run with the log_dir's files, wait for the thread, journal what it made."""
        mirror, store = self._mirror, self._store
        if mirror is None:
            return
        if store is not None:
            artifacts, best = _artifacts(store.log_dir, store.results, self.log_models)
        else:
            artifacts, best = [], None
        self._submit(mirror.sweep_ended, reason, artifacts, best)
        self._wait()
        self._journal()  # an error that came after the last event is said here, before the mirror goes
        self._release()

    def _release(self) -> None:
        """Wait for what is queued; the next sweep (or run by hand) opens the MLflow side again."""
        self._wait()
        if self._mirror is not None:
            self._mirror = None
            _bounded.__exit__()

    def on_sweep_end(self, event: SweepEnded) -> None:
        self._end(event.reason)

    def reset(self) -> None:
        self._release()  # the log_dir was emptied: its next sweep is a new MLflow run

    def flush(self) -> None:
        # Runs made by hand have no sweep end: the manager being closed ends them in MLflow.
        self._end("finished")

    def close(self) -> None:
        self._release()
        if self._thread is not None and self._thread.is_alive():
            self._queue.put(None)
            self._thread.join(timeout=30)
        self._thread = None


@contextlib.contextmanager
def _reported(tracking_uri: str) -> Iterator[None]:
    try:
        with _bounded:
            yield
    except MLflowError:
        raise
    except Exception as exc:  # noqa: BLE001 - MLflow's many errors become one clear one
        raise MLflowError(f"MLflow at {tracking_uri} failed: {_short(exc)} Nothing was lost: running the same "
                          "command again sends what MLflow still lacks.") from exc


def upload(log_dir: str | os.PathLike[str], tracking_uri: str | None = None, experiment: str | None = None, *,
           log_models: bool = True) -> dict[str, Any]:
    """Send a log_dir's sweep to MLflow from its journal, as :class:`MLflowSink` would have, and
    return what was sent. What MLflow already holds (found by the sweep id tag, and the
    ``runmanager.epochs`` tag of each run) is skipped, so running it twice sends nothing twice.

    Args:
        log_dir: a finished or crashed sweep's folder (not one a sweep is writing).
        tracking_uri: the tracking server or database, as for :class:`MLflowSink`.
        experiment: the experiment's name, as for :class:`MLflowSink`.
        log_models: log the best run's kept model, as for :class:`MLflowSink`.

    Returns:
        ``experiment_id``, ``run_id`` (the sweep's run) and the counts: runs ``created``,
        ``epochs`` sent, run ends sent (``ended``), ``artifacts``.

    Raises:
        LogDirError: no journal, or a sweep is still writing the log_dir.
        InvalidArgumentError: a tracking URI MLflow cannot use.
        MLflowError: MLflow could not be reached or refused a call.

    Example:
        upload("runs/cnn", "http://127.0.0.1:5000", experiment="cnn")
    """
    from runmanager.lock import writer_alive
    from runmanager.storage import JOURNAL_NAME, read_log_dir

    folder = Path(log_dir)
    if not (folder / JOURNAL_NAME).is_file():
        raise LogDirError(f"runmanager mlflow needs a log_dir with its {JOURNAL_NAME}, got {os.fspath(log_dir)!r}.")
    if writer_alive(folder):
        raise LogDirError(f"A sweep is still writing {os.fspath(log_dir)!r}; upload it once that sweep has ended "
                          "(an MLflowSink of that sweep sends it as it goes).")
    if experiment is not None and (not isinstance(experiment, str) or not experiment.strip()):
        raise InvalidArgumentError(f"experiment must be an MLflow experiment's name or None, got {experiment!r}.")
    client = _client(tracking_uri)
    results = read_log_dir(folder)
    mirror = _Mirror(client, client.tracking_uri, experiment, sweep_id(folder, results), folder.resolve().name,
                     folder)
    artifacts, best = _artifacts(folder, results, log_models)
    with _reported(client.tracking_uri):
        mirror.open(results.sink_state.get(SINK, {}), look=True, reopen=False)
        for number in sorted(results.runs):
            mirror.sync(_Run.of(results.runs[number]))
        mirror.sweep_ended(results.sweep_end or "finished", artifacts, best)
    return {"tracking_uri": client.tracking_uri, "experiment_id": mirror.experiment_id, "run_id": mirror.parent,
            **mirror.counts}

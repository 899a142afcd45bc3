"""The Sweep: one loop over a search's runs, whatever executes them.

A :class:`Sweep` asks its search for runs, numbers them (a run already in the
journal keeps its number), skips what a resumed sweep already finished, seeds
each run, hands it to the executor whenever the executor has room, counts how
runs end, tells the search, and stops after too many failures in a row.

Statuses: ``completed``, ``failed`` (``train`` raised; the sweep goes on),
``diverged`` (a loss became NaN/inf; training stopped at that epoch) and
``interrupted`` (Ctrl-C or a worker that died; Ctrl-C is raised again once the
files are consistent).
"""

from __future__ import annotations

import os
import time
from collections.abc import Callable
from typing import TYPE_CHECKING, Any

from runmanager.checkpoints import (
    CheckpointKeeper,
    CheckpointSettings,
    ResumePoint,
    resume_point,
    takes_checkpoint,
)
from runmanager.compile_cache import CompileCache
from runmanager.errors import (
    ColumnClashError,
    InvalidArgumentError,
    InvalidArgumentTypeError,
    MissingMetricError,
    SweepError,
    check_seed,
    is_int,
)
from runmanager.events import EpochEnded, Status, SweepEnded, SweepStarted, resolve_mode
from runmanager.executors.base import EXECUTORS, Executor, SweepContext, Task, check_workers
from runmanager.naming import params_of, run_id
from runmanager.objectives import resolve_objectives
from runmanager.pruning import Pruner
from runmanager.signals import interrupt_reason
from runmanager.storage import JOURNAL_NAME

if TYPE_CHECKING:
    from runmanager.recorder import Recorder
    from runmanager.search import Search

__all__ = ["MOVED_OPTIONS", "Sweep", "Tally", "check_pruner_objectives", "check_sweep_arguments", "check_train",
           "create_executor", "moved_options", "sweep_objectives"]


def check_sweep_arguments(
    train: Any, executor: Any, *, seed: Any, max_consecutive_failures: Any, workers: Any, timeout: Any, pruner: Any,
    repeats: int = 1, manager: Any = None,
) -> None:
    """Reject bad sweep arguments before any run starts (``repeats`` is checked already; for worker
    processes, a ``train`` or a ``manager`` class that they could not load) and before the log_dir is
    touched. An executor object checked its own options when it was made."""
    if not callable(train):
        raise InvalidArgumentTypeError(f"train must be a function train(run, callbacks), got {train!r}.")
    if executor not in EXECUTORS and not isinstance(executor, Executor):
        raise InvalidArgumentError(
            f"Unknown executor {executor!r}; choose one of {', '.join(map(repr, EXECUTORS))}, or pass an executor "
            "object such as runmanager.executors.ProcessExecutor(workers=4)."
        )
    check_seed(seed, repeats=repeats)
    if not is_int(max_consecutive_failures) or max_consecutive_failures < 0:
        raise InvalidArgumentError(
            "max_consecutive_failures must be a non-negative int (0: never stop), "
            f"got {max_consecutive_failures!r}."
        )
    check_workers(workers)
    if workers is not None and isinstance(executor, Executor):
        raise InvalidArgumentError(
            f"workers={workers!r} goes to the executor object itself, e.g. ProcessExecutor(workers={workers!r}); "
            "sweep(workers=...) is for the executor names 'processes', 'ray' and 'dask'."
        )
    from runmanager.executors.processes import ProcessExecutor, check_spawnable

    if executor == "processes" or isinstance(executor, ProcessExecutor):
        check_spawnable(train, manager)
    if timeout is not None and (not isinstance(timeout, (int, float)) or isinstance(timeout, bool)
                                or not timeout > 0):
        raise InvalidArgumentError(
            f"timeout must be a positive number of seconds (no run starts after it), got {timeout!r}."
        )
    if pruner is not None and not isinstance(pruner, Pruner):
        raise InvalidArgumentTypeError(
            f"pruner must be a runmanager Pruner (MedianPruner, SuccessiveHalvingPruner or a subclass of "
            f"runmanager.pruning.Pruner), got {pruner!r}."
        )
    if pruner is not None and type(pruner).report is Pruner.report and type(pruner).prune is Pruner.prune:
        raise InvalidArgumentTypeError(
            f"The pruner {pruner!r} implements neither report(run, epoch, value) nor prune(results, record), one of "
            "which decides whether a run stops; subclass runmanager.pruning.Pruner and override one, or use "
            "MedianPruner or SuccessiveHalvingPruner."
        )


def check_train(train: Any, *, checkpoints: bool) -> None:
    """Refuse a ``train`` that needs the checkpoint it goes on from when checkpoints are off."""
    if takes_checkpoint(train) and not checkpoints:
        name = getattr(train, "__qualname__", repr(train))
        raise InvalidArgumentError(
            f"train={name} takes a third parameter, the checkpoint a run goes on from, but the sweep keeps no "
            "checkpoints; pass checkpoint=True to sweep(), or define train(run, callbacks)."
        )


def sweep_objectives(metric: Any, mode: Any, search: Any, pruner: Any) -> list[tuple[str, str]]:
    """Every (metric, mode) the sweep judges runs by, the first being the one that checkpoints,
    ``keep_models`` and the progress line use: ``metric`` (a name or a list, with ``mode`` a mode or
    a list), else its search's objectives or metric, else its pruner's; ``[]`` when none names one
    (the runs' first of val_accuracy, val_loss, accuracy, loss is used then).

    Raises:
        InvalidArgumentError: a ``mode`` without a ``metric``, or a bad metric or mode.

    Examples:
        >>> sweep_objectives(["val_accuracy", "params"], [None, "min"], None, None)
        [('val_accuracy', 'max'), ('params', 'min')]
        >>> sweep_objectives(None, None, None, None)
        []
    """
    if metric is None:
        for source in (search, pruner):
            named = getattr(source, "objectives", None)
            if named:
                return [(name, how) for name, how in named]
            named = getattr(source, "metric", None)
            if isinstance(named, str):
                return [(named, getattr(source, "mode", None) or resolve_mode(named, None, who="sweep(metric=...)"))]
        if mode is not None:
            raise InvalidArgumentError(f"mode={mode!r} needs a metric; pass metric= too, e.g. metric='val_loss'.")
        return []
    return resolve_objectives(metric, mode, who="sweep(metric=...)")


def check_pruner_objectives(pruner: Any, objectives: list[tuple[str, str]]) -> None:
    """Refuse a pruner in a sweep of several objectives, before any run starts.

    Raises:
        InvalidArgumentError: a pruner and two or more objectives.
    """
    if pruner is not None and len(objectives) > 1:
        names = [name for name, _ in objectives]
        raise InvalidArgumentError(
            f"A pruner judges runs by one metric ({getattr(pruner, 'metric', None)!r}), and this sweep has several "
            f"objectives {names!r}: a run stopped early by one metric may have been on the Pareto front of the "
            "others, and a pruned run is never on it. Drop pruner=, or give the search and the sweep one metric."
        )


#: The ``sweep`` keywords that became options of the executor objects: keyword -> (the option's
#: name, the executors that take it). They still work for one release, with a DeprecationWarning.
MOVED_OPTIONS: dict[str, tuple[str, tuple[str, ...]]] = {
    "max_runs_per_worker": ("max_runs_per_worker", ("processes", "ray")),
    "gpus": ("gpus", ("processes",)),
    "ray_address": ("address", ("ray",)),
    "num_cpus": ("num_cpus", ("ray",)),
    "num_gpus": ("num_gpus", ("ray",)),
    "runtime_env": ("runtime_env", ("ray",)),
    "max_retries": ("max_retries", ("processes", "ray", "dask")),
}

_CLASS_NAMES = {"sequential": "SequentialExecutor", "processes": "ProcessExecutor", "ray": "RayExecutor",
                "dask": "DaskExecutor"}


def moved_options(executor: Any, options: dict[str, Any]) -> dict[str, Any]:
    """The executor options that old ``sweep`` keywords give, with a DeprecationWarning naming the
    new spelling; an unknown keyword is the TypeError Python gives.

    Raises:
        InvalidArgumentError: such a keyword beside an executor object (it goes to the object).
    """
    import warnings

    moved: dict[str, Any] = {}
    for keyword, value in options.items():
        if keyword not in MOVED_OPTIONS:
            raise TypeError(f"sweep() got an unexpected keyword argument {keyword!r}")
        option, takers = MOVED_OPTIONS[keyword]
        if isinstance(executor, Executor):
            raise InvalidArgumentError(
                f"sweep({keyword}=...) beside an executor object: give it to the object, "
                f"{type(executor).__name__}(..., {option}={value!r})."
            )
        name = _CLASS_NAMES.get(executor, "ProcessExecutor") if executor in takers else _CLASS_NAMES[takers[0]]
        warnings.warn(
            f"sweep({keyword}=...) is deprecated and goes in the next release: pass "
            f"executor={name}(..., {option}={value!r}) (from runmanager.executors)"
            + ("" if executor in takers else f"; executor={executor!r} does not use it") + ".",
            DeprecationWarning, stacklevel=3,
        )
        if executor in takers:
            moved[option] = value
    return moved


def create_executor(name: str, workers: int | None, options: dict[str, Any]) -> Executor:
    """The executor ``sweep(executor=name, workers=...)`` stands for, with the moved ``options``."""
    if name == "sequential":
        from runmanager.executors.sequential import SequentialExecutor

        return SequentialExecutor()
    if name == "processes":
        from runmanager.executors.processes import ProcessExecutor

        return ProcessExecutor(workers, **options)
    if name == "dask":
        from runmanager.executors.dask_workers import DaskExecutor

        return DaskExecutor(workers=workers, **options)
    from runmanager.executors.ray_actors import RayExecutor

    return RayExecutor(workers=workers, **options)


#: Errors a run fails with when the sweep itself is set up wrong (a parameter and a metric of the same
#: name, a pruner's metric that the runs do not log): every run would fail the same way, so the first
#: one stops the sweep. A run's error travels from
#: any executor as the text "ErrorType: message" (see run_task), so it is recognised by that prefix.
_CONFIGURATION_ERRORS: tuple[type[Exception], ...] = (ColumnClashError, MissingMetricError)


def _configuration_error(number: int, error: str | None) -> Exception | None:
    """The error that stops the sweep, if run ``number`` failed with a configuration error."""
    for kind in _CONFIGURATION_ERRORS:
        prefix = f"{kind.__name__}: "
        if error is not None and error.startswith(prefix):
            return kind(f"Run {number} failed: {_sentence(error[len(prefix):])} Every run of this sweep would "
                        "fail the same way, so the sweep stopped.")
    return None


def _sentence(text: str | None) -> str:
    """``text`` ending with one period, to go inside a message of whole sentences."""
    text = (text or "no error").rstrip()
    return text if text.endswith((".", "!", "?")) else text + "."


class Tally:
    """Counts runs by status, and stops the sweep after too many failures in a row.

    Examples:
        >>> tally = Tally(max_consecutive_failures=2)
        >>> tally.add(1, Status.COMPLETED, None); tally.counts
        {'completed': 1}
    """

    def __init__(self, max_consecutive_failures: int, log_dir: Any = None) -> None:
        self.limit = max_consecutive_failures
        self.log_dir = log_dir
        self.counts: dict[str, int] = {}
        self.failures = 0

    def count(self, status: Status) -> None:
        """Count one more run that ended with ``status``."""
        self.counts[status.value] = self.counts.get(status.value, 0) + 1

    def add(self, number: int, status: Status, error: str | None) -> None:
        """Count run ``number``'s ``status``; raise SweepError once the limit of failures is reached."""
        self.count(status)
        # A worker that died takes its run with it: that counts as a failure too.
        self.failures = self.failures + 1 if status in (Status.FAILED, Status.INTERRUPTED) else 0
        if self.limit and self.failures >= self.limit:
            if status == Status.INTERRUPTED:  # no traceback to read: the worker died under the run
                raise SweepError(
                    f"The sweep stopped after {self.failures} failed or lost runs in a row; the last one, run "
                    f"{number}, was interrupted: {error}. Something ends the workers under every run: check "
                    "their memory use and the standard error of this process (where a crashing worker writes), "
                    "or pass max_consecutive_failures=0 to never stop."
                )
            journal = os.fspath(self.log_dir / JOURNAL_NAME) if self.log_dir else "the journal of a log_dir"
            raise SweepError(
                f"The sweep stopped after {self.failures} failed runs in a row; the last one, run {number}, "
                f"ended with {_sentence(error)} Something is wrong for every run: check train() (tracebacks are in "
                f"{journal}), or pass max_consecutive_failures=0 to never stop."
            )


class Sweep:
    """One sweep of ``train`` over ``search`` for ``manager``, on ``executor``.

    ``manager`` has opened its log_dir already; ``results`` is its fold of the
    journal, which tells what a resumed sweep has done.

    Examples:
        counts = Sweep(m, train, GridSearch(grid), SequentialExecutor(), results).run()
    """

    def __init__(self, manager: Any, train: Callable[..., Any], search: Search, executor: Executor,
                 recorder: Recorder, *, seed: int | None = None, retry_failed: bool = False,
                 max_consecutive_failures: int = 3, timeout: float | None = None,
                 pruner: Pruner | None = None, metric: str | None = None,
                 mode: str | None = None, checkpoints: CheckpointSettings | None = None,
                 objectives: list[tuple[str, str]] | None = None) -> None:
        self.manager = manager
        self.train = train
        self.search = search
        self.executor = executor
        self.recorder = recorder
        self.results = recorder.results
        self.seed = seed
        self.retry_failed = retry_failed
        self.tally = Tally(max_consecutive_failures, manager.log_dir)
        self.timeout = timeout
        self.pruner = pruner
        self.metric, self.mode = metric, mode
        #: every (metric, mode) of a sweep of several objectives (recorded, for its Pareto front)
        self.objectives = list(objectives or [])
        self.checkpoints = checkpoints
        #: how the sweep ended: "finished", "timeout", "interrupted" or "stopped"
        self.reason = "running"
        self._next_number = self.results.next_number
        self._seen: set[str] = set()
        self._in_flight: dict[int, Task] = {}
        self._judged: dict[int, int] = {}  # run in flight -> the last epoch the pruner was told of

    def resume_point(self, number: int) -> ResumePoint | None:
        """Where run ``number`` goes on from: its last checkpoint, when checkpoints are on."""
        record = self.results.runs.get(number)
        if self.checkpoints is None or record is None:
            return None
        return resume_point(record, self.checkpoints)

    def next_task(self) -> Task | None:
        """The next run to do, numbered, or ``None`` when the search has no more.

        A run already in the journal keeps its number; a new one takes the next free
        number. A finished run is skipped (failed and diverged ones are retried with
        ``retry_failed``), and so is a run the search proposes twice.
        """
        while (run := self.search.ask()) is not None:
            rid = run_id(params_of(run))
            if rid in self._seen:
                continue
            self._seen.add(rid)
            record = self.results.by_id.get(rid)
            if record is None:
                number = self._next_number
                self._next_number += 1
            elif record.status.finished and not (record.status.unsuccessful and self.retry_failed):
                self.recorder.kept(record)
                continue
            else:
                number = record.number
            seed = None if self.seed is None else self.seed + self.search.seed_offset(run)
            resume = None if record is None or record.status.finished else self.resume_point(number)
            return Task(number, run, seed, resume)
        return None

    def run(self) -> dict[str, int]:
        """Run the sweep to its end; return the counts by status."""
        executor, recorder = self.executor, self.recorder
        self.search.start(self.results)
        settings = self.checkpoints
        if settings is not None and self.manager.log_dir is not None:
            keeper = CheckpointKeeper(self.manager.log_dir, settings.mode, keep_models=settings.keep_models,
                                      metric=settings.metric, metric_mode=settings.metric_mode)
            recorder.keeper = keeper
            keeper.start(self.results, recorder.record)
        # One XLA compilation cache for every process of the sweep (JAX backend only), this one
        # included while the sweep runs: a model shape is compiled once per sweep.
        cache = CompileCache.for_sweep(self.manager.log_dir)
        context = SweepContext(self.manager, recorder, self.train, self.search,
                               judge=None if self.pruner is None else self.judge, max_retries=executor.max_retries,
                               checkpoints=settings, resume_point=self.resume_point,
                               compile_cache=None if cache is None else cache.folder)
        self.reason = "finished"
        deadline = None if self.timeout is None else time.monotonic() + self.timeout
        try:
            if cache is not None:
                cache.open()
            executor.open(context)
            recorder.sweep_started(SweepStarted(tuple(self.search.fields), total=self.search.total,
                                                workers=executor.capacity, metric=self.metric, mode=self.mode,
                                                objectives=tuple(self.objectives) if len(self.objectives) > 1
                                                else None),
                                   self.search)
            exhausted = False
            while True:
                while not exhausted and executor.running() < executor.capacity:
                    if deadline is not None and time.monotonic() >= deadline:
                        exhausted, self.reason = True, "timeout"
                        recorder.note(f"the time budget of {self.timeout:g} s is spent: no new run starts")
                        break
                    task = self.next_task()
                    if task is None:
                        exhausted = True
                    else:
                        self._in_flight[task.number] = task
                        executor.submit(task)
                if exhausted and not executor.running():
                    break
                for task, status in executor.wait():
                    self._ended(task, status)
        except BaseException as exc:
            # Ctrl-C, a stopped sweep, or a driver error: stop the workers, record their runs.
            interrupted = isinstance(exc, KeyboardInterrupt)
            self.reason = "interrupted" if interrupted else "stopped"
            executor.abort(interrupt_reason(exc) if interrupted else f"sweep stopped: {type(exc).__name__}")
            for number in self._in_flight:  # ended by the interrupt or by abort(), as the journal says
                record = self.results.runs.get(number)
                self.tally.count(record.status if record is not None else Status.INTERRUPTED)
            raise
        finally:
            try:
                executor.close()
            finally:
                if cache is not None:
                    cache.close()
            recorder.sweep_ended(SweepEnded(dict(self.tally.counts), self.reason))
        return self.tally.counts

    def judge(self, event: EpochEnded) -> bool:
        """The pruner's decision on an epoch that just ended (folded already): True stops the run there.
        The pruner reads every run's epochs from the fold, the journal's included, so nothing is
        replayed after a resume.

        Raises:
            MissingMetricError: the run did not log the pruner's metric (the run fails).
        """
        assert self.pruner is not None
        if self.pruner.metric not in event.metrics:
            raise MissingMetricError(
                f"The pruner judges {self.pruner.metric!r}, which run {event.run} did not log at epoch "
                f"{event.epoch} (it logged {', '.join(event.metrics) or 'no metric'}); pass one of those "
                "to the pruner."
            )
        if event.epoch <= self._judged.get(event.run, 0):
            return False  # a retried run (its worker died) passing an epoch it passed before
        self._judged[event.run] = event.epoch
        return self.pruner.prune(self.results, self.results.runs[event.run])

    def _ended(self, task: Task, status: Status) -> None:
        del self._in_flight[task.number]
        self._judged.pop(task.number, None)
        record = self.results.runs[task.number]
        try:
            self.search.tell(task.run, record)
        except MissingMetricError as exc:
            # The search cannot use this run (its metric was never logged): the run failed for it,
            # and every later run would too, so the sweep stops here.
            self.recorder.lost(task.number, task.run, f"{type(exc).__name__}: {exc}", started=True,
                               status=Status.FAILED)
            self.tally.count(Status.FAILED)
            raise
        if status == Status.FAILED and (error := _configuration_error(task.number, record.error)) is not None:
            self.tally.count(status)
            raise error
        self.tally.add(task.number, status, record.error)

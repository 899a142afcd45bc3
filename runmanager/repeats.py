"""Repeats: every configuration of a search run several times, over different seeds.

``m.sweep(train, params, repeats=3, seed=0)`` wraps the sweep's search in a
:class:`Repeated` search. Each configuration the search proposes comes back as
``repeats`` runs that differ only by a ``repeat`` field (1..N), the last of the
run's params, so it is a column of the epoch rows and of the summary, and a
run's identity on resume is its params and its repeat. With ``seed=S``, repeat
``r`` is seeded ``S + r - 1``. An adaptive search is told a configuration once
all its repeats ended, with the mean of their final metric.
"""

from __future__ import annotations

import math
from collections import deque
from collections.abc import Iterable
from typing import Any

from runmanager.errors import InvalidArgumentError, InvalidGridError, is_int
from runmanager.events import Status
from runmanager.naming import REPEAT, params_of, run_id
from runmanager.results import Results, RunRecord
from runmanager.search import Search

__all__ = ["REPEAT", "ConfigurationRecord", "Repeated", "check_repeats", "without_repeat"]


def check_repeats(repeats: Any) -> int:
    """``repeats`` if it is a positive int, else an error that says what to pass.

    Examples:
        >>> check_repeats(3)
        3
    """
    if not is_int(repeats) or repeats < 1:
        raise InvalidArgumentError(
            f"repeats must be a positive int (how many times to run each configuration), got {repeats!r}."
        )
    return repeats


def without_repeat(params: dict[str, Any]) -> dict[str, Any]:
    """A run's params without its repeat: the configuration it repeats.

    Examples:
        >>> without_repeat({"lr": 0.1, "repeat": 2})
        {'lr': 0.1}
    """
    return {name: value for name, value in params.items() if name != REPEAT}


class ConfigurationRecord(RunRecord):
    """A configuration's runs seen as one, as an adaptive search is told it: completed when
    any repeat completed, and its final metric is the mean over the completed repeats."""

    def __init__(self, records: Iterable[RunRecord]) -> None:
        records = list(records)
        first = records[0]
        params = without_repeat(first.params)
        completed = [r for r in records if r.status == Status.COMPLETED]
        status = Status.COMPLETED if completed else first.status
        super().__init__(first.number, run_id(params), params, status=status,
                         epochs=[e for r in records for e in r.epochs],
                         error=None if completed else first.error)
        self.repeats = records

    def final(self, metric: str) -> float | None:
        values = [v for r in self.repeats if r.status == Status.COMPLETED
                  and (v := r.final(metric)) is not None and math.isfinite(v)]
        return sum(values) / len(values) if values else None


class Repeated(Search):
    """Every run of ``search`` ``repeats`` times, with a ``repeat`` field (1..N) added last.

    Raises:
        InvalidArgumentError: ``repeats`` is not a positive int.
        InvalidGridError: the search already has a parameter named ``repeat``.

    Examples:
        >>> from runmanager.search import GridSearch
        >>> from runmanager.grid import RunBuilder
        >>> search = Repeated(GridSearch(RunBuilder({"lr": [0.1, 0.01]})), 2)
        >>> [search.ask() for _ in range(5)]
        [Run(lr=0.1, repeat=1), Run(lr=0.1, repeat=2), Run(lr=0.01, repeat=1), Run(lr=0.01, repeat=2), None]
    """

    def __init__(self, search: Search, repeats: int) -> None:
        self.search = search
        self.repeats = check_repeats(repeats)
        if REPEAT in search.fields:
            raise InvalidGridError(
                f"The parameter {REPEAT!r} clashes with the column repeats=N adds; rename the parameter, "
                "or drop repeats= and keep your own repeat parameter."
            )
        self.fields = (*search.fields, REPEAT)
        self._pending: deque[Any] = deque()
        self._told: dict[str, dict[int, RunRecord]] = {}  # configuration id -> its repeats ended so far

    @property
    def hparams(self) -> dict[str, Any]:
        return self.search.hparams

    @property
    def total(self) -> int | None:
        total = self.search.total
        return None if total is None else total * self.repeats

    @property
    def metric(self) -> str | None:
        """The metric the wrapped search optimises, if any (for progress lines)."""
        return getattr(self.search, "metric", None)

    @property
    def mode(self) -> str | None:
        """The mode of that metric, if the wrapped search has one."""
        return getattr(self.search, "mode", None)

    @property
    def objectives(self) -> list[tuple[str, str]] | None:
        """Every (metric, mode) the wrapped search optimises, if it names them; each is told the
        mean over a configuration's completed repeats."""
        return getattr(self.search, "objectives", None)

    def values_of(self, name: str) -> list[Any]:
        return list(range(1, self.repeats + 1)) if name == REPEAT else self.search.values_of(name)

    def domain(self, name: str) -> tuple[str, Any] | None:
        return ("discrete", list(range(1, self.repeats + 1))) if name == REPEAT else self.search.domain(name)

    def seed_offset(self, run: Any) -> int:
        return getattr(run, REPEAT) - 1

    def start(self, results: Results) -> None:
        """Hand the wrapped search the configurations whose repeats all finished, one record each."""
        groups: dict[str, list[RunRecord]] = {}
        for number in sorted(results.runs):
            record = results.runs[number]
            groups.setdefault(run_id(without_repeat(record.params)), []).append(record)
        folded = Results()
        for records in groups.values():
            done = {r.params.get(REPEAT): r for r in records if r.status.finished}
            if all(repeat in done for repeat in range(1, self.repeats + 1)):
                configuration = ConfigurationRecord(done[r] for r in range(1, self.repeats + 1))
                folded.runs[configuration.number] = configuration
                folded.by_id[configuration.run_id] = configuration
        self.search.start(folded)

    def ask(self) -> Any | None:
        if not self._pending:
            run = self.search.ask()
            if run is None:
                return None
            params = params_of(run)
            self._pending.extend(self.make_run({**params, REPEAT: r}) for r in range(1, self.repeats + 1))
        return self._pending.popleft()

    def tell(self, run: Any, record: RunRecord) -> None:
        params = without_repeat(params_of(run))
        told = self._told.setdefault(run_id(params), {})
        told[getattr(run, REPEAT)] = record
        if len(told) == self.repeats:
            del self._told[run_id(params)]
            self.search.tell(self.search.make_run(params), ConfigurationRecord(told[r] for r in sorted(told)))

    def __repr__(self) -> str:
        return f"Repeated({self.search!r}, repeats={self.repeats})"

"""The Search seam: where a sweep gets its runs from.

A sweep asks its search for the next run whenever it can start one, and tells
it how every run ended; everything else (numbering, resume, the failure limit,
the files) lives in the sweep. Today's searches:

- :class:`GridSearch`: every run of a :class:`~runmanager.RunBuilder`, lazily, in grid order.
- :class:`RunList`: a given sequence of namedtuple runs (``grid.sample(20, seed=0)``).

An adaptive search (one told each finished run's result that proposes the next)
overrides :meth:`Search.tell` and :meth:`Search.ask`; :meth:`Search.start` hands it
the runs a resumed sweep already holds.
"""

from __future__ import annotations

import collections
from collections.abc import Iterator, Mapping, Sequence
from typing import TYPE_CHECKING, Any

from runmanager.errors import InvalidGridError, InvalidGridTypeError
from runmanager.grid import RunBuilder, check_param_name
from runmanager.naming import params_of

if TYPE_CHECKING:
    from runmanager.results import Results, RunRecord

__all__ = ["GridSearch", "RunList", "Search", "as_search"]


class Search:
    """Proposes runs to a sweep and learns how they ended.

    Subclasses set :attr:`fields` (the parameter names, in order) and implement
    :meth:`ask`; the rest is optional.

    Example:
        >>> class Halving(Search):
        ...     fields = ("lr",)
        ...     def __init__(self):
        ...         self.lr = 1.0
        ...     def ask(self):
        ...         self.lr /= 2
        ...         return self.make_run({"lr": self.lr}) if self.lr > 0.1 else None
        >>> search = Halving()
        >>> [search.ask() for _ in range(4)]
        [Run(lr=0.5), Run(lr=0.25), Run(lr=0.125), None]
    """

    fields: tuple[str, ...] = ()

    @property
    def hparams(self) -> dict[str, Any]:
        """TensorBoard ``hp.HParam`` objects by name, when the search was built from them."""
        return {}

    @property
    def total(self) -> int | None:
        """How many runs the search proposes at most, if known (for progress)."""
        return None

    def values_of(self, name: str) -> list[Any]:
        """The values of parameter ``name`` known before the sweep (for TensorBoard's config)."""
        return []

    @property
    def run_type(self) -> type:
        """The ``Run`` namedtuple class of this search's runs."""
        run_type = self.__dict__.get("_run_type")
        if run_type is None or run_type._fields != tuple(self.fields):
            run_type = collections.namedtuple("Run", self.fields)  # type: ignore[misc]
            self.__dict__["_run_type"] = run_type
        return run_type

    def make_run(self, params: Mapping[str, Any]) -> Any:
        """A ``Run`` namedtuple from a mapping; fields it lacks are ``None``."""
        return self.run_type(**{name: params.get(name) for name in self.fields})

    def start(self, results: Results) -> None:
        """Called once before the first :meth:`ask`, with the runs already in the log_dir."""

    def ask(self) -> Any | None:
        """The next run to try, or ``None`` when the search has nothing more to propose."""
        raise NotImplementedError

    def tell(self, run: Any, record: RunRecord) -> None:
        """Run ``run`` ended; ``record`` holds its status, epochs and error."""


class GridSearch(Search):
    """Every run of a grid, in grid order (a resumed sweep skips what is done).

    Example:
        >>> search = GridSearch(RunBuilder({"lr": [0.1, 0.01]}))
        >>> search.ask(), search.ask(), search.ask()
        (Run(lr=0.1), Run(lr=0.01), None)
    """

    def __init__(self, grid: RunBuilder) -> None:
        self.grid = grid
        self.fields = grid.fields
        self._runs: Iterator[Any] = iter(grid)

    @property
    def hparams(self) -> dict[str, Any]:
        return self.grid.hparams

    @property
    def total(self) -> int | None:
        return len(self.grid)

    @property
    def run_type(self) -> type:
        return self.grid.run_type

    def values_of(self, name: str) -> list[Any]:
        return self.grid.values_of(name)

    def ask(self) -> Any | None:
        return next(self._runs, None)


class RunList(Search):
    """A fixed sequence of namedtuple runs, in order, such as ``grid.sample(20, seed=0)``.

    Runs may come from different grids: the fields are the union of theirs, and a
    field a run lacks is ``None``.

    Raises:
        InvalidGridTypeError: an element is not a namedtuple run.
        InvalidGridError: the sequence is empty.

    Example:
        >>> runs = RunBuilder({"lr": [0.1, 0.01, 0.001]}).sample(2, seed=0)
        >>> search = RunList(runs)
        >>> search.total, search.ask() == runs[0]
        (2, True)
    """

    def __init__(self, runs: Sequence[Any]) -> None:
        fields: dict[str, None] = {}
        for run in runs:
            if not hasattr(run, "_fields"):
                raise InvalidGridTypeError(
                    f"A list of runs must hold namedtuple runs (as RunBuilder and grid.sample() give), "
                    f"got {run!r}; pass a mapping of value lists to sweep a grid instead."
                )
            for name in run._fields:
                fields.setdefault(check_param_name(name, name), None)
        if not fields:
            raise InvalidGridError(f"The list of runs {runs!r} is empty; give at least one run.")
        self.runs = list(runs)
        self.fields = tuple(fields)
        self._next = 0

    @property
    def total(self) -> int | None:
        return len(self.runs)

    def values_of(self, name: str) -> list[Any]:
        seen: dict[Any, Any] = {}
        for run in self.runs:
            value = params_of(run).get(name)
            try:
                seen.setdefault(value, value)
            except TypeError:  # an unhashable value: compare by repr
                seen.setdefault(repr(value), value)
        return list(seen.values())

    def ask(self) -> Any | None:
        if self._next >= len(self.runs):
            return None
        run = self.runs[self._next]
        self._next += 1
        return run if run._fields == self.fields else self.make_run(params_of(run))


def as_search(params: Any) -> Search:
    """What a sweep's ``params`` stand for: a search, a grid, or a list of runs.

    Example:
        >>> type(as_search({"lr": [0.1]})).__name__, type(as_search(RunBuilder.get_runs({"lr": [0.1]}))).__name__
        ('GridSearch', 'RunList')
    """
    if isinstance(params, Search):
        return params
    if isinstance(params, RunBuilder):
        return GridSearch(params)
    if (isinstance(params, Sequence) and not isinstance(params, (str, bytes)) and params
            and all(hasattr(run, "_fields") for run in params)):
        return RunList(params)
    return GridSearch(RunBuilder(params))

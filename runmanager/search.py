"""The Search seam: where a sweep gets its runs from.

A sweep asks its search for the next run whenever it can start one, and tells
it how every run ended; everything else (numbering, resume, the failure limit,
the files) lives in the sweep. Today's searches:

- :class:`GridSearch`: every run of a :class:`~runmanager.RunBuilder`, lazily, in grid order.
- :class:`RunList`: a given sequence of namedtuple runs (``grid.sample(20, seed=0)``).
- :class:`RandomSearch`: ``n_runs`` runs drawn from a space, lazily, each from ``(seed, index)``.
- :class:`OptunaSearch`: each run proposed by an Optuna sampler from the results so far.

An adaptive search (one told each finished run's result that proposes the next)
overrides :meth:`Search.tell` and :meth:`Search.ask`; :meth:`Search.start` hands it
the runs a resumed sweep already holds.
"""

from __future__ import annotations

import collections
import hashlib
import math
import secrets
import warnings
from collections.abc import Callable, Iterator, Mapping, Sequence
from typing import TYPE_CHECKING, Any, overload

from runmanager.errors import (
    InvalidArgumentError,
    InvalidArgumentTypeError,
    InvalidGridError,
    InvalidGridTypeError,
    MissingMetricError,
    check_seed,
    is_int,
    missing_extra,
)
from runmanager.events import Status
from runmanager.grid import RunBuilder, check_param_name, check_run_params, position_in
from runmanager.naming import params_of, run_id
from runmanager.objectives import resolve_objectives
from runmanager.space import Dimension, parse_spaces, union_domain, union_fields

if TYPE_CHECKING:
    from runmanager.results import Results, RunRecord

__all__ = ["GridSearch", "OptunaSearch", "RandomSearch", "RunList", "Search", "as_search"]


class Search:
    """Proposes runs to a sweep and learns how they ended.

    Subclasses set :attr:`fields` (the parameter names, in order) and implement
    :meth:`ask`; the rest is optional.

    Examples:
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

    def domain(self, name: str) -> tuple[str, Any] | None:
        """Where parameter ``name`` is drawn from, for TensorBoard's config: ``("discrete", values)``,
        ``("interval", (low, high, integer))``, or None to describe it by the values that ran."""
        return None

    @property
    def run_type(self) -> type:
        """The ``Run`` namedtuple class of this search's runs."""
        run_type = self.__dict__.get("_run_type")
        if run_type is None or run_type._fields != tuple(self.fields):
            run_type = collections.namedtuple("Run", self.fields)  # type: ignore[misc]
            self.__dict__["_run_type"] = run_type
        return run_type

    def make_run(self, params: Mapping[str, Any]) -> Any:
        """A ``Run`` namedtuple from a mapping; fields it lacks are ``None``.

        Raises:
            InvalidGridError: the mapping has a name that is not one of :attr:`fields`.
        """
        check_run_params(params, self.fields)
        return self.run_type(**{name: params.get(name) for name in self.fields})

    def seed_offset(self, run: Any) -> int:
        """What to add to the sweep's ``seed`` for ``run`` (a repeat's number less one)."""
        return 0

    def start(self, results: Results) -> None:
        """Called once before the first :meth:`ask`, with the runs already in the log_dir."""

    def ask(self) -> Any | None:
        """The next run to try, or ``None`` when the search has nothing more to propose."""
        raise NotImplementedError

    def tell(self, run: Any, record: RunRecord) -> None:
        """Run ``run`` ended; ``record`` holds its status, epochs and error."""


class GridSearch(Search):
    """Every run of a grid, in grid order (a resumed sweep skips what is done).

    Examples:
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

    Examples:
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

    def __len__(self) -> int:
        return len(self.runs)

    def __getitem__(self, index: int) -> Any:
        return self.runs[index]

    def __iter__(self) -> Iterator[Any]:
        return iter(self.runs)

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


def _check_n_runs(n_runs: Any) -> int:
    if not is_int(n_runs) or n_runs < 1:
        raise InvalidArgumentError(f"n_runs must be a positive int (how many runs to try), got {n_runs!r}.")
    return n_runs


class _Shuffle:
    """A pseudo-random permutation of ``range(size)`` computed one index at a time, so the i-th
    element costs the same for any i and nothing is materialised: a six-round Feistel network
    keyed by ``key`` on the smallest even number of bits that holds ``size``, walking each value
    through the network again until it falls inside ``range(size)`` (at most 4 times on average).

    Examples:
        >>> shuffle = _Shuffle(10, "0")
        >>> sorted(shuffle(i) for i in range(10))
        [0, 1, 2, 3, 4, 5, 6, 7, 8, 9]
    """

    ROUNDS = 6

    def __init__(self, size: int, key: str) -> None:
        self.size = size
        self.half = max(1, ((size - 1).bit_length() + 1) // 2)
        self.mask = (1 << self.half) - 1
        self.width = (self.half + 7) // 8
        self.key = key

    def _round(self, number: int, value: int) -> int:
        digest = hashlib.shake_256(f"{self.key}:{number}:{value}".encode()).digest(self.width)
        return int.from_bytes(digest, "big") & self.mask

    def __call__(self, index: int) -> int:
        value = index
        while True:
            left, right = value >> self.half, value & self.mask
            for number in range(self.ROUNDS):
                left, right = right, left ^ self._round(number, right)
            value = (left << self.half) | right
            if value < self.size:
                return value


class _Turns:
    """Which space of a union run ``i`` comes from, and which run of that space it is: the spaces
    take turns, in an order shuffled each round by ``key``, and a finite space (of ``size``
    combinations; None: one that never runs out) leaves the turns once it has given them all.
    Run ``i`` costs a few steps per space, whatever ``i``.

    Examples:
        >>> turns = _Turns([2, None], "0")
        >>> sorted(turns(i) for i in range(6))
        [(0, 0), (0, 1), (1, 0), (1, 1), (1, 2), (1, 3)]
    """

    def __init__(self, sizes: Sequence[int | None], key: str) -> None:
        self.key = key
        #: (first round, end round or None, the spaces taking turns, runs before its first round)
        self.phases: list[tuple[int, int | None, list[int], int]] = []
        start, before = 0, 0
        for end in sorted({size for size in sizes if size is not None}):
            active = [part for part, size in enumerate(sizes) if size is None or size >= end]
            if end > start:
                self.phases.append((start, end, active, before))
                before += (end - start) * len(active)
            start = end
        endless = [part for part, size in enumerate(sizes) if size is None]
        if endless:
            self.phases.append((start, None, endless, before))

    def _order(self, turn: int, parts: list[int]) -> list[int]:
        def rank(part: int) -> bytes:
            return hashlib.shake_256(f"{self.key}:turn:{turn}:{part}".encode()).digest(8)

        return sorted(parts, key=rank)

    def __call__(self, index: int) -> tuple[int, int]:
        for start, end, active, before in self.phases:
            if end is None or index < before + (end - start) * len(active):
                turn, position = divmod(index - before, len(active))
                return self._order(start + turn, active)[position], start + turn
        raise IndexError(index)  # pragma: no cover - callers bound the index


class RandomSearch(Search):
    """``n_runs`` runs drawn at random from a space: the same runs for the same ``seed``.

    A space maps names to a list of values (drawn uniformly; a ``range`` or a 1-D NumPy array
    is a list too) or a distribution with ``rvs(random_state=...)`` (a frozen scipy.stats
    distribution, as scikit-learn's ``ParameterSampler`` takes). It is a lazy, finite sequence
    (``len``, indexing, negative too, iteration): run ``i`` is computed from ``(seed, i)`` alone,
    so ``RandomSearch(space, 10**12, seed=0)[10**11]`` costs one draw, the same ``seed`` gives
    the same runs in every process (a resumed sweep skips the runs it finished), and a larger
    ``n_runs`` gives the same first runs, then more.

    A space of lists and ``randint`` only is finite: its runs are its combinations in a random
    order, each at most once, as scikit-learn's ``ParameterSampler`` does for lists; if it holds
    fewer than ``n_runs`` a warning says so and the search gives each once. Otherwise each run's
    values are drawn independently (with a continuous distribution two runs are as good as never
    the same; a sweep runs a repeated run once).

    A list of spaces is a union (a conditional space), as a list of grids is for
    :class:`~runmanager.RunBuilder`: the fields are every name in the order they first appear,
    and a name the run's space lacks is ``None``. Each run picks a space uniformly, then its
    values. When every space is finite the union is too, and its runs are the combinations of
    all the spaces in a random order, each once, as for one finite space (scikit-learn's
    ``ParameterSampler`` does the same), so a space is drawn as often as it has combinations.

    Raises:
        InvalidArgumentError: ``n_runs`` is not a positive int, or ``seed`` is not in 0..2**32 - 1.
        InvalidGridError, InvalidGridTypeError: a bad space (see :func:`runmanager.space.parse_space`).

    Examples:
        >>> from scipy.stats import loguniform
        >>> runs = RandomSearch({"lr": loguniform(1e-4, 1e-1), "units": [16, 32]}, n_runs=3, seed=0)
        >>> len(runs), runs[0] == runs[-3] == list(runs)[0]
        (3, True)
        >>> RandomSearch({"units": range(16, 257)}, n_runs=4, seed=0)[:2]
        [Run(units=...), Run(units=...)]
        >>> union = RandomSearch([{"model": ["dense"], "units": [16, 32]}, {"model": ["residual"], "depth": [2, 3]}],
        ...                      n_runs=4, seed=0)
        >>> sorted(union, key=str)
        [Run(model='dense', units=16, depth=None), Run(model='dense', units=32, depth=None), Run(model='residual', units=None, depth=2), Run(model='residual', units=None, depth=3)]
    """

    def __init__(self, space: Mapping[str, Any] | Sequence[Mapping[str, Any]], n_runs: int, *,
                 seed: int | None = None) -> None:
        #: the dimensions of each space of the union (one for a single space)
        self.spaces = parse_spaces(space)
        #: the dimensions of the single space; for a union, of the first space that has each name
        self.space: dict[str, Dimension] = {}
        for dimensions in self.spaces:
            for name, dimension in dimensions.items():
                self.space.setdefault(name, dimension)
        self.n_runs = _check_n_runs(n_runs)
        self.seed = check_seed(seed, type_error=InvalidGridTypeError)
        # Without a seed the runs are still one fixed sequence: indexing it twice gives the same run.
        self._key = seed if seed is not None else secrets.randbits(32)
        self.fields = union_fields(self.spaces)
        # The values of each dimension of each finite space (None for a space with another distribution).
        self._values: list[list[Sequence[Any]] | None] = []
        for dimensions in self.spaces:
            values = [dimension.values() for dimension in dimensions.values()]
            self._values.append(None if any(v is None for v in values) else values)  # type: ignore[arg-type]
        sizes = [None if values is None else math.prod(len(v) for v in values) for values in self._values]
        self._shuffles = [None if size is None else _Shuffle(size, f"runmanager.RandomSearch:{self._key}"
                                                             + ("" if len(self.spaces) == 1 else f":{part}"))
                          for part, size in enumerate(sizes)]
        self._turns = None if len(self.spaces) == 1 else _Turns(sizes, f"runmanager.RandomSearch:{self._key}")
        self._len = self.n_runs
        if all(size is not None for size in sizes):
            combinations = sum(sizes)  # type: ignore[arg-type]
            if combinations < self.n_runs:
                what = "The space has" if len(self.spaces) == 1 else f"The {len(self.spaces)} spaces have"
                warnings.warn(
                    f"{what} {combinations} distinct runs, fewer than n_runs={self.n_runs}; RandomSearch "
                    f"gives each once ({combinations} runs). Pass n_runs={combinations} to say so, or sweep the "
                    "space as a grid.", UserWarning, stacklevel=2)
                self._len = combinations
        self._next = 0

    @property
    def total(self) -> int | None:
        return self._len

    def __len__(self) -> int:
        return self._len

    @overload
    def __getitem__(self, index: int) -> Any: ...

    @overload
    def __getitem__(self, index: slice) -> list[Any]: ...

    def __getitem__(self, index: int | slice) -> Any:
        if isinstance(index, slice):
            return [self._run(i) for i in range(*index.indices(self._len))]
        return self._run(position_in(index, self._len, "RandomSearch", "a RandomSearch"))

    def __iter__(self) -> Iterator[Any]:
        return (self._run(i) for i in range(self._len))

    def _run(self, index: int) -> Any:
        part, turn = (0, index) if self._turns is None else self._turns(index)
        shuffle, values = self._shuffles[part], self._values[part]
        dimensions = self.spaces[part]
        if shuffle is not None:
            assert values is not None
            combination = shuffle(turn)
            params: dict[str, Any] = {}
            for name, choices in zip(reversed(list(dimensions)), reversed(values)):
                combination, position = divmod(combination, len(choices))
                params[name] = choices[position]
        else:
            import numpy as np

            # One generator per run, from (seed, index) as NumPy spawns independent streams; a RandomState
            # on it, whose API distributions written for scikit-learn's ParameterSampler call.
            rng = np.random.RandomState(np.random.MT19937(np.random.SeedSequence(self._key, spawn_key=(index,))))
            params = {name: dimension.draw(rng) for name, dimension in dimensions.items()}
        return self.run_type(**{name: params.get(name) for name in self.fields})

    def values_of(self, name: str) -> list[Any]:
        domain = self.domain(name)
        return list(domain[1]) if domain is not None and domain[0] == "discrete" else []

    def domain(self, name: str) -> tuple[str, Any] | None:
        return union_domain([dimensions[name] for dimensions in self.spaces if name in dimensions])

    def ask(self) -> Any | None:
        if self._next >= self._len:
            return None
        self._next += 1
        return self._run(self._next - 1)

    def __repr__(self) -> str:
        spaces = f"{len(self.spaces)} spaces, " if len(self.spaces) > 1 else ""
        return f"RandomSearch({spaces}{len(self.fields)} parameters, n_runs={self.n_runs}, seed={self.seed})"


class OptunaSearch(Search):
    """Adaptive search through Optuna's ask-and-tell interface: each run is proposed from the
    results of the runs before it (default sampler: TPE, seeded with ``seed``).

    The space is the one :class:`RandomSearch` takes (lists become categorical, a ``range`` an
    int range with its step; scipy's
    ``uniform``, ``loguniform`` and ``randint`` become Float/Int distributions, log for
    ``loguniform``); Optuna distributions are taken too. Each finished run is told with
    the final value of ``metric``; failed and diverged runs are told as failed. On
    ``resume=True`` the runs already in the log_dir are told to a fresh study first, so
    the search goes on informed and stops at ``n_runs`` in total. With worker executors
    a run is asked for whenever a worker is free. Needs ``runmanager[optuna]``.

    Conditional spaces, two ways:

    - a list of spaces, a union as for :class:`RandomSearch`: each trial first suggests which
      space (a categorical param named ``_space`` in the study, holding the space's index; no run
      shows it), then that space's params; a name the space lacks is ``None`` in the run.
    - a function ``space(trial) -> dict`` (Optuna's define-by-run: ``trial.suggest_*`` inside plain
      ``if``s), called with each trial; a name it does not return is ``None`` in the run. The
      fields (the ``Run``'s names, the journal's columns) are ``fields=`` when given, else the names
      it returns over 100 calls on a throwaway study with a seeded random sampler when the search
      is made; a later name outside them stops the sweep with an error that says to pass
      ``fields=``. On resume (and for a warm start) each earlier run is replayed through the
      function with ``optuna.trial.FixedTrial``, which gives back the distributions its values were
      drawn from; a run the function does not give back as it is (a value returned under another
      name than it was suggested by, a changed function) is not told.

    Warm starts: ``warm_start=`` tells the study the completed runs of an earlier sweep before the
    first ask, those whose params fit the space (a name the space lacks, or a value outside its
    distribution, leaves a run out, with a warning that counts them). A configuration with repeats
    is told once, with the mean of its completed repeats. These runs count neither against
    ``n_runs`` nor as runs of this sweep; the study marks them with the user attribute
    ``warm_start``. ``enqueue=`` runs the given configurations first (``study.enqueue_trial``),
    within ``n_runs``; a name left out is drawn by the sampler.

    With a list of metrics (and a list of modes) the search is multi-objective: the study
    has one direction per metric, each finished run is told every metric's final value,
    and the default sampler is NSGA-II (``NSGAIISampler(seed=seed)``). A numeric extra
    column (a model's parameter count from ``extra_columns()``) can be an objective. The
    sweep then records every objective, and its summary gets a ``pareto`` column; a pruner,
    which judges one metric, is refused.

    Args:
        space: names to lists or distributions; a list of those (a union); or a function
            ``space(trial) -> dict``.
        n_runs: how many runs in total.
        metric: the metric to optimise, e.g. ``"val_accuracy"``, or a list of them,
            e.g. ``["val_accuracy", "params"]``.
        mode: ``"min"`` or ``"max"``, or a list with one per metric (None in it: the
            default); default ``"min"`` for a loss or an error, else ``"max"``.
        sampler: an Optuna sampler object (``optuna.samplers.RandomSampler(seed=0)``); default
            ``TPESampler(seed=seed)``, or ``NSGAIISampler(seed=seed)`` for several metrics.
        seed: seeds the default sampler: None, or an int from 0 to 2**32 - 1.
        fields: with a space function, every name it can return, in column order.
        warm_start: an earlier sweep's log_dir (or summary .csv/.json), a summary DataFrame
            (``load_summary(...)``), or a list of dicts of params and metric values
            (``[{"lr": 0.01, "units": 64, "val_accuracy": 0.91}]``).
        enqueue: configurations to run first, a list of dicts of params (``[{"lr": 0.01}]``).

    Raises:
        InvalidArgumentError: bad ``n_runs``, ``mode`` or ``seed``; lists of metrics and modes of
            different lengths, or an empty one; a warm start from a missing folder, one without runs,
            a summary or a dict without the metric; more configurations to enqueue than ``n_runs``.
        InvalidArgumentTypeError: ``sampler`` is not an Optuna sampler object (a name such as ``"tpe"``);
            ``warm_start`` or ``enqueue`` of another type.
        InvalidGridError, InvalidGridTypeError: a bad space (see :func:`runmanager.space.parse_space`);
            a space function that raises or returns what cannot be params; an enqueued name that is
            not in the space, or a value outside its distribution.

    Examples:
        search = OptunaSearch({"lr": loguniform(1e-4, 1e-1), "units": randint(16, 257)},
                              n_runs=30, metric="val_accuracy", seed=0)
        m.sweep(train, search)
        both = OptunaSearch(space, n_runs=60, metric=["val_accuracy", "params"], mode=["max", "min"], seed=0)

        def space(trial):
            model = trial.suggest_categorical("model", ["dense", "residual"])
            if model == "dense":
                return {"model": model, "units": trial.suggest_int("units", 16, 256, log=True)}
            return {"model": model, "depth": trial.suggest_int("depth", 2, 8)}
        m.sweep(train, OptunaSearch(space, 40, metric="val_loss", warm_start="runs/earlier",
                                    enqueue=[{"model": "dense", "units": 64}], seed=0))
    """

    def __init__(self, space: Mapping[str, Any] | Sequence[Mapping[str, Any]] | Callable[[Any], Mapping[str, Any]],
                 n_runs: int, *, metric: str | Sequence[str], mode: str | Sequence[str | None] | None = None,
                 sampler: Any = None, seed: int | None = None, fields: Sequence[str] | None = None,
                 warm_start: Any = None, enqueue: Sequence[Mapping[str, Any]] | None = None) -> None:
        try:
            import optuna
        except ImportError:
            raise missing_extra("optuna", "optuna", "OptunaSearch") from None
        from runmanager.optuna_space import FunctionSpace, OneSpace, study_space

        optuna.logging.set_verbosity(optuna.logging.WARNING)
        self.n_runs = _check_n_runs(n_runs)
        #: every (metric, mode) the study optimises, in the order of its directions
        self.objectives = resolve_objectives(metric, mode, who="OptunaSearch")
        self.metric, self.mode = self.objectives[0]
        check_seed(seed, type_error=InvalidGridTypeError)
        _check_sampler(sampler, optuna)
        self._space = study_space(space, fields)
        self.fields = self._space.fields
        if isinstance(self._space, OneSpace):
            #: the dimensions of a single space (None for a list of spaces or a function)
            self.space: dict[str, Dimension] | None = self._space.dimensions
        else:
            self.space = None
        #: the Optuna distributions by name of a single space; one dict per space of a list; None for a function
        self.distributions = None if isinstance(self._space, FunctionSpace) else self._space.distributions  # type: ignore[attr-defined]
        #: the space function, if the space is one
        self.space_fn = self._space.function if isinstance(self._space, FunctionSpace) else None
        if sampler is None:
            several = len(self.objectives) > 1
            sampler = optuna.samplers.NSGAIISampler(seed=seed) if several else optuna.samplers.TPESampler(seed=seed)
        self.study = optuna.create_study(
            directions=["minimize" if how == "min" else "maximize" for _, how in self.objectives],
            sampler=sampler,
        )
        self._optuna = optuna
        self._asked = 0
        self._trials: dict[str, Any] = {}  # run id -> the trial asked for it, until told
        self._known: dict[str, RunRecord] = {}  # run id -> a finished run (this sweep or the journal)
        #: how many configurations of ``warm_start`` were told to the study
        self.warm_started = 0
        queued = self._check_enqueue(enqueue)
        if warm_start is not None:
            self._warm_start(warm_start)
        for params in queued:
            self.study.enqueue_trial(params)

    @property
    def total(self) -> int | None:
        return self.n_runs

    def domain(self, name: str) -> tuple[str, Any] | None:
        return self._space.domain(name)

    def values_of(self, name: str) -> list[Any]:
        domain = self.domain(name)
        return list(domain[1]) if domain is not None and domain[0] == "discrete" else []

    def _values(self, record: RunRecord) -> list[float] | None:
        """The final value of every objective of a run, or None when one is missing."""
        values = [record.final(name) for name, _ in self.objectives]
        return None if any(value is None for value in values) else values  # type: ignore[return-value]

    def _check_enqueue(self, enqueue: Any) -> list[dict[str, Any]]:
        """The configurations to run first, as the study takes them, checked against the space."""
        if enqueue is None:
            return []
        if (isinstance(enqueue, (str, bytes, Mapping)) or not isinstance(enqueue, Sequence)
                or not all(isinstance(params, Mapping) for params in enqueue)):
            raise InvalidArgumentTypeError(
                f"enqueue must be a list of dicts of params to run first, e.g. enqueue=[{{'lr': 0.01}}], "
                f"got {enqueue!r}."
            )
        if len(enqueue) > self.n_runs:
            raise InvalidArgumentError(
                f"enqueue holds {len(enqueue)} configurations, more than n_runs={self.n_runs}, and they run within "
                f"n_runs; give at most {self.n_runs}, or a larger n_runs."
            )
        return [self._space.enqueue(params) for params in enqueue]

    def _warm_start(self, source: Any) -> None:
        """Tell the study the completed configurations of an earlier sweep that fit the space."""
        from runmanager.warm_start import earlier_runs

        runs = earlier_runs(source, [name for name, _ in self.objectives], self.fields)
        left_out = []
        for run in runs:
            replayed = self._space.replay(run.params)
            if isinstance(replayed, str):
                left_out.append((run.params, replayed))
                continue
            params, distributions = replayed
            self.study.add_trial(self._optuna.trial.create_trial(
                params=params, distributions=distributions, values=run.values, user_attrs={"warm_start": True}))
            self.warm_started += 1
        if left_out:
            params, why = left_out[0]
            warnings.warn(
                f"warm_start: {len(left_out)} of {len(runs)} completed configurations do not fit this space and are "
                f"not told to Optuna (the first, {params!r}: {why}).", UserWarning, stacklevel=3)

    def start(self, results: Results) -> None:
        """Tell a fresh study the finished runs of the log_dir, so a resumed search goes on informed."""
        for record in results.runs.values():
            if not record.status.finished:
                continue
            replayed = self._space.replay(record.params)
            if isinstance(replayed, str):
                continue  # a run outside this space: nothing to learn from it here
            params, distributions = replayed
            values = self._values(record)
            state = self._state(record, values)
            self.study.add_trial(self._optuna.trial.create_trial(
                params=params, distributions=distributions, state=state,
                values=values if state == self._optuna.trial.TrialState.COMPLETE else None))
            self._known[record.run_id] = record
        self._asked = len(self._known)

    def _state(self, record: RunRecord, values: list[float] | None) -> Any:
        states = self._optuna.trial.TrialState
        if record.status == Status.PRUNED:
            return states.PRUNED
        return states.COMPLETE if record.status == Status.COMPLETED and values is not None else states.FAIL

    def ask(self) -> Any | None:
        while self._asked < self.n_runs:
            trial, params = self._space.ask(self.study)
            run = self.make_run(params)
            rid = run_id(run._asdict())
            known = self._known.get(rid)
            if rid in self._trials or known is not None:
                # Proposed again: tell what is known at once, and ask for another run.
                values = self._values(known) if known is not None else None
                state = self._state(known, values) if known is not None else self._optuna.trial.TrialState.FAIL
                self.study.tell(trial, values if state == self._optuna.trial.TrialState.COMPLETE else None,
                                state=state)
                continue
            self._trials[rid] = trial
            self._asked += 1
            return run
        return None

    def tell(self, run: Any, record: RunRecord) -> None:
        trial = self._trials.pop(record.run_id, None)
        if trial is None:
            return
        self._known[record.run_id] = record
        values = self._values(record)
        if record.status == Status.COMPLETED and values is None:
            missing = [name for name, _ in self.objectives if record.final(name) is None]
            logged = ", ".join(dict.fromkeys(m for e in record.epochs for m in (*e.metrics, *e.extras))) \
                or "no metric"
            self.study.tell(trial, state=self._optuna.trial.TrialState.FAIL)
            raise MissingMetricError(
                f"OptunaSearch optimises {missing[0]!r}, which run {record.number} never logged (it logged "
                f"{logged}); pass one of those as metric=."
            )
        state = self._state(record, values)
        if state == self._optuna.trial.TrialState.COMPLETE:
            self.study.tell(trial, values)
        elif record.status == Status.PRUNED:
            self.study.tell(trial, state=self._optuna.trial.TrialState.PRUNED)
        elif record.status != Status.INTERRUPTED:
            self.study.tell(trial, state=state)

    def __repr__(self) -> str:
        metric = self.metric if len(self.objectives) == 1 else [name for name, _ in self.objectives]
        return f"OptunaSearch({self._space.describe()}, n_runs={self.n_runs}, metric={metric!r})"


# Optuna's samplers by the short names other tools give them, for the message that refuses a name.
_SAMPLER_NAMES = {"tpe": "TPESampler", "random": "RandomSampler", "cmaes": "CmaEsSampler", "cma": "CmaEsSampler",
                  "nsgaii": "NSGAIISampler", "nsga2": "NSGAIISampler", "qmc": "QMCSampler", "gp": "GPSampler",
                  "grid": "GridSampler", "bruteforce": "BruteForceSampler"}


def _check_sampler(sampler: Any, optuna: Any) -> None:
    """Refuse a sampler that is not an Optuna sampler object, before the study is made."""
    base = optuna.samplers.BaseSampler
    if sampler is None or isinstance(sampler, base):
        return
    if isinstance(sampler, type) and issubclass(sampler, base):
        fix = f"an instance: sampler=optuna.samplers.{sampler.__name__}(seed=0)"
    elif isinstance(sampler, str) and (known := _SAMPLER_NAMES.get(sampler.lower().replace("-", "").replace("_", ""))):
        fix = f"the sampler object: sampler=optuna.samplers.{known}(seed=0)"
    else:
        fix = "an Optuna sampler object, e.g. sampler=optuna.samplers.TPESampler(seed=0), or None for TPE"
    raise InvalidArgumentTypeError(
        f"sampler must be an Optuna sampler (an optuna.samplers.BaseSampler), got {sampler!r}; give {fix}."
    )


def as_search(params: Any) -> Search:
    """What a sweep's ``params`` stand for: a search, a grid, or a list of runs.

    Examples:
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

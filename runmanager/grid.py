"""The grid of runs: every combination of the parameter values, as namedtuples.

:class:`RunBuilder` is a lazy, read-only sequence over the Cartesian product of
the value lists, in :func:`itertools.product` order (the first key varies
slowest). Nothing is materialised, so a grid of 10**12 runs costs no memory.
"""

from __future__ import annotations

import collections
import itertools
import keyword
import math
import random
from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence
from typing import Any, overload

from runmanager.errors import InvalidGridError, InvalidGridTypeError, check_seed, is_int

__all__ = ["METRIC_NAMES", "RESERVED_NAMES", "RunBuilder", "check_param_name", "check_run_params", "position_in",
           "python_scalar"]

#: Column names that runmanager itself writes; a parameter may not take one.
RESERVED_NAMES = frozenset(
    {"run", "epoch", "epoch_duration", "run_duration", "status", "epochs", "error", "run_id"}
)

_KERAS_METRICS = (
    # The names Keras logs: the loss, and the metric names model.compile(metrics=[...]) takes as strings
    # (keras.metrics.get), which Keras logs under the same name. Generic names Keras also knows ("mean",
    # "sum", "metric") and the learning_rate that some callbacks log are left to users: they are common
    # parameter names, and a clash with them still stops the sweep at its first run.
    "loss", "accuracy", "acc", "crossentropy", "auc", "bce", "binary_accuracy", "binary_crossentropy",
    "binary_focal_crossentropy", "categorical_accuracy", "categorical_crossentropy", "categorical_focal_crossentropy",
    "categorical_hinge", "concordance_correlation", "cosine_similarity", "f1_score", "f_beta_score",
    "false_negatives", "false_positives", "hinge", "huber", "kl_divergence", "log_cosh", "log_cosh_error", "mae", "mape", "mean_absolute_error", "mean_absolute_percentage_error",
    "mean_squared_error", "mean_squared_logarithmic_error", "mse", "msle", "pearson_correlation", "poisson",
    "precision", "precision_at_recall", "r2_score", "recall", "recall_at_precision", "root_mean_squared_error",
    "sensitivity_at_specificity", "sparse_categorical_accuracy", "sparse_categorical_crossentropy",
    "sparse_top_k_categorical_accuracy", "specificity_at_sensitivity", "squared_hinge", "top_k_categorical_accuracy",
    "true_negatives", "true_positives",
)

#: Metric names Keras logs (``loss``, ``accuracy``, ``mse``...) and their ``val_`` twins: a parameter
#: of that name would clash with the metric's column in every epoch row.
METRIC_NAMES = frozenset(_KERAS_METRICS) | frozenset(f"val_{name}" for name in _KERAS_METRICS)

_RENAMES = {"epochs": "num_epochs", "epoch": "num_epochs", "run": "trial", "loss": "loss_fn", "val_loss": "loss_fn"}

# Above this many runs a filtered sample draws at random instead of scanning.
_SCAN_LIMIT = 1_000_000


def _is_hparam(key: Any) -> bool:
    """True for a TensorBoard ``hp.HParam`` (duck-typed, so tensorboard stays optional)."""
    return hasattr(key, "name") and hasattr(key, "domain") and not isinstance(key, str)


def _domain_kind(domain: Any) -> str:
    kind = type(domain).__name__
    if kind not in ("Discrete", "RealInterval", "IntInterval"):
        raise InvalidGridTypeError(
            f"HParam domain {domain!r} is not supported; use hp.Discrete, "
            "hp.RealInterval or hp.IntInterval."
        )
    return kind


def python_scalar(value: Any) -> Any:
    """NumPy scalars become plain Python values, so runs print and serialise cleanly.

    Examples:
        >>> import numpy as np
        >>> type(python_scalar(np.float64(0.5))).__name__
        'float'
    """
    item = getattr(value, "item", None)
    if item is not None and type(value).__module__ == "numpy" and getattr(value, "shape", None) == ():
        return item()
    return value


def _domain_values(name: str, domain: Any, points: int | None) -> tuple[Any, ...]:
    """The values an HParam's domain stands for in a grid."""
    kind = _domain_kind(domain)
    if kind == "Discrete":
        return tuple(domain.values)
    low, high = domain.min_value, domain.max_value
    if points is None or points == 2:
        return (low, high) if low != high else (low,)
    if points == 1:
        return (low,)
    step = (high - low) / (points - 1)
    # Rounded to 12 significant digits, so 0.1 + 0.05 shows as 0.15, not 0.15000000000000002.
    values = [float(f"{low + i * step:.12g}") for i in range(points - 1)] + [high]
    if kind == "IntInterval":
        values = [int(round(v)) for v in values]
    return tuple(dict.fromkeys(values))


def _check_in_domain(name: str, domain: Any, values: tuple[Any, ...]) -> None:
    kind = _domain_kind(domain)
    for value in values:
        if kind == "Discrete":
            inside = value in domain.values
        else:
            inside = isinstance(value, (int, float)) and domain.min_value <= value <= domain.max_value
        if not inside:
            raise InvalidGridError(
                f"Value {value!r} of parameter {name!r} is outside its HParam domain "
                f"{domain!r}; use values from the domain or widen the domain."
            )


def check_param_name(name: Any, key: Any) -> str:
    """``name`` if it can be a parameter: a str that is a namedtuple field and not a column
    runmanager writes; ``key`` is what the user wrote, for the message.

    Examples:
        >>> check_param_name("learning_rate", "learning_rate")
        'learning_rate'
    """
    if not isinstance(name, str):
        raise InvalidGridTypeError(
            f"Parameter key {key!r} must be a str or a TensorBoard hp.HParam, "
            f"not {type(key).__name__}."
        )
    if not name.isidentifier() or keyword.iskeyword(name) or name.startswith("_"):
        raise InvalidGridError(
            f"Parameter name {name!r} cannot be a field of the Run namedtuple: use a Python "
            "identifier that is not a keyword and does not start with '_' (e.g. 'learning_rate')."
        )
    if name in RESERVED_NAMES:
        raise InvalidGridError(
            f"Parameter name {name!r} is a column runmanager writes itself "
            f"({', '.join(sorted(RESERVED_NAMES))}); rename the parameter "
            f"(e.g. {_RENAMES.get(name, name + '_')!r})."
        )
    if name in METRIC_NAMES:
        raise InvalidGridError(
            f"Parameter name {name!r} is the name of a metric Keras logs, so every epoch row would have two "
            f"{name!r} columns; rename the parameter (e.g. {_RENAMES.get(name, name + '_')!r})."
        )
    return name


def check_run_params(params: Mapping[str, Any], fields: tuple[str, ...]) -> None:
    """Refuse names in ``params`` that are not ``fields``: a run made from them would drop them silently.

    Examples:
        >>> check_run_params({"b": 1}, ("a",))
        Traceback (most recent call last):
        ...
        runmanager.errors.InvalidGridError: 'b' is not a parameter of these runs, whose parameters are 'a'; ...
    """
    unknown = [name for name in params if name not in fields]
    if unknown:
        raise InvalidGridError(
            f"{unknown[0]!r} is not a parameter of these runs, whose parameters are "
            f"{', '.join(map(repr, fields))}; give only those names (a missing one is None)."
        )


def _value_list(name: str, values: Any) -> tuple[Any, ...]:
    if isinstance(values, (str, bytes)) or isinstance(values, Mapping) or not isinstance(values, Iterable):
        raise InvalidGridTypeError(
            f"Parameter {name!r} has the value {values!r}, which is not a list of values. "
            f"Single values need to be wrapped in a list: {name}=[{values!r}]."
        )
    result = tuple(python_scalar(v) for v in values)
    if not result:
        raise InvalidGridError(
            f"Parameter {name!r} has an empty list of values {values!r}; give it at least one "
            "value or remove the key."
        )
    return result


class _SubGrid:
    """One mapping of a union: names, value lists, and the product's size."""

    __slots__ = ("names", "values", "size")

    def __init__(self, names: tuple[str, ...], values: tuple[tuple[Any, ...], ...]) -> None:
        self.names = names
        self.values = values
        self.size = math.prod(len(v) for v in values)

    def combination(self, index: int) -> dict[str, Any]:
        """Decode ``index`` with divmod, the last key varying fastest."""
        chosen: dict[str, Any] = {}
        for name, values in zip(reversed(self.names), reversed(self.values)):
            index, position = divmod(index, len(values))
            chosen[name] = values[position]
        return chosen

    def combinations(self) -> Iterator[dict[str, Any]]:
        for combo in itertools.product(*self.values):
            yield dict(zip(self.names, combo))


def position_in(index: Any, size: int, kind: str, noun: str) -> int:
    """The position ``index`` names in a sequence of ``size`` runs (a negative one counts from
    the end), or the error a sequence raises: ``kind`` and ``noun`` name it in the message.

    Examples:
        >>> position_in(-1, 4, "Grid", "a grid")
        3
    """
    if not is_int(index):
        raise InvalidGridTypeError(f"{kind} indices must be integers, not {type(index).__name__}.")
    position = index + size if index < 0 else index
    if not 0 <= position < size:
        raise IndexError(f"run index {index} out of range for {noun} of {size} runs")
    return position


class RunBuilder(Sequence):
    """A lazy grid of runs: every combination of the parameter values.

    Args:
        params: a mapping from parameter name to a list of values, or a list of
            such mappings (a union of grids, as scikit-learn's ``ParameterGrid``
            takes). Keys are ``str`` or TensorBoard ``hp.HParam`` objects; an
            HParam whose value is ``None`` takes its values from its domain.
        where: an optional ``run -> bool`` filter; runs for which it returns a
            false value are left out.
        points: for HParams with an interval domain and no values, how many
            evenly spaced values to take (default: the two ends, ``[min, max]``).

    Raises:
        InvalidGridError: an empty grid, an empty value list, a bad or duplicated name.
        InvalidGridTypeError: a value that is not a list, a key of the wrong type.

    Examples:
        >>> grid = RunBuilder({"lr": [0.01, 0.001], "batch_size": [32, 64]})
        >>> len(grid)
        4
        >>> grid[1]
        Run(lr=0.01, batch_size=64)
        >>> grid[-1]._asdict()
        {'lr': 0.001, 'batch_size': 64}
    """

    def __init__(
        self,
        params: Mapping[Any, Any] | Sequence[Mapping[Any, Any]],
        where: Callable[[Any], bool] | None = None,
        *,
        points: int | None = None,
    ) -> None:
        if points is not None and (not is_int(points) or points < 1):
            raise InvalidGridError(f"points must be a positive int, got {points!r}.")
        if where is not None and not callable(where):
            raise InvalidGridTypeError(
                f"where must be a function taking a run and returning a bool, got {where!r}."
            )
        if isinstance(params, Mapping):
            grids = [params]
        elif isinstance(params, Sequence) and not isinstance(params, (str, bytes)):
            grids = list(params)
            if not grids:
                raise InvalidGridError(
                    "The list of grids is empty; give at least one mapping of parameter lists."
                )
        else:
            raise InvalidGridTypeError(
                f"params must be a mapping of parameter lists, or a list of such mappings, "
                f"not {type(params).__name__}: {params!r}."
            )
        self._hparams: dict[str, Any] = {}
        self._subgrids: list[_SubGrid] = []
        fields: dict[str, None] = {}
        for grid in grids:
            if not isinstance(grid, Mapping):
                raise InvalidGridTypeError(
                    f"Each grid in the list must be a mapping of parameter lists, got {grid!r}."
                )
            if not grid:
                raise InvalidGridError(
                    f"The grid {grid!r} is empty; give it at least one parameter with a list of values."
                )
            names: list[str] = []
            value_lists: list[tuple[Any, ...]] = []
            for key, values in grid.items():
                hparam = key if _is_hparam(key) else None
                name = check_param_name(hparam.name if hparam is not None else key, key)
                if name in names:
                    raise InvalidGridError(
                        f"Parameter {name!r} appears twice in one grid (as {key!r}); "
                        "give each parameter one key."
                    )
                if hparam is not None:
                    if values is None:
                        value_list = _domain_values(name, hparam.domain, points)
                    else:
                        value_list = _value_list(name, values)
                        _check_in_domain(name, hparam.domain, value_list)
                    self._hparams[name] = hparam
                elif values is None:
                    raise InvalidGridTypeError(
                        f"Parameter {name!r} has the value None; only a TensorBoard hp.HParam key "
                        f"takes its values from a domain. Give a list: {name}=[...]."
                    )
                else:
                    value_list = _value_list(name, values)
                names.append(name)
                value_lists.append(value_list)
                fields[name] = None
            self._subgrids.append(_SubGrid(tuple(names), tuple(value_lists)))
        self._fields = tuple(fields)
        self._run_type = collections.namedtuple("Run", self._fields)  # type: ignore[misc]
        self._where = where
        self._filtered_len: int | None = None

    # -- the classic static call -------------------------------------------------
    @staticmethod
    def get_runs(params: Mapping[Any, Any] | Sequence[Mapping[Any, Any]]) -> list[Any]:
        """Every run of ``params`` as a list of ``Run`` namedtuples, in product order.

        Examples:
            >>> from collections import OrderedDict
            >>> runs = RunBuilder.get_runs(OrderedDict(lr=[0.01, 0.001], optimizer=["adam", "sgd"]))
            >>> runs[1]
            Run(lr=0.01, optimizer='sgd')
        """
        return list(RunBuilder(params))

    @classmethod
    def from_hparams(
        cls,
        hparams: Iterable[Any],
        *,
        points: int | None = None,
        where: Callable[[Any], bool] | None = None,
    ) -> RunBuilder:
        """A grid over TensorBoard HParams, each taking its values from its domain.

        ``Discrete`` gives its values; ``RealInterval``/``IntInterval`` give
        ``[min, max]``, or ``points`` evenly spaced values when asked.

        Examples:
            >>> from tensorboard.plugins.hparams import api as hp
            >>> grid = RunBuilder.from_hparams(
            ...     [hp.HParam("units", hp.Discrete([16, 32])), hp.HParam("dropout", hp.RealInterval(0.1, 0.2))])
            >>> list(grid)
            [Run(units=16, dropout=0.1), Run(units=16, dropout=0.2), Run(units=32, dropout=0.1), Run(units=32, dropout=0.2)]
        """
        hparams = list(hparams)
        for hparam in hparams:
            if not _is_hparam(hparam):
                raise InvalidGridTypeError(
                    f"from_hparams takes TensorBoard hp.HParam objects, got {hparam!r}; "
                    "use RunBuilder({...}) for plain parameter lists."
                )
        return cls({h: None for h in hparams}, where=where, points=points)

    # -- what the grid is made of --------------------------------------------------
    @property
    def fields(self) -> tuple[str, ...]:
        """The parameter names, in order of first appearance."""
        return self._fields

    @property
    def run_type(self) -> type:
        """The ``Run`` namedtuple class of this grid."""
        return self._run_type

    @property
    def hparams(self) -> dict[str, Any]:
        """The TensorBoard ``HParam`` objects the grid was built from, by name."""
        return dict(self._hparams)

    def values_of(self, name: str) -> list[Any]:
        """Every distinct value parameter ``name`` takes in the grid, in order (filters ignored).

        Examples:
            >>> RunBuilder([{"a": [1, 2]}, {"a": [2, 3], "b": ["x"]}]).values_of("b")
            [None, 'x']
        """
        if name not in self._fields:
            raise KeyError(f"{name!r} is not a parameter of this grid; its parameters are {self._fields}.")
        seen: dict[Any, None] = {}
        for grid in self._subgrids:
            values = grid.values[grid.names.index(name)] if name in grid.names else (None,)
            for value in values:
                try:
                    seen.setdefault(value, None)
                except TypeError:  # unhashable value: compare by repr
                    seen.setdefault(repr(value), None)
        return list(seen)

    def make_run(self, params: Mapping[str, Any]) -> Any:
        """A ``Run`` of this grid from a mapping; fields it lacks are ``None``.

        Raises:
            InvalidGridError: the mapping has a name that is not a field of the grid.

        Examples:
            >>> RunBuilder({"a": [1], "b": [2]}).make_run({"b": 3})
            Run(a=None, b=3)
        """
        check_run_params(params, self._fields)
        return self._build(params)

    def _build(self, params: Mapping[str, Any]) -> Any:
        return self._run_type(**{name: params.get(name) for name in self._fields})

    # -- the sequence ----------------------------------------------------------------
    @property
    def _product_len(self) -> int:
        return sum(grid.size for grid in self._subgrids)

    def _unfiltered(self, index: int) -> Any:
        for grid in self._subgrids:
            if index < grid.size:
                return self._build(grid.combination(index))
            index -= grid.size
        raise IndexError(index)  # pragma: no cover - callers bound the index

    def _all_runs(self) -> Iterator[Any]:
        for grid in self._subgrids:
            for combo in grid.combinations():
                yield self._build(combo)

    def __iter__(self) -> Iterator[Any]:
        runs = self._all_runs()
        return runs if self._where is None else (run for run in runs if self._where(run))

    def __len__(self) -> int:
        if self._where is None:
            return self._product_len
        if self._filtered_len is None:
            self._filtered_len = sum(1 for _ in self)
        return self._filtered_len

    @overload
    def __getitem__(self, index: int) -> Any: ...

    @overload
    def __getitem__(self, index: slice) -> list[Any]: ...

    def __getitem__(self, index: int | slice) -> Any:
        if isinstance(index, slice):
            return [self[i] for i in range(*index.indices(len(self)))]
        index = position_in(index, len(self), "Grid", "a grid")
        if self._where is None:
            return self._unfiltered(index)
        return next(itertools.islice(iter(self), index, None))

    def sample(self, k: int, seed: int | None = None) -> list[Any]:
        """``k`` distinct runs drawn at random, the same ones for the same ``seed``
        (None, or an int from 0 to 2**32 - 1, as everywhere in runmanager).

        The product is never materialised: indices are drawn from its range.

        Examples:
            >>> grid = RunBuilder({"a": range(1000), "b": range(1000)})
            >>> grid.sample(2, seed=0) == grid.sample(2, seed=0)
            True
        """
        if not is_int(k) or k < 0:
            raise InvalidGridError(f"sample size k must be a non-negative int, got {k!r}.")
        check_seed(seed, type_error=InvalidGridTypeError)
        rng = random.Random(seed)
        if self._where is None:
            size = self._product_len
            if k > size:
                raise InvalidGridError(f"Cannot sample {k} distinct runs from a grid of {size}; ask for at most {size}.")
            return [self._unfiltered(i) for i in rng.sample(range(size), k)]
        size = self._product_len
        if size <= _SCAN_LIMIT:
            matching = [i for i in range(size) if self._where(self._unfiltered(i))]
            if k > len(matching):
                raise InvalidGridError(
                    f"Cannot sample {k} distinct runs from a filtered grid of {len(matching)}; "
                    f"ask for at most {len(matching)}."
                )
            return [self._unfiltered(i) for i in rng.sample(matching, k)]
        # A huge filtered grid: draw indices until k of them pass the filter.
        chosen: dict[int, Any] = {}
        tried: set[int] = set()
        while len(chosen) < k:
            if len(tried) >= size:
                raise InvalidGridError(f"Cannot sample {k} distinct runs: only {len(chosen)} pass the filter.")
            index = rng.randrange(size)
            if index in tried:
                continue
            tried.add(index)
            run = self._unfiltered(index)
            if self._where(run):
                chosen[index] = run
        return list(chosen.values())

    def __repr__(self) -> str:
        grids = [
            "{" + ", ".join(f"{n!r}: {list(v)!r}" for n, v in zip(g.names, g.values)) + "}"
            for g in self._subgrids
        ]
        body = grids[0] if len(grids) == 1 else "[" + ", ".join(grids) + "]"
        where = "" if self._where is None else ", where=..."
        return f"RunBuilder({body}{where})"


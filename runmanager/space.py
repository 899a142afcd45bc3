"""Search spaces: what random and adaptive searches draw runs from.

A space maps parameter names to a list of values (drawn uniformly; a ``range``
or a 1-D NumPy array is a list too) or to a distribution with
``rvs(random_state=...)``, as scikit-learn's ``ParameterSampler`` takes:
scipy.stats' frozen ``loguniform(1e-4, 1e-1)``, ``randint(16, 257)``,
``uniform(0, 0.5)``. :class:`~runmanager.OptunaSearch` also takes Optuna
distributions. Values in runs are plain Python values (never NumPy scalars), so
names, TensorBoard and JSON stay clean.

Every distribution is drawn from once when the space is parsed, so bad bounds
(``loguniform(0.1, 0.001)``, ``randint(5, 5)``) are refused before any run.

A list of spaces is a union, as a list of grids is for :class:`~runmanager.RunBuilder`: a run
comes from one of them, and a name that its space lacks is ``None`` in it
(:func:`parse_spaces`, :func:`union_fields`, :func:`union_domain`).

Nothing here imports scipy or Optuna: a distribution is recognised by what it does.
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from runmanager.errors import InvalidGridError, InvalidGridTypeError
from runmanager.grid import check_param_name, python_scalar

__all__ = ["Dimension", "describe", "parse_space", "parse_spaces", "union_domain", "union_fields"]

_SCALARS = (bool, int, float, str, type(None))

# What to show as the parameters of a scipy distribution given without them.
_EXAMPLES = {"loguniform": "1e-4, 1e-1", "reciprocal": "1e-4, 1e-1", "uniform": "0, 0.5", "randint": "16, 257"}


def _is_optuna_distribution(value: Any) -> bool:
    return any(cls.__name__ == "BaseDistribution" and cls.__module__.startswith("optuna")
               for cls in type(value).__mro__)


def describe(distribution: Any) -> str:
    """A frozen scipy.stats distribution as it was written, else its repr.

    Examples:
        >>> from scipy.stats import loguniform
        >>> describe(loguniform(0.1, 0.001))
        'loguniform(0.1, 0.001)'
    """
    name = getattr(getattr(distribution, "dist", None), "name", None)
    args, kwds = getattr(distribution, "args", None), getattr(distribution, "kwds", None)
    if isinstance(name, str) and isinstance(args, tuple) and isinstance(kwds, dict):
        parts = [repr(python_scalar(a)) for a in args] + [f"{k}={python_scalar(v)!r}" for k, v in kwds.items()]
        return f"{name}({', '.join(parts)})"
    return repr(distribution)


def _kind(distribution: Any) -> str:
    """The scipy.stats name of a frozen distribution (``"loguniform"``), else ``""``."""
    name = getattr(getattr(distribution, "dist", None), "name", "")
    return name if isinstance(name, str) else ""


def _unfrozen(value: Any) -> str | None:
    """The name of a scipy.stats distribution given without its parameters (``loguniform`` for
    ``loguniform(1e-4, 1e-1)``, or a distribution class), else None."""
    if isinstance(value, type):
        return value.__name__.removesuffix("_gen") if callable(getattr(value, "rvs", None)) else None
    name = getattr(value, "name", None)
    if callable(getattr(value, "freeze", None)) and getattr(value, "dist", None) is None and isinstance(name, str):
        return name
    return None


def _number(value: float) -> Any:
    """A bound computed from two others, shown without float noise (0.30000000000000004 as 0.3)."""
    return value if isinstance(value, int) else float(f"{value:.12g}")


def _how_to_fix(distribution: Any) -> str | None:
    """What the parameters of a scipy distribution that cannot draw must be, and the fix when it is plain."""
    kind = _kind(distribution)
    args = getattr(distribution, "args", ())
    pair = tuple(python_scalar(a) for a in args) if len(args) == 2 and not distribution.kwds else None
    if pair is not None and not all(isinstance(a, (int, float)) for a in pair):
        pair = None
    if kind in ("loguniform", "reciprocal"):
        rule = f"{kind}(a, b) draws between a and b and needs 0 < a < b"
        if pair is not None and 0 < pair[1] < pair[0]:
            return f"{rule}; give {kind}({pair[1]!r}, {pair[0]!r})"
        return f"{rule}, e.g. {kind}(1e-4, 1e-1)"
    if kind == "randint":
        rule = "randint(low, high) draws the ints from low to high - 1 and needs low < high"
        if pair is not None and pair[0] == pair[1]:
            return f"{rule}; for the one value {pair[0]!r} give the list [{pair[0]!r}]"
        if pair is not None and pair[0] > pair[1]:
            return f"{rule}; give randint({pair[1]!r}, {pair[0]!r})"
        return f"{rule}, e.g. randint(16, 257) for 16 to 256"
    if kind == "uniform":
        rule = "uniform(loc, scale) draws from loc to loc + scale (not from low to high) and needs scale > 0"
        if pair is not None and pair[1] < 0:
            low, high = _number(pair[0] + pair[1]), pair[0]
            return f"{rule}; give uniform({low!r}, {_number(high - low)!r}) for {low!r} to {high!r}"
        return f"{rule}, e.g. uniform(0, 0.5) for 0 to 0.5"
    return None


@dataclass(frozen=True)
class Dimension:
    """One parameter of a space: a sequence of ``choices``, or a ``distribution``."""

    name: str
    choices: Sequence[Any] | None = None
    distribution: Any = None

    @property
    def is_optuna(self) -> bool:
        return self.distribution is not None and _is_optuna_distribution(self.distribution)

    def draw(self, rng: Any) -> Any:
        """One value, drawn with ``rng`` (a ``numpy.random.RandomState``), as a plain Python value."""
        if self.choices is not None:
            return self.choices[rng.randint(len(self.choices))]
        value = python_scalar(self.distribution.rvs(random_state=rng))
        if not isinstance(value, _SCALARS) or (isinstance(value, float) and not math.isfinite(value)):
            raise InvalidGridError(
                f"Parameter {self.name!r}: the distribution {describe(self.distribution)} drew {value!r}, which "
                "cannot be a run value; give a distribution of single finite numbers (a frozen scipy.stats "
                "distribution without size=, such as loguniform(1e-4, 1e-1)) or a list of values."
            )
        return value

    def values(self) -> Sequence[Any] | None:
        """Every value the dimension draws from, each as likely: its choices, or the ints of a
        scipy ``randint``; None for other distributions."""
        if self.choices is not None:
            return self.choices
        interval = self.interval()
        if _kind(self.distribution) == "randint" and interval is not None:
            return range(int(interval[0]), int(interval[1]) + 1)
        return None

    def interval(self) -> tuple[float, float, bool] | None:
        """``(low, high, integer)`` of a bounded scipy distribution or of a range of step 1, else None."""
        if isinstance(self.choices, range) and abs(self.choices.step) == 1:
            ends = (self.choices[0], self.choices[-1])
            return float(min(ends)), float(max(ends)), True
        support = getattr(self.distribution, "support", None)
        if self.distribution is None or support is None:
            return None
        try:
            low, high = (python_scalar(v) for v in support())
        except Exception:  # noqa: BLE001 - a distribution of another library
            return None
        if not (math.isfinite(low) and math.isfinite(high)):
            return None
        return float(low), float(high), hasattr(getattr(self.distribution, "dist", None), "pmf")

    def domain(self) -> tuple[str, Any] | None:
        """What TensorBoard's HParams config shows: ``("discrete", values)``,
        ``("interval", (low, high, integer))`` or None."""
        interval = self.interval()
        if interval is not None:
            return ("interval", interval)
        if self.choices is not None:
            return ("discrete", list(self.choices))
        return None

    def check(self) -> None:
        """Draw once from a distribution, so that bad parameters are refused before any run.

        Raises:
            InvalidGridError: the distribution cannot draw, or draws what cannot be a run value.
        """
        if self.distribution is None or self.is_optuna:
            return
        import numpy as np

        try:
            self.draw(np.random.RandomState(0))
        except InvalidGridError:
            raise
        except Exception as exc:  # noqa: BLE001 - scipy's own errors, said again with the parameter's name
            fix = _how_to_fix(self.distribution)
            if fix is None:  # a distribution this module has no rule for: what it said is the best help
                fix = f"it says {type(exc).__name__}: {exc}".rstrip(".") + "; check its parameters"
            raise InvalidGridError(
                f"Parameter {self.name!r}: {describe(self.distribution)} cannot draw a value: {fix}."
            ) from exc


def _choices(name: str, value: Any) -> Sequence[Any] | None:
    """The values of a list-like space entry (a range stays a range, however long), or None."""
    if isinstance(value, range):
        return value
    if isinstance(value, (list, tuple)):
        return tuple(python_scalar(v) for v in value)
    if getattr(value, "ndim", None) == 1 and callable(getattr(value, "tolist", None)):  # a NumPy array
        return tuple(value.tolist())
    if isinstance(value, Iterable) and not isinstance(value, (str, bytes, Mapping)):
        fix = f"sorted({value!r})" if isinstance(value, (set, frozenset)) else "list(...)"
        raise InvalidGridTypeError(
            f"Parameter {name!r} has the value {value!r}, which a search cannot index (the same seed must give "
            f"the same runs in every process); give a list of its values, e.g. {name}={fix}."
        )
    return None


def parse_space(space: Any, *, optuna: bool = False) -> dict[str, Dimension]:
    """Check a space and return its dimensions in order.

    Raises:
        InvalidGridError: an empty space, an empty list of values, or a distribution that
            cannot draw (bad bounds such as ``loguniform(0.1, 0.001)``).
        InvalidGridTypeError: a value that is neither a list nor a distribution, a scipy
            distribution not frozen (``loguniform`` for ``loguniform(1e-4, 1e-1)``), or a key
            that cannot be a parameter name.

    Examples:
        >>> list(parse_space({"units": range(16, 257), "optimizer": ["adam"]}))
        ['units', 'optimizer']
    """
    if not isinstance(space, Mapping):
        raise InvalidGridTypeError(
            f"A search space must be a mapping of names to value lists or distributions, got {space!r}."
        )
    if not space:
        raise InvalidGridError("The search space is empty; give at least one parameter, e.g. {'lr': [0.1, 0.01]}.")
    dimensions: dict[str, Dimension] = {}
    for key, value in space.items():
        name = check_param_name(key, key)
        if (kind := _unfrozen(value)) is not None:
            example = _EXAMPLES.get(kind)
            raise InvalidGridTypeError(
                f"Parameter {name!r} has the value {value!r}, scipy.stats' {kind} without its parameters; give "
                + (f"a frozen distribution, e.g. {name}={kind}({example})." if example else
                   f"a frozen distribution, {name}={kind}(...) with its parameters.")
            )
        choices = _choices(name, value)
        if choices is not None:
            if not choices:
                raise InvalidGridError(
                    f"Parameter {name!r} has an empty list of values {value!r}; give at least one value."
                )
            dimensions[name] = Dimension(name, choices=choices)
        elif callable(getattr(value, "rvs", None)) or (optuna and _is_optuna_distribution(value)):
            dimensions[name] = Dimension(name, distribution=value)
            dimensions[name].check()
        else:
            what = "a list, a distribution with rvs() (scipy.stats)" + (" or an Optuna distribution" if optuna else "")
            raise InvalidGridTypeError(
                f"Parameter {name!r} has the value {value!r}, which is neither a list of values nor a "
                f"distribution; give {what}, e.g. {name}=[{value!r}] or {name}=loguniform(1e-4, 1e-1)."
            )
    return dimensions


def parse_spaces(space: Any, *, optuna: bool = False) -> list[dict[str, Dimension]]:
    """Check a space or a list of spaces (a union) and return the dimensions of each.

    Raises:
        InvalidGridError: an empty list, or a bad space in it (see :func:`parse_space`).
        InvalidGridTypeError: neither a mapping nor a list of mappings.

    Examples:
        >>> [list(dimensions) for dimensions in parse_spaces([{"units": [16, 32]}, {"depth": [1, 2]}])]
        [['units'], ['depth']]
    """
    if isinstance(space, Mapping):
        return [parse_space(space, optuna=optuna)]
    if not isinstance(space, Sequence) or isinstance(space, (str, bytes)):
        raise InvalidGridTypeError(
            f"A search space must be a mapping of names to value lists or distributions, or a list of such "
            f"mappings (a union), got {space!r}."
        )
    if not space:
        raise InvalidGridError(
            "The list of spaces is empty; give at least one mapping, e.g. [{'units': [16, 32]}, {'depth': [1, 2]}]."
        )
    for part in space:
        if not isinstance(part, Mapping):
            raise InvalidGridTypeError(
                f"Each space in the list must be a mapping of names to value lists or distributions, got {part!r}."
            )
    return [parse_space(part, optuna=optuna) for part in space]


def union_fields(spaces: Sequence[Mapping[str, Any]]) -> tuple[str, ...]:
    """The names of a union of spaces, in the order they first appear (as a list of grids has them).

    Examples:
        >>> union_fields([{"model": 1, "units": 2}, {"model": 1, "depth": 3}])
        ('model', 'units', 'depth')
    """
    return tuple(dict.fromkeys(name for space in spaces for name in space))


def union_domain(dimensions: Sequence[Dimension]) -> tuple[str, Any] | None:
    """The domain of one name over the spaces of a union that have it: the widest interval when
    every one is an interval (integer when all are), every value in order when every one is a
    list, else None (described by the values that ran).

    Examples:
        >>> union_domain([Dimension("units", choices=range(4, 9)), Dimension("units", choices=range(16, 33))])
        ('interval', (4.0, 32.0, True))
        >>> union_domain([Dimension("act", choices=("relu",)), Dimension("act", choices=("tanh", "relu"))])
        ('discrete', ['relu', 'tanh'])
    """
    domains = [dimension.domain() for dimension in dimensions]
    if not domains or any(domain is None for domain in domains):
        return None
    kinds = {kind for kind, _ in domains}  # type: ignore[misc]
    if kinds == {"interval"}:
        intervals = [spec for _, spec in domains]  # type: ignore[misc]
        return ("interval", (min(low for low, _, _ in intervals), max(high for _, high, _ in intervals),
                             all(integer for _, _, integer in intervals)))
    if kinds == {"discrete"}:
        values: dict[tuple[str, str], Any] = {}  # by type and repr: 1 and True, or lists, stay apart
        for _, spec in domains:  # type: ignore[misc]
            for value in spec:
                values.setdefault((type(value).__name__, repr(value)), value)
        return ("discrete", list(values.values()))
    return None

"""Search spaces: what random and adaptive searches draw runs from.

A space maps parameter names to a list of values (drawn uniformly) or to a
distribution with ``rvs(random_state=...)``, as scikit-learn's
``ParameterSampler`` takes: scipy.stats' frozen ``loguniform(1e-4, 1e-1)``,
``randint(16, 257)``, ``uniform(0, 0.5)``. :class:`~runmanager.OptunaSearch`
also takes Optuna distributions. Values in runs are plain Python values (never
NumPy scalars), so names, TensorBoard and JSON stay clean.

Nothing here imports scipy or Optuna: a distribution is recognised by what it does.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from runmanager.errors import InvalidGridError, InvalidGridTypeError
from runmanager.grid import check_param_name, python_scalar

__all__ = ["Dimension", "parse_space"]

_SCALARS = (bool, int, float, str, type(None))


def _is_optuna_distribution(value: Any) -> bool:
    return any(cls.__name__ == "BaseDistribution" and cls.__module__.startswith("optuna")
               for cls in type(value).__mro__)


@dataclass(frozen=True)
class Dimension:
    """One parameter of a space: a list of ``choices``, or a ``distribution``."""

    name: str
    choices: tuple[Any, ...] | None = None
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
                f"Parameter {self.name!r}: the distribution {self.distribution!r} drew {value!r}, which "
                "cannot be a run value; give a distribution of single finite numbers (a frozen scipy.stats "
                "distribution without size=, such as loguniform(1e-4, 1e-1)) or a list of values."
            )
        return value

    def interval(self) -> tuple[float, float, bool] | None:
        """``(low, high, integer)`` of a bounded scipy distribution, else None."""
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
        if self.choices is not None:
            return ("discrete", list(self.choices))
        interval = self.interval()
        return ("interval", interval) if interval is not None else None


def parse_space(space: Any, *, optuna: bool = False) -> dict[str, Dimension]:
    """Check a space and return its dimensions in order.

    Raises:
        InvalidGridError: an empty space or an empty list of values.
        InvalidGridTypeError: a value that is neither a list nor a distribution, or a key
            that cannot be a parameter name.

    Examples:
        >>> list(parse_space({"units": [16, 32], "optimizer": ["adam"]}))
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
        if isinstance(value, (list, tuple)):
            choices = tuple(python_scalar(v) for v in value)
            if not choices:
                raise InvalidGridError(f"Parameter {name!r} has an empty list of values; give at least one value.")
            dimensions[name] = Dimension(name, choices=choices)
        elif callable(getattr(value, "rvs", None)) or (optuna and _is_optuna_distribution(value)):
            dimensions[name] = Dimension(name, distribution=value)
        else:
            what = "a list, a distribution with rvs() (scipy.stats)" + (" or an Optuna distribution" if optuna else "")
            raise InvalidGridTypeError(
                f"Parameter {name!r} has the value {value!r}, which is neither a list of values nor a "
                f"distribution; give {what}, e.g. {name}=[{value!r}] or {name}=loguniform(1e-4, 1e-1)."
            )
    return dimensions

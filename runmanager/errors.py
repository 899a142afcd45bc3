"""Every error runmanager raises, in one place.

Each error subclasses :class:`RunManagerError` and the built-in exception it
resembles, so callers can catch either::

    try:
        RunBuilder({"lr": 0.1})
    except ValueError:        # or RunManagerError, or InvalidGridError
        ...
"""

from __future__ import annotations

from typing import Any

__all__ = [
    "CheckpointError",
    "ColumnClashError",
    "InvalidArgumentError",
    "InvalidArgumentTypeError",
    "InvalidGridError",
    "InvalidGridTypeError",
    "JournalError",
    "LifecycleError",
    "LogDirError",
    "LogDirWriteError",
    "MLflowError",
    "MissingExtraError",
    "MissingMetricError",
    "RunManagerError",
    "SweepError",
]

#: The seeds NumPy (``np.random.seed``), Keras (``keras.utils.set_random_seed``) and Optuna's
#: samplers accept: 0 to 2**32 - 1.
SEED_LIMIT = 2**32


class RunManagerError(Exception):
    """Base class of every error raised by runmanager."""


class InvalidArgumentError(RunManagerError, ValueError):
    """An argument has a bad value (a negative batch size, an unknown executor)."""


class InvalidArgumentTypeError(RunManagerError, TypeError):
    """An argument has the wrong type (a ``train`` that is not callable, a str seed)."""


class InvalidGridError(InvalidArgumentError):
    """A parameter grid has a bad key or value (empty, duplicated, not a field name)."""


class InvalidGridTypeError(InvalidArgumentTypeError):
    """A parameter grid has a key or a value list of the wrong type."""


class MissingMetricError(InvalidArgumentError):
    """A run did not log the metric that something judges it by (a pruner, a search)."""


class LifecycleError(RunManagerError, RuntimeError):
    """A RunManager method was called out of order (``end_epoch`` before ``begin_epoch``)."""


class ColumnClashError(RunManagerError, ValueError):
    """Two columns of an epoch row would have the same name."""


class LogDirError(RunManagerError, ValueError):
    """A ``log_dir`` cannot be used: it is a file, not writable, or holds another sweep."""


class LogDirWriteError(LogDirError):
    """Writing into a ``log_dir`` failed (a full disk, a quota, an I/O error, a removed folder);
    what was written before is safe, and ``resume=True`` continues once the problem is fixed."""


class JournalError(RunManagerError, ValueError):
    """A journal file is corrupt in a way that cannot be skipped safely."""


class CheckpointError(RunManagerError, ValueError):
    """A run has no kept model (never checkpointed, deleted by ``keep_models``, failed before its
    first epoch), or its checkpoint file cannot be read."""


class SweepError(RunManagerError, RuntimeError):
    """A sweep was stopped because something is systematically wrong."""


class MLflowError(RunManagerError, RuntimeError):
    """MLflow could not be reached, or refused a call, while a log_dir was being uploaded to it."""


class MissingExtraError(RunManagerError, ImportError):
    """An optional dependency is missing; the message names the extra to install."""


def missing_extra(package: str, extra: str, feature: str) -> MissingExtraError:
    """Build the error for an optional dependency that is not installed."""
    return MissingExtraError(
        f"{feature} needs the {package!r} package, which is not installed. "
        f'Install it with: pip install "runmanager[{extra}]"'
    )


def is_int(value: Any) -> bool:
    """True for an int that is not a bool: the one check behind every count and seed argument.

    Examples:
        >>> is_int(3), is_int(True), is_int(3.0)
        (True, False, False)
    """
    return isinstance(value, int) and not isinstance(value, bool)


def check_seed(seed: Any, *, repeats: int = 1, type_error: type[Exception] = InvalidArgumentTypeError) -> int | None:
    """``seed`` if it is None or an int every run's seed can be made from, else an error that
    says which seeds are valid.

    A sweep seeds repeat ``r`` with ``seed + r - 1``, so with ``repeats=N`` the largest valid
    seed is ``2**32 - N``: every repeat's seed must be one NumPy accepts.

    Raises:
        InvalidArgumentTypeError: ``seed`` is not an int (``type_error``, a subclass of it, if given).
        InvalidArgumentError: ``seed`` is negative, or too large for NumPy once the repeats are added.

    Examples:
        >>> check_seed(0), check_seed(None), check_seed(2**32 - 3, repeats=3)
        (0, None, 4294967293)
        >>> check_seed(-1)
        Traceback (most recent call last):
        ...
        runmanager.errors.InvalidArgumentError: seed=-1 is out of range: ...
    """
    if seed is None:
        return None
    if not is_int(seed):
        raise type_error(f"seed must be an int or None, got {seed!r}.")
    highest = SEED_LIMIT - repeats
    if not 0 <= seed <= highest:
        why = ("NumPy, Keras and Optuna take seeds from 0 to 2**32 - 1" if repeats == 1 else
               f"repeat r is seeded seed + r - 1, and with repeats={repeats} every repeat's seed must be one "
               "NumPy takes (0 to 2**32 - 1)")
        raise InvalidArgumentError(
            f"seed={seed!r} is out of range: {why}, so give a seed from 0 to {highest}"
            f"{'' if repeats == 1 else f' (2**32 - {repeats})'}, e.g. seed=0."
        )
    return seed

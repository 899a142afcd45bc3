"""What :class:`~runmanager.OptunaSearch` asks its study for: one space, a union of spaces, or a
define-by-run function ``space(trial) -> dict``.

Each kind answers the same three questions, so the search itself does not care which it has:

- :meth:`StudySpace.ask`: a new trial of the study, and the params of its run;
- :meth:`StudySpace.replay`: the Optuna params and distributions of a run that ran before (a
  resumed sweep's journal, a warm start), or why it does not fit this space, so that Optuna can
  be told it with ``create_trial``;
- :meth:`StudySpace.enqueue`: a configuration to run first, checked, as ``study.enqueue_trial``
  takes it.

A union suggests the index of its space first, as a categorical param named :data:`SPACE_PARAM`
that no run shows (no run param may start with ``_``), then that space's params: Optuna's
define-by-run keeps each param's history to the trials that had it. A function is called as
it is, with a real trial; an old run is replayed through it with ``optuna.trial.FixedTrial``,
which hands back the run's own values and records the distributions they were drawn from.
"""

from __future__ import annotations

import warnings
from collections.abc import Callable, Mapping, Sequence
from typing import Any

from runmanager.errors import InvalidArgumentError, InvalidGridError, InvalidGridTypeError
from runmanager.grid import check_param_name, python_scalar
from runmanager.space import Dimension, describe, union_domain, union_fields

__all__ = ["DISCOVERY_CALLS", "SPACE_PARAM", "FunctionSpace", "OneSpace", "StudySpace", "UnionSpace",
           "optuna_distribution", "study_space"]

#: The hidden categorical param of a union: the index of the space a trial drew from.
SPACE_PARAM = "_space"
#: How many times a space function is called (on a throwaway study) to find the names it can
#: return: a branch taken by one trial in 10 is missed once in 37,000 searches (0.9**100).
DISCOVERY_CALLS = 100


def optuna_distribution(dimension: Dimension) -> Any:
    """The Optuna distribution of a dimension: lists become categorical; scipy's uniform and
    loguniform become floats (log for loguniform), randint becomes an int range.

    Examples:
        >>> optuna_distribution(Dimension("units", choices=range(16, 257, 16)))
        IntDistribution(high=256, log=False, low=16, step=16)
    """
    from optuna import distributions as od

    if dimension.choices is not None:
        bad = [c for c in dimension.choices if not isinstance(c, (bool, int, float, str, type(None)))]
        if bad:
            raise InvalidGridTypeError(
                f"Parameter {dimension.name!r}: OptunaSearch can choose only None, bool, int, float or str "
                f"values, not {bad[0]!r}; give those (e.g. a name to look the object up by)."
            )
        if isinstance(dimension.choices, range):  # evenly spaced ints: an ordered range for the sampler
            ends = (dimension.choices[0], dimension.choices[-1])
            return od.IntDistribution(min(ends), max(ends), step=abs(dimension.choices.step))
        return od.CategoricalDistribution(dimension.choices)
    if dimension.is_optuna:
        return dimension.distribution
    kind = getattr(getattr(dimension.distribution, "dist", None), "name", "")
    interval = dimension.interval()
    if interval is not None:
        low, high, _ = interval
        if kind == "randint":
            return od.IntDistribution(int(low), int(high))
        if kind in ("loguniform", "reciprocal"):
            return od.FloatDistribution(low, high, log=True)
        if kind == "uniform":
            return od.FloatDistribution(low, high)
    raise InvalidGridTypeError(
        f"Parameter {dimension.name!r}: OptunaSearch takes lists, scipy's uniform, loguniform and randint, "
        f"or Optuna distributions, not {describe(dimension.distribution)}; use RandomSearch for other "
        "distributions."
    )


def _outside(name: str, value: Any, distribution: Any) -> str | None:
    """Why ``value`` cannot be ``name``'s value in ``distribution``, or None when it can."""
    from optuna.trial import create_trial

    try:
        create_trial(params={name: value}, distributions={name: distribution}, value=0.0)
    except ValueError:
        return f"{name}={value!r} is outside {distribution!r}"
    return None


def fit(params: Mapping[str, Any], distributions: Mapping[str, Any]) -> dict[str, Any] | str:
    """``params`` as Optuna holds them in ``distributions`` (``32.0`` of an int param as ``32``, as
    a summary with missing values stores ints), or why one does not fit."""
    from optuna.trial import create_trial

    for name, distribution in distributions.items():
        if (why := _outside(name, params.get(name), distribution)) is not None:
            return why
    trial = create_trial(params={name: params.get(name) for name in distributions},
                         distributions=dict(distributions), value=0.0)
    return dict(trial.params)


def _suggest(trial: Any, name: str, distribution: Any) -> Any:
    """Suggest ``name`` from ``distribution`` through the trial's public calls."""
    from optuna import distributions as od

    if isinstance(distribution, od.FloatDistribution):
        return trial.suggest_float(name, distribution.low, distribution.high, step=distribution.step,
                                   log=distribution.log)
    if isinstance(distribution, od.IntDistribution):
        return trial.suggest_int(name, distribution.low, distribution.high, step=distribution.step,
                                 log=distribution.log)
    return trial.suggest_categorical(name, distribution.choices)


def _absent_as_none(params: Mapping[str, Any], names: Sequence[str], allows_none: Callable[[str], bool]
                    ) -> dict[str, Any]:
    """``params`` without the names whose value None means "absent", as in a run of a conditional
    space: those not in ``names``, and those whose distribution has no None."""
    return {name: value for name, value in params.items()
            if value is not None or (name in names and allows_none(name))}


class StudySpace:
    """What an OptunaSearch draws from. Subclasses set :attr:`fields` and answer three questions."""

    fields: tuple[str, ...] = ()

    def ask(self, study: Any) -> tuple[Any, dict[str, Any]]:
        """A new trial of ``study`` and its run's params (names among :attr:`fields`)."""
        raise NotImplementedError

    def replay(self, params: Mapping[str, Any]) -> tuple[dict[str, Any], dict[str, Any]] | str:
        """The trial params and distributions of a run with ``params`` (its fields, None for absent
        ones), for ``create_trial``; or a sentence saying why it does not fit."""
        raise NotImplementedError

    def enqueue(self, params: Mapping[str, Any]) -> dict[str, Any]:
        """``params`` as ``study.enqueue_trial`` takes them (a name left out is drawn).

        Raises:
            InvalidGridError: a name that is not a param of the space, or a value outside its distribution.
        """
        raise NotImplementedError

    def domain(self, name: str) -> tuple[str, Any] | None:
        """Where ``name`` is drawn from, for TensorBoard (see :meth:`runmanager.search.Search.domain`)."""
        return None

    def describe(self) -> str:
        """What the space is, for the search's repr."""
        return f"{len(self.fields)} parameters"

    def _unknown(self, params: Mapping[str, Any], what: str) -> None:
        unknown = [name for name in params if name not in self.fields]
        if unknown:
            raise InvalidGridError(
                f"enqueue={what}: {unknown[0]!r} is not a parameter of the space, whose parameters are "
                f"{', '.join(map(repr, self.fields))}; give only those names (one left out is drawn)."
            )


class OneSpace(StudySpace):
    """A single space: every trial suggests every param (``study.ask(distributions)``)."""

    def __init__(self, dimensions: Mapping[str, Dimension]) -> None:
        self.dimensions = dict(dimensions)
        self.fields = tuple(dimensions)
        self.distributions = {name: optuna_distribution(dimension) for name, dimension in dimensions.items()}

    def ask(self, study: Any) -> tuple[Any, dict[str, Any]]:
        trial = study.ask(self.distributions)
        return trial, {name: python_scalar(value) for name, value in trial.params.items()}

    def replay(self, params: Mapping[str, Any]) -> tuple[dict[str, Any], dict[str, Any]] | str:
        unknown = [name for name, value in params.items() if name not in self.fields and value is not None]
        if unknown:
            return f"{unknown[0]}={params[unknown[0]]!r} is not a parameter of the space"
        fitted = fit(params, self.distributions)
        return fitted if isinstance(fitted, str) else (fitted, dict(self.distributions))

    def _allows_none(self, name: str) -> bool:
        return _outside(name, None, self.distributions[name]) is None

    def _outside(self, given: Mapping[str, Any]) -> tuple[str, str] | None:
        """The first name of ``given`` whose value this space cannot draw, and why; None if all fit."""
        for name, value in given.items():
            if (why := _outside(name, value, self.distributions[name])) is not None:
                return name, why
        return None

    def enqueue(self, params: Mapping[str, Any]) -> dict[str, Any]:
        given = _absent_as_none(params, self.fields, self._allows_none)
        self._unknown(given, repr(dict(params)))
        if (outside := self._outside(given)) is not None:
            name, why = outside
            raise InvalidGridError(
                f"enqueue={dict(params)!r}: {why}; give a value the space can draw, or leave {name!r} out "
                "to have it drawn."
            )
        fitted = fit(given, {name: self.distributions[name] for name in given})
        assert isinstance(fitted, dict)
        return fitted

    def domain(self, name: str) -> tuple[str, Any] | None:
        return self.dimensions[name].domain()


def _compatible(first: Any, other: Any) -> bool:
    """Whether one study can hold both distributions under one name: Optuna lets a numeric range
    change from trial to trial, but not its kind, its log scale, or a categorical's choices."""
    if type(first) is not type(other):
        return False
    if hasattr(first, "choices"):
        return bool(first == other)
    return getattr(first, "log", False) == getattr(other, "log", False)


class UnionSpace(StudySpace):
    """A list of spaces: a trial suggests which (:data:`SPACE_PARAM`), then that space's params.

    A name in several spaces is one param of the study, so the sampler learns from every space
    that has it (a learning rate shared by all), when its distributions can share a name; when
    they cannot (categoricals of other choices, an int and a float), each space's is a param of
    its own in the study, ``name@2`` for space 2. Runs show the plain name either way.
    """

    def __init__(self, spaces: Sequence[Mapping[str, Dimension]]) -> None:
        from optuna.distributions import CategoricalDistribution

        self.parts = [OneSpace(dimensions) for dimensions in spaces]
        self.fields = union_fields(spaces)
        self.choice = CategoricalDistribution(tuple(range(len(self.parts))))
        shared = {}
        for name in self.fields:
            found = [part.distributions[name] for part in self.parts if name in part.distributions]
            shared[name] = all(_compatible(found[0], other) for other in found[1:])
        #: per space: each run name -> its name in the study
        self.study_names = [{name: name if shared[name] else f"{name}@{index + 1}" for name in part.fields}
                            for index, part in enumerate(self.parts)]

    @property
    def distributions(self) -> list[dict[str, Any]]:
        return [part.distributions for part in self.parts]

    def ask(self, study: Any) -> tuple[Any, dict[str, Any]]:
        trial = study.ask({SPACE_PARAM: self.choice})
        index = trial.params[SPACE_PARAM]
        names = self.study_names[index]
        return trial, {name: python_scalar(_suggest(trial, names[name], distribution))
                       for name, distribution in self.parts[index].distributions.items()}

    def _in_study(self, index: int, params: Mapping[str, Any]) -> dict[str, Any]:
        return {SPACE_PARAM: index, **{self.study_names[index][name]: value for name, value in params.items()}}

    def replay(self, params: Mapping[str, Any]) -> tuple[dict[str, Any], dict[str, Any]] | str:
        reasons = []
        for index, part in enumerate(self.parts):
            stray = [name for name, value in params.items() if name not in part.fields and value is not None]
            if stray:
                continue
            replayed = part.replay({name: params.get(name) for name in part.fields})
            if isinstance(replayed, str):
                reasons.append(f"{replayed} (space {index + 1})")
                continue
            trial_params, distributions = replayed
            return (self._in_study(index, trial_params),
                    {**self._in_study(index, distributions), SPACE_PARAM: self.choice})
        if reasons:
            return "; ".join(reasons)
        return f"no one of the {len(self.parts)} spaces has all of its parameters"

    def enqueue(self, params: Mapping[str, Any]) -> dict[str, Any]:
        self._unknown({name: value for name, value in params.items() if value is not None}, repr(dict(params)))
        problems = []
        for index, part in enumerate(self.parts):
            given = _absent_as_none(params, part.fields, part._allows_none)
            if any(name not in part.fields for name in given):
                continue
            outside = part._outside(given)
            if outside is None:
                return self._in_study(index, part.enqueue(given))
            problems.append(f"space {index + 1}: {outside[1]}")
        if problems:
            raise InvalidGridError(
                f"enqueue={dict(params)!r} fits none of the {len(self.parts)} spaces that have its names "
                f"({'; '.join(problems)}); give values one space can draw, or leave a name out to have it drawn."
            )
        names = ", ".join(repr(name) for name, value in params.items() if value is not None)
        raise InvalidGridError(
            f"enqueue={dict(params)!r}: no one of the {len(self.parts)} spaces has all of {names}; give the "
            "params of one space (a name of another space left out, or None)."
        )

    def domain(self, name: str) -> tuple[str, Any] | None:
        return union_domain([part.dimensions[name] for part in self.parts if name in part.dimensions])

    def describe(self) -> str:
        return f"{len(self.parts)} spaces, {len(self.fields)} parameters"


class FunctionSpace(StudySpace):
    """A define-by-run space: ``function(trial) -> dict`` with ``trial.suggest_*`` inside plain ``if``s.

    The fields are ``fields`` when given, else the names ``function`` returned over
    :data:`DISCOVERY_CALLS` calls on a throwaway study with a seeded random sampler (the same
    order in every process). Those calls also find a function that raises, and the distribution
    of every param it suggests, which an enqueued value is checked against.

    Raises:
        InvalidGridError: the function raised, returned a name that cannot be a param, returned no
            params at all, or returned a name not in ``fields``; a bad ``fields``.
        InvalidGridTypeError: the function returned something other than a dict.
    """

    def __init__(self, function: Callable[[Any], Mapping[str, Any]], fields: Sequence[str] | None = None) -> None:
        import optuna

        self.function = function
        self.name = getattr(function, "__qualname__", None) or repr(function)
        self.given = fields is not None
        self.fields = () if fields is None else _check_fields(fields)
        #: every distribution each suggested param was drawn from in the calls that found the fields
        self.suggested: dict[str, list[Any]] = {}
        study = optuna.create_study(sampler=optuna.samplers.RandomSampler(seed=0))
        found: dict[str, None] = {}
        for _ in range(DISCOVERY_CALLS):
            trial = study.ask()
            found.update(dict.fromkeys(self.call(trial)))
            for name, distribution in trial.distributions.items():
                if distribution not in self.suggested.setdefault(name, []):
                    self.suggested[name].append(distribution)
        if not found and not self.given:
            raise InvalidGridError(
                f"The space function {self.name} returned no params in {DISCOVERY_CALLS} calls; return a dict "
                "such as {'lr': trial.suggest_float('lr', 1e-4, 1e-1, log=True)}."
            )
        if self.given:
            self._check_names(found)
        else:
            self.fields = tuple(found)

    def call(self, trial: Any) -> dict[str, Any]:
        """The params ``function`` returns for ``trial``, checked.

        Raises:
            InvalidGridError: the function raised, or returned a name that cannot be a param.
            InvalidGridTypeError: it returned something other than a dict.
        """
        try:
            params = self.function(trial)
        except Exception as exc:  # noqa: BLE001 - the user's function: said again with its name
            said = f"{type(exc).__name__}: {exc}".rstrip(".")
            raise InvalidGridError(
                f"The space function {self.name} raised {said}, when OptunaSearch called it with a trial "
                f"(params so far: {dict(trial.params)!r}); fix it so that it returns a dict of params for "
                "every trial."
            ) from exc
        if not isinstance(params, Mapping):
            raise InvalidGridTypeError(
                f"The space function {self.name} must return a dict of params, such as "
                f"{{'lr': trial.suggest_float('lr', 1e-4, 1e-1, log=True)}}, got {params!r}."
            )
        return {check_param_name(name, name): python_scalar(value) for name, value in params.items()}

    def _check_names(self, names: Mapping[str, Any] | Sequence[str]) -> None:
        unknown = [name for name in names if name not in self.fields]
        if unknown:
            how = ("which were given as fields=" if self.given else
                   f"which are the names it returned in {DISCOVERY_CALLS} calls when the search was made")
            raise InvalidGridError(
                f"The space function {self.name} returned {unknown[0]!r}, which is not among the fields of the "
                f"search ({', '.join(map(repr, self.fields))}, {how}); pass fields=[...] with every name it "
                "can return."
            )

    def ask(self, study: Any) -> tuple[Any, dict[str, Any]]:
        from optuna.trial import TrialState

        trial = study.ask()
        try:
            params = self.call(trial)
            self._check_names(params)
        except Exception:
            study.tell(trial, state=TrialState.FAIL)
            raise
        return trial, params

    def replay(self, params: Mapping[str, Any]) -> tuple[dict[str, Any], dict[str, Any]] | str:
        from optuna.trial import FixedTrial

        fixed = FixedTrial(dict(params))
        try:
            with warnings.catch_warnings():
                warnings.simplefilter("ignore")  # a value outside its range: fit() below says so
                returned = self.call(fixed)
        except (InvalidGridError, InvalidGridTypeError) as exc:
            cause = exc.__cause__ if exc.__cause__ is not None else exc
            return f"the space function cannot replay it ({type(cause).__name__}: {str(cause).rstrip('.')})"
        for name in dict.fromkeys([*self.fields, *returned]):
            if returned.get(name) != params.get(name):
                return f"the space function gives {name}={returned.get(name)!r} for it, not {params.get(name)!r}"
        fitted = fit(fixed.params, fixed.distributions)
        return fitted if isinstance(fitted, str) else (fitted, dict(fixed.distributions))

    def _allows_none(self, name: str) -> bool:
        return any(_outside(name, None, distribution) is None for distribution in self.suggested.get(name, []))

    def enqueue(self, params: Mapping[str, Any]) -> dict[str, Any]:
        given = _absent_as_none(params, tuple(self.suggested), self._allows_none)
        self._unknown(given, repr(dict(params)))
        result = {}
        for name, value in given.items():
            distributions = self.suggested.get(name)
            if not distributions:
                raise InvalidGridError(
                    f"enqueue={dict(params)!r}: the space function {self.name} returns {name!r} but never "
                    f"suggests it (trial.suggest_*({name!r}, ...)); enqueue gives values to the params it "
                    "suggests, under the names it suggests them by."
                )
            fitted = [f for d in distributions if isinstance(f := fit({name: value}, {name: d}), dict)]
            if not fitted:
                raise InvalidGridError(
                    f"enqueue={dict(params)!r}: {name}={value!r} is outside "
                    f"{' and '.join(map(repr, distributions))}; give a value the space can draw, or leave "
                    f"{name!r} out to have it drawn."
                )
            result[name] = fitted[0][name]
        return result

    def describe(self) -> str:
        return f"{self.name}, {len(self.fields)} parameters"


def _check_fields(fields: Any) -> tuple[str, ...]:
    if isinstance(fields, (str, bytes)) or not isinstance(fields, Sequence) or not fields:
        raise InvalidGridTypeError(
            f"fields must be a non-empty list of the param names the space function can return, got {fields!r}."
        )
    names = tuple(check_param_name(name, name) for name in fields)
    duplicated = [name for name in names if names.count(name) > 1]
    if duplicated:
        raise InvalidGridError(f"fields names {duplicated[0]!r} twice; give each name once.")
    return names


def study_space(space: Any, fields: Sequence[str] | None = None) -> StudySpace:
    """The study space of what :class:`~runmanager.OptunaSearch` was given: a mapping, a list of
    mappings, or a function of a trial.

    Raises:
        InvalidArgumentError: ``fields`` given with a mapping or a list of them.
        InvalidGridError, InvalidGridTypeError: a bad space, or a function that fails (see
            :class:`FunctionSpace`).

    Examples:
        >>> study_space([{"units": [16, 32]}, {"depth": [2, 3]}]).fields
        ('units', 'depth')
    """
    from runmanager.space import parse_spaces

    if callable(space) and not isinstance(space, (Mapping, Sequence)):
        return FunctionSpace(space, fields)
    if fields is not None:
        raise InvalidArgumentError(
            f"fields={fields!r} names the params of a space function; a mapping or a list of mappings has its "
            "names in it already, so drop fields=."
        )
    if not isinstance(space, (Mapping, Sequence)) or isinstance(space, (str, bytes)):
        raise InvalidGridTypeError(
            f"OptunaSearch takes a space (a mapping of names to value lists or distributions), a list of spaces, "
            f"or a function space(trial) -> dict, got {space!r}."
        )
    spaces = parse_spaces(space, optuna=True)
    return OneSpace(spaces[0]) if len(spaces) == 1 else UnionSpace(spaces)

"""``runmanager compare``: which configurations really differ, within a sweep or between two.

Within one sweep, every pair of configurations is compared (two-sided, Holm-corrected
over the pairs tested), with the difference of their means and its 95% interval.
Between two sweeps A and B, each configuration of A is compared with the same
configuration (the same params, ``repeat`` left out) of B.

Pairing: a sweep with ``seed=S`` seeds repeat r with ``S + r - 1`` and records each run's
seed in its journal (``RunStarted.seed``). ``test="paired"`` pairs the runs of the two
sides by seed (a paired t-test, ``scipy.stats.ttest_rel``); where the seeds were not
recorded (a journal from before they were, a summary file, a sweep without ``seed=``)
it pairs them by repeat number, and says so. Without ``test``, two sweeps are compared
paired when every configuration in common has the same recorded seeds on both sides (the
seeds of its completed runs; at least 2 somewhere), else with Welch's t-test; one sweep is
compared with Welch's t-test.
"""

from __future__ import annotations

import math
import os
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np

from runmanager.analysis import metric_columns, numeric_columns, param_columns, param_key, summary_of
from runmanager.errors import InvalidArgumentError
from runmanager.events import Status, resolve_mode
from runmanager.significance import (
    COMPARE_TESTS,
    TEST_NAMES,
    check_alpha,
    check_test,
    holm,
    paired,
    require_scipy,
    two_sample,
)

__all__ = ["compare", "compare_note"]


class _Configuration:
    """One configuration of a sweep: its params (as shown and as a key), and the completed
    runs' finite values of the metric, each with the key it pairs by."""

    def __init__(self, key: tuple[Any, ...], params: dict[str, Any]) -> None:
        self.key = key
        self.params = params
        self.values: list[float] = []
        self.seeds: list[Any] = []
        self.repeats: list[Any] = []

    @property
    def mean(self) -> float:
        return float(np.mean(self.values)) if self.values else math.nan


def _read(source: Any) -> tuple[Any, dict[int, int | None]]:
    """The summary of ``source`` and the seed of each run, where the journal recorded one."""
    from runmanager.storage import JOURNAL_NAME, read_log_dir, results_from_journal

    if isinstance(source, (str, os.PathLike)) and (Path(source) / JOURNAL_NAME).is_file():
        results = read_log_dir(source)
        return results.summary(), {number: record.seed for number, record in results.runs.items()}
    summary = summary_of(source)
    log_dir = getattr(source, "log_dir", None)
    if isinstance(log_dir, Path) and (log_dir / JOURNAL_NAME).is_file():
        return summary, {n: r.seed for n, r in results_from_journal(log_dir / JOURNAL_NAME).runs.items()}
    return summary, {}


def _configurations(summary: Any, metric: str, seeds: dict[int, int | None], mode: str) -> list[_Configuration]:
    """The configurations with a completed run, best mean first (by ``mode``)."""
    from runmanager.repeats import REPEAT

    params = [name for name in param_columns(summary) if name != REPEAT]
    found: dict[tuple[Any, ...], _Configuration] = {}
    done = summary[summary["status"] == Status.COMPLETED]
    repeats = done[REPEAT].tolist() if REPEAT in done.columns else [None] * len(done)
    for row, repeat in zip(done.to_dict("records"), repeats):
        value = row[metric]
        if not isinstance(value, (int, float)) or not math.isfinite(value):
            continue
        key = tuple(sorted((name, param_key(row[name])) for name in params))  # two sweeps may order params apart
        configuration = found.setdefault(key, _Configuration(key, {name: row[name] for name in params}))
        configuration.values.append(float(value))
        configuration.seeds.append(seeds.get(int(row["run"])))
        configuration.repeats.append(repeat)
    ordered = sorted(found.values(), key=lambda c: c.mean, reverse=mode == "max")
    return ordered


def _pairing(sides: Sequence[Sequence[_Configuration]]) -> str | None:
    """What the runs pair by: ``"seed"`` when every run's seed is recorded and unique within its
    configuration, else ``"repeat"`` when the repeat numbers are, else None."""
    configurations = [c for side in sides for c in side]
    for by in ("seed", "repeat"):
        keys = [c.seeds if by == "seed" else c.repeats for c in configurations]
        if all(None not in k and len(set(k)) == len(k) for k in keys):
            return by
    return None


def _matrix(configurations: Sequence[_Configuration], by: str, columns: dict[Any, int]) -> np.ndarray:
    """The values of each configuration in one row, in the column of its seed (or repeat)."""
    matrix = np.full((len(configurations), len(columns)), math.nan)
    for row, configuration in enumerate(configurations):
        for key, value in zip(configuration.seeds if by == "seed" else configuration.repeats, configuration.values):
            matrix[row, columns[key]] = value
    return matrix


def _paired(a_side: Sequence[_Configuration], b_side: Sequence[_Configuration], a: np.ndarray, b: np.ndarray,
            by: str) -> Any:
    keys = sorted({k for c in [*a_side, *b_side] for k in (c.seeds if by == "seed" else c.repeats)})
    columns = {key: column for column, key in enumerate(keys)}
    return paired(_matrix(a_side, by, columns)[a], _matrix(b_side, by, columns)[b])


def compare(a: Any, b: Any = None, *, metric: str, mode: str | None = None, test: str | None = None,
            alpha: float = 0.05) -> Any:
    """Which configurations differ in ``metric``, over their completed runs: every pair of
    configurations of one sweep, or each configuration of sweep ``a`` against the same
    configuration of sweep ``b``.

    One row per comparison: the params (within one sweep ``a_<param>`` and ``b_<param>``),
    ``n_a`` and ``n_b`` (the completed runs compared; for ``paired``, the pairs), ``mean_a``,
    ``mean_b``, ``difference`` (``mean_a - mean_b``; for ``paired``, the mean of the paired
    differences), ``ci_low`` and ``ci_high`` (its 95% confidence interval: Welch–Satterthwaite
    for ``welch`` and for ``mannwhitney``, whose p-value is about ranks but whose effect is said
    as a difference of means all the same; ``t(0.975, n-1) * sd / sqrt(n)`` of the differences
    for ``paired``), ``p_value`` (two-sided), ``p_holm`` (Holm-corrected over the comparisons
    made) and ``significant`` (``p_holm < alpha``). A comparison with fewer than 2 runs (or
    pairs) on a side has no p-value. Within one sweep, configurations come best first by mean
    and ``a`` is always the better ranked one. ``attrs`` holds the test used and, for
    ``paired``, what the runs were paired by (``"seed"`` or ``"repeat"``).

    Args:
        a: a log_dir (or summary file) path, a summary DataFrame or a RunManager.
        b: a second one to compare ``a`` with, configuration by configuration; None: the
            pairs of configurations of ``a``.
        metric: the metric compared, e.g. ``"val_accuracy"``.
        mode: ``"max"`` or ``"min"``; default: ``"min"`` for losses and errors, else ``"max"``.
        test: ``"welch"``, ``"mannwhitney"`` or ``"paired"`` (by seed, else by repeat number);
            None: ``paired`` for two sweeps whose configurations' completed runs have the same
            recorded seeds, else ``welch``.
        alpha: the significance level, between 0 and 1.

    Returns:
        A DataFrame, one row per comparison.

    Raises:
        InvalidArgumentError: an unknown test, an alpha outside (0, 1), a metric never logged,
            no configuration in common between ``a`` and ``b``, fewer than two configurations,
            or no comparison with at least 2 runs (or pairs) on each side.
        MissingExtraError: scipy is not installed.

    Examples:
        >>> import pandas as pd
        >>> summary = pd.DataFrame({"run": range(1, 7), "lr": [0.1] * 3 + [0.01] * 3, "repeat": [1, 2, 3] * 2,
        ...                         "status": ["completed"] * 6, "epochs": [5] * 6,
        ...                         "val_accuracy": [0.90, 0.92, 0.91, 0.80, 0.82, 0.81], "run_duration": [1.0] * 6})
        >>> compare(summary, metric="val_accuracy")[["a_lr", "b_lr", "difference", "p_holm", "significant"]].round(4)
           a_lr  b_lr  difference  p_holm  significant
        0   0.1  0.01         0.1  0.0003         True
    """
    if test is not None:
        check_test(test, COMPARE_TESTS)
    alpha = check_alpha(alpha)
    mode = resolve_mode(metric, mode, who="compare")
    require_scipy("compare")
    sides = []
    for source in (a, b):
        if source is None:
            continue
        summary, seeds = _read(source)
        metrics = numeric_columns(summary, metric_columns(summary))
        if metric not in metrics:
            name = f" in {os.fspath(source)!r}" if isinstance(source, (str, os.PathLike)) else ""
            raise InvalidArgumentError(
                f"Unknown metric {metric!r}{name}; the runs logged {', '.join(metrics) or 'no metrics'}."
            )
        sides.append(_configurations(summary, metric, seeds, mode))
    if b is None:
        return _within(sides[0], metric, mode, test or "welch", alpha)
    return _between(sides[0], sides[1], metric, mode, test, alpha, a, b)


def _frame(columns: dict[str, Any], found: Any, alpha: float, attrs: dict[str, Any]) -> Any:
    import pandas as pd

    p_holm = holm(found.p_value)
    if not np.isfinite(found.p_value).any():
        raise InvalidArgumentError(
            "No comparison has at least 2 completed runs (or pairs) with a finite metric on each side, so no test "
            "can be made; run the sweep with repeats=2 or more (and, to pair, with the same seed=)."
        )
    frame = pd.DataFrame({**columns, "n_a": found.n_a, "n_b": found.n_b, "mean_a": found.mean_a,
                          "mean_b": found.mean_b, "difference": found.difference, "ci_low": found.ci_low,
                          "ci_high": found.ci_high, "p_value": found.p_value, "p_holm": p_holm,
                          "significant": ~np.isnan(p_holm) & (p_holm < alpha)})
    frame.attrs["comparison"] = {**attrs, "alpha": alpha, "made": int(np.isfinite(found.p_value).sum())}
    return frame


def _within(configurations: list[_Configuration], metric: str, mode: str, test: str, alpha: float) -> Any:
    if len(configurations) < 2:
        raise InvalidArgumentError(
            f"compare needs at least two configurations with a completed run and a finite {metric!r}, found "
            f"{len(configurations)}; pass a second log_dir to compare two sweeps configuration by configuration."
        )
    a, b = np.triu_indices(len(configurations), 1)
    by = None
    if test == "paired":
        by = _pairing([configurations])
        if by is None:
            raise InvalidArgumentError(_unpairable())
        found = _paired(configurations, configurations, a, b, by)
    else:
        found = two_sample([c.values for c in configurations], a, b, test)
    params = list(configurations[0].params)
    columns = {f"{side}_{name}": [configurations[i].params[name] for i in index]
               for side, index in (("a", a), ("b", b)) for name in params}
    return _frame(columns, found, alpha, {"metric": metric, "mode": mode, "test": test, "paired_by": by,
                                          "within": True, "params": list(columns)})


def _unpairable() -> str:
    return ("test='paired' pairs runs by their seed or repeat number, but these runs have neither recorded "
            "uniquely within each configuration; use test='welch'.")


def _between(a_side: list[_Configuration], b_side: list[_Configuration], metric: str, mode: str, test: str | None,
             alpha: float, a: Any, b: Any) -> Any:
    in_b = {c.key: i for i, c in enumerate(b_side)}
    a_index = np.array([i for i, c in enumerate(a_side) if c.key in in_b], dtype=int)
    if not len(a_index):
        def shown(side: list[_Configuration], source: Any, which: str) -> str:
            name = repr(os.fspath(source)) if isinstance(source, (str, os.PathLike)) else f"sweep {which}"
            params = ", ".join(side[0].params) if side else "none"
            return f"{name} (params: {params}; {len(side)} configurations with a completed run)"

        raise InvalidArgumentError(
            f"No configuration is in both {shown(a_side, a, 'a')} and {shown(b_side, b, 'b')}; compare needs the "
            "same params with the same values on both sides (the repeat left out)."
        )
    b_index = np.array([in_b[a_side[i].key] for i in a_index], dtype=int)
    by = None
    if test is None:  # paired where every configuration has the same recorded seeds on both sides
        pairs = [(a_side[i].seeds, b_side[j].seeds) for i, j in zip(a_index, b_index)]
        same = all(None not in x and len(set(x)) == len(x) and sorted(x) == sorted(y) for x, y in pairs)
        test = "paired" if same and any(len(x) >= 2 for x, _ in pairs) else "welch"
    if test == "paired":
        by = _pairing([[a_side[i] for i in a_index], [b_side[j] for j in b_index]])
        if by is None:
            raise InvalidArgumentError(_unpairable())
        found = _paired(a_side, b_side, a_index, b_index, by)
    else:
        found = two_sample([c.values for c in a_side], a_index, b_index, test, other=[c.values for c in b_side])
    params = list(a_side[0].params)
    columns = {name: [a_side[i].params[name] for i in a_index] for name in params}
    sources = [os.fspath(s) if isinstance(s, (str, os.PathLike)) else None for s in (a, b)]
    return _frame(columns, found, alpha, {"metric": metric, "mode": mode, "test": test, "paired_by": by,
                                          "within": False, "params": params, "sources": sources})


def compare_note(frame: Any) -> str:
    """What the columns of a :func:`compare` table mean, in one line: the test, its correction and alpha.

    Examples:
        >>> import pandas as pd
        >>> frame = pd.DataFrame()
        >>> frame.attrs["comparison"] = {"test": "welch", "paired_by": None, "within": True, "alpha": 0.05, "made": 6}
        >>> print(compare_note(frame))
        difference = mean_a - mean_b, with its 95% CI; p_value: two-sided Welch's t-test; p_holm: Holm-corrected over the 6 comparisons made; significant: p_holm < 0.05.
    """
    info = frame.attrs["comparison"]
    test = TEST_NAMES[info["test"]]
    if info["test"] == "paired":
        test += " (paired by seed)" if info["paired_by"] == "seed" else \
            " (paired by repeat number: the seeds were not recorded)"
    what = "the mean of the paired differences" if info["test"] == "paired" else "mean_a - mean_b"
    sources = info.get("sources") or []
    named = f"a = {sources[0]}, b = {sources[1]}; " if len(sources) == 2 and None not in sources else ""
    return (f"{named}difference = {what}, with its 95% CI; p_value: two-sided {test}; p_holm: Holm-corrected over "
            f"the {info['made']} comparisons made; significant: p_holm < {info['alpha']:g}.")

"""Is a difference real? Tests between configurations, over their completed repeats.

Two questions, each answered with scipy's tests and a Holm correction over the
comparisons made:

- **Which configurations are as good as the best?** (:func:`tied_with_best`, behind
  ``aggregate(metric, test=...)``): every configuration against the best one, one-sided
  ("worse than the best"), Welch's t-test (``scipy.stats.ttest_ind(equal_var=False)``) or
  the Mann–Whitney U test (``scipy.stats.mannwhitneyu``, scipy's default method).
- **Which pairs differ?** (:func:`two_sample`, :func:`paired`, behind
  :func:`runmanager.comparison.compare`): two-sided, with the mean difference and its 95%
  confidence interval.

Decisions on data the tests cannot judge:

- fewer than 2 values on either side: no test (p is NaN), so a configuration with one
  completed run is never called tied with the best, nor significantly worse;
- no spread on both sides and the same mean (every value equal, say 0.9 on every seed):
  scipy's t statistic is 0/0 and its p-value NaN; here p = 1, no evidence of a difference;
  with different means and no spread, scipy's infinite t and p = 0 (or 1) stand;
- identical samples with spread: t = 0, p = 0.5 one-sided, 1 two-sided: tied.

Every test is vectorised: the pairs are grouped by their sample sizes (and, for
Mann–Whitney, by whether the pair has ties, which decides scipy's default method per
pair), and scipy is called once per group along ``axis=1``, so 31,125 pairs of 250
configurations cost a few calls, not 31,125.

scipy is an optional dependency (``pip install "runmanager[stats]"``), imported here only
when a test runs.
"""

from __future__ import annotations

import math
import warnings
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np

from runmanager.errors import InvalidArgumentError, InvalidArgumentTypeError, missing_extra

__all__ = ["COMPARE_TESTS", "TESTS", "TEST_NAMES", "Differences", "check_alpha", "check_test", "holm",
           "paired", "require_scipy", "tied_with_best", "two_sample"]

#: The tests ``aggregate(test=...)`` and ``show --test`` know: each configuration against the best.
TESTS = ("welch", "mannwhitney")
#: The tests ``compare`` knows: ``paired`` pairs runs by their seed (or repeat number).
COMPARE_TESTS = ("welch", "mannwhitney", "paired")
#: How a note under a table names each test.
TEST_NAMES = {"welch": "Welch's t-test", "mannwhitney": "Mann–Whitney U test", "paired": "paired t-test"}


def require_scipy(feature: str) -> Any:
    """``scipy.stats``, or the error that says how to install it.

    Raises:
        MissingExtraError: scipy is not installed.

    Examples:
        >>> require_scipy("A test").ttest_ind.__name__
        'ttest_ind'
    """
    try:
        from scipy import stats
    except ImportError:
        raise missing_extra("scipy", "stats", feature) from None
    return stats


def check_test(test: Any, allowed: Sequence[str] = TESTS) -> str:
    """``test`` if it is one of ``allowed``, else an error that lists them.

    Examples:
        >>> check_test("welch")
        'welch'
        >>> check_test("t-test")
        Traceback (most recent call last):
        ...
        runmanager.errors.InvalidArgumentError: Unknown test 't-test'; choose one of 'welch', 'mannwhitney'.
    """
    if test not in allowed:
        choices = ", ".join(repr(name) for name in allowed)
        raise InvalidArgumentError(f"Unknown test {test!r}; choose one of {choices}.")
    return test


def check_alpha(alpha: Any) -> float:
    """``alpha`` as a float if it is a number strictly between 0 and 1, else an error.

    Examples:
        >>> check_alpha(0.05)
        0.05
        >>> check_alpha(5)
        Traceback (most recent call last):
        ...
        runmanager.errors.InvalidArgumentError: alpha must be a number between 0 and 1 (exclusive), ...
    """
    if isinstance(alpha, bool) or not isinstance(alpha, (int, float, np.integer, np.floating)):
        raise InvalidArgumentTypeError(f"alpha must be a number between 0 and 1, such as 0.05, got {alpha!r}.")
    if not 0 < alpha < 1:
        raise InvalidArgumentError(
            f"alpha must be a number between 0 and 1 (exclusive), the significance level such as 0.05, got {alpha!r}."
        )
    return float(alpha)


def holm(p_values: Sequence[float] | np.ndarray) -> np.ndarray:
    """Holm's step-down correction of ``p_values``; NaN entries are no comparison and stay NaN,
    and the others count ``m``: the i-th smallest (from 0) is multiplied by ``m - i``, then the
    running maximum is taken and the result clipped at 1.

    Examples:
        >>> holm([0.01, float("nan"), 0.04, 0.03]).round(2).tolist()
        [0.03, nan, 0.06, 0.06]
    """
    values = np.asarray(p_values, dtype=float)
    corrected = np.full(values.shape, math.nan)
    made = np.flatnonzero(~np.isnan(values))
    if made.size:
        order = made[np.argsort(values[made], kind="stable")]
        steps = values[order] * (made.size - np.arange(made.size))
        corrected[order] = np.minimum(np.maximum.accumulate(steps), 1.0)
    return corrected


def _padded(samples: Sequence[Sequence[float]]) -> tuple[np.ndarray, np.ndarray]:
    """The samples as rows of one matrix (NaN after each row's values) and their sizes."""
    sizes = np.array([len(values) for values in samples], dtype=int)
    matrix = np.full((len(samples), max(int(sizes.max(initial=0)), 1)), math.nan)
    for row, values in enumerate(samples):
        matrix[row, : sizes[row]] = values
    return matrix, sizes


def _tied_rows(x: np.ndarray, y: np.ndarray) -> np.ndarray:
    """Which rows of ``x`` and ``y`` together hold a value twice (a tie, for Mann–Whitney)."""
    both = np.sort(np.concatenate([x, y], axis=1), axis=1)
    return (np.diff(both, axis=1) == 0).any(axis=1)


def _by_group(keys: np.ndarray, run: Callable[[np.ndarray], np.ndarray], out: np.ndarray) -> None:
    """Fill ``out[rows]`` with ``run(rows)`` for each group of rows with equal ``keys`` (one row
    of ``keys`` per pair)."""
    if not len(keys):
        return
    groups, inverse = np.unique(keys, axis=0, return_inverse=True)
    inverse = inverse.reshape(-1)
    for group in range(len(groups)):
        rows = np.flatnonzero(inverse == group)
        out[rows] = run(rows)


def _p_values(test: str, x: np.ndarray, nx: np.ndarray, y: np.ndarray, ny: np.ndarray, rows: np.ndarray,
              alternative: str) -> np.ndarray:
    """scipy's p-values of ``test`` for the pairs ``rows``: ``x[rows]`` against ``y[rows]``, each
    pair's own sizes ``nx``, ``ny`` (NaN for a pair with fewer than 2 values on a side)."""
    stats = require_scipy(f"The {TEST_NAMES[test]}")
    p = np.full(len(rows), math.nan)
    testable = (nx[rows] >= 2) & (ny[rows] >= 2)
    if not testable.any():
        return p
    rows = rows[testable]
    keys = np.stack([nx[rows], ny[rows]], axis=1)
    if test == "mannwhitney":  # scipy chooses its method by size and ties, over the whole batch
        ties = np.zeros(len(rows), dtype=int)
        for size_x, size_y in np.unique(keys, axis=0):
            same = (keys[:, 0] == size_x) & (keys[:, 1] == size_y)
            ties[same] = _tied_rows(x[rows[same], :size_x], y[rows[same], :size_y])
        keys = np.column_stack([keys, ties])
    found = np.full(len(rows), math.nan)

    def run(group: np.ndarray) -> np.ndarray:
        size_x, size_y = int(keys[group[0], 0]), int(keys[group[0], 1])
        a, b = x[rows[group], :size_x], y[rows[group], :size_y]
        with warnings.catch_warnings():  # constant or nearly constant samples: handled below
            warnings.simplefilter("ignore")
            if test == "welch":
                return stats.ttest_ind(a, b, axis=1, equal_var=False, alternative=alternative).pvalue
            return stats.mannwhitneyu(a, b, axis=1, alternative=alternative).pvalue

    _by_group(keys, run, found)
    found[np.isnan(found)] = 1.0  # 0/0: no spread and the same mean on both sides, no evidence of a difference
    p[testable] = found
    return p


def tied_with_best(samples: Sequence[Sequence[float]], best: int, mode: str, test: str,
                   alpha: float = 0.05) -> tuple[np.ndarray, np.ndarray]:
    """Each configuration against the best one: Holm-corrected one-sided p-values of "worse than
    the best", and which configurations are tied with it.

    For a ``"max"`` metric the alternative is that a configuration's values are less than the
    best's; for ``"min"``, greater. The p-value is NaN for the best itself and where either side
    has fewer than 2 values; ``m`` for Holm is the number of comparisons made. Tied: the best,
    and every tested configuration whose corrected p is at least ``alpha``; False where no test
    could be made.

    Args:
        samples: the completed runs' values of each configuration.
        best: the index in ``samples`` of the best configuration (rank 1 by mean).
        mode: ``"max"`` or ``"min"``.
        test: ``"welch"`` or ``"mannwhitney"``.
        alpha: the significance level.

    Returns:
        ``(p_values, tied)``, arrays aligned with ``samples``.

    Raises:
        MissingExtraError: scipy is not installed.

    Examples:
        >>> p, tied = tied_with_best([[0.90, 0.91, 0.92], [0.89, 0.91, 0.93], [0.5, 0.52, 0.51]], 0, "max", "welch")
        >>> p.round(4).tolist(), tied.tolist()
        ([nan, 0.5, 0.0], [True, True, False])
    """
    test = check_test(test)
    alpha = check_alpha(alpha)
    count = len(samples)
    raw = np.full(count, math.nan)
    others = np.array([i for i in range(count) if i != best], dtype=int)
    if len(others):
        values, sizes = _padded(samples)
        alternative = "less" if mode == "max" else "greater"
        x, nx = values[others], sizes[others]
        y = np.repeat(values[[best]], len(others), axis=0)
        ny = np.repeat(sizes[[best]], len(others))
        raw[others] = _p_values(test, x, nx, y, ny, np.arange(len(others)), alternative)
    corrected = holm(raw)
    tied = ~np.isnan(corrected) & (corrected >= alpha)
    if 0 <= best < count:
        tied[best] = True
    return corrected, tied


@dataclass(frozen=True)
class Differences:
    """Pairwise comparisons, one entry per pair: the sizes, means, ``difference`` (mean of a minus
    mean of b, or the mean of the paired differences), its 95% interval ``ci_low``..``ci_high``,
    and the two-sided ``p_value`` (NaN where no test could be made)."""

    n_a: np.ndarray
    n_b: np.ndarray
    mean_a: np.ndarray
    mean_b: np.ndarray
    difference: np.ndarray
    ci_low: np.ndarray
    ci_high: np.ndarray
    p_value: np.ndarray


def _moments(values: np.ndarray, sizes: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Each row's mean and sample variance (ddof=1) over its first ``sizes`` values."""
    with warnings.catch_warnings(), np.errstate(invalid="ignore", divide="ignore"):
        warnings.simplefilter("ignore", RuntimeWarning)  # an empty row, or one value: NaN, as meant
        mean = np.nanmean(values, axis=1)
        variance = np.nansum((values - mean[:, None]) ** 2, axis=1) / (sizes - 1)
    mean[sizes == 0] = math.nan
    variance[sizes < 2] = math.nan
    return mean, variance


def two_sample(samples: Sequence[Sequence[float]], a: Sequence[int], b: Sequence[int], test: str,
               other: Sequence[Sequence[float]] | None = None) -> Differences:
    """Two-sided comparisons of ``samples[a[k]]`` with ``samples[b[k]]`` (or ``other[b[k]]``)
    for every k: Welch's t-test or the Mann–Whitney U test (scipy's default method).

    The difference is always the difference of the means, with its Welch–Satterthwaite 95%
    interval, also for Mann–Whitney: the tables show means, so the effect is said in the same
    terms whichever test judges it (Mann–Whitney's p-value is about ranks, not this interval).

    Raises:
        MissingExtraError: scipy is not installed.

    Examples:
        >>> d = two_sample([[0.9, 0.92, 0.91], [0.8, 0.82, 0.81]], [0], [1], "welch")
        >>> round(float(d.difference[0]), 4), round(float(d.ci_low[0]), 4), float(d.p_value[0]) < 0.001
        (0.1, 0.0773, True)
    """
    stats = require_scipy(f"The {TEST_NAMES.get(test, 'test')}")
    x, nx = _padded(samples)
    y, ny = (x, nx) if other is None else _padded(other)
    a, b = np.asarray(a, dtype=int), np.asarray(b, dtype=int)
    xa, na, yb, nb = x[a], nx[a], y[b], ny[b]
    mean_x, var_x = _moments(x, nx)
    mean_y, var_y = (mean_x, var_x) if other is None else _moments(y, ny)
    mean_a, mean_b = mean_x[a], mean_y[b]
    difference = mean_a - mean_b
    with np.errstate(invalid="ignore", divide="ignore"):
        share_a, share_b = var_x[a] / na, var_y[b] / nb
        se = np.sqrt(share_a + share_b)
        df = (share_a + share_b) ** 2 / (share_a**2 / (na - 1) + share_b**2 / (nb - 1))
        half = stats.t.ppf(0.975, df) * se
    half[se == 0] = 0.0  # no spread on either side: the difference is what it is
    p = _p_values(test, xa, na, yb, nb, np.arange(len(a)), "two-sided")
    return Differences(na, nb, mean_a, mean_b, difference, difference - half, difference + half, p)


def paired(a_values: np.ndarray, b_values: np.ndarray) -> Differences:
    """Two-sided paired t-tests (``scipy.stats.ttest_rel``), one per row: ``a_values[k, j]`` is
    paired with ``b_values[k, j]`` (the same seed), NaN where a side has no value for that seed.
    The difference is the mean of the paired differences, with its 95% interval
    ``t(0.975, n - 1) * sd / sqrt(n)`` over the n pairs; fewer than 2 pairs: no test.
    The means are over each side's paired values.

    Raises:
        MissingExtraError: scipy is not installed.

    Examples:
        >>> import numpy as np
        >>> d = paired(np.array([[0.90, 0.85, 0.95]]), np.array([[0.88, 0.84, 0.92]]))
        >>> round(float(d.difference[0]), 4), d.n_a.tolist(), float(d.p_value[0]) < 0.1
        (0.02, [3], True)
    """
    stats = require_scipy(f"The {TEST_NAMES['paired']}")
    a_values, b_values = np.asarray(a_values, dtype=float), np.asarray(b_values, dtype=float)
    matched = ~np.isnan(a_values) & ~np.isnan(b_values)
    sizes = matched.sum(axis=1)
    order = np.argsort(~matched, axis=1, kind="stable")  # each row's matched seeds first
    xa = np.where(matched, a_values, math.nan)[np.arange(len(order))[:, None], order]
    xb = np.where(matched, b_values, math.nan)[np.arange(len(order))[:, None], order]
    mean_a, _ = _moments(xa, sizes)
    mean_b, _ = _moments(xb, sizes)
    difference, variance = _moments(xa - xb, sizes)
    with np.errstate(invalid="ignore", divide="ignore"):
        half = stats.t.ppf(0.975, sizes - 1) * np.sqrt(variance / sizes)
    half[variance == 0] = 0.0
    p = np.full(len(sizes), math.nan)

    def run(rows: np.ndarray) -> np.ndarray:
        size = int(sizes[rows[0]])
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            return stats.ttest_rel(xa[rows, :size], xb[rows, :size], axis=1).pvalue

    testable = np.flatnonzero(sizes >= 2)
    found = np.full(len(testable), math.nan)
    _by_group(sizes[testable][:, None], lambda rows: run(testable[rows]), found)
    found[np.isnan(found)] = 1.0  # every paired difference zero: no evidence of a difference
    p[testable] = found
    return Differences(sizes, sizes, mean_a, mean_b, difference, difference - half, difference + half, p)

"""Is a difference real? ``aggregate(test=...)`` against the best, ``tied_best`` in the tables and
the report, and ``runmanager compare`` within a sweep and between two. Every expected p-value is
computed here with scipy.stats directly, pair by pair, and Holm's correction by hand."""

from __future__ import annotations

import functools
import io
import itertools
import json
import math
import re
import subprocess
import sys

import numpy as np
import pandas as pd
import pytest
import training
from scipy import stats

from runmanager import InvalidArgumentError, InvalidArgumentTypeError, RunManager, aggregate, load_summary
from runmanager.cli import main
from runmanager.comparison import compare
from runmanager.significance import holm, tied_with_best
from runmanager.tables import format_table

# Four repeats of each model. a is the best; b is as good on four seeds (ties with a's values
# too, so Mann-Whitney takes scipy's asymptotic method for it); c is clearly worse (no ties:
# the exact method); d completed one repeat; e none. A run marked failed logs its value, then
# raises: a failed run's metric is in the summary, and must count nowhere.
TABLE = {"a": [0.90, 0.92, 0.91, 0.93], "b": [0.89, 0.93, 0.90, 0.92], "c": [0.80, 0.81, 0.79, 0.82],
         "d": [0.85, 0.99, 0.99, 0.99], "e": [0.99] * 4}
FAILS = {("d", 2), ("d", 3), ("d", 4), *(("e", r) for r in range(1, 5))}
COMPLETED = {name: [v for r, v in enumerate(values, 1) if (name, r) not in FAILS] for name, values in TABLE.items()}
#: a second sweep: the same configurations, each repeat a little lower, by an amount of its own
SHIFTS = [0.010, 0.014, 0.009, 0.013]


def train(run, callbacks, shift=False):
    repeat = getattr(run, "repeat", 1)  # a sweep without repeats= has no repeat field
    value = TABLE[run.model][repeat - 1] - (SHIFTS[repeat - 1] if shift else 0.0)
    training.fit_without_model(callbacks, [{"val_accuracy": value, "val_loss": 1 - value}])
    if (run.model, repeat) in FAILS:
        raise RuntimeError("simulated out of memory")


def sweep(log_dir, seed=0, shift=False):
    m = RunManager(log_dir, verbose=0)
    m.sweep(functools.partial(train, shift=shift), {"model": list(TABLE)}, repeats=4, seed=seed,
            max_consecutive_failures=0)
    m.close()
    return log_dir


@pytest.fixture(scope="module")
def sweeps(tmp_path_factory):
    """Sweep A (seed 0), sweep B (seed 0, each repeat shifted) and sweep C (B's values, seed 10)."""
    root = tmp_path_factory.mktemp("significance")
    return sweep(root / "a"), sweep(root / "b", shift=True), sweep(root / "c", seed=10, shift=True)


def crafted(values, metric="val_accuracy", failed=()):
    """A summary with one completed run per value of each model (repeats 1..n), and one failed run
    (with a value that would win) for each model in ``failed``."""
    rows = []
    for model, xs in values.items():
        runs = [(x, "completed") for x in xs] + ([(10.0, "failed")] if model in failed else [])
        for repeat, (x, status) in enumerate(runs, 1):
            rows.append({"run": len(rows) + 1, "model": model, "repeat": repeat, "status": status, "epochs": 1,
                         metric: x, "run_duration": 1.0, "error": None})
    return pd.DataFrame(rows)


def holm_by_hand(raw):
    """Holm's step-down over a dict of raw p-values, one comparison at a time."""
    names = sorted(raw, key=lambda name: raw[name])
    corrected, running = {}, 0.0
    for i, name in enumerate(names):
        running = max(running, (len(names) - i) * raw[name])
        corrected[name] = min(running, 1.0)
    return corrected


def against_best_by_hand(values, mode, test):
    """The one-sided Holm-corrected p-values of "worse than the best", with scipy directly."""
    means = {name: np.mean(xs) for name, xs in values.items() if len(xs)}
    best = max(means, key=means.get) if mode == "max" else min(means, key=means.get)
    alternative = "less" if mode == "max" else "greater"
    raw = {}
    for name, xs in values.items():
        if name == best or len(xs) < 2 or len(values[best]) < 2:
            continue
        if test == "welch":
            raw[name] = stats.ttest_ind(xs, values[best], equal_var=False, alternative=alternative).pvalue
        else:
            raw[name] = stats.mannwhitneyu(xs, values[best], alternative=alternative).pvalue
    return best, holm_by_hand(raw)


def test_holm_is_the_step_down_by_hand_and_skips_the_comparisons_not_made():
    rng = np.random.default_rng(0)
    for size in (1, 2, 5, 40):
        raw = rng.uniform(0, 0.2, size) ** 2
        expected = holm_by_hand(dict(enumerate(raw)))
        np.testing.assert_allclose(holm(raw), [expected[i] for i in range(size)])
    # NaN: no comparison; m is 3 here, not 5.
    got = holm([0.01, math.nan, 0.04, 0.03, math.nan])
    np.testing.assert_allclose(got, [0.03, math.nan, 0.06, 0.06, math.nan])
    assert holm([0.6, 0.7]).tolist() == [1.0, 1.0]  # clipped at 1


@pytest.mark.parametrize("test", ["welch", "mannwhitney"])
@pytest.mark.parametrize("metric, mode", [("val_accuracy", "max"), ("val_loss", "min")])
def test_every_configuration_against_the_best_matches_scipy_and_holm_by_hand(sweeps, test, metric, mode):
    """The real sweep: configurations by their completed repeats, the failed runs left out."""
    values = {name: [x if mode == "max" else 1 - x for x in xs] for name, xs in COMPLETED.items()}
    best, expected = against_best_by_hand(values, mode, test)
    table = aggregate(sweeps[0], metric, test=test)
    assert table["model"].tolist() == ["a", "b", "d", "c", "e"]
    assert best == "a" and set(expected) == {"b", "c"}  # d has one completed run, e none
    got = dict(zip(table["model"], table["p_value"]))
    assert got["b"] == pytest.approx(expected["b"], rel=1e-9) and got["c"] == pytest.approx(expected["c"], rel=1e-9)
    assert all(math.isnan(got[name]) for name in ("a", "d", "e"))
    assert expected["b"] > 0.05 > expected["c"]
    assert dict(zip(table["model"], table["tied_best"])) == {"a": True, "b": True, "d": False, "c": False, "e": False}
    assert table["tied_best"].dtype == bool
    assert table.attrs["significance"] == {"metric": metric, "mode": mode, "test": test, "alpha": 0.05}
    # The failed runs' 0.99 counted nowhere: the mean of d is its one completed run.
    assert table.set_index("model").loc["d", f"{metric}_mean"] == pytest.approx(values["d"][0])


def test_the_same_test_from_a_manager_a_summary_and_each_export(sweeps):
    log_dir = sweeps[0]
    expected = aggregate(log_dir, "val_accuracy", test="welch")
    for source in (load_summary(log_dir), log_dir / "summary.csv", log_dir / "summary.json"):
        pd.testing.assert_frame_equal(aggregate(source, "val_accuracy", test="welch"), expected)


def test_m_aggregate_takes_test_and_alpha(tmp_path):
    m = RunManager(tmp_path, verbose=0)
    m.sweep(train, {"model": ["a", "b", "c"]}, repeats=4, seed=0)
    strict = m.aggregate("val_accuracy", test="welch")
    loose = m.aggregate("val_accuracy", test="welch", alpha=0.5)
    _, expected = against_best_by_hand({k: TABLE[k] for k in "abc"}, "max", "welch")
    assert strict["p_value"].tolist()[1:] == pytest.approx([expected["b"], expected["c"]])
    assert strict["tied_best"].tolist() == [True, True, False]
    assert expected["b"] < 0.5 and loose["tied_best"].tolist() == [True, False, False]


@pytest.mark.parametrize("test", ["welch", "mannwhitney"])
def test_a_metric_to_minimise_by_mode_and_ties_in_the_means(test):
    """``score`` with mode="min": lower is better. x and y have the same mean (the first of the
    two, x, is the best: rank 1 by a stable sort); z is clearly worse."""
    values = {"x": [1.0, 2.0, 3.0, 2.0], "y": [2.0, 1.5, 2.5, 2.0], "z": [9.0, 9.5, 10.5, 10.0]}
    table = aggregate(crafted(values, "score"), "score", mode="min", test=test)
    assert table["model"].tolist() == ["x", "y", "z"] and table["rank"].tolist() == [1, 1, 3]
    raw = {}
    for name in ("y", "z"):
        if test == "welch":
            raw[name] = stats.ttest_ind(values[name], values["x"], equal_var=False, alternative="greater").pvalue
        else:
            raw[name] = stats.mannwhitneyu(values[name], values["x"], alternative="greater").pvalue
    expected = holm_by_hand(raw)
    assert table["p_value"].tolist()[1:] == pytest.approx([expected["y"], expected["z"]])
    assert table["tied_best"].tolist() == [True, True, False]


@pytest.mark.filterwarnings("ignore:Precision loss occurred:RuntimeWarning")  # scipy, on the constant samples
def test_degenerate_data_no_spread_identical_samples_and_a_single_run():
    # No spread and the same mean: scipy's Welch is 0/0 (NaN); here p = 1, tied.
    table = aggregate(crafted({"x": [0.9, 0.9, 0.9], "y": [0.9, 0.9, 0.9], "z": [0.5, 0.6, 0.7]}), "val_accuracy",
                      test="welch")
    assert math.isnan(stats.ttest_ind([0.9] * 3, [0.9] * 3, equal_var=False, alternative="less").pvalue)
    raw_z = stats.ttest_ind([0.5, 0.6, 0.7], [0.9] * 3, equal_var=False, alternative="less").pvalue
    expected = holm_by_hand({"y": 1.0, "z": raw_z})
    assert table["p_value"].tolist()[1:] == pytest.approx([expected["y"], expected["z"]])
    assert table["tied_best"].tolist() == [True, True, False]
    # No spread, different means: scipy's infinite t and p = 0 stand: not tied.
    table = aggregate(crafted({"x": [0.9, 0.9], "y": [0.8, 0.8]}), "val_accuracy", test="welch")
    assert table["p_value"].tolist()[1] == 0.0 and table["tied_best"].tolist() == [True, False]
    # Identical samples with spread: t = 0, one-sided p = 0.5 (one comparison: Holm leaves it).
    for test, p in (("welch", 0.5), ("mannwhitney", stats.mannwhitneyu([1, 2, 3], [1, 2, 3], alternative="less").pvalue)):
        table = aggregate(crafted({"x": [1.0, 2.0, 3.0], "y": [1.0, 2.0, 3.0]}), "val_accuracy", test=test)
        assert table["p_value"].tolist()[1] == pytest.approx(p) and table["tied_best"].tolist() == [True, True]
    # The best has a single completed run (and a failed one): no test can be made against it.
    table = aggregate(crafted({"x": [0.95], "y": [0.9, 0.91], "z": [0.5, 0.6]}, failed=("x",)), "val_accuracy",
                      test="welch")
    assert table["model"].tolist() == ["x", "y", "z"] and table["completed"].tolist() == [1, 2, 2]
    assert table["p_value"].isna().all() and table["tied_best"].tolist() == [True, False, False]


def test_tied_with_best_is_the_building_block_of_aggregate():
    samples = [[0.90, 0.91, 0.92], [0.89, 0.91, 0.93], [0.5, 0.52, 0.51], [0.7]]
    p, tied = tied_with_best(samples, 0, "max", "welch")
    raw = {i: stats.ttest_ind(samples[i], samples[0], equal_var=False, alternative="less").pvalue for i in (1, 2)}
    expected = holm_by_hand(raw)
    np.testing.assert_allclose(p, [math.nan, expected[1], expected[2], math.nan])
    assert tied.tolist() == [True, True, False, False]


def test_without_a_test_the_aggregate_is_unchanged(sweeps):
    table = aggregate(sweeps[0], "val_accuracy")
    assert "p_value" not in table.columns and "tied_best" not in table.columns and not table.attrs
    assert table.columns.tolist() == ["rank", "model", "runs", "completed", "val_accuracy_mean", "val_accuracy_std",
                                      "val_accuracy_ci95", "val_loss_mean", "val_loss_std"]


@pytest.mark.parametrize("kwargs, error, message", [
    ({"test": "t-test"}, InvalidArgumentError, r"Unknown test 't-test'; choose one of 'welch', 'mannwhitney'\."),
    ({"test": "paired"}, InvalidArgumentError, r"Unknown test 'paired'"),
    ({"test": "welch", "alpha": 0}, InvalidArgumentError, r"alpha must be a number between 0 and 1 .*got 0\."),
    ({"test": "welch", "alpha": 1.0}, InvalidArgumentError, r"got 1\.0\."),
    ({"test": "welch", "alpha": -0.05}, InvalidArgumentError, r"got -0\.05\."),
    ({"test": "welch", "alpha": "0.05"}, InvalidArgumentTypeError, r"alpha must be a number .* got '0\.05'\."),
    ({"test": "welch", "alpha": True}, InvalidArgumentTypeError, r"got True\."),
    ({"test": "welch", "metric": None}, InvalidArgumentError, r"test='welch' compares configurations by a metric"),
])
def test_bad_tests_and_alphas_are_refused_with_the_fix(kwargs, error, message):
    summary = crafted({"x": [1.0, 2.0], "y": [1.0, 3.0]})
    kwargs = {"metric": "val_accuracy", **kwargs}
    with pytest.raises(error, match=message):
        aggregate(summary, kwargs.pop("metric"), **kwargs)


# ------------------------------------------------------------------------------------------
# Tables
# ------------------------------------------------------------------------------------------
NOTE = ("the best mean, and the means not significantly worse (one-sided Welch's t-test against the best, "
        "Holm-corrected, alpha = 0.05).")
FEWER = "completed fewer repeats than other configurations (up to 4): its mean is over fewer runs."


def cells(line):
    return [cell.strip() for cell in line.split("|")[1:-1]]


def test_github_and_latex_bold_exactly_the_tied_best_cells_and_say_which_test(sweeps):
    table = aggregate(sweeps[0], "val_accuracy", test="welch")
    tied = table["tied_best"].tolist()
    assert tied == [True, True, False, False, False]
    lines = format_table(table, "github", params=["model"]).splitlines()
    header = cells(lines[0])
    assert header == ["rank", "model", "runs", "completed", "val_accuracy", "val_loss", "p_value"]  # no tied_best
    rows = [cells(line) for line in lines[2:2 + len(table)]]
    assert [row[4].startswith("**") for row in rows] == tied
    # val_loss is not the tested metric: its best mean alone is bold, as before.
    assert [row[5].startswith("**") for row in rows] == [True, False, False, False, False]
    assert [row[6] for row in rows][:2] == ["", f"{table['p_value'][1]:.4f}"]
    # Under the table: the note on d's one completed repeat, and which test and alpha.
    assert lines[2 + len(table):] == ["", f"\\* {FEWER}", "", f"Bold in val_accuracy: {NOTE}"]

    latex = format_table(table, "latex", params=["model"]).splitlines()
    body = latex[4:4 + len(table)]
    assert [row.split(" & ")[4].startswith(r"\textbf{") for row in body] == tied
    assert latex[-3:] == [rf"\multicolumn{{7}}{{l}}{{\footnotesize $^{{*}}$ {FEWER}}} \\",
                          rf"\multicolumn{{7}}{{l}}{{\footnotesize Bold in val\_accuracy: {NOTE}}} \\",
                          r"\end{tabular}"]


def test_plain_marks_the_tied_best_cells_and_csv_stays_data(sweeps):
    table = aggregate(sweeps[0], "val_loss", test="mannwhitney")
    lines = format_table(table, "plain", params=["model"]).splitlines()
    marked = [line.split("  ")[-1] for line in lines[2:2 + len(table)]]
    assert ["†" in line for line in lines[2:2 + len(table)]] == table["tied_best"].tolist() == [True, True] + [False] * 3
    assert "**" not in "\n".join(lines) and marked
    assert lines[-1] == ("† in val_loss: the best mean, and the means not significantly worse (one-sided Mann–Whitney "
                         "U test against the best, Holm-corrected, alpha = 0.05).")
    back = pd.read_csv(io.StringIO(format_table(table, "csv")))
    assert back.columns[-2:].tolist() == ["p_value", "tied_best"]
    assert back["tied_best"].tolist() == table["tied_best"].tolist()
    np.testing.assert_allclose(back["p_value"], table["p_value"], rtol=1e-12)


@pytest.mark.parametrize("fmt", ["plain", "github", "latex", "csv"])
def test_show_aggregate_test_through_the_cli_in_every_format(sweeps, capsys, fmt):
    log_dir = sweeps[0]
    table = aggregate(log_dir, "val_accuracy", test="welch", alpha=0.5)
    assert table["tied_best"].tolist() == [True, False, False, False, False]  # b's p is under 0.5
    args = ["show", str(log_dir), "--aggregate", "--metric", "val_accuracy", "--test", "welch", "--alpha", "0.5"]
    assert main([*args, "--format", fmt]) == 0
    out = capsys.readouterr().out
    if fmt == "csv":
        back = pd.read_csv(io.StringIO(out))
        assert back["tied_best"].tolist() == table["tied_best"].tolist()
        np.testing.assert_allclose(back["p_value"], table["p_value"])
        return
    note = NOTE.replace("0.05", "0.5")
    if fmt == "plain":
        assert out.count("†") == 2 and out.rstrip().endswith(note)  # the one cell, and the note
    elif fmt == "github":
        assert out.count("**") == 2 * 2 and out.rstrip().endswith(f"Bold in val_accuracy: {note}")  # + val_loss
    else:
        assert out.count(r"\textbf{") == 2 and out.rstrip().endswith("alpha = 0.5).} \\\\\n\\end{tabular}")


def test_show_where_over_the_tested_table_keeps_the_bold_cells(sweeps, capsys):
    for where in ("tied_best", "tied_best == True and completed > 1"):
        assert main(["show", str(sweeps[0]), "--aggregate", "--metric", "val_accuracy", "--test", "welch",
                     "--where", where, "--format", "github"]) == 0
        lines = capsys.readouterr().out.splitlines()
        assert len(lines) == 6 and [cells(line)[1] for line in lines[2:4]] == ["a", "b"] and lines[4] == ""
        assert all(cells(line)[4].startswith("**") for line in lines[2:4]) and lines[5].startswith("Bold in val_acc")


@pytest.mark.parametrize("args, message", [
    (["--test", "ttest"], "Unknown test 'ttest'; choose one of 'welch', 'mannwhitney'."),
    (["--test", "welch", "--alpha", "5%"], "--alpha must be a number between 0 and 1, such as 0.05, got '5%'."),
    (["--test", "welch", "--alpha", "1.5"], "alpha must be a number between 0 and 1 (exclusive)"),
    (["--test", "welch", "--metric", "val_acc"], "Unknown metric 'val_acc'"),
])
def test_show_test_bad_input_is_one_line_and_exit_2(sweeps, capsys, args, message):
    base = ["show", str(sweeps[0]), "--aggregate", "--metric", "val_accuracy"]
    assert main([*base, *args]) == 2
    captured = capsys.readouterr()
    assert captured.out == "" and captured.err.count("\n") == 1 and message in captured.err
    assert main(["show", str(sweeps[0]), "--metric", "val_accuracy", "--test", "welch"]) == 2
    assert "pass --aggregate and --metric too" in capsys.readouterr().err


# ------------------------------------------------------------------------------------------
# compare
# ------------------------------------------------------------------------------------------
def welch_by_hand(x, y):
    """Two-sided Welch p-value, mean difference and its 95% interval, from scipy directly."""
    result = stats.ttest_ind(x, y, equal_var=False)
    interval = result.confidence_interval(0.95)
    return result.pvalue, np.mean(x) - np.mean(y), interval.low, interval.high


@pytest.mark.parametrize("test", ["welch", "mannwhitney"])
def test_compare_within_a_sweep_tests_every_pair_as_scipy_does(sweeps, test):
    table = compare(sweeps[0], metric="val_accuracy", test=test)
    order = ["a", "b", "d", "c"]  # best mean first; e has no completed run
    pairs = list(itertools.combinations(order, 2))
    assert list(zip(table["a_model"], table["b_model"])) == pairs
    assert table.columns.tolist() == ["a_model", "b_model", "n_a", "n_b", "mean_a", "mean_b", "difference", "ci_low",
                                      "ci_high", "p_value", "p_holm", "significant"]
    raw, intervals = {}, {}
    for x, y in pairs:
        p, difference, low, high = welch_by_hand(COMPLETED[x], COMPLETED[y])
        intervals[x, y] = (difference, low, high)
        if "d" not in (x, y):
            raw[x, y] = p if test == "welch" else stats.mannwhitneyu(COMPLETED[x], COMPLETED[y]).pvalue
    corrected = holm_by_hand(raw)
    for row in table.to_dict("records"):
        key = (row["a_model"], row["b_model"])
        assert (row["n_a"], row["n_b"]) == (len(COMPLETED[key[0]]), len(COMPLETED[key[1]]))
        assert row["mean_a"] == pytest.approx(np.mean(COMPLETED[key[0]]))
        difference, low, high = intervals[key]
        assert row["difference"] == pytest.approx(difference)
        if "d" in key:  # one completed run: no test, no interval
            assert math.isnan(row["p_value"]) and math.isnan(row["p_holm"]) and not row["significant"]
            continue
        assert (row["ci_low"], row["ci_high"]) == pytest.approx((low, high), rel=1e-9)
        assert row["p_value"] == pytest.approx(raw[key], rel=1e-9)
        assert row["p_holm"] == pytest.approx(corrected[key], rel=1e-9)
        assert row["significant"] == (corrected[key] < 0.05)
    # Mann-Whitney's smallest two-sided p on 4 and 4 runs is 2/70 = 0.029: over three pairs, Holm
    # leaves nothing significant.
    significant = test == "welch"
    assert table.set_index(["a_model", "b_model"])["significant"].to_dict() == {
        ("a", "b"): False, ("a", "d"): False, ("a", "c"): significant, ("b", "d"): False, ("b", "c"): significant,
        ("d", "c"): False}


def test_compare_within_a_sweep_paired_pairs_the_repeats_by_their_seed(sweeps):
    """In one sweep with seed=, repeat r of every configuration has the same seed: paired by it."""
    table = compare(sweeps[0], metric="val_loss", test="paired")
    assert table.attrs["comparison"]["paired_by"] == "seed"
    row = table[(table["a_model"] == "a") & (table["b_model"] == "c")].iloc[0]
    x, y = [1 - v for v in COMPLETED["a"]], [1 - v for v in COMPLETED["c"]]
    result = stats.ttest_rel(x, y)
    interval = result.confidence_interval(0.95)
    assert row["p_value"] == pytest.approx(result.pvalue)
    assert (row["difference"], row["ci_low"], row["ci_high"]) == pytest.approx(
        (np.mean(np.subtract(x, y)), interval.low, interval.high))
    assert row["n_a"] == row["n_b"] == 4


def test_the_journal_records_each_runs_seed_and_reads_old_lines_without_one(sweeps, tmp_path):
    lines = [json.loads(line) for line in (sweeps[2] / "journal.jsonl").read_text().splitlines()]
    starts = [(e["params"]["model"], e["params"]["repeat"], e["seed"]) for e in lines if e["type"] == "run_start"]
    assert starts[:4] == [("a", 1, 10), ("a", 2, 11), ("a", 3, 12), ("a", 4, 13)] and len(starts) == 20
    # An unseeded run's line stays as it was (no seed key), and folds to seed None.
    m = RunManager(tmp_path / "unseeded", verbose=0)
    m.sweep(train, {"model": ["a"]}, repeats=2)
    m.close()
    plain = [json.loads(line) for line in (tmp_path / "unseeded" / "journal.jsonl").read_text().splitlines()]
    assert all("seed" not in e for e in plain if e["type"] == "run_start")
    from runmanager.storage import results_from_journal

    assert [r.seed for r in results_from_journal(tmp_path / "unseeded" / "journal.jsonl").runs.values()] == [None, None]
    assert [r.seed for r in results_from_journal(sweeps[2] / "journal.jsonl").runs.values()][:2] == [10, 11]


def test_compare_two_sweeps_with_the_same_seeds_is_paired_by_seed(sweeps):
    a, b, _ = sweeps
    table = compare(a, b, metric="val_accuracy")  # the seeds match: paired, without being asked
    info = table.attrs["comparison"]
    assert (info["test"], info["paired_by"]) == ("paired", "seed")
    assert table.columns.tolist()[:3] == ["model", "n_a", "n_b"]
    assert table["model"].tolist() == ["a", "b", "d", "c"]  # A's order; e completed nowhere
    shifted = {name: [v - SHIFTS[r - 1] for r, v in enumerate(TABLE[name], 1) if (name, r) not in FAILS]
               for name in TABLE}
    raw = {}
    for name in ("a", "b", "c"):
        result = stats.ttest_rel(COMPLETED[name], shifted[name])
        raw[name] = result.pvalue
        row = table.set_index("model").loc[name]
        interval = result.confidence_interval(0.95)
        assert row["p_value"] == pytest.approx(result.pvalue, rel=1e-9)
        assert (row["ci_low"], row["ci_high"]) == pytest.approx((interval.low, interval.high), rel=1e-9)
        assert row["difference"] == pytest.approx(np.mean(SHIFTS))
    corrected = holm_by_hand(raw)
    assert table.set_index("model")["p_holm"].drop("d").to_dict() == pytest.approx(corrected)
    assert table.set_index("model")["significant"].to_dict() == {"a": True, "b": True, "d": False, "c": True}
    # Welch on the same data sees no difference: the seeds' noise hides the shift.
    welch = compare(a, b, metric="val_accuracy", test="welch").set_index("model")
    for name in ("a", "b", "c"):
        assert welch.loc[name, "p_value"] == pytest.approx(
            stats.ttest_ind(COMPLETED[name], shifted[name], equal_var=False).pvalue)
    assert not welch["significant"].any()


def test_compare_two_sweeps_with_other_seeds_is_welch_and_paired_by_seed_is_refused(sweeps, tmp_path):
    a, _, c = sweeps
    table = compare(a, c, metric="val_accuracy")
    assert table.attrs["comparison"]["test"] == "welch"
    with pytest.raises(InvalidArgumentError, match=r"No comparison has at least 2 completed runs \(or pairs\)"):
        compare(a, c, metric="val_accuracy", test="paired")
    # Summary files hold no seeds: paired by repeat number, and said so.
    table = compare(a / "summary.csv", c / "summary.json", metric="val_accuracy", test="paired")
    assert table.attrs["comparison"]["paired_by"] == "repeat"
    assert table.set_index("model").loc["a", "p_value"] == pytest.approx(
        stats.ttest_rel(COMPLETED["a"], [v - s for v, s in zip(TABLE["a"], SHIFTS)]).pvalue)


@pytest.mark.parametrize("fmt", ["plain", "github", "latex", "csv"])
def test_compare_through_the_cli_in_every_format(sweeps, capsys, fmt):
    a, b, _ = sweeps
    assert main(["compare", str(a), "--metric", "val_accuracy", "--format", fmt]) == 0
    out = capsys.readouterr().out
    expected = compare(a, metric="val_accuracy")
    if fmt == "csv":  # one row per pair, data only
        back = pd.read_csv(io.StringIO(out))
        assert len(back) == 6 and back.columns.tolist() == expected.columns.tolist()
        np.testing.assert_allclose(back["p_holm"], expected["p_holm"])
        assert back["significant"].tolist() == expected["significant"].tolist()
        return
    note = ("difference = mean_a - mean_b, with its 95% CI; p_value: two-sided Welch's t-test; p_holm: "
            "Holm-corrected over the 3 comparisons made; significant: p_holm < 0.05.")  # d has one run
    if fmt == "latex":
        assert out.startswith("\\begin{tabular}") and "a\\_model" in out
        escaped = note.replace("_", "\\_").replace("%", "\\%")
        assert out.rstrip().endswith(f"\\footnotesize {escaped}}} \\\\\n\\end{{tabular}}")
    else:
        assert out.rstrip().endswith(note)
        assert len([line for line in out.splitlines() if re.match(r"^\|? *[abcd] ", line)]) == 6
    assert main(["compare", str(a), str(b), "--metric", "val_accuracy", "--format", fmt]) == 0
    out = capsys.readouterr().out
    assert "paired t-test (paired by seed)" in out and f"a = {a}, b = {b}".replace("_", "\\_" if fmt == "latex" else "_") in out


@pytest.mark.parametrize("args, message", [
    (["--test", "anova"], "Unknown test 'anova'; choose one of 'welch', 'mannwhitney', 'paired'."),
    (["--alpha", "0"], "alpha must be a number between 0 and 1 (exclusive)"),
    (["--alpha", "x"], "--alpha must be a number between 0 and 1, such as 0.05, got 'x'."),
    (["--metric", "f1"], "Unknown metric 'f1' in "),
    (["SECOND"], "No configuration is in both"),
    (["ONE-RUN"], "No comparison has at least 2 completed runs"),
    (["--no-metric"], "compare needs --metric NAME"),
])
def test_compare_bad_input_is_one_line_and_exit_2(sweeps, tmp_path, capsys, args, message):
    a = sweeps[0]
    if args == ["SECOND"]:  # other params: nothing in common
        m = RunManager(tmp_path / "other", verbose=0)
        m.sweep(train, {"model": ["a"], "units": [4]}, repeats=2, seed=0)
        m.close()
        args = [str(tmp_path / "other")]
    if args == ["ONE-RUN"]:  # every configuration one completed run
        m = RunManager(tmp_path / "once", verbose=0)
        m.sweep(train, {"model": ["a", "b"]}, seed=0)
        m.close()
        a, args = tmp_path / "once", []
    command = ["compare", str(a), *args]
    if "--metric" not in args:
        command += [] if args == ["--no-metric"] else ["--metric", "val_accuracy"]
    command = [c for c in command if c != "--no-metric"]
    assert main(command) == 2
    captured = capsys.readouterr()
    assert captured.out == "" and captured.err.count("\n") == 1, captured.err
    assert captured.err.startswith("runmanager: error: ") and message in captured.err


def test_compare_needs_two_configurations_in_one_sweep(tmp_path):
    m = RunManager(tmp_path, verbose=0)
    m.sweep(train, {"model": ["a"]}, repeats=3, seed=0)
    with pytest.raises(InvalidArgumentError, match="compare needs at least two configurations"):
        compare(tmp_path, metric="val_accuracy")
    with pytest.raises(InvalidArgumentError, match="Unknown metric 'acc'"):
        compare(m, metric="acc")


# ------------------------------------------------------------------------------------------
# The report, and life without scipy
# ------------------------------------------------------------------------------------------
def test_the_report_bolds_the_configurations_tied_with_the_best_and_names_the_test(sweeps, tmp_path):
    from runmanager import report

    page = report(sweeps[0], tmp_path / "report.html").read_text()
    assert page.count("<strong>") == 2 * 2  # a and b, in the best configurations and in the summary
    assert re.findall(r"<strong>([^<]*)</strong>", page)[:2] == ["0.9150 ± 0.0129", "0.9100 ± 0.0183"]
    assert page.count(f"Bold in val_accuracy: {NOTE.replace(chr(39), '&#x27;')}") == 2


NO_SCIPY = "import sys; sys.modules['scipy'] = None\n"


def without_scipy(code, tmp_path):
    script = tmp_path / "no_scipy.py"
    script.write_text(NO_SCIPY + code)
    return subprocess.run([sys.executable, str(script)], capture_output=True, text=True, timeout=300)


def test_without_scipy_the_tests_say_what_to_install_and_everything_else_works(sweeps, tmp_path):
    log_dir = sweeps[0]
    done = without_scipy(f"""
import runmanager
from runmanager import MissingExtraError, aggregate
from runmanager.comparison import compare
try:
    import scipy
except ImportError:
    print("no scipy")
table = aggregate({str(log_dir)!r}, "val_accuracy")
print("ci95", round(float(table["val_accuracy_ci95"][0]), 6))
for call in (lambda: aggregate({str(log_dir)!r}, "val_accuracy", test="welch"),
             lambda: compare({str(log_dir)!r}, metric="val_accuracy")):
    try:
        call()
    except MissingExtraError as error:
        print(error)
""", tmp_path)
    assert done.returncode == 0, done.stderr
    lines = done.stdout.splitlines()
    expected = aggregate(log_dir, "val_accuracy")["val_accuracy_ci95"][0]
    assert lines[0] == "no scipy" and lines[1] == f"ci95 {round(float(expected), 6)}"
    assert lines[2] == ("aggregate(test='welch') needs the 'scipy' package, which is not installed. "
                        'Install it with: pip install "runmanager[stats]"')
    assert lines[3] == 'compare needs the \'scipy\' package, which is not installed. Install it with: pip install "runmanager[stats]"'
    for command in (["show", str(log_dir), "--aggregate", "--metric", "val_accuracy", "--test", "welch"],
                    ["compare", str(log_dir), "--metric", "val_accuracy"]):
        done = without_scipy(f"from runmanager.cli import main\nsys.exit(main({command!r}))", tmp_path)
        assert done.returncode == 2 and done.stdout == "" and done.stderr.count("\n") == 1, done.stderr
        assert 'pip install "runmanager[stats]"' in done.stderr
    done = without_scipy(f"from runmanager.cli import main\nsys.exit(main({['show', str(log_dir), '--aggregate']!r}))",
                         tmp_path)
    assert done.returncode == 0 and "0.9150 ± 0.0129" in done.stdout


def test_without_scipy_the_report_says_how_to_add_the_test(sweeps, tmp_path):
    done = without_scipy(f"from runmanager import report\nprint(report({str(sweeps[0])!r}, {str(tmp_path)!r}))",
                         tmp_path)
    assert done.returncode == 0, done.stderr
    page = (tmp_path / "report.html").read_text()
    assert "<strong>" not in page and "p_value" not in page
    assert "pip install &quot;runmanager[stats]&quot; (scipy) adds Welch&#x27;s t-test against the best." in page


def test_compare_two_summaries_matches_configurations_by_params_in_any_order():
    """Summaries hold no seeds: without a test, two sweeps are compared with Welch's t-test."""
    a = crafted({"x": [0.90, 0.92, 0.91], "y": [0.80, 0.82, 0.81]})
    b = crafted({"y": [0.70, 0.71, 0.73], "z": [0.5, 0.6]})
    b.insert(1, "units", 8)
    a.insert(2, "units", 8)  # params in another order: model, units against units, model
    table = compare(a, b, metric="val_accuracy")
    assert table.attrs["comparison"]["test"] == "welch"
    assert table[["model", "units"]].values.tolist() == [["y", 8]]
    p, difference, low, high = welch_by_hand([0.80, 0.82, 0.81], [0.70, 0.71, 0.73])
    row = table.iloc[0]
    assert (row["p_value"], row["p_holm"], row["difference"], row["ci_low"], row["ci_high"]) == pytest.approx(
        (p, p, difference, low, high))
    with pytest.raises(InvalidArgumentError, match=r"No configuration is in both sweep a \(params: model, units; 2 configurations with a completed "
                       r"run\) and sweep b \(params: units, model; 2"):
        compare(a, b.assign(units=16), metric="val_accuracy")

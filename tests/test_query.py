"""The row filter of ``runmanager show --where``: the ordinary pandas query language, over a real
summary, with the rows pandas selects, and nothing ever run as code."""

from __future__ import annotations

import contextlib

import pandas as pd
import pytest
import training

from runmanager import InvalidArgumentError, InvalidArgumentTypeError, RunManager, load_summary
from runmanager.query import columns_used, select

GRID = {"lr": [0.1, 0.01, 0.001], "units": [4, 8], "optimizer": ["adam", "sgd"]}


def two_epochs(run, callbacks):
    """Metrics that depend on the params; the run lr=0.001, units=8, optimizer='sgd' fails, so its
    metrics are missing (NaN) in the summary."""
    if (run.lr, run.units, run.optimizer) == (0.001, 8, "sgd"):
        raise RuntimeError("simulated out of memory")
    level = {0.1: 0.6, 0.01: 0.8, 0.001: 0.7}[run.lr] + run.units / 100 + (0.02 if run.optimizer == "adam" else 0)
    training.fit_without_model(callbacks, [
        {"loss": round(1 - level + c, 4), "val_accuracy": round(level - c / 2, 4),
         "top 5 accuracy": round(min(1.0, level + 0.25 - c), 4)}
        for c in (0.3, 0.1)])


@pytest.fixture(scope="module")
def summary(tmp_path_factory):
    log_dir = tmp_path_factory.mktemp("filtered")
    RunManager(log_dir, verbose=0).sweep(two_epochs, GRID, seed=0, max_consecutive_failures=0)
    loaded = load_summary(log_dir)  # as show reads it: from the journal on disk
    assert len(loaded) == 12 and loaded["val_accuracy"].isna().sum() == 1
    return loaded


ORDINARY = [
    "lr < 0.01 and status == 'completed'",
    "0.001 < lr <= 0.1",
    "optimizer in ['adam', 'rmsprop']",
    "optimizer not in ('adam',)",
    "units == [4]",
    "units != [4, 16]",
    "lr == 0.1 & units == 8",
    "(lr == 0.1) | ~(units == 8)",
    "not (lr < 0.05 or optimizer == 'sgd')",
    "`top 5 accuracy` >= 0.9",
    "`top 5 accuracy` > 0.8 and `lr` < 0.1",
    "val_accuracy > 0.75",
    "val_accuracy != 0.83",
    "loss - 0.1 * units / 8 < 0.3",
    "-loss > -0.3",
    "status != 'completed' or val_accuracy > 0.85",
    "lr > 1e-2",
    "units >= 4 and units < 8 and epochs == 2",
    "status == \"failed\"",
    "lr in [0.1, -1, 2.5e-3] and optimizer == 'adam'",
]


@pytest.mark.parametrize("expression", ORDINARY)
def test_an_ordinary_expression_selects_the_rows_pandas_query_selects(summary, expression):
    selected = select(summary, expression)
    pd.testing.assert_frame_equal(selected, summary.query(expression))
    assert 0 < len(selected) < len(summary)  # each expression tells rows apart


def test_a_run_with_a_missing_value_matches_no_comparison_but_not_equal(summary):
    failed = summary.loc[summary["status"] == "failed", "run"].tolist()
    assert len(failed) == 1
    assert not set(failed) & set(select(summary, "val_accuracy < 10 or val_accuracy >= 10")["run"])
    assert not set(failed) & set(select(summary, "val_accuracy == val_accuracy")["run"])
    assert set(select(summary, "val_accuracy != 0.5")["run"]) == set(summary["run"])
    assert select(summary, "val_accuracy != val_accuracy")["run"].tolist() == failed


def test_backticks_name_a_column_that_is_not_a_python_name(summary):
    assert select(summary, "`top 5 accuracy` == 1")["run"].tolist() == (
        summary.loc[summary["top 5 accuracy"] == 1, "run"].tolist())
    assert columns_used("`top 5 accuracy` > 0.9 and `lr` < 1 and lr > 0") == ["top 5 accuracy", "lr"]


def test_backticks_and_ampersands_inside_a_string_are_part_of_the_string(summary):
    assert select(summary, "optimizer == 'a `b` & c | d'").empty
    assert len(select(summary, "optimizer != 'a `b` & c' and optimizer != \"`\"")) == len(summary)


def test_in_takes_a_list_or_tuple_of_literals(summary):
    adam = summary["optimizer"] == "adam"
    assert select(summary, "optimizer in ['adam']")["run"].tolist() == summary.loc[adam, "run"].tolist()
    assert select(summary, "optimizer not in ('adam',)")["run"].tolist() == summary.loc[~adam, "run"].tolist()
    assert select(summary, "units in []").empty
    with pytest.raises(InvalidArgumentError, match=r"puts 'optimizer' after 'in'; 'in' takes a list or tuple"):
        select(summary, "'adam' in optimizer")
    with pytest.raises(InvalidArgumentError, match=r"has 'units' in the list '\[4, units\]', which may hold only"):
        select(summary, "lr in [4, units]")


def test_a_name_that_is_not_a_column_is_refused_with_the_columns(summary):
    with pytest.raises(InvalidArgumentError, match=r"The filter 'learning_rate < 0.1' names 'learning_rate', which "
                                                   r"is not a column; the columns are run, lr, units, optimizer, status"):
        select(summary, "learning_rate < 0.1")


@pytest.mark.parametrize(("expression", "gives"), [
    ("lr", "float64 values"), ("lr * 2", "float64 values"), ("'adam'", "the single value 'adam'"),
    ("optimizer", "str values"),
])
def test_an_expression_that_is_not_true_or_false_per_row_is_refused(summary, expression, gives):
    with pytest.raises(InvalidArgumentError, match=rf"gives {gives}, not true or false per row; compare it"):
        select(summary, expression)


@pytest.mark.parametrize(("expression", "message"), [
    ("not lr", r"joins 'lr' with and / or / not, but it gives float64 values"),
    ("lr < 0.1 and units", r"joins 'units' with and / or / not, but it gives int64 values"),
    ("optimizer * 1000000000 == 'adam'", r"does arithmetic on 'optimizer', which gives str values"),
    ("status < 1", r"orders 'status', which gives str values, against '1', which gives the single value 1; "
                   r"< <= > >= compare numbers with numbers and strings with strings"),
    ("0 < lr < 'a'", r"orders 'lr', which gives float64 values, against \"'a'\", which gives the single value 'a'"),
    ("lr / 0 > 1 / 0", r"cannot be evaluated over these columns: division by zero"),
])
def test_an_expression_over_the_wrong_kind_of_value_is_refused(summary, expression, message):
    with pytest.raises(InvalidArgumentError, match=message):
        select(summary, expression)


@pytest.mark.parametrize(("expression", "message"), [
    ("lr <", r"is not a valid expression \(invalid syntax\); write conditions such as"),
    ("`top 5 accuracy > 0.9", r"opens a backtick at character 1 that is never closed"),
    ("`` > 1", r"has empty backticks"),
    ("   ", r"The filter is empty"),
    ("not " * 5000 + "lr < 1", r"is nested too deeply"),
])
def test_a_malformed_expression_is_refused(summary, expression, message):
    with pytest.raises(InvalidArgumentError, match=message):
        select(summary, expression)


REFUSED = [  # (expression, the part named, what it is)
    ("units.__init__.__globals__['sys'].modules['os'].system('touch {path}') == 0",
     "units.__init__.__globals__['sys'].modules['os'].system('touch {path}')", "a call"),
    ("units.to_pickle('{path}') == 1", "units.to_pickle('{path}')", "a call"),
    ("units.__class__ == 1", "units.__class__", "an attribute"),
    ("open('{path}', 'w') == 1", "open('{path}', 'w')", "a call"),
    ("units[0] == 4", "units[0]", "indexing"),
    ("lr == (lambda: 1)", "lambda: 1", "a lambda"),
    ("(path := '{path}') == 1", "path := '{path}'", "an assignment (:=)"),
    ("lr ** 999999999 > 1", "lr ** 999999999", "the operator '**'"),
    ("units % 2 == 0", "units % 2", "the operator '%'"),
    ("f'{{lr}}' == 'x'", "f'{{lr}}'", "an f-string"),
    ("[u for u in units] == 1", "[u for u in units]", "a comprehension"),
    ("lr is None", "lr is None", "the operator 'is'"),
    ("{{'a': 1}} == 1", "{{'a': 1}}", "a dict"),
    ("(lr if units else 1) > 0", "lr if units else 1", "an if-else expression"),
    ("lr == b'x'", "b'x'", "a value of type bytes"),
    ("[lr] == 1", "[lr]", "a list, which may only follow in, not in, == or !="),
]


@pytest.mark.parametrize(("template", "part", "kind"), REFUSED)
def test_code_is_refused_naming_the_part_and_listing_what_is_allowed(summary, tmp_path, template, part, kind):
    path = tmp_path / "written"
    expression = template.format(path=path)
    with pytest.raises(InvalidArgumentError) as refused:
        select(summary, expression)
    assert str(refused.value) == (
        f"The filter {expression!r} uses {part.format(path=path)!r} ({kind}), which a filter may not; a filter is "
        "made of column names (`in backticks` when not Python names), numbers, 'strings', True, False, None, "
        "comparisons == != < <= > >= (chained too), in / not in a [list] of values, and / or / not (or & | ~), "
        "+ - * / between numbers, and parentheses.")
    assert not path.exists()


@pytest.mark.parametrize("expression", ["@lr > 1", "lr @ units == 1"])
def test_at_is_refused_there_being_no_variables(summary, expression):
    with pytest.raises(InvalidArgumentError, match=r"uses '@', which a filter may not: there are no variables"):
        select(summary, expression)


@pytest.mark.parametrize("template", [REFUSED[0][0], REFUSED[1][0]])
def test_the_refused_attacks_are_real_ones_that_pandas_query_runs(summary, tmp_path, template):
    """What ``--where`` used before: pandas' python engine writes the file; the filter does not."""
    ran, refused = tmp_path / "ran", tmp_path / "refused"
    with contextlib.suppress(KeyError):  # the expression is one bool, no row label: after the harm is done
        summary.query(template.format(path=ran), engine="python")
    assert ran.exists()
    with pytest.raises(InvalidArgumentError):
        select(summary, template.format(path=refused))
    assert not refused.exists()


def test_a_filter_is_checked_without_a_table_and_its_errors_are_value_errors():
    assert columns_used("0.001 < lr <= 0.1 and optimizer in ['adam'] and lr != 0.01") == ["lr", "optimizer"]
    with pytest.raises(ValueError, match="an attribute"):
        columns_used("lr.real > 0")
    with pytest.raises(InvalidArgumentTypeError, match=r"A filter is a str such as \"lr < 0.01\", got 0.1\."):
        columns_used(0.1)


def test_a_filter_true_for_every_row_keeps_every_row_and_an_empty_table_stays_empty(summary):
    pd.testing.assert_frame_equal(select(summary, "True"), summary)
    assert select(summary, "False").empty
    empty = summary.iloc[:0]
    assert select(empty, "lr < 0.1 and optimizer in ['adam']").empty

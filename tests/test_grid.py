"""RunBuilder: product order, laziness, filters, sampling, unions, HParams, bad input."""

from __future__ import annotations

import itertools
from collections import OrderedDict

import numpy as np
import pytest
from tensorboard.plugins.hparams import api as hp

from runmanager import InvalidGridError, InvalidGridTypeError, RunBuilder, RunManagerError

PARAMS = OrderedDict(lr=[0.01, 0.001], batch_size=[32, 64], optimizer=["adam", "sgd"])


def test_get_runs_is_itertools_product_in_key_order():
    runs = RunBuilder.get_runs(PARAMS)
    assert [tuple(r) for r in runs] == list(itertools.product(*PARAMS.values()))
    assert runs[0]._fields == ("lr", "batch_size", "optimizer")
    assert repr(runs[1]) == "Run(lr=0.01, batch_size=32, optimizer='sgd')"
    assert runs[0]._asdict() == {"lr": 0.01, "batch_size": 32, "optimizer": "adam"}


def test_indexing_matches_iteration_including_negative():
    grid = RunBuilder(PARAMS)
    assert len(grid) == 8
    assert list(grid) == [grid[i] for i in range(len(grid))]
    assert [grid[-i] for i in range(1, 9)] == list(reversed(list(grid)))
    assert grid[2:5] == list(grid)[2:5]
    with pytest.raises(IndexError):
        grid[8]
    with pytest.raises(IndexError):
        grid[-9]


def test_huge_grid_is_never_materialised():
    grid = RunBuilder({f"p{i}": list(range(10)) for i in range(12)})
    assert len(grid) == 10**12
    assert tuple(grid[-1]) == (9,) * 12
    assert tuple(grid[123456789012]) == tuple(int(d) for d in "123456789012")
    assert next(iter(grid)) == grid[0]


def test_where_filters_lazily_and_len_counts_matches():
    calls = []

    def keep(run):
        calls.append(run)
        return run.optimizer == "adam"

    grid = RunBuilder(PARAMS, where=keep)
    first = next(iter(grid))
    assert len(calls) == 1 and first.optimizer == "adam"
    assert len(grid) == 4
    assert list(grid) == [grid[i] for i in range(len(grid))]
    assert all(run.optimizer == "adam" for run in grid)
    assert grid[-1] == RunBuilder.get_runs(PARAMS)[-2]


def test_sample_is_distinct_reproducible_and_lazy():
    grid = RunBuilder({"a": range(10**6), "b": range(10**6)})
    sample = grid.sample(50, seed=3)
    assert len(set(sample)) == 50
    assert sample == grid.sample(50, seed=3)
    assert sample != grid.sample(50, seed=4)
    small = RunBuilder(PARAMS)
    assert sorted(small.sample(8, seed=0)) == sorted(small)
    with pytest.raises(InvalidGridError, match="at most 8"):
        small.sample(9)


def test_sample_of_filtered_grid_keeps_filter():
    grid = RunBuilder(PARAMS, where=lambda r: r.lr == 0.01)
    runs = grid.sample(4, seed=1)
    assert sorted(runs) == sorted(grid)
    with pytest.raises(InvalidGridError, match="filtered grid of 4"):
        grid.sample(5)
    huge = RunBuilder({"a": range(10**4), "b": range(10**4)}, where=lambda r: r.a % 2 == 0)
    drawn = huge.sample(20, seed=0)
    assert len(set(drawn)) == 20 and all(r.a % 2 == 0 for r in drawn)


def test_union_of_grids_fills_missing_fields_with_none():
    grid = RunBuilder([{"kernel": ["linear"], "C": [1, 10]}, {"kernel": ["rbf"], "gamma": [0.1]}])
    assert grid.fields == ("kernel", "C", "gamma")
    assert [r._asdict() for r in grid] == [
        {"kernel": "linear", "C": 1, "gamma": None},
        {"kernel": "linear", "C": 10, "gamma": None},
        {"kernel": "rbf", "C": None, "gamma": 0.1},
    ]
    assert list(grid) == [grid[i] for i in range(len(grid))]
    assert grid.values_of("gamma") == [None, 0.1]


def test_numpy_values_become_python_scalars():
    run = RunBuilder({"lr": np.array([0.1, 0.2]), "units": np.arange(2)})[3]
    assert run == (0.2, 1) and type(run.lr) is float and type(run.units) is int


def test_hparam_keys_take_values_from_domain():
    units = hp.HParam("num_units", hp.Discrete([16, 32]))
    dropout = hp.HParam("dropout", hp.RealInterval(0.1, 0.2))
    optimizer = hp.HParam("optimizer", hp.Discrete(["adam", "sgd"]))
    grid = RunBuilder({units: None, dropout: None, optimizer: None})
    assert grid.fields == ("num_units", "dropout", "optimizer")
    assert len(grid) == 8 and grid[0] == (16, 0.1, "adam") and grid[-1] == (32, 0.2, "sgd")
    assert grid.hparams == {"num_units": units, "dropout": dropout, "optimizer": optimizer}
    explicit = RunBuilder({units: [32], "lr": [0.1]})
    assert list(explicit) == [explicit.run_type(32, 0.1)]


def test_from_hparams_with_points():
    grid = RunBuilder.from_hparams(
        [hp.HParam("dropout", hp.RealInterval(0.0, 0.5)), hp.HParam("layers", hp.IntInterval(1, 4))], points=3
    )
    assert grid.values_of("dropout") == [0.0, 0.25, 0.5]
    assert grid.values_of("layers") == [1, 2, 4] or grid.values_of("layers") == [1, 3, 4]
    assert len(grid) == 9
    assert RunBuilder.from_hparams([hp.HParam("d", hp.RealInterval(0.1, 0.2))], points=3).values_of("d") == [
        0.1, 0.15, 0.2]
    default = RunBuilder.from_hparams([hp.HParam("dropout", hp.RealInterval(0.1, 0.2))])
    assert default.values_of("dropout") == [0.1, 0.2]


@pytest.mark.parametrize(
    ("params", "error", "match"),
    [
        ({}, InvalidGridError, r"empty"),
        ([], InvalidGridError, r"list of grids is empty"),
        ({"lr": []}, InvalidGridError, r"'lr' has an empty list"),
        ({"lr": 0.1}, InvalidGridTypeError, r"'lr' has the value 0\.1.*wrapped in a list: lr=\[0\.1\]"),
        ({"optimizer": "adam"}, InvalidGridTypeError, r"'optimizer' has the value 'adam'.*\['adam'\]"),
        ({"lr": None}, InvalidGridTypeError, r"'lr' has the value None"),
        ({"lr": {"a": 1}}, InvalidGridTypeError, r"not a list of values"),
        ({"learning rate": [1]}, InvalidGridError, r"'learning rate' cannot be a field"),
        ({"class": [1]}, InvalidGridError, r"'class' cannot be a field"),
        ({"_private": [1]}, InvalidGridError, r"'_private' cannot be a field"),
        ({"1x": [1]}, InvalidGridError, r"'1x' cannot be a field"),
        ({"epoch": [1]}, InvalidGridError, r"'epoch' is a column runmanager writes"),
        ({3: [1]}, InvalidGridTypeError, r"key 3 must be a str"),
        ({hp.HParam("lr", hp.Discrete([1])): [1], "lr": [2]}, InvalidGridError, r"'lr' appears twice"),
        ({hp.HParam("lr", hp.Discrete([1, 2])): [3]}, InvalidGridError, r"Value 3 of parameter 'lr' is outside"),
        ("lr", InvalidGridTypeError, r"params must be a mapping"),
        ([{"a": [1]}, 5], InvalidGridTypeError, r"Each grid in the list must be a mapping"),
    ],
)
def test_bad_grids_are_rejected_with_a_message_naming_the_key(params, error, match):
    with pytest.raises(error, match=match) as info:
        RunBuilder(params)
    assert isinstance(info.value, RunManagerError)
    assert isinstance(info.value, (ValueError, TypeError))


@pytest.mark.parametrize(
    ("kwargs", "match"),
    [({"where": 3}, r"where must be a function"), ({"points": 0}, r"points must be a positive int")],
)
def test_bad_options_are_rejected(kwargs, match):
    with pytest.raises(RunManagerError, match=match):
        RunBuilder(PARAMS, **kwargs)


def test_from_hparams_rejects_plain_names():
    with pytest.raises(InvalidGridTypeError, match="takes TensorBoard hp.HParam"):
        RunBuilder.from_hparams(["lr"])


def test_repr_shows_the_grid():
    assert repr(RunBuilder({"a": [1, 2]})) == "RunBuilder({'a': [1, 2]})"


def test_a_run_is_made_only_from_the_grids_param_names():
    grid = RunBuilder({"a": [1, 2]})
    assert grid.make_run({}) == grid.run_type(None)
    with pytest.raises(InvalidGridError, match=r"^'b' is not a parameter of these runs, whose parameters are 'a'; "
                                               r"give only those names \(a missing one is None\)\.$"):
        grid.make_run({"b": 1})


@pytest.mark.parametrize("name, rename", [("loss", "loss_fn"), ("val_loss", "loss_fn"), ("accuracy", "accuracy_"),
                                          ("val_accuracy", "val_accuracy_"), ("precision", "precision_")])
def test_a_param_named_like_a_metric_keras_logs_is_refused_with_a_rename(name, rename):
    with pytest.raises(InvalidGridError, match=rf"^Parameter name '{name}' is the name of a metric Keras logs, so "
                                               rf"every epoch row would have two '{name}' columns; rename the "
                                               rf"parameter \(e.g. '{rename}'\)\.$"):
        RunBuilder({"units": [4], name: [1, 2]})


def test_every_metric_name_keras_takes_as_a_string_is_refused_with_and_without_val():
    import keras

    from runmanager.grid import METRIC_NAMES

    functions = {name for name in dir(keras.metrics) if name[0].islower() and callable(getattr(keras.metrics, name))}
    names = functions - {"get", "serialize", "deserialize"}
    names |= {"auc", "precision", "recall", "mse", "mae", "f1_score", "r2_score", "root_mean_squared_error"}
    assert {n for n in names if n not in METRIC_NAMES or f"val_{n}" not in METRIC_NAMES} == set()
    plain = {n for n in METRIC_NAMES if not n.startswith("val_")} - {"loss", "acc", "crossentropy"}
    for name in plain - functions:  # each is a metric Keras knows by that name, so it can be a logged column
        try:
            keras.metrics.get(name)
        except TypeError:  # found, but its class needs an argument (PrecisionAtRecall(recall)): logged by that name
            pass

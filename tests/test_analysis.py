"""Repeats over seeds, aggregates with mean ± std, summaries at the best epoch, and the tables
``runmanager show`` prints for papers (issue 11). Expected aggregates are computed here
independently with pandas ``groupby``."""

from __future__ import annotations

import io
import math
import random
import re

import numpy as np
import pandas as pd
import pytest
import training
from scipy import stats
from scipy.stats import loguniform

from runmanager import (
    InvalidArgumentError,
    InvalidGridError,
    OptunaSearch,
    RandomSearch,
    RunManager,
    aggregate,
    load_results,
    load_summary,
)
from runmanager.analysis import t_quantile_975
from runmanager.cli import main
from runmanager.executors.memory import InMemoryExecutor
from runmanager.tables import format_table

GRID = {"lr": [0.1, 0.01], "units": [4, 8]}
METRICS = ["loss", "val_accuracy", "val_loss"]


def noisy(run, callbacks):
    """Four epochs whose metrics depend on the params plus seeded noise (Python's random, which
    the sweep's seed sets); val_loss is best at epoch 3, val_accuracy at epoch 1. The run lr=0.1,
    units=8, repeat=2 fails."""
    params = run._asdict()
    if params.get("lr") == 0.1 and params.get("units") == 8 and params.get("repeat") == 2:
        raise RuntimeError("simulated out of memory")
    level = {0.1: 0.6, 0.01: 0.8}.get(params.get("lr"), 0.7) + params.get("units", 4) / 100
    noise = random.gauss(0, 0.02)
    training.fit_without_model(callbacks, [
        {"loss": 1 - level + noise + c, "val_accuracy": level + noise - drop, "val_loss": 1 - level + c + noise}
        for c, drop in zip([0.5, 0.3, 0.2, 0.25], [0.0, 0.05, 0.1, 0.08])])


def draw(run, callbacks):
    """One epoch logging the first draw of Python's random after seeding: tells the run's seed apart."""
    training.fit_without_model(callbacks, [{"loss": 1.0, "draw": random.random()}])


def test_repeats_add_a_repeat_column_after_the_params_and_seed_repeat_r_with_seed_plus_r_minus_1(tmp_path):
    m = RunManager(tmp_path, verbose=0)
    summary = m.sweep(draw, GRID, repeats=3, seed=10)
    assert summary.columns.tolist()[:5] == ["run", "lr", "units", "repeat", "status"]
    assert summary["repeat"].tolist() == [1, 2, 3] * 4
    assert summary[["lr", "units"]].drop_duplicates().shape[0] == 4
    assert m.results.columns.tolist()[-3:] == ["lr", "units", "repeat"]
    for r in (1, 2, 3):
        random.seed(10 + r - 1)  # what keras.utils.set_random_seed(10 + r - 1) does to Python's random
        expected = random.random()
        assert summary.loc[summary["repeat"] == r, "draw"].tolist() == pytest.approx([expected] * 4)
    # The same sweep again gives the same numbers: reproducible.
    again = RunManager(tmp_path / "again", verbose=0).sweep(draw, GRID, repeats=3, seed=10)
    assert again["draw"].tolist() == summary["draw"].tolist()


def test_resume_identifies_a_run_by_its_params_and_its_repeat(tmp_path):
    calls = []

    def counted(run, callbacks):
        calls.append(run)
        if len(calls) == 5:
            raise KeyboardInterrupt
        draw(run, callbacks)

    with pytest.raises(KeyboardInterrupt):
        RunManager(tmp_path, verbose=0).sweep(counted, GRID, repeats=2, seed=0)
    assert load_summary(tmp_path)["status"].tolist() == ["completed"] * 4 + ["interrupted"]
    calls.clear()
    summary = RunManager(tmp_path, verbose=0).sweep(draw_and_count(calls), GRID, repeats=2, seed=0, resume=True)
    assert [(r.lr, r.units, r.repeat) for r in calls] == [(0.01, 4, 1), (0.01, 4, 2), (0.01, 8, 1), (0.01, 8, 2)]
    assert summary["status"].tolist() == ["completed"] * 8 and summary["run"].tolist() == list(range(1, 9))
    # More repeats later: only the new ones run, numbered after the others.
    calls.clear()
    summary = RunManager(tmp_path, verbose=0).sweep(draw_and_count(calls), GRID, repeats=3, seed=0, resume=True)
    assert [r.repeat for r in calls] == [3] * 4 and len(summary) == 12
    # Each repeat kept its seed across the interrupted sweep and its resume.
    assert summary.groupby("repeat")["draw"].nunique().tolist() == [1, 1, 1]


def draw_and_count(calls):
    def train(run, callbacks):
        calls.append(run)
        draw(run, callbacks)
    return train


def test_repeats_run_on_in_memory_workers_and_a_random_search_repeats_each_of_its_runs(tmp_path):
    summary = RunManager(tmp_path / "w", verbose=0).sweep(noisy, GRID, repeats=2, seed=0,
                                                         executor=InMemoryExecutor(3), max_consecutive_failures=0)
    sequential = RunManager(tmp_path / "s", verbose=0).sweep(noisy, GRID, repeats=2, seed=0,
                                                            max_consecutive_failures=0)
    key = ["lr", "units", "repeat"]
    pd.testing.assert_frame_equal(summary.sort_values(key)[[*key, "status", *METRICS]].reset_index(drop=True),
                                  sequential.sort_values(key)[[*key, "status", *METRICS]].reset_index(drop=True))
    space = {"lr": loguniform(1e-3, 1e-1), "units": [4, 8]}
    summary = RunManager(tmp_path / "r", verbose=0).sweep(draw, RandomSearch(space, 3, seed=1), repeats=2)
    runs = list(RandomSearch(space, 3, seed=1))
    assert summary[["lr", "units", "repeat"]].to_records(index=False).tolist() == [
        (run.lr, run.units, r) for run in runs for r in (1, 2)]


def test_repeats_on_worker_processes_match_sequential(tmp_path):
    grid = {"units": [4, 8]}
    sequential = RunManager(tmp_path / "a", verbose=0).sweep(training.train, grid, repeats=2, seed=3)
    parallel = RunManager(tmp_path / "b", verbose=0).sweep(training.train, grid, repeats=2, seed=3,
                                                           executor="processes", workers=2)
    for summary in (sequential, parallel):
        assert summary["repeat"].tolist() == [1, 2, 1, 2] and (summary["status"] == "completed").all()
    # The two repeats of a configuration differ (different seeds); each matches across executors.
    assert sequential["loss"][0] != sequential["loss"][1]
    np.testing.assert_allclose(parallel.sort_values("run")["loss"], sequential["loss"], rtol=1e-4)


@pytest.mark.slow
def test_repeats_on_ray_match_sequential(tmp_path):
    pytest.importorskip("ray")
    from runmanager.executors import RayExecutor

    grid = {"units": [4]}
    sequential = RunManager(tmp_path / "a", verbose=0).sweep(training.train, grid, repeats=3, seed=3)
    on_ray = RunManager(tmp_path / "b", verbose=0).sweep(training.train, grid, repeats=3, seed=3,
                                                         executor=RayExecutor("local", workers=2))
    assert on_ray["repeat"].tolist() == [1, 2, 3] and (on_ray["status"] == "completed").all()
    np.testing.assert_allclose(on_ray.sort_values("run")["loss"], sequential["loss"], rtol=1e-4)


def test_optuna_is_told_a_configuration_once_with_the_mean_over_its_repeats(tmp_path):
    space = {"lr": [0.1, 0.01, 0.001], "units": [4, 8, 16]}
    search = OptunaSearch(space, 4, metric="val_accuracy", seed=0)
    summary = RunManager(tmp_path, verbose=0).sweep(noisy, search, repeats=3, seed=0, max_consecutive_failures=0)
    assert len(summary) == 12 and summary["repeat"].tolist() == [1, 2, 3] * 4
    trials = search.study.trials  # a configuration proposed again is told its known mean at once
    assert len({tuple(t.params.values()) for t in trials}) == 4 and all(t.state.name == "COMPLETE" for t in trials)
    done = summary[summary["status"] == "completed"]
    means = done.groupby(["lr", "units"])["val_accuracy"].mean()
    for trial in trials:
        assert trial.value == pytest.approx(means[(trial.params["lr"], trial.params["units"])])


@pytest.mark.parametrize("repeats", [0, -1, 1.5, True, "3"])
def test_bad_repeats_are_refused_before_any_run(tmp_path, repeats):
    with pytest.raises(InvalidArgumentError, match=r"repeats must be a positive int .* got"):
        RunManager(tmp_path, verbose=0).sweep(draw, GRID, repeats=repeats)
    assert not (tmp_path / "journal.jsonl").exists()


def test_a_param_named_repeat_clashes_with_repeats(tmp_path):
    with pytest.raises(InvalidGridError, match="'repeat' clashes with the column repeats=N adds"):
        RunManager(tmp_path, verbose=0).sweep(draw, {"repeat": [1, 2]}, repeats=2)
    # Without repeats=, a repeat param of one's own is aggregated over like the column.
    summary = RunManager(tmp_path / "own", verbose=0).sweep(draw, {"lr": [0.1], "repeat": [1, 2]})
    assert aggregate(summary)["runs"].tolist() == [2]


@pytest.fixture(scope="module")
def swept(tmp_path_factory):
    log_dir = tmp_path_factory.mktemp("swept")
    m = RunManager(log_dir, verbose=0)
    grid = {"lr": [0.1, 0.01, 0.03], "units": [4, 8]}
    m.sweep(noisy, grid, repeats=3, seed=0, max_consecutive_failures=0)
    return m, log_dir


def expected_aggregate(summary):
    """The aggregate computed independently: pandas groupby over the params."""
    completed = summary[summary["status"] == "completed"]
    stats_ = completed.groupby(["lr", "units"])[METRICS].agg(["mean", "std"])
    stats_.columns = [f"{metric}_{stat}" for metric, stat in stats_.columns]
    counts = summary.groupby(["lr", "units"]).agg(runs=("run", "size"))
    counts["completed"] = completed.groupby(["lr", "units"]).size()
    return counts.join(stats_).reset_index()


def test_aggregate_matches_a_pandas_groupby(swept):
    m, log_dir = swept
    summary = m.summary()
    assert (summary["status"] == "failed").sum() == 1
    expected = expected_aggregate(summary).sort_values(["lr", "units"]).reset_index(drop=True)
    for source in (m, summary, log_dir, log_dir / "summary.csv", log_dir / "summary.json"):
        got = (m.aggregate() if source is m else aggregate(source))
        assert got.columns.tolist() == ["lr", "units", "runs", "completed", "loss_mean", "loss_std",
                                        "val_accuracy_mean", "val_accuracy_std", "val_loss_mean", "val_loss_std"]
        got = got.sort_values(["lr", "units"]).reset_index(drop=True)
        pd.testing.assert_frame_equal(got[expected.columns], expected, check_dtype=False)
    # The configuration with the failed run: 3 runs, 2 completed, its mean over those 2.
    row = got[(got["lr"] == 0.1) & (got["units"] == 8)].iloc[0]
    assert (row["runs"], row["completed"]) == (3, 2)


def test_aggregate_with_a_metric_ranks_best_first_with_a_95_percent_interval(swept):
    m, _ = swept
    for metric, ascending in (("val_accuracy", False), ("val_loss", True)):
        ranked = m.aggregate(metric)
        assert ranked.columns[0] == "rank" and f"{metric}_ci95" in ranked.columns
        means = ranked[f"{metric}_mean"].tolist()
        assert means == sorted(means, reverse=not ascending)
        assert ranked["rank"].tolist() == list(range(1, len(ranked) + 1))
        n = ranked["completed"].astype(float)
        expected = stats.t.ppf(0.975, n - 1) * ranked[f"{metric}_std"] / np.sqrt(n)
        np.testing.assert_allclose(ranked[f"{metric}_ci95"], expected, rtol=1e-6)
    assert m.aggregate("val_accuracy", mode="min")["val_accuracy_mean"].is_monotonic_increasing


def test_the_t_quantile_matches_scipy():
    for df in [*range(1, 61), 100, 1000, 10**6]:
        assert t_quantile_975(df) == pytest.approx(stats.t.ppf(0.975, df), abs=2e-6), df
    assert math.isnan(t_quantile_975(0))


def test_a_configuration_without_a_completed_run_has_no_mean_and_comes_last():
    summary = pd.DataFrame({"run": [1, 2, 3], "lr": [0.1, 0.1, 0.01], "repeat": [1, 2, 1],
                            "status": ["completed", "completed", "diverged"], "epochs": [3, 3, 1],
                            "val_loss": [0.2, 0.4, float("nan")], "run_duration": [1.0] * 3, "error": [None] * 3})
    ranked = aggregate(summary, "val_loss")
    assert ranked["lr"].tolist() == [0.1, 0.01]
    assert ranked["val_loss_mean"][0] == pytest.approx(0.3) and ranked["val_loss_std"][0] == pytest.approx(0.1414, 1e-3)
    assert ranked["rank"][0] == 1 and pd.isna(ranked["rank"][1]) and math.isnan(ranked["val_loss_mean"][1])
    single = aggregate(summary[summary["lr"] == 0.01].assign(status="completed", val_loss=0.5))
    assert math.isnan(single["val_loss_std"][0])  # one run: no sample standard deviation


def test_unknown_metrics_name_the_ones_there_are(swept):
    m, log_dir = swept
    with pytest.raises(InvalidArgumentError, match=r"Unknown metric 'val_acc'; the sweep has loss, val_accuracy"):
        aggregate(log_dir, "val_acc")
    with pytest.raises(InvalidArgumentError, match=r"Unknown metric 'acc'; the runs logged loss, val_accuracy"):
        m.summary(at="best", metric="acc")
    with pytest.raises(InvalidArgumentError, match=r'summary\(at="best"\) needs metric='):
        m.summary(at="best")
    with pytest.raises(InvalidArgumentError, match="at must be"):
        m.summary(at="first")


def test_summary_at_best_reports_each_run_at_its_best_epoch(swept):
    m, _ = swept
    best = m.summary(at="best", metric="val_loss")
    last = m.summary()
    assert best.columns.tolist() == [*last.columns[:6], "best_epoch", *last.columns[6:]]
    rows = m.results
    done = best[best["status"] == "completed"]
    expected = rows.loc[rows.groupby("run")["val_loss"].idxmin()].set_index("run")
    assert done["best_epoch"].tolist() == expected.loc[done["run"], "epoch"].tolist() == [3] * len(done)
    for metric in METRICS:
        np.testing.assert_allclose(done[metric], expected.loc[done["run"], metric])
    assert (done["epochs"] == 4).all()
    assert not np.allclose(done["val_loss"], last.loc[done.index, "val_loss"])  # epoch 4 was worse
    failed = best[best["status"] == "failed"].iloc[0]
    assert pd.isna(failed["best_epoch"]) and failed["epochs"] == 0
    # Another metric, another best epoch.
    by_accuracy = m.summary(at="best", metric="val_accuracy")
    assert set(by_accuracy.loc[by_accuracy["status"] == "completed", "best_epoch"]) == {1}


def test_show_aggregate_prints_mean_plus_minus_std_with_the_best_mean_in_bold(swept, capsys):
    m, log_dir = swept
    ranked = m.aggregate("val_accuracy")
    assert main(["show", str(log_dir), "--aggregate", "--metric", "val_accuracy", "--format", "github"]) == 0
    lines = capsys.readouterr().out.splitlines()
    # Under the table, the note on the configuration with a failed repeat (a Markdown paragraph).
    assert lines[2 + len(ranked):] == ["", "\\* completed fewer repeats than other configurations (up to 3): "
                                           "its mean is over fewer runs."]
    lines = lines[: 2 + len(ranked)]
    assert lines[0].split("|")[1:-1] == [c.center(len(c)) for c in lines[0].split("|")[1:-1]]  # a Markdown row
    assert [c.strip() for c in lines[0].split("|")[1:-1]] == ["rank", "lr", "units", "runs", "completed", "loss",
                                                                "val_accuracy", "val_loss"]
    top = ranked.iloc[0]
    cell = f"{top['val_accuracy_mean']:.4f} ± {top['val_accuracy_std']:.4f}"
    assert f"**{cell}**" in lines[2]
    assert sum("**" in line.split("|")[7] for line in lines[2:]) == 1  # one best val_accuracy mean
    best_loss = ranked["val_loss_mean"].idxmin()
    assert "**" in lines[2 + best_loss].split("|")[8]
    assert len(lines) == 2 + len(ranked)


def test_show_latex_is_a_booktabs_table_and_csv_reads_back(swept, capsys):
    m, log_dir = swept
    assert main(["show", str(log_dir), "--aggregate", "--metric", "val_loss", "--format", "latex"]) == 0
    latex = capsys.readouterr().out
    assert latex.startswith("\\begin{tabular}{") and "\\toprule" in latex and "\\midrule" in latex
    assert latex.rstrip().endswith("\\bottomrule\n\\multicolumn{8}{l}{\\footnotesize $^{*}$ completed fewer repeats "
                                   "than other configurations (up to 3): its mean is over fewer runs.} \\\\\n"
                                   "\\end{tabular}")
    assert latex.count("$^{*}$") == 2  # the mark on the configuration, and the note's
    assert "val\\_loss" in latex and "$\\pm$" in latex and latex.count("\\textbf{") == 3  # one per metric
    top = m.aggregate("val_loss").iloc[0]
    assert f"\\textbf{{{top['val_loss_mean']:.4f} $\\pm$ {top['val_loss_std']:.4f}}}" in latex
    assert main(["show", str(log_dir), "--aggregate", "--format", "csv"]) == 0
    back = pd.read_csv(io.StringIO(capsys.readouterr().out))
    pd.testing.assert_frame_equal(back, aggregate(log_dir), check_dtype=False)


def test_show_where_filters_runs_or_the_aggregated_table(swept, capsys):
    m, log_dir = swept
    assert main(["show", str(log_dir), "--where", "lr == 0.01 and repeat > 1", "--format", "csv"]) == 0
    shown = pd.read_csv(io.StringIO(capsys.readouterr().out))
    assert shown["run"].tolist() == m.summary().query("lr == 0.01 and repeat > 1")["run"].tolist()
    assert main(["show", str(log_dir), "--aggregate", "--where", "completed < runs", "--format", "csv"]) == 0
    shown = pd.read_csv(io.StringIO(capsys.readouterr().out))
    assert shown[["lr", "units"]].values.tolist() == [[0.1, 8]]
    assert main(["show", str(log_dir), "--metric", "val_loss", "--format", "csv"]) == 0
    shown = pd.read_csv(io.StringIO(capsys.readouterr().out))
    assert shown["val_loss"].dropna().is_monotonic_increasing and shown["val_loss"].isna().tolist()[-1]


@pytest.mark.parametrize("where, message", [("lr <", "is not a valid expression (invalid syntax)"),
                                            ("nope > 1", "names 'nope', which is not a column")])
def test_a_bad_where_is_a_one_line_error_with_exit_2(swept, capsys, where, message):
    _, log_dir = swept
    assert main(["show", str(log_dir), "--where", where]) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and err.startswith(f"runmanager: error: --where: The filter {where!r} {message}")
    assert "Columns: run, lr, units, repeat, status" in err


def test_best_ranks_configurations_by_their_mean_over_repeats(swept, capsys):
    m, log_dir = swept
    assert main(["best", str(log_dir), "--metric", "val_accuracy"]) == 0
    out = capsys.readouterr().out
    top = m.aggregate("val_accuracy").iloc[0]
    assert out.startswith(f"Best configuration by mean val_accuracy (max) over 3 completed of 3 repeats: "
                          f"lr={top['lr']}, units={int(top['units'])}\n")
    assert f"{top['val_accuracy_mean']:.4f} ± {top['val_accuracy_std']:.4f}" in out


def test_format_table_refuses_an_unknown_format():
    with pytest.raises(InvalidArgumentError, match="Unknown table format 'html'; choose one of plain, github"):
        format_table(pd.DataFrame({"a": [1]}), "html")


def test_results_keep_the_repeat_column_through_csv_and_json(swept):
    _, log_dir = swept
    for name in ("results.csv", "results.json"):
        rows = load_results(log_dir / name)
        assert rows.columns.tolist()[-3:] == ["lr", "units", "repeat"] and set(rows["repeat"]) == {1, 2, 3}


# --------------------------------------------------------------------------------------
# Params that are lists or dicts, long params, configurations with fewer completed repeats
# --------------------------------------------------------------------------------------
def test_aggregate_groups_by_list_and_dict_params_read_from_the_journal_csv_or_json(layers_sweep):
    """layers=[8] and [8, 4] (RunBuilder takes them) are two configurations, whether they come back
    as lists (journal, summary.json) or as text (summary.csv)."""
    log_dir, copies = layers_sweep
    for source in (log_dir, copies["csv"], copies["json"]):
        summary = load_summary(source)
        table = aggregate(source, "val_accuracy")
        assert sorted(map(str, table["layers"])) == ["[8, 4]", "[8]"], source
        assert table["runs"].tolist() == [2, 2] and table["completed"].tolist() == [2, 2]
        expected = summary.groupby(summary["layers"].map(str))["val_accuracy"].mean()
        for row in table.to_dict("records"):
            assert row["val_accuracy_mean"] == pytest.approx(expected[str(row["layers"])])


#: The dict param, whole: JSON text from the journal and summary.json, Python's from summary.csv; LaTeX escapes braces.
OPT = r"\\?\{.name.: .sgd., .lr.: 0\.05\\?\}"


def test_show_and_best_print_list_and_dict_params_whole_in_every_format(layers_sweep, capsys):
    log_dir, copies = layers_sweep
    for source in (log_dir, copies["csv"], copies["json"]):
        for fmt in ("plain", "github", "latex"):
            assert main(["show", str(source), "--aggregate", "--metric", "val_accuracy", "--format", fmt]) == 0
            out = capsys.readouterr().out
            assert "[8, 4]" in out and "[8]" in out and re.search(OPT, out), (source, fmt)
        assert main(["show", str(source)]) == 0
        out = capsys.readouterr().out
        assert out.count("[8, 4]") == 2 and len(re.findall(OPT, out)) == 4  # 2 configurations × 2 repeats
        assert main(["best", str(source), "--metric", "val_accuracy"]) == 0
        first = capsys.readouterr().out.splitlines()[0]
        assert re.search(r"over 2 completed of 2 repeats: layers=\[8(, 4)?\], opt=\{.name.: .sgd.", first), first


def test_long_param_values_read_apart_in_every_table(models_sweep, capsys):
    """Two model names alike in their first 28 characters are printed whole, never cut to the same text."""
    names = [training.FROZEN, training.FINETUNED]
    for args in (["show"], ["show", "--aggregate"], ["show", "--aggregate", "--format", "github"],
                 ["show", "--aggregate", "--format", "latex"], ["show", "--epochs"]):
        assert main([args[0], str(models_sweep), *args[1:]]) == 0
        out = capsys.readouterr().out
        if "latex" in args:
            out = out.replace("\\_", "_")
        assert all(name in out for name in names), args
        assert "…" not in out
    assert main(["best", str(models_sweep), "--metric", "val_accuracy"]) == 0
    out = capsys.readouterr().out
    assert f"model={training.FINETUNED}\n" in out and out.count(training.FINETUNED) == 2


def test_a_mean_over_fewer_completed_repeats_is_marked_and_explained(models_sweep, capsys):
    """The fine-tuned model ranks first on 1 of its 2 repeats, the frozen one on 2 of 2: its
    completed count is marked * and a note under the table says why."""
    note = "completed fewer repeats than other configurations (up to 2): its mean is over fewer runs."
    assert main(["show", str(models_sweep), "--aggregate", "--metric", "val_accuracy"]) == 0
    lines = capsys.readouterr().out.splitlines()
    header = lines[0].split()
    assert header[:5] == ["rank", "model", "runs", "completed", "loss"]
    assert lines[2].split()[:4] == ["1", training.FINETUNED, "2", "1*"]
    assert lines[3].split()[:4] == ["2", training.FROZEN, "2", "2"]
    assert lines[4:] == [f"* {note}"]
    assert main(["show", str(models_sweep), "--aggregate", "--format", "github"]) == 0
    out = capsys.readouterr().out
    assert " 1\\* |" in out and out.endswith(f"\n\n\\* {note}\n")
    # best shows the one row, marked against the other configurations.
    assert main(["best", str(models_sweep), "--metric", "val_accuracy"]) == 0
    lines = capsys.readouterr().out.splitlines()
    assert lines[0].startswith("Best configuration by mean val_accuracy (max) over 1 completed of 2 repeats")
    assert lines[3].split()[:4] == ["1", training.FINETUNED, "2", "1*"] and lines[-1] == f"* {note}"
    # CSV stays data: no mark, no note.
    assert main(["show", str(models_sweep), "--aggregate", "--format", "csv"]) == 0
    back = pd.read_csv(io.StringIO(capsys.readouterr().out))
    assert back["completed"].tolist() == [2, 1]


@pytest.mark.parametrize("metric, mode, test", [("val_accuracy", "max", "welch"), ("val_loss", "min", "welch"),
                                                ("val_accuracy", "max", "mannwhitney")])
def test_aggregate_tests_every_configuration_against_the_best_as_scipy_does(swept, metric, mode, test):
    """Over the completed repeats (the failed one left out), one-sided, Holm by hand."""
    m, log_dir = swept
    summary = m.summary()
    done = summary[summary["status"] == "completed"]
    values = {key: group[metric].tolist() for key, group in done.groupby(["lr", "units"])}
    means = {key: np.mean(xs) for key, xs in values.items()}
    best = max(means, key=means.get) if mode == "max" else min(means, key=means.get)
    alternative = "less" if mode == "max" else "greater"
    raw = {key: (stats.ttest_ind(xs, values[best], equal_var=False, alternative=alternative) if test == "welch"
                 else stats.mannwhitneyu(xs, values[best], alternative=alternative)).pvalue
           for key, xs in values.items() if key != best}
    order = sorted(raw, key=lambda key: raw[key])
    corrected, running = {}, 0.0
    for i, key in enumerate(order):
        running = max(running, (len(order) - i) * raw[key])
        corrected[key] = min(running, 1.0)
    table = aggregate(log_dir, metric, test=test)
    assert (table["lr"][0], table["units"][0]) == best and math.isnan(table["p_value"][0])
    for row in table.iloc[1:].to_dict("records"):
        assert row["p_value"] == pytest.approx(corrected[row["lr"], row["units"]], rel=1e-9)
        assert row["tied_best"] == (corrected[row["lr"], row["units"]] >= 0.05)
    assert table["tied_best"][0] and table.columns[-2:].tolist() == ["p_value", "tied_best"]
    assert table[(table["lr"] == 0.1) & (table["units"] == 8)]["completed"].tolist() == [2]

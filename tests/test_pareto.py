"""Several objectives: the Pareto front (runmanager.pareto, m.pareto), the ``pareto`` column of
summary() and aggregate(), the journal's objectives, ``runmanager best --metric a --metric b:min``,
and the report's front. Every front is checked against one found by brute force over all pairs."""

from __future__ import annotations

import io
import json
import math
import re
import subprocess
import sys

import numpy as np
import pandas as pd
import pytest
import training

import runmanager
from runmanager import InvalidArgumentError, RunManager, aggregate, load_summary, pareto
from runmanager.cli import main
from runmanager.events import SweepStarted, from_dict, to_dict
from runmanager.objectives import non_dominated, resolve_objectives
from runmanager.plotting import pareto_figure
from runmanager.search import RunList

STATUSES = ["completed", "failed", "diverged", "interrupted", "pruned", "running"]


# --------------------------------------------------------------------------------------
# The front, by brute force
# --------------------------------------------------------------------------------------
def dominates(a, b, modes) -> bool:
    """True when ``a`` is at least as good as ``b`` on every objective and better on one."""
    as_good = all((x >= y) if how == "max" else (x <= y) for x, y, how in zip(a, b, modes))
    better = any((x > y) if how == "max" else (x < y) for x, y, how in zip(a, b, modes))
    return as_good and better


def brute_front(points: dict, modes) -> set:
    """The keys of ``points`` (key -> values) that no other point dominates."""
    return {key for key, values in points.items()
            if not any(dominates(other, values, modes) for k, other in points.items() if k != key)}


def crafted(rows, metrics=("val_accuracy", "params"), repeat=False):
    """A summary of runs: each row is (units, [repeat,] status, value per metric)."""
    records = []
    for number, row in enumerate(rows, start=1):
        units, *rest = row
        record = {"run": number, "units": units}
        if repeat:
            record["repeat"], *rest = rest
        status, *values = rest
        record.update(status=status, epochs=3)
        record.update(zip(metrics, values))
        record.update(run_duration=1.0, error=None if status == "completed" else "x")
        records.append(record)
    return pd.DataFrame(records)


def random_summary(seed: int, metrics=("val_accuracy", "params"), rows: int = 40) -> pd.DataFrame:
    """Values from a few levels each (so exact ties happen), statuses mostly completed, a few NaN."""
    rng = np.random.default_rng(seed)
    table = []
    for _ in range(rows):
        status = "completed" if rng.random() < 0.75 else str(rng.choice(STATUSES[1:]))
        values = [float(rng.choice([0.5, 0.6, 0.7, 0.8, 0.9])) if i % 2 == 0 else float(rng.choice([100, 200, 400]))
                  for i in range(len(metrics))]
        if rng.random() < 0.05:
            values[0] = math.nan
        table.append((int(rng.integers(8, 128)), status, *values))
    return crafted(table, metrics)


def expected_runs(summary, metrics, modes) -> set[int]:
    """The runs on the front, found by brute force over the completed runs with finite values."""
    points = {int(row["run"]): tuple(row[m] for m in metrics) for row in summary.to_dict("records")
              if row["status"] == "completed" and all(math.isfinite(row[m]) for m in metrics)}
    return brute_front(points, modes)


def sorted_best_first(front, metrics, modes) -> bool:
    keys = [tuple(v if how == "min" else -v for v, how in zip(values, modes))
            for values in front[list(metrics)].itertuples(index=False, name=None)]
    return keys == sorted(keys)


@pytest.mark.parametrize("modes", [("max", "min"), ("min", "min"), ("max", "max"), ("min", "max")])
@pytest.mark.parametrize("seed", range(5))
def test_the_front_of_two_objectives_is_the_brute_force_one_sorted_best_first(modes, seed):
    summary = random_summary(seed)
    metrics = ["val_accuracy", "params"]
    front = pareto(summary, metrics, list(modes))
    assert set(front["run"]) == expected_runs(summary, metrics, modes)
    assert len(front) == front["run"].nunique() and (front["status"] == "completed").all()
    assert sorted_best_first(front, metrics, modes)
    assert list(front.columns) == list(summary.columns)  # the summary's own rows


@pytest.mark.parametrize("seed", range(4))
def test_the_front_of_three_objectives_is_the_brute_force_one(seed):
    metrics = ["val_accuracy", "params", "val_f1"]
    modes = ["max", "min", "max"]
    summary = random_summary(seed, metrics, rows=60)
    front = pareto(summary, metrics, modes)
    assert set(front["run"]) == expected_runs(summary, metrics, modes)
    assert sorted_best_first(front, metrics, modes)


def test_a_known_front_with_exact_ties_keeps_both_and_leaves_out_runs_that_did_not_complete():
    summary = crafted([
        (16, "completed", 0.90, 1210),   # 1: on the front
        (64, "completed", 0.97, 4810),   # 2: on the front
        (32, "completed", 0.89, 2410),   # 3: run 1 is better on both
        (16, "completed", 0.90, 1210),   # 4: the same values as run 1: both stay
        (128, "failed", 0.99, 100),      # 5: would dominate everything, but failed
        (128, "interrupted", 0.99, 100),  # 6: likewise
        (8, "completed", 0.80, 610),     # 7: the smallest
        (8, "completed", 0.80, 900),     # 8: as accurate as 7, larger
        (8, "completed", float("nan"), 10),  # 9: no value to judge
    ])
    front = pareto(summary, ["val_accuracy", "params"], ["max", "min"])
    assert front["run"].tolist() == [2, 1, 4, 7]
    assert pareto(summary, ["params", "val_accuracy"], ["min", "max"])["run"].tolist() == [7, 1, 4, 2]
    # With both metrics maximised, the largest model is the one to beat.
    assert pareto(summary, ["val_accuracy", "params"], ["max", "max"])["run"].tolist() == [2]


def test_modes_default_by_the_loss_rule_and_one_metric_gives_its_best_runs():
    summary = crafted([(8, "completed", 0.3, 0.97), (16, "completed", 0.2, 0.8), (32, "completed", 0.2, 0.95)],
                      metrics=("val_loss", "val_accuracy"))
    assert pareto(summary, ["val_loss", "val_accuracy"])["run"].tolist() == [3, 1]  # min, max
    assert pareto(summary, ["val_loss", "val_accuracy"], [None, "min"])["run"].tolist() == [2]
    assert pareto(summary, "val_loss")["run"].tolist() == [2, 3]  # the tie for best, both kept


def test_with_repeats_configurations_are_judged_by_their_means_over_completed_repeats():
    summary = crafted([
        (16, 1, "completed", 0.90, 1210), (16, 2, "completed", 0.80, 1210),   # mean 0.85
        (64, 1, "completed", 0.95, 4810), (64, 2, "failed", 0.10, 4810),      # mean 0.95 (the failed one left out)
        (32, 1, "completed", 0.84, 2410), (32, 2, "completed", 0.84, 2410),   # 0.84 at 2410: dominated by 16
        (8, 1, "failed", 0.99, 610), (8, 2, "diverged", 0.99, 610),           # no completed repeat
        (24, 1, "completed", 0.80, 1000), (24, 2, "interrupted", 0.99, 1000),  # mean 0.80, smallest completed
    ], repeat=True)
    means = summary[summary["status"] == "completed"].groupby("units")[["val_accuracy", "params"]].mean()
    points = {units: tuple(row) for units, row in means.iterrows()}
    expected = brute_front(points, ["max", "min"])
    assert expected == {16, 64, 24}
    front = pareto(summary, ["val_accuracy", "params"], ["max", "min"])
    assert front["units"].tolist() == [64, 16, 24]
    assert {"runs", "completed", "val_accuracy_mean", "val_accuracy_std"} <= set(front.columns)
    assert front["val_accuracy_mean"].tolist() == pytest.approx([0.95, 0.85, 0.80])
    # aggregate() with a list of metrics: ranked by the first, the front in its pareto column.
    table = aggregate(summary, ["val_accuracy", "params"], ["max", "min"])
    assert table.columns.tolist()[:6] == ["rank", "units", "runs", "completed", "pareto", "val_accuracy_mean"]
    assert dict(zip(table["units"], table["pareto"])) == {64: True, 16: True, 32: False, 24: True, 8: False}
    assert table["units"].tolist()[:4] == [64, 16, 32, 24]


@pytest.mark.parametrize("seed", range(3))
def test_with_repeats_random_configurations_match_the_brute_force_front_of_their_means(seed):
    rng = np.random.default_rng(seed)
    rows = []
    for units in (8, 16, 24, 32, 48, 64, 96, 128):
        for repeat in (1, 2, 3):
            status = "completed" if rng.random() < 0.8 else "failed"
            rows.append((units, repeat, status, float(rng.choice([0.6, 0.7, 0.8, 0.9])), float(rng.choice([1, 2, 3]))))
    summary = crafted(rows, repeat=True)
    for modes in (["max", "min"], ["min", "max"], ["max", "max"]):
        means = summary[summary["status"] == "completed"].groupby("units")[["val_accuracy", "params"]].mean()
        expected = brute_front({u: tuple(r) for u, r in means.iterrows()}, modes)
        front = pareto(summary, ["val_accuracy", "params"], modes)
        assert set(front["units"]) == expected
        table = aggregate(summary, ["val_accuracy", "params"], modes)
        assert set(table.loc[table["pareto"], "units"]) == expected


@pytest.mark.parametrize("modes", [["max", "min"], ["min", "min", "max"]])
def test_non_dominated_agrees_with_brute_force_on_many_points_with_ties(modes):
    rng = np.random.default_rng(7)
    values = rng.integers(0, 12, size=(700, len(modes))).astype(float)  # many exact ties
    values[::97, 0] = np.nan
    mask = non_dominated(values.tolist(), modes)
    points = {i: tuple(v) for i, v in enumerate(values) if np.isfinite(v).all()}
    expected = brute_front(points, modes)
    assert {i for i, on in enumerate(mask) if on} == expected and len(expected) > 1


@pytest.mark.parametrize(("metrics", "modes", "match"), [
    ([], None, r"empty list of metrics"),
    (["val_accuracy", "params"], ["max"], r"2 metrics \['val_accuracy', 'params'\] and 1 modes \['max'\]"),
    (["val_accuracy", "params"], "max", r"several metrics .* and one mode 'max'; give a list"),
    ("val_accuracy", ["max", "min"], r"one metric 'val_accuracy' and a list of modes"),
    (["val_accuracy", "params"], ["max", "smallest"], r"mode must be 'min' or 'max', got 'smallest'"),
    (["val_accuracy", "val_accuracy"], None, r"metric 'val_accuracy' twice"),
    (["val_accuracy", ""], None, r"needs the name of a logged metric"),
    (["val_accuracy", "parms"], ["max", "min"], r"Unknown metric 'parms'; the sweep has loss, val_accuracy, params"),
])
def test_bad_metrics_and_modes_are_one_clear_error(metrics, modes, match):
    summary = crafted([(8, "completed", 0.2, 0.9, 100)], metrics=("loss", "val_accuracy", "params"))
    with pytest.raises(InvalidArgumentError, match=match):
        pareto(summary, metrics, modes)
    if "Unknown" not in match:  # the one helper: every caller says the same
        with pytest.raises(InvalidArgumentError, match=match):
            aggregate(summary, metrics, modes)
        with pytest.raises(InvalidArgumentError, match=match):
            resolve_objectives(metrics, modes, who="x")


def test_pareto_without_metrics_needs_a_sweep_that_recorded_objectives():
    with pytest.raises(InvalidArgumentError, match=r"needs the metrics to judge runs by"):
        pareto(crafted([(8, "completed", 0.9, 100)]))


# --------------------------------------------------------------------------------------
# A real sweep of two objectives: the size of the model as an extra column
# --------------------------------------------------------------------------------------
UNITS = [8, 16, 32, 64, 128, 8, 32]
LEARNING_RATES = [0.1, 0.1, 0.01, 0.1, 0.01, 0.01, 0.1]


def accuracy(units, learning_rate):
    return round(0.5 + 0.1 * math.log2(units / 8) - (0.12 if learning_rate == 0.01 else 0.0), 6)


def scripted(run, callbacks):
    """val_accuracy grows with the units and falls at the lower learning rate; one run fails."""
    if run.units == 64:
        raise RuntimeError("simulated out of memory")
    level = accuracy(run.units, run.learning_rate)
    training.fit_without_model(callbacks, [{"loss": 1 - level, "val_accuracy": level - 0.1},
                                           {"loss": 1 - level, "val_accuracy": level}])


class SizeManager(RunManager):
    """Logs each run's parameter count as the extra column ``params``, as a real model's count_params()."""

    def extra_columns(self):
        return {"params": self.run_params.units * 74 + 10}


@pytest.fixture(scope="module")
def swept(tmp_path_factory):
    log_dir = tmp_path_factory.mktemp("pareto") / "sweep"
    runs = RunList([training_run(u, lr) for u, lr in zip(UNITS, LEARNING_RATES)])
    m = SizeManager(log_dir, verbose=0)
    m.sweep(scripted, runs, metric=["val_accuracy", "params"], mode=["max", "min"], max_consecutive_failures=0)
    yield m, log_dir
    m.close()


def training_run(units, learning_rate):
    from runmanager import RunBuilder

    return RunBuilder.get_runs({"units": [units], "learning_rate": [learning_rate]})[0]


def expected_front_of(summary) -> set[int]:
    return expected_runs(summary, ["val_accuracy", "params"], ["max", "min"])


def test_a_sweep_of_two_objectives_records_them_and_its_summary_has_the_front(swept):
    m, log_dir = swept
    summary = m.summary()
    assert summary.columns.tolist() == ["run", "units", "learning_rate", "status", "epochs", "loss", "val_accuracy",
                                        "params", "run_duration", "pareto", "error"]
    assert summary["pareto"].dtype == bool
    expected = expected_front_of(summary)
    # Run 4 failed; run 3 (32 units at lr 0.01) loses to run 7 (32 at 0.1), run 6 (8 at 0.01) to run 1 (8 at 0.1).
    assert expected == {1, 2, 5, 7}
    assert set(summary.loc[summary["pareto"], "run"]) == expected
    assert summary.attrs["objectives"] == [["val_accuracy", "max"], ["params", "min"]]
    first = json.loads((log_dir / "journal.jsonl").read_text().splitlines()[0])
    assert first["type"] == "sweep" and first["metric"] == "val_accuracy" and first["mode"] == "max"
    assert first["objectives"] == [["val_accuracy", "max"], ["params", "min"]]


def test_readers_of_the_log_dir_get_the_pareto_column_and_summary_files_keep_what_was_written(swept):
    m, log_dir = swept
    live = m.summary()
    for source in (log_dir, log_dir / "summary.csv", log_dir / "summary.json"):
        read = load_summary(source)
        assert read["pareto"].tolist() == live["pareto"].tolist(), source
    assert load_summary(log_dir).attrs["objectives"] == live.attrs["objectives"]
    # aggregate() of the log_dir judges configurations by the sweep's objectives, whatever it ranks by.
    table = aggregate(log_dir, "val_accuracy")
    on = {(row.units, row.learning_rate) for row in table.itertuples() if row.pareto}
    assert on == {(u, lr) for u, lr, p in live[["units", "learning_rate", "pareto"]].itertuples(index=False) if p}
    assert table.columns.tolist().index("pareto") == table.columns.tolist().index("completed") + 1
    assert "pareto" in m.aggregate().columns


def test_m_pareto_takes_the_sweeps_objectives_or_any_metrics_and_paths(swept):
    m, log_dir = swept
    front = m.pareto(["val_accuracy", "params"], ["max", "min"])
    assert front["run"].tolist() == [5, 7, 2, 1]
    assert "pareto" not in front.columns
    assert m.pareto()["run"].tolist() == [5, 7, 2, 1]
    for source in (log_dir, log_dir / "summary.csv", log_dir / "summary.json", m):
        assert runmanager.pareto(source, ["val_accuracy", "params"], ["max", "min"])["run"].tolist() == [5, 7, 2, 1]
    assert m.pareto(["loss", "params"], ["min", "max"])["run"].tolist() == [5]


def test_the_sweeps_metric_is_the_first_objective(swept, tmp_path, capsys):
    m, _ = swept
    from runmanager.storage import read_log_dir

    results = read_log_dir(m.log_dir)
    assert (results.sweep_metric, results.sweep_mode) == ("val_accuracy", "max")
    runs = RunList([training_run(u, lr) for u, lr in zip(UNITS[:3], LEARNING_RATES[:3])])
    summary = SizeManager(tmp_path, verbose=1).sweep(scripted, runs, metric=["loss", "params"], mode=[None, "min"])
    lines = [line for line in capsys.readouterr().out.splitlines() if "best:" in line]
    assert lines[-1].endswith("best: run 2, loss 0.4000")  # the progress line judges by the first
    assert summary.attrs["objectives"] == [["loss", "min"], ["params", "min"]]
    assert summary["pareto"].tolist() == [True, True, False]  # run 3: more params and a higher loss than run 2


def test_an_old_journal_without_objectives_still_loads_and_has_no_pareto_column(tmp_path):
    lines = [{"type": "sweep", "fields": ["units"], "time": 1.0, "total": 1, "workers": 1, "metric": "val_accuracy",
              "mode": "max"},
             {"type": "run_start", "run": 1, "run_id": "a", "params": {"units": 8}, "time": 1.0},
             {"type": "epoch", "run": 1, "run_id": "a", "epoch": 1, "metrics": {"val_accuracy": 0.5}, "extras": {},
              "epoch_duration": 0.1, "run_duration": 0.1},
             {"type": "run_end", "run": 1, "run_id": "a", "status": "completed", "epochs": 1, "run_duration": 0.1}]
    (tmp_path / "journal.jsonl").write_text("".join(json.dumps(line) + "\n" for line in lines))
    summary = load_summary(tmp_path)
    assert "pareto" not in summary.columns and summary["val_accuracy"].tolist() == [0.5]
    assert "pareto" not in aggregate(tmp_path).columns


def test_the_sweep_started_event_keeps_its_objectives_through_the_journal_format():
    event = SweepStarted(("units",), time=0.0, metric="val_accuracy", mode="max",
                         objectives=(("val_accuracy", "max"), ("params", "min")))
    line = json.loads(json.dumps(to_dict(event)))
    assert line["objectives"] == [["val_accuracy", "max"], ["params", "min"]]
    assert from_dict(line) == event
    single = to_dict(SweepStarted(("units",), time=0.0, metric="val_accuracy", mode="max"))
    assert "objectives" not in single and from_dict(single).objectives is None


def test_a_grid_sweep_with_one_metric_gets_no_pareto_column(tmp_path):
    runs = RunList([training_run(u, lr) for u, lr in zip(UNITS[:2], LEARNING_RATES[:2])])
    summary = SizeManager(tmp_path, verbose=0).sweep(scripted, runs, metric="val_accuracy")
    assert "pareto" not in summary.columns and "objectives" not in summary.attrs


# --------------------------------------------------------------------------------------
# runmanager best --metric a --metric b:min
# --------------------------------------------------------------------------------------
def test_best_with_two_metrics_prints_the_front_best_first(swept, capsys):
    _, log_dir = swept
    assert main(["best", str(log_dir), "--metric", "val_accuracy", "--metric", "params:min"]) == 0
    lines = capsys.readouterr().out.splitlines()
    assert lines[0] == ("Pareto front by val_accuracy (max), params (min): 4 of 6 completed runs, best first by "
                        "val_accuracy")
    assert lines[1].split() == ["run", "units", "learning_rate", "epochs", "loss", "val_accuracy", "params",
                                "run_duration"]
    assert [int(line.split()[0]) for line in lines[3:]] == [5, 7, 2, 1]


@pytest.mark.parametrize("fmt", ["plain", "github", "latex", "csv"])
def test_best_prints_the_front_in_every_format(swept, capsys, fmt):
    _, log_dir = swept
    assert main(["best", str(log_dir), "--metric", "val_accuracy:max", "--metric", "params:min",
                 "--format", fmt]) == 0
    out = capsys.readouterr().out
    body = out.split("\n", 1)[1]
    if fmt == "csv":
        assert pd.read_csv(io.StringIO(body))["run"].tolist() == [5, 7, 2, 1]
    else:
        first = {"github": r"\|\s+5 \|", "latex": r"^5 & 128 &", "plain": r"^\s+5\s+128"}[fmt]
        assert re.search(first, body, re.M), body
        if fmt == "latex":
            assert r"\toprule" in body and body.count(r"\\") >= 5


def test_best_with_two_metrics_on_a_sweep_with_repeats_prints_configurations(tmp_path, capsys):
    summary = crafted([
        (16, 1, "completed", 0.90, 1210), (16, 2, "completed", 0.80, 1210),
        (64, 1, "completed", 0.95, 4810), (64, 2, "failed", 0.10, 4810),
        (32, 1, "completed", 0.84, 2410), (32, 2, "completed", 0.84, 2410),
    ], repeat=True)
    summary.to_csv(tmp_path / "summary.csv", index=False)
    assert main(["best", str(tmp_path / "summary.csv"), "--metric", "val_accuracy", "--metric", "params:min",
                 "--format", "csv"]) == 0
    out = capsys.readouterr().out
    assert out.splitlines()[0].startswith("Pareto front by mean val_accuracy (max), params (min) over completed "
                                          "repeats: 2 configurations")
    table = pd.read_csv(io.StringIO(out.split("\n", 1)[1]))
    assert table["units"].tolist() == [64, 16] and table["val_accuracy_mean"].tolist() == pytest.approx([0.95, 0.85])


def test_one_metric_keeps_todays_best(swept, capsys):
    _, log_dir = swept
    outputs = []
    for args in (["--metric", "val_accuracy"], ["--metric", "val_accuracy:max"],
                 ["--metric", "val_accuracy", "--mode", "max"]):
        assert main(["best", str(log_dir), *args]) == 0
        outputs.append(capsys.readouterr().out)
    assert outputs[0] == outputs[1] == outputs[2]
    assert outputs[0].startswith("Best run by val_accuracy (max): run 5\n")
    assert main(["best", str(log_dir), "--metric", "params:min"]) == 0
    assert capsys.readouterr().out.startswith("Best run by params (min): run 1\n")


@pytest.mark.parametrize(("args", "message"), [
    (["--metric", "val_accuracy", "--metric", "parms:min"], "Unknown metric 'parms'; the sweep has loss, "
                                                            "val_accuracy, params."),
    (["--metric", "val_accuracy", "--metric", "params:smallest"], "what follows ':' must be 'min' or 'max', got "
                                                                  "'smallest'"),
    (["--metric", "val_accuracy:best"], "what follows ':' must be 'min' or 'max', got 'best'"),
    (["--metric", "val_accuracy", "--metric", "params", "--mode", "min"], "--mode min goes with one --metric"),
    (["--metric", "val_accuracy", "--metric", "val_accuracy:min"], "metric 'val_accuracy' twice"),
    (["--metric", "val_accuracy:min", "--mode", "max"], "disagree; give the mode once"),
    (["--metric", "val_accuracy", "--metric", "params:min", "--model"], "--model prints the best run's model by "
                                                                        "one metric"),
])
def test_bad_metrics_for_best_are_one_line_and_exit_2(swept, args, message):
    _, log_dir = swept
    done = subprocess.run([sys.executable, "-m", "runmanager.cli", "best", str(log_dir), *args],
                          capture_output=True, text=True, timeout=120)
    assert done.returncode == 2 and done.stdout == ""
    assert len(done.stderr.strip().splitlines()) == 1 and message in done.stderr, done.stderr


# --------------------------------------------------------------------------------------
# The report
# --------------------------------------------------------------------------------------
def test_the_report_of_a_sweep_of_two_objectives_draws_the_front_and_lists_it(swept, tmp_path):
    _, log_dir = swept
    page = runmanager.report(log_dir, tmp_path / "report.html").read_text(encoding="utf-8")
    section = page[page.index('<section id="pareto">'):page.index("</section>")]
    assert "<h2>Pareto front of val_accuracy and params</h2>" in section
    assert "4 of 6 completed runs are on the front of val_accuracy (higher is better) and params (lower is better)" \
        in section
    assert section.count("<svg") == 1
    listed = re.findall(r"<tr><td class=\"num\">(\d+)</td>", section[section.index("<table>"):])
    assert listed == ["5", "7", "2", "1"]
    assert page.index('<section id="pareto">') < page.index("<h2>Learning curves</h2>")
    # A report of one metric of the same runs has no such section.
    single = runmanager.report(log_dir, tmp_path / "one.html", metric="loss").read_text(encoding="utf-8")
    assert 'id="pareto"' not in single and single.count("<svg") == page.count("<svg") - 1


def test_the_report_draws_a_step_line_through_the_front_the_way_the_modes_say():
    points = pd.DataFrame({"params": [100, 200, 400, 300], "val_accuracy": [0.7, 0.8, 0.9, 0.75]})
    on = non_dominated(points[["params", "val_accuracy"]].values.tolist(), ["min", "max"])
    assert on == [True, True, True, False]
    fig = pareto_figure(points, "params", "val_accuracy", ("min", "max"), on, ["1", "2", "3", "4"])
    (line,) = fig.axes[0].lines
    assert line.get_drawstyle() == "steps-post"
    assert line.get_xdata().tolist() == [100, 200, 400] and line.get_ydata().tolist() == [0.7, 0.8, 0.9]
    assert sorted(text.get_text() for text in fig.axes[0].texts) == ["1", "2", "3"]
    fig = pareto_figure(points, "params", "val_accuracy", ("max", "max"), [False, False, True, True], list("1234"))
    assert fig.axes[0].lines[0].get_drawstyle() == "steps-pre"
    assert len(pareto_figure(points, "params", "val_accuracy", ("min", "max"), on, list("1234"),
                             step=False).axes[0].lines) == 0


def repeated(run, callbacks):
    """scripted, a little better at repeat 2; the repeat 2 of 16 units fails."""
    if run.units == 16 and run.repeat == 2:
        raise RuntimeError("simulated out of memory")
    level = accuracy(run.units, run.learning_rate) + (0.02 if run.repeat == 2 else 0.0)
    training.fit_without_model(callbacks, [{"loss": 1 - level, "val_accuracy": level}])


def test_a_sweep_of_two_objectives_with_repeats_judges_configurations_by_their_means(tmp_path):
    runs = RunList([training_run(u, lr) for u, lr in [(8, 0.1), (16, 0.1), (32, 0.01), (32, 0.1), (8, 0.01)]])
    m = SizeManager(tmp_path, verbose=0)
    summary = m.sweep(repeated, runs, repeats=2, metric=["val_accuracy", "params"], mode=["max", "min"],
                      max_consecutive_failures=0)
    assert summary["status"].tolist().count("failed") == 1
    means = summary[summary["status"] == "completed"].groupby(["units", "learning_rate"])[
        ["val_accuracy", "params"]].mean()
    expected = brute_front({key: tuple(row) for key, row in means.iterrows()}, ["max", "min"])
    assert expected == {(8, 0.1), (16, 0.1), (32, 0.1)}
    table = m.aggregate()
    assert {(r.units, r.learning_rate) for r in table.itertuples() if r.pareto} == expected
    front = m.pareto()
    assert list(zip(front["units"], front["learning_rate"])) == [(32, 0.1), (16, 0.1), (8, 0.1)]
    assert front["completed"].tolist() == [2, 1, 2]
    m.close()
    page = runmanager.report(tmp_path).read_text(encoding="utf-8")
    section = page[page.index('<section id="pareto">'):page.index("</section>")]
    assert "3 of 5 configurations are on the front" in section and "<svg" in section
    rows = re.findall(r"<tr><td class=\"num\">(\d+)</td><td class=\"num\">([\d.]+)</td>", section)
    assert rows == [("32", "0.1"), ("16", "0.1"), ("8", "0.1")]


def test_a_report_of_three_objectives_marks_the_front_without_a_step_line(tmp_path):
    summary = random_summary(3, ("val_accuracy", "params", "val_f1"), rows=20)
    frame = summary.assign(epoch=1, epoch_duration=0.1)[["run", "epoch", "val_accuracy", "params", "val_f1",
                                                         "epoch_duration", "run_duration", "units"]]
    from runmanager.reporting import build_report

    page = build_report(summary, frame, title="three", metric=["val_accuracy", "params", "val_f1"],
                        mode=["max", "min", "max"])
    section = page[page.index('<section id="pareto">'):page.index("</section>")]
    expected = expected_runs(summary, ["val_accuracy", "params", "val_f1"], ["max", "min", "max"])
    assert f"{len(expected)} of" in section and "no step line is drawn" in section
    assert set(map(int, re.findall(r"<tr><td class=\"num\">(\d+)</td>", section))) == expected


@pytest.mark.slow
def test_the_front_of_the_report_in_headless_chromium(swept, tmp_path):
    from browser import render

    _, log_dir = swept
    path = runmanager.report(log_dir, tmp_path / "report.html")
    shot = tmp_path / "pareto.png"
    seen = render(path, shot, section="#pareto")
    assert seen["failed"] == [] and seen["errors"] == [] and seen["console"] == []
    assert seen["requests"] == [path.resolve().as_uri()] and seen["svgs"] == 6 and seen["drawn"]
    assert seen["overflow"] == 0
    assert shot.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n" and shot.stat().st_size > 20_000


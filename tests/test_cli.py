"""The runmanager command: demo, show, best, and one-line errors."""

from __future__ import annotations

import io
import math
import subprocess
import sys

import pandas as pd
import pytest
import training
from test_significance import holm_by_hand

from runmanager import RunManager, aggregate, load_summary
from runmanager.cli import main


def cli(*args, cwd=None, timeout=300):
    return subprocess.run([sys.executable, "-m", "runmanager.cli", *map(str, args)], cwd=cwd,
                          capture_output=True, text=True, timeout=timeout)


@pytest.fixture(scope="module")
def demo_dir(tmp_path_factory):
    log_dir = tmp_path_factory.mktemp("demo") / "run"
    done = cli("demo", "--log-dir", log_dir, "--epochs", "2")
    assert done.returncode == 0, done.stderr
    # TensorFlow's C++ start-up notices are kept off the terminal.
    assert "absl::InitializeLog" not in done.stderr and "oneDNN" not in done.stderr, done.stderr
    return log_dir, done.stdout


def test_demo_runs_a_real_sweep_with_a_live_table(demo_dir):
    log_dir, out = demo_dir
    lines = out.splitlines()
    assert lines[0].startswith("Sweeping 4 runs")
    assert lines[1].split()[:4] == ["run", "epoch", "accuracy", "loss"]
    assert sum(1 for line in lines if line.split()[:1] in (["1"], ["2"], ["3"], ["4"])) == 8
    assert "sweep finished: 4 completed" in out
    summary = load_summary(log_dir)
    best = summary.loc[summary["val_accuracy"].idxmax()]
    assert f"Best run: {best['run']} " in out
    assert f"val_accuracy {best['val_accuracy']:.4f}" in out
    assert (summary["status"] == "completed").all() and summary["val_accuracy"].max() > 0.5


def test_show_prints_one_line_per_run(demo_dir, capsys):
    log_dir, _ = demo_dir
    assert main(["show", str(log_dir)]) == 0
    lines = capsys.readouterr().out.splitlines()
    assert lines[0].split() == ["run", "units", "learning_rate", "status", "epochs", "accuracy", "loss",
                                "val_accuracy", "val_loss", "run_duration"]
    assert len(lines) == 2 + 4 and all("completed" in line for line in lines[2:])


def test_show_epochs_reads_csv_and_json_too(demo_dir, capsys):
    log_dir, _ = demo_dir
    for path in (log_dir, log_dir / "results.csv", log_dir / "results.json"):
        assert main(["show", str(path), "--epochs"]) == 0
        lines = capsys.readouterr().out.splitlines()
        assert lines[0].split()[:2] == ["run", "epoch"] and len(lines) == 2 + 8


@pytest.mark.parametrize(("metric", "mode", "pick"), [("val_loss", None, "idxmin"), ("val_accuracy", None, "idxmax"),
                                                      ("val_loss", "max", "idxmax")])
def test_best_prints_the_best_run(demo_dir, capsys, metric, mode, pick):
    log_dir, _ = demo_dir
    summary = load_summary(log_dir)
    expected = summary.loc[getattr(summary[metric], pick)()]
    assert main(["best", str(log_dir), "--metric", metric] + (["--mode", mode] if mode else [])) == 0
    out = capsys.readouterr().out.splitlines()
    assert out[0] == f"Best run by {metric} ({mode or ('min' if 'loss' in metric else 'max')}): run {expected['run']}"
    assert out[3].split()[:3] == [str(expected["run"]), str(expected["units"]), f"{expected['learning_rate']:g}"]


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["show", "/nonexistent/sweep"], "'/nonexistent/sweep' does not exist"),
        (["best", "/nonexistent/sweep", "--metric", "loss"], "does not exist"),
        (["best", "{demo}", "--metric", "f1"], "Unknown metric 'f1'; the sweep has accuracy, loss, val_accuracy, val_loss."),
        (["show", "{demo}/journal.jsonl"], "give a log_dir, a .csv or a .json file"),
    ],
)
def test_bad_paths_and_metrics_are_one_line_errors(demo_dir, args, message):
    log_dir, _ = demo_dir
    done = cli(*[a.format(demo=log_dir) for a in args], timeout=60)
    assert done.returncode == 2
    assert done.stderr.count("\n") == 1 and done.stderr.startswith("runmanager: error: ")
    assert message in done.stderr and "Traceback" not in done.stderr


def test_best_of_a_sweep_without_completed_runs_is_an_error(tmp_path, capsys):
    pd.DataFrame({"run": [1], "units": [4], "status": ["failed"], "epochs": [0], "loss": [float("nan")],
                  "run_duration": [0.1], "error": ["x"]}).to_csv(tmp_path / "summary.csv", index=False)
    assert main(["best", str(tmp_path / "summary.csv"), "--metric", "loss"]) == 2
    assert "No completed run has a finite 'loss'" in capsys.readouterr().err


def test_usage_errors_exit_2_with_usage():
    done = cli("best", "somewhere", timeout=60)
    assert done.returncode == 2 and "--metric" in done.stderr


@pytest.mark.parametrize("epochs", ["0", "-3", "two"])
def test_demo_refuses_fewer_than_one_epoch_before_it_starts(tmp_path, epochs):
    done = cli("demo", "--epochs", epochs, cwd=tmp_path, timeout=60)
    assert done.returncode == 2 and done.stdout == ""
    assert done.stderr.strip().splitlines()[-1] == (
        f"runmanager demo: error: argument --epochs: must be a whole number of at least 1, got {epochs!r}")
    assert list(tmp_path.iterdir()) == []  # no runs/ folder: nothing started


def test_show_info_says_which_backend_and_versions_ran_the_runs(demo_dir):
    import keras
    import tensorflow

    log_dir, _ = demo_dir
    done = cli("show", log_dir, "--info")
    assert done.returncode == 0, done.stderr
    assert done.stdout.splitlines()[0] == (
        f"backend tensorflow (keras {keras.__version__}, tensorflow {tensorflow.__version__}): runs 1, 2, 3, 4")


@pytest.mark.parametrize("shown", [False, True])
def test_the_backends_start_up_notices_are_hidden_unless_asked(shown):
    code = ("import os, sys\n"
            + ("os.environ['RUNMANAGER_BACKEND_NOTICES'] = '1'\n" if shown else "")
            + "from runmanager.backend import import_keras\nimport_keras()\n"
            "print('kept', file=sys.stderr)")
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120)
    assert done.returncode == 0 and done.stderr.endswith("kept\n")
    assert ("absl::InitializeLog" in done.stderr) is shown


def two_epochs(run, callbacks):
    """Metrics that depend on the params and the repeat; repeat 2 of lr=0.1, units=8 fails."""
    if (run.lr, run.units, run.repeat) == (0.1, 8, 2):
        raise RuntimeError("simulated out of memory")
    level = {0.1: 0.6, 0.01: 0.8}[run.lr] + run.units / 100 + (0.02 if run.optimizer == "adam" else 0)
    training.fit_without_model(callbacks, [{"loss": round(1 - level + c, 4), "val_accuracy": round(level - c + run.repeat / 100, 4)}
                                           for c in (0.2, 0.1)])


@pytest.fixture(scope="module")
def filtered(tmp_path_factory):
    """A real log_dir of 16 runs: 8 configurations, 2 repeats each, one run failed."""
    log_dir = tmp_path_factory.mktemp("filtered")
    grid = {"lr": [0.1, 0.01], "units": [4, 8], "optimizer": ["adam", "sgd"]}
    RunManager(log_dir, verbose=0).sweep(two_epochs, grid, repeats=2, seed=0, max_consecutive_failures=0)
    return log_dir


ATTACKS = [
    "units.__init__.__globals__['sys'].modules['os'].system('touch {path}') == 0",
    "units.to_pickle('{path}') == 1",
    "units.__class__.__init__.__globals__['__builtins__']['open']('{path}', 'w') == 1",
    "open('{path}', 'w') == 1",
    "units[0] == 4",
    "(lambda: open('{path}', 'w'))() == 1",
    "(written := units.to_pickle('{path}')) == 1",
    "@units == 4",
]


@pytest.mark.parametrize("aggregated", [False, True])
@pytest.mark.parametrize("attack", ATTACKS)
def test_show_where_refuses_code_with_one_line_and_exit_2_and_runs_nothing(filtered, tmp_path, capsys, attack,
                                                                           aggregated):
    path = tmp_path / "written"
    where = attack.format(path=path)
    assert main(["show", str(filtered), "--where", where] + (["--aggregate"] if aggregated else [])) == 2
    out, err = capsys.readouterr()
    assert out == "" and err.count("\n") == 1
    assert err.startswith(f"runmanager: error: --where: The filter {where!r} uses ")
    assert "which a filter may not" in err and "Columns: run, lr, units, optimizer, repeat, status" in err
    assert not path.exists()


def test_show_where_refuses_code_in_a_real_process(filtered, tmp_path):
    path = tmp_path / "pwned"
    done = cli("show", filtered, "--where", ATTACKS[0].format(path=path), timeout=60)
    assert done.returncode == 2 and done.stdout == ""
    assert done.stderr.count("\n") == 1 and "(a call), which a filter may not" in done.stderr
    assert "Traceback" not in done.stderr and not path.exists()


@pytest.mark.parametrize("where", [
    "0.01 <= lr < 0.1 and optimizer in ['adam']",
    "`val_accuracy` > 0.8 | status == 'failed'",
    "not (units == 8) and repeat != [1]",
    "val_accuracy - loss > 0.5 and optimizer not in ('sgd',)",
])
def test_show_where_keeps_the_rows_pandas_query_keeps(filtered, capsys, where):
    assert main(["show", str(filtered), "--where", where, "--format", "csv"]) == 0
    shown = pd.read_csv(io.StringIO(capsys.readouterr().out))
    expected = load_summary(filtered).query(where)["run"].tolist()
    assert shown["run"].tolist() == expected and 0 < len(expected) < 16


@pytest.mark.parametrize("where", ["completed < runs", "val_accuracy_mean > 0.75 and optimizer == 'adam'"])
def test_show_aggregate_where_over_the_aggregated_columns_selects_configurations(filtered, capsys, where):
    assert main(["show", str(filtered), "--aggregate", "--where", where, "--format", "csv"]) == 0
    shown = pd.read_csv(io.StringIO(capsys.readouterr().out))
    expected = aggregate(filtered).query(where)
    assert shown[["lr", "units", "optimizer"]].values.tolist() == expected[["lr", "units", "optimizer"]].values.tolist()
    assert 0 < len(expected) < 8


@pytest.mark.parametrize(("args", "message"), [
    (["--where", "nope > 1"], "The filter 'nope > 1' names 'nope', which is not a column; put a name"),
    (["--aggregate", "--where", "repeat == 1 and runs == 2"], "names 'repeat', a column of the runs, and 'runs', a column of the aggregated table; a filter selects runs or configurations"),
    (["--aggregate", "--where", "nope > 1 and runs == 2"], "names 'nope', which is not a column"),
    (["--where", "lr * 2"], "gives float64 values, not true or false per row; compare it"),
    (["--where", "optimizer < 1"], "orders 'optimizer', which gives str values, against '1'"),
])
def test_a_where_that_cannot_select_is_one_line_naming_the_columns(filtered, capsys, args, message):
    assert main(["show", str(filtered), *args]) == 2
    out, err = capsys.readouterr()
    assert out == "" and err.count("\n") == 1 and err.startswith("runmanager: error: --where: The filter ")
    assert message in err and "Columns: run, lr, units, optimizer, repeat, status, epochs, loss, val_accuracy" in err
    assert ("runs, completed, loss_mean" in err) is ("--aggregate" in args)


def test_compare_in_a_real_process_prints_one_row_per_pair_and_refuses_bad_input_in_one_line(filtered):
    from scipy import stats

    done = cli("compare", filtered, "--metric", "val_accuracy", "--format", "csv", timeout=120)
    assert done.returncode == 0, done.stderr
    shown = pd.read_csv(io.StringIO(done.stdout))
    summary = load_summary(filtered)
    done_runs = summary[summary["status"] == "completed"]
    values = {key: group["val_accuracy"].tolist() for key, group in done_runs.groupby(["lr", "units", "optimizer"])}
    assert len(values) == 8 and len(shown) == 8 * 7 // 2  # every pair, once
    raw = {}
    for row in shown.to_dict("records"):
        a, b = ((row[f"{side}_lr"], row[f"{side}_units"], row[f"{side}_optimizer"]) for side in "ab")
        assert row["mean_a"] >= row["mean_b"]  # the better ranked configuration first
        if min(len(values[a]), len(values[b])) >= 2:
            raw[a, b] = stats.ttest_ind(values[a], values[b], equal_var=False).pvalue
            if math.isnan(raw[a, b]):  # no spread on either side and the same mean
                raw[a, b] = 1.0
        else:
            assert math.isnan(row["p_value"])
    corrected = holm_by_hand(raw)
    assert len(raw) == 6 * 5 // 2  # the two configurations with a failed repeat have one run: no test
    for row in shown.to_dict("records"):
        key = tuple((row[f"{side}_lr"], row[f"{side}_units"], row[f"{side}_optimizer"]) for side in "ab")
        if key in raw:
            assert row["p_value"] == pytest.approx(raw[key]) and row["p_holm"] == pytest.approx(corrected[key])
            assert row["significant"] == (corrected[key] < 0.05)
    for args, message in ((["--test", "bogus"], "Unknown test 'bogus'"), (["--alpha", "2"], "alpha must be"),
                          (["--metric", "f1"], "Unknown metric 'f1'")):
        done = cli("compare", filtered, "--metric", "val_accuracy", *args, timeout=120)
        assert done.returncode == 2 and done.stdout == "" and done.stderr.count("\n") == 1, done.stderr
        assert message in done.stderr and "Traceback" not in done.stderr


def test_show_aggregate_test_bolds_the_configurations_scipy_cannot_tell_from_the_best(filtered, capsys):
    from scipy import stats

    assert main(["show", str(filtered), "--aggregate", "--metric", "val_accuracy", "--test", "mannwhitney",
                 "--format", "github"]) == 0
    lines = capsys.readouterr().out.splitlines()
    summary = load_summary(filtered)
    done = summary[summary["status"] == "completed"]
    values = {key: group["val_accuracy"].tolist() for key, group in done.groupby(["lr", "units", "optimizer"])}
    best = max(values, key=lambda key: sum(values[key]) / len(values[key]))
    raw = {key: stats.mannwhitneyu(xs, values[best], alternative="less").pvalue
           for key, xs in values.items() if key != best and len(xs) >= 2}
    tied = {key for key, p in holm_by_hand(raw).items() if p >= 0.05} | {best}
    header = [cell.strip() for cell in lines[0].split("|")[1:-1]]
    rows = [[cell.strip() for cell in line.split("|")[1:-1]] for line in lines[2:10]]
    at = header.index("val_accuracy")
    bold = {(float(row[1]), int(row[2]), row[3]) for row in rows if row[at].startswith("**")}
    assert bold == tied and 1 < len(tied) < 8
    assert lines[10:] == ["", "\\* completed fewer repeats than other configurations (up to 2): its mean is over "
                          "fewer runs.", "", "Bold in val_accuracy: the best mean, and the means not significantly "
                          "worse (one-sided Mann–Whitney U test against the best, Holm-corrected, alpha = 0.05)."]

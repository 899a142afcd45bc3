"""The offline HTML report and plot() (issue 11): what the report holds, that it opens in a real
headless Chromium with no request leaving the page, and the figures of plot()."""

from __future__ import annotations

import html
import re
import subprocess
import sys

import pytest
import training
from browser import render
from matplotlib.collections import LineCollection
from matplotlib.figure import Figure

import runmanager
from runmanager import InvalidArgumentError, LogDirError, RunManager, aggregate, load_summary
from runmanager.cli import main
from runmanager.search import Search

SECTIONS = ["Best configurations by mean val_accuracy", "Summary over repeats", "Learning curves",
            "Params against val_accuracy", "Effect of each param on val_accuracy", "Runs that did not complete"]


def scripted(run, callbacks):
    """Metrics set by the params (units decides most of val_accuracy); one run diverges, one fails."""
    params = run._asdict()
    if params["units"] == 8 and params.get("repeat") == 2:
        raise RuntimeError("simulated out of memory")
    level = 0.5 + params["units"] / 40 + (0.02 if params["lr"] == 0.01 else 0.0) + params.get("repeat", 1) / 200
    epochs = [{"loss": 1 - level * e / 4, "accuracy": level * e / 4, "val_loss": 1.1 - level * e / 4,
               "val_accuracy": level * e / 4 - 0.02} for e in range(1, 5)]
    if params["units"] == 2 and params["lr"] == 0.1 and params.get("repeat") == 3:
        epochs[2] = {**epochs[2], "loss": float("nan")}
    training.fit_without_model(callbacks, epochs)


@pytest.fixture(scope="module")
def swept(tmp_path_factory):
    log_dir = tmp_path_factory.mktemp("report") / "sweep"
    RunManager(log_dir, verbose=0).sweep(scripted, {"lr": [0.1, 0.01], "units": [2, 4, 8]}, repeats=3, seed=0,
                                         max_consecutive_failures=0)
    return log_dir


def external_references(page: str) -> list[str]:
    """Everything in a page that a browser would fetch from elsewhere (a ``data:`` URI or a ``#``
    reference within the page is part of the page)."""
    found = re.findall(r"""<(?:script|link|img|iframe|object|embed|source)\b[^>]*>""", page, re.IGNORECASE)
    found += re.findall(r"""(?:src|href)\s*=\s*["'](?!#|data:)[^"']*["']""", page, re.IGNORECASE)
    found += re.findall(r"""url\(\s*["']?(?!#|data:)[^)]*\)|@import""", page, re.IGNORECASE)
    return found


def test_the_report_holds_every_section_and_nothing_from_elsewhere(swept):
    path = runmanager.report(swept)
    assert path == swept / "report.html"
    page = path.read_text(encoding="utf-8")
    for section in SECTIONS:
        assert f"<h2>{section}</h2>" in page, section
    assert external_references(page) == []
    # Learning curves of the 4 metrics, parallel coordinates, param effects: six inline SVG figures.
    assert page.count("<svg") == 6
    summary = load_summary(swept)
    assert f"{len(summary)} runs (6 configurations × up to 3 repeats)" in page
    assert "Colours show units, the param that explains most of the spread of val_accuracy" in page
    # The aggregated summary, mean ± std, best first.
    ranked = aggregate(summary, "val_accuracy")
    top = ranked.iloc[0]
    assert f"{top['val_accuracy_mean']:.4f} ± {top['val_accuracy_std']:.4f}" in page
    # The failed and the diverged runs with their errors and the failed run's traceback.
    bad = summary[summary["status"] != "completed"]
    assert set(bad["status"]) == {"failed", "diverged"}
    tail = page[page.index("<h2>Runs that did not complete</h2>"):]
    assert tail.count("<tr><td") == len(bad)
    assert "RuntimeError: simulated out of memory" in tail and "<summary>traceback</summary>" in tail
    assert html.escape('raise RuntimeError("simulated out of memory")') in tail
    assert 'class="status-diverged"' in tail


def test_a_report_without_repeats_lists_every_run_and_goes_where_asked(tmp_path):
    log_dir = tmp_path / "plain"
    RunManager(log_dir, verbose=0).sweep(scripted, {"lr": [0.1, 0.01], "units": [2, 4]})
    target = tmp_path / "elsewhere.html"
    assert runmanager.report(log_dir, target, metric="val_loss", by="lr") == target
    page = target.read_text(encoding="utf-8")
    assert "<h2>Best runs by val_loss</h2>" in page and "<h2>Summary</h2>" in page
    assert "lower is better" in page and "Every run completed." in page
    assert not (log_dir / "report.html").exists()
    assert "Colours show" not in page  # by= was given


def test_an_empty_sweep_gives_a_report_that_says_so(tmp_path):
    class Nothing(Search):
        fields = ("lr",)

        def ask(self):
            return None

    RunManager(tmp_path, verbose=0).sweep(scripted, Nothing())
    page = runmanager.report(tmp_path).read_text(encoding="utf-8")
    assert "This sweep is empty: it has no runs yet." in page and "<svg" not in page


def test_bad_input_names_what_exists(swept, tmp_path):
    with pytest.raises(InvalidArgumentError, match=r"Unknown metric 'val_acc'; the runs logged loss, accuracy, "
                                                   r"val_loss, val_accuracy"):
        runmanager.report(swept, tmp_path / "r.html", metric="val_acc")
    with pytest.raises(InvalidArgumentError, match=r"Unknown param 'units_' to colour by; the sweep's params are "
                                                   r"lr, units"):
        runmanager.report(swept, tmp_path / "r.html", by="units_")
    with pytest.raises(LogDirError, match="holds no runmanager results"):
        runmanager.report(tmp_path)
    with pytest.raises(LogDirError, match="its folder does not exist"):
        runmanager.report(swept, tmp_path / "missing" / "r.html")


def test_the_report_command_writes_the_file_and_says_where(swept, tmp_path, capsys):
    target = tmp_path / "cli.html"
    assert main(["report", str(swept), "-o", str(target), "--metric", "val_loss"]) == 0
    assert capsys.readouterr().out.startswith(f"Wrote {target} (")
    assert "<h2>Best configurations by mean val_loss</h2>" in target.read_text(encoding="utf-8")
    assert main(["report", str(tmp_path / "nowhere")]) == 2
    assert "runmanager: error: " in capsys.readouterr().err


def test_plot_draws_one_line_per_run_coloured_by_a_param(swept):
    frame = runmanager.load_results(swept)
    for source in (swept, frame):
        fig = runmanager.plot(source, "val_accuracy", by="units")
        assert isinstance(fig, Figure)
        ax = fig.axes[0]
        lines = [c for c in ax.collections if isinstance(c, LineCollection)][0]
        finite = frame[frame["val_accuracy"].notna()]
        assert len(lines.get_segments()) == finite["run"].nunique()
        assert len({tuple(c) for c in lines.get_colors()}) == 3  # units 2, 4, 8
        assert ax.get_legend().get_title().get_text() == "units"
        assert ax.get_xlabel() == "epoch" and ax.get_ylabel() == "val_accuracy"
    # by=None: the param that explains most of the spread (units, not lr or repeat).
    fig = runmanager.plot(frame, "val_accuracy")
    assert fig.axes[0].get_legend().get_title().get_text() == "units"
    with pytest.raises(InvalidArgumentError, match="Unknown metric 'acc'; the runs logged loss, accuracy"):
        runmanager.plot(frame, "acc")
    with pytest.raises(InvalidArgumentError, match="Unknown param 'size' to colour by; the sweep's params are lr, "
                                                   "units, repeat"):
        runmanager.plot(frame, "loss", by="size")


def test_plot_takes_a_running_manager_and_colours_many_values_on_a_scale(tmp_path):
    m = RunManager(tmp_path, verbose=0)
    m.sweep(scripted, {"lr": [0.1], "units": list(range(1, 15))})
    fig = m and runmanager.plot(m, "loss", by="units")
    assert len(fig.axes) == 2 and fig.axes[1].get_ylabel() == "units"  # a colour bar, no legend
    fig.savefig(tmp_path / "curves.svg")
    assert (tmp_path / "curves.svg").stat().st_size > 0


# --------------------------------------------------------------------------------------
# In a real browser
# --------------------------------------------------------------------------------------
@pytest.mark.slow
def test_the_report_opens_in_headless_chromium_with_no_failed_request(swept, tmp_path):
    path = runmanager.report(swept)
    shot = tmp_path / "report.png"
    seen = render(path, shot)
    assert seen["failed"] == [] and seen["errors"] == [] and seen["console"] == []
    assert seen["requests"] == [path.resolve().as_uri()]  # the page itself, nothing else
    assert seen["svgs"] == 6 and seen["drawn"]
    assert shot.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n" and shot.stat().st_size > 50_000


def test_plot_shows_inline_in_jupyter(swept):
    """A returned Figure is what Jupyter's inline backend displays: a PNG through IPython's formatter
    (in a fresh interpreter, so the backend of this one is left alone)."""
    code = f"""
import matplotlib
matplotlib.use("module://matplotlib_inline.backend_inline")
from IPython.core.interactiveshell import InteractiveShell
from matplotlib_inline.backend_inline import configure_inline_support
import runmanager
shell = InteractiveShell.instance()
configure_inline_support(shell, "module://matplotlib_inline.backend_inline")
data, _ = shell.display_formatter.format(runmanager.plot({str(swept)!r}, "val_accuracy"))
print(sorted(data), len(data["image/png"]))
"""
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stderr[-2000:]
    kinds, size = done.stdout.strip().rsplit(" ", 1)
    assert kinds == "['image/png', 'text/plain']" and int(size) > 10_000


def test_show_and_best_on_a_log_dir_without_runs_say_so(tmp_path, capsys):
    class Nothing(Search):
        fields = ("lr",)

        def ask(self):
            return None

    RunManager(tmp_path, verbose=0).sweep(scripted, Nothing())
    assert main(["show", str(tmp_path), "--aggregate"]) == 2
    assert capsys.readouterr().err.strip().endswith("has no runs yet.")
    assert main(["best", str(tmp_path), "--metric", "val_loss"]) == 2
    assert "runmanager: error: " in capsys.readouterr().err

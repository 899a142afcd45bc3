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
    assert seen["overflow"] == 0


@pytest.mark.slow
def test_a_report_of_wide_tables_does_not_run_off_the_page_in_chromium(tmp_path):
    RunManager(tmp_path, verbose=0).sweep(wide, WIDE_GRID)
    path = runmanager.report(tmp_path)
    seen = render(path, tmp_path / "report.png")
    assert seen["errors"] == [] and seen["overflow"] == 0


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


# --------------------------------------------------------------------------------------
# Real users' sweeps: list and dict params, long names, divergence, wide tables, -o DIR
# --------------------------------------------------------------------------------------
def section(page: str, title: str) -> str:
    """The HTML of one section of a report, from its heading to the next."""
    start = page.index(f"<h2>{title}</h2>")
    end = page.find("<h2>", start + 1)
    return page[start:] if end == -1 else page[start:end]


def test_a_sweep_over_list_and_dict_params_gets_its_report_from_the_journal_csv_or_json(layers_sweep, tmp_path):
    """layers=[[8], [8, 4]] and opt=[{"name": "sgd", "lr": 0.05}], as RunBuilder takes them: the report
    ranks, colours and plots by them, read back as lists (journal, JSON) or as text (CSV)."""
    log_dir, copies = layers_sweep
    for source in (log_dir, copies["csv"], copies["json"]):
        page = runmanager.report(source, tmp_path / f"{source.name}.html").read_text(encoding="utf-8")
        best = section(page, "Best configurations by mean val_accuracy")
        assert best.count("<tr><td") == 2 and "<td>[8, 4]</td>" in best and "<td>[8]</td>" in best, source
        assert "sgd" in best
        assert "(2 configurations × up to 2 repeats)" in page
        assert page.count("<svg") == 6 and "[8, 4]</text>" in section(page, "Params against val_accuracy")


def test_plot_colours_the_runs_by_a_list_param(layers_sweep):
    log_dir, copies = layers_sweep
    for source in (log_dir, copies["csv"], copies["json"]):
        legend = runmanager.plot(source, "val_accuracy", by="layers").axes[0].get_legend()
        assert [text.get_text() for text in legend.get_texts()] == ["[8, 4]", "[8]"], source
        assert runmanager.plot(source, "val_accuracy").axes[0].get_legend() is not None  # by: the most influential


def test_the_report_prints_long_names_whole_and_marks_a_mean_over_fewer_repeats(models_sweep):
    page = runmanager.report(models_sweep).read_text(encoding="utf-8")
    best = section(page, "Best configurations by mean val_accuracy")
    rows = re.findall(r"<tr>(.*?)</tr>", best)[1:]
    assert [re.findall(r"<td[^>]*>(.*?)</td>", row)[1] for row in rows] == [training.FINETUNED, training.FROZEN]
    assert '<td class="num">1<span class="mark">*</span></td>' in rows[0] and "mark" not in rows[1]
    note = "* completed fewer repeats than other configurations (up to 2): its mean is over fewer runs."
    assert f'<p class="note">{note}</p>' in best
    assert f'<p class="note">{note}</p>' in section(page, "Summary over repeats")
    # The parallel coordinates draw the names cut in the middle, whole in their tooltips.
    figure = section(page, "Params against val_accuracy")
    for name in (training.FROZEN, training.FINETUNED):
        assert f"<title>{name}</title>" in figure and f"{name}</text>" not in figure


def test_the_report_says_which_loss_became_nan_at_which_epoch(swept, tmp_path):
    """The diverged run's row says why, from the journal, and from the CSV exports alone."""
    csv_only = tmp_path / "csv"
    csv_only.mkdir()
    for path in swept.glob("*.csv"):
        (csv_only / path.name).write_bytes(path.read_bytes())
    for source in (swept, csv_only):
        tail = section(runmanager.report(source, tmp_path / "r.html").read_text(encoding="utf-8"),
                       "Runs that did not complete")
        row = next(row for row in re.findall(r"<tr>(.*?)</tr>", tail) if "status-diverged" in row)
        assert '<td class="error">loss became nan at epoch 3</td>' in row, source


def train_diverging(run, callbacks):
    x, y = training.data()
    model = training.build_diverging_model(learning_rate=run.learning_rate)
    model.fit(x, y, epochs=30, batch_size=32, callbacks=callbacks, verbose=0)


def test_a_real_diverged_keras_run_is_explained_in_the_report(tmp_path):
    RunManager(tmp_path, verbose=0).sweep(train_diverging, {"learning_rate": [1e-4, 1e12]})
    summary = load_summary(tmp_path)
    epochs = int(summary.loc[summary["status"] == "diverged", "epochs"].iloc[0])
    tail = section(runmanager.report(tmp_path).read_text(encoding="utf-8"), "Runs that did not complete")
    assert re.search(rf'<td class="error">loss became (nan|inf) at epoch {epochs}</td>', tail), tail
    summary_table = section(runmanager.report(tmp_path).read_text(encoding="utf-8"), "Summary")
    assert f"at epoch {epochs}</td>" in summary_table  # the summary's error column says it too


def wide(run, callbacks):
    training.fit_without_model(callbacks, [{"loss": 0.5, "val_accuracy": 0.5 + run.learning_rate}])


WIDE_GRID = {"learning_rate": [0.1, 0.2], **{f"augmentation_setting_{i}": [f"policy_variant_{i}_" + "x" * 20]
                                             for i in range(12)}}


def test_every_table_of_the_report_sits_in_a_box_that_scrolls_sideways(tmp_path):
    """A wide Best runs table (12 params of long values) cannot run off the page: every table is
    inside a box whose overflow scrolls."""
    RunManager(tmp_path, verbose=0).sweep(wide, WIDE_GRID)
    page = runmanager.report(tmp_path).read_text(encoding="utf-8")
    assert re.search(r"\.wide \{[^}]*overflow-x: auto", page) and re.search(r"\.scroll \{[^}]*overflow: auto", page)
    tables = page.count("<table>")
    assert tables >= 2 and len(re.findall(r'<div class="(?:wide|scroll)"><table>', page)) == tables
    assert '<div class="wide"><table>' in section(page, "Best runs by val_accuracy")


def test_long_category_labels_in_parallel_coordinates_end_before_the_next_axis():
    """Values longer than the space between two axes are cut in the middle, still told apart, and
    their drawn boxes end before the next axis (measured by matplotlib's renderer)."""
    import pandas as pd
    from matplotlib.backends.backend_agg import FigureCanvasAgg

    from runmanager.plotting import parallel_figure

    names = [training.FROZEN, training.FINETUNED, "vgg16"]
    runs = pd.DataFrame({"model": names * 2, "head": ["mlp_with_dropout_and_batchnorm", "linear_probe"] * 3,
                         "val_accuracy": [0.1 * i for i in range(6)]})
    fig = parallel_figure(runs, ["model", "head"], "val_accuracy", "max")
    renderer = FigureCanvasAgg(fig).get_renderer()
    fig.draw(renderer)
    ax = fig.axes[0]
    drawn: dict[int, list[str]] = {}
    for text in ax.texts:
        axis = round(text.get_position()[0])
        drawn.setdefault(axis, []).append(text.get_text())
        next_axis = ax.transData.transform((axis + 1, 0))[0]
        assert text.get_window_extent(renderer).x1 < next_axis, text.get_text()
    assert len(set(drawn[0])) == 3 and "vgg16" in drawn[0] and all(len(label) <= 16 for label in drawn[0])


def test_report_output_to_a_folder_writes_report_html_in_it_and_a_missing_folder_is_one_line(swept, tmp_path,
                                                                                                capsys):
    folder = tmp_path / "out"
    folder.mkdir()
    assert runmanager.report(swept, folder) == folder / "report.html"
    assert main(["report", str(swept), "-o", str(folder)]) == 0
    assert capsys.readouterr().out.startswith(f"Wrote {folder / 'report.html'} (")
    assert "<h2>Learning curves</h2>" in (folder / "report.html").read_text(encoding="utf-8")
    for target, message in ((tmp_path / "missing" / "r.html", "its folder does not exist; create "),
                            (f"{tmp_path / 'missing'}/", "that folder does not exist"),
                            (folder / "report.html" / "r.html", "is a file, not a folder")):
        assert main(["report", str(swept), "-o", str(target)]) == 2
        err = capsys.readouterr().err
        assert err.count("\n") == 1 and err.startswith("runmanager: error: Cannot write the report") and message in err
        with pytest.raises(LogDirError, match=re.escape(message)):
            runmanager.report(swept, target)
    assert sorted(p.name for p in tmp_path.rglob("*") if p.name.endswith(".tmp")) == []

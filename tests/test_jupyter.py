"""runmanager in a real Jupyter kernel (ipykernel, started as a notebook server starts one, with no
``%matplotlib inline`` and no pyplot): what a person sees in the notebook's outputs."""

from __future__ import annotations

import base64

import pytest
from kernel import Kernel


@pytest.fixture(scope="module")
def kernel(tmp_path_factory):
    kernel = Kernel(tmp_path_factory.mktemp("kernel"))
    yield kernel
    kernel.close()


@pytest.fixture(scope="module")
def swept(kernel, tmp_path_factory):
    """A small sweep of a real Keras model run in a cell, verbose: its cell and its log_dir."""
    log_dir = tmp_path_factory.mktemp("jupyter") / "sweep"
    cell = kernel.run(f"""
import runmanager, training
m = runmanager.RunManager({str(log_dir)!r}, verbose=1)
summary = m.sweep(training.train, {{"units": [2, 4], "num_epochs": [1]}})
""")
    assert cell.error is None, cell.error
    return cell, log_dir


def test_the_progress_line_after_each_run_shows_as_plain_text_not_as_a_quoted_string(swept):
    cell, _ = swept
    progress = [data["text/plain"] for data in cell.shown if "progress: " in data.get("text/plain", "")]
    assert len(progress) == 2  # shown once, then updated in place after the second run
    assert progress[0].startswith("progress: 1/2 runs (1 completed)")
    assert progress[1].startswith("progress: 2/2 runs (2 completed)")
    assert "'progress" not in cell.text and '"progress' not in cell.text
    ending = [data["text/plain"] for data in cell.shown if "sweep finished" in data.get("text/plain", "")]
    assert ending and ending[0].startswith("sweep finished: 2 completed")


def test_plot_as_the_last_line_of_a_cell_shows_a_picture_without_matplotlib_inline(kernel, swept):
    _, log_dir = swept
    cell = kernel.run(f'runmanager.plot({str(log_dir)!r}, "val_accuracy")')
    assert cell.error is None, cell.error
    images = [data["image/png"] for data in cell.shown if "image/png" in data]
    assert len(images) == 1
    png = base64.b64decode(images[0])
    assert png[:8] == b"\x89PNG\r\n\x1a\n" and len(png) > 10_000
    # The kernel is plain: nothing set the inline backend up, so a matplotlib Figure shows as text.
    plain = kernel.run("import matplotlib.figure; matplotlib.figure.Figure()")
    assert [sorted(data) for data in plain.shown] == [["text/plain"]]


def test_a_train_defined_in_a_cell_is_refused_for_worker_processes_at_once_with_the_fix(kernel, tmp_path):
    cell = kernel.run(f"""
import multiprocessing, time
def train(run, callbacks):
    training.train(run, callbacks)

started = time.monotonic()
try:
    runmanager.RunManager({str(tmp_path / "sweep")!r}, verbose=0).sweep(
        train, {{"units": [2, 4]}}, executor="processes", workers=2)
finally:
    print("took", time.monotonic() - started, "s; workers", len(multiprocessing.active_children()))
""")
    assert cell.error is not None and cell.error.startswith("InvalidArgumentTypeError: train='train' is defined in "
                                                            "this interactive session")
    assert "Move it into a .py file" in cell.error and 'executor="sequential"' in cell.error
    took, workers = cell.text.split("took ")[1].split(" s; workers ")
    assert float(took) < 5 and int(workers) == 0
    assert not (tmp_path / "sweep" / "journal.jsonl").exists()  # refused before the log_dir was written


def test_a_runmanager_subclass_defined_in_a_cell_is_refused_for_worker_processes(kernel, tmp_path):
    cell = kernel.run(f"""
class Tagged(runmanager.RunManager):
    def extra_columns(self):
        return {{"tag": "a"}}

Tagged({str(tmp_path / "sweep")!r}, verbose=0).sweep(training.train, {{"units": [2]}}, executor="processes")
""")
    assert cell.error is not None
    assert cell.error.startswith("InvalidArgumentTypeError: The RunManager subclass 'Tagged' is defined in this "
                                 "interactive session")
    assert not (tmp_path / "sweep" / "journal.jsonl").exists()

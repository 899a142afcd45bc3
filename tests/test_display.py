"""The live table: aligned lines in a terminal, one table updated in place in Jupyter."""

from __future__ import annotations

import io

import pytest
import training
from IPython.core.displaypub import DisplayPublisher
from IPython.core.interactiveshell import InteractiveShell

from runmanager import RunManager
from runmanager.display import LiveTable, format_value
from runmanager.tables import format_table


def test_terminal_table_prints_header_once_and_aligned_rows():
    out = io.StringIO()
    table = LiveTable(out)
    for epoch, loss in enumerate([2.5, 0.25, 12345.678], start=1):
        table.add({"run": 1, "epoch": epoch, "loss": loss, "epoch_duration": 0.5, "lr": 0.001}, params=["lr"])
    lines = out.getvalue().splitlines()
    assert len(lines) == 5 and lines[0].split() == ["run", "epoch", "loss", "epoch_duration", "lr"]
    assert [line.split()[2] for line in lines[2:]] == ["2.5000", "0.2500", "12345.6780"]
    assert {len(line.rstrip()) for line in lines[1:]} == {len(lines[1])}
    assert lines[2].split()[-1] == "0.001"


def test_new_columns_start_a_new_header_and_nothing_shifts():
    out = io.StringIO()
    table = LiveTable(out)
    table.add({"run": 1, "epoch": 1, "loss": 0.5})
    table.add({"run": 2, "epoch": 1, "loss": 0.5, "auc": 0.9})
    lines = out.getvalue().splitlines()
    assert lines[0].split() == ["run", "epoch", "loss"] and lines[3].split() == ["run", "epoch", "loss", "auc"]
    table.note("run 3 failed: ValueError: x")
    assert out.getvalue().endswith("run 3 failed: ValueError: x\n")


@pytest.mark.parametrize(
    ("column", "value", "param", "shown"),
    [("loss", 0.123456, False, "0.1235"), ("loss", float("nan"), False, "nan"), ("loss", float("inf"), False, "inf"),
     ("loss", 1.5e-7, False, "1.5e-07"), ("run_duration", 3.14159, False, "3.14s"), ("lr", 1e-4, True, "0.0001"),
     ("opt", None, True, ""), ("opt", "x" * 40, True, "x" * 40),
     ("layers", [64, 32], True, "[64, 32]"), ("opt", {"name": "adam", "lr": 0.1}, True, '{"name": "adam", "lr": 0.1}'),
     ("error", "ValueError: " + "x" * 80, False, "ValueError: " + "x" * 47 + "…"),
     ("error", "ValueError: bad\nmore", False, "ValueError: bad…"), ("flag", True, True, "True")],
)
def test_format_value(column, value, param, shown):
    assert format_value(column, value, param=param) == shown


class Recorder(DisplayPublisher):
    """A display publisher as a notebook front end sees it: what is shown, and what is updated."""

    def __init__(self, *args, **kwargs):
        super().__init__(*args, **kwargs)
        self.messages = []

    def publish(self, data, metadata=None, source=None, *, transient=None, update=False, **kwargs):
        display_id = (transient or {}).get("display_id")
        self.messages.append({"id": display_id, "update": update, "html": data.get("text/html", "")})


def test_jupyter_table_is_one_display_updated_in_place():
    shell = InteractiveShell.instance()
    recorder = Recorder(shell=shell)
    shell.display_pub = recorder
    try:
        table = LiveTable(jupyter=True)
        for epoch in (1, 2, 3):
            table.add({"run": 1, "epoch": epoch, "loss": 1 / epoch})
    finally:
        InteractiveShell.clear_instance()
    messages = recorder.messages
    assert [m["update"] for m in messages] == [False, True, True]
    assert len({m["id"] for m in messages}) == 1 and messages[0]["id"]
    assert messages[-1]["html"].count("<tr>") == 4  # header + 3 rows in the one table
    assert "0.3333" in messages[-1]["html"]


def test_a_plain_table_aligns_numbers_right():
    import pandas as pd

    text = format_table(pd.DataFrame({"run": [1, 10], "status": ["completed", "failed"]}))
    assert text.splitlines()[2:] == ["    1  completed", "   10  failed"]


def test_a_sweeps_live_table_prints_long_params_whole_and_keeps_rows_aligned(tmp_path, capsys):
    """Each model name is printed whole; when a longer one comes, a new header with a wider column
    keeps the rows below aligned under it."""
    names = ["vgg16", training.FROZEN, training.FINETUNED]
    RunManager(tmp_path, verbose=1).sweep(training.train_by_model, {"model": names})
    lines = capsys.readouterr().out.splitlines()
    rows = [line for line in lines if line.split()[0].isdigit()]
    assert [row.split()[-1] for row in rows] == [name for name in names for _ in (1, 2)]
    header = rule = ""
    for number, line in enumerate(lines):
        if line.startswith("  run"):
            header, rule = line, lines[number + 1]
        elif line in rows:
            assert line.index(line.split()[-1]) == header.index("model")
            assert len(line.rstrip()) <= len(rule)  # within the rule under its header

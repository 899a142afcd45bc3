"""The journal and the exported files: torn lines, corrupt lines, atomic writes, changing columns."""

from __future__ import annotations

import json
import os
from pathlib import Path

import pandas as pd
import pytest

import runmanager
from runmanager import JournalError, LogDirError, RunManager, load_results, load_summary
from runmanager.storage import Journal, atomic_write, read_journal


def manual_sweep(log_dir, runs=({"units": 4}, {"units": 8}), epochs=2, metrics=("loss",)):
    m = RunManager(log_dir, verbose=0)
    for params in runs:
        m.begin_run(params)
        for epoch in range(epochs):
            m.begin_epoch()
            for name in metrics:
                m.track(name, 1.0 / (epoch + 1))
            m.end_epoch()
        m.end_run()
    m.close()
    return m


def test_torn_last_line_is_skipped_with_a_warning(tmp_path):
    m = manual_sweep(tmp_path)
    journal = tmp_path / "journal.jsonl"
    with open(journal, "a") as handle:
        handle.write('{"type":"epoch","run":2,"ep')  # the process died mid-write
    with pytest.warns(RuntimeWarning, match="skipped a torn last line"):
        loaded = load_results(tmp_path)
    pd.testing.assert_frame_equal(loaded, m.results)


def test_appending_after_a_torn_line_cuts_it_first(tmp_path):
    manual_sweep(tmp_path, runs=({"units": 4},))
    journal = tmp_path / "journal.jsonl"
    with open(journal, "a") as handle:
        handle.write('{"type":"run_sta')
    Journal(journal).write({"type": "sweep", "fields": ["units"]})
    events = read_journal(journal)  # no warning: the torn text is gone
    assert events[-1] == {"type": "sweep", "fields": ["units"]}
    assert journal.read_text().count("run_sta") == 1


def test_corrupt_line_in_the_middle_is_an_error_naming_file_and_line(tmp_path):
    manual_sweep(tmp_path)
    journal = tmp_path / "journal.jsonl"
    lines = journal.read_text().splitlines(keepends=True)
    lines[2] = "{not json\n"
    journal.write_text("".join(lines))
    with pytest.raises(JournalError, match=rf"{journal}: line 3 is not valid JSON"):
        load_results(tmp_path)


def test_a_line_that_is_json_but_no_event_is_an_error(tmp_path):
    journal = tmp_path / "journal.jsonl"
    journal.write_text('[1, 2]\n{"type": "sweep"}\n')
    with pytest.raises(JournalError, match="line 1 is not a journal event"):
        read_journal(journal)


def test_a_failed_export_leaves_the_old_file_and_no_temp_file(tmp_path, monkeypatch):
    target = tmp_path / "results.csv"
    target.write_text("old\n")

    def crash(src, dst):
        raise OSError("disk full")

    monkeypatch.setattr(os, "replace", crash)
    with pytest.raises(OSError, match="disk full"):
        atomic_write(target, "new\n")
    assert target.read_text() == "old\n"
    assert [p.name for p in tmp_path.iterdir()] == ["results.csv"]


def test_changing_columns_stay_aligned_under_one_header(tmp_path):
    m = RunManager(tmp_path, verbose=0)
    for params, metrics in (({"units": 4}, ["loss"]), ({"units": 8, "dropout": 0.5}, ["loss", "auc"])):
        m.begin_run(params)
        m.begin_epoch()
        for name in metrics:
            m.track(name, 0.5)
        m.end_epoch()
        m.end_run()
    expected = ["run", "epoch", "loss", "auc", "epoch_duration", "run_duration", "units", "dropout"]
    assert list(m.results.columns) == expected
    m.close()  # runs of microseconds: the exports are rewritten when the manager closes
    lines = (tmp_path / "results.csv").read_text().splitlines()
    assert lines[0] == ",".join(expected)
    first = lines[1].split(",")
    assert first[3] == "" and first[7] == "" and first[6] == "4"  # missing, not shifted
    csv = pd.read_csv(tmp_path / "results.csv")
    assert csv["dropout"].isna().tolist() == [True, False] and csv["auc"].tolist()[1] == 0.5
    records = json.loads((tmp_path / "results.json").read_text())
    assert records[0]["auc"] is None and records[1]["dropout"] == 0.5


def test_json_export_is_strict_json_with_null_for_nan(tmp_path):
    m = RunManager(tmp_path, verbose=0)
    m.begin_run({"units": 4})
    m.begin_epoch()
    m.track_loss(float("nan"), 1)
    m.end_epoch()
    m.end_run()

    def refuse(name):
        raise AssertionError(f"non-standard JSON constant {name}")

    records = json.loads((tmp_path / "results.json").read_text(), parse_constant=refuse)
    assert records[0]["loss"] is None
    assert load_summary(tmp_path)["status"].tolist() == ["diverged"]


def _file(name, text):
    def make(folder):
        (folder / name).write_text(text)
        return folder / name

    return make


@pytest.mark.parametrize(
    ("make", "match"),
    [
        (lambda p: p / "missing", r"does not exist"),
        (lambda p: p, r"holds no runmanager results"),
        (_file("x.txt", ""), r"give a log_dir, a .csv or a .json"),
        (_file("x.json", "{bad"), r"x.json is not valid JSON"),
        (_file("y.json", '{"a": 1}'), r"y.json is not a JSON list of records"),
    ],
)
def test_load_results_errors_name_the_path(tmp_path, make, match):
    with pytest.raises(LogDirError, match=match):
        load_results(make(tmp_path))


def test_load_results_of_a_non_path_is_a_type_error():
    with pytest.raises(TypeError, match="load_results needs a path"):
        load_results(3)


def test_load_results_of_a_folder_with_only_exports(tmp_path):
    manual_sweep(tmp_path)
    (tmp_path / "journal.jsonl").unlink()
    assert load_results(tmp_path)["run"].tolist() == [1, 1, 2, 2]
    assert load_summary(tmp_path)["status"].tolist() == ["completed", "completed"]


def test_loading_never_uses_pickle_or_eval():
    package = Path(runmanager.__file__).parent
    everything = "".join(p.read_text() for p in package.glob("*.py"))
    assert "eval(" not in everything and "exec(" not in everything
    # Pickle carries runs to worker processes only; nothing read from disk is unpickled.
    loading = "".join((package / name).read_text() for name in ("storage.py", "analysis.py", "cli.py", "naming.py"))
    for forbidden in ("import pickle", "pickle.load", "read_pickle", "literal_eval"):
        assert forbidden not in loading


def test_a_journal_written_by_version_0_1_reads_back(tmp_path):
    lines = [
        '{"type":"sweep","fields":["units"],"time":1795000000.0}',
        '{"type":"run_start","run":1,"run_id":"abc123def456","params":{"units":4},"time":1795000000.1}',
        '{"type":"epoch","run":1,"run_id":"abc123def456","epoch":1,"metrics":{"loss":0.5,"accuracy":0.75},'
        '"extras":{},"epoch_duration":0.2,"run_duration":0.3}',
        '{"type":"run_end","run":1,"run_id":"abc123def456","status":"completed","epochs":1,'
        '"run_duration":0.31,"error":null,"traceback":null}',
    ]
    (tmp_path / "journal.jsonl").write_text("\n".join(lines) + "\n")
    assert load_results(tmp_path).to_dict("records") == [
        {"run": 1, "epoch": 1, "loss": 0.5, "accuracy": 0.75, "epoch_duration": 0.2, "run_duration": 0.3, "units": 4}]
    assert load_summary(tmp_path)[["run", "status", "epochs", "run_duration"]].values.tolist() == [
        [1, "completed", 1, 0.31]]


def test_an_event_with_missing_fields_is_a_journal_error(tmp_path):
    (tmp_path / "journal.jsonl").write_text('{"type":"run_start","run":1}\n')
    with pytest.raises(JournalError, match=r"is not a valid 'run_start' event"):
        load_results(tmp_path)


def mine(folder, name):
    """A file (or a file inside a folder, for a name ending in /) the user made, not runmanager."""
    path = folder / name.rstrip("/")
    if name.endswith("/"):
        path.mkdir()
        path = path / "mine.txt"
    path.write_text("the user's own\n")
    return path


@pytest.mark.parametrize("names", [["results.csv", "summary.json"], ["report.html"], ["tensorboard/"],
                                   ["checkpoints/"], ["results.json", "summary.csv", "tensorboard/"]])
def test_a_folder_with_the_users_own_result_files_is_refused_and_left_as_it_was(tmp_path, names):
    made = [mine(tmp_path, name) for name in names]
    shown = ", ".join(names)
    with pytest.raises(LogDirError, match=rf"already holds {shown}, which runmanager did not write there "
                                          r".*Pass overwrite=True to RunManager\(\) to replace (it|them), or choose "
                                          r"another log_dir"):
        manual_sweep(tmp_path)
    with pytest.raises(LogDirError, match="already holds"):
        RunManager(tmp_path, verbose=0).sweep(lambda run, callbacks: None, {"units": [4]})
    assert all(path.read_text() == "the user's own\n" for path in made)
    assert not (tmp_path / "journal.jsonl").exists()


def test_an_empty_tensorboard_folder_or_other_files_do_not_stop_a_sweep(tmp_path):
    (tmp_path / "tensorboard").mkdir()
    notes = mine(tmp_path, "notes.txt")
    manual_sweep(tmp_path)
    assert load_summary(tmp_path)["status"].tolist() == ["completed", "completed"]
    assert notes.read_text() == "the user's own\n"


def test_overwrite_replaces_the_users_result_files_but_nothing_else(tmp_path):
    for name in ("results.csv", "summary.json", "report.html", "tensorboard/", "checkpoints/", "notes.txt"):
        mine(tmp_path, name)
    m = RunManager(tmp_path, verbose=0, overwrite=True)
    m.begin_run({"units": 4})
    m.end_run()
    m.close()
    assert sorted(p.name for p in tmp_path.iterdir()) == [
        "journal.jsonl", "notes.txt", "results.csv", "results.json", "summary.csv", "summary.json"]
    assert load_results(tmp_path / "results.csv").empty and load_summary(tmp_path / "summary.json")["units"].tolist() == [4]


def test_overwrite_also_removes_the_old_sweeps_report(tmp_path):
    manual_sweep(tmp_path)
    (tmp_path / "report.html").write_text("<html>the old sweep</html>")
    replacing = RunManager(tmp_path, verbose=0, overwrite=True)
    replacing.begin_run({"units": 16})
    replacing.end_run()
    replacing.close()
    assert not (tmp_path / "report.html").exists()
    assert load_summary(tmp_path)["units"].tolist() == [16]


def test_a_sweeps_own_report_beside_its_journal_does_not_stop_a_resume(tmp_path):
    manual_sweep(tmp_path, runs=({"units": 4},))
    (tmp_path / "report.html").write_text("<html>written by runmanager report</html>")
    summary = RunManager(tmp_path, verbose=0).sweep(lambda run, callbacks: None, {"units": [4]}, resume=True)
    assert summary["status"].tolist() == ["completed"]  # kept from before: nothing ran again
    assert (tmp_path / "report.html").exists()


def damage(journal, line_index, raw=b"\xff\xfe\x00 disk error \x80"):
    lines = journal.read_bytes().split(b"\n")
    lines[line_index] = raw
    journal.write_bytes(b"\n".join(lines))


def test_a_journal_line_that_is_not_utf8_is_a_journal_error_for_every_reader(tmp_path, capsys):
    from runmanager.cli import main

    manual_sweep(tmp_path)
    journal = tmp_path / "journal.jsonl"
    damage(journal, 2)
    with pytest.raises(JournalError, match=rf"{journal}: line 3 is not UTF-8 text .*Restore it from a backup"):
        load_summary(tmp_path)
    assert main(["show", str(tmp_path)]) == 2
    err = capsys.readouterr().err
    assert err.startswith("runmanager: error: ") and "line 3 is not UTF-8 text" in err and len(err.splitlines()) == 1
    with pytest.raises(JournalError, match="line 3 is not UTF-8 text"):
        RunManager(tmp_path, verbose=0).sweep(lambda run, callbacks: None, {"units": [4, 8]}, resume=True)


def test_a_torn_last_line_with_bytes_that_are_not_utf8_is_skipped_with_a_warning(tmp_path):
    m = manual_sweep(tmp_path)
    journal = tmp_path / "journal.jsonl"
    with open(journal, "ab") as handle:
        handle.write(b'{"type":"epoch","run":2,\xc3')  # died in the middle of a two-byte character
    with pytest.warns(RuntimeWarning, match="skipped a torn last line"):
        pd.testing.assert_frame_equal(load_results(tmp_path), m.results)


def test_load_summary_of_a_results_file_says_to_pass_the_log_dir(tmp_path):
    manual_sweep(tmp_path)
    for suffix in (".csv", ".json"):
        with pytest.raises(LogDirError, match=rf"results{suffix}' holds results \(one row per epoch\), not summary "
                                              r"\(one row per run\); read it with load_results\(\), or pass its "
                                              r"log_dir"):
            load_summary(tmp_path / f"results{suffix}")
        with pytest.raises(LogDirError, match=r"holds summary \(one row per run\), not results"):
            load_results(tmp_path / f"summary{suffix}")
    assert load_summary(tmp_path / "summary.csv")["run"].tolist() == [1, 2]


def test_an_empty_log_dir_string_is_refused_instead_of_writing_into_the_current_folder(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    with pytest.raises(LogDirError, match=r"log_dir '' is an empty path.*Pass None to keep everything in memory, "
                                          r"or a folder name"):
        RunManager("", verbose=0)
    assert list(tmp_path.iterdir()) == []

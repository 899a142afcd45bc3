"""Sinks: a user's own sink sees every event; the exports are rewritten at a bounded cost."""

from __future__ import annotations

import pandas as pd
import pytest
import training

from runmanager import InvalidArgumentTypeError, RunManager, load_results, load_summary
from runmanager.events import EpochEnded, RunEnded, RunStarted, Status
from runmanager.results import Results
from runmanager.sinks import Sink
from runmanager.sinks.exports import ExportSink


class Recorder(Sink):
    def __init__(self):
        self.seen = []

    def on_sweep_start(self, event, search):
        self.seen.append(("sweep_start", event.fields, type(search).__name__))

    def on_run_start(self, event, record):
        self.seen.append(("run_start", event.run, record.status))

    def on_epoch_end(self, event, record):
        self.seen.append(("epoch", event.run, event.epoch, len(record.epochs)))

    def on_run_end(self, event, record):
        self.seen.append(("run_end", event.run, event.status))

    def on_sweep_end(self, event):
        self.seen.append(("sweep_end", dict(event.counts), event.reason))

    def close(self):
        self.seen.append(("close",))


def one_run(m, params, epochs=2):
    m.begin_run(params)
    for epoch in range(epochs):
        m.begin_epoch()
        m.track_loss(1.0 / (epoch + 1), batch_size=4)
        m.end_epoch()
    m.end_run()


def train(run, callbacks):
    training.fit_without_model(callbacks, [{"loss": 0.5 / run.x}])


def test_a_sink_of_the_users_sees_every_event_in_order_with_the_folded_record(tmp_path):
    recorder = Recorder()
    m = RunManager(tmp_path, verbose=0, sinks=[recorder])
    one_run(m, {"x": 1})
    m.sweep(train, {"x": [2, 3]}, resume=True)
    assert [type(sink).__name__ for sink in m.sinks] == ["JournalSink", "ExportSink", "Recorder"]
    m.close()
    assert recorder.seen == [
        ("run_start", 1, Status.RUNNING), ("epoch", 1, 1, 1), ("epoch", 1, 2, 2), ("run_end", 1, "completed"),
        ("sweep_start", ("x",), "GridSearch"),
        ("run_start", 2, Status.RUNNING), ("epoch", 2, 1, 1), ("run_end", 2, "completed"),
        ("run_start", 3, Status.RUNNING), ("epoch", 3, 1, 1), ("run_end", 3, "completed"),
        ("sweep_end", {"completed": 2}, "finished"), ("close",),
    ]
    assert m.sinks == (recorder,)  # the log_dir's files are closed; the manager may open it again


def test_add_sink_takes_only_sinks():
    with pytest.raises(InvalidArgumentTypeError, match=r"add_sink\(\) takes a runmanager.sinks.Sink, got 'x'"):
        RunManager(verbose=0).add_sink("x")
    with pytest.raises(InvalidArgumentTypeError, match="takes a runmanager.sinks.Sink"):
        RunManager(verbose=0, sinks=[print])


def test_exports_of_runs_much_shorter_than_a_rewrite_wait_for_close(tmp_path):
    m = RunManager(tmp_path, verbose=0)
    one_run(m, {"x": 1})
    exports = next(sink for sink in m.sinks if isinstance(sink, ExportSink))
    assert exports.writes == 1  # the first run's files are always written
    for x in range(2, 6):  # runs of microseconds: a rewrite would cost more than 5% of them
        one_run(m, {"x": x})
    assert exports.writes == 1 and len(pd.read_csv(tmp_path / "summary.csv")) == 1
    assert len(load_summary(tmp_path)) == 5  # the journal has every run all along
    m.close()
    assert exports.writes == 2
    pd.testing.assert_frame_equal(pd.read_csv(tmp_path / "results.csv"), load_results(tmp_path), check_dtype=False)


def feed(sink, results, number):
    start = RunStarted.of(number, {"x": number})
    for event in (start, EpochEnded(number, start.run_id, 1, {"loss": 0.5}, {}, 0.1, 0.1),
                  RunEnded(number, start.run_id, Status.COMPLETED, 1, 0.1)):
        record = results.apply(event)
        getattr(sink, {RunStarted: "on_run_start", EpochEnded: "on_epoch_end", RunEnded: "on_run_end"}[
            type(event)])(event, record)


@pytest.mark.parametrize("budget, writes", [(float("inf"), 10), (0.0, 1)])
def test_the_export_budget_decides_when_a_run_end_rewrites_the_files(tmp_path, budget, writes):
    results = Results()
    sink = ExportSink(tmp_path, results, budget=budget)
    for number in range(1, 11):
        feed(sink, results, number)
    assert sink.writes == writes
    sink.flush()
    assert len(pd.read_csv(tmp_path / "summary.csv")) == 10
    assert sink.writes == writes + (budget == 0.0)
    sink.flush()  # nothing new: no rewrite
    assert sink.writes == writes + (budget == 0.0)


class CountsEpochs(Sink):
    """Keeps its own count of the epochs it saw, in the journal, across resumes."""

    def on_attach(self, store):
        self.store = store

    def on_sweep_start(self, event, search):
        self.seen = self.store.state("counter").get("epochs", 0)
        self.log_dir = self.store.log_dir

    def on_epoch_end(self, event, record):
        self.seen += 1
        self.store.save("counter", "epochs", self.seen)


def test_a_sinks_own_state_is_journaled_folded_and_found_again_by_a_resumed_sweep(tmp_path):
    from runmanager.events import SinkState, from_dict, to_dict
    from runmanager.storage import JOURNAL_NAME, read_journal, read_log_dir

    first = CountsEpochs()
    m = RunManager(tmp_path, verbose=0, sinks=[first, Recorder()])
    m.sweep(train, {"x": [1, 2]})
    m.close()
    assert first.seen == 2 and first.log_dir == tmp_path
    lines = [line for line in read_journal(tmp_path / JOURNAL_NAME) if line["type"] == "sink_state"]
    assert lines == [{"type": "sink_state", "sink": "counter", "key": "epochs", "value": 1},
                     {"type": "sink_state", "sink": "counter", "key": "epochs", "value": 2}]
    assert from_dict(lines[0]) == SinkState("counter", "epochs", 1) and to_dict(SinkState("c", "k", [1])) == {
        "type": "sink_state", "sink": "c", "key": "k", "value": [1]}
    assert read_log_dir(tmp_path).sink_state == {"counter": {"epochs": 2}}  # the latest value of each key
    # A resumed sweep's sink starts from the journal's value; other sinks never see the state.
    again, other = CountsEpochs(), Recorder()
    m = RunManager(tmp_path, verbose=0, sinks=[again, other])
    m.sweep(train, {"x": [1, 2, 3]}, resume=True)
    m.close()
    assert again.seen == 3 and read_log_dir(tmp_path).sink_state == {"counter": {"epochs": 3}}
    assert [kind for kind, *_ in other.seen] == ["sweep_start", "run_start", "epoch", "run_end", "sweep_end", "close"]
    assert len(load_results(tmp_path)) == 3  # the state is no row

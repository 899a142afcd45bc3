"""The Sweep's logic on in-memory workers: planning, resume, the failure limit, scheduling.

No model is built and no process is started: ``scripted`` drives the callbacks as
``model.fit`` would, and InMemoryExecutor stands in for worker processes, so each
test runs in milliseconds while going through the same driver code as real workers.
"""

from __future__ import annotations

import math
import random

import pandas as pd
import pytest
import training

from runmanager import ColumnClashError, RunBuilder, RunManager, SweepError, load_results, load_summary
from runmanager.events import EpochEnded, RunEnded, RunStarted, Status
from runmanager.executors.memory import InMemoryExecutor
from runmanager.recorder import Recorder
from runmanager.results import Results, fold
from runmanager.search import RunList, Search
from runmanager.sinks import SinkList
from runmanager.sweep import Sweep, Tally


def scripted(run, callbacks):
    """Two epochs (or ``num_epochs``) of made-up metrics from the params, as ``fit`` would log them;
    ``fail`` raises in epoch 1, ``diverge`` gives a NaN loss. ``draw`` is a random number."""
    params = run._asdict()
    draw = random.random()

    def logs(epoch):
        if params.get("fail"):
            raise RuntimeError(f"asked to fail: {params['x']}")
        loss = math.nan if params.get("diverge") else 1.0 / (params["x"] + epoch + 1)
        return {"loss": loss, "val_accuracy": params["x"] / 10 + epoch / 100, "draw": draw}

    training.fit_without_model(callbacks, [logs] * (params.get("num_epochs") or 2))


def sweep(log_dir, params, executor=None, **kwargs):
    m = RunManager(log_dir, verbose=0)
    try:
        return m.sweep(scripted, params, executor=executor or InMemoryExecutor(2), **kwargs)
    finally:
        m.close()


def events_for(number, params, status=None, epochs=1):
    start = RunStarted.of(number, params)
    events = [start]
    events += [EpochEnded(number, start.run_id, e, {"loss": 1.0}, {}, 0.1, 0.1 * e) for e in range(1, epochs + 1)]
    if status is not None:
        events.append(RunEnded(number, start.run_id, status, epochs, 0.1 * epochs))
    return events


class Recording(Search):
    """A grid that remembers what it was asked and told, and how many runs were out at each ask."""

    def __init__(self, values, capacity_seen):
        self.fields = ("x",)
        self.values = list(values)
        self.out = 0
        self.outstanding = capacity_seen
        self.told = []
        self.started_with = None

    def start(self, results):
        self.started_with = sorted(results.runs)

    def ask(self):
        if not self.values:
            return None
        self.outstanding.append(self.out)
        self.out += 1
        return self.make_run({"x": self.values.pop(0)})

    def tell(self, run, record):
        self.out -= 1
        self.told.append((run.x, record.status))


def test_planning_keeps_numbers_skips_finished_runs_and_numbers_new_ones_after_the_last():
    done = {"x": 1}, {"x": 2}, {"x": 3}, {"x": 4}
    results = fold(events_for(1, done[0], Status.COMPLETED) + events_for(2, done[1], Status.FAILED)
                   + events_for(3, done[2]) + events_for(7, done[3], Status.INTERRUPTED))
    grid = RunBuilder({"x": [1, 2, 3, 4, 5, 3]})
    for retry, expected in ((False, [(3, 3), (7, 4), (8, 5)]), (True, [(2, 2), (3, 3), (7, 4), (8, 5)])):
        recorder = Recorder(SinkList())
        recorder.results = results
        plan = Sweep(RunManager(verbose=0), scripted, RunList(list(grid)), None, recorder, seed=5,
                     retry_failed=retry)
        tasks = iter(plan.next_task, None)
        assert [(task.number, task.run.x) for task in tasks] == expected
    assert plan.next_task() is None


def test_tally_stops_after_the_limit_of_failures_in_a_row_and_a_success_resets_it():
    tally = Tally(max_consecutive_failures=2)
    for number, status in enumerate((Status.FAILED, Status.COMPLETED, Status.INTERRUPTED, Status.DIVERGED), 1):
        tally.add(number, status, "x")
    assert tally.counts == {"failed": 1, "completed": 1, "interrupted": 1, "diverged": 1}
    with pytest.raises(SweepError, match=r"stopped after 2 failed runs in a row; the last one, run 9, ended with E"):
        tally.add(8, Status.FAILED, "x")
        tally.add(9, Status.FAILED, "E")


def test_results_fold_a_rerun_afresh_and_count_rows_without_scanning():
    results = Results()
    for event in events_for(1, {"x": 1}, Status.INTERRUPTED, epochs=2) + events_for(2, {"x": 2}, Status.COMPLETED):
        results.apply(event)
    assert results.rows_count == 3 and results.next_number == 3
    for event in events_for(1, {"x": 1}, Status.COMPLETED, epochs=1):  # the rerun of run 1
        results.apply(event)
    assert results.rows_count == 2 and len(results.runs[1].epochs) == 1
    results.forget(2)
    assert results.rows_count == 1 and list(results.runs) == [1] and results.next_number == 3


def test_a_list_of_sampled_runs_is_swept_and_resumed_on_in_memory_workers(tmp_path):
    grid = RunBuilder({"x": list(range(1, 21)), "num_epochs": [1, 2]})
    runs = grid.sample(6, seed=0)
    summary = sweep(tmp_path, runs)
    assert [tuple(r) for r in summary[["x", "num_epochs"]].itertuples(index=False)] == [tuple(r) for r in runs]
    assert set(summary["status"]) == {"completed"}
    assert load_summary(tmp_path)["epochs"].tolist() == [r.num_epochs for r in runs]
    before = load_results(tmp_path)
    again = sweep(tmp_path, grid.sample(6, seed=0), resume=True)
    pd.testing.assert_frame_equal(load_results(tmp_path), before)  # nothing ran twice
    assert again["run"].tolist() == [1, 2, 3, 4, 5, 6]


def test_workers_never_get_more_runs_than_they_have_room_for_and_the_search_is_told_each_end(tmp_path):
    outstanding = []
    search = Recording(range(1, 8), outstanding)
    m = RunManager(tmp_path, verbose=0)
    summary = m.sweep(scripted, search, executor=InMemoryExecutor(3, order="lifo"))
    assert max(outstanding) == 2 and outstanding[:3] == [0, 1, 2]  # 3 asked at once, then one per end
    assert sorted(x for x, _ in search.told) == list(range(1, 8))
    assert search.told[0][0] == 3  # lifo: the last run given out ended first
    assert all(status == Status.COMPLETED for _, status in search.told)
    assert search.started_with == []
    assert summary["run"].tolist() == list(range(1, 8))
    rows = load_results(tmp_path)
    assert rows.groupby("run")["epoch"].apply(list).tolist() == [[1, 2]] * 7  # no interleaving shows


def test_the_failure_limit_stops_the_sweep_and_records_the_runs_in_flight(tmp_path):
    params = {"x": [1, 2, 3, 4, 5, 6], "fail": [True]}
    with pytest.raises(SweepError, match="3 failed runs in a row"):
        sweep(tmp_path, params, executor=InMemoryExecutor(2), max_consecutive_failures=3)
    summary = load_summary(tmp_path)
    assert summary["status"].tolist().count("failed") == 3
    # The run still in flight when the sweep stopped is recorded, not left running.
    assert "running" not in set(summary["status"])
    assert (summary.loc[summary["status"] == "interrupted", "error"] == "sweep stopped: SweepError").all()
    assert (tmp_path / "summary.csv").exists()


def test_a_success_between_failures_keeps_the_sweep_going(tmp_path):
    runs = RunBuilder([{"x": [1, 2], "fail": [True]}, {"x": [3], "fail": [False]},
                       {"x": [4, 5], "fail": [True]}, {"x": [6], "fail": [False]}])
    summary = sweep(tmp_path, runs, executor=InMemoryExecutor(1), max_consecutive_failures=3)
    assert summary["status"].tolist() == ["failed", "failed", "completed", "failed", "failed", "completed"]
    assert summary["error"][0] == "RuntimeError: asked to fail: 1"


def test_a_dead_worker_interrupts_its_run_keeps_its_epoch_and_resume_reruns_only_it(tmp_path):
    params = {"x": [1, 2, 3]}
    summary = sweep(tmp_path, params, executor=InMemoryExecutor(2, die_after_first_epoch=[2]))
    assert summary["status"].tolist() == ["completed", "interrupted", "completed"]
    assert summary["epochs"].tolist() == [2, 1, 2]
    assert summary["error"][1] == "worker died (in-memory test)"
    again = sweep(tmp_path, params, executor=InMemoryExecutor(2), resume=True)
    assert again["status"].tolist() == ["completed"] * 3
    rows = load_results(tmp_path)
    assert rows.loc[rows["run"] == 2, "epoch"].tolist() == [1, 2]  # the rerun replaced the lost epoch


def test_divergence_stops_the_run_and_the_seed_travels_with_each_task(tmp_path):
    summary = sweep(tmp_path / "a", {"x": [1, 2], "diverge": [False, True]}, seed=3)
    assert summary["status"].tolist() == ["completed", "diverged", "completed", "diverged"]
    assert summary["epochs"].tolist() == [2, 1, 2, 1]  # stopped at the NaN epoch
    assert summary["draw"].nunique() == 1  # every run was seeded alike, in its worker
    assert sweep(tmp_path / "b", {"x": [1, 2]})["draw"].nunique() == 2


def test_workers_are_recycled_after_max_runs_per_worker(tmp_path):
    executor = InMemoryExecutor(1, max_runs_per_worker=2)
    m = RunManager(tmp_path, verbose=0)
    m.sweep(scripted, {"x": [1, 2, 3, 4, 5]}, executor=executor)
    assert m.summary()["status"].tolist() == ["completed"] * 5
    assert executor.workers_started == 3  # runs 1-2, 3-4, 5



def test_the_largest_seed_with_repeats_seeds_every_repeat_as_numpy_takes(tmp_path):
    summary = sweep(tmp_path / "a", {"x": [1]}, seed=2**32 - 2, repeats=2)
    assert summary["status"].tolist() == ["completed", "completed"]
    last = sweep(tmp_path / "b", {"x": [1]}, seed=2**32 - 1)
    assert summary["draw"][1] == last["draw"][0] != summary["draw"][0]  # repeat 2 was seeded 2**32 - 1


@pytest.mark.parametrize("executor", [None, "sequential"], ids=["in-memory workers", "sequential"])
def test_a_param_clashing_with_a_logged_metric_stops_the_sweep_at_its_first_run(tmp_path, executor):
    with pytest.raises(ColumnClashError, match=r"^Run 1 failed: Metric 'draw' has the name of a parameter; rename "
                                               r"the metric or the parameter\. Every run of this sweep would fail "
                                               r"the same way, so the sweep stopped\.$"):
        sweep(tmp_path, {"x": [1, 2, 3, 4, 5], "draw": [0.5]}, executor=executor, max_consecutive_failures=0)
    statuses = load_summary(tmp_path)["status"].tolist()
    # Run 2 was in flight on the second worker when run 1 ended: it is stopped, and no run starts after.
    assert statuses == (["failed"] if executor else ["failed", "interrupted"])

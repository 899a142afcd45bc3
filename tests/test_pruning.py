"""Pruning: each rule's decisions on crafted curves, on every executor; resume; bad input; a real Keras run."""

from __future__ import annotations

import pytest
import training

from runmanager import (
    InvalidArgumentError,
    InvalidArgumentTypeError,
    RunManager,
    SweepError,
    load_results,
    load_summary,
)
from runmanager.errors import MissingMetricError
from runmanager.executors.memory import InMemoryExecutor
from runmanager.pruning import MedianPruner, Pruner, SuccessiveHalvingPruner


def flat(run, callbacks):
    """``num_epochs`` epochs whose val_accuracy is ``run.score`` throughout (val_loss its complement)."""
    training.fit_without_model(callbacks, [{"val_accuracy": run.score, "val_loss": 1 - run.score}] * run.num_epochs)


def flat_runs(scores, epochs):
    return [{"score": [score], "num_epochs": [epochs]} for score in scores]


# Worked by hand: rungs at epochs 1, 3 and 9; while fewer than 3 runs reached a rung only the best
# goes on, then the top third.
ASHA_SCORES = [0.5, 0.7, 0.6, 0.9, 0.4, 0.8]
ASHA_STATUSES = ["completed", "completed", "pruned", "completed", "pruned", "pruned"]
ASHA_EPOCHS = [9, 9, 1, 9, 1, 3]
# Median of the earlier runs at the same epoch, from epoch 2 on, once 2 runs reached it; equal is kept.
MEDIAN_SCORES = [0.5, 0.7, 0.6, 0.4, 0.8]
MEDIAN_STATUSES = ["completed", "completed", "completed", "pruned", "completed"]
MEDIAN_EPOCHS = [4, 4, 4, 2, 4]


def sweep(log_dir, scores, epochs, pruner, executor="sequential", **kwargs):
    m = RunManager(log_dir, verbose=0)
    summary = m.sweep(flat, flat_runs(scores, epochs), executor=executor, pruner=pruner, **kwargs)
    m.close()
    return summary


@pytest.mark.parametrize("executor", ["sequential", "memory"])
def test_successive_halving_decides_exactly_as_worked_by_hand(tmp_path, executor):
    runner = InMemoryExecutor(1) if executor == "memory" else executor
    summary = sweep(tmp_path, ASHA_SCORES, 9, SuccessiveHalvingPruner("val_accuracy", reduction_factor=3),
                    executor=runner)
    assert summary["status"].tolist() == ASHA_STATUSES
    assert summary["epochs"].tolist() == ASHA_EPOCHS
    assert load_results(tmp_path).groupby("run").size().tolist() == ASHA_EPOCHS  # the epochs are kept


def test_the_median_rule_decides_exactly_as_worked_by_hand_with_a_loss_too(tmp_path):
    summary = sweep(tmp_path / "acc", MEDIAN_SCORES, 4, MedianPruner("val_accuracy", warmup_epochs=1, min_runs=2))
    assert summary["status"].tolist() == MEDIAN_STATUSES and summary["epochs"].tolist() == MEDIAN_EPOCHS
    summary = sweep(tmp_path / "loss", MEDIAN_SCORES, 4, MedianPruner("val_loss", warmup_epochs=1, min_runs=2))
    assert summary["status"].tolist() == MEDIAN_STATUSES  # val_loss is judged lower-is-better


def test_decisions_are_made_in_the_driver_for_worker_processes_too(tmp_path):
    summary = sweep(tmp_path / "asha", ASHA_SCORES, 9, SuccessiveHalvingPruner("val_accuracy"),
                    executor="processes", workers=1)
    assert summary["status"].tolist() == ASHA_STATUSES and summary["epochs"].tolist() == ASHA_EPOCHS
    summary = sweep(tmp_path / "median", MEDIAN_SCORES, 4, MedianPruner("val_accuracy", min_runs=2),
                    executor="processes", workers=2)
    assert summary["status"].tolist().count("pruned") >= 1 and len(summary) == 5


def test_resume_keeps_pruned_runs_and_rebuilds_the_pruner_from_the_journal(tmp_path):
    sweep(tmp_path, ASHA_SCORES[:3], 9, SuccessiveHalvingPruner("val_accuracy"))
    calls = []

    def counted(run, callbacks):
        calls.append(run.score)
        flat(run, callbacks)

    m = RunManager(tmp_path, verbose=0)
    summary = m.sweep(counted, flat_runs(ASHA_SCORES, 9), resume=True, pruner=SuccessiveHalvingPruner("val_accuracy"))
    assert calls == ASHA_SCORES[3:]  # the pruned run 3 is not run again
    assert summary["status"].tolist() == ASHA_STATUSES and summary["epochs"].tolist() == ASHA_EPOCHS


class StopHighLoss(Pruner):
    """The docs' example: stop a run whose val_loss is above 0.45 after epoch 2."""

    def __init__(self):
        super().__init__("val_loss")

    def report(self, run, epoch, value):
        return epoch > 2 and value > 0.45


def test_a_rule_of_ones_own_is_a_few_lines(tmp_path):
    summary = sweep(tmp_path, [0.5, 0.6, 0.4], 5, StopHighLoss())
    assert summary["status"].tolist() == ["pruned", "completed", "pruned"]
    assert summary["epochs"].tolist() == [3, 5, 3]


def test_a_metric_the_runs_never_log_stops_the_sweep_at_its_first_run_naming_the_metrics_there_are(tmp_path):
    with pytest.raises(MissingMetricError, match=r"^Run 1 failed: The pruner judges 'val_acc', .* pass one of those "
                                                 r"to the pruner\. Every run of this sweep would fail the same way, "
                                                 r"so the sweep stopped\.$") as error:
        sweep(tmp_path, ASHA_SCORES, 3, MedianPruner("val_acc"))
    assert ".." not in str(error.value)
    summary = load_summary(tmp_path)
    assert summary["status"].tolist() == ["failed"]
    assert summary["error"][0] == ("MissingMetricError: The pruner judges 'val_acc', which run 1 did not log "
                                   "at epoch 1 (it logged val_accuracy, val_loss); pass one of those to the pruner.")


def test_the_failure_limit_quotes_the_runs_error_as_one_sentence(tmp_path):
    m = RunManager(tmp_path, verbose=0)
    with pytest.raises(SweepError, match=r"ended with RuntimeError: run asked to fail: disk full\. Something is "
                                         r"wrong for every run") as error:
        m.sweep(training.train, {"units": [4], "fail": ["a", "b", "disk full."]}, max_consecutive_failures=3)
    assert ".." not in str(error.value)


def test_the_base_pruner_is_refused_before_any_run_and_says_what_to_implement(tmp_path):
    with pytest.raises(InvalidArgumentTypeError, match=r"^The pruner <.*Pruner object.*> implements neither "
                                                       r"report\(run, epoch, value\) nor prune\(results, record\), "
                                                       r"one of which decides whether a run stops; subclass "
                                                       r"runmanager.pruning.Pruner and override one, or use "
                                                       r"MedianPruner or SuccessiveHalvingPruner\.$"):
        sweep(tmp_path, [0.5], 2, Pruner("val_accuracy"))
    assert not (tmp_path / "journal.jsonl").exists()
    with pytest.raises(NotImplementedError, match=r"^Pruner must implement report\(run, epoch, value\) -> bool, or "
                                                  r"prune\(results, record\) -> bool to compare runs\.$"):
        Pruner("val_accuracy").report(1, 1, 0.5)


def test_a_worker_learns_that_the_metric_is_missing_and_its_run_fails(tmp_path):
    m = RunManager(tmp_path, verbose=0)
    with pytest.raises(MissingMetricError, match="Every run of this sweep would fail the same way"):
        m.sweep(flat, flat_runs([0.5, 0.6], 2), executor=InMemoryExecutor(1), pruner=MedianPruner("val_acc"))
    summary = m.summary()
    assert summary["status"].tolist() == ["failed"] and "did not log at epoch 1" in summary["error"][0]


@pytest.mark.parametrize("make, error, match", [
    (lambda: MedianPruner("val_accuracy", "best"), InvalidArgumentError, r"mode must be 'min' or 'max', got 'best'"),
    (lambda: MedianPruner("val_accuracy", min_runs=0), InvalidArgumentError, r"min_runs must be an int of at least 1"),
    (lambda: MedianPruner("val_accuracy", warmup_epochs=-1), InvalidArgumentError, r"warmup_epochs must be an int"),
    (lambda: SuccessiveHalvingPruner("val_accuracy", reduction_factor=1), InvalidArgumentError,
     r"reduction_factor must be an int of at least 2, got 1"),
    (lambda: SuccessiveHalvingPruner("val_accuracy", min_epochs=0), InvalidArgumentError,
     r"min_epochs must be an int of at least 1, got 0"),
    (lambda: SuccessiveHalvingPruner(""), InvalidArgumentError, r"needs the name of a logged metric"),
])
def test_bad_pruner_input_is_refused(make, error, match):
    with pytest.raises(error, match=match):
        make()


def test_a_pruner_that_is_not_a_pruner_is_refused_before_any_run(tmp_path):
    with pytest.raises(InvalidArgumentTypeError, match=r"pruner must be a runmanager Pruner"):
        RunManager(tmp_path, verbose=0).sweep(flat, flat_runs([0.5], 2), pruner="median")


def test_a_custom_loop_sees_the_decision_through_run_pruned():
    m = RunManager(verbose=0)
    m.begin_run({"lr": 0.1})
    for epoch in range(5):
        m.begin_epoch()
        m.track("val_accuracy", 0.1)
        m.end_epoch()
        if epoch == 1:
            m.current_run.prune()  # what a sweep's pruner does
        if m.run_pruned:
            break
    m.end_run()
    assert m.summary()[["status", "epochs"]].values.tolist() == [["pruned", 2]]


class PruneFirstRunAtEpochOne(Pruner):
    def __init__(self):
        super().__init__("val_accuracy")

    def report(self, run, epoch, value):
        return run == 1


def test_a_pruned_keras_run_shows_in_results_summary_and_tensorboard(tmp_path):
    pytest.importorskip("tensorboard")
    from tensorboard.backend.event_processing.event_accumulator import EventAccumulator
    from tensorboard.plugins.hparams import api_pb2, metadata

    m = RunManager(tmp_path, verbose=0, tensorboard=True)
    summary = m.sweep(training.train, {"units": [4, 8]}, pruner=PruneFirstRunAtEpochOne(), seed=0)
    m.close()
    assert summary[["status", "epochs"]].values.tolist() == [["pruned", 1], ["completed", 3]]
    assert load_results(tmp_path).groupby("run").size().tolist() == [1, 3]
    folder = next((tmp_path / "tensorboard").glob("run-001-*"))
    content = EventAccumulator(str(folder)).Reload().PluginTagToContent(metadata.PLUGIN_NAME)
    end = metadata.parse_session_end_info_plugin_data(content[metadata.SESSION_END_INFO_TAG])
    assert end.status == api_pb2.STATUS_UNKNOWN
    steps = [e.step for e in EventAccumulator(str(folder / "validation")).Reload().Scalars("accuracy")]
    assert steps == [1]


@pytest.mark.slow
def test_decisions_reach_ray_actors_too(tmp_path):
    summary = sweep(tmp_path, ASHA_SCORES, 9, SuccessiveHalvingPruner("val_accuracy"), executor="ray", workers=1)
    assert summary["status"].tolist() == ASHA_STATUSES and summary["epochs"].tolist() == ASHA_EPOCHS


class Recorder(Pruner):
    """Never stops a run; remembers every (run, epoch) it was told."""

    def __init__(self):
        super().__init__("val_accuracy")
        self.told = []

    def report(self, run, epoch, value):
        self.told.append((run, epoch))
        return False


def test_a_run_retried_after_its_worker_died_is_judged_once_per_epoch(tmp_path):
    pruner = Recorder()
    summary = sweep(tmp_path, [0.5, 0.6, 0.7], 2, pruner,
                    executor=InMemoryExecutor(2, die_after_first_epoch=[2], max_retries=1))
    assert summary["status"].tolist() == ["completed"] * 3  # run 2 ran again after its worker died
    assert sorted(pruner.told) == [(1, 1), (1, 2), (2, 1), (2, 2), (3, 1), (3, 2)]  # its epoch 1 ran twice, told once
    assert load_results(tmp_path).groupby("run")["epoch"].apply(list).tolist() == [[1, 2]] * 3


def test_a_pruner_with_several_objectives_is_refused_before_any_run(tmp_path):
    """A pruner judges one metric; a run it stops is never on a Pareto front of several."""
    from runmanager import OptunaSearch

    search = OptunaSearch({"score": [0.5, 0.7]}, 2, metric=["val_accuracy", "val_loss"], mode=["max", "min"])
    m = RunManager(tmp_path / "search", verbose=0)
    with pytest.raises(InvalidArgumentError, match=r"A pruner judges runs by one metric \('val_accuracy'\), and this "
                                                   r"sweep has several objectives \['val_accuracy', 'val_loss'\]"):
        m.sweep(flat, search, pruner=MedianPruner("val_accuracy"))
    with pytest.raises(InvalidArgumentError, match=r"several objectives \['val_loss', 'val_accuracy'\].*Drop pruner="):
        m.sweep(flat, flat_runs([0.5], 2), pruner=SuccessiveHalvingPruner("val_loss"),
                metric=["val_loss", "val_accuracy"])
    assert not (tmp_path / "search" / "journal.jsonl").exists()
    # One objective with a pruner is as before.
    summary = m.sweep(flat, flat_runs([0.5, 0.7, 0.6], 4), pruner=MedianPruner("val_accuracy"),
                      metric=["val_accuracy"])
    assert summary["status"].tolist() == ["completed"] * 3

"""TensorBoard output, read back by real TensorBoard: its event file readers and a live server."""

from __future__ import annotations

import contextlib
import functools
import json
import queue
import signal
import socket
import subprocess
import sys
import threading
import time
import urllib.request
from collections import OrderedDict
from collections.abc import Callable, Iterator
from pathlib import Path
from types import SimpleNamespace
from typing import Any

import numpy as np
import pytest
import training

pytest.importorskip("tensorboard")

from tensorboard.backend.event_processing.event_accumulator import EventAccumulator  # noqa: E402
from tensorboard.plugins.hparams import api_pb2, metadata  # noqa: E402

from runmanager import RunBuilder, RunManager  # noqa: E402
from runmanager.naming import safe_name  # noqa: E402

# --------------------------------------------------------------------------------------
# A real sweep: a tiny Keras model on 200 rows, 2 epochs, one run that raises
# --------------------------------------------------------------------------------------
_RNG = np.random.default_rng(0)
X = _RNG.normal(size=(200, 8)).astype("float32")
Y = (X[:, 0] + X[:, 1] > 0).astype("int32")
PARAMS = OrderedDict(units=[4, 8], lr=[0.1, 0.01], optimizer=["adam", "sgd"], bias=[True])
FAILING = {"units": 8, "lr": 0.1, "optimizer": "sgd", "bias": True}
#: Where each metric is written: (folder under the run's folder, tag), as Keras's TensorBoard does.
LOCATIONS = {
    "loss": ("train", "loss"),
    "accuracy": ("train", "accuracy"),
    "val_loss": ("validation", "loss"),
    "val_accuracy": ("validation", "accuracy"),
}
ALL_STATUSES = ["STATUS_FAILURE", "STATUS_RUNNING", "STATUS_SUCCESS", "STATUS_UNKNOWN"]
WAIT_S = 60


def train(run: Any, callbacks: list[Any]) -> None:
    import keras

    if run._asdict() == FAILING:
        raise RuntimeError("this run fails on purpose")
    model = keras.Sequential([
        keras.Input((8,)),
        keras.layers.Dense(run.units, activation="relu", use_bias=run.bias),
        keras.layers.Dense(2, activation="softmax"),
    ])
    optimizer = keras.optimizers.Adam(run.lr) if run.optimizer == "adam" else keras.optimizers.SGD(run.lr)
    model.compile(optimizer=optimizer, loss="sparse_categorical_crossentropy", metrics=["accuracy"])
    model.fit(X, Y, epochs=2, batch_size=50, validation_split=0.25, callbacks=callbacks, verbose=0)


def train_by_hand(run: Any, callbacks: list[Any], fails: Callable[[Any], bool] = lambda run: False) -> None:
    """A custom training loop with no model: it drives the sweep's callbacks itself."""
    if fails(run):
        raise RuntimeError("fails before its first epoch")
    training.fit_without_model(callbacks, [{"loss": 1.0 / (epoch + 1)} for epoch in range(2)])


# --------------------------------------------------------------------------------------
# Reading event files with TensorBoard's own reader
# --------------------------------------------------------------------------------------
def _accumulator(folder: Path) -> EventAccumulator:
    accumulator = EventAccumulator(str(folder))
    accumulator.Reload()
    return accumulator


def scalars(folder: Path, tag: str) -> list[tuple[int, float]]:
    return [(event.step, event.value) for event in _accumulator(folder).Scalars(tag)]


def session(folder: Path) -> tuple[Any, Any]:
    """The run's SessionStartInfo and SessionEndInfo (None while it has not ended)."""
    content = _accumulator(folder).PluginTagToContent(metadata.PLUGIN_NAME)
    start = metadata.parse_session_start_info_plugin_data(content[metadata.SESSION_START_INFO_TAG])
    end = content.get(metadata.SESSION_END_INFO_TAG)
    return start, None if end is None else metadata.parse_session_end_info_plugin_data(end)


def hparam_values(start: Any) -> dict[str, Any]:
    return {name: getattr(value, value.WhichOneof("kind")) for name, value in start.hparams.items()}


def experiment(log_dir: Path) -> Any:
    """The one hparams_config of ``log_dir``."""
    folders = sorted((log_dir / "tensorboard").glob("hparams-config-*"))
    assert len(folders) == 1, folders
    content = _accumulator(folders[0]).PluginTagToContent(metadata.PLUGIN_NAME)
    return metadata.parse_experiment_plugin_data(content[metadata.EXPERIMENT_TAG])


def run_folder(log_dir: Path, number: int, params: dict[str, Any]) -> Path:
    return log_dir / "tensorboard" / safe_name(number, params)


# --------------------------------------------------------------------------------------
# A real TensorBoard server on a free loopback port
# --------------------------------------------------------------------------------------
def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


@contextlib.contextmanager
def tensorboard_server(logdir: Path, *flags: str) -> Iterator[str]:
    """``python -m tensorboard.main`` on 127.0.0.1; yields its base URL; always stopped."""
    port = free_port()
    log = logdir.parent / f"tensorboard-{port}.log"
    with open(log, "wb") as output:
        process = subprocess.Popen(
            [sys.executable, "-m", "tensorboard.main", "--logdir", str(logdir), "--host", "127.0.0.1",
             "--port", str(port), *flags],
            stdout=output, stderr=subprocess.STDOUT,
        )
    url = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + WAIT_S
        while True:
            try:
                urllib.request.urlopen(f"{url}/data/plugins_listing", timeout=2).read()
                break
            except OSError:
                if process.poll() is not None or time.monotonic() > deadline:
                    pytest.fail(f"TensorBoard did not start:\n{log.read_text(errors='replace')[-3000:]}")
                time.sleep(0.2)
        yield url
    finally:
        process.terminate()
        try:
            process.wait(10)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait(10)


def post(url: str, route: str, body: dict[str, Any]) -> Any:
    """POST to the HParams plugin as TensorBoard's frontend does: a JSON request body."""
    request = urllib.request.Request(
        f"{url}/data/plugin/hparams/{route}", data=json.dumps(body).encode(),
        headers={"Content-Type": "application/json"}, method="POST",
    )
    with urllib.request.urlopen(request, timeout=30) as response:
        return json.loads(response.read())


def session_groups(url: str, experiment: dict[str, Any]) -> list[dict[str, Any]]:
    col_params = [{"hparam": info["name"], "includeInResult": True} for info in experiment["hparamInfos"]]
    col_params += [{"metric": info["name"], "includeInResult": True} for info in experiment["metricInfos"]]
    request = {"experimentName": "", "allowedStatuses": ALL_STATUSES, "colParams": col_params,
               "startIndex": 0, "sliceSize": 1000}
    return post(url, "session_groups", request)["sessionGroups"]


def wait_for(condition: Callable[[], Any], what: str, timeout: float = WAIT_S) -> Any:
    deadline = time.monotonic() + timeout
    while True:
        value = condition()
        if value:
            return value
        if time.monotonic() > deadline:
            pytest.fail(f"Timed out after {timeout}s waiting for {what}.")
        time.sleep(0.25)


# --------------------------------------------------------------------------------------
# The shared sweep, and TensorBoard serving it
# --------------------------------------------------------------------------------------
@pytest.fixture(scope="module")
def sweep(tmp_path_factory: pytest.TempPathFactory) -> Iterator[SimpleNamespace]:
    log_dir = tmp_path_factory.mktemp("sweep")
    manager = RunManager(log_dir, tensorboard=True, verbose=0)
    try:
        summary = manager.sweep(train, PARAMS, seed=0)
        runs = {number: run._asdict() for number, run in enumerate(RunBuilder(PARAMS), start=1)}
        yield SimpleNamespace(log_dir=log_dir, summary=summary, results=manager.results, runs=runs)
    finally:
        manager.close()


@pytest.fixture(scope="module")
def server(sweep: SimpleNamespace) -> Iterator[str]:
    with tensorboard_server(sweep.log_dir / "tensorboard") as url:
        yield url


def test_sweep_ran_with_one_failed_run(sweep: SimpleNamespace) -> None:
    statuses = dict(zip(sweep.summary["run"], sweep.summary["status"], strict=True))
    assert len(statuses) == 8
    failed = [number for number, params in sweep.runs.items() if params == FAILING]
    assert [n for n, status in statuses.items() if status == "failed"] == failed


def test_hparams_dashboard_shows_every_run_with_its_metrics_and_status(
    sweep: SimpleNamespace, server: str
) -> None:
    """Through TensorBoard's HTTP API: every hparam, the four metrics, one session per run."""
    config = post(server, "experiment", {"experimentName": ""})
    hparams = {info["name"]: info for info in config["hparamInfos"]}
    assert set(hparams) == set(PARAMS)
    assert hparams["units"]["type"] == "DATA_TYPE_FLOAT64" and hparams["units"]["domainDiscrete"] == [4, 8]
    assert hparams["optimizer"]["domainDiscrete"] == ["adam", "sgd"]
    assert hparams["bias"]["domainDiscrete"] == [True]
    assert hparams["lr"]["differs"] and not hparams["bias"]["differs"]
    metrics = {info["displayName"]: info["name"] for info in config["metricInfos"]}
    assert set(metrics) == set(LOCATIONS)
    for name, (group, tag) in LOCATIONS.items():
        assert metrics[name] == {"group": group, "tag": tag}

    groups = session_groups(server, config)
    sessions = {s["name"]: (group, s) for group in groups for s in group["sessions"]}
    expected = {safe_name(number, params): params for number, params in sweep.runs.items()}
    assert set(sessions) == set(expected) and len(sessions) == 8
    summary = sweep.summary.set_index("run")
    for number, params in sweep.runs.items():
        group, found = sessions[safe_name(number, params)]
        assert group["hparams"] == params
        values = {(v["name"]["group"], v["name"]["tag"]): v for v in found.get("metricValues", [])}
        if params == FAILING:
            assert found["status"] == "STATUS_FAILURE"
            assert values == {}  # it raised before its first epoch
            continue
        assert found["status"] == "STATUS_SUCCESS"
        assert set(values) == set(LOCATIONS.values())
        for name, location in LOCATIONS.items():
            assert values[location]["trainingStep"] == 2
            assert values[location]["value"] == pytest.approx(summary.loc[number, name], rel=1e-6)


def test_scalars_match_the_results_epoch_by_epoch(sweep: SimpleNamespace) -> None:
    results = sweep.results
    for number, params in sweep.runs.items():
        folder = run_folder(sweep.log_dir, number, params)
        rows = results[results["run"] == number]
        if params == FAILING:
            assert rows.empty and not (folder / "train").exists()
            continue
        assert rows["epoch"].tolist() == [1, 2]
        for name, (group, tag) in LOCATIONS.items():
            steps, values = zip(*scalars(folder / group, tag), strict=True)
            assert list(steps) == rows["epoch"].tolist()
            assert list(values) == pytest.approx(rows[name].tolist(), rel=1e-6)
        start, end = session(folder)
        assert hparam_values(start) == params
        assert end.status == api_pb2.STATUS_SUCCESS


def test_manual_runs_without_a_sweep_write_hparams_and_scalars(tmp_path: Path) -> None:
    m = RunManager(tmp_path, tensorboard=True, verbose=0)
    runs = [{"lr": 0.1, "optimizer": "adam"}, {"lr": 0.01, "optimizer": "sgd"}]
    for params in runs:
        m.begin_run(params)
        for epoch in range(1, 4):
            m.begin_epoch()
            m.track_loss(1.0 / epoch, batch_size=10)
            m.track("val_loss", 2.0 / epoch)
            m.end_epoch()
        m.end_run()
    m.close()
    for number, params in enumerate(runs, start=1):
        folder = run_folder(tmp_path, number, params)
        start, end = session(folder)
        assert hparam_values(start) == params
        assert end.status == api_pb2.STATUS_SUCCESS
        assert scalars(folder / "train", "loss") == [(1, 1.0), (2, 0.5), (3, pytest.approx(1 / 3))]
        assert scalars(folder / "validation", "loss") == [(1, 2.0), (2, 1.0), (3, pytest.approx(2 / 3))]
    config = experiment(tmp_path)
    infos = {info.name: info for info in config.hparam_infos}
    assert sorted(infos["lr"].domain_discrete) == [0.01, 0.1]
    assert sorted(infos["optimizer"].domain_discrete) == ["adam", "sgd"]
    assert {info.display_name for info in config.metric_infos} == {"loss", "val_loss"}


def test_a_grid_of_hparams_keeps_the_users_domains(tmp_path: Path) -> None:
    from tensorboard.plugins.hparams import api as hp

    dropout = hp.HParam("dropout", hp.RealInterval(0.1, 0.5), display_name="Dropout rate")
    units = hp.HParam("units", hp.Discrete([16, 32, 64]))
    m = RunManager(tmp_path, tensorboard=True, verbose=0)
    m.sweep(train_by_hand, RunBuilder({units: [16, 32], dropout: None}))
    m.close()
    infos = {info.name: info for info in experiment(tmp_path).hparam_infos}
    assert infos["dropout"].HasField("domain_interval")
    assert (infos["dropout"].domain_interval.min_value, infos["dropout"].domain_interval.max_value) == (0.1, 0.5)
    assert infos["dropout"].display_name == "Dropout rate"
    assert list(infos["units"].domain_discrete) == [16, 32, 64]  # not just the grid's
    start, _ = session(run_folder(tmp_path, 4, {"units": 32, "dropout": 0.5}))
    assert hparam_values(start) == {"units": 32, "dropout": 0.5}


def test_a_new_metric_in_a_later_run_updates_the_config_a_live_tensorboard_shows(tmp_path: Path) -> None:
    m = RunManager(tmp_path, tensorboard=True, verbose=0)

    def one_run(lr: float, **metrics: float) -> None:
        m.begin_run({"lr": lr})
        m.begin_epoch()
        for name, value in metrics.items():
            m.track(name, value)
        m.end_epoch()
        m.end_run()

    def shown(url: str) -> set[str]:
        return {info["displayName"] for info in post(url, "experiment", {"experimentName": ""})["metricInfos"]}

    one_run(0.1, loss=1.0)
    assert {info.display_name for info in experiment(tmp_path).metric_infos} == {"loss"}
    with tensorboard_server(tmp_path / "tensorboard", "--reload_interval", "1") as url:
        wait_for(lambda: shown(url) == {"loss"}, "TensorBoard to show the first config")
        one_run(0.01, loss=0.5, grad_norm=3.0)
        assert {info.display_name for info in experiment(tmp_path).metric_infos} == {"loss", "grad_norm"}
        wait_for(lambda: shown(url) == {"loss", "grad_norm"}, "TensorBoard to show grad_norm")
        groups = session_groups(url, post(url, "experiment", {"experimentName": ""}))
        grad_norms = [v["value"] for g in groups for v in g["metricValues"] if v["name"]["tag"] == "grad_norm"]
        assert grad_norms == [3.0]
    m.close()


def test_a_resumed_sweep_keeps_earlier_metrics_and_a_rerun_starts_clean(tmp_path: Path) -> None:
    grid = {"x": [1, 2]}
    first = RunManager(tmp_path, tensorboard=True, verbose=0)
    first.sweep(functools.partial(train_by_hand, fails=lambda run: run.x == 2), grid)
    first.close()
    folder = run_folder(tmp_path, 2, {"x": 2})
    assert session(folder)[1].status == api_pb2.STATUS_FAILURE

    # Run 2 fails again before any epoch: only the earlier config knows "loss".
    second = RunManager(tmp_path, tensorboard=True, verbose=0)
    second.sweep(functools.partial(train_by_hand, fails=lambda run: True), grid, resume=True, retry_failed=True)
    second.close()
    assert {info.display_name for info in experiment(tmp_path).metric_infos} == {"loss"}

    third = RunManager(tmp_path, tensorboard=True, verbose=0)
    third.sweep(train_by_hand, grid, resume=True, retry_failed=True)
    third.close()
    assert session(folder)[1].status == api_pb2.STATUS_SUCCESS  # TensorBoard reads the first end it finds
    assert [step for step, _ in scalars(folder / "train", "loss")] == [1, 2]


def interrupt(run: Any, callbacks: list[Any]) -> None:
    raise KeyboardInterrupt


def test_each_status_is_the_end_status_tensorboard_shows(tmp_path: Path) -> None:
    m = RunManager(tmp_path, tensorboard=True, verbose=0)
    m.sweep(functools.partial(train_by_hand, fails=lambda run: run.outcome == "failed"),
            {"outcome": ["completed", "failed"]})
    m.begin_run({"outcome": "diverged"})
    m.begin_epoch()
    m.track_loss(float("nan"), batch_size=1)
    m.end_epoch()
    m.end_run()
    with pytest.raises(KeyboardInterrupt):
        m.sweep(interrupt, {"outcome": ["interrupted"]})
    m.close()
    expected = {
        "completed": api_pb2.STATUS_SUCCESS,
        "failed": api_pb2.STATUS_FAILURE,
        "diverged": api_pb2.STATUS_FAILURE,
        "interrupted": api_pb2.STATUS_UNKNOWN,  # TensorBoard has no "aborted"
    }
    summary = m.summary()
    assert summary["status"].tolist() == list(expected)
    for number, (outcome, status) in enumerate(expected.items(), start=1):
        start, end = session(run_folder(tmp_path, number, {"outcome": outcome}))
        assert end is not None and end.status == status and end.end_time_secs >= start.start_time_secs
    [(step, loss)] = scalars(run_folder(tmp_path, 3, {"outcome": "diverged"}) / "train", "loss")
    assert step == 1 and np.isnan(loss)


def test_unsafe_param_values_stay_inside_the_tensorboard_folder(tmp_path: Path) -> None:
    log_dir = tmp_path / "a" / "b" / "log"
    m = RunManager(log_dir, tensorboard=True, verbose=0)
    values = ["../../x", "/etc", "y" * 300]
    for value in values:
        m.begin_run({"path": value})
        m.begin_epoch()
        m.track_loss(1.0, batch_size=1)
        m.end_epoch()
        m.end_run()
    m.close()
    root = (log_dir / "tensorboard").resolve()
    assert [p.name for p in tmp_path.iterdir()] == ["a"]
    assert [p.name for p in (tmp_path / "a").iterdir()] == ["b"]
    assert [p.name for p in (tmp_path / "a" / "b").iterdir()] == ["log"]
    for path in tmp_path.rglob("*"):
        if path.is_file() and "tfevents" in path.name:
            assert root in path.resolve().parents
    for number, value in enumerate(values, start=1):
        folder = run_folder(log_dir, number, {"path": value})
        assert folder.resolve().parent == root and len(folder.name) <= 128
        start, end = session(folder)
        assert hparam_values(start) == {"path": value}  # the real value, in the dashboard
        assert scalars(folder / "train", "loss") == [(1, 1.0)]


def test_missing_tensorboard_raises_an_error_naming_the_extra(tmp_path: Path) -> None:
    code = (
        "import sys\n"
        "sys.modules['tensorboard'] = None  # what Python does for a package that cannot be imported\n"
        "from runmanager import MissingExtraError, RunManager\n"
        "try:\n"
        "    RunManager(sys.argv[1], tensorboard=True, verbose=0)\n"
        "except MissingExtraError as exc:\n"
        "    print(exc)\n"
        "else:\n"
        "    sys.exit('no MissingExtraError')\n"
    )
    result = subprocess.run([sys.executable, "-c", code, str(tmp_path)], capture_output=True, text=True,
                            timeout=WAIT_S)
    assert result.returncode == 0, result.stderr
    assert "tensorboard=True needs the 'tensorboard' package" in result.stdout
    assert 'pip install "runmanager[tensorboard]"' in result.stdout


def test_cli_tensorboard_on_a_missing_folder_exits_2_with_one_line(tmp_path: Path) -> None:
    missing = tmp_path / "no-such-sweep"
    result = subprocess.run([sys.executable, "-m", "runmanager.cli", "tensorboard", str(missing)],
                            capture_output=True, text=True, timeout=WAIT_S)
    assert result.returncode == 2
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1 and str(missing) in lines[0] and "not an existing folder" in lines[0]


def test_cli_tensorboard_on_a_sweep_run_without_tensorboard_exits_2_saying_how_to_get_it(tmp_path: Path) -> None:
    RunManager(tmp_path, verbose=0).sweep(
        lambda run, callbacks: training.fit_without_model(callbacks, [{"loss": 0.5}]), {"units": [4, 8]})
    result = subprocess.run([sys.executable, "-m", "runmanager.cli", "tensorboard", str(tmp_path)],
                            capture_output=True, text=True, timeout=WAIT_S)
    assert result.returncode == 2, result.stdout  # and no server started: it would run until Ctrl-C
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith(f"runmanager: error: log_dir {str(tmp_path)!r} holds no "
                                                   "TensorBoard event files")
    assert "RunManager(log_dir, tensorboard=True)" in lines[0] and "sweep(..., tensorboard=True)" in lines[0]


def test_cli_tensorboard_serves_the_sweep_until_ctrl_c(sweep: SimpleNamespace) -> None:
    process = subprocess.Popen(
        [sys.executable, "-m", "runmanager.cli", "tensorboard", str(sweep.log_dir), "--port", "0"],
        stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
    )
    lines: queue.Queue[str] = queue.Queue()
    threading.Thread(target=lambda: [lines.put(line) for line in process.stdout], daemon=True).start()
    try:
        try:
            line = lines.get(timeout=WAIT_S)
        except queue.Empty:
            pytest.fail("runmanager tensorboard printed no address")
        assert line.startswith(f"TensorBoard for {sweep.log_dir / 'tensorboard'} at http://127.0.0.1:")
        url = line.split(" at ")[1].split()[0].rstrip("/")
        with urllib.request.urlopen(url, timeout=30) as response:
            assert response.status == 200
        expected = {safe_name(number, params) for number, params in sweep.runs.items()}

        def runs() -> set[str]:
            with urllib.request.urlopen(f"{url}/data/runs", timeout=30) as response:
                return {run.split("/")[0] for run in json.loads(response.read())}

        wait_for(lambda: runs() >= expected, "the served runs")
        process.send_signal(signal.SIGINT)
        assert process.wait(WAIT_S) == 0
    finally:
        if process.poll() is None:
            process.kill()
            process.wait(10)


def test_the_config_of_a_random_search_describes_its_space(tmp_path):
    from scipy.stats import loguniform, randint

    from runmanager import RandomSearch

    search = RandomSearch({"lr": loguniform(1e-4, 1e-1), "units": randint(16, 257), "opt": ["adam", "sgd"]},
                          n_runs=4, seed=0)
    RunManager(tmp_path, verbose=0, tensorboard=True).sweep(train_by_hand, search)
    infos = {info.name: info for info in experiment(tmp_path).hparam_infos}
    assert (infos["lr"].domain_interval.min_value, infos["lr"].domain_interval.max_value) == pytest.approx((1e-4, 0.1))
    assert (infos["units"].domain_interval.min_value, infos["units"].domain_interval.max_value) == (16, 256)
    assert [v.string_value for v in infos["opt"].domain_discrete.values] == ["adam", "sgd"]
    assert all(info.differs for info in infos.values())
    assert len(list((tmp_path / "tensorboard").glob("run-*"))) == 4

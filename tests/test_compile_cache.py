"""One XLA compilation cache per sweep on Keras's JAX backend, shared by its workers.

Each sweep runs in a Python process of its own with the backend it names (KERAS_BACKEND), so
these tests are the same whatever backend the test process has; JAX is a test dependency.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

from runmanager import RunManager, load_results
from runmanager.compile_cache import CompileCache
from runmanager.errors import LogDirError

TESTS = Path(__file__).parent


def run_script(tmp_path: Path, code: str, *args: str, backend: str = "jax", env: dict[str, str] | None = None,
               timeout: float = 300) -> str:
    """Run ``code`` as a script (a module-level ``if __name__ == "__main__":`` block, as sweeps on
    worker processes need) on ``backend``; return its standard output, failing with its stderr."""
    script = tmp_path / "sweep_script.py"
    script.write_text(textwrap.dedent(code))
    markers = tmp_path / "markers"
    markers.mkdir(exist_ok=True)
    environment = {key: value for key, value in os.environ.items() if not key.startswith(("JAX_", "XLA_"))}
    environment.update(KERAS_BACKEND=backend, RM_TEST_MARKERS=str(markers), **(env or {}))
    done = subprocess.run([sys.executable, str(script), *args], capture_output=True, text=True, timeout=timeout,
                          env=environment, cwd=tmp_path)
    assert done.returncode == 0, done.stderr[-4000:]
    return done.stdout


TWO_WORKERS = """
    import json, sys
    import training
    from runmanager.executors import ProcessExecutor

    if __name__ == "__main__":
        import jax  # here, not above: the workers import this script again, and start without JAX

        jax.devices()  # the driver's JAX is up, on the CPU: it holds no GPU
        m = training.CompileCacheManager(sys.argv[1], verbose=0)
        m.sweep(training.train_in_turn, {"units": [8], "turn": [1, 2]}, executor=ProcessExecutor(workers=2), seed=0)
        print(json.dumps([jax.config.jax_compilation_cache_dir, jax.config.jax_persistent_cache_min_compile_time_secs]))
"""


@pytest.fixture(scope="module")
def jax_sweep(tmp_path_factory):
    """A sweep on JAX over two runs of one model shape on two worker processes, the second run
    starting once the first has ended: its log_dir, its epoch rows, the cache entries after each
    run, and the driver's JAX settings after the sweep."""
    tmp_path = tmp_path_factory.mktemp("jax")
    log_dir = tmp_path / "sweep"
    after = json.loads(run_script(tmp_path, TWO_WORKERS, str(log_dir)).strip().splitlines()[-1])
    entries = [int((tmp_path / "markers" / str(turn)).read_text()) for turn in (1, 2)]
    return log_dir, load_results(log_dir), entries, after


def first_epochs(rows):
    return rows[rows["epoch"] == 1].set_index("run")


@pytest.mark.slow  # the sweep on two JAX worker processes takes about 30 s
def test_two_workers_of_a_jax_sweep_compile_a_model_shape_once(jax_sweep):
    log_dir, rows, entries, _ = jax_sweep
    first = first_epochs(rows)
    folder = str(log_dir / "compile_cache")
    assert first.loc[1, "pid"] != first.loc[2, "pid"]  # two worker processes
    assert first["cache_env"].tolist() == [folder, folder] and first["cache_dir"].tolist() == [folder, folder]
    # The first worker compiled the shape; the second one found every program in the cache.
    assert first.loc[1, "cache_misses"] > 0 and first.loc[1, "cache_hits"] == 0
    assert first.loc[2, "cache_hits"] == first.loc[1, "cache_misses"] and first.loc[2, "cache_misses"] == 0
    # ... and added nothing to it.
    assert entries[0] > 0 and entries == [entries[0], entries[0]]
    assert len([p for p in (log_dir / "compile_cache").iterdir() if not p.name.startswith(".")]) == entries[0]


@pytest.mark.slow  # the sweep on two JAX worker processes takes about 30 s
def test_workers_of_a_driver_whose_jax_holds_no_gpu_keep_the_gpu_memory_settings_as_they_were(jax_sweep):
    _, rows, _, _ = jax_sweep
    assert set(rows["preallocate"]) == {"unset"}


@pytest.mark.slow  # the sweep on two JAX worker processes takes about 30 s
def test_the_driver_gets_its_own_jax_settings_back_after_the_sweep(jax_sweep):
    assert jax_sweep[3] == [None, 1.0]  # JAX's defaults: no cache folder, compiles under 1 s not cached


@pytest.mark.slow  # the sweep on two JAX worker processes takes about 30 s
def test_overwrite_removes_the_cache_of_an_earlier_sweep(jax_sweep, tmp_path):
    log_dir = tmp_path / "sweep"
    shutil.copytree(jax_sweep[0], log_dir)
    m = RunManager(log_dir, verbose=0, overwrite=True)
    m.begin_run({"units": 4})
    m.end_run()
    m.close()
    assert not (log_dir / "compile_cache").exists()


@pytest.mark.slow  # the sweep on two JAX worker processes takes about 30 s
def test_a_folder_that_holds_a_compile_cache_but_no_journal_is_refused(jax_sweep, tmp_path):
    shutil.copytree(jax_sweep[0] / "compile_cache", tmp_path / "compile_cache")
    with pytest.raises(LogDirError, match=r"already holds compile_cache/, which runmanager did not write there"):
        RunManager(tmp_path, verbose=0).begin_run({"units": 4})


def test_ray_actors_that_imported_jax_before_the_payload_share_the_cache_through_jax_config(tmp_path):
    run_script(tmp_path, """
        import sys
        import training
        from runmanager.executors import RayExecutor

        if __name__ == "__main__":
            training.CompileCacheManager(sys.argv[1], verbose=0).sweep(
                training.train_in_turn, {"units": [8], "turn": [1, 2]}, executor=RayExecutor("local", workers=2))
    """, str(tmp_path / "sweep"), env={"RAY_USAGE_STATS_ENABLED": "0"})
    first = first_epochs(load_results(tmp_path / "sweep"))
    folder = str(tmp_path / "sweep" / "compile_cache")
    assert first.loc[1, "pid"] != first.loc[2, "pid"]
    # The actors imported Keras, and JAX with it, before they read the sweep's folder: it came
    # through jax.config, not the environment.
    assert first["cache_env"].tolist() == ["unset", "unset"] and first["cache_dir"].tolist() == [folder, folder]
    assert first.loc[1, "cache_misses"] > 0 and first.loc[2, "cache_hits"] == first.loc[1, "cache_misses"]
    assert first.loc[2, "cache_misses"] == 0


def test_a_cache_folder_in_the_environment_is_used_instead_of_the_log_dirs(tmp_path):
    mine = tmp_path / "my-cache"
    run_script(tmp_path, """
        import sys
        import training
        from runmanager.executors import ProcessExecutor

        if __name__ == "__main__":
            training.CompileCacheManager(sys.argv[1], verbose=0).sweep(
                training.train_in_turn, {"units": [8], "turn": [1]}, executor=ProcessExecutor(workers=1))
    """, str(tmp_path / "sweep"), env={"JAX_COMPILATION_CACHE_DIR": "my-cache"})  # relative to the driver's folder
    rows = load_results(tmp_path / "sweep")
    assert set(rows["cache_dir"]) == {str(mine)} and set(rows["cache_env"]) == {str(mine)}
    assert rows["cache_misses"].iloc[0] > 0 and len(list(mine.iterdir())) > 0
    assert not (tmp_path / "sweep" / "compile_cache").exists()


def test_the_driver_running_runs_itself_uses_the_cache_too_and_a_sweep_without_log_dir_leaves_none(tmp_path):
    out = run_script(tmp_path, """
        import json, os, sys
        import jax
        import training
        from runmanager import RunManager

        grid = {"units": [8], "turn": [1, 2]}
        # No log_dir: a temporary folder, for the sweep alone.
        summary = training.CompileCacheManager(None, verbose=0).sweep(training.train_in_turn, grid)
        folders = sorted(set(summary["cache_dir"]))
        temporary = [folders, [os.path.exists(folder) for folder in folders], summary["cache_hits"].tolist()]
        # A folder set in this process's JAX is the sweep's, and stays set afterwards.
        jax.config.update("jax_compilation_cache_dir", sys.argv[2])
        for turn in (1, 2):
            os.remove(os.path.join(os.environ["RM_TEST_MARKERS"], str(turn)))
        summary = training.CompileCacheManager(sys.argv[1], verbose=0).sweep(training.train_in_turn, grid)
        theirs = [sorted(set(summary["cache_dir"])), jax.config.jax_compilation_cache_dir,
                  jax.config.jax_persistent_cache_min_compile_time_secs]
        print(json.dumps([temporary, theirs]))
    """, str(tmp_path / "sweep"), str(tmp_path / "theirs"))
    temporary, theirs = json.loads(out.strip().splitlines()[-1])
    folders, exists, hits = temporary
    assert len(folders) == 1 and "runmanager-compile-cache-" in folders[0] and exists == [False]
    assert hits[1] > hits[0]  # the second run of the shape in this process read programs from the cache
    assert theirs == [[str(tmp_path / "theirs")], str(tmp_path / "theirs"), 1.0]
    assert len(list((tmp_path / "theirs").iterdir())) > 0 and not (tmp_path / "sweep" / "compile_cache").exists()


def test_a_tensorflow_sweep_writes_no_cache_and_gives_its_workers_none(tmp_path):
    run_script(tmp_path, """
        import sys
        import training
        from runmanager.executors import ProcessExecutor

        if __name__ == "__main__":
            training.WorkerEnvironmentManager(sys.argv[1], verbose=0).sweep(
                training.train, {"units": [8]}, executor=ProcessExecutor(workers=1))
    """, str(tmp_path / "sweep"), backend="tensorflow")
    rows = load_results(tmp_path / "sweep")
    assert set(rows["cache_env"]) == {"unset"} and len(rows) == 3
    assert not (tmp_path / "sweep" / "compile_cache").exists()


def test_whether_the_driver_holds_a_gpu_is_told_by_the_backends_jax_started_without_starting_one(tmp_path):
    out = run_script(tmp_path, """
        import json
        import jax
        from jax._src import xla_bridge
        from runmanager.compile_cache import driver_holds_gpu

        if __name__ == "__main__":
            before = [driver_holds_gpu(), driver_holds_gpu(("cpu",)), xla_bridge.backends_are_initialized()]
            jax.devices()
            print(json.dumps([before, driver_holds_gpu(), driver_holds_gpu(("cpu",))]))
    """)
    before, gpu, cpu = json.loads(out.strip().splitlines()[-1])
    assert before == [False, False, False]  # asking started nothing
    assert gpu is False and cpu is True  # a CPU backend is up, and no GPU one


def test_the_cache_folder_of_a_sweep_is_the_users_else_the_log_dirs_else_a_temporary_one(tmp_path, monkeypatch):
    monkeypatch.delenv("JAX_COMPILATION_CACHE_DIR", raising=False)
    monkeypatch.chdir(tmp_path)
    assert CompileCache.for_sweep(tmp_path / "a", backend="tensorflow") is None
    assert CompileCache.for_sweep(tmp_path / "a", backend="torch") is None
    cache = CompileCache.for_sweep(Path("a"), backend="jax")
    assert cache.folder == str(tmp_path / "a" / "compile_cache") and not cache.temporary
    cache = CompileCache.for_sweep(None, backend="jax")
    assert cache.temporary and os.path.isdir(cache.folder)
    cache.close()
    assert not os.path.exists(cache.folder)
    monkeypatch.setenv("JAX_COMPILATION_CACHE_DIR", "~/xla")
    for log_dir in (tmp_path / "a", None):
        cache = CompileCache.for_sweep(log_dir, backend="jax")
        assert cache.folder == os.path.expanduser("~/xla") and not cache.temporary


def test_the_backend_is_found_without_importing_keras(tmp_path):
    (tmp_path / "keras.json").write_text(json.dumps({"backend": "jax", "floatx": "float32"}))
    code = ("import sys; from runmanager.backend import backend_name; "
            "print(backend_name(), 'keras' in sys.modules)")
    environment = {key: value for key, value in os.environ.items() if key != "KERAS_BACKEND"}
    environment["KERAS_HOME"] = str(tmp_path)
    found = [subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=60,
                            env={**environment, **extra}).stdout.split() for extra in ({}, {"KERAS_BACKEND": "torch"})]
    assert found == [["jax", "False"], ["torch", "False"]]

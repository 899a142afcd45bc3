"""One persistent XLA compilation cache per sweep on Keras's JAX backend, and whether this
process holds a GPU through JAX.

Keras on JAX compiles every model's train and test steps with XLA, and a new process
compiles them again: on a GPU the first run of a model shape costs seconds of compilation
and autotuning in every worker. JAX's persistent compilation cache keeps the compiled
programs in a folder; the processes of a sweep share one, so a model shape is compiled
once per sweep. The sweep decides the folder once (:meth:`CompileCache.for_sweep`): the
user's (``JAX_COMPILATION_CACHE_DIR``, or ``jax_compilation_cache_dir`` set in this process),
else ``LOG_DIR/compile_cache``, else a temporary folder removed after the sweep. Every
worker uses it (:func:`use_compile_cache`), caching every compile, however short (JAX's
defaults skip compiles under a second, which on a CPU is most of them). The driver uses it
too while the sweep runs, and gets its own settings back afterwards.

Nothing here imports JAX unless the sweep runs on it.
"""

from __future__ import annotations

import os
import shutil
import sys
import tempfile
from pathlib import Path
from typing import Any

from runmanager.backend import backend_name
from runmanager.storage import COMPILE_CACHE_DIR

__all__ = ["THRESHOLDS", "USER_VARIABLE", "CompileCache", "count_compiles", "driver_holds_gpu", "use_compile_cache",
           "user_cache_dir"]

#: The environment variable (and JAX option, lower-cased) that names a cache folder of the user's.
USER_VARIABLE = "JAX_COMPILATION_CACHE_DIR"
_OPTION = USER_VARIABLE.lower()
#: JAX options that make it cache every compile: its defaults leave out compiles under a
#: second. An environment variable of the same name, upper-cased, keeps the user's value.
THRESHOLDS: dict[str, float | int] = {
    "jax_persistent_cache_min_compile_time_secs": 0.0,
    "jax_persistent_cache_min_entry_size_bytes": -1,  # -1: no size limit, and JAX does not raise it
}
#: The JAX platform names of a GPU backend.
GPU_PLATFORMS = ("gpu", "cuda", "rocm")


def user_cache_dir() -> str | None:
    """The cache folder the user chose, as an absolute path: ``jax_compilation_cache_dir`` set
    in this process (looked at only if JAX is imported already), else the environment variable
    ``JAX_COMPILATION_CACHE_DIR``; None when neither is set.

    Examples:
        user_cache_dir()  # '/scratch/me/xla-cache' with JAX_COMPILATION_CACHE_DIR=/scratch/me/xla-cache
    """
    jax = sys.modules.get("jax")
    chosen = getattr(getattr(jax, "config", None), _OPTION, None) if jax is not None else None
    chosen = chosen or os.environ.get(USER_VARIABLE)
    return os.path.abspath(os.path.expanduser(chosen)) if chosen else None


class CompileCache:
    """The compilation cache folder of one sweep on Keras's JAX backend.

    :meth:`open` makes this process use it until :meth:`close`, which puts this process's JAX
    settings back as they were and removes a ``temporary`` folder.

    Args:
        folder: the cache folder (absolute: workers may start in another folder).
        temporary: the sweep made it (a sweep without a log_dir) and removes it at the end.

    Examples:
        cache = CompileCache.for_sweep(manager.log_dir)   # None unless the backend is JAX
        if cache is not None:
            cache.open()
            ...                                            # the sweep; workers get cache.folder
            cache.close()
    """

    def __init__(self, folder: str, *, temporary: bool = False) -> None:
        self.folder = folder
        self.temporary = temporary
        self._saved: dict[str, Any] | None = None

    @classmethod
    def for_sweep(cls, log_dir: str | os.PathLike[str] | None, *, backend: str | None = None) -> CompileCache | None:
        """The cache of a sweep writing ``log_dir`` on ``backend`` (default: this process's Keras
        backend, found without importing Keras): None unless it is JAX; the user's folder where
        they chose one (:func:`user_cache_dir`); else ``LOG_DIR/compile_cache``; else, with no
        log_dir, a new temporary folder.

        Examples:
            >>> CompileCache.for_sweep("runs/a", backend="tensorflow") is None
            True
        """
        if (backend or backend_name()) != "jax":
            return None
        chosen = user_cache_dir()
        if chosen is not None:
            return cls(chosen)
        if log_dir is not None:
            return cls(os.path.abspath(Path(log_dir) / COMPILE_CACHE_DIR))
        return cls(tempfile.mkdtemp(prefix="runmanager-compile-cache-"), temporary=True)

    def open(self) -> None:
        """Use the cache in this process (the driver, which runs the runs itself with the
        sequential executor) until :meth:`close`. Without JAX here, nothing happens."""
        try:
            import jax
        except ImportError:  # the workers may have it (a Ray cluster's nodes), the driver not
            return
        self._saved = {name: getattr(jax.config, name) for name in (_OPTION, *THRESHOLDS)}
        use_compile_cache(self.folder)

    def close(self) -> None:
        """Give this process its JAX settings back, and remove a temporary folder."""
        saved, self._saved = self._saved, None
        if saved is not None:
            import jax

            changed = getattr(jax.config, _OPTION) != saved[_OPTION]
            for name, value in saved.items():
                jax.config.update(name, value)
            if changed:
                _reset_jax_cache()
        if self.temporary:
            shutil.rmtree(self.folder, ignore_errors=True)

    def __repr__(self) -> str:
        return f"CompileCache({self.folder!r}{', temporary=True' if self.temporary else ''})"


def _reset_jax_cache() -> None:
    """Make JAX open its cache afresh at the next compile: once opened, it keeps writing to
    the folder it opened, whatever ``jax_compilation_cache_dir`` says afterwards."""
    from jax.experimental.compilation_cache import compilation_cache

    compilation_cache.reset_cache()


def use_compile_cache(folder: str) -> bool:
    """Make this process cache every XLA compile in ``folder``: through the environment while
    JAX is not imported yet (a new worker process, before the backend loads), else through
    ``jax.config`` (a Ray actor or a Dask worker that has JAX already). Thresholds the user set
    in the environment are kept. JAX makes the folder at its first compile. False, and nothing
    changed, when ``folder`` cannot be made here (a node of a cluster on which the driver's
    folder is not writable): the worker then compiles without it.

    Examples:
        use_compile_cache("/home/me/runs/sweep1/compile_cache")
    """
    if not _can_make(folder):
        return False
    jax = sys.modules.get("jax")
    if jax is None or not hasattr(jax, "config"):
        os.environ[USER_VARIABLE] = folder
        for name, value in THRESHOLDS.items():
            os.environ.setdefault(name.upper(), str(value))
        return True
    if getattr(jax.config, _OPTION) != folder:
        jax.config.update(_OPTION, folder)
        _reset_jax_cache()
    for name, value in THRESHOLDS.items():
        if name.upper() not in os.environ:
            jax.config.update(name, value)
    return True


def _can_make(folder: str) -> bool:
    """Whether ``folder`` is a writable folder, or could be made: JAX makes it at the first compile,
    so that a sweep that compiles nothing leaves none behind."""
    path = os.path.abspath(folder)
    while not os.path.exists(path):
        parent = os.path.dirname(path)
        if parent == path:
            return False
        path = parent
    return os.path.isdir(path) and os.access(path, os.W_OK | os.X_OK)


def driver_holds_gpu(platforms: tuple[str, ...] = GPU_PLATFORMS) -> bool:
    """Whether this process holds a GPU through JAX: JAX is imported and has started a backend
    of one of ``platforms`` (by default a GPU's, which by default takes 75% of the GPU's memory
    for itself). Nothing is imported or started to find out.

    Workers started from such a process must not preallocate GPU memory, or each would print
    out-of-memory errors before it falls back to a smaller pool.

    Examples:
        >>> driver_holds_gpu()  # in a process without JAX, or whose JAX has not started a GPU
        False
    """
    if "jax" not in sys.modules:
        return False
    try:
        from jax._src import xla_bridge

        if not xla_bridge.backends_are_initialized():
            return False
        # Once a backend is up, backends() returns the ones started, starting nothing new.
        return any(name in platforms or client.platform in platforms for name, client in xla_bridge.backends().items())
    except Exception:  # noqa: BLE001 - another JAX version's internals: assume the GPU is not held
        return False


_COMPILES: dict[str, int] = {}


def count_compiles() -> dict[str, int]:
    """How many of this process's XLA compiles so far were persistent-cache hits and misses, from
    JAX's own monitoring events; the counting starts at the first call (it imports JAX).

    Examples:
        counts = count_compiles()        # {'hits': 0, 'misses': 0}, then counting
        ...                              # build and fit a model
        print(counts["hits"], counts["misses"])
    """
    if not _COMPILES:
        import jax

        _COMPILES.update(hits=0, misses=0)
        names = {"/jax/compilation_cache/cache_hits": "hits", "/jax/compilation_cache/cache_misses": "misses"}

        def listen(event: str, **kwargs: object) -> None:
            if event in names:
                _COMPILES[names[event]] += 1

        jax.monitoring.register_event_listener(listen)
    return _COMPILES

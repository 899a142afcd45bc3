"""Executors: how a sweep's runs are carried out, behind one written interface.

The :class:`~runmanager.sweep.Sweep` owns the loop: it asks its search for runs,
numbers them, and hands each one to an executor as a :class:`Task` whenever the
executor has room. The executor runs it (here, in worker processes, on Ray, on a
Dask cluster, or in memory for tests) and makes sure every event of the run reaches
the driver, which alone writes files. :meth:`Executor.wait` returns the tasks that
ended, with their status; the sweep counts them and tells the search.

Executors are objects whose constructors take and check their own options; ``sweep``
also takes their names as shorthands::

    from runmanager.executors import ProcessExecutor, RayExecutor, DaskExecutor

    m.sweep(train, grid, executor=ProcessExecutor(workers=4, gpus=[0, 1]))
    m.sweep(train, grid, executor=RayExecutor(address="auto", num_gpus=0.5, max_retries=2))
    m.sweep(train, grid, executor="dask", workers=4)        # a private dask LocalCluster

- ``"sequential"``: :class:`SequentialExecutor`, this process
- ``"processes"``: :class:`ProcessExecutor`, local worker processes
- ``"ray"``: :class:`RayExecutor`, actors on a Ray cluster
- ``"dask"``: :class:`DaskExecutor`, tasks on a Dask cluster (Slurm, PBS, SGE, LSF through
  dask-jobqueue; Kubernetes through dask-kubernetes)
- in-memory workers for fast tests: :class:`~runmanager.executors.memory.InMemoryExecutor`

The classes are imported when first used, so ``import runmanager.executors`` imports
neither Ray, Dask nor TensorFlow.
"""

from __future__ import annotations

from typing import Any

from runmanager.executors.base import EXECUTORS, Executor, SweepContext, Task

__all__ = ["EXECUTORS", "DaskExecutor", "Executor", "ProcessExecutor", "RayExecutor", "SequentialExecutor",
           "SweepContext", "Task"]

# Where each executor class lives; imported on first use.
_CLASSES = {
    "SequentialExecutor": "runmanager.executors.sequential",
    "ProcessExecutor": "runmanager.executors.processes",
    "RayExecutor": "runmanager.executors.ray_actors",
    "DaskExecutor": "runmanager.executors.dask_workers",
}


def __getattr__(name: str) -> Any:
    module = _CLASSES.get(name)
    if module is None:
        raise AttributeError(f"module 'runmanager.executors' has no attribute {name!r}")
    import importlib

    return getattr(importlib.import_module(module), name)

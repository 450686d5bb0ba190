"""How many threads one training task may use.

A worker runs ``concurrency`` tasks at once, each training a model whose library (OpenMP in LightGBM,
XGBoost and CatBoost; BLAS under scikit-learn) would by default start one thread per core. Four tasks
on a 16-core machine would then run 64 busy threads: they fight over the cores, thrash caches and run
slower together than one after another. Giving each task ``cores // concurrency`` threads keeps
``concurrency * threads <= cores`` (never oversubscribed), with at least one thread per task.
"""

from __future__ import annotations

import os


def available_cores() -> int:
    """Cores this process may run on: its CPU affinity set where the OS has one, else the CPU count.

    The affinity set honours ``taskset`` and cpusets (Docker ``--cpuset-cpus``); a CFS quota
    (``--cpus``) is not visible here, so set the worker's concurrency with that in mind.
    """
    if hasattr(os, "sched_getaffinity"):
        return max(1, len(os.sched_getaffinity(0)))
    return max(1, os.cpu_count() or 1)


def threads_per_task(worker_concurrency: int, cores: int | None = None) -> int:
    """``max(1, cores // worker_concurrency)``; ``cores`` defaults to :func:`available_cores`."""
    if worker_concurrency < 1:
        raise ValueError(f"worker_concurrency must be at least 1, got {worker_concurrency}")
    if cores is None:
        cores = available_cores()
    if cores < 1:
        raise ValueError(f"cores must be at least 1, got {cores}")
    return max(1, cores // worker_concurrency)

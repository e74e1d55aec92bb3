"""What each concurrent run gets on one machine: a GPU (round robin) and a share of CPU threads.

:func:`slot_environment` is a pure function of the slot number, the number of concurrent jobs,
the visible GPU ids and the core count; the local backend calls it once per worker slot, and every
run that slot executes inherits the result through its process environment.
"""

from __future__ import annotations

import os
from typing import Sequence

__all__ = ["THREAD_VARIABLES", "slot_environment", "visible_gpu_ids", "cpu_count"]

THREAD_VARIABLES = ("OMP_NUM_THREADS", "MKL_NUM_THREADS", "OPENBLAS_NUM_THREADS")


def slot_environment(slot: int, jobs: int, gpu_ids: Sequence[str], cores: int,
                     threads: int | None = None) -> dict[str, str]:
    """Environment variables for worker slot ``slot`` of ``jobs`` concurrent runs.

    With GPUs, slot ``k`` gets ``CUDA_VISIBLE_DEVICES = gpu_ids[k % len(gpu_ids)]`` (round robin:
    each run its own GPU while ``jobs <= len(gpu_ids)``). Every slot gets ``threads`` CPU threads (default
    ``cores // jobs``, at least 1) through ``OMP_NUM_THREADS``, ``MKL_NUM_THREADS`` and ``OPENBLAS_NUM_THREADS``
    (see :mod:`equiv.batch.packing` for how ``equiv run`` chooses them).
    """
    if jobs < 1:
        raise ValueError(f"jobs must be >= 1, got {jobs}")
    if not 0 <= slot < jobs:
        raise ValueError(f"slot must be in 0..{jobs - 1}, got {slot}")
    env: dict[str, str] = {}
    if gpu_ids:
        env["CUDA_VISIBLE_DEVICES"] = str(gpu_ids[slot % len(gpu_ids)])
    count = str(threads if threads is not None else max(1, cores // jobs))
    for var in THREAD_VARIABLES:
        env[var] = count
    return env


def cpu_count() -> int:
    """Cores this process may use (its CPU affinity where the OS reports it)."""
    try:
        return len(os.sched_getaffinity(0))
    except (AttributeError, OSError):
        return os.cpu_count() or 1


def visible_gpu_ids() -> list[str]:
    """Ids to put in ``CUDA_VISIBLE_DEVICES``: the entries already visible to this process.

    Uses ``torch.cuda.device_count()``; with ``CUDA_VISIBLE_DEVICES`` already set, its entries
    (numbers or UUIDs) are kept so that runs only see GPUs this process may use.
    """
    try:
        import torch

        count = torch.cuda.device_count()
    except Exception:  # no torch or a broken CUDA install: run on CPU
        return []
    if count <= 0:
        return []
    preset = os.environ.get("CUDA_VISIBLE_DEVICES")
    if preset:
        ids = [x.strip() for x in preset.split(",") if x.strip()]
        return ids[:count]
    return [str(i) for i in range(count)]

"""The local backend: ``--jobs N`` runs at once on this machine.

N slots pull tasks from one queue. Slot ``k`` owns one worker process
(:class:`equiv.batch.worker.WorkerProcess`, replaced if it dies) started with the environment of
:func:`equiv.batch.resources.slot_environment` (its GPU, round robin, or its share of CPU threads);
each notebook runs in a kernel process of its own, started by that worker, which inherits it.
A task whose lock another runner holds comes back as ``busy`` and goes to the end of the queue,
to be waited for once everything else is done.
"""

from __future__ import annotations

import threading
import time
from collections import deque
from dataclasses import replace
from typing import Any, Callable, Sequence

from equiv.batch.execute import Outcome, RunTask
from equiv.batch.progress import GridProgress
from equiv.batch.resources import cpu_count, slot_environment, visible_gpu_ids
from equiv.batch.worker import WorkerProcess

__all__ = ["run_local", "slot_provenance"]


def slot_provenance(env: dict[str, str], gpu_ids: Sequence[str]) -> dict[str, Any]:
    """:func:`equiv.provenance.environment` for a slot, computed once here instead of in every worker."""
    from equiv.provenance import environment

    gpu = env.get("CUDA_VISIBLE_DEVICES")
    if gpu is not None and gpu in gpu_ids:
        info = environment(f"cuda:{list(gpu_ids).index(gpu)}")
    else:
        import torch

        before = torch.get_num_threads()
        torch.set_num_threads(int(env.get("OMP_NUM_THREADS", before)))
        try:
            info = environment("cpu")
        finally:
            torch.set_num_threads(before)
    info.pop("timestamp_utc", None)  # the manifest has the run's own start and end times
    return info


def run_local(
    tasks: Sequence[RunTask],
    *,
    jobs: int,
    progress: GridProgress,
    gpu_ids: Sequence[str] | None = None,
    cores: int | None = None,
    worker_factory: Callable[[dict[str, str]], WorkerProcess] = WorkerProcess,
    threads: int | None = None,
    on_outcome: Callable[[Outcome], None] | None = None,
) -> list[Outcome]:
    """Execute ``tasks`` with at most ``jobs`` worker processes at a time (``threads`` CPU threads each;
    default ``cores // jobs``); return their outcomes. ``on_outcome`` is called with each outcome as soon as
    its run ends (from the slot's thread), so a caller can record it before the other runs finish."""
    if jobs < 1:
        raise ValueError(f"--jobs must be >= 1, got {jobs}")
    if not tasks:
        return []
    gpu_ids = visible_gpu_ids() if gpu_ids is None else list(gpu_ids)
    cores = cpu_count() if cores is None else cores
    width = min(jobs, len(tasks))
    queue: deque[RunTask] = deque(tasks)
    guard = threading.Lock()
    outcomes: list[Outcome] = []
    stop = threading.Event()

    envs = [slot_environment(slot, width, gpu_ids, cores, threads) for slot in range(width)]
    provenances = [slot_provenance(env, gpu_ids) for env in envs]  # here, so that errors surface

    def _run_slot(slot: int) -> None:
        worker = worker_factory(envs[slot])
        try:
            _slot_loop(worker, envs[slot], provenances[slot])
        finally:
            worker.close()

    def _slot_loop(worker: WorkerProcess, env: dict[str, str], provenance: dict[str, Any]) -> None:
        while not stop.is_set():
            with guard:
                if not queue:
                    return
                task = queue.popleft()
            task = replace(task, resources=env, environment=provenance)
            progress.started()
            try:
                outcome = worker.run(task)
            except Exception as err:  # the worker could not even be started: report, keep going
                outcome = Outcome(task.run_id, "failed", f"could not start the worker: {type(err).__name__}: {err}")
            if outcome.status == "busy":  # another runner has it: wait for it at the end
                progress.started(-1)
                with guard:
                    queue.append(replace(task, wait_for_lock=True))
                continue
            if outcome.status == "interrupted":
                progress.started(-1)
                stop.set()
                return
            progress.finished(outcome.status)
            if outcome.status == "failed" and outcome.error:
                progress.note(f"run {task.run_id} failed: {outcome.error.get('type')}: {str(outcome.error.get('message', '')).strip()[:200]}")
            with guard:
                outcomes.append(outcome)
            if on_outcome is not None:
                on_outcome(outcome)

    threads = [threading.Thread(target=_run_slot, args=(s,), name=f"equiv-slot-{s}", daemon=True) for s in range(width)]
    for t in threads:
        t.start()
    try:
        while any(t.is_alive() for t in threads):
            time.sleep(0.05)
    except KeyboardInterrupt:  # workers got the SIGINT too; let them write what they can
        stop.set()
        for t in threads:
            t.join(timeout=15)
        raise
    return outcomes

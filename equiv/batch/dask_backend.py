"""The Dask backend: map the runs over an existing cluster (``--scheduler ADDRESS``).

Each Dask task starts the usual worker process (:func:`equiv.batch.worker.run_task_dict`), so a
crashing kernel cannot kill the Dask worker, and environment variables never leak between tasks
running in threads of the same worker. GPUs and threads are whatever the Dask workers were
started with: one task per worker thread runs at a time. Runs wait for their lock, so two
submissions of the same grid never execute a run twice.
"""

from __future__ import annotations

import uuid
from dataclasses import replace
from typing import Sequence

from equiv.batch.execute import Outcome, RunTask
from equiv.batch.progress import GridProgress
from equiv.batch.worker import run_task_dict

__all__ = ["run_dask"]


def run_dask(tasks: Sequence[RunTask], *, scheduler: str, progress: GridProgress, connect_timeout_s: float = 30.0) -> list[Outcome]:
    """Run ``tasks`` on the Dask cluster at ``scheduler``; return their outcomes."""
    if not tasks:
        return []
    from distributed import Client, as_completed

    payload = [replace(t, wait_for_lock=True, backend="dask", environment=None).to_dict() for t in tasks]
    try:
        client = Client(scheduler, timeout=connect_timeout_s)
    except (OSError, TimeoutError) as err:
        raise ValueError(f"--scheduler {scheduler!r}: cannot connect to a Dask scheduler there ({type(err).__name__}: {err})") from None
    outcomes: list[Outcome] = []
    try:
        slots = sum(client.nthreads().values()) or 1
        tag = uuid.uuid4().hex[:8]
        futures = client.map(run_task_dict, payload, key=[f"equiv-{t.grid}-{t.run_id}-{tag}" for t in tasks], pure=False, retries=0)
        by_key = {f.key: t for f, t in zip(futures, tasks)}
        left = len(futures)
        progress.set_running(min(slots, left))
        for future in as_completed(futures):
            task = by_key[future.key]
            try:
                outcome = Outcome.from_dict(future.result())
            except Exception as err:  # the Dask task itself failed (worker lost, ...)
                from equiv.batch.worker import record_lost_worker

                outcome = record_lost_worker(task, None, f"Dask task failed: {type(err).__name__}: {str(err).strip()[:300]}")
            left -= 1
            progress.finished(outcome.status, was_running=False)
            progress.set_running(min(slots, left))
            if outcome.status == "failed" and outcome.error:
                progress.note(f"run {outcome.run_id} failed: {outcome.error.get('type')}: {str(outcome.error.get('message', '')).strip()[:200]}")
            outcomes.append(outcome)
    finally:
        client.close()
    return outcomes

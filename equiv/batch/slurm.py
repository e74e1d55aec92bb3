"""The Slurm backend: one job array through ``submitit``, one array task per run.

Options come from the grid's ``slurm:`` section, overridden by ``equiv run --slurm-*`` flags.
Each array task runs :func:`equiv.batch.worker.run_task_dict`, which starts the usual worker
process on the compute node (Slurm sets ``CUDA_VISIBLE_DEVICES``; ``cpus_per_run`` sets the thread
variables). Runs wait for their lock, so a rerun while an earlier array is still running never
executes a run twice. ``cluster="local"`` uses submitit's ``LocalExecutor`` (tests, laptops).
"""

from __future__ import annotations

import shutil
import time
from dataclasses import dataclass, fields, replace
from pathlib import Path
from typing import Any, Mapping, Sequence

from equiv.batch.execute import Outcome, RunTask
from equiv.batch.progress import GridProgress
from equiv.batch.resources import THREAD_VARIABLES
from equiv.batch.worker import run_task_dict

__all__ = ["SlurmOptions", "run_slurm", "check_available", "CLUSTERS"]

CLUSTERS = ("slurm", "local", "debug")


@dataclass(frozen=True)
class SlurmOptions:
    """Resources of each array task; ``None`` leaves the cluster's default."""

    cluster: str = "slurm"  # "local": submitit's LocalExecutor, for testing without Slurm
    partition: str | None = None
    gpus_per_run: int = 0
    cpus_per_run: int | None = None
    time_limit_min: int = 60
    array_parallelism: int | None = None
    mem_gb: float | None = None
    poll_interval_s: float = 1.0

    @classmethod
    def merged(cls, grid_section: Mapping[str, Any], overrides: Mapping[str, Any]) -> "SlurmOptions":
        """Options from the grid's ``slurm:`` section, then ``overrides`` (``None`` values ignored)."""
        known = {f.name for f in fields(cls)}
        values = {**grid_section, **{k: v for k, v in overrides.items() if v is not None}}
        unknown = sorted(set(values) - known)
        if unknown:
            raise ValueError(f"unknown Slurm option {unknown[0]!r} (allowed: {', '.join(sorted(known))})")
        opts = cls(**values)
        if opts.cluster not in CLUSTERS:
            raise ValueError(f"Slurm cluster {opts.cluster!r} is not allowed (allowed: {', '.join(CLUSTERS)})")
        return opts


def check_available(options: SlurmOptions) -> None:
    """Raise ``ValueError`` when ``options`` asks for Slurm and there is none (checked before planning)."""
    if options.cluster == "slurm" and shutil.which("sbatch") is None:
        raise ValueError("--backend slurm: no Slurm here (sbatch is not on PATH); use --slurm-cluster local to try it locally")


def _executor(options: SlurmOptions, folder: Path, name: str):
    import submitit

    check_available(options)
    executor = submitit.AutoExecutor(folder=str(folder / "%j"), cluster=options.cluster)
    params: dict[str, Any] = {"name": name, "timeout_min": int(options.time_limit_min), "gpus_per_node": int(options.gpus_per_run)}
    if options.cpus_per_run is not None:
        params["cpus_per_task"] = int(options.cpus_per_run)
    if options.mem_gb is not None:
        params["mem_gb"] = float(options.mem_gb)
    if options.partition is not None:
        params["slurm_partition"] = options.partition
    if options.array_parallelism is not None:
        params["slurm_array_parallelism"] = int(options.array_parallelism)
    executor.update_parameters(**params)
    return executor


def run_slurm(tasks: Sequence[RunTask], *, options: SlurmOptions, folder: Path, progress: GridProgress, name: str = "equiv") -> list[Outcome]:
    """Submit ``tasks`` as one job array and wait for every task; return their outcomes."""
    if not tasks:
        return []
    resources = {v: str(options.cpus_per_run) for v in THREAD_VARIABLES} if options.cpus_per_run else {}
    payload = [replace(t, wait_for_lock=True, backend="slurm", resources=resources, environment=None).to_dict() for t in tasks]
    folder.mkdir(parents=True, exist_ok=True)
    executor = _executor(options, folder, name)
    jobs = executor.map_array(run_task_dict, payload)
    progress.note(f"submitted job array {jobs[0].job_id.split('_')[0]} ({len(jobs)} runs); logs in {folder}")
    pending = dict(zip(range(len(jobs)), jobs))
    outcomes: list[Outcome] = []
    while pending:
        running = 0
        for i, job in list(pending.items()):
            if not job.done():
                running += job.state in ("RUNNING", "COMPLETING")
                continue
            del pending[i]
            try:
                outcome = Outcome.from_dict(job.result())
            except Exception as err:  # the array task itself failed (time limit, node failure, ...)
                from equiv.batch.worker import record_lost_worker

                outcome = record_lost_worker(tasks[i], None, f"Slurm job {job.job_id} failed: {type(err).__name__}: {str(err).strip()[:300]}")
            progress.finished(outcome.status, was_running=False)
            if outcome.status == "failed" and outcome.error:
                progress.note(f"run {outcome.run_id} failed: {outcome.error.get('type')}: {str(outcome.error.get('message', '')).strip()[:200]}")
            outcomes.append(outcome)
        progress.set_running(running)
        if pending:
            time.sleep(options.poll_interval_s)
    return outcomes

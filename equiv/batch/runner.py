"""``equiv run`` as a function: check the grid, plan its runs, execute them on a backend, summarise.

Before anything runs, the options, ``--runs-dir`` and the grid are checked (the grid's run count
against ``max_runs`` before it is expanded, see :mod:`equiv.batch.grid`). Planning then happens in
memory and writes nothing: it decides, from each run's manifest (if its folder exists), ``done``
-> skip; ``failed`` -> skip unless ``retry_failed``; no manifest or an interrupted ``running`` one
-> run. A run's folder and ``params.json`` are written when that run starts
(:func:`equiv.batch.execute.execute_task`). Runs another runner is executing right now are queued
last and waited for (their lock decides; see :mod:`equiv.batch.execute`).
"""

from __future__ import annotations

import json
import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable, Mapping, Sequence

from equiv.batch.execute import Outcome, RunTask, check_executor
from equiv.batch.grid import MAX_RUNS, Grid, check_max_runs, load_grid
from equiv.batch.layout import check_can_be_folder, grid_dir
from equiv.batch.progress import GridProgress
from equiv.batch.state import read_manifest, read_run_state
from equiv.validation import is_int

__all__ = ["BACKENDS", "RunSummary", "plan_grid", "run_grid", "check_backend", "check_options", "dispatch"]

BACKENDS = ("local", "slurm", "dask")


@dataclass
class RunSummary:
    """The end state of one ``equiv run``."""

    grid: str
    grid_dir: Path
    total: int
    done: int  # runs of the grid that are done now
    failed: int  # runs of the grid that are failed now
    unfinished: int  # neither (a run interrupted by Ctrl-C, or still running elsewhere)
    done_before: int  # already done when this invocation started
    executed: int  # runs this invocation executed (done or failed)
    outcomes: list[Outcome] = field(default_factory=list)

    @property
    def exit_code(self) -> int:
        """0 when every run of the grid is done, 1 otherwise."""
        return 0 if self.done == self.total else 1

    def last_line(self) -> str:
        """One line: how many runs failed, are done (now / before) and unfinished."""
        parts = [f"{self.failed} failed", f"{self.done} done ({self.done - self.done_before} now, {self.done_before} before)"]
        if self.unfinished:
            parts.append(f"{self.unfinished} unfinished")
        line = f"equiv run {self.grid}: " + ", ".join(parts) + f" of {self.total} runs"
        if self.failed:
            line += f"; details: equiv status {self.grid_dir}"
        return line


def plan_grid(grid: Grid, runs_dir: str | os.PathLike, *, retry_failed: bool = False) -> tuple[list[RunTask], int]:
    """Return (tasks to execute, runs already done), from the committed results and the manifests on
    disk; writes nothing. A run committed to the grid's ``results`` folder is done, whatever ``runs/`` holds."""
    from equiv.batch.committed import committed_ids

    gdir = grid_dir(runs_dir, grid.name)
    absolute = gdir.resolve()
    fresh: list[RunTask] = []
    in_flight: list[RunTask] = []
    committed = committed_ids(grid.results, [spec.run_id for spec in grid.runs])
    done_before = 0
    for spec in grid.runs:
        if spec.run_id in committed:
            done_before += 1
            continue
        rdir = gdir / spec.run_id
        manifest = read_manifest(rdir) or {}
        status, attempt = manifest.get("status"), int(manifest.get("attempt", 0))
        if status == "done":
            done_before += 1
            continue
        if status == "failed" and not retry_failed:
            continue
        task = RunTask(
            grid=grid.name,
            run_id=spec.run_id,
            run_dir=str(absolute / spec.run_id),
            notebook=str(grid.notebook),
            notebook_key=grid.notebook_key,
            parameters=spec.parameters,
            profile=grid.profile,
            expected_attempt=attempt,
            retry_failed=retry_failed,
            wait_for_lock=False,
            results_dir=None if grid.results is None else str(grid.results),
        )
        (in_flight if status == "running" else fresh).append(task)
    return fresh + in_flight, done_before


def check_backend(backend: str, scheduler: str | None, jobs: int | None = None) -> None:
    """One-line ``ValueError`` for a backend that does not exist, a Dask backend without a scheduler (or with
    ``--jobs``), or a scheduler given to another backend: the checks ``equiv run`` and ``equiv book`` share."""
    if backend not in BACKENDS:
        raise ValueError(f"--backend {backend!r} is not allowed (allowed: {', '.join(BACKENDS)})")
    if backend == "dask":
        if not scheduler:
            raise ValueError("--backend dask needs --scheduler ADDRESS (e.g. tcp://127.0.0.1:8786)")
        if jobs is not None:
            raise ValueError("--jobs does not apply to --backend dask: the cluster's workers decide how many runs go at once")
    elif scheduler:
        raise ValueError(f"--scheduler {scheduler!r} only applies to --backend dask, not {backend!r}")


def dispatch(tasks: Sequence[RunTask], backend: str, *, progress: GridProgress, jobs: int = 1, threads: int | None = None,
             slurm_options: Any = None, folder: Path | None = None, name: str = "equiv", scheduler: str | None = None,
             on_outcome: Callable[[Outcome], None] | None = None) -> list[Outcome]:
    """Run ``tasks`` on ``backend`` and return their outcomes: the one place where ``equiv run`` and ``equiv book``
    hand work to a backend. ``local``: ``jobs`` processes of ``threads`` threads each, ``on_outcome`` called as
    each run ends; ``slurm``: one job array (``slurm_options``, submitit files under ``folder``); ``dask``: the
    cluster at ``scheduler``. The cluster backends report when every task has ended (``on_outcome`` is then
    called for each outcome, in order)."""
    if backend == "local":
        from equiv.batch.local import run_local

        return run_local(tasks, jobs=jobs, progress=progress, threads=threads, on_outcome=on_outcome)
    if backend == "slurm":
        from equiv.batch.slurm import run_slurm

        if slurm_options is None or folder is None:
            raise ValueError("the slurm backend needs slurm_options and a folder for submitit's files")
        outcomes = run_slurm(tasks, options=slurm_options, folder=folder, progress=progress, name=name)
    elif backend == "dask":
        from equiv.batch.dask_backend import run_dask

        if not scheduler:
            raise ValueError("the dask backend needs a scheduler address")
        outcomes = run_dask(tasks, scheduler=scheduler, progress=progress)
    else:
        raise ValueError(f"--backend {backend!r} is not allowed (allowed: {', '.join(BACKENDS)})")
    for outcome in outcomes if on_outcome is not None else ():
        on_outcome(outcome)
    return outcomes


def check_options(backend: str, jobs: int | None, scheduler: str | None, cell_timeout: int | None, max_runs: int,
                  executor: str = "papermill") -> None:
    """One-line ``ValueError`` for a bad ``equiv run`` option or combination (:func:`check_backend`, ``--jobs``,
    ``--cell-timeout``, ``--max-runs``, ``--executor``), before anything is measured, run or written."""
    check_executor(executor)
    if jobs is not None and (not is_int(jobs, numpy=False) or jobs < 1):
        raise ValueError(f"--jobs {jobs!r} is not allowed (a whole number >= 1)")
    check_backend(backend, scheduler, jobs)
    if cell_timeout is not None and (not is_int(cell_timeout, numpy=False) or cell_timeout < 1):
        raise ValueError(f"--cell-timeout {cell_timeout!r} is not allowed (a whole number of seconds >= 1)")
    check_max_runs(max_runs)


def run_grid(
    grid_path: str | os.PathLike,
    *,
    jobs: int | None = None,
    profile: str | None = None,
    backend: str = "local",
    scheduler: str | None = None,
    retry_failed: bool = False,
    runs_dir: str | os.PathLike = "runs",
    slurm: Mapping[str, Any] | None = None,
    cell_timeout: int | None = None,
    progress: bool = True,
    max_runs: int | None = None,
    threads: int | None = None,
    executor: str = "papermill",
) -> RunSummary:
    """Execute every run of the grid file ``grid_path`` that is not done yet; see ``equiv run --help``.

    ``slurm`` overrides the grid's ``slurm:`` section (keys of :class:`equiv.batch.slurm.SlurmOptions`);
    ``max_runs`` (default :data:`equiv.batch.grid.MAX_RUNS`) is the most runs the grid may have; ``threads``
    the CPU threads per run of the local backend (default ``cores // jobs``; ``equiv run`` measures the best
    packing with :mod:`equiv.batch.packing`); ``executor`` how each notebook is executed
    (:data:`equiv.batch.execute.EXECUTORS`: a Jupyter kernel through papermill, or ``script``, without Jupyter).
    Raises ``ValueError`` (one line; :class:`equiv.batch.layout.NotAFolderError` for a ``runs_dir``
    that is a file) before anything runs or is written when the grid or an option is wrong.
    """
    max_runs = MAX_RUNS if max_runs is None else max_runs
    check_options(backend, jobs, scheduler, cell_timeout, max_runs, executor)
    check_can_be_folder(runs_dir, "--runs-dir")
    grid = load_grid(grid_path, profile=profile, max_runs=max_runs)
    if executor == "script":  # a notebook it cannot run is refused before any run starts
        from equiv.batch.script import check_notebook

        check_notebook(json.loads(Path(grid.notebook).read_text(encoding="utf-8")), grid.notebook_key)
    check_can_be_folder(grid_dir(runs_dir, grid.name), "the grid's runs folder")
    slurm_options = None
    if backend == "slurm":
        from equiv.batch.slurm import SlurmOptions, check_available

        overrides = dict(slurm or {})
        if jobs is not None and overrides.get("array_parallelism") is None and "array_parallelism" not in grid.slurm:
            overrides["array_parallelism"] = jobs
        slurm_options = SlurmOptions.merged(grid.slurm, overrides)
        check_available(slurm_options)
    tasks, done_before = plan_grid(grid, runs_dir, retry_failed=retry_failed)
    if cell_timeout is not None or executor != "papermill":
        extra = {"executor": executor, **({} if cell_timeout is None else {"cell_timeout": int(cell_timeout)})}
        tasks = [RunTask.from_dict({**t.to_dict(), **extra}) for t in tasks]
    gdir = grid_dir(runs_dir, grid.name)
    bar = GridProgress(grid.name, len(tasks), already_done=done_before, enabled=progress and bool(tasks))
    try:
        outcomes = dispatch(tasks, backend, progress=bar, jobs=jobs or 1, threads=threads, slurm_options=slurm_options,
                            folder=gdir / ".submitit", name=f"equiv-{grid.name}", scheduler=scheduler)
    finally:
        bar.close()
    from equiv.batch.committed import committed_ids

    committed = committed_ids(grid.results, [spec.run_id for spec in grid.runs])
    states = [None if spec.run_id in committed else read_run_state(gdir / spec.run_id) for spec in grid.runs]
    done = sum(s is None or s.state == "done" for s in states)
    failed = sum(s is not None and s.state == "failed" for s in states)
    executed = sum(o.status in ("done", "failed") and o.attempt > t.expected_attempt for o, t in _pair(outcomes, tasks))
    return RunSummary(
        grid=grid.name,
        grid_dir=gdir,
        total=len(grid.runs),
        done=done,
        failed=failed,
        unfinished=len(grid.runs) - done - failed,
        done_before=done_before,
        executed=executed,
        outcomes=outcomes,
    )


def _pair(outcomes: list[Outcome], tasks: list[RunTask]):
    by_id = {t.run_id: t for t in tasks}
    return [(o, by_id[o.run_id]) for o in outcomes if o.run_id in by_id]

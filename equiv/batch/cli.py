"""``equiv run``, ``equiv status`` and ``equiv results``: the batch runner's commands.

:func:`register` adds them to the ``equiv`` command line (:mod:`equiv.cli`); each ``func`` returns
an exit code: ``run`` 0 when every run of the grid is done, 1 when any failed (its last stdout line
says how many); ``status`` 0; ``results`` 0, or 1 when no run has finished yet. Bad input (options, a grid over
``--max-runs``, a file where a folder is expected) raises a one-line ``ValueError`` / ``OSError``
before anything is written, which :func:`equiv.cli.main` prints as ``equiv <command>: error: ...``.
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

__all__ = ["register", "cmd_run", "cmd_status", "cmd_results"]


def _whole_number(low: int, high: int | None = None, unit: str = ""):
    """An argparse type: a whole number in ``low..high`` (no upper bound when ``high`` is None), or one line
    saying what is allowed."""
    allowed = f"a whole number{unit} >= {low}" if high is None else f"a whole number from {low} to {high}"

    def parse(text: str) -> int:
        try:
            value = int(text)
        except ValueError:
            value = None
        if value is None or value < low or (high is not None and value > high):
            raise argparse.ArgumentTypeError(f"{text!r} is not allowed ({allowed})")
        return value

    return parse


def _max_runs(text: str) -> int:
    from equiv.batch.grid import MAX_RUNS_CEILING

    return _whole_number(1, MAX_RUNS_CEILING)(text)


_positive_int = _whole_number(1)
_nonneg_int = _whole_number(0)
_whole_seconds = _whole_number(1, unit=" of seconds")


def _positive_float(text: str) -> float:
    try:
        value = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r} is not a number") from None
    if not value > 0:
        raise argparse.ArgumentTypeError(f"{text!r} is not allowed (a number > 0)")
    return value


def add_slurm_arguments(parser: argparse.ArgumentParser, title: str) -> None:
    """The ``--slurm-*`` flags (``equiv run`` and ``equiv book``); read back with :func:`slurm_overrides`."""
    from equiv.batch.slurm import CLUSTERS

    slurm = parser.add_argument_group(title)
    slurm.add_argument("--slurm-partition", default=None)
    slurm.add_argument("--slurm-gpus-per-run", type=_nonneg_int, default=None, metavar="N")
    slurm.add_argument("--slurm-cpus-per-run", type=_positive_int, default=None, metavar="N")
    slurm.add_argument("--slurm-time-limit", type=_positive_int, default=None, metavar="MINUTES", help="per run")
    slurm.add_argument("--slurm-array-parallelism", type=_positive_int, default=None, metavar="N", help="array tasks at once (default: --jobs)")
    slurm.add_argument("--slurm-mem-gb", type=_positive_float, default=None, metavar="GB")
    slurm.add_argument("--slurm-cluster", choices=CLUSTERS, default=None, help="'local' runs the array with submitit's LocalExecutor")


def slurm_overrides(args: argparse.Namespace) -> dict:
    """The ``--slurm-*`` flags as :class:`equiv.batch.slurm.SlurmOptions` keys (None: not given)."""
    return {
        "cluster": args.slurm_cluster,
        "partition": args.slurm_partition,
        "gpus_per_run": args.slurm_gpus_per_run,
        "cpus_per_run": args.slurm_cpus_per_run,
        "time_limit_min": args.slurm_time_limit,
        "array_parallelism": args.slurm_array_parallelism,
        "mem_gb": args.slurm_mem_gb,
    }


def cmd_run(args: argparse.Namespace) -> int:
    """``equiv run``: execute a grid; print failures and a last line with the counts."""
    slurm = slurm_overrides(args)
    try:
        summary = _run(args, slurm)
    except KeyboardInterrupt:
        print("equiv run: interrupted; finished runs are kept, run the same command again to resume", flush=True)
        return 130
    for outcome in summary.outcomes:
        if outcome.status == "failed" and outcome.error:
            message = str(outcome.error.get("message", "")).strip().splitlines()
            print(f"failed {outcome.run_id}: {outcome.error.get('type')}: {message[0] if message else ''}")
    sys.stderr.flush()
    print(summary.last_line(), flush=True)
    return summary.exit_code


def _run(args: argparse.Namespace, slurm: dict):
    from equiv.batch.grid import MAX_RUNS
    from equiv.batch.runner import check_options, run_grid

    jobs, threads = args.jobs, args.threads
    # bad options are refused before the packing is measured (which takes tens of seconds) or anything runs
    check_options(args.backend, args.jobs, args.scheduler, args.cell_timeout,
                  MAX_RUNS if args.max_runs is None else args.max_runs, args.executor)
    if args.backend == "local":
        from equiv.batch.grid import load_grid
        from equiv.batch.packing import choose_packing
        from equiv.batch.resources import visible_gpu_ids

        from equiv.batch.layout import check_can_be_folder

        # a bad grid or folder is refused before anything is measured
        check_can_be_folder(args.runs_dir, "--runs-dir")
        load_grid(args.grid, profile=args.profile, max_runs=args.max_runs or MAX_RUNS)
        packing = choose_packing(args.jobs, args.threads, gpu_ids=visible_gpu_ids())
        print(f"equiv run: {packing}", flush=True)
        jobs, threads = packing.jobs, packing.threads
    return run_grid(
        args.grid,
        jobs=jobs,
        threads=threads,
        profile=args.profile,
        backend=args.backend,
        scheduler=args.scheduler,
        retry_failed=args.retry_failed,
        runs_dir=args.runs_dir,
        slurm=slurm,
        cell_timeout=args.cell_timeout,
        progress=not args.no_progress,
        max_runs=args.max_runs,
        executor=args.executor,
    )


def cmd_status(args: argparse.Namespace) -> int:
    """``equiv status``: one line per run and a count line."""
    from equiv.batch.state import format_status, list_run_states

    states = list_run_states(args.run_dir)
    if args.json:
        rows = [
            {
                "run_id": s.run_id,
                "state": s.state,
                "attempt": s.attempt,
                "duration_s": s.duration_s,
                "interrupted": s.interrupted,
                "notebook_changed": s.notebook_changed,
                "parameters": s.parameters,
                "error": s.error,
            }
            for s in states
        ]
        print(json.dumps(rows, indent=2, default=str))
    else:
        print(format_status(states))
    return 0


def cmd_results(args: argparse.Namespace) -> int:
    """``equiv results``: write the tidy table as CSV and Parquet (and their manifest, last)."""
    from equiv.batch.collect import results_manifest_path, results_stem, results_state, write_results
    from equiv.batch.layout import check_can_be_folder
    from equiv.batch.state import list_run_states

    states = list_run_states(args.run_dir, probe_lock=False)
    stem = results_stem(args.run_dir, args.out)
    if args.out is not None:
        check_can_be_folder(stem.parent, "the folder of --out")
    if not any(s.state in ("done", "failed") for s in states):
        print(f"equiv results: error: no finished runs in {args.run_dir} yet", file=sys.stderr)
        return 1
    stale = stem.parent.is_dir() and results_state(stem.with_name(stem.name + ".csv")) == "stale"
    csv_path, parquet_path, frame = write_results(args.run_dir, args.out)
    if stale:
        print(f"equiv results: replaced a pair that did not match {results_manifest_path(stem).name} (an interrupted write)", file=sys.stderr)
    print(f"{len(frame)} rows from {frame['run_id'].nunique()} runs -> {csv_path}, {parquet_path}")
    return 0


def register(subparsers: argparse._SubParsersAction) -> None:
    """Add ``run``, ``status`` and ``results`` to the ``equiv`` command line."""
    from equiv.batch.grid import MAX_RUNS
    from equiv.batch.execute import EXECUTORS
    from equiv.batch.runner import BACKENDS

    run = subparsers.add_parser(
        "run",
        help="execute every parameter combination of a grid file through papermill",
        description="Execute every run of GRID (a YAML grid file, see experiments/README.md) that is not done yet. "
        "Results go to RUNS_DIR/<grid-name>/<run-id>/; rerunning skips finished runs and resumes interrupted ones.",
    )
    run.add_argument("grid", type=Path, help="the grid file (YAML)")
    run.add_argument("--jobs", "-j", type=_positive_int, default=None,
                     help="runs at once on this machine (local backend; default: the measured best packing)")
    run.add_argument("--threads", type=_positive_int, default=None, metavar="T",
                     help="CPU threads per run (local backend; default: cores // jobs, or the measured best packing)")
    run.add_argument("--profile", default=None, help="profile to run (overrides the grid's 'profile' and $EQUIV_PROFILE), e.g. smoke")
    run.add_argument("--backend", choices=BACKENDS, default="local", help="where runs execute (default: local)")
    run.add_argument("--executor", choices=tuple(EXECUTORS), default="papermill",
                     help="how each notebook runs: 'papermill' (a Jupyter kernel, the default) or 'script' (its code "
                          "cells in a plain Python process, for machines without Jupyter); same runs, same results")
    run.add_argument("--scheduler", default=None, metavar="ADDRESS", help="Dask scheduler address, for --backend dask")
    run.add_argument("--retry-failed", action="store_true", help="run failed runs again (otherwise they are left as they are)")
    run.add_argument("--runs-dir", type=Path, default=Path("runs"), help="where results go (default: ./runs)")
    run.add_argument("--cell-timeout", type=_whole_seconds, default=None, metavar="SECONDS", help="fail a run whose cell runs longer (whole seconds >= 1)")
    run.add_argument(
        "--max-runs", type=_max_runs, default=None, metavar="N",
        help=f"allow a grid of up to N runs (default {MAX_RUNS}; bigger grids are refused before anything is written)",
    )
    run.add_argument("--no-progress", action="store_true", help="no progress bar")
    add_slurm_arguments(run, "Slurm (--backend slurm; override the grid's 'slurm:' section)")
    run.set_defaults(func=cmd_run)

    status = subparsers.add_parser("status", help="list each run of a grid: done / failed / running / pending")
    status.add_argument("run_dir", type=Path, metavar="RUNS_DIR/GRID", help="e.g. runs/<grid-name>")
    status.add_argument("--json", action="store_true", help="machine-readable output")
    status.set_defaults(func=cmd_status)

    results = subparsers.add_parser("results", help="collect finished runs into one table (CSV and Parquet)")
    results.add_argument("run_dir", type=Path, metavar="RUNS_DIR/GRID", help="e.g. runs/<grid-name>")
    results.add_argument("--out", type=Path, default=None, help="output path without suffix (default: RUNS_DIR/GRID/results)")
    results.set_defaults(func=cmd_results)

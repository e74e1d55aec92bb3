"""Benchmark of the batch runner (``python benchmarks/batch.py``).

Prints, from one run on this machine:

1. the runner's overhead per run: ``equiv run --jobs 1`` on a grid of N small CPU-bound runs,
   against executing the same notebook with papermill in a loop in one process (which pays the
   same kernel start-up per run), and against the notebook's own cell execution time;
2. the speed-up of ``--jobs 2`` over ``--jobs 1`` on the same grid (fresh results directories).

Everything is timed end to end through the command line, as a user runs it. Nothing is asserted:
timings depend on the machine and on what else runs on it (the load average is printed).
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import nbformat
import papermill
from nbformat.v4 import new_code_cell, new_notebook

from equiv.provenance import device_description

WORK_SECONDS = 0.5  # CPU-bound work per run, inside the notebook (--work changes it)


def make_notebook(path: Path, work: float) -> None:
    nb = new_notebook()
    nb.metadata["kernelspec"] = {"name": "python3", "display_name": "Python 3", "language": "python"}
    params = new_code_cell(f"i = 0\nwork_s = {work}")
    params.metadata["tags"] = ["parameters"]
    body = new_code_cell(
        "import time\n"
        "from equiv.batch.metrics import write_metrics\n"
        "t0 = time.process_time(); n = 0\n"
        "while time.process_time() - t0 < work_s:\n"
        "    n += sum(range(1000))\n"
        "write_metrics({'i': i, 'n': n})"
    )
    nb.cells = [params, body]
    nbformat.write(nb, path)


def run_cli(grid: Path, runs: Path, jobs: int) -> float:
    cmd = [sys.executable, "-m", "equiv.cli", "run", str(grid), "--jobs", str(jobs), "--runs-dir", str(runs), "--no-progress"]
    env = {k: v for k, v in os.environ.items() if k != "EQUIV_PROFILE"}
    t0 = time.perf_counter()
    proc = subprocess.run(cmd, capture_output=True, text=True, env=env)
    elapsed = time.perf_counter() - t0
    if proc.returncode != 0:
        raise SystemExit(f"equiv run failed ({proc.returncode}):\n{proc.stdout}\n{proc.stderr}")
    return elapsed


def manifest_sums(gdir: Path) -> tuple[float, float]:
    ms = [json.loads(p.read_text()) for p in gdir.glob("*/manifest.json")]
    return sum(m["duration_s"] for m in ms), sum(m["cell_execution_s"] or 0 for m in ms)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=6, help="runs in the grid (default 6)")
    parser.add_argument("--work", type=float, default=WORK_SECONDS, help=f"CPU seconds per run (default {WORK_SECONDS})")
    args = parser.parse_args()
    print(f"machine: {device_description('cpu')}")  # the CPU and its instruction set: timings depend on them
    n, work = args.runs, args.work
    with tempfile.TemporaryDirectory(prefix="equiv-bench-") as tmp:
        tmp = Path(tmp)
        nb = tmp / "bench.ipynb"
        make_notebook(nb, work)
        grid = tmp / "bench.yaml"
        grid.write_text(f"name: bench\nnotebook: bench.ipynb\naxes:\n  i: {list(range(n))}\n")

        # baseline: papermill in a loop, one process, same notebook and parameters
        t0 = time.perf_counter()
        for i in range(n):
            papermill.execute_notebook(str(nb), str(tmp / f"direct-{i}.ipynb"), parameters={"i": i}, progress_bar=False, cwd=str(tmp))
        direct = time.perf_counter() - t0

        t1 = run_cli(grid, tmp / "runs1", 1)
        skip = run_cli(grid, tmp / "runs1", 1)  # every run done: the runner's fixed cost
        t2 = run_cli(grid, tmp / "runs2", 2)
        run_s, cell_s = manifest_sums(tmp / "runs1" / "bench")

    load = os.getloadavg()[0] if hasattr(os, "getloadavg") else float("nan")
    print(f"machine: {os.cpu_count()} cores, load average {load:.2f}; grid of {n} runs, {work}s CPU work each")
    print(f"papermill in a loop (baseline)       : {direct:6.2f}s  = {direct / n:.2f}s/run")
    print(f"equiv run --jobs 1 (CLI, end to end) : {t1:6.2f}s  = {t1 / n:.2f}s/run   (fixed start-up, all runs done: {skip:.2f}s)")
    print(f"  notebook cells (papermill timings) : {cell_s:6.2f}s  = {cell_s / n:.2f}s/run; in-worker run time {run_s / n:.2f}s/run")
    print(f"runner overhead per run vs papermill loop : {(t1 - direct) / n:.2f}s  (excluding fixed start-up: {(t1 - skip - direct) / n:.2f}s)")
    print(f"runner overhead per run beyond cell time  : {(t1 - cell_s) / n:.2f}s  (includes kernel start-up; target <= 1.5s)")
    print(f"equiv run --jobs 2                   : {t2:6.2f}s  -> speed-up over --jobs 1: {t1 / t2:.2f}x "
          f"(runs only, without the fixed start-up: {(t1 - skip) / max(t2 - skip, 1e-9):.2f}x)")


if __name__ == "__main__":
    main()

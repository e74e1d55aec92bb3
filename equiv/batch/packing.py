"""How to pack a grid of CPU runs onto this machine: how many runs at once, and how many threads each.

On a few cores, one run with every thread rarely uses them all: a small training step has serial parts
(the optimiser, Python, small tensors) during which the other cores idle. Several runs with fewer threads
each fill those gaps. Which packing is fastest depends on the machine and the model, so it is *measured*:
:func:`measure_packing` starts, for every ``j`` that divides the core count, ``j`` processes with
``cores // j`` threads each at the same time, each timing the same fixed P4CNN training steps (batch 64,
28×28, the shape of the rotated-MNIST runs), and compares the summed throughputs. The result is cached per
machine (CPU model, core count, torch version) in ``$EQUIV_CACHE_DIR/packing.json`` (default
``~/.cache/equiv``), so later grids start at once.

:func:`choose_packing` turns ``equiv run``'s options into a :class:`Packing`: ``--jobs N`` alone keeps N runs
with ``cores // N`` threads each, ``--threads T`` fixes the threads per run, neither measures (or reads the
cache); with GPUs, runs are spread one per GPU and nothing is measured. ``str(packing)`` is the line that
``equiv run`` prints.
"""

from __future__ import annotations

import json
import os
import platform
import subprocess
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable, Sequence

from equiv.atomic_io import atomic_write_json
from equiv.batch.resources import cpu_count
from equiv.settings import CACHE_DIR_ENV
from equiv.validation import is_int

__all__ = ["Packing", "candidates", "measure_packing", "choose_packing", "machine_key", "cache_path",
           "calibrate_main"]

CALIBRATION_STEPS = 4  # timed training steps per process (after one warm-up step)
ENV_CACHE = CACHE_DIR_ENV


@dataclass(frozen=True)
class Packing:
    """``jobs`` runs at once with ``threads`` threads each, and why."""

    jobs: int
    threads: int
    source: str  # "measured", "cached", "--jobs", "--threads", "gpu"
    throughputs: dict[str, float] = field(default_factory=dict)  # "j x t" -> images/s, when measured

    def __str__(self) -> str:
        head = f"packing: {self.jobs} run{'s' if self.jobs > 1 else ''} at once x {self.threads} thread" \
               f"{'s' if self.threads > 1 else ''} each"
        if self.throughputs:
            best = self.throughputs[f"{self.jobs}x{self.threads}"]
            others = ", ".join(f"{k}: {v:.0f} img/s" for k, v in self.throughputs.items() if k != f"{self.jobs}x{self.threads}")
            return f"{head} ({self.source}: {best:.0f} img/s; {others}; override with --jobs/--threads)"
        return f"{head} ({self.source})"


def candidates(cores: int) -> list[tuple[int, int]]:
    """``(jobs, threads)`` with ``jobs · threads = cores``: 1×cores, …, cores×1."""
    return [(j, cores // j) for j in range(1, cores + 1) if cores % j == 0]


def machine_key(cores: int) -> str:
    import torch

    cpu = platform.processor() or platform.machine()
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                cpu = line.split(":", 1)[1].strip()
                break
    except OSError:
        pass
    return f"{cpu} | {cores} cores | torch {torch.__version__}"


def cache_path() -> Path:
    return Path(os.environ.get(ENV_CACHE) or Path.home() / ".cache" / "equiv") / "packing.json"


def _calibrate_command(threads: int, steps: int) -> list[str]:
    return [sys.executable, "-c", f"from equiv.batch.packing import calibrate_main; calibrate_main({threads}, {steps})"]


def calibrate_main(threads: int, steps: int) -> None:
    """In a calibration process: time ``steps`` P4CNN training steps with ``threads`` threads, print img/s."""
    import torch
    import torch.nn.functional as F

    from equiv.models import build

    torch.set_num_threads(threads)
    torch.manual_seed(0)
    model = build("p4cnn").train()
    opt = torch.optim.Adam(model.parameters(), 1e-3)
    x, y = torch.randn(64, 1, 28, 28), torch.randint(0, 10, (64,))

    def step() -> None:
        opt.zero_grad(set_to_none=True)
        F.cross_entropy(model(x), y).backward()
        opt.step()

    step()
    print("ready", flush=True)
    sys.stdin.readline()  # every process of the candidate starts timing together
    t0 = time.perf_counter()
    for _ in range(steps):
        step()
    print(f"{steps * 64 / (time.perf_counter() - t0):.3f}", flush=True)


def _run_candidate(jobs: int, threads: int, steps: int) -> float:
    env = {**os.environ, "OMP_NUM_THREADS": str(threads), "MKL_NUM_THREADS": str(threads)}
    procs = [subprocess.Popen(_calibrate_command(threads, steps), stdin=subprocess.PIPE, stdout=subprocess.PIPE,
                              stderr=subprocess.DEVNULL, text=True, env=env) for _ in range(jobs)]
    try:
        for p in procs:
            if p.stdout.readline().strip() != "ready":
                raise RuntimeError("a calibration process did not start")
        for p in procs:
            p.stdin.write("go\n")
            p.stdin.flush()
        return sum(float(p.stdout.readline()) for p in procs)
    finally:
        for p in procs:
            p.kill() if p.poll() is None else None
            p.wait()


def measure_packing(cores: int | None = None, *, steps: int = CALIBRATION_STEPS, use_cache: bool = True,
                    run: Callable[[int, int, int], float] = _run_candidate) -> Packing:
    """The fastest ``(jobs, threads)`` packing on this machine, measured (or read from the cache)."""
    cores = cpu_count() if cores is None else cores
    key = machine_key(cores)
    path = cache_path()
    if use_cache:
        try:
            cached = json.loads(path.read_text()).get(key)
            if cached:
                return Packing(cached["jobs"], cached["threads"], "cached", dict(cached["throughputs"]))
        except (OSError, ValueError, KeyError, TypeError):
            pass
    throughputs = {f"{j}x{t}": run(j, t, steps) for j, t in candidates(cores)}
    best = max(candidates(cores), key=lambda jt: throughputs[f"{jt[0]}x{jt[1]}"])
    packing = Packing(best[0], best[1], "measured", throughputs)
    if use_cache:
        try:
            data = json.loads(path.read_text()) if path.is_file() else {}
        except (OSError, ValueError):
            data = {}
        data[key] = {"jobs": best[0], "threads": best[1], "throughputs": throughputs,
                     "measured_utc": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime())}
        try:
            atomic_write_json(path, data)
        except OSError:  # a read-only home: measure again next time
            pass
    return packing


def choose_packing(jobs: int | None, threads: int | None, *, cores: int | None = None,
                   gpu_ids: Sequence[str] = (), measure: Callable[[int], Packing] | None = None) -> Packing:
    """The packing for ``equiv run --jobs JOBS --threads THREADS`` (None: not given)."""
    cores = cpu_count() if cores is None else cores
    for name, value in (("--jobs", jobs), ("--threads", threads)):
        if value is not None and (not is_int(value, numpy=False) or value < 1):
            raise ValueError(f"{name} {value!r} is not allowed (a whole number >= 1)")
    if gpu_ids:
        j = jobs or len(gpu_ids)
        return Packing(j, threads or max(1, cores // j), "gpu")
    if jobs is None and threads is None:
        return (measure or (lambda c: measure_packing(c)))(cores)
    if jobs is None:
        return Packing(max(1, cores // threads), threads, "--threads")
    return Packing(jobs, threads or max(1, cores // jobs), "--threads" if threads else "--jobs")

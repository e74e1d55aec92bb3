"""Throughput of a 4-run seed grid with the packing equiv run chooses, against the runs one after another.

Each run is a separate process that trains the rotated-MNIST P4CNN on the embedded digits (seeded, like the
study's runs; ``--digits`` and ``--epochs`` set its size). The baseline runs the four one after another with
every core's thread each (``cores`` threads, the default of a lone run); the packed grid uses
:func:`equiv.batch.packing.measure_packing` (measured here, not read from a cache) and runs ``jobs`` at a time
with ``threads`` each. Target: ≥ 1.3× the baseline's throughput.

    python benchmarks/packing.py [--digits 1000] [--epochs 1]
"""

from __future__ import annotations

import argparse
import os
import subprocess
import sys
import time

from equiv.batch.packing import measure_packing
from equiv.batch.resources import cpu_count
from equiv.provenance import device_description

RUN = """
import torch
from equiv.data import mnist
from equiv.models import build
from equiv.reproducibility import seed_everything
from equiv.train import fit
seed = {seed}
data = mnist("embedded", seed=0, train_size={digits}, val_size=0, test_size=100).prepared(28)
seed_everything(seed)
fit(build("p4cnn"), data, epochs={epochs}, batch_size=64, seed=seed, device="cpu", progress=False, evaluate_on=None)
"""


def grid(seeds: list[int], jobs: int, threads: int, digits: int, epochs: int) -> float:
    """Seconds for the runs of ``seeds``, ``jobs`` at a time with ``threads`` threads each."""
    env = {**os.environ, "OMP_NUM_THREADS": str(threads), "MKL_NUM_THREADS": str(threads)}
    t0 = time.perf_counter()
    pending = list(seeds)
    running: list[subprocess.Popen] = []
    while pending or running:
        while pending and len(running) < jobs:
            code = RUN.format(seed=pending.pop(0), digits=digits, epochs=epochs)
            running.append(subprocess.Popen([sys.executable, "-c", code], env=env))
        running[0].wait()
        if running[0].returncode != 0:
            raise SystemExit(f"a run failed with exit status {running[0].returncode}")
        running.pop(0)
    return time.perf_counter() - t0


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--digits", type=int, default=1000)
    ap.add_argument("--epochs", type=int, default=1)
    args = ap.parse_args()
    print(f"machine: {device_description('cpu')}")  # the CPU and its instruction set: timings depend on them
    cores = cpu_count()
    packing = measure_packing(cores, use_cache=False)
    print(f"{cores} cores; {packing}")
    seeds = [1, 2, 3, 4]
    sequential = grid(seeds, 1, cores, args.digits, args.epochs)
    packed = grid(seeds, packing.jobs, packing.threads, args.digits, args.epochs)
    print(f"4 runs ({args.digits} digits x {args.epochs} epoch): one after another with {cores} threads {sequential:.1f} s; "
          f"{packing.jobs} at a time x {packing.threads} threads {packed:.1f} s; throughput ratio {sequential / packed:.2f} "
          f"(target >= 1.3)")


if __name__ == "__main__":
    main()

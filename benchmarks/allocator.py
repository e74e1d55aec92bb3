"""Training-step time with glibc's default allocator settings against :func:`equiv.allocator.keep_freed_memory`.

The allocator's settings are per process, so every configuration runs in its own interpreter, the rounds
interleaved (the order rotating), each timing the median of ``--steps`` steps after two warm-up steps:

- ``reference, default``: the frozen layers of before the channels-last layout (``benchmarks/reference_layers.py``),
  glibc as it comes: main before this work;
- ``equiv, default``: today's layers, glibc as it comes (what ``benchmarks/steps.py`` times);
- ``equiv, keep``: today's layers with the thresholds :func:`equiv.train.fit` sets.

Printed: each configuration's median over the rounds, ``default/keep`` (the allocator alone) and
``reference/keep`` (main before this work against a training step as ``fit`` runs it today).

    python benchmarks/allocator.py [--rounds 3] [--steps 20] [--threads 1] [--cases p4cnn28 resnet44w2]
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
from pathlib import Path

HERE = Path(__file__).resolve().parent
CASES = {"p4cnn28": ("P4CNN", 28, 128, 1), "p4cnn27": ("P4CNN", 27, 128, 1), "resnet44w2": ("ResNet-44 w2", 33, 16, 1),
         "resnet44w2-p4m": ("ResNet-44 w2 P4M", 33, 16, 1)}
CONFIGS = (("reference", "default"), ("equiv", "default"), ("equiv", "keep"))

_CHILD = r"""
import json, statistics, sys, time
sys.path.insert(0, {here!r})
import torch
from steps import training_step
from reference_layers import ReferenceKit
from equiv.allocator import keep_freed_memory
from equiv.models import build
from equiv.models.p4cnn import P4CNN
from equiv.models.resnet import CifarResNet
state = keep_freed_memory()
torch.set_num_threads({threads})
torch.manual_seed(0)
name, size, batch, c_in = {case!r}
group = "p4m" if name.endswith("P4M") else "p4"
if name == "P4CNN":
    net = build("p4cnn") if {impl!r} == "equiv" else P4CNN(ReferenceKit("p4"), 10)
elif {impl!r} == "equiv":
    net = build("resnet44", group=group, width=2, in_channels=c_in)
else:
    net = CifarResNet(ReferenceKit(group), (7, 7, 7), 2, in_channels=c_in)
step = training_step(net, size, batch, c_in)
step(), step()
times = []
for _ in range({steps}):
    t0 = time.perf_counter(); step(); times.append(time.perf_counter() - t0)
print(json.dumps({{"ms": statistics.median(times) * 1e3, "applied": state["applied"]}}))
"""


def _time(case: tuple, impl: str, mode: str, steps: int, threads: int) -> dict:
    env = {**os.environ, "EQUIV_MALLOC": mode, "OMP_NUM_THREADS": str(threads)}
    code = _CHILD.format(here=str(HERE), threads=threads, case=case, impl=impl, steps=steps)
    out = subprocess.run([sys.executable, "-c", code], env=env, capture_output=True, text=True, check=False)
    if out.returncode != 0:
        raise SystemExit(f"{impl}/{mode} failed: {out.stderr.strip().splitlines()[-1]}")
    return json.loads(out.stdout.strip().splitlines()[-1])


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--rounds", type=int, default=3)
    ap.add_argument("--steps", type=int, default=20)
    ap.add_argument("--threads", type=int, default=1)
    ap.add_argument("--cases", nargs="+", default=["p4cnn28", "resnet44w2"], choices=sorted(CASES))
    args = ap.parse_args()
    for name, value in (("rounds", args.rounds), ("steps", args.steps), ("threads", args.threads)):
        if value < 1:
            raise SystemExit(f"--{name} is {value}; allowed: an integer >= 1")
    sys.path.insert(0, str(HERE.parent))
    from equiv.provenance import device_description

    import torch

    torch.set_num_threads(args.threads)
    print(f"machine: {device_description('cpu')}")
    print(f"{args.threads} threads; each cell: median over {args.rounds} processes of the median of {args.steps} steps")
    print(f"{'network':<24}" + "".join(f"{impl + ', ' + mode + ' (ms)':>26}" for impl, mode in CONFIGS)
          + f"{'default/keep':>14}{'reference/keep':>16}")
    for key in args.cases:
        case = CASES[key]
        times: dict[tuple[str, str], list[float]] = {c: [] for c in CONFIGS}
        for r in range(args.rounds):
            order = CONFIGS[r % 3:] + CONFIGS[: r % 3]  # rotate: no configuration always runs first
            for impl, mode in order:
                got = _time(case, impl, mode, args.steps, args.threads)
                if got["applied"] != (mode == "keep"):
                    raise SystemExit(f"{impl}/{mode}: the allocator setting was {'not ' if mode == 'keep' else ''}applied")
                times[(impl, mode)].append(got["ms"])
        med = {c: statistics.median(v) for c, v in times.items()}
        keep = med[("equiv", "keep")]
        label = f"{case[0]} {case[1]}x{case[1]}"
        print(f"{label:<24}" + "".join(f"{med[c]:>26.1f}" for c in CONFIGS)
              + f"{med[('equiv', 'default')] / keep:>13.2f}x{med[('reference', 'default')] / keep:>15.2f}x", flush=True)
    print("target (issue 10): P4CNN training step >= 1.4x faster than main before this work (reference/keep)")


if __name__ == "__main__":
    main()

"""Which memory layout should a network's group convolutions use? One training step (forward, loss, backward,
Adam) of a ResNet-44 at 33×33 (default: width 2, batch 16, the book profile's classification benchmark:
8–32 channels·|G| for P4, 16–64 for P4M) in four layouts:

- ``settled``: what :func:`equiv.models.build` gives today (:func:`equiv.nn.gconv.settle_layout`: one layout for
  the whole network, channels-last if any convolution reaches ``FAST_LAYOUT_MIN_CHANNELS``);
- ``per-layer``: each convolution by its own width (channels-last at ``C·|G| >= FAST_LAYOUT_MIN_CHANNELS``), so a
  network may switch layout between stages (the rule before ``settle_layout``);
- ``all-cl``: every convolution channels-last; ``all-contiguous``: none;
- ``settled-copy``: a second, identical ``settled`` network, the A/A control: its ratio shows this machine's
  run-to-run noise, and a difference no larger than that is no difference.

Same weights, same batch, interleaved (the order rotating), median of repeats; each figure is also printed as
a ratio to ``settled``.

    python benchmarks/layout_threshold.py [--threads 1] [--repeats 12] [--groups p4 p4m] [--width 2] [--batch 16]
"""

from __future__ import annotations

import argparse
import statistics
import sys
import time
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).resolve().parent))
from steps import training_step  # noqa: E402

from equiv.models import build  # noqa: E402
from equiv.nn import GroupConv2d  # noqa: E402
from equiv.nn.layout import uses_fast_layout  # noqa: E402
from equiv.provenance import device_description  # noqa: E402

LAYOUTS = ("settled", "settled-copy", "per-layer", "all-cl", "all-contiguous")


def make(group: str, layout: str, width: int) -> torch.nn.Module:
    torch.manual_seed(0)
    model = build("resnet44", group=group, in_channels=1, width=width, head="coset")
    for m in model.modules():
        if isinstance(m, GroupConv2d) and not layout.startswith("settled"):
            m._fast_layout = {"per-layer": uses_fast_layout(m.out_channels, m.group.order), "all-cl": True,
                              "all-contiguous": False}[layout]
    return model


def fast_layers(model: torch.nn.Module) -> str:
    flags = [m.fast_layout for m in model.modules() if isinstance(m, GroupConv2d)]
    return f"{sum(flags)}/{len(flags)} channels-last"


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--threads", type=int, default=1)
    ap.add_argument("--repeats", type=int, default=12)
    ap.add_argument("--groups", nargs="+", default=["p4", "p4m"])
    ap.add_argument("--width", type=int, default=2, help="base width (2: the book profile)")
    ap.add_argument("--batch", type=int, default=16)
    args = ap.parse_args()
    torch.set_num_threads(args.threads)
    print(f"machine: {device_description('cpu')}")  # the CPU and its instruction set: timings depend on them
    print(f"{args.threads} thread(s), median of {args.repeats} interleaved steps")
    for group in args.groups:
        models = {name: make(group, name, args.width) for name in LAYOUTS}
        steps = {name: training_step(m, 33, args.batch, 1) for name, m in models.items()}
        for s in steps.values():
            s(), s()
        times = {name: [] for name in steps}
        order = list(steps)
        for i in range(args.repeats):
            for name in order[i % len(order):] + order[:i % len(order)]:  # rotate the order: no first-mover bias
                t0 = time.perf_counter()
                steps[name]()
                times[name].append(time.perf_counter() - t0)
        med = {name: statistics.median(v) * 1e3 for name, v in times.items()}
        for name in LAYOUTS:
            print(f"{group} width {args.width}, batch {args.batch}, 33x33: {name:<15} ({fast_layers(models[name])}): "
                  f"{med[name]:7.1f} ms, {med[name] / med['settled']:.2f} of settled", flush=True)


if __name__ == "__main__":
    main()

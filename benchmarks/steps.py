"""Training-step time of the group networks against a frozen copy of the layers of before the layout change.

``benchmarks/reference_layers.py`` keeps the layers as they were on main before the channels-last layout
(contiguous group maps, BatchNorm3d, ``nn.Dropout``); both networks have the same weights and see the same
batch. One step is forward, cross-entropy, backward and an Adam update. Timings are interleaved (the order
alternating), median of repeats, in one process.

- P4CNN at 28×28 and 27×27, batch 128 (the rotated-MNIST runs): target ≥ 1.4× faster than the reference.
- ResNet-44 P4 at 33×33, batch 32 (the classification benchmark's default width 16): reported.
- ResNet-44 P4 width 2 at 33×33, batch 16 (the book profile): narrow layers keep the contiguous layout
  (:data:`equiv.nn.layout.FAST_LAYOUT_MIN_CHANNELS`); reported, it must not be slower.

    python benchmarks/steps.py [--repeats 10] [--threads 2]
"""

from __future__ import annotations

import argparse
import statistics
import sys
import time
from pathlib import Path

import torch
import torch.nn.functional as F

sys.path.insert(0, str(Path(__file__).resolve().parent))
from reference_layers import ReferenceKit  # noqa: E402

from equiv.models import build  # noqa: E402
from equiv.models.p4cnn import P4CNN  # noqa: E402
from equiv.models.resnet import CifarResNet  # noqa: E402
from equiv.provenance import device_description  # noqa: E402


def training_step(model: torch.nn.Module, size: int, batch: int, in_channels: int):
    gen = torch.Generator().manual_seed(0)
    x = torch.randn(batch, in_channels, size, size, generator=gen)
    y = torch.randint(0, 10, (batch,), generator=gen)
    opt = torch.optim.Adam(model.parameters(), 1e-3)
    model.train()

    def step() -> None:
        opt.zero_grad(set_to_none=True)
        F.cross_entropy(model(x), y).backward()
        opt.step()

    return step


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--repeats", type=int, default=10)
    ap.add_argument("--threads", type=int, default=torch.get_num_threads())
    ap.add_argument("--no-resnet", action="store_true", help="skip the ResNet-44 case")
    args = ap.parse_args()
    torch.set_num_threads(args.threads)
    print(f"machine: {device_description('cpu')}")  # the CPU and its instruction set: timings depend on them
    cases = [("P4CNN", 28, 128, 1), ("P4CNN", 27, 128, 1)]
    if not args.no_resnet:
        cases += [("ResNet-44 P4", 33, 32, 3), ("ResNet-44 w2", 33, 16, 3)]
    print(f"{args.threads} threads, median of {args.repeats} interleaved steps (forward, loss, backward, Adam)")
    print(f"{'network':<14}{'size':>5}{'batch':>6}{'reference (ms)':>16}{'equiv (ms)':>12}{'speed-up':>10}")
    for name, size, batch, c_in in cases:
        torch.manual_seed(0)
        if name == "P4CNN":
            new, ref = build("p4cnn"), P4CNN(ReferenceKit("p4"), 10)
        else:
            width = 2 if name.endswith("w2") else 16
            new, ref = build("resnet44", width=width), CifarResNet(ReferenceKit("p4"), (7, 7, 7), width)
        ref.load_state_dict(new.state_dict())
        steps = {"ref": training_step(ref, size, batch, c_in), "new": training_step(new, size, batch, c_in)}
        for step in steps.values():
            step(), step()
        times = {k: [] for k in steps}
        for i in range(args.repeats):
            for k in (["ref", "new"] if i % 2 == 0 else ["new", "ref"]):  # alternate the order: no first-mover bias
                t0 = time.perf_counter()
                steps[k]()
                times[k].append(time.perf_counter() - t0)
        med = {k: statistics.median(v) * 1e3 for k, v in times.items()}
        print(f"{name:<14}{size:>5}{batch:>6}{med['ref']:>16.1f}{med['new']:>12.1f}{med['ref'] / med['new']:>9.2f}x",
              flush=True)
    print("target: P4CNN >= 1.4x; ResNet-44: reported")


if __name__ == "__main__":
    main()

"""Is the narrow-layer threshold of the channels-last layout right? ResNet-44 width 2 (the book profile's
classification benchmark: 8–32 channels·|G| for P4, 16–64 for P4M), batch 16, 33×33, one training step
(forward, loss, backward, Adam) with :data:`equiv.nn.layout.FAST_LAYOUT_MIN_CHANNELS` as it is (narrow layers
contiguous) vs 0 (every layer channels-last). Same weights, same batch, interleaved, median of repeats.

    python benchmarks/layout_threshold.py [--threads 1] [--repeats 12]
"""

from __future__ import annotations

import argparse
import statistics
import time

import torch
import torch.nn.functional as F

import equiv.nn.layout as layout
from equiv.models import build


def make(group: str, threshold: int) -> torch.nn.Module:
    old = layout.FAST_LAYOUT_MIN_CHANNELS
    layout.FAST_LAYOUT_MIN_CHANNELS = threshold  # read when the layers are built
    try:
        torch.manual_seed(0)
        return build("resnet44", group=group, in_channels=1, width=2, head="coset")
    finally:
        layout.FAST_LAYOUT_MIN_CHANNELS = old


def stepper(model: torch.nn.Module, x: torch.Tensor, y: torch.Tensor):
    opt = torch.optim.Adam(model.parameters(), 1e-3)
    model.train()

    def step() -> None:
        opt.zero_grad(set_to_none=True)
        F.cross_entropy(model(x), y).backward()
        opt.step()

    return step


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--threads", type=int, default=1)
    ap.add_argument("--repeats", type=int, default=12)
    args = ap.parse_args()
    torch.set_num_threads(args.threads)
    gen = torch.Generator().manual_seed(0)
    x, y = torch.randn(16, 1, 33, 33, generator=gen), torch.randint(0, 10, (16,), generator=gen)
    now = layout.FAST_LAYOUT_MIN_CHANNELS
    for group in ("p4", "p4m"):
        a, b = make(group, now), make(group, 0)
        b.load_state_dict(a.state_dict())
        steps = {"threshold": stepper(a, x, y), "all": stepper(b, x, y)}
        for s in steps.values():
            s(), s()
        times = {k: [] for k in steps}
        for i in range(args.repeats):
            for k in (list(steps) if i % 2 == 0 else list(steps)[::-1]):  # alternate the order
                t0 = time.perf_counter()
                steps[k]()
                times[k].append(time.perf_counter() - t0)
        m = {k: statistics.median(v) * 1e3 for k, v in times.items()}
        print(f"{group} width 2, batch 16, 33x33, {args.threads} thread(s): threshold {now}: {m['threshold']:.1f} ms; "
              f"every layer channels-last: {m['all']:.1f} ms; all/threshold = {m['all'] / m['threshold']:.2f}", flush=True)


if __name__ == "__main__":
    main()

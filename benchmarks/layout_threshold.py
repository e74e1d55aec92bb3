"""Is the narrow-layer threshold of the channels-last layout right? ResNet-44 width 2 (the book profile's
classification benchmark: 8–32 channels·|G| for P4, 16–64 for P4M), batch 16, 33×33, one training step
(forward, loss, backward, Adam) with :data:`equiv.nn.layout.FAST_LAYOUT_MIN_CHANNELS` as it is (narrow layers
contiguous) vs 0 (every layer channels-last). Same weights, same batch, interleaved, median of repeats.

    python benchmarks/layout_threshold.py [--threads 1] [--repeats 12]
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

import equiv.nn.layout as layout  # noqa: E402
from equiv.models import build  # noqa: E402


def make(group: str, threshold: int) -> torch.nn.Module:
    old = layout.FAST_LAYOUT_MIN_CHANNELS
    layout.FAST_LAYOUT_MIN_CHANNELS = threshold  # read when the layers are built
    try:
        torch.manual_seed(0)
        return build("resnet44", group=group, in_channels=1, width=2, head="coset")
    finally:
        layout.FAST_LAYOUT_MIN_CHANNELS = old


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--threads", type=int, default=1)
    ap.add_argument("--repeats", type=int, default=12)
    args = ap.parse_args()
    torch.set_num_threads(args.threads)
    now = layout.FAST_LAYOUT_MIN_CHANNELS
    for group in ("p4", "p4m"):
        a, b = make(group, now), make(group, 0)
        b.load_state_dict(a.state_dict())
        steps = {"threshold": training_step(a, 33, 16, 1), "all": training_step(b, 33, 16, 1)}
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

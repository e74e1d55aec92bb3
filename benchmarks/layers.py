"""Forward+backward time of equiv's group convolutions vs a plain nn.Conv2d and e2cnn's R2Conv.

The group convolution with C_in → C_out channels per group element does the work of a plain
``nn.Conv2d(C_in·|G|, C_out·|G|)``; ours adds only the gather of the filter bank. Target: within 1.05×
of the plain convolution on CPU. All timings come from one run, interleaved, median of repeats.

Each step is the layer's forward pass plus its backward pass from a fixed random output gradient
(``out.backward(grad)``), so the timing holds the layer's own work only: a scalar loss such as
``out.square().mean()`` would add elementwise passes over the output whose cost depends on its shape
(5-D group maps vs 4-D images) rather than on the layer.

    python benchmarks/layers.py [--repeats 15] [--batch 64] [--size 28] [--threads 2]
"""

from __future__ import annotations

import argparse
import math
import statistics
import time

import torch
from torch import nn

from equiv.nn import GroupConv2d


def e2cnn_conv(group: str, c_in: int, c_out: int, k: int, lifting: bool) -> nn.Module:
    from e2cnn import gspaces
    from e2cnn import nn as enn

    gs = gspaces.Rot2dOnR2(4) if group == "p4" else gspaces.FlipRot2dOnR2(4)
    in_type = enn.FieldType(gs, c_in * [gs.trivial_repr if lifting else gs.regular_repr])
    out_type = enn.FieldType(gs, c_out * [gs.regular_repr])
    conv = enn.R2Conv(in_type, out_type, k, padding=k // 2, rings=[0, 1, math.sqrt(2)], frequencies_cutoff=1.5)

    class Wrapped(nn.Module):
        def __init__(self):
            super().__init__()
            self.conv = conv

        def forward(self, x):
            return self.conv(enn.GeometricTensor(x, in_type)).tensor

    return Wrapped()


def step_time(module: nn.Module, x: torch.Tensor, grad: torch.Tensor) -> float:
    """Seconds for one forward pass and the backward pass of ``grad`` through it."""
    t0 = time.perf_counter()
    out = module(x)
    out.backward(grad.view_as(out))
    return time.perf_counter() - t0


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--repeats", type=int, default=15)
    ap.add_argument("--batch", type=int, default=64)
    ap.add_argument("--size", type=int, default=28)
    ap.add_argument("--channels", type=int, default=10, help="channels per group element")
    ap.add_argument("--threads", type=int, default=torch.get_num_threads())
    args = ap.parse_args()
    torch.set_num_threads(args.threads)
    torch.manual_seed(0)
    c, n, b, k = args.channels, args.size, args.batch, 3
    print(f"batch {b}, {n}x{n}, {c} channels per group element, 3x3, {args.threads} threads, median of {args.repeats}")
    print(f"{'layer':<14}{'equiv (ms)':>12}{'nn.Conv2d (ms)':>16}{'e2cnn (ms)':>12}{'equiv/plain':>13}{'e2cnn/plain':>13}")
    for group, order in (("p4", 4), ("p4m", 8)):
        for lifting in (False, True):
            c_in = 3 if lifting else c
            ours = GroupConv2d(c_in, c, k, padding=1, group=group, lifting=lifting)
            plain = nn.Conv2d(c_in * (1 if lifting else order), c * order, k, padding=1)
            e2 = e2cnn_conv(group, c_in, c, k, lifting)
            x_ours = torch.randn(b, c_in, n, n) if lifting else torch.randn(b, c_in, order, n, n)
            x_plain = torch.randn(b, plain.in_channels, n, n)
            grad = torch.randn(b, c * order, n, n)  # one output gradient for all three (viewed as each output)
            times = {"ours": [], "plain": [], "e2cnn": []}
            for _ in range(3):  # warm-up
                step_time(ours, x_ours, grad), step_time(plain, x_plain, grad), step_time(e2, x_plain, grad)
            for _ in range(args.repeats):  # interleaved, so drifts hit all three alike
                times["ours"].append(step_time(ours, x_ours, grad))
                times["plain"].append(step_time(plain, x_plain, grad))
                times["e2cnn"].append(step_time(e2, x_plain, grad))
            med = {key: statistics.median(v) * 1e3 for key, v in times.items()}
            name = f"{group.upper()}Conv{'Z2' if lifting else group.upper()}"
            print(f"{name:<14}{med['ours']:>12.2f}{med['plain']:>16.2f}{med['e2cnn']:>12.2f}"
                  f"{med['ours'] / med['plain']:>13.3f}{med['e2cnn'] / med['plain']:>13.3f}")


if __name__ == "__main__":
    main()

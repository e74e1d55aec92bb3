"""Forward+backward time of equiv's group convolutions vs the fastest plain nn.Conv2d and e2cnn's R2Conv.

The group convolution with C_in → C_out channels per group element does the work of a plain
``nn.Conv2d(C_in·|G|, C_out·|G|)``; ours adds only the gather of the filter bank. The baseline is the
*fastest* configuration of that plain convolution on this machine: it is timed in both memory layouts
(contiguous and ``channels_last``) and the faster one, printed, is the denominator. Our group convolutions get
their input in the layout the previous layer of a network hands them (:mod:`equiv.nn.layout`), the lifting
layers the same ``channels_last`` image as the NHWC baseline (a network converts its input image once per
forward pass; ``benchmarks/steps.py`` times that as part of a training step). Target: within 1.05×.
All timings come from one run, interleaved with the order rotating from repeat to repeat (no first-mover
bias), median of repeats. A diagnostic column, ``bank fixed``, times our layer's convolution alone on its
filter bank computed once (a leaf tensor): ``equiv − bank fixed`` is what the gather of the bank (forward) and
its scatter back onto the weights (backward) cost.

Each configuration is timed as ``--copies`` independent instances (same weights, their own input and gradient
tensors), cycled through in the rotating order, and its figure is the median over all repeats of all copies.
Identical objects in one process differ in speed by up to ±6 % on a 2-core VM (memory placement), so a ratio
of one instance against one other measures that as much as the layer. The column ``A/A`` is the control: a
second set of NHWC ``nn.Conv2d`` copies against the first, the ratio two identical configurations give; a gap
no larger than its distance from 1 is no gap.

Each step is the layer's forward pass plus its backward pass from a fixed random output gradient
(``out.backward(grad)``), so the timing holds the layer's own work only: a scalar loss such as
``out.square().mean()`` would add elementwise passes over the output whose cost depends on its shape
(5-D group maps vs 4-D images) rather than on the layer.

Every configuration runs under the allocator setting that training uses (``equiv.allocator.keep_freed_memory``,
as ``fit`` calls it; ``EQUIV_MALLOC=default`` keeps glibc's own), printed in the header.

    python benchmarks/layers.py [--repeats 15] [--copies 3] [--batch 64] [--size 28] [--threads 2]
"""

from __future__ import annotations

import argparse
import copy
import math
import statistics
import time

import torch
import torch.nn.functional as F
from torch import nn

from equiv.allocator import keep_freed_memory
from equiv.nn import GroupConv2d
from equiv.nn.layout import fast_layout, from_planes, to_planes
from equiv.provenance import device_description


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


class FixedBank(nn.Module):
    """``layer``'s convolution on its transformed filter bank computed once: the same call without the gather."""

    def __init__(self, layer: GroupConv2d):
        super().__init__()
        self.layer = layer
        self.bank = nn.Parameter(layer.transformed_weight().detach().clone(
            memory_format=torch.channels_last if layer.fast_layout else torch.contiguous_format))
        n = layer.group.order
        self.bias = nn.Parameter(layer.bias.detach().repeat(n) if layer.fast_layout else
                                 layer.bias.detach().repeat_interleave(n))

    def forward(self, x):
        layer = self.layer
        if layer.fast_layout:
            x = x if layer.lifting else to_planes(x)
            y = F.conv2d(x, self.bank, self.bias, layer.stride, layer.padding, layer.dilation)
            return from_planes(y, layer.out_channels)
        x = x if layer.lifting else x.flatten(1, 2)
        return F.conv2d(x, self.bank, self.bias, layer.stride, layer.padding, layer.dilation).unflatten(
            1, (layer.out_channels, layer.group.order))


def step_time(module: nn.Module, x: torch.Tensor, grad: torch.Tensor) -> float:
    """Seconds for one forward pass and the backward pass of ``grad`` through it."""
    t0 = time.perf_counter()
    out = module(x)
    out.backward(grad.view_as(out))
    return time.perf_counter() - t0


def instances(module: nn.Module, x: torch.Tensor, grad: torch.Tensor, copies: int) -> list[tuple[nn.Module, torch.Tensor, torch.Tensor]]:
    """``copies`` independent instances of one configuration: the module deep-copied (same weights), the input
    and output gradient cloned in their own memory format (the first instance is the original)."""
    out = [(module, x, grad)]
    for _ in range(copies - 1):
        out.append((copy.deepcopy(module), x.clone(), grad.clone()))
    return out


def iqr(ours: list[float], base: list[float]) -> str:
    """The quartiles of the per-repeat ratios ``ours[i] / base[i]`` (timed in the same round): the noise."""
    q = statistics.quantiles([a / b for a, b in zip(ours, base)], n=4)
    return f"{q[0]:.2f}–{q[2]:.2f}"


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--repeats", type=int, default=15)
    ap.add_argument("--copies", type=int, default=3, help="independent instances of each configuration")
    ap.add_argument("--batch", type=int, default=64)
    ap.add_argument("--size", type=int, default=28)
    ap.add_argument("--channels", type=int, default=10, help="channels per group element")
    ap.add_argument("--threads", type=int, default=torch.get_num_threads())
    args = ap.parse_args()
    if args.repeats < 2 or args.copies < 1:
        ap.error(f"need --repeats >= 2 and --copies >= 1, got --repeats {args.repeats} --copies {args.copies}")
    torch.set_num_threads(args.threads)
    print(f"machine: {device_description('cpu')}")  # the CPU and its instruction set: timings depend on them
    state = keep_freed_memory()  # as fit does; $EQUIV_MALLOC=default leaves glibc's own thresholds
    print(f"allocator: {'keeps freed memory (as fit)' if state['applied'] else 'glibc default: ' + state['reason']}")
    torch.manual_seed(0)
    c, n, b, k = args.channels, args.size, args.batch, 3
    print(f"batch {b}, {n}x{n}, {c} channels per group element, 3x3, {args.threads} threads, median of {args.repeats} "
          f"repeats x {args.copies} copies")
    print(f"{'layer':<14}{'equiv (ms)':>12}{'Conv2d NCHW':>13}{'Conv2d NHWC':>13}{'e2cnn (ms)':>12}"
          f"{'fastest':>9}{'equiv/fastest':>15}{'(IQR)':>14}{'e2cnn/fastest':>15}{'bank fixed/fastest':>20}{'A/A':>7}")
    for group, order in (("p4", 4), ("p4m", 8)):
        for lifting in (False, True):
            c_in = 3 if lifting else c
            ours = GroupConv2d(c_in, c, k, padding=1, group=group, lifting=lifting)
            plain = nn.Conv2d(c_in * (1 if lifting else order), c * order, k, padding=1)
            plain_cl = nn.Conv2d(plain.in_channels, plain.out_channels, k, padding=1).to(memory_format=torch.channels_last)
            e2 = e2cnn_conv(group, c_in, c, k, lifting)
            x_plain = torch.randn(b, plain.in_channels, n, n)
            x_cl = x_plain.contiguous(memory_format=torch.channels_last)
            # the input each runs fastest on: a lifting layer and the NHWC baseline get the same NHWC image
            x_ours = x_cl if lifting else fast_layout(torch.randn(b, c_in, order, n, n))
            grad = torch.randn(b, c * order, n, n)  # one output gradient for all (viewed as each output)
            grad_ours = fast_layout(grad.view(b, order, c, n, n).transpose(1, 2))
            grad_cl = grad.contiguous(memory_format=torch.channels_last)
            configs = {"ours": (ours, x_ours, grad_ours), "fixed": (FixedBank(ours), x_ours, grad_ours), "nchw": (plain, x_plain, grad), "nhwc": (plain_cl, x_cl, grad_cl),
                       "e2cnn": (e2, x_plain, grad), "nhwc_aa": (copy.deepcopy(plain_cl), x_cl.clone(), grad_cl.clone())}
            runs = {key: instances(*config, args.copies) for key, config in configs.items()}
            times = {key: [] for key in runs}
            for _ in range(3):  # warm-up
                for group_of_copies in runs.values():
                    for module, x, g in group_of_copies:
                        step_time(module, x, g)
            slots = [(key, i) for i in range(args.copies) for key in runs]
            for r in range(args.repeats):  # interleaved, so drifts hit all alike; the order rotates
                for key, i in slots[r % len(slots):] + slots[:r % len(slots)]:
                    module, x, g = runs[key][i]
                    times[key].append(step_time(module, x, g))
            med = {key: statistics.median(v) * 1e3 for key, v in times.items()}
            fastest = "nhwc" if med["nhwc"] < med["nchw"] else "nchw"
            name = f"{group.upper()}Conv{'Z2' if lifting else group.upper()}"
            print(f"{name:<14}{med['ours']:>12.2f}{med['nchw']:>13.2f}{med['nhwc']:>13.2f}{med['e2cnn']:>12.2f}"
                  f"{fastest.upper():>9}{med['ours'] / med[fastest]:>15.3f}{iqr(times['ours'], times[fastest]):>14}"
                  f"{med['e2cnn'] / med[fastest]:>15.3f}"
                  f"{med['fixed'] / med[fastest]:>20.3f}{med['nhwc_aa'] / med['nhwc']:>7.3f}")

if __name__ == "__main__":
    main()

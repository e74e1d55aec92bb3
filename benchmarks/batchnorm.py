"""Forward+backward time of group batch norm on channels-last group maps vs PyTorch's fastest batch norm.

:class:`equiv.nn.GroupBatchNorm` on a map in the fast layout (:mod:`equiv.nn.layout`) against
:class:`torch.nn.BatchNorm3d` on the same values as a contiguous map, the layout PyTorch's kernel runs fastest
(its channels-last kernel vectorises over the few channels). A third column times the previous implementation
of the fast-layout path (one elementwise operation per pass everywhere; kept below as ``PreviousTrainingNorm``
for this comparison only), with the same module around it. An ``A/A`` column times a second, identical ``BatchNorm3d`` against the first.

Shapes: the P4CNN's maps (batch 128, 10 channels, 28×28, 14×14, 6×6) and the book profile's width-2 P4M
ResNet-44 maps (batch 16, 2/4/8 channels at 33/17/9). Interleaved with the order rotating, median of repeats.

    python benchmarks/batchnorm.py [--repeats 30] [--threads 1]
"""

from __future__ import annotations

import argparse
import copy
import statistics
import time

import torch
from torch import nn

from equiv.nn import GroupBatchNorm
from equiv.nn.batchnorm import _fold
from equiv.nn.layout import fast_layout, is_fast_layout
from equiv.provenance import device_description

SHAPES = ((128, 10, 4, 28, 28), (128, 10, 4, 14, 14), (128, 10, 4, 6, 6), (16, 2, 8, 33, 33), (16, 4, 8, 17, 17),
          (16, 8, 8, 9, 9))


def _column_sum(folded: torch.Tensor, r: int) -> torch.Tensor:
    return folded.sum(0).view(r, -1).sum(0)


class PreviousTrainingNorm(torch.autograd.Function):
    """The fast-layout training pass before 2026-12-03: one elementwise operation per pass."""

    @staticmethod
    def forward(ctx, x, weight, bias, eps):
        n, c = x.shape
        r = _fold(n, c)
        xf = x.view(n // r, r * c)
        mean = _column_sum(xf, r) / n
        d = xf - mean.repeat(r)
        var = _column_sum(d * d, r) / n
        invstd = torch.rsqrt(var + eps)
        scale = invstd * weight
        ctx.save_for_backward(d, invstd, weight)
        ctx.fold = r
        ctx.mark_non_differentiable(mean, var)
        return torch.addcmul(bias.repeat(r), d, scale.repeat(r)).view(n, c), mean, var

    @staticmethod
    def backward(ctx, grad, _gmean, _gvar):
        d, invstd, weight = ctx.saved_tensors
        r = ctx.fold
        n = d.shape[0] * r
        gf = grad.contiguous().view(d.shape)
        sum_g, sum_gd = _column_sum(gf, r), _column_sum(gf * d, r)
        scale = invstd * weight
        k_d, k_0 = -scale * invstd * invstd * sum_gd / n, -scale * sum_g / n
        grad_x = torch.addcmul(k_0.repeat(r), gf, scale.repeat(r)).addcmul_(d, k_d.repeat(r)).view(n, d.shape[1] // r)
        return grad_x, sum_gd * invstd, sum_g, None


class PreviousGroupBatchNorm(GroupBatchNorm):
    """:class:`equiv.nn.GroupBatchNorm` in training mode on the fast layout (running statistics included) through
    :class:`PreviousTrainingNorm`."""

    def forward(self, x):
        assert self.training and is_fast_layout(x) and self.momentum is not None
        c = x.shape[1]
        m = x.permute(0, 3, 4, 2, 1).reshape(-1, c)
        y, mean, var = PreviousTrainingNorm.apply(m, self.weight, self.bias, self.eps)
        with torch.no_grad():
            self.num_batches_tracked.add_(1)
            f, n = self.momentum, m.shape[0]
            self.running_mean.mul_(1 - f).add_(mean, alpha=f)
            self.running_var.mul_(1 - f).add_(var * (n / (n - 1)), alpha=f)
        b, _, g, h, w = x.shape
        return y.view(b, h, w, g, c).permute(0, 4, 3, 1, 2)


def step(module: nn.Module, x: torch.Tensor, grad: torch.Tensor) -> float:
    t0 = time.perf_counter()
    module(x).backward(grad)
    return time.perf_counter() - t0


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--repeats", type=int, default=30)
    ap.add_argument("--threads", type=int, default=torch.get_num_threads())
    args = ap.parse_args()
    if args.repeats < 2:
        ap.error(f"need --repeats >= 2, got --repeats {args.repeats}")
    torch.set_num_threads(args.threads)
    print(f"machine: {device_description('cpu')}")
    print(f"{args.threads} threads, median of {args.repeats} interleaved forward+backward passes (training mode)")
    print(f"{'shape':<22}{'equiv (ms)':>11}{'BatchNorm3d':>12}{'previous':>10}{'equiv/BN3d':>12}{'previous/equiv':>16}{'A/A':>7}")
    torch.manual_seed(0)
    for shape in SHAPES:
        x = torch.randn(shape)
        grad = torch.randn(shape)
        xf, gf = fast_layout(x).requires_grad_(), fast_layout(grad)
        assert is_fast_layout(xf) and is_fast_layout(gf)
        native = nn.BatchNorm3d(shape[1])
        runs = {"equiv": (GroupBatchNorm(shape[1]), xf, gf), "bn3d": (native, x.clone().requires_grad_(), grad),
                "previous": (PreviousGroupBatchNorm(shape[1]), xf, gf),
                "bn3d_aa": (copy.deepcopy(native), x.clone().requires_grad_(), grad.clone())}
        times = {k: [] for k in runs}
        for module, xx, g in runs.values():
            step(module, xx, g)
        keys = list(runs)
        for r in range(args.repeats):
            for k in keys[r % len(keys):] + keys[:r % len(keys)]:
                times[k].append(step(*runs[k]))
        med = {k: statistics.median(v) * 1e3 for k, v in times.items()}
        print(f"{'x'.join(map(str, shape)):<22}{med['equiv']:>11.3f}{med['bn3d']:>12.3f}{med['previous']:>10.3f}"
              f"{med['equiv'] / med['bn3d']:>12.2f}{med['previous'] / med['equiv']:>16.2f}"
              f"{med['bn3d_aa'] / med['bn3d']:>7.2f}")


if __name__ == "__main__":
    main()

"""Batch normalisation of group feature maps with statistics shared over the group axis.

:class:`GroupBatchNorm` normalises ``(B, C, |G|, H, W)`` with one mean/variance/affine pair per channel ``C``,
computed over the batch, space *and* the group axis, so ``bn(g·F) = g·bn(F)`` exactly: the statistics are
invariant under the group action.

Speed: a map in the fast layout of :mod:`equiv.nn.layout` is, in memory, a ``(B·H·W·|G|, C)`` matrix with
the few channels innermost. PyTorch's channels-last batch-norm kernel vectorises over those ``C`` (10 in
the P4CNN), which wastes most of an AVX-512 register and runs 3× slower than on a contiguous map. So for that
layout every pass runs here on a folded ``(rows/r, r·C)`` view (``r`` rows side by side, so the inner dimension
is long, with the per-channel vectors tiled ``r`` times): a two-pass variance (mean first, then the mean of
squared deviations: no ``E[x²] − E[x]²`` cancellation), the normalisation in one fused ``addcmul``, and the
textbook backward. Other layouts use :class:`torch.nn.BatchNorm3d` itself. Running
statistics, momentum (``None``: cumulative average), ``eps``, ``affine`` and ``track_running_stats`` follow
:class:`torch.nn.BatchNorm3d`, whose parameters and buffers it keeps (checkpoints are interchangeable).
"""

from __future__ import annotations

import torch
from torch import nn

from equiv.nn.layout import is_fast_layout

__all__ = ["GroupBatchNorm"]


def _fold(rows: int, channels: int) -> int:
    """How many rows to lay side by side, so that reductions and elementwise passes see a long inner dimension."""
    for r in (32, 16, 8, 4, 2):
        if rows % r == 0 and r * channels >= 64:
            return r
    return 1


def _column_sum(folded: torch.Tensor, r: int) -> torch.Tensor:
    """Per-channel sum of an ``(N/r, r·C)`` folded matrix."""
    return folded.sum(0).view(r, -1).sum(0)


class _TrainingNorm(torch.autograd.Function):
    """y = (x − μ)/√(σ² + ε)·γ + β on an ``(N, C)`` matrix, statistics over the rows; returns y, μ, σ².

    Every pass runs on the folded ``(N/r, r·C)`` view with per-channel vectors tiled ``r`` times. The variance
    is two-pass (mean first, then the mean of squared deviations ``d = x − μ``), and ``d`` is kept for the
    backward pass."""

    @staticmethod
    def forward(ctx, x: torch.Tensor, weight: torch.Tensor | None, bias: torch.Tensor | None, eps: float):
        n, c = x.shape
        r = _fold(n, c)
        xf = x.view(n // r, r * c)
        mean = _column_sum(xf, r) / n
        d = xf - mean.repeat(r)
        var = _column_sum(d * d, r) / n
        invstd = torch.rsqrt(var + eps)
        scale = invstd if weight is None else invstd * weight
        y = d * scale.repeat(r) if bias is None else torch.addcmul(bias.repeat(r), d, scale.repeat(r))
        ctx.save_for_backward(d, invstd, weight)
        ctx.fold, ctx.has_bias = r, bias is not None
        ctx.mark_non_differentiable(mean, var)
        return y.view(n, c), mean, var

    @staticmethod
    def backward(ctx, grad: torch.Tensor, _gmean, _gvar):
        d, invstd, weight = ctx.saved_tensors
        r = ctx.fold
        n, c = d.shape[0] * r, d.shape[1] // r
        gf = grad.contiguous().view(d.shape)
        sum_g = _column_sum(gf, r)
        sum_gd = _column_sum(gf * d, r)  # Σ g·(x − μ)
        scale = invstd if weight is None else invstd * weight
        # dx = γ·invstd·(g − mean(g) − x̂·mean(g·x̂)),  x̂ = d·invstd  =  g·k_g + d·k_d + k_0
        grad_x = None
        if ctx.needs_input_grad[0]:
            k_d = -scale * invstd * invstd * sum_gd / n
            k_0 = -scale * sum_g / n
            grad_x = torch.addcmul(k_0.repeat(r), gf, scale.repeat(r)).addcmul_(d, k_d.repeat(r)).view(n, c)
        grad_w = sum_gd * invstd if weight is not None and ctx.needs_input_grad[1] else None
        grad_b = sum_g if ctx.has_bias and ctx.needs_input_grad[2] else None
        return grad_x, grad_w, grad_b, None


class GroupBatchNorm(nn.BatchNorm3d):
    """BatchNorm for ``(B, C, |G|, H, W)``: one mean/variance/affine pair per channel ``C``, shared over the
    group axis and space, so ``bn(g·F) = g·bn(F)`` (see the module docstring for how it runs fast)."""

    def _check_input_dim(self, x: torch.Tensor) -> None:
        if x.dim() != 5:
            raise ValueError(f"GroupBatchNorm expects a group feature map (B, C, |G|, H, W), got shape {tuple(x.shape)}")

    def _momentum(self) -> float:
        if self.momentum is not None:
            return self.momentum
        return 1.0 / float(self.num_batches_tracked)  # cumulative moving average

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        self._check_input_dim(x)
        if not is_fast_layout(x):
            return super().forward(x)
        c = x.shape[1]
        m = x.permute(0, 3, 4, 2, 1).reshape(-1, c)  # (B·H·W·|G|, C): a view
        use_batch = self.training or not self.track_running_stats
        if use_batch:
            if m.shape[0] < 2:
                raise ValueError(f"GroupBatchNorm needs more than one value per channel in training, got shape {tuple(x.shape)}")
            y, mean, var = _TrainingNorm.apply(m, self.weight, self.bias, self.eps)
            if self.training and self.track_running_stats:
                with torch.no_grad():
                    self.num_batches_tracked.add_(1)
                    f, n = self._momentum(), m.shape[0]
                    self.running_mean.mul_(1 - f).add_(mean, alpha=f)
                    self.running_var.mul_(1 - f).add_(var * (n / (n - 1)), alpha=f)
        else:
            invstd = torch.rsqrt(self.running_var + self.eps)
            scale = invstd if self.weight is None else invstd * self.weight
            shift = -self.running_mean * scale if self.bias is None else self.bias - self.running_mean * scale
            y = torch.addcmul(shift, m, scale)
        b, _, g, h, w = x.shape
        return y.view(b, h, w, g, c).permute(0, 4, 3, 1, 2)

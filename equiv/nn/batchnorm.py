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
textbook backward. On maps of at least :data:`KERNEL_MIN_NUMEL` elements the statistics and the backward's two
sums come from PyTorch's own batch-norm kernels, which vectorise well over the folded view: one call each
instead of several elementwise passes. Other layouts use :class:`torch.nn.BatchNorm3d` itself. Running
statistics, momentum (``None``: cumulative average), ``eps``, ``affine`` and ``track_running_stats`` follow
:class:`torch.nn.BatchNorm3d`, whose parameters and buffers it keeps (checkpoints are interchangeable).
"""

from __future__ import annotations

import torch
from torch import nn

from equiv.nn.layout import is_fast_layout

__all__ = ["GroupBatchNorm", "KERNEL_MIN_NUMEL"]


def _fold(rows: int, channels: int) -> int:
    """How many rows to lay side by side, so that reductions and elementwise passes see a long inner dimension."""
    for r in (32, 16, 8, 4, 2):
        if rows % r == 0 and r * channels >= 64:
            return r
    return 1


#: maps of at least this many elements take their sums from PyTorch's batch-norm kernels (one call each), smaller
#: ones from one elementwise operation per pass, whose calls cost less. ``python benchmarks/batchnorm.py``: the
#: kernels 1.1–1.7× faster at 10⁶ elements and more; an earlier run with the kernels on every map (not kept) had
#: them 0.84–0.97× as fast at 0.8–2.8·10⁵ elements
KERNEL_MIN_NUMEL = 2**19


def _column_sum(folded: torch.Tensor, r: int) -> torch.Tensor:
    """Per-channel sum of an ``(N/r, r·C)`` folded matrix."""
    return folded.sum(0).view(r, -1).sum(0)


def _stats(folded: torch.Tensor, r: int) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor | None]:
    """Per-channel mean and biased variance of an ``(N/r, r·C)`` folded matrix, both two-pass (mean first, then
    the mean of squared deviations: no ``E[x²] − E[x]²`` cancellation), and, for small maps, the deviations
    ``d = x − μ`` (``None`` for large maps, whose passes use ``x`` and ``μ``).

    Large maps: PyTorch's batch-norm statistics kernel gives them per column, i.e. per (tile, channel) over
    ``N/r`` rows each, in one call; the ``r`` tiles have equal counts, so a channel's mean is the mean of its
    tile means and its variance the mean of the tile variances plus the variance of the tile means (the law of
    total variance). Small maps: a column sum, the deviations, their squares and a second column sum."""
    if folded.numel() < KERNEL_MIN_NUMEL:
        n = folded.numel() // (folded.shape[1] // r)  # rows of the unfolded (N, C) matrix
        mean = _column_sum(folded, r) / n
        d = folded - mean.repeat(r)
        return mean, _column_sum(d * d, r) / n, d
    tile_mean, tile_var = torch.batch_norm_update_stats(folded, None, None, 0.0)
    tile_mean, tile_var = tile_mean.view(r, -1), tile_var.view(r, -1)
    mean = tile_mean.mean(0)
    return mean, tile_var.mean(0) + (tile_mean - mean).square().mean(0), None


def _grad_sums(gf: torch.Tensor, d: torch.Tensor | None, r: int, xf: torch.Tensor | None = None,
               mean: torch.Tensor | None = None) -> tuple[torch.Tensor, torch.Tensor]:
    """Per-channel ``Σ g`` and ``Σ g·(x − μ)`` of folded matrices: for small maps from the deviations ``d``, for
    large ones (``d`` is None) from one call of PyTorch's batch-norm backward reduction on ``x`` with the tiled
    mean ``μ`` and invstd 1 (its grad_bias and grad_weight per column)."""
    if d is not None:
        return _column_sum(gf, r), _column_sum(gf * d, r)
    ones = xf.new_ones(xf.shape[1])
    _, col_gd, col_g = torch.ops.aten.native_batch_norm_backward(gf, xf, None, None, None, mean.repeat(r), ones, True,
                                                                 0.0, [False, True, True])
    return col_g.view(r, -1).sum(0), col_gd.view(r, -1).sum(0)


class _TrainingNorm(torch.autograd.Function):
    """y = (x − μ)/√(σ² + ε)·γ + β on an ``(N, C)`` matrix, statistics over the rows; returns y, μ, σ².

    Every pass runs on the folded ``(N/r, r·C)`` view with per-channel vectors tiled ``r`` times. The statistics
    come from :func:`_stats`. Small maps keep the deviations ``d = x − μ`` for the backward pass. Large maps
    normalise in one pass as ``x·s + (β − μ·s)`` with ``s = γ/√(σ² + ε)`` (as PyTorch's own CPU kernel does) and
    keep ``x`` and ``μ``; their backward's two sums (Σg and Σg·(x − μ)) come from one kernel call
    (:func:`_grad_sums`) and ``dx`` from two fused passes. On a large map that is two passes over memory forward
    and three backward, instead of eight and six with one elementwise operation each."""

    @staticmethod
    def forward(ctx, x: torch.Tensor, weight: torch.Tensor | None, bias: torch.Tensor | None, eps: float):
        n, c = x.shape
        r = _fold(n, c)
        xf = x.view(n // r, r * c)
        mean, var, d = _stats(xf, r)
        invstd = torch.rsqrt(var + eps)
        scale = invstd if weight is None else invstd * weight
        if d is None:  # large map: one pass from x, no deviations kept
            shift = -mean * scale if bias is None else bias - mean * scale
            y = torch.addcmul(shift.repeat(r), xf, scale.repeat(r))
            ctx.save_for_backward(xf, mean, invstd, weight)
        else:
            y = d * scale.repeat(r) if bias is None else torch.addcmul(bias.repeat(r), d, scale.repeat(r))
            ctx.save_for_backward(d, None, invstd, weight)
        ctx.fold, ctx.has_bias = r, bias is not None
        ctx.mark_non_differentiable(mean, var)
        return y.view(n, c), mean, var

    @staticmethod
    def backward(ctx, grad: torch.Tensor, _gmean, _gvar):
        saved, mean, invstd, weight = ctx.saved_tensors
        r = ctx.fold
        n, c = saved.shape[0] * r, saved.shape[1] // r
        gf = grad.contiguous().view(saved.shape)
        large = mean is not None  # saved is x (large map) or d = x − μ (small map)
        sum_g, sum_gd = _grad_sums(gf, None, r, saved, mean) if large else _grad_sums(gf, saved, r)
        scale = invstd if weight is None else invstd * weight
        # dx = γ·invstd·(g − mean(g) − x̂·mean(g·x̂)),  x̂ = d·invstd  =  g·k_g + d·k_d + k_0,  d = x − μ
        grad_x = None
        if ctx.needs_input_grad[0]:
            k_d = -scale * invstd * invstd * sum_gd / n
            k_0 = -scale * sum_g / n
            if large:
                k_0 = k_0 - mean * k_d  # d·k_d + k_0 = x·k_d + (k_0 − μ·k_d)
            grad_x = torch.addcmul(k_0.repeat(r), gf, scale.repeat(r)).addcmul_(saved, k_d.repeat(r)).view(n, c)
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

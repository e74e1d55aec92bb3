"""Dropout with a cheap random mask on the CPU.

:class:`Dropout` has the semantics of :class:`torch.nn.Dropout`: in training mode every element is zeroed
independently with probability ``p`` and the others are scaled by ``1/(1 − p)``; in eval mode (or with
``p = 0``) it is the identity. Its randomness comes from torch's default generator, so
:func:`equiv.reproducibility.seed_everything` makes it reproducible.

What differs is how the mask is drawn on the CPU. ``nn.Dropout`` calls ``bernoulli_``, which draws one
random number per element and costs 13 % of a P4CNN training step. Here one 64-bit random word gives the
masks of four elements: each 16-bit quarter is compared with a threshold, so an element is kept with
probability ``round((1 − p)·2¹⁶)/2¹⁶`` — ``p`` rounded to a multiple of 2⁻¹⁶ (at most 7.6·10⁻⁶ away; the
effective rate is :attr:`Dropout.rate`). The mask is drawn in the tensor's memory order, so the output keeps
the input's layout (:mod:`equiv.nn.layout`). On other devices ``F.dropout`` runs (fused on GPUs).
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

__all__ = ["Dropout", "keep_mask"]

_LEVELS = 1 << 16


def _threshold(p: float) -> int:
    """The int16 threshold t with P(word < t) = round((1 − p)·2¹⁶)/2¹⁶ for a uniform int16 word."""
    return round((1.0 - p) * _LEVELS) - _LEVELS // 2


def _memory_order(x: torch.Tensor) -> list[int]:
    """The dims of ``x`` from the outermost to the innermost in memory."""
    return sorted(range(x.dim()), key=lambda d: (-x.stride(d), -x.shape[d]))


def _flat(x: torch.Tensor) -> torch.Tensor | None:
    """``x``'s elements as a 1-D view in memory order, or None when ``x`` is not dense."""
    order = _memory_order(x)
    t = x.permute(order)
    return t.view(-1) if t.is_contiguous() else None


def _unflat(flat: torch.Tensor, like: torch.Tensor) -> torch.Tensor:
    """The 1-D ``flat`` viewed with the shape and memory layout of ``like`` (inverse of :func:`_flat`)."""
    order = _memory_order(like)
    inverse = [order.index(d) for d in range(like.dim())]
    return flat.view([like.shape[d] for d in order]).permute(inverse)


def keep_mask(x: torch.Tensor, p: float, generator: torch.Generator | None = None) -> torch.Tensor:
    """A boolean mask shaped and laid out like ``x``: True with probability ``round((1 − p)·2¹⁶)/2¹⁶``."""
    return _unflat(_keep_flat(x.numel(), p, x.device, generator), x)


def _keep_flat(n: int, p: float, device: torch.device, generator: torch.Generator | None = None) -> torch.Tensor:
    words = torch.empty((n + 3) // 4, dtype=torch.int64, device=device)
    words.random_(-(2**63), None, generator=generator)  # uniform over all 2⁶⁴ values (from=int64 min, to=None)
    return words.view(torch.int16)[:n] < _threshold(p)


class _MaskedScale(torch.autograd.Function):
    """``x·keep·scale`` on 1-D memory-order views (a mixed float·bool product is several times slower on a
    permuted multi-dimensional view than on a flat one)."""

    @staticmethod
    def forward(ctx, x: torch.Tensor, keep: torch.Tensor, scale: float) -> torch.Tensor:
        ctx.save_for_backward(keep)
        ctx.scale = scale
        return _unflat(_flat(x).mul(keep).mul_(scale), x)

    @staticmethod
    def backward(ctx, grad: torch.Tensor):
        (keep,) = ctx.saved_tensors
        flat = _flat(grad)
        if flat is None:
            grad = grad.contiguous()
            return grad.view(-1).mul(keep).mul_(ctx.scale).view(grad.shape), None, None
        return _unflat(flat.mul(keep).mul_(ctx.scale), grad), None, None


class Dropout(nn.Dropout):
    """Elementwise dropout with rate ``p`` (see the module docstring); a drop-in :class:`torch.nn.Dropout`."""

    @property
    def rate(self) -> float:
        """The effective drop probability: ``p`` rounded to a multiple of 2⁻¹⁶."""
        return 1.0 - (_threshold(self.p) + _LEVELS // 2) / _LEVELS

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if not self.training or self.p == 0.0:
            return x
        if self.p == 1.0:
            return x * 0.0
        if x.device.type != "cpu" or not x.is_floating_point() or _flat(x) is None:
            return F.dropout(x, self.p, True, self.inplace)
        return _MaskedScale.apply(x, _keep_flat(x.numel(), self.p, x.device), 1.0 / (1.0 - self.p))

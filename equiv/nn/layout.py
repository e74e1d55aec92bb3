"""The memory layout of group feature maps: logically ``(B, C, |G|, H, W)``, in memory ``(B, H, W, |G|, C)``.

Every layer of :mod:`equiv.nn` indexes group maps logically as ``(B, C, |G|, H, W)`` — the conventions of
:mod:`equiv.groups` — but produces them with the channels innermost: memory order ``B, H, W, |G|, C``. Seen
as a plain image batch, such a map is the ``(B, |G|·C, H, W)`` tensor in ``torch.channels_last`` format with
channel index ``g·C + c`` (group-major), which is the layout the CPU's convolution kernels (oneDNN) run
fastest (``benchmarks/layers.py`` measures both layouts and prints which one wins). So

- a group convolution hands its input to ``F.conv2d`` as that channels-last view (:func:`to_planes`, no
  copy) and returns the output as a view again (:func:`from_planes`);
- pooling runs on the same view; group batch norm runs on the ``(B, C, H, W, |G|)`` permutation, which is
  ``torch.channels_last_3d`` (statistics per ``C`` over batch, space and the group axis);
- elementwise layers (ReLU, dropout) keep the layout.

Narrow networks keep the contiguous layout instead. A layer reaches the fast layout at
:data:`FAST_LAYOUT_MIN_CHANNELS` output channels (``C·|G|``), and :func:`equiv.nn.gconv.settle_layout` (called by
:func:`equiv.models.build`) then gives the whole network one layout: channels-last if any of its group
convolutions reaches the threshold, else contiguous with the ``(c, g)`` channel order of a plain ``flatten``.
Measured here (``benchmarks/layout_threshold.py``): a network that switches layout between layers pays a copy
at every switch and trained slower than either uniform choice; a width-2 P4 ResNet-44 (8–32 channels) trains
as fast either way, a P4CNN (40 channels) 1.3–1.4× faster channels-last. Pooling and batch norm follow the
layout they are given.

A map in any other layout (e.g. contiguous, from user code) is accepted everywhere: :func:`to_planes` then
copies once. Layout never changes values: the equivariance statements hold bit for bit, and checkpoints do
not depend on it (parameters keep their shapes).
"""

from __future__ import annotations

import torch

__all__ = ["FAST_LAYOUT_MIN_CHANNELS", "uses_fast_layout", "to_planes", "from_planes", "is_fast_layout", "fast_layout"]

#: the fewest output channels ``C·|G|`` for which a group convolution answers in the channels-last layout (read
#: once, when the layer is built; :func:`equiv.nn.gconv.settle_layout` then makes a network uniform)
FAST_LAYOUT_MIN_CHANNELS = 40


def uses_fast_layout(channels: int, order: int) -> bool:
    """Whether a layer with ``channels`` per group element over a group of ``order`` runs channels-last."""
    return channels * order >= FAST_LAYOUT_MIN_CHANNELS


def to_planes(x: torch.Tensor) -> torch.Tensor:
    """``(B, C, |G|, H, W) → (B, |G|·C, H, W)`` in ``channels_last``, channel ``g·C + c`` (a view when ``x`` is
    in the fast layout, else one copy)."""
    b, c, g, h, w = x.shape
    return x.transpose(1, 2).reshape(b, g * c, h, w).contiguous(memory_format=torch.channels_last)


def from_planes(y: torch.Tensor, channels: int) -> torch.Tensor:
    """``(B, |G|·C, H, W) → (B, C, |G|, H, W)`` (a view), the inverse of :func:`to_planes`."""
    return y.unflatten(1, (y.shape[1] // channels, channels)).transpose(1, 2)


def is_fast_layout(x: torch.Tensor) -> bool:
    """True iff the group map ``x`` lies in memory as ``(B, H, W, |G|, C)``, densely."""
    return x.dim() == 5 and x.permute(0, 3, 4, 2, 1).is_contiguous()


def fast_layout(x: torch.Tensor) -> torch.Tensor:
    """``x`` (a group map) copied into the fast layout, or ``x`` itself when it is already."""
    return x if is_fast_layout(x) else x.permute(0, 3, 4, 2, 1).contiguous().permute(0, 4, 3, 1, 2)

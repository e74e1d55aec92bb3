"""Pooling of group feature maps ``(B, C, |G|, H, W)``.

- :class:`GroupMaxPool2d`, :class:`GroupAvgPool2d`: spatial pooling of every group channel (any kernel,
  stride, padding, ceil_mode). Equivariant exactly when the pooling windows are mirror-symmetric on the
  input (floor mode: ``(N + 2p − k) mod s == 0``; see :mod:`equiv.exactness` for ceil mode).
- :class:`GroupCosetMaxPool`: max (or mean) over the group axis, ``(B, C, |G|, H, W) → (B, C, H, W)``.
  It turns an equivariant map into an invariant-channel one: ``pool(g·F) = g·pool(F)`` spatially, and
  after global spatial pooling the result is invariant.
"""

from __future__ import annotations

import torch
from torch import nn

from equiv.nn.layout import from_planes, is_fast_layout, to_planes

__all__ = ["GroupMaxPool2d", "GroupAvgPool2d", "GroupCosetMaxPool", "GlobalAvgPool"]


def _check_group_map(module: nn.Module, x: torch.Tensor) -> None:
    if x.dim() != 5:
        raise ValueError(f"{type(module).__name__} expects a group feature map (B, C, |G|, H, W), got shape {tuple(x.shape)}")


class GroupMaxPool2d(nn.MaxPool2d):
    """Spatial max pooling of a group feature map ``(B, C, |G|, H, W) → (B, C, |G|, H', W')`` (on the
    channels-last view of :mod:`equiv.nn.layout`, so the output stays in the fast layout)."""

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        _check_group_map(self, x)
        if is_fast_layout(x):
            return from_planes(super().forward(to_planes(x)), x.shape[1])
        b, c, g = x.shape[:3]
        return super().forward(x.flatten(0, 2)).unflatten(0, (b, c, g))


class GroupAvgPool2d(nn.AvgPool2d):
    """Spatial average pooling of a group feature map ``(B, C, |G|, H, W) → (B, C, |G|, H', W')`` (on the
    channels-last view of :mod:`equiv.nn.layout`)."""

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        _check_group_map(self, x)
        if is_fast_layout(x):
            return from_planes(super().forward(to_planes(x)), x.shape[1])
        b, c, g = x.shape[:3]
        return super().forward(x.flatten(0, 2)).unflatten(0, (b, c, g))


class GroupCosetMaxPool(nn.Module):
    """Pool over the group axis: ``(B, C, |G|, ...) → (B, C, ...)`` with ``mode="max"`` (default) or ``"mean"``."""

    def __init__(self, mode: str = "max") -> None:
        super().__init__()
        if mode not in ("max", "mean"):
            raise ValueError(f"mode must be 'max' or 'mean', got {mode!r}")
        self.mode = mode

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if x.dim() < 3:
            raise ValueError(f"GroupCosetMaxPool expects (B, C, |G|, ...), got shape {tuple(x.shape)}")
        return x.amax(dim=2) if self.mode == "max" else x.mean(dim=2)

    def extra_repr(self) -> str:
        return f"mode={self.mode!r}"


class GlobalAvgPool(nn.Module):
    """Mean over the two spatial axes: ``(..., H, W) → (...)``."""

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if x.dim() < 3:
            raise ValueError(f"GlobalAvgPool expects (..., H, W), got shape {tuple(x.shape)}")
        return x.mean(dim=(-2, -1))

"""Building blocks shared by the networks of :mod:`equiv.models`.

- :class:`LayerKit` / :class:`NativeKit`: the layer constructors a network is written against (convolution,
  batch norm, ReLU, max-pool, dropout). :class:`NativeKit` builds the GrouPy-style layers of :mod:`equiv.nn`;
  :class:`equiv.models.e2cnn_backend.E2Kit` builds e2cnn layers behind the same interface, so one network
  definition serves both backends and Z2/P4/P4M (Z2 is a group axis of size 1).
- :class:`ClassifierHead`: global average pool, then either a max over the group axis (``"coset"``: the logits
  are invariant) or the flattened ``C×|G|`` vector (``"flatten"``: the official code's default; not invariant),
  then a :class:`torch.nn.Linear`.

Every layer maps group feature maps ``(B, C, |G|, H, W)`` (images ``(B, C, H, W)`` for lifting convolutions) in
the conventions of :mod:`equiv.groups`, so per-layer equivariance errors can be read off any network.
"""

from __future__ import annotations

from typing import Protocol

import torch
from torch import nn

from equiv.groups import Group
from equiv.nn import Dropout, GroupBatchNorm, GroupConv2d, GroupCosetMaxPool, GroupMaxPool2d

__all__ = ["HEADS", "LayerKit", "NativeKit", "SpatialMean", "ClassifierHead"]

HEADS: tuple[str, ...] = ("coset", "flatten")


class LayerKit(Protocol):
    """Constructors of the layers a network needs; ``channels`` always counts channels *per group element*."""

    group: Group

    def conv(self, in_channels: int, out_channels: int, kernel_size: int, stride: int = 1, padding: int = 0,
             bias: bool = True, lifting: bool = False) -> nn.Module: ...

    def bn(self, channels: int) -> nn.Module: ...

    def relu(self, channels: int) -> nn.Module: ...

    def max_pool(self, channels: int, kernel_size: int, stride: int, padding: int = 0) -> nn.Module: ...

    def dropout(self, channels: int, p: float) -> nn.Module: ...


class NativeKit:
    """The layers of :mod:`equiv.nn` for ``group`` (GroupConv2d, GroupBatchNorm, GroupMaxPool2d)."""

    name = "native"

    def __init__(self, group: Group) -> None:
        self.group = group

    def conv(self, in_channels: int, out_channels: int, kernel_size: int, stride: int = 1, padding: int = 0,
             bias: bool = True, lifting: bool = False) -> nn.Module:
        return GroupConv2d(in_channels, out_channels, kernel_size, stride, padding, bias=bias, group=self.group,
                           lifting=lifting)

    def bn(self, channels: int) -> nn.Module:
        return GroupBatchNorm(channels)

    def relu(self, channels: int) -> nn.Module:
        return nn.ReLU()

    def max_pool(self, channels: int, kernel_size: int, stride: int, padding: int = 0) -> nn.Module:
        return GroupMaxPool2d(kernel_size, stride, padding)

    def dropout(self, channels: int, p: float) -> nn.Module:
        return Dropout(p)


class SpatialMean(nn.Module):
    """Global average pool keeping 1×1 spatial axes: ``(B, C, |G|, H, W) → (B, C, |G|, 1, 1)``.

    The output is still a group feature map, so per-layer equivariance tables act on it with the group
    permutation (equivariant, not invariant, for ``g ≠ e``)."""

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x.mean(dim=(-2, -1), keepdim=True)


class ClassifierHead(nn.Module):
    """``(B, C, |G|, H, W) → (B, num_classes)``: global average pool, group pooling, linear layer.

    ``mode="coset"``: max over the group axis after the spatial mean, so ``head(g·F) == head(F)`` for every
    ``g`` (invariant logits; the Linear sees ``C`` features). ``mode="flatten"``: the ``C×|G|`` vector in
    ``(c, g)`` order goes into the Linear, as in the official ResNets without their ``groupcosetmaxpool``
    flag; ``g`` permutes the group axis, so the logits are *not* invariant even when the features are
    exactly equivariant. For Z2 (``|G| = 1``) both modes coincide.
    """

    def __init__(self, channels: int, group_order: int, num_classes: int, mode: str = "coset") -> None:
        super().__init__()
        if mode not in HEADS:
            raise ValueError(f"head must be one of {', '.join(map(repr, HEADS))}, got {mode!r}")
        self.mode = mode
        self.group_order = group_order
        self.pool = SpatialMean()
        self.coset = GroupCosetMaxPool("max") if mode == "coset" else None
        features = channels if mode == "coset" else channels * group_order
        self.fc = nn.Linear(features, num_classes)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if x.dim() != 5 or x.shape[2] != self.group_order:
            raise ValueError(
                f"ClassifierHead expects a group feature map (B, C, {self.group_order}, H, W), got shape {tuple(x.shape)}"
            )
        x = self.pool(x)  # (B, C, |G|, 1, 1)
        if self.coset is not None:
            x = self.coset(x)  # (B, C, 1, 1): invariant under the group
        return self.fc(x.flatten(1))

    def extra_repr(self) -> str:
        return f"mode={self.mode!r}"

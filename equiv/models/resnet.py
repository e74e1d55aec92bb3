"""The classification ResNets of the official code (``experiments/models/resnet*.py``): ResNet-44 and "ResNet-18".

Both use pre-activation basic blocks and a 3×3 stride-1 stem with no max-pool::

    conv1                  3×3 s1 p1, no bias (lifting)
    layer{i}.{j}           bn1 → relu1 → conv1 (3×3, stride s on the first block of a stage, p1)
                           → bn2 → relu2 → conv2 (3×3 s1 p1), plus the shortcut:
                           identity, or shortcut.conv (1×1, stride s) → shortcut.bn on the block's input
    bn → relu → head       final BatchNorm + ReLU, then global average pool, group pooling and Linear

ResNet-44: 3 stages of 7 blocks, strides 1, 2, 2, widths ``w, 2w, 4w``. ResNet-18: 4 stages of 2 blocks,
strides 1, 2, 2, 2, widths ``w, 2w, 4w, 8w``. Default base widths ``w`` keep parameter counts roughly equal
across groups: ResNet-44 32 / 16 / 12, ResNet-18 64 / 32 / 23 for Z2 / P4 / P4M (the official defaults).

Exactness: each stride-2 stage subsamples with a 3×3/p1/s2 conv and a 1×1/s2 shortcut, both exact iff the
stage's input side is odd; hence ResNet-44 (two strided stages) is exact iff ``N ≡ 1 (mod 4)`` — **33** exact,
**32** approximate — and ResNet-18 (three) iff ``N ≡ 1 (mod 8)`` — **33, 97, 225** exact, **32, 224**
approximate. At an exact size the features are exactly equivariant; with ``head="coset"`` the logits are
exactly invariant. With ``head="flatten"`` (the official default) they are not invariant at any size.
"""

from __future__ import annotations

from collections import OrderedDict
from typing import Sequence

import torch
from torch import nn

from equiv.models.layers import ClassifierHead, LayerKit

__all__ = ["PreActBasicBlock", "CifarResNet", "RESNET44_WIDTHS", "RESNET18_WIDTHS"]

RESNET44_WIDTHS: dict[str, int] = {"z2": 32, "p4": 16, "p4m": 12}
RESNET18_WIDTHS: dict[str, int] = {"z2": 64, "p4": 32, "p4m": 23}


class PreActBasicBlock(nn.Module):
    """``x ↦ conv2(relu(bn2(conv1(relu(bn1(x)))))) + shortcut(x)`` (the official block; the shortcut acts on the
    raw input, a 1×1 conv + BN when the stride or width changes)."""

    def __init__(self, kit: LayerKit, in_channels: int, channels: int, stride: int = 1) -> None:
        super().__init__()
        self.bn1 = kit.bn(in_channels)
        self.relu1 = kit.relu(in_channels)
        self.conv1 = kit.conv(in_channels, channels, 3, stride, 1, bias=False)
        self.bn2 = kit.bn(channels)
        self.relu2 = kit.relu(channels)
        self.conv2 = kit.conv(channels, channels, 3, 1, 1, bias=False)
        self.shortcut: nn.Module | None = None
        if stride != 1 or in_channels != channels:
            self.shortcut = nn.Sequential(OrderedDict(
                conv=kit.conv(in_channels, channels, 1, stride, 0, bias=False),
                bn=kit.bn(channels),
            ))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        out = self.conv1(self.relu1(self.bn1(x)))
        out = self.conv2(self.relu2(self.bn2(out)))
        return out + (x if self.shortcut is None else self.shortcut(x))


class CifarResNet(nn.Module):
    """Pre-activation ResNet with a 3×3 stride-1 stem (see the module docstring for the exact sizes).

    Args:
        kit: layer constructors for the group (native or e2cnn).
        blocks: blocks per stage, e.g. ``(7, 7, 7)`` (ResNet-44) or ``(2, 2, 2, 2)`` (ResNet-18).
        width: channels per group element of the first stage (doubling per stage).
        in_channels, num_classes: image channels and logits.
        head: ``"coset"`` (invariant logits) or ``"flatten"`` (official default; not invariant).
        strides: per-stage strides (default 1 then 2 for every further stage).

    Input ``(B, in_channels, H, W)`` → logits ``(B, num_classes)``.
    """

    def __init__(self, kit: LayerKit, blocks: Sequence[int], width: int, in_channels: int = 3,
                 num_classes: int = 10, head: str = "coset", strides: Sequence[int] | None = None) -> None:
        super().__init__()
        self.in_channels = in_channels
        self.num_classes = num_classes
        self.group = kit.group
        strides = tuple(strides) if strides is not None else (1,) + (2,) * (len(blocks) - 1)
        widths = [width * 2 ** i for i in range(len(blocks))]
        self.conv1 = kit.conv(in_channels, widths[0], 3, 1, 1, bias=False, lifting=True)
        c_in = widths[0]
        for i, (n, c, s) in enumerate(zip(blocks, widths, strides), start=1):
            stage = [PreActBasicBlock(kit, c_in if j == 0 else c, c, s if j == 0 else 1) for j in range(n)]
            setattr(self, f"layer{i}", nn.Sequential(*stage))
            c_in = c
        self.num_stages = len(blocks)
        self.bn = kit.bn(c_in)
        self.relu = kit.relu(c_in)
        self.head = ClassifierHead(c_in, kit.group.order, num_classes, head)

    def features(self, x: torch.Tensor) -> torch.Tensor:
        """The final group feature map ``(B, C, |G|, H', W')`` after the last BN + ReLU."""
        x = self.conv1(x)
        for i in range(1, self.num_stages + 1):
            x = getattr(self, f"layer{i}")(x)
        return self.relu(self.bn(x))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.head(self.features(x))

"""A torchvision-style ResNet-18 over Z2, P4 or P4M (``resnet18_imagenet``).

Layout (torchvision's ``resnet18`` with group layers; post-activation basic blocks)::

    conv1 7×7 s2 p3 (lifting, no bias) → bn1 → relu → maxpool 3×3 s2 p1
    layer1..layer4: 2 basic blocks each, strides 1, 2, 2, 2, widths w, 2w, 4w, 8w; a block is
        conv1 (3×3, stride s, p1) → bn1 → relu1 → conv2 (3×3 p1) → bn2, plus the shortcut
        (identity, or shortcut.conv 1×1 stride s → shortcut.bn), then relu2
    head: global average pool → group pooling → Linear

Exactness: the stem (7×7/s2/p3), the max-pool (3×3/s2/p1) and the three strided stages (3×3/p1/s2 and 1×1/s2)
each need an odd input side, so the network is exact iff ``N ≡ 1 (mod 32)``: **225** exact, **224**
(the usual ImageNet crop) approximate. Default base widths 64 / 32 / 23 (Z2 / P4 / P4M) keep parameter
counts roughly equal.
"""

from __future__ import annotations

from collections import OrderedDict

import torch
from torch import nn

from equiv.models.layers import ClassifierHead, LayerKit

__all__ = ["BasicBlock", "ImageNetResNet"]


class BasicBlock(nn.Module):
    """torchvision's basic block: ``relu(bn2(conv2(relu(bn1(conv1(x))))) + shortcut(x))``."""

    def __init__(self, kit: LayerKit, in_channels: int, channels: int, stride: int = 1) -> None:
        super().__init__()
        self.conv1 = kit.conv(in_channels, channels, 3, stride, 1, bias=False)
        self.bn1 = kit.bn(channels)
        self.relu1 = kit.relu(channels)
        self.conv2 = kit.conv(channels, channels, 3, 1, 1, bias=False)
        self.bn2 = kit.bn(channels)
        self.shortcut: nn.Module | None = None
        if stride != 1 or in_channels != channels:
            self.shortcut = nn.Sequential(OrderedDict(
                conv=kit.conv(in_channels, channels, 1, stride, 0, bias=False),
                bn=kit.bn(channels),
            ))
        self.relu2 = kit.relu(channels)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        out = self.bn2(self.conv2(self.relu1(self.bn1(self.conv1(x)))))
        return self.relu2(out + (x if self.shortcut is None else self.shortcut(x)))


class ImageNetResNet(nn.Module):
    """torchvision-style ResNet (7×7/s2 stem + 3×3/s2 max-pool); exact at ``N ≡ 1 (mod 32)``, e.g. 225.

    Input ``(B, in_channels, H, W)`` → logits ``(B, num_classes)``; with ``head="coset"`` the logits are
    invariant at exact sizes.
    """

    def __init__(self, kit: LayerKit, blocks: tuple[int, ...] = (2, 2, 2, 2), width: int = 64,
                 in_channels: int = 3, num_classes: int = 1000, head: str = "coset") -> None:
        super().__init__()
        self.in_channels = in_channels
        self.num_classes = num_classes
        self.group = kit.group
        widths = [width * 2 ** i for i in range(len(blocks))]
        self.conv1 = kit.conv(in_channels, widths[0], 7, 2, 3, bias=False, lifting=True)
        self.bn1 = kit.bn(widths[0])
        self.relu = kit.relu(widths[0])
        self.maxpool = kit.max_pool(widths[0], 3, 2, 1)
        c_in = widths[0]
        for i, (n, c) in enumerate(zip(blocks, widths), start=1):
            s = 1 if i == 1 else 2
            setattr(self, f"layer{i}", nn.Sequential(*[BasicBlock(kit, c_in if j == 0 else c, c, s if j == 0 else 1)
                                                        for j in range(n)]))
            c_in = c
        self.num_stages = len(blocks)
        self.head = ClassifierHead(c_in, kit.group.order, num_classes, head)

    def features(self, x: torch.Tensor) -> torch.Tensor:
        """The final group feature map ``(B, C, |G|, H', W')``."""
        x = self.maxpool(self.relu(self.bn1(self.conv1(x))))
        for i in range(1, self.num_stages + 1):
            x = getattr(self, f"layer{i}")(x)
        return x

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.head(self.features(x))

"""The 14-parameter network of the "learning unequivariance" experiment.

``conv`` = P4ConvZ2(1 → 1, 3×3, stride 2, padding 1, bias) → spatial mean → max over rotations →
Linear(1, 2): 9 + 1 + 2 + 2 = **14** parameters.

Exactness: the strided lifting conv keeps a symmetric grid iff the input side is odd. At **33** the network
is exactly invariant, so an image and its 90° rotation get identical logits and no training can separate
them (cross-entropy stays ≥ ln 2); at **32** it is only approximately invariant and learns to tell them apart.
"""

from __future__ import annotations

import torch
from torch import nn

from equiv.groups import Group
from equiv.models.layers import ClassifierHead
from equiv.nn import GroupConv2d

__all__ = ["UnequivarianceProbe"]


class UnequivarianceProbe(nn.Module):
    """Lifting conv (3×3/s2/p1, one channel) → mean over space → max over the group → Linear.

    Input ``(B, in_channels, H, W)`` → logits ``(B, num_classes)``; ``self(g·x) == self(x)`` for every ``g``
    exactly when ``H = W`` is odd (e.g. 33), approximately otherwise (e.g. 32).
    """

    def __init__(self, group: Group, in_channels: int = 1, num_classes: int = 2) -> None:
        super().__init__()
        self.in_channels = in_channels
        self.num_classes = num_classes
        self.group = group
        self.conv = GroupConv2d(in_channels, 1, 3, stride=2, padding=1, bias=True, group=group, lifting=True)
        self.head = ClassifierHead(1, group.order, num_classes, "coset")

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.head(self.conv(x))

"""The 7-layer rotated-MNIST network (Cohen & Welling's P4CNN / Z2CNN, as used in the paper's experiment).

Layout (every convolution followed by BatchNorm shared over the group axis and ReLU)::

    conv1  3×3 p1 (lifting) → dropout
    conv2  3×3 p1
    pool   2×2 / s2 max-pool                    ← the only subsampling layer
    conv3  3×3 p1 → dropout
    conv4  3×3 p1 → dropout
    conv5  3×3 p1 → dropout
    conv6  3×3 p1
    conv7  4×4 p0
    head   global average pool → max over the group axis → Linear

Exactness: the max-pool keeps a symmetric grid iff its input side is even, so the network is exactly
equivariant (and, with the ``"coset"`` head, its logits exactly invariant) at even input sizes, e.g. **28**,
and only approximately at odd sizes such as **27** and **29**.

Dropout: the official training logs (``training_output/*.out``, torchinfo summaries) show ``Dropout`` after
layers 1, 3, 4 and 5 — the positions of the (commented-out) ``F.dropout(h, self.dr)`` calls in Cohen's
``gconv_experiments`` P4CNN, whose rate is ``self.dr = 0.3``. The official ``models_dropout.py`` itself is
missing, so the rate 0.3 is inferred, not confirmed; it is the ``dropout`` option. Dropout acts elementwise
(``nn.Dropout``, as in the logs): it is the identity in eval mode, where the equivariance statements hold.

Parameter count: the official runs fed MNIST as 3 identical RGB channels (their ``TexNIST`` loader reads
PNGs with 3-channel normalisation), so ``in_channels=3`` reproduces the paper's counts exactly: 24,990 (P4,
10 channels) and 25,570 (Z2, 20 channels). Our default ``in_channels=1`` (MNIST is grayscale) saves the
lifting weights of the two extra channels: 24,990 − 2·10·9 = **24,810** (P4) and 25,570 − 2·20·9 =
**25,210** (Z2). Both keep conv biases before BatchNorm and affine BatchNorm, as the official model does.
"""

from __future__ import annotations

import torch
from torch import nn

from equiv.models.layers import ClassifierHead, LayerKit

__all__ = ["P4CNN", "DEFAULT_CHANNELS", "DROPOUT_LAYERS"]

#: channels per group element by group: parameter counts roughly equal (≈25k)
DEFAULT_CHANNELS: dict[str, int] = {"z2": 20, "p4": 10, "p4m": 7}
#: the convolutions followed by dropout in the official runs
DROPOUT_LAYERS: tuple[int, ...] = (1, 3, 4, 5)


class P4CNN(nn.Module):
    """The rotated-MNIST CNN over Z2, P4 or P4M (see the module docstring for layout and exact sizes).

    Args:
        kit: layer constructors (native :mod:`equiv.nn` layers or e2cnn ones) for the group.
        channels: channels per group element of every hidden layer.
        in_channels: image channels.
        num_classes: number of logits.
        dropout: dropout rate after layers 1, 3, 4, 5 (training only).
        head: ``"coset"`` (invariant logits) or ``"flatten"``.

    Input ``(B, in_channels, H, W)``, output logits ``(B, num_classes)``; ``H = W`` even (e.g. 28) keeps the
    network exactly equivariant, so ``self(g·x) == self(x)`` for every ``g`` in eval mode with ``head="coset"``.
    """

    def __init__(self, kit: LayerKit, channels: int, in_channels: int = 1, num_classes: int = 10,
                 dropout: float = 0.3, head: str = "coset") -> None:
        super().__init__()
        self.in_channels = in_channels
        self.num_classes = num_classes
        self.group = kit.group
        c = channels
        for i in range(1, 8):
            k, p = (4, 0) if i == 7 else (3, 1)
            setattr(self, f"conv{i}", kit.conv(in_channels if i == 1 else c, c, k, 1, p, bias=True, lifting=i == 1))
            setattr(self, f"bn{i}", kit.bn(c))
            setattr(self, f"relu{i}", kit.relu(c))
            if i in DROPOUT_LAYERS:
                setattr(self, f"drop{i}", kit.dropout(c, dropout))
            if i == 2:
                self.pool = kit.max_pool(c, 2, 2)
        self.head = ClassifierHead(c, kit.group.order, num_classes, head)

    def features(self, x: torch.Tensor) -> torch.Tensor:
        """The group feature map ``(B, C, |G|, H', W')`` before the head (equivariant at even sizes)."""
        for i in range(1, 8):
            x = getattr(self, f"relu{i}")(getattr(self, f"bn{i}")(getattr(self, f"conv{i}")(x)))
            if i in DROPOUT_LAYERS:
                x = getattr(self, f"drop{i}")(x)
            if i == 2:
                x = self.pool(x)
        return x

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.head(self.features(x))

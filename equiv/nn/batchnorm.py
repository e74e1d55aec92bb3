"""Batch normalisation of group feature maps with statistics shared over the group axis."""

from __future__ import annotations

import torch
from torch import nn

__all__ = ["GroupBatchNorm"]


class GroupBatchNorm(nn.BatchNorm3d):
    """BatchNorm for ``(B, C, |G|, H, W)``: one mean/variance/affine pair per channel ``C``, shared over the
    group axis and space, so ``bn(g·F) = g·bn(F)`` (the statistics are invariant under the group action)."""

    def _check_input_dim(self, x: torch.Tensor) -> None:
        if x.dim() != 5:
            raise ValueError(f"GroupBatchNorm expects a group feature map (B, C, |G|, H, W), got shape {tuple(x.shape)}")

"""Layers for group-equivariant CNNs on P4 / P4M (GrouPy vocabulary, ``(B, C, |G|, H, W)`` feature maps,
kept channels-last in memory: :mod:`equiv.nn.layout`)."""

from equiv.nn.batchnorm import GroupBatchNorm
from equiv.nn.dropout import Dropout
from equiv.nn.gconv import GroupConv2d, P4ConvP4, P4ConvZ2, P4MConvP4M, P4MConvZ2, settle_layout
from equiv.nn.pooling import GlobalAvgPool, GroupAvgPool2d, GroupCosetMaxPool, GroupMaxPool2d

__all__ = [
    "GroupConv2d",
    "P4ConvZ2",
    "P4ConvP4",
    "P4MConvZ2",
    "P4MConvP4M",
    "GroupMaxPool2d",
    "GroupAvgPool2d",
    "GroupCosetMaxPool",
    "GlobalAvgPool",
    "GroupBatchNorm",
    "Dropout",
    "settle_layout",
]

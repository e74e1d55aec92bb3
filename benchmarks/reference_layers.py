"""A frozen copy of equiv's group layers as they were before the channels-last layout (commit e5405be).

The reference of ``benchmarks/training.py`` and ``benchmarks/layers.py``: contiguous ``(B, C, |G|, H, W)``
group maps, a filter bank in ``(c, g)`` channel order, BatchNorm3d on the contiguous map and
``nn.Dropout``. Not imported by the library; do not edit (it is the baseline the speed-ups are measured
against). :class:`ReferenceKit` plugs these layers into :class:`equiv.models.p4cnn.P4CNN` and
:class:`equiv.models.resnet.CifarResNet`.
"""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F
from torch import nn

from equiv.groups import Group, get_group

__all__ = ["RefGroupConv2d", "RefGroupMaxPool2d", "RefGroupBatchNorm", "ReferenceKit"]


def _single(value, name: str) -> int:
    """Accept an int or a square pair; return the int, or raise a one-line error."""
    if isinstance(value, (tuple, list)):
        if len(value) != 2 or value[0] != value[1]:
            raise ValueError(f"{name} must be an int or a square pair (a, a) to commute with rotations, got {value!r}")
        value = value[0]
    if not isinstance(value, int) or isinstance(value, bool):
        raise ValueError(f"{name} must be an int, got {value!r}")
    return value


def _filter_index(group: Group, kernel_size: int, input_group: Group | None) -> torch.Tensor:
    """``idx[h]`` lists, for the filter transformed by ``h``, which entry of the flat base filter lands where."""
    if input_group is None:  # lifting: filters are (k, k) images
        base = torch.arange(kernel_size * kernel_size).reshape(kernel_size, kernel_size)
        rows = [group.act_on_image(h, base).reshape(-1) for h in group]
    else:  # group conv: filters are (|G|, k, k) group maps, acted on with the regular representation
        base = torch.arange(group.order * kernel_size * kernel_size).reshape(1, 1, group.order, kernel_size, kernel_size)
        rows = [group.act_on_group_map(h, base).reshape(-1) for h in group]
    return torch.stack(rows)  # (|G|, M)


class RefGroupConv2d(nn.Module):
    """Lifting (``lifting=True``) or group convolution over ``group`` ∈ {z2, p4, p4m}.

    Args:
        in_channels: channels per group element of the input (image channels when lifting).
        out_channels: channels per group element of the output.
        kernel_size, stride, padding, dilation: as in :class:`torch.nn.Conv2d`, square only; any kernel size,
            even ones too (rotated about the kernel centre); zero padding on all sides.
        bias: one bias per output channel, shared over the group axis (keeps equivariance).
        group: the group (name or :class:`equiv.groups.Group`).
        lifting: input is an image ``(B, C, H, W)`` instead of a group map ``(B, C, |G|, H, W)``.

    Shapes: input ``(B, in_channels, H, W)`` (lifting) or ``(B, in_channels, |G|, H, W)``;
    output ``(B, out_channels, |G|, H', W')`` with ``H' = ⌊(H + 2p − d(k−1) − 1)/s⌋ + 1``.

    Equivariance: ``self(g·x) == g·self(x)`` for all ``g`` when ``(H + 2p − d(k−1) − 1) mod s == 0``.
    """

    def __init__(
        self,
        in_channels: int,
        out_channels: int,
        kernel_size: int,
        stride: int = 1,
        padding: int = 0,
        dilation: int = 1,
        bias: bool = True,
        *,
        group: str | Group = "p4",
        lifting: bool = False,
    ) -> None:
        super().__init__()
        self.group = get_group(group)
        for name, value in (("in_channels", in_channels), ("out_channels", out_channels)):
            if not isinstance(value, int) or isinstance(value, bool) or value < 1:
                raise ValueError(f"{name} must be a positive int, got {value!r}")
        self.in_channels, self.out_channels = in_channels, out_channels
        self.kernel_size = _single(kernel_size, "kernel_size")
        self.stride = _single(stride, "stride")
        self.padding = _single(padding, "padding")
        self.dilation = _single(dilation, "dilation")
        if self.kernel_size < 1 or self.stride < 1 or self.dilation < 1 or self.padding < 0:
            raise ValueError(
                f"need kernel_size, stride, dilation >= 1 and padding >= 0, got kernel_size={self.kernel_size}, "
                f"stride={self.stride}, padding={self.padding}, dilation={self.dilation}"
            )
        self.lifting = bool(lifting)
        g_in = 1 if self.lifting else self.group.order
        self.weight = nn.Parameter(torch.empty(out_channels, in_channels, *((g_in,) if not self.lifting else ()),
                                               self.kernel_size, self.kernel_size))
        self.bias = nn.Parameter(torch.empty(out_channels)) if bias else None
        idx = _filter_index(self.group, self.kernel_size, None if self.lifting else self.group)
        self.register_buffer("filter_index", idx, persistent=False)
        self.reset_parameters()

    def reset_parameters(self) -> None:
        """Kaiming-uniform as :class:`torch.nn.Conv2d`, with fan-in ``in_channels·|G_in|·k²``."""
        nn.init.kaiming_uniform_(self.weight, a=math.sqrt(5))
        if self.bias is not None:
            fan_in = self.weight[0].numel()
            bound = 1 / math.sqrt(fan_in) if fan_in > 0 else 0
            nn.init.uniform_(self.bias, -bound, bound)

    @property
    def in_group_order(self) -> int:
        return 1 if self.lifting else self.group.order

    def transformed_weight(self) -> torch.Tensor:
        """The filter bank ``(C_out·|G|, C_in·|G_in|, k, k)``: every filter under every group element."""
        c_out, c_in, k, n = self.out_channels, self.in_channels, self.kernel_size, self.group.order
        flat = self.weight.reshape(c_out, c_in, -1)  # (C_out, C_in, |G_in|·k·k)
        # one index_select (backward: a single index_add) rather than advanced indexing, whose backward is slower
        bank = flat.index_select(2, self.filter_index.reshape(-1)).view(c_out, c_in, n, -1)  # (C_out, C_in, |G|, |G_in|·k·k)
        return bank.transpose(1, 2).reshape(c_out * n, c_in * self.in_group_order, k, k)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        n = self.group.order
        if self.lifting:
            if x.dim() != 4 or x.shape[1] != self.in_channels:
                raise ValueError(
                    f"{type(self).__name__} expects an image (B, {self.in_channels}, H, W), got shape {tuple(x.shape)}"
                )
        else:
            if x.dim() != 5 or x.shape[1] != self.in_channels or x.shape[2] != n:
                raise ValueError(
                    f"{type(self).__name__} expects a group feature map (B, {self.in_channels}, {n}, H, W), "
                    f"got shape {tuple(x.shape)}"
                )
            x = x.flatten(1, 2)
        span = self.dilation * (self.kernel_size - 1) + 1
        if min(x.shape[-2:]) + 2 * self.padding < span:
            raise ValueError(
                f"input {x.shape[-2]}×{x.shape[-1]} (padding {self.padding}) is smaller than the kernel span {span} "
                f"of {type(self).__name__}"
            )
        bias = None if self.bias is None else self.bias.repeat_interleave(n)
        y = F.conv2d(x, self.transformed_weight(), bias, self.stride, self.padding, self.dilation)
        return y.unflatten(1, (self.out_channels, n))

    def extra_repr(self) -> str:
        s = (f"{self.in_channels}, {self.out_channels}, kernel_size={self.kernel_size}, stride={self.stride}, "
             f"padding={self.padding}, group={self.group.name}, lifting={self.lifting}")
        if self.dilation != 1:
            s += f", dilation={self.dilation}"
        return s + ("" if self.bias is not None else ", bias=False")


class RefGroupMaxPool2d(nn.MaxPool2d):
    """Spatial max pooling of a contiguous group map ``(B, C, |G|, H, W)``, as before."""

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        b, c, g = x.shape[:3]
        return super().forward(x.flatten(0, 2)).unflatten(0, (b, c, g))


class RefGroupBatchNorm(nn.BatchNorm3d):
    """BatchNorm3d on the contiguous ``(B, C, |G|, H, W)`` map, as before."""


class ReferenceKit:
    """The frozen layers behind :class:`equiv.models.layers.LayerKit`'s interface."""

    name = "reference"

    def __init__(self, group: str | Group) -> None:
        self.group = get_group(group)

    def conv(self, in_channels: int, out_channels: int, kernel_size: int, stride: int = 1, padding: int = 0,
             bias: bool = True, lifting: bool = False) -> nn.Module:
        return RefGroupConv2d(in_channels, out_channels, kernel_size, stride, padding, bias=bias, group=self.group,
                              lifting=lifting)

    def bn(self, channels: int) -> nn.Module:
        return RefGroupBatchNorm(channels)

    def relu(self, channels: int) -> nn.Module:
        return nn.ReLU()

    def max_pool(self, channels: int, kernel_size: int, stride: int, padding: int = 0) -> nn.Module:
        return RefGroupMaxPool2d(kernel_size, stride, padding)

    def dropout(self, channels: int, p: float) -> nn.Module:
        return nn.Dropout(p)

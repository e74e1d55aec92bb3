"""Group convolutions for P4 and P4M (and the trivial group Z2), GrouPy-style.

A lifting convolution maps an image ``(B, C_in, H, W)`` to a group feature map ``(B, C_out, |G|, H', W')``;
a group convolution maps ``(B, C_in, |G|, H, W)`` to ``(B, C_out, |G|, H', W')``. Both are implemented
the fast way: the transformed filter bank (every filter under every group element) is gathered with one
precomputed index (exact rotations, flips and permutations of the group axis — no interpolation), then a
single :func:`torch.nn.functional.conv2d` runs on the channels-last view of the group map
(:mod:`equiv.nn.layout`: group-major channels ``g·C + c``), and the output is returned in that layout too.

Equivariance: for every ``g`` in the group, ``Φ(g·x) = g·Φ(x)`` (actions of :mod:`equiv.groups`) holds
exactly whenever the layer's sampling grid is symmetric, i.e. ``(N + 2p − d(k−1) − 1) mod s == 0`` on an
input of side ``N`` (always true for stride 1, even kernels included: filters rotate about their centre).
"""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F
from torch import nn

from equiv.groups import Group, get_group
from equiv.nn.layout import from_planes, to_planes, uses_fast_layout
from equiv.validation import is_int

__all__ = ["GroupConv2d", "P4ConvZ2", "P4ConvP4", "P4MConvZ2", "P4MConvP4M", "settle_layout"]


def _single(value, name: str) -> int:
    """Accept an int or a square pair; return the int, or raise a one-line error."""
    if isinstance(value, (tuple, list)):
        if len(value) != 2 or value[0] != value[1]:
            raise ValueError(f"{name} must be an int or a square pair (a, a) to commute with rotations, got {value!r}")
        value = value[0]
    if not is_int(value, numpy=False):
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


class GroupConv2d(nn.Module):
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
            if not is_int(value, numpy=False) or value < 1:
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
        # decided once, when the layer is built (not a parameter: checkpoints do not depend on it)
        self._fast_layout = uses_fast_layout(out_channels, self.group.order)
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

    @property
    def fast_layout(self) -> bool:
        """Whether this layer runs (and answers) in the channels-last layout of :mod:`equiv.nn.layout`; decided by
        :func:`equiv.nn.layout.uses_fast_layout` when the layer is built."""
        return self._fast_layout

    def transformed_weight(self, group_major: bool | None = None) -> torch.Tensor:
        """The filter bank ``(|G|·C_out, |G_in|·C_in, k, k)``: every filter under every group element.

        ``group_major`` (default: :attr:`fast_layout`): channels ``h·C_out + c`` / ``g·C_in + c'`` and the bank
        in ``channels_last``, for the fast layout; otherwise the ``(c, g)`` order of a contiguous map
        (``c·|G| + h``). Either way the bank is one ``index_select`` of the flat weight (backward: one
        ``index_add``, which sums in the same order as the earlier two-stage gather: the weight's gradient is the
        same bit for bit) that writes it straight into its final memory order: no second copy, and few autograd nodes
        (each costs tens of microseconds beside a convolution)."""
        group_major = self.fast_layout if group_major is None else group_major
        idx = self._bank_index(group_major)[0]
        bank = self.weight.reshape(-1).index_select(0, idx.view(-1)).view(idx.shape)
        return bank.permute(0, 3, 1, 2) if group_major else bank

    def _shared_bias(self, group_major: bool) -> torch.Tensor | None:
        """The bias of the bank's output channels: ``bias[c]`` for channel ``h·C_out + c`` (group-major) or
        ``c·|G| + h``, shared over the group axis. One ``index_select`` (one autograd node, cheaper than
        ``repeat``'s backward). Its backward sums the ``|G|`` copies in index order: the same bits as ``repeat``
        for P4; for P4M's eight copies it rounds differently (relative 1e-6 in float32)."""
        return None if self.bias is None else self.bias.index_select(0, self._bank_index(group_major)[1])

    def _bank_index(self, group_major: bool) -> tuple[torch.Tensor, torch.Tensor]:
        """Indices into the flat weight for every entry of the bank, shaped as the bank in its memory order, and
        into the bias for every output channel.

        Entry ``(h, c, c', g, y, x)`` of the bank is ``weight[c, c'].flatten()[filter_index[h, (g, y, x)]]``.
        Memory order ``(h, c, y, x, g, c')`` when ``group_major`` (the bank is that tensor permuted to
        ``channels_last``), else ``(c, h, c', g, y, x)``. Built from :attr:`filter_index` on its device and kept
        for one ``(group_major, device)`` at a time (a plain attribute, not a buffer: checkpoints do not hold
        it)."""
        key = (bool(group_major), self.filter_index.device)
        cached = self.__dict__.get("_bank_index_cache")
        if cached is not None and cached[0] == key:
            return cached[1]
        c_out, c_in, k, n, g_in = self.out_channels, self.in_channels, self.kernel_size, self.group.order, self.in_group_order
        per = g_in * k * k  # entries of one (c, c') filter
        fi = self.filter_index.view(n, g_in, k, k)
        o = torch.arange(c_out, device=fi.device)
        start = o.view(c_out, 1) * (c_in * per) + torch.arange(c_in, device=fi.device) * per  # filter (c, c')
        if group_major:  # (h, c_out, ky, kx, g, c_in)
            idx = start.view(1, c_out, 1, 1, 1, c_in) + fi.permute(0, 2, 3, 1).reshape(n, 1, k, k, g_in, 1)
            idx, bias_idx = idx.reshape(n * c_out, k, k, g_in * c_in), o.repeat(n)
        else:  # (c_out, h, c_in, g, ky, kx)
            idx = start.view(c_out, 1, c_in, 1, 1, 1) + fi.view(1, n, 1, g_in, k, k)
            idx, bias_idx = idx.reshape(c_out * n, c_in * g_in, k, k), o.repeat_interleave(n)
        idx = idx.contiguous()  # the broadcast sum may come out in a permuted memory order
        self.__dict__["_bank_index_cache"] = (key, (idx, bias_idx))
        return idx, bias_idx

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        n = self.group.order
        if self.lifting:
            if x.dim() != 4 or x.shape[1] != self.in_channels:
                raise ValueError(
                    f"{type(self).__name__} expects an image (B, {self.in_channels}, H, W), got shape {tuple(x.shape)}"
                )
        elif x.dim() != 5 or x.shape[1] != self.in_channels or x.shape[2] != n:
            raise ValueError(
                f"{type(self).__name__} expects a group feature map (B, {self.in_channels}, {n}, H, W), "
                f"got shape {tuple(x.shape)}"
            )
        span = self.dilation * (self.kernel_size - 1) + 1
        if min(x.shape[-2:]) + 2 * self.padding < span:
            raise ValueError(
                f"input {x.shape[-2]}×{x.shape[-1]} (padding {self.padding}) is smaller than the kernel span {span} "
                f"of {type(self).__name__}"
            )
        fast = self.fast_layout
        weight = self.transformed_weight(fast)
        if not fast:  # narrow layer: the contiguous (c, g) layout (a copy if x came channels-last)
            x = (x if self.lifting else x.flatten(1, 2)).contiguous()
            bias = self._shared_bias(False)
            y = F.conv2d(x, weight, bias, self.stride, self.padding, self.dilation)
            return y.unflatten(1, (self.out_channels, n))
        x = x.contiguous(memory_format=torch.channels_last) if self.lifting else to_planes(x)
        bias = self._shared_bias(True)  # shared over the group axis: h·C_out + c
        y = F.conv2d(x, weight, bias, self.stride, self.padding, self.dilation)
        if self.lifting:
            # one input channel: x is contiguous and channels-last at once, and the convolution may answer in
            # the contiguous layout; one copy puts the group map into the fast layout for every later layer
            y = y.contiguous(memory_format=torch.channels_last)
        return from_planes(y, self.out_channels)

    def extra_repr(self) -> str:
        s = (f"{self.in_channels}, {self.out_channels}, kernel_size={self.kernel_size}, stride={self.stride}, "
             f"padding={self.padding}, group={self.group.name}, lifting={self.lifting}")
        if self.dilation != 1:
            s += f", dilation={self.dilation}"
        return s + ("" if self.bias is not None else ", bias=False")


def settle_layout(model: nn.Module) -> nn.Module:
    """Give every :class:`GroupConv2d` of ``model`` one memory layout, in place, and return ``model``.

    Channels-last (:mod:`equiv.nn.layout`) if any of them reaches :data:`equiv.nn.layout.FAST_LAYOUT_MIN_CHANNELS`
    output channels ``C·|G|``, else contiguous. A network whose layers switch layout pays a copy at every switch:
    measured with ``benchmarks/layout_threshold.py``, such a mixed network trained slower than either uniform
    choice (ResNet-44 P4M width 2, Z2 width 32). Values do not depend on the layout."""
    convs = [m for m in model.modules() if isinstance(m, GroupConv2d)]
    fast = any(m.fast_layout for m in convs)
    for m in convs:
        m._fast_layout = fast
    return model


class P4ConvZ2(GroupConv2d):
    """Lifting convolution image → P4 map: ``(B, C_in, H, W) → (B, C_out, 4, H', W')``."""

    def __init__(self, in_channels: int, out_channels: int, kernel_size: int, stride: int = 1, padding: int = 0,
                 dilation: int = 1, bias: bool = True) -> None:
        super().__init__(in_channels, out_channels, kernel_size, stride, padding, dilation, bias, group="p4", lifting=True)


class P4ConvP4(GroupConv2d):
    """P4 group convolution: ``(B, C_in, 4, H, W) → (B, C_out, 4, H', W')``."""

    def __init__(self, in_channels: int, out_channels: int, kernel_size: int, stride: int = 1, padding: int = 0,
                 dilation: int = 1, bias: bool = True) -> None:
        super().__init__(in_channels, out_channels, kernel_size, stride, padding, dilation, bias, group="p4")


class P4MConvZ2(GroupConv2d):
    """Lifting convolution image → P4M map: ``(B, C_in, H, W) → (B, C_out, 8, H', W')``."""

    def __init__(self, in_channels: int, out_channels: int, kernel_size: int, stride: int = 1, padding: int = 0,
                 dilation: int = 1, bias: bool = True) -> None:
        super().__init__(in_channels, out_channels, kernel_size, stride, padding, dilation, bias, group="p4m", lifting=True)


class P4MConvP4M(GroupConv2d):
    """P4M group convolution: ``(B, C_in, 8, H, W) → (B, C_out, 8, H', W')``."""

    def __init__(self, in_channels: int, out_channels: int, kernel_size: int, stride: int = 1, padding: int = 0,
                 dilation: int = 1, bias: bool = True) -> None:
        super().__init__(in_channels, out_channels, kernel_size, stride, padding, dilation, bias, group="p4m")

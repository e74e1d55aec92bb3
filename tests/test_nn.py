"""Layers: shapes, the equivariance equation in float64 at exact sizes, bias, batch norm, pooling, errors."""

from __future__ import annotations

import pytest
import torch
from torch import nn

from equiv.groups import P4, P4M
from equiv.metrics import equivariance_error
from equiv.nn import (GlobalAvgPool, GroupBatchNorm, GroupConv2d, GroupCosetMaxPool, GroupMaxPool2d, P4ConvP4,
                      P4ConvZ2, P4MConvP4M, P4MConvZ2)


def test_shapes_and_parameter_counts() -> None:
    x = torch.randn(2, 3, 9, 9)
    y = P4ConvZ2(3, 5, 3, padding=1)(x)
    assert y.shape == (2, 5, 4, 9, 9)
    assert P4ConvP4(5, 6, 3, stride=2, padding=1)(y).shape == (2, 6, 4, 5, 5)
    ym = P4MConvZ2(3, 4, 4)(x)
    assert ym.shape == (2, 4, 8, 6, 6)
    assert P4MConvP4M(4, 2, 1)(ym).shape == (2, 2, 8, 6, 6)
    assert sum(p.numel() for p in P4ConvP4(5, 6, 3).parameters()) == 6 * 5 * 4 * 9 + 6
    assert sum(p.numel() for p in P4MConvZ2(3, 4, 3, bias=False).parameters()) == 4 * 3 * 9


@pytest.mark.parametrize("k", [1, 2, 3, 4, 5])
def test_stacked_layers_exact_at_stride_one_for_every_kernel(k: int) -> None:
    """Stride 1 is always exact, even kernels included (filters rotate about their centre)."""
    torch.manual_seed(k)
    for group, lift, conv in ((P4, P4ConvZ2, P4ConvP4), (P4M, P4MConvZ2, P4MConvP4M)):
        net = nn.Sequential(lift(2, 3, k, padding=k // 2), GroupBatchNorm(3), nn.ReLU(), conv(3, 2, k, dilation=2,
                            padding=1)).double().eval()
        x = torch.randn(2, 2, 12, 12, dtype=torch.float64)
        err = equivariance_error(net, x, group)["error"]
        assert err.max() < 1e-12, (group.name, k, err.tolist())


def test_group_conv_matches_an_explicit_loop_over_group_elements() -> None:
    """The gathered filter bank equals 'transform the filter by h' computed the slow way."""
    torch.manual_seed(0)
    layer = P4MConvP4M(2, 3, 3, padding=1).double()
    x = torch.randn(1, 2, 8, 7, 7, dtype=torch.float64)
    out = layer(x)
    for i, h in enumerate(P4M):
        w_h = P4M.act_on_group_map(h, layer.weight)  # (C_out, C_in, |G|, k, k) under h
        ref = nn.functional.conv2d(x.flatten(1, 2), w_h.flatten(1, 2), layer.bias, padding=1)
        assert torch.allclose(out[:, :, i], ref, rtol=0, atol=1e-12)


@pytest.mark.parametrize("lifting", [True, False])
@pytest.mark.parametrize("group", [P4, P4M])
def test_filter_bank_in_both_layouts_is_the_group_action_on_the_filters(group, lifting: bool) -> None:
    """Both banks (contiguous and group-major) hold exactly the transformed filters in their layout's channel
    order, the group-major one in channels_last, and their gradient is that of the slow construction."""
    torch.manual_seed(1)
    c_in, c_out, k, n = 3, 2, 3, group.order
    layer = GroupConv2d(c_in, c_out, k, group=group, lifting=lifting).double()
    g_in = 1 if lifting else n
    act = (lambda h, w: group.act_on_image(h, w)) if lifting else group.act_on_group_map

    def slow_bank(group_major: bool) -> torch.Tensor:
        """Act with every h on the weight; order the channels as the layout does."""
        slow = torch.stack([act(h, layer.weight) for h in group])  # (|G|, C_out, C_in[, |G|], k, k)
        if group_major:  # output channel h·C_out + c; input channel g·C_in + c'
            if not lifting:
                slow = slow.transpose(2, 3)
            return slow.reshape(n * c_out, c_in * g_in, k, k)
        return slow.transpose(0, 1).reshape(n * c_out, c_in * g_in, k, k)  # c·|G| + h; c'·|G| + g

    for group_major in (True, False, True):  # the cached index follows the argument, both ways
        bank = layer.transformed_weight(group_major)
        assert bank.shape == (n * c_out, c_in * g_in, k, k)
        assert bank.is_contiguous(memory_format=torch.channels_last if group_major else torch.contiguous_format)
        ref_bank = slow_bank(group_major)
        assert torch.equal(bank, ref_bank)
        probe = torch.randn_like(bank)
        (grad,) = torch.autograd.grad((bank * probe).sum(), layer.weight)
        (ref,) = torch.autograd.grad((ref_bank * probe).sum(), layer.weight)
        assert torch.allclose(grad, ref, rtol=0, atol=1e-12)
        bias = layer._shared_bias(group_major)  # channel h·C_out + c, or c·|G| + h
        assert torch.equal(bias, layer.bias.repeat(n) if group_major else layer.bias.repeat_interleave(n))


def test_bias_is_shared_over_the_group_axis() -> None:
    layer = P4ConvZ2(1, 2, 3, padding=1)
    with torch.no_grad():
        layer.weight.zero_()
        layer.bias.copy_(torch.tensor([1.5, -2.0]))
    y = layer(torch.randn(1, 1, 5, 5))
    assert torch.all(y[:, 0] == 1.5) and torch.all(y[:, 1] == -2.0)


def test_batchnorm_statistics_are_shared_over_the_group_axis() -> None:
    bn = GroupBatchNorm(3)
    x = torch.randn(4, 3, 4, 5, 5) * torch.tensor([1.0, 2.0, 3.0, 4.0]).view(1, 1, 4, 1, 1)
    y = bn(x)
    assert bn.running_mean.shape == (3,)
    per_channel = y.transpose(0, 1).reshape(3, -1)
    assert torch.allclose(per_channel.mean(1), torch.zeros(3), atol=1e-5)
    assert torch.allclose(per_channel.var(1, unbiased=False), torch.ones(3), atol=1e-3)
    # equivariant in training mode too (statistics are invariant under the action)
    xd = torch.randn(2, 3, 4, 6, 6, dtype=torch.float64)
    bnd = GroupBatchNorm(3).double()
    assert equivariance_error(bnd, xd, P4)["error"].max() < 1e-12


def test_coset_pool_and_global_pool_give_invariant_vectors() -> None:
    torch.manual_seed(1)
    net = nn.Sequential(P4MConvZ2(1, 4, 3, padding=1), GroupCosetMaxPool(), GlobalAvgPool()).double()
    x = torch.randn(3, 1, 9, 9, dtype=torch.float64)
    assert net(x).shape == (3, 4)
    assert equivariance_error(net, x, P4M)["error"].max() < 1e-12
    assert GroupCosetMaxPool("mean")(torch.ones(1, 2, 4, 3, 3)).shape == (1, 2, 3, 3)


def test_pool_exact_on_even_approximate_on_odd() -> None:
    x8 = torch.randn(1, 2, 4, 8, 8, dtype=torch.float64)
    x9 = torch.randn(1, 2, 4, 9, 9, dtype=torch.float64)
    pool = GroupMaxPool2d(2)
    assert equivariance_error(pool, x8, P4)["error"].max() < 1e-12
    assert equivariance_error(pool, x9, P4)["error"].iloc[1:].min() > 1e-2


def test_bad_input_gives_clear_errors() -> None:
    with pytest.raises(ValueError, match=r"expects a group feature map \(B, 2, 4, H, W\), got shape \(1, 2, 5, 5\)"):
        P4ConvP4(2, 2, 3)(torch.zeros(1, 2, 5, 5))
    with pytest.raises(ValueError, match=r"expects an image \(B, 1, H, W\)"):
        P4ConvZ2(1, 2, 3)(torch.zeros(1, 1, 4, 5, 5))
    with pytest.raises(ValueError, match="smaller than the kernel span 5"):
        P4ConvZ2(1, 2, 5)(torch.zeros(1, 1, 3, 3))
    with pytest.raises(ValueError, match=r"square pair .* got \(3, 1\)"):
        P4ConvZ2(1, 2, (3, 1))
    with pytest.raises(ValueError, match="unknown group 'c8'"):
        GroupConv2d(1, 1, 3, group="c8")
    with pytest.raises(ValueError, match="in_channels must be a positive int, got 0"):
        P4ConvZ2(0, 1, 3)
    with pytest.raises(ValueError, match="stride"):
        P4ConvZ2(1, 1, 3, stride=0)
    with pytest.raises(ValueError, match="group feature map"):
        GroupMaxPool2d(2)(torch.zeros(1, 2, 4, 4))
    with pytest.raises(ValueError, match="mode must be 'max' or 'mean'"):
        GroupCosetMaxPool("sum")

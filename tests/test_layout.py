"""The channels-last layout of group maps: every layer keeps it, values never depend on it, checkpoints
load across layouts, and group batch norm and dropout keep the semantics of their torch counterparts."""

from __future__ import annotations

import io
import math
import sys
from pathlib import Path

import pytest
import torch
from torch import nn

from equiv.exactness import check
from equiv.models import build
from equiv.nn import (Dropout, GroupAvgPool2d, GroupBatchNorm, GroupConv2d, GroupMaxPool2d)
from equiv.nn import batchnorm
from equiv.nn.batchnorm import _TrainingNorm
from equiv.nn.dropout import keep_mask
from equiv.nn.layout import FAST_LAYOUT_MIN_CHANNELS, fast_layout, from_planes, is_fast_layout, to_planes
from equiv.testing import equivariance_errors
from equiv.tolerances import EXACT_TOL

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "benchmarks"))
from reference_layers import ReferenceKit  # noqa: E402  (the frozen layers of before the layout change)

GROUPS = ["p4", "p4m"]


def _contiguous_map(shape, dtype=torch.float64) -> torch.Tensor:
    return torch.randn(*shape, dtype=dtype)


@pytest.mark.parametrize("group", GROUPS)
def test_every_layer_returns_the_fast_layout_from_any_input_layout(group: str) -> None:
    torch.manual_seed(0)
    n = 4 if group == "p4" else 8
    wide = FAST_LAYOUT_MIN_CHANNELS // n  # channels per element that make C·|G| reach the threshold
    lift = GroupConv2d(1, wide, 3, padding=1, group=group, lifting=True).double()
    conv = GroupConv2d(wide, wide, 3, stride=2, padding=1, group=group).double()
    x = torch.randn(2, 1, 9, 9, dtype=torch.float64)
    y = lift(x)
    assert lift.fast_layout and is_fast_layout(y) and y.shape == (2, wide, n, 9, 9)
    for layer in (conv, GroupMaxPool2d(2), GroupAvgPool2d(3, stride=2, padding=1), GroupBatchNorm(wide).double(),
                  nn.ReLU(), Dropout(0.3)):
        fast = layer(y)
        assert is_fast_layout(fast), type(layer).__name__
        if not isinstance(layer, Dropout):  # random: compared below
            slow = layer(y.contiguous())
            assert torch.allclose(fast, slow, rtol=0, atol=1e-13), type(layer).__name__


@pytest.mark.parametrize("group", GROUPS)
def test_narrow_layers_keep_the_contiguous_layout_and_the_same_values(group: str) -> None:
    """Below the threshold a convolution answers contiguously; both paths compute the same function."""
    torch.manual_seed(0)
    n = 4 if group == "p4" else 8
    narrow = GroupConv2d(3, 2, 3, padding=1, group=group).double()
    assert not narrow.fast_layout and 2 * n < FAST_LAYOUT_MIN_CHANNELS
    x = torch.randn(2, 3, n, 7, 7, dtype=torch.float64)
    for inp in (x, fast_layout(x)):
        y = narrow(inp)
        assert y.is_contiguous()
        bank_c, bank_g = narrow.transformed_weight(False), narrow.transformed_weight(True)
        ref = torch.nn.functional.conv2d(x.flatten(1, 2), bank_c, narrow.bias.repeat_interleave(n), padding=1)
        assert torch.allclose(y, ref.unflatten(1, (2, n)), rtol=0, atol=1e-13)
        alt = torch.nn.functional.conv2d(to_planes(x), bank_g, narrow.bias.repeat(n), padding=1)
        assert torch.allclose(y, from_planes(alt, 2), rtol=0, atol=1e-13)
    pool = GroupMaxPool2d(2)
    assert pool(x).is_contiguous() and torch.equal(pool(x), pool(fast_layout(x)))


def test_planes_view_is_a_view_and_inverts() -> None:
    x = fast_layout(torch.randn(2, 3, 4, 5, 6))
    planes = to_planes(x)
    assert planes.data_ptr() == x.data_ptr() and planes.is_contiguous(memory_format=torch.channels_last)
    assert planes.shape == (2, 12, 5, 6) and torch.equal(planes[:, 1 * 3 + 2], x[:, 2, 1])  # channel g·C + c
    assert torch.equal(from_planes(planes, 3), x)
    assert torch.equal(fast_layout(x.contiguous()), x) and not is_fast_layout(x.contiguous())


def _force_layout(model: nn.Module, fast: bool) -> nn.Module:
    for m in model.modules():
        if isinstance(m, GroupConv2d):
            m._fast_layout = fast
    return model


@pytest.mark.parametrize("group", GROUPS)
def test_settle_layout_gives_a_network_one_layout_and_never_changes_values(group: str) -> None:
    """build() settles one layout per network: channels-last iff some convolution reaches the threshold. A
    width-2 ResNet-44 has narrow and wide layers for P4M (16–64 channels·|G|), only narrow ones for P4 (8–32)."""
    torch.manual_seed(0)
    model = build("resnet44", group=group, width=2, in_channels=1).double()
    convs = [m for m in model.modules() if isinstance(m, GroupConv2d)]
    own = [m.out_channels * m.group.order >= FAST_LAYOUT_MIN_CHANNELS for m in convs]
    assert {m.fast_layout for m in convs} == {any(own)}
    assert any(own) == (group == "p4m") and not all(own)  # P4M would mix layouts without settling
    x = torch.randn(3, 1, 33, 33, dtype=torch.float64)
    for mode in ("train", "eval"):
        getattr(model, mode)()
        settled = model(x)
        mixed = [m.fast_layout for m in convs]
        for m, flag in zip(convs, own):  # the per-layer rule: a network that switches layout between stages
            m._fast_layout = flag
        per_layer = model(x)
        for m, flag in zip(convs, mixed):
            m._fast_layout = flag
        assert torch.allclose(settled, per_layer, rtol=0, atol=1e-12), mode


@pytest.mark.parametrize("layout", ["settled", "channels-last", "contiguous"])
@pytest.mark.parametrize("name,opts,exact,approx", [("p4cnn", {"channels": 4}, 28, 27), ("resnet44", {"width": 2}, 33, 32)])
@pytest.mark.parametrize("group", GROUPS)
def test_fast_layout_models_are_exact_at_exact_sizes_only(name, opts, exact, approx, group, layout) -> None:
    torch.manual_seed(0)
    model = build(name, group=group, **opts)
    if layout != "settled":
        _force_layout(model, layout == "channels-last")
    model.train()
    with torch.no_grad():  # a few batches of running statistics, so eval mode is not the identity normalisation
        for _ in range(2):
            model(torch.randn(4, model.in_channels, exact, exact))
    for n in (exact, approx):
        x = torch.randn(2, model.in_channels, n, n, dtype=torch.float64)
        err = equivariance_errors(model, x, group)
        kept = set(check(model, n, group).exact_elements)  # at 27/32, P4M's diagonal mirrors stay exact
        assert (n == exact) == (len(kept) == len(err))
        for row in err.itertuples():
            if row.element in kept:
                assert row.max_abs <= 1e-12 * max(1.0, row.scale), (n, row)
            else:
                assert row.relative > 1e-4, (n, row)


@pytest.mark.parametrize("channels", [3, 10])
@pytest.mark.parametrize("group", GROUPS)
def test_same_function_as_the_frozen_reference_layers(group: str, channels: int) -> None:
    """Same weights, same logits and gradients as the layers of before the layout change (float64)."""
    from equiv.models.p4cnn import P4CNN

    torch.manual_seed(1)
    new = build("p4cnn", group=group, channels=channels, dropout=0.0).double()
    ref = P4CNN(ReferenceKit(group), channels, dropout=0.0).double()
    ref.load_state_dict(new.state_dict())
    assert new.conv2.fast_layout == (channels * new.group.order >= FAST_LAYOUT_MIN_CHANNELS)
    x = torch.randn(4, 1, 28, 28, dtype=torch.float64)
    for mode in ("train", "eval"):
        getattr(new, mode)(), getattr(ref, mode)()
        a, b = new(x), ref(x)
        assert torch.allclose(a, b, rtol=0, atol=1e-12), mode
    new.train(), ref.train()
    new(x).square().sum().backward()
    ref(x).square().sum().backward()
    for (name, p), q in zip(new.named_parameters(), ref.parameters()):
        assert torch.allclose(p.grad, q.grad, rtol=1e-10, atol=1e-12), name


def _relayout(state: dict) -> dict:
    """The same checkpoint with every parameter stored in another memory layout."""
    out = {}
    for k, v in state.items():
        if v.dim() == 4:
            v = v.contiguous(memory_format=torch.channels_last)
        elif v.dim() == 5:
            v = v.contiguous(memory_format=torch.channels_last_3d)
        out[k] = v
    return out


def test_checkpoints_load_across_layouts_and_from_the_old_layers() -> None:
    from equiv.models.p4cnn import P4CNN

    torch.manual_seed(2)
    trained = build("p4cnn", channels=10)
    opt = torch.optim.Adam(trained.parameters(), 1e-2)
    for _ in range(2):
        opt.zero_grad()
        trained(torch.randn(8, 1, 28, 28)).logsumexp(1).mean().backward()
        opt.step()
    trained.eval()
    x = torch.randn(3, 1, 28, 28)
    for state in (trained.state_dict(), _relayout(trained.state_dict())):
        buf = io.BytesIO()
        torch.save(state, buf)
        buf.seek(0)
        loaded = torch.load(buf, weights_only=True)
        fresh, old = build("p4cnn", channels=10).eval(), P4CNN(ReferenceKit("p4"), 10).eval()
        fresh.load_state_dict(loaded)
        old.load_state_dict(loaded)
        assert torch.allclose(fresh(x), trained(x), atol=1e-6) and torch.allclose(old(x), trained(x), atol=1e-6)
        back = build("p4cnn", channels=10).eval()
        back.load_state_dict(old.state_dict())  # old layers -> new layers
        assert torch.allclose(back(x), trained(x), atol=1e-6)


# --------------------------------------------------------------------------------------------- batch norm
#: both paths of the fast-layout batch norm: PyTorch's kernels for every map (0), elementwise passes for every map
SUM_PATHS = pytest.mark.parametrize("kernel_min_numel", [0, 2**62], ids=["kernels", "elementwise"])


@SUM_PATHS
@pytest.mark.parametrize("group", ["p4", "p4m"])
def test_group_batch_norm_in_the_fast_layout_is_equivariant_in_training(group, kernel_min_numel, monkeypatch) -> None:
    """Training-mode statistics are invariant under the action, so ``bn(g·x) = g·bn(x)`` in float64, in the
    fast layout and on both summation paths; the group axis permuted is a clearly different input."""
    from equiv.groups import get_group
    from equiv.metrics import equivariance_error

    monkeypatch.setattr(batchnorm, "KERNEL_MIN_NUMEL", kernel_min_numel)
    torch.manual_seed(11)
    order = get_group(group).order
    bn = GroupBatchNorm(6).double().train()
    with torch.no_grad():
        bn.weight.uniform_(0.5, 2), bn.bias.uniform_(-1, 1)
    x = torch.randn(3, 6, order, 7, 7, dtype=torch.float64) * 2 + 1
    err = equivariance_error(lambda t: bn(fast_layout(t)), x, group)["error"]
    assert err.max() <= EXACT_TOL, err.tolist()
    assert is_fast_layout(bn(fast_layout(x)))
    # swapping two planes of the group axis is not equivariant: the same check must see it
    swap = [1, 0, *range(2, order)]
    wrong = equivariance_error(lambda t: bn(fast_layout(t))[:, :, swap], x, group)["error"]
    assert wrong.iloc[1:].min() > 1e-2


@SUM_PATHS
@pytest.mark.parametrize("momentum", [0.1, None])
@pytest.mark.parametrize("affine", [True, False])
@pytest.mark.parametrize("layout", ["fast", "contiguous"])
def test_group_batch_norm_is_batch_norm_3d(momentum, affine, layout, kernel_min_numel, monkeypatch) -> None:
    monkeypatch.setattr(batchnorm, "KERNEL_MIN_NUMEL", kernel_min_numel)
    torch.manual_seed(3)
    bn = GroupBatchNorm(3, momentum=momentum, affine=affine).double()
    ref = nn.BatchNorm3d(3, momentum=momentum, affine=affine).double()
    if affine:
        with torch.no_grad():
            bn.weight.uniform_(0.5, 2), bn.bias.uniform_(-1, 1)
    ref.load_state_dict(bn.state_dict())
    for step in range(3):
        x = _contiguous_map((5, 3, 4, 6, 6)) * 3 + 7  # a large mean: the two-pass variance must not cancel
        xa = (fast_layout(x) if layout == "fast" else x.clone()).requires_grad_()
        xb = x.clone().requires_grad_()
        g = torch.randn_like(x)
        ya, yb = bn(xa), ref(xb)
        assert torch.allclose(ya, yb, rtol=0, atol=1e-12), step
        ya.backward(fast_layout(g) if layout == "fast" else g)
        yb.backward(g)
        assert torch.allclose(xa.grad, xb.grad, rtol=0, atol=1e-12)
    if affine:
        assert torch.allclose(bn.weight.grad, ref.weight.grad, rtol=0, atol=1e-11)
        assert torch.allclose(bn.bias.grad, ref.bias.grad, rtol=0, atol=1e-11)
    for name in ("running_mean", "running_var", "num_batches_tracked"):
        assert torch.allclose(getattr(bn, name).double(), getattr(ref, name).double(), rtol=0, atol=1e-13), name
    bn.eval(), ref.eval()
    x = _contiguous_map((2, 3, 4, 5, 5))
    assert torch.allclose(bn(fast_layout(x)), ref(x), rtol=0, atol=1e-12)


@SUM_PATHS
def test_group_batch_norm_in_float32_does_not_cancel_on_a_large_mean(kernel_min_numel, monkeypatch) -> None:
    """Mean 1,000, std 1, in float32: a one-pass ``E[x²] − E[x]²`` variance would be off by ~0.06 (about 3 % of
    every output); the folded two-pass statistics stay at float32 round-off of the deviations."""
    monkeypatch.setattr(batchnorm, "KERNEL_MIN_NUMEL", kernel_min_numel)
    torch.manual_seed(6)
    x64 = torch.randn(8, 3, 4, 9, 9, dtype=torch.float64) + 1000
    bn, ref = GroupBatchNorm(3), nn.BatchNorm3d(3).double()
    y = bn(fast_layout(x64.float()))
    expected = ref(x64.float().double())  # the same float32 inputs, normalised in float64
    assert (y.double() - expected).abs().max().item() < 2e-3
    assert torch.allclose(bn.running_var.double(), ref.running_var, rtol=1e-3)


@SUM_PATHS
def test_training_norm_gradcheck_and_refusal(kernel_min_numel, monkeypatch) -> None:
    monkeypatch.setattr(batchnorm, "KERNEL_MIN_NUMEL", kernel_min_numel)
    torch.manual_seed(4)
    args = (torch.randn(96, 3, dtype=torch.float64, requires_grad=True),
            torch.rand(3, dtype=torch.float64, requires_grad=True), torch.randn(3, dtype=torch.float64, requires_grad=True))
    assert torch.autograd.gradcheck(lambda x, w, b: _TrainingNorm.apply(x, w, b, 1e-5)[0], args)
    assert torch.autograd.gradcheck(lambda x: _TrainingNorm.apply(x, None, None, 1e-5)[0], args[:1])
    with pytest.raises(ValueError, match="more than one value per channel"):
        GroupBatchNorm(2)(fast_layout(torch.randn(1, 2, 1, 1, 1)))


# -------------------------------------------------------------------------------------------------- dropout
@pytest.mark.parametrize("p", [0.1, 0.3, 0.5, 0.9])
def test_dropout_rate_scaling_and_gradient(p: float) -> None:
    torch.manual_seed(5)
    x = fast_layout(torch.rand(64, 8, 4, 16, 16) + 0.5).requires_grad_()
    layer = Dropout(p)
    y = layer(x)
    assert is_fast_layout(y)
    dropped = (y == 0)
    n = y.numel()
    sigma = math.sqrt(p * (1 - p) / n)
    assert abs(dropped.double().mean().item() - layer.rate) < 5 * sigma and abs(layer.rate - p) <= 2 ** -16
    kept = ~dropped
    assert torch.allclose(y[kept], x[kept] / (1 - p), rtol=1e-6)
    y.backward(torch.ones_like(y))
    assert torch.equal(x.grad == 0, dropped) and torch.allclose(x.grad[kept], torch.full_like(x.grad[kept], 1 / (1 - p)))


def test_dropout_eval_identity_edge_rates_and_seeding() -> None:
    x = torch.randn(4, 3, 4, 5, 5)
    layer = Dropout(0.3).eval()
    assert layer(x) is x
    assert Dropout(0.0).train()(x) is x
    assert torch.equal(Dropout(1.0).train()(x), torch.zeros_like(x))
    torch.manual_seed(7)
    a = Dropout(0.3).train()(x)
    torch.manual_seed(7)
    b = Dropout(0.3).train()(x)
    torch.manual_seed(8)
    c = Dropout(0.3).train()(x)
    assert torch.equal(a, b) and not torch.equal(a, c)
    m = keep_mask(fast_layout(x), 0.5)
    assert m.dtype == torch.bool and m.stride() == fast_layout(x).stride()
    # non-dense inputs fall back to F.dropout (same semantics)
    view = torch.randn(4, 6, 5)[:, ::2]
    out = Dropout(0.5).train()(view)
    assert out.shape == view.shape and set(torch.unique((out == 0) | torch.isclose(out, 2 * view)).tolist()) == {True}

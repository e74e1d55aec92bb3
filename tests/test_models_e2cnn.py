"""The e2cnn backend: full-span kernel bases, e2cnn's orientation in equiv's conventions, and the same
exactness verdicts and invariance as the native models.

e2cnn layers are built with ``recompute=True`` (no basis shared between models), so float64 works and the
invariance tolerance at exact sizes is the same 1e-10 as for the native models (measured ≈1e-15); one test
also runs float32 (tolerance 1e-5).
"""

from __future__ import annotations

import math
import warnings

import pytest
import torch

from e2cnn import gspaces
from e2cnn import nn as enn

from equiv.exactness import check
from equiv.groups import get_group
from equiv.models import build
from e2cnn.nn.init import _generalized_he_init_variances

from equiv.models.e2cnn_backend import (E2Conv2d, conv_basis_settings, from_group_map, gspace_for, he_init_,
                                        to_group_map)
from equiv.nn import GroupConv2d

from test_models import invariance_errors, n_params, prepare

torch.set_num_threads(1)
# e2cnn 0.2.3 hashes its bases with numpy's deprecated ``tostring`` whenever torch walks the module tree
pytestmark = pytest.mark.filterwarnings("ignore:tostring:DeprecationWarning")


def filter_span(expand, n_weights: int) -> torch.Tensor:
    """Rows: the filter bank produced by each unit weight vector (float64)."""
    rows = []
    for i in range(n_weights):
        w = torch.zeros(n_weights, dtype=torch.float64)
        w[i] = 1
        rows.append(expand(w).reshape(-1))
    return torch.stack(rows)


def e2_filter_rows(conv: E2Conv2d) -> torch.Tensor:
    r2 = conv.e2.double()
    return filter_span(lambda w: r2.basisexpansion(w), r2.weights.numel())


def native_filter_rows(group: str, k: int, lifting: bool) -> torch.Tensor:
    layer = GroupConv2d(1, 1, k, group=group, lifting=lifting, bias=False).double()

    def expand(w: torch.Tensor) -> torch.Tensor:
        layer.weight.data.copy_(w.reshape(layer.weight.shape))
        return layer.transformed_weight()

    return filter_span(expand, layer.weight.numel())


# ------------------------------------------------------------------------------------------ kernel bases
@pytest.mark.parametrize("group", ["p4", "p4m"])
@pytest.mark.parametrize("k, lifting", [(3, True), (3, False), (4, True), (4, False), (1, False), (2, False), (5, True)])
def test_basis_spans_the_full_filter_space(group, k, lifting):
    order = get_group(group).order
    full = k * k * (1 if lifting else order)
    conv = E2Conv2d(2, 3, k, group=group, lifting=lifting, bias=False)
    assert conv.e2.weights.numel() == 2 * 3 * full  # trainable weights per field pair = |G_in|·k²
    single = E2Conv2d(1, 1, k, group=group, lifting=lifting, bias=False)
    rows = e2_filter_rows(single)
    assert torch.linalg.matrix_rank(rows).item() == full  # linearly independent: no redundant weight
    # ... and it is the same space as the GrouPy-style layer's (same channel order: a permutation would differ)
    native = native_filter_rows(group, k, lifting)
    assert torch.linalg.matrix_rank(torch.cat([rows, native])).item() == full


@pytest.mark.parametrize("group, lifting", [("p4", True), ("p4m", False)])
def test_fast_he_init_matches_e2cnn_generalized_he_init(group, lifting):
    conv = E2Conv2d(3, 5, 3, group=group, lifting=lifting)
    std = _generalized_he_init_variances(conv.e2.basisexpansion)  # e2cnn's (slow) per-weight std
    torch.manual_seed(0)
    he_init_(conv.e2, group, lifting)
    ours = conv.e2.weights.detach().clone()
    torch.manual_seed(0)
    assert torch.equal(ours, std * torch.randn_like(std))


def test_three_by_three_uses_the_documented_rings():
    settings = conv_basis_settings("p4", 3, lifting=False)
    assert settings["rings"] == [0.0, 1.0, math.sqrt(2)] and settings["frequencies_cutoff"] == 1.5
    assert "basis_filter" not in settings  # complete and independent as it is
    assert "basis_filter" in conv_basis_settings("p4", 4, lifting=False)  # 4×4 needs the selected subset


def test_default_e2cnn_bases_are_not_full_for_even_kernels():
    """Why the backend chooses its own settings: e2cnn's default 4×4 basis misses most of the filter space."""
    gs = gspaces.Rot2dOnR2(N=4)
    t = enn.FieldType(gs, [gs.regular_repr])
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        assert enn.R2Conv(t, t, 4, recompute=True).weights.numel() < 4 * 16
        assert enn.R2Conv(t, t, 3, recompute=True).weights.numel() < 4 * 9


# ------------------------------------------------------------------------------------------- orientation
def _raw_layers(group: str):
    """Plain e2cnn R2Conv layers (e2cnn's default basis settings): lifting, group, strided group conv."""
    gs = gspace_for(group)
    triv = enn.FieldType(gs, [gs.trivial_repr] * 2)
    reg = enn.FieldType(gs, [gs.regular_repr] * 2)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        return [
            (enn.R2Conv(triv, reg, 3, padding=1, recompute=True).double(), True, 9),
            (enn.R2Conv(reg, reg, 3, padding=1, recompute=True).double(), False, 9),
            (enn.R2Conv(reg, reg, 3, stride=2, padding=1, recompute=True).double(), False, 9),  # exact: 9 odd
            (E2Conv2d(2, 2, 4, group=group).e2.double(), False, 8),  # even kernel, stride 1
        ]


def _apply(layer, x: torch.Tensor, lifting: bool, group: str) -> torch.Tensor:
    """Run an e2cnn layer on an image or an equiv group map; return an equiv group map."""
    flat = x if lifting else x.flatten(1, 2)
    return to_group_map(layer(enn.GeometricTensor(flat, layer.in_type)), group)


@pytest.mark.parametrize("group", ["p4", "p4m"])
def test_to_group_map_makes_equiv_action_the_true_action(group):
    """to_group_map(f(g·x)) == g·to_group_map(f(x)) for every g, at exact sizes, for e2cnn layers."""
    grp = get_group(group)
    gen = torch.Generator().manual_seed(0)
    for layer, lifting, size in _raw_layers(group):
        shape = (2, 2, size, size) if lifting else (2, 2, grp.order, size, size)
        x = torch.randn(*shape, dtype=torch.float64, generator=gen)
        y = _apply(layer, x, lifting, group)
        assert y.shape[:3] == (2, 2, grp.order)
        for g in grp:
            y_g = _apply(layer, grp.act(g, x), lifting, group)
            assert torch.allclose(y_g, grp.act(g, y), atol=1e-12, rtol=0), (group, lifting, g.name)


def test_orientation_test_can_fail():
    """A wrong element order (rotations reversed) or an approximate size is caught by the same comparison."""
    grp = get_group("p4")
    layer = _raw_layers("p4")[0][0]
    x = torch.randn(1, 2, 9, 9, dtype=torch.float64)
    r = grp.elements[1]
    reverse = [0, 3, 2, 1]  # r^k read as r^-k
    y, y_r = _apply(layer, x, True, "p4")[:, :, reverse], _apply(layer, grp.act(r, x), True, "p4")[:, :, reverse]
    assert not torch.allclose(y_r, grp.act(r, y), atol=1e-6)
    strided = _raw_layers("p4")[2][0]
    xg = torch.randn(1, 2, 4, 8, 8, dtype=torch.float64)  # 3×3/s2/p1 at even size: approximate
    y, y_r = _apply(strided, xg, False, "p4"), _apply(strided, grp.act(r, xg), False, "p4")
    assert not torch.allclose(y_r, grp.act(r, y), atol=1e-3)


def test_to_group_map_rejects_what_is_not_a_group_map():
    gs = gspace_for("p4")
    triv = enn.GeometricTensor(torch.zeros(1, 3, 5, 5), enn.FieldType(gs, [gs.trivial_repr] * 3))
    reg = enn.GeometricTensor(torch.zeros(1, 8, 5, 5), enn.FieldType(gs, [gs.regular_repr] * 2))  # P4 fields
    with pytest.raises(ValueError, match="regular"):
        to_group_map(triv, "p4")
    with pytest.raises(ValueError, match="p4m"):
        to_group_map(reg, "p4m")
    x = torch.randn(1, 2, 4, 5, 5)
    back = from_group_map(x, reg.type)
    assert torch.equal(to_group_map(back, "p4"), x) and back.tensor.shape == (1, 8, 5, 5)


# ----------------------------------------------------------------------------------------------- models
E2_CASES = [
    ("p4cnn", "p4", {"channels": 4}, 28, [27, 29]),
    ("p4cnn", "p4m", {"channels": 2}, 28, [27, 29]),
    ("resnet44", "p4", {"width": 2}, 33, [32]),
    ("resnet44", "p4m", {"width": 1}, 33, [32]),
]


@pytest.mark.parametrize("name, group, opts, exact, approximate", E2_CASES)
def test_e2cnn_models_same_verdicts_and_parameters_as_native(name, group, opts, exact, approximate):
    e2 = build(name, group=group, backend="e2cnn", **opts)
    native = build(name, group=group, **opts)
    assert n_params(e2) == n_params(native)
    for n in [exact, *approximate]:
        assert check(e2, n, group).exact == check(native, n, group).exact == (n == exact), n
    assert {op.layer for op in check(e2, approximate[0], group).breaking} <= {n for n, _ in e2.named_modules()}


@pytest.mark.parametrize("name, group, opts, exact, approximate", E2_CASES)
def test_e2cnn_logits_invariant_exactly_at_exact_size_only(name, group, opts, exact, approximate):
    torch.manual_seed(0)
    model = prepare(build(name, group=group, backend="e2cnn", **opts), exact)
    assert max(invariance_errors(model, exact, group)) < 1e-10
    for n in approximate:
        assert max(invariance_errors(model, n, group)) > 1e-3, n


def test_e2cnn_default_width_p4cnn_float32():
    torch.manual_seed(0)
    model = build("p4cnn", backend="e2cnn")
    assert n_params(model) == 24_810  # same as native: conv biases per field, InnerBatchNorm affine per field
    model.eval()
    grp = get_group("p4")
    x = torch.randn(2, 1, 28, 28)
    with torch.no_grad():
        y = model(x)
        errs = [((model(grp.act_on_image(g, x)) - y).norm() / y.norm()).item() for g in grp]
    assert max(errs) < 1e-5


def test_casting_one_e2cnn_model_leaves_others_alone():
    """e2cnn's default basis cache would make b's basis float64 too; recompute=True keeps models independent."""
    a = build("p4cnn", backend="e2cnn", channels=2)
    b = build("p4cnn", backend="e2cnn", channels=2)
    a.double()
    assert a(torch.randn(2, 1, 28, 28, dtype=torch.float64)).dtype == torch.float64
    assert b(torch.randn(2, 1, 28, 28)).dtype == torch.float32


def test_e2cnn_layer_outputs_are_equiv_group_maps():
    model = build("resnet44", group="p4m", backend="e2cnn", width=1).eval()
    names = {n for n, _ in model.named_modules()}
    assert {"conv1", "layer2.0.conv1", "layer2.0.shortcut.conv", "bn", "head.fc"} <= names
    out = model.features(torch.randn(1, 3, 33, 33))
    assert out.shape == (1, 4, 8, 9, 9)

"""Equivariance metrics against known answers, and the batched rotation sweep against a slow loop."""

from __future__ import annotations

import pytest
import torch
from torch import nn

from equiv.groups import P4, P4M
from equiv.metrics import accuracy_vs_rotation, equivariance_error, layerwise_equivariance, transform_output
from equiv.nn import GlobalAvgPool, GroupBatchNorm, GroupCosetMaxPool, P4ConvP4, P4ConvZ2
from equiv.rotation import rotate


def test_equivariance_error_of_known_functions() -> None:
    x = torch.randn(3, 2, 7, 7, dtype=torch.float64)
    assert equivariance_error(lambda t: t * 2, x, P4M)["error"].max() == 0  # image → image, equivariant
    err = equivariance_error(lambda t: torch.roll(t, 1, dims=-1), x, P4)
    assert err["error"].iloc[0] == 0 and err["error"].iloc[1:].min() > 0.1  # a shift is not rotation-equivariant
    inv = equivariance_error(lambda t: t.sum(dim=(-2, -1)), x, P4M)  # image → vector: invariance
    assert inv["error"].max() < 1e-12
    frame = equivariance_error(lambda t: t[..., 0, 0].clone(), x, P4)  # picks a corner: not invariant
    assert list(frame.columns) == ["element", "index", "error", "abs_error"]
    assert frame["element"].tolist() == ["e", "r", "r2", "r3"] and frame["error"].iloc[1:].min() > 0.1


def test_group_map_error_uses_the_group_axis_permutation_too() -> None:
    torch.manual_seed(0)
    layer = P4ConvZ2(1, 2, 3, padding=1).double()
    x = torch.randn(2, 1, 8, 8, dtype=torch.float64)
    assert equivariance_error(layer, x, P4)["error"].max() < 1e-12
    # spatial action alone (forgetting the permutation) is NOT the true action: the error is O(1)
    spatial_only = [(layer(P4.act(g, x)) - torch.rot90(layer(x), g.rot, dims=(-2, -1))).norm() / layer(x).norm()
                    for g in list(P4)[1:]]
    assert min(spatial_only) > 0.1
    # group map → group map
    gmap = torch.randn(2, 2, 4, 8, 8, dtype=torch.float64)
    assert equivariance_error(P4ConvP4(2, 3, 3, padding=1).double(), gmap, P4)["error"].max() < 1e-12


def test_layerwise_profile_locates_the_break() -> None:
    torch.manual_seed(0)
    net = nn.Sequential(P4ConvZ2(1, 3, 3, padding=1), GroupBatchNorm(3), nn.ReLU(),
                        P4ConvP4(3, 3, 3, stride=2, padding=1), GroupCosetMaxPool(), GlobalAvgPool()).double().eval()
    for n, exact in ((9, True), (8, False)):
        frame = layerwise_equivariance(net, torch.randn(2, 1, n, n, dtype=torch.float64), P4)
        assert set(frame.columns) == {"order", "layer", "module", "output_shape", "element", "error"}
        worst = frame.groupby("layer", sort=False)["error"].max()
        assert list(worst.index) == ["0", "1", "2", "3", "4", "5", "<output>"]
        assert worst[["0", "1", "2"]].max() < 1e-12  # stride-1 layers stay exact
        if exact:
            assert worst.max() < 1e-12
        else:
            assert worst[["3", "4", "5", "<output>"]].min() > 1e-3  # broken from the strided layer on
    assert len(layerwise_equivariance(net, torch.randn(1, 1, 9, 9, dtype=torch.float64), P4, leaves_only=True)
               .query("layer == '<output>'")) == 4


def test_transform_output_rejects_unknown_shapes() -> None:
    with pytest.raises(ValueError, match=r"cannot act with p4 on an output of shape \(1, 2, 3, 4, 4\)"):
        transform_output(P4.elements[1], torch.zeros(1, 2, 3, 4, 4), P4)
    with pytest.raises(ValueError, match="x must be images"):
        equivariance_error(lambda t: t, torch.zeros(3, 3), P4)


class _Invariant(nn.Module):
    """A tiny exactly P4-invariant classifier at odd sizes (stride-2 conv on 9×9)."""

    def __init__(self):
        super().__init__()
        self.net = nn.Sequential(P4ConvZ2(1, 4, 3, stride=2, padding=1), nn.ReLU(), P4ConvP4(4, 5, 3, padding=1),
                                 GroupCosetMaxPool(), GlobalAvgPool())

    def forward(self, x):
        return self.net(x)


def test_accuracy_vs_rotation_matches_a_slow_loop_and_is_exact_at_right_angles() -> None:
    torch.manual_seed(0)
    model = _Invariant().eval()
    images = torch.rand(37, 1, 9, 9)
    labels = model(images).argmax(1)  # labels = upright predictions → 100 % at 0°
    labels[::3] = (labels[::3] + 1) % 5  # and some wrong ones
    angles = [0, 30, 90, 135, 180, 270, -90]
    frame = accuracy_vs_rotation(model, images, labels, angles, fill=0.0, batch_size=50)
    assert list(frame.columns) == ["angle", "accuracy", "correct", "n"]
    for angle, acc in zip(frame["angle"], frame["accuracy"]):
        slow = (model(rotate(images, angle, 0.0)).argmax(1) == labels).double().mean().item() * 100
        assert acc == pytest.approx(slow)
    right = frame.set_index("angle").loc[[0.0, 90.0, 180.0, 270.0, -90.0], "accuracy"]
    assert right.nunique() == 1  # exact invariance ⇒ identical accuracy at every right angle


def test_accuracy_vs_rotation_bad_input() -> None:
    model = _Invariant()
    with pytest.raises(ValueError, match=r"labels must be \(4,\)"):
        accuracy_vs_rotation(model, torch.zeros(4, 1, 9, 9), torch.zeros(3, dtype=torch.long), [0])
    with pytest.raises(ValueError, match="angles must be a non-empty list of finite numbers"):
        accuracy_vs_rotation(model, torch.zeros(4, 1, 9, 9), torch.zeros(4, dtype=torch.long), [float("nan")])
    with pytest.raises(ValueError, match=r"images must be \(N, C, H, W\)"):
        accuracy_vs_rotation(model, torch.zeros(4, 9, 9), torch.zeros(4, dtype=torch.long), [0])

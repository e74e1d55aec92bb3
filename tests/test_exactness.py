"""The exactness predictor on whole models: tracing, reports, refusals, size search."""

from __future__ import annotations

import pytest
import torch
import torch.nn.functional as F
from torch import nn

from equiv.exactness import ExactnessError, check, exact_sizes, nearest_exact_size, size_sweep
from equiv.metrics import equivariance_error
from equiv.nn import GroupCosetMaxPool, GroupMaxPool2d, P4ConvP4, P4ConvZ2
from equiv.tolerances import EXACT_TOL


def _p4_net() -> nn.Module:
    return nn.Sequential(P4ConvZ2(1, 2, 3, padding=1), P4ConvP4(2, 2, 3, stride=2, padding=1), GroupMaxPool2d(2),
                         GroupCosetMaxPool())


def test_report_lists_every_subsampling_op_with_its_numbers() -> None:
    report = check(_p4_net(), 10, "p4")
    frame = report.to_frame()
    assert list(frame["layer"]) == ["1", "2"]
    assert list(frame["op"]) == ["conv2d", "max_pool2d"]
    assert list(frame["input_size"]) == ["10x10", "5x5"]
    assert list(frame["r"]) == [1, 1]
    assert list(frame["exact"]) == [False, False]
    assert not report.exact and report.exact_elements == ("e",)
    assert len(report.to_frame(all_ops=True)) == 3  # the stride-1 lifting conv is listed only with all_ops
    text = report.table()
    assert "APPROXIMATELY equivariant (broken by 1, 2)" in text and "max_pool2d" in text
    assert check(_p4_net(), 9, "p4").exact is False  # conv fine at 9 (r=0), pool on 5 is not
    assert check(_p4_net(), 13, "p4").exact is False  # conv fine at 13, pool on 7 is not
    assert check(_p4_net(), 15, "p4").exact is True  # conv fine at 15, pool on 8 too


def test_size_sweep_matches_the_compounding_rule() -> None:
    # conv 3x3/p1/s2 needs N odd; its output (N+1)/2 must be even for the 2x2 pool: N ≡ 3 (mod 4)
    assert exact_sizes(_p4_net(), range(4, 40)) == [n for n in range(4, 40) if n % 4 == 3]
    frame = size_sweep(_p4_net(), [1, 2, 11, 12])
    assert frame["exact"].tolist()[:2] == [None, None]  # too small
    assert frame["exact"].tolist()[2:] == [True, False]
    assert nearest_exact_size(_p4_net(), 12) == 11
    assert nearest_exact_size(_p4_net(), 12, direction="up") == 15
    assert nearest_exact_size(_p4_net(), 13, direction="down") == 11


def test_nearest_ties_go_up() -> None:
    net = nn.Sequential(P4ConvZ2(1, 1, 1), GroupMaxPool2d(2))  # even sizes exact
    assert nearest_exact_size(net, 27) == 28
    assert nearest_exact_size(net, 27, direction="down") == 26


def test_plain_torch_layers_and_functional_calls_are_found() -> None:
    class UserNet(nn.Module):
        def __init__(self):
            super().__init__()
            self.stem = nn.Conv2d(3, 4, 7, stride=2, padding=3)
            self.pool = nn.MaxPool2d(3, stride=2, padding=1)
            self.avg = nn.AvgPool2d(2)

        def forward(self, x):
            x = self.avg(self.pool(self.stem(x)))
            return F.max_pool2d(x, 2)  # functional call in the root module

    frame = check(UserNet(), 225, "p4").to_frame()
    assert list(frame["layer"]) == ["stem", "pool", "avg", "<model>"]
    assert list(frame["module"]) == ["Conv2d", "MaxPool2d", "AvgPool2d", "UserNet"]
    assert list(frame["input_size"]) == ["225x225", "113x113", "57x57", "28x28"]
    assert list(frame["exact"]) == [True, True, False, True]


def test_ceil_mode_is_derived_not_guessed() -> None:
    # ceil mode on N=5, k=2, s=2: windows {0,1},{2,3},{4} – not mirror-symmetric
    assert not check(nn.MaxPool2d(2, ceil_mode=True), 5, "p4", in_channels=1).exact
    # k=3, s=2, N=6, ceil: windows {0,1,2},{2,3,4},{4,5} vs mirror {0,1},{1,2,3},{3,4,5}: not symmetric
    assert not check(nn.MaxPool2d(3, 2, ceil_mode=True), 6, "p4", in_channels=1).exact
    # k=2, s=2, N=4: identical to floor mode
    assert check(nn.MaxPool2d(2, ceil_mode=True), 4, "p4", in_channels=1).exact


@pytest.mark.parametrize("n,out", [(7, 3), (9, 4), (10, 3), (8, 1)])
def test_adaptive_pooling_windows_are_always_symmetric_and_measured_so(n: int, out: int) -> None:
    """Adaptive pooling's windows [⌊jN/o⌋, ⌈(j+1)N/o⌉) are mirror-symmetric for every N, o: judged exact,
    and measurement agrees (float64)."""
    torch.manual_seed(n)
    for pool in (nn.AdaptiveAvgPool2d(out), nn.AdaptiveMaxPool2d(out)):
        net = nn.Sequential(P4ConvZ2(1, 2, 3, padding=1), nn.Flatten(1, 2), pool).double()
        assert check(net, n, "p4").exact
        # the output is (B, 2·4, o, o); act on it as a group map after unflattening
        x = torch.randn(2, 1, n, n, dtype=torch.float64)
        err = equivariance_error(lambda t: net(t).unflatten(1, (2, 4)), x, "p4")["error"]
        assert err.max() <= EXACT_TOL


def test_strided_slicing_is_a_subsampling_op() -> None:
    class Slice(nn.Module):
        in_channels = 1

        def forward(self, x):
            return x[:, :, ::2, ::2]

    assert check(Slice(), 9, "p4").exact and not check(Slice(), 8, "p4").exact
    frame = check(Slice(), 8, "p4").to_frame()
    assert frame["op"].tolist() == ["slice"] and frame["r"].tolist() == [1]
    x = torch.randn(1, 1, 8, 8, dtype=torch.float64)
    assert equivariance_error(Slice(), x, "p4")["error"].iloc[1:].min() > 1e-2


def test_group_choice() -> None:
    assert check(_p4_net(), 10, "z2").exact  # the trivial group: nothing to break
    rep = check(nn.Sequential(P4ConvZ2(1, 1, 3, stride=2)), 8, "p4m", in_channels=1)
    assert not rep.exact and rep.exact_elements == ("e", "rm")  # the diagonal mirror keeps the grid


def test_refuses_what_it_cannot_judge() -> None:
    class AsymPad(nn.Module):
        in_channels = 1

        def forward(self, x):
            return F.max_pool2d(F.pad(x, (0, 1, 0, 1)), 2)

    with pytest.raises(ExactnessError, match=r"asymmetric padding \(0, 1, 0, 1\)"):
        check(AsymPad(), 8, "p4")
    with pytest.raises(ExactnessError, match="padding='same' with even kernel span"):
        check(nn.Conv2d(1, 1, 2, padding="same"), 8, "p4")
    assert check(nn.Conv2d(1, 1, 3, padding="same"), 8, "p4").exact  # odd span: symmetric 'same'
    with pytest.raises(ExactnessError, match="interpolate"):
        check(nn.Upsample(scale_factor=2), 8, "p4", in_channels=1)
    with pytest.raises(ExactnessError, match="conv_transpose2d"):
        check(nn.ConvTranspose2d(1, 1, 3, stride=2), 8, "p4")


def test_bad_arguments() -> None:
    with pytest.raises(ValueError, match="input_size must be an int or a pair"):
        check(_p4_net(), "28")
    with pytest.raises(ValueError, match="unknown group 'so2'"):
        check(_p4_net(), 28, "so2")
    with pytest.raises(ValueError, match="input size 2x2 does not fit the model"):
        check(nn.Sequential(P4ConvZ2(1, 1, 5)), 2)
    with pytest.raises(ValueError, match="model must be a torch.nn.Module"):
        check(lambda x: x, 8)
    with pytest.raises(ValueError, match="cannot infer the model's input channels"):
        check(nn.Sequential(nn.ReLU()), 8)


def test_e2cnn_layers_are_traced_through_their_conv2d_calls() -> None:
    from e2cnn import gspaces
    from e2cnn import nn as enn

    gs = gspaces.Rot2dOnR2(4)
    in_type = enn.FieldType(gs, [gs.trivial_repr])
    out_type = enn.FieldType(gs, 2 * [gs.regular_repr])

    class E2(nn.Module):
        in_channels = 1

        def __init__(self):
            super().__init__()
            self.conv = enn.R2Conv(in_type, out_type, 3, stride=2, padding=1)

        def forward(self, x):
            return self.conv(enn.GeometricTensor(x, in_type)).tensor

    frame = check(E2(), 33, "p4").to_frame()
    assert frame["layer"].tolist() == ["conv"] and frame["exact"].tolist() == [True]
    assert not check(E2(), 32, "p4").exact

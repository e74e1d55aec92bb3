"""`equiv check` on anyone's model, the fix hints, and the assertions of `equiv.testing`."""

from __future__ import annotations

import json
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest
import torch
import torch.nn.functional as F
from torch import nn

from equiv.cli import main
from equiv.exactness import check
from equiv.exactness_fixes import apply_change, fix_hints, fix_plan, unfixable_layers
from equiv.nn import GroupCosetMaxPool, GroupMaxPool2d, P4ConvP4, P4ConvZ2
from equiv.testing import assert_equivariant, assert_exact, equivariance_errors

USER_FILE = '''
import torch.nn.functional as F
from torch import nn
from equiv.nn import P4ConvZ2, P4ConvP4


class Net(nn.Module):
    """A user's G-CNN: lifting conv, a stride-3 group conv, amax over group and space, Linear."""

    def __init__(self, width=3, stride=3):
        super().__init__()
        self.lift = P4ConvZ2(1, width, 3, padding=1)
        self.down = P4ConvP4(width, width, 3, stride=stride)
        self.head = nn.Linear(width, 10)

    def forward(self, x):
        return self.head(self.down(F.relu(self.lift(x))).amax(dim=(2, 3, 4)))


def make(width=3):
    return Net(width=width)


instance = Net()


def not_a_model():
    return 42


class NoChannels(nn.Module):
    def forward(self, x):
        return F.max_pool2d(x, 2)


class Resize(nn.Module):
    in_channels = 1

    def forward(self, x):
        return F.interpolate(x, scale_factor=2.0)
'''


@pytest.fixture()
def user_file(tmp_path: Path) -> Path:
    path = tmp_path / "user_net.py"
    path.write_text(USER_FILE)
    return path


def _run(argv: list[str], capsys) -> tuple[int, str, str]:
    code = main(argv)
    out = capsys.readouterr()
    return code, out.out, out.err


# --------------------------------------------------------------------------------------------- the CLI
def test_file_model_exact_and_approximate_with_exit_codes(user_file: Path, capsys) -> None:
    code, out, _ = _run(["check", f"{user_file}:Net", "--input-size", "27"], capsys)
    assert code == 0 and "Net at input 27x27, group p4: EXACTLY equivariant" in out
    code, out, _ = _run(["check", f"{user_file}:Net", "--input-size", "28"], capsys)
    assert code == 1 and "APPROXIMATELY equivariant (broken by down)" in out
    assert "nearest exact sizes: below 27, above 30" in out
    assert "layer down: padding=1 -> the whole network is exact" in out


def test_options_factories_instances_and_module_specs(user_file: Path, capsys, monkeypatch) -> None:
    code, out, _ = _run(["check", f"{user_file}:Net", "-o", "stride=2", "--input-size", "27"], capsys)
    assert code == 0  # stride 2 with k=3, p=0: N odd is exact
    assert _run(["check", f"{user_file}:make", "-o", "width=2", "--input-size", "28"], capsys)[0] == 1
    assert _run(["check", f"{user_file}:instance", "--input-size", "27"], capsys)[0] == 0
    monkeypatch.chdir(user_file.parent)
    assert _run(["check", "user_net:Net", "--input-size", "27"], capsys)[0] == 0


def test_json_output(user_file: Path, capsys) -> None:
    code, out, _ = _run(["check", f"{user_file}:Net", "--input-size", "28", "--json"], capsys)
    data = json.loads(out)
    assert code == 1 and data["exact"] is False and data["input_size"] == [28, 28]
    assert [op["layer"] for op in data["breaking"]] == ["down"] and data["breaking"][0]["r"] == 1
    assert data["nearest_exact"] == {"below": 27, "above": 30}
    assert {"layer": "down", "change": "padding=1", "network_exact": True}.items() <= data["hints"][0].items()
    code, out, _ = _run(["check", f"{user_file}:Net", "--sizes", "26-28", "--json"], capsys)
    assert code == 1 and [s["verdict"] for s in json.loads(out)["sizes"]] == ["approximate", "exact", "approximate"]
    code, out, _ = _run(["check", f"{user_file}:Net", "--sizes", "27,30", "--json"], capsys)
    assert code == 0 and json.loads(out)["sizes"][1]["breaking"] == []


def test_in_channels_where_it_cannot_be_inferred(user_file: Path, capsys) -> None:
    code, _, err = _run(["check", f"{user_file}:NoChannels", "--input-size", "8"], capsys)
    assert code == 2 and "cannot infer the model's input channels" in err
    assert _run(["check", f"{user_file}:NoChannels", "--input-size", "8", "--in-channels", "3"], capsys)[0] == 0
    assert _run(["check", f"{user_file}:NoChannels", "--input-size", "9", "--in-channels", "3"], capsys)[0] == 1


def test_cannot_judge_is_its_own_exit_code(user_file: Path, capsys) -> None:
    code, _, err = _run(["check", f"{user_file}:Resize", "--input-size", "8"], capsys)
    assert code == 3 and "cannot judge" in err and "interpolate" in err and len(err.strip().splitlines()) == 1


@pytest.mark.parametrize("spec,size,message", [
    ("{file}:not_a_model", "28", "returned 'int', not a torch.nn.Module"),
    ("{file}:Missing", "28", "has no attribute 'Missing'"),
    ("{dir}/nowhere.py:Net", "28", "no such file"),
    ("{dir}/broken.py:Net", "28", "importing"),
    ("{dir}/raises.py:Net", "28", "RuntimeError: no GPU here"),
    ("no_such_module_xyz:Net", "28", "ModuleNotFoundError"),
    ("{file}:Net", "2", "input size 2x2 does not fit the model"),
    ("{file}:instance -o width=2", "28", "takes no -o options"),
    ("{file}:Net -o width=-1", "28", "calling Net(width=-1) failed"),
    ("{file}:", "28", "after ':' comes a callable's name"),
])
def test_bad_models_are_one_line_errors(user_file: Path, spec: str, size: str, message: str, capsys) -> None:
    (user_file.parent / "broken.py").write_text("def Net(:\n")
    (user_file.parent / "raises.py").write_text("raise RuntimeError('no GPU here')\n")
    words = spec.format(file=user_file, dir=user_file.parent).split()
    code, out, err = _run(["check", *words, "--input-size", size], capsys)
    assert code == 2 and out == ""
    assert message in err and len(err.strip().splitlines()) == 1, err


def test_own_models_keep_working_with_exit_codes(capsys) -> None:
    assert _run(["check", "p4cnn", "--input-size", "28"], capsys)[0] == 0
    code, out, _ = _run(["check", "p4cnn", "--input-size", "27"], capsys)
    assert code == 1 and "layer pool: no padding or ceil-mode change makes it exact on its 27x27 input" in out
    assert "the network: input size 28 -> the whole network is exact" in out


def test_console_script_exit_status(user_file: Path) -> None:
    done = subprocess.run([sys.executable, "-m", "equiv.cli", "check", f"{user_file}:Net", "--input-size", "28"],
                          capture_output=True, text=True, timeout=120)
    assert done.returncode == 1 and "broken by down" in done.stdout
    done = subprocess.run([sys.executable, "-m", "equiv.cli", "check", f"{user_file}:Net"], capture_output=True,
                          text=True, timeout=120)
    assert done.returncode == 2 and "give exactly one of" in done.stderr


# ------------------------------------------------------------------------------------------ fix hints
def _pool_stride3() -> nn.Module:
    return nn.Sequential(P4ConvZ2(1, 2, 3, padding=1), GroupMaxPool2d(3, stride=3), GroupCosetMaxPool())


def _two_breaks() -> nn.Module:
    return nn.Sequential(P4ConvZ2(1, 2, 3, stride=3), P4ConvP4(2, 2, 3, stride=3, padding=1), GroupCosetMaxPool())


HINT_CASES = [
    ("stride-3 conv", lambda: nn.Sequential(P4ConvZ2(1, 2, 3, stride=3)), range(8, 30)),
    ("stride-3 pool", _pool_stride3, range(8, 30)),
    ("two stride-3 convs", _two_breaks, range(12, 40)),
    ("plain CNN", lambda: nn.Sequential(nn.Conv2d(1, 2, 5, stride=4, padding=1), nn.ReLU(), nn.MaxPool2d(2)),
     range(10, 40)),
    ("p4cnn", lambda: __import__("equiv.models", fromlist=["build"]).build("p4cnn", channels=2), (27, 29)),
]


@pytest.mark.parametrize("name,make,sizes", HINT_CASES, ids=[c[0] for c in HINT_CASES])
def test_every_fix_hint_rechecks_as_exact(name, make, sizes) -> None:
    model = make()
    n_hints = 0
    for n in sizes:
        try:
            report = check(model, n, "p4", in_channels=1)
        except ValueError:
            continue
        hints = fix_hints(model, n, "p4", in_channels=1)
        if report.exact:
            assert hints == []
            continue
        assert any(h.kind == "input_size" for h in hints), (name, n)
        for h in hints:
            if h.kind == "input_size":
                assert check(model, h.value, "p4", in_channels=1).exact, (name, n, h)
                continue
            after = check(apply_change(model, h.layer, h.kind, h.value), n, "p4", in_channels=1)
            assert all(op.exact for op in after.ops if op.layer == h.layer), (name, n, h)
            assert after.exact == h.network_exact, (name, n, h)
            n_hints += 1
        # a layer without a hint really has no padding/ceil change that makes it exact (brute force)
        for op in unfixable_layers(report, hints):
            changes = [("padding", q) for q in range(0, op.kernel[0] + 1) if q != op.padding[0]]
            if op.op != "conv2d":
                changes.append(("ceil_mode", True))
            for kind, value in changes:
                try:
                    after = check(apply_change(model, op.layer, kind, value), n, "p4", in_channels=1)
                except (ValueError, RuntimeError):
                    continue
                assert not all(o.exact for o in after.ops if o.layer == op.layer), (name, n, op.layer, kind, value)
        plan = fix_plan(model, n, "p4", in_channels=1)
        if plan is not None:
            fixed = model
            for step in plan:
                fixed = apply_change(fixed, step.layer, step.kind, step.value)
            assert check(fixed, n, "p4", in_channels=1).exact, (name, n, plan)
    if name != "p4cnn":
        assert n_hints > 0, f"{name}: no layer hint over {list(sizes)}: the test would prove nothing"


def test_fix_hint_is_confirmed_by_measurement() -> None:
    torch.manual_seed(0)
    model = nn.Sequential(P4ConvZ2(1, 2, 3, stride=3), GroupCosetMaxPool()).double()
    x = torch.randn(2, 1, 28, 28, dtype=torch.float64)
    assert equivariance_errors(model, x, "p4")["relative"].iloc[1:].min() > 1e-2
    (hint,) = [h for h in fix_hints(model, 28, "p4") if h.kind == "padding"]
    assert hint.change == "padding=1" and hint.network_exact
    assert equivariance_errors(apply_change(model, hint.layer, "padding", 1), x, "p4")["max_abs"].max() < 1e-12


def test_two_breaking_layers_need_a_plan() -> None:
    plan = fix_plan(_two_breaks(), 20, "p4", in_channels=1)
    assert plan is not None and [s.layer for s in plan] == ["0", "1"] and plan[-1].network_exact
    assert fix_plan(__import__("equiv.models", fromlist=["build"]).build("p4cnn"), 27) is None  # only a size helps


def test_apply_change_refuses_what_it_cannot_set() -> None:
    with pytest.raises(ValueError, match="has no attribute 'ceil_mode'"):
        apply_change(nn.Sequential(nn.Conv2d(1, 1, 3)), "0", "ceil_mode", True)
    with pytest.raises(ValueError, match="kind must be"):
        apply_change(nn.Sequential(nn.Conv2d(1, 1, 3)), "0", "stride", 1)


# --------------------------------------------------------------------------- coverage of hidden state
def _sym_conv(c_in: int, c_out: int, k: int, **kw) -> nn.Conv2d:
    """A plain conv whose filters are rot90-symmetric: equivariant for P4 on scalar fields where the grid is."""
    conv = nn.Conv2d(c_in, c_out, k, **kw)
    with torch.no_grad():  # small dyadic weights: the orbit sum is exact in floating point, so symmetric bit for bit
        w = torch.randint(-4, 5, conv.weight.shape).float() / 8
        conv.weight.copy_(sum(torch.rot90(w, r, (-2, -1)) for r in range(4)))
    return conv


class Functional(nn.Module):
    """Strided ops called functionally from forward: no module holds them."""

    in_channels = 1

    def __init__(self):
        super().__init__()
        self.lift = P4ConvZ2(1, 2, 3)

    def forward(self, x):
        y = self.lift(x).flatten(1, 2)
        y = F.avg_pool2d(F.max_pool2d(y, 3, stride=2, padding=1), 2)
        return y.unflatten(1, (2, 4))


class Residual(nn.Module):
    """A strided residual block: the main path and the 1x1 shortcut must both be exact."""

    def __init__(self, c: int, stride: int):
        super().__init__()
        self.body = nn.Sequential(P4ConvP4(c, c, 3, stride=stride, padding=1), nn.ReLU(), P4ConvP4(c, c, 3, padding=1))
        self.shortcut = P4ConvP4(c, c, 1, stride=stride)

    def forward(self, x):
        return self.body(x) + self.shortcut(x)


class Wrapped(nn.Module):
    """nn.Sequential inside a custom module inside nn.Sequential."""

    in_channels = 1

    def __init__(self):
        super().__init__()
        self.stem = nn.Sequential(P4ConvZ2(1, 2, 3, padding=1), nn.Sequential(Residual(2, 2), Residual(2, 2)))

    def forward(self, x):
        return self.stem(x)


class Adaptive(nn.Module):
    in_channels = 1

    def __init__(self):
        super().__init__()
        self.lift = P4ConvZ2(1, 2, 3, stride=2)
        self.pool = nn.AdaptiveMaxPool2d(3)

    def forward(self, x):
        return self.pool(self.lift(x).flatten(1, 2)).unflatten(1, (2, 4))


COVERAGE = [
    ("plain CNN", lambda: nn.Sequential(_sym_conv(1, 2, 3, stride=2, padding=1), nn.ReLU(), nn.MaxPool2d(2),
                                        _sym_conv(2, 2, 3, stride=2)), "odd after pool", range(9, 40)),
    ("functional", Functional, "", range(7, 30)),
    ("residual", Wrapped, "", range(6, 30)),
    ("adaptive", Adaptive, "", range(7, 30)),
]


@pytest.mark.parametrize("name,make,_,sizes", COVERAGE, ids=[c[0] for c in COVERAGE])
def test_predictor_matches_measurement_on_hidden_state_models(name, make, _, sizes) -> None:
    """Predicted exact <=> measured error ~ 0 (float64), and approximate sizes give a clearly non-zero error."""
    torch.manual_seed(0)
    model = make().double().eval()
    verdicts = set()
    for n in sizes:
        try:
            report = check(model, n, "p4", in_channels=1)
        except ValueError:
            continue
        x = torch.randn(2, 1, n, n, dtype=torch.float64)
        errors = equivariance_errors(model, x, "p4")
        worst = errors["relative"].max()
        verdicts.add(report.exact)
        if report.exact:
            assert errors["max_abs"].max() < 1e-12, (name, n)
        else:
            assert worst > 1e-3, (name, n, worst)
    assert verdicts == {True, False}, f"{name}: sizes {list(sizes)} never show both verdicts"


def test_e2cnn_model_from_a_file(tmp_path: Path, capsys) -> None:
    path = tmp_path / "e2net.py"
    path.write_text(textwrap.dedent('''
        from e2cnn import gspaces, nn as enn
        from torch import nn

        class E2(nn.Module):
            in_channels = 1
            def __init__(self, stride=3):
                super().__init__()
                gs = gspaces.Rot2dOnR2(4)
                self.t_in = enn.FieldType(gs, [gs.trivial_repr])
                self.conv = enn.R2Conv(self.t_in, enn.FieldType(gs, 2 * [gs.regular_repr]), 3, stride=stride)
            def forward(self, x):
                return self.conv(enn.GeometricTensor(x, self.t_in)).tensor
    '''))
    code, out, _ = _run(["check", f"{path}:E2", "--input-size", "28"], capsys)
    assert code == 1 and "layer conv: padding=1 -> the whole network is exact" in out
    assert _run(["check", f"{path}:E2", "--input-size", "27"], capsys)[0] == 0


# ------------------------------------------------------------------------------------------ assertions
def test_assert_exact_passes_and_fails_naming_layer_and_size() -> None:
    from equiv.models import build

    model = build("p4cnn", channels=2)
    assert assert_exact(model, 28, "p4").exact
    with pytest.raises(AssertionError) as info:
        assert_exact(model, 27, "p4")
    message = str(info.value)
    assert "P4CNN is not exactly p4-equivariant at 27x27: broken by pool" in message
    assert "layer pool (GroupMaxPool2d, max_pool2d on 27x27" in message
    assert "use input size 26 or 28 instead" in message
    with pytest.raises(AssertionError, match="fix: layer 0: padding=1"):
        assert_exact(nn.Sequential(P4ConvZ2(1, 2, 3, stride=3)), 28, "p4")


def test_assert_equivariant_passes_and_fails_with_per_element_errors() -> None:
    from equiv.models import build

    torch.manual_seed(0)
    model = build("p4cnn")  # default width: with 2 channels the random ReLUs die and the logits are constant
    table = assert_equivariant(model, torch.randn(2, 1, 28, 28), "p4", atol=1e-10)
    assert list(table["element"]) == ["e", "r", "r2", "r3"] and table["max_abs"].max() < 1e-10
    assert next(model.parameters()).dtype == torch.float32  # measured on a float64 copy; the model is unchanged
    with pytest.raises(AssertionError) as info:
        assert_equivariant(model, torch.randn(2, 1, 27, 27), "p4", atol=1e-10)
    message = str(info.value)
    assert "not p4-equivariant at 27x27 within atol=1e-10" in message
    assert "broken by pool at 27x27" in message and "use input size 26 or 28 instead" in message
    for element in ("r", "r2", "r3"):
        assert f"\n     {element}" in message or f" {element} " in message


def test_assert_equivariant_blames_the_weights_when_the_grids_are_exact() -> None:
    plain = nn.Sequential(nn.Conv2d(1, 2, 3, padding=1))  # random, not rot-symmetric filters
    with pytest.raises(AssertionError, match="the sampling grids are exact at 8x8: the error comes from the weights"):
        assert_equivariant(plain, torch.randn(1, 1, 8, 8), "p4")
    assert_equivariant(plain, torch.randn(1, 1, 8, 8), "z2")


def test_assert_equivariant_bad_tolerance() -> None:
    with pytest.raises(ValueError, match="atol must be a finite number >= 0"):
        assert_equivariant(nn.Identity(), torch.randn(1, 1, 4, 4), "p4", atol=-1)


def test_assertions_under_pytest(tmp_path: Path) -> None:
    """In another project's test suite: pytest reports the assertion's message as the failure."""
    (tmp_path / "test_theirs.py").write_text(textwrap.dedent('''
        import torch
        from equiv.models import build
        from equiv.testing import assert_equivariant, assert_exact

        def test_exact_size():
            assert_exact(build("p4cnn", channels=2), 28)

        def test_wrong_size():
            assert_exact(build("p4cnn", channels=2), 29)

        def test_measured():
            assert_equivariant(build("p4cnn"), torch.randn(1, 1, 29, 29), "p4")
    '''))
    done = subprocess.run([sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider", str(tmp_path)],
                          capture_output=True, text=True, timeout=300, cwd=tmp_path)
    assert "2 failed, 1 passed" in done.stdout, done.stdout[-3000:]
    assert "P4CNN is not exactly p4-equivariant at 29x29: broken by pool" in done.stdout
    assert "use input size 28 or 30 instead" in done.stdout

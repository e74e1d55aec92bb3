"""The benchmark scripts measure what they say they measure (their timings are never asserted)."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest
import torch

from equiv.nn import GroupConv2d
from equiv.nn.layout import fast_layout, is_fast_layout

BENCH = Path(__file__).resolve().parents[1] / "benchmarks"
sys.path.insert(0, str(BENCH))

import layers  # noqa: E402
import layout_threshold  # noqa: E402


@pytest.mark.parametrize("group", ["p4", "p4m"])
@pytest.mark.parametrize("lifting", [True, False])
@pytest.mark.parametrize("fast", [True, False])
def test_fixed_bank_is_the_same_convolution_as_the_layer(group, lifting, fast):
    """``layers.FixedBank`` (the diagnostic 'bank fixed' column) must compute exactly what the layer computes,
    or ``equiv − bank fixed`` would not be the cost of the gather."""
    torch.manual_seed(0)
    layer = GroupConv2d(3 if lifting else 2, 5, 3, padding=1, group=group, lifting=lifting).double()
    layer._fast_layout = fast
    n = layer.group.order
    x = torch.randn(2, 3, 9, 9, dtype=torch.float64) if lifting else fast_layout(torch.randn(2, 2, n, 9, 9).double())
    fixed = layers.FixedBank(layer)
    torch.testing.assert_close(fixed(x), layer(x), rtol=1e-12, atol=1e-12)
    # and the gather really is absent: the bank is a leaf, the layer's weight gets no gradient through it
    fixed(x).sum().backward()
    assert layer.weight.grad is None and fixed.bank.grad is not None


def test_layout_threshold_compares_different_layouts():
    """The variants of ``benchmarks/layout_threshold.py`` differ in layout where they say they do (an earlier
    version compared a network with itself), and agree in value."""
    models = {name: layout_threshold.make("p4m", name, 2) for name in layout_threshold.LAYOUTS}
    counts = {name: [m.fast_layout for m in model.modules() if isinstance(m, GroupConv2d)]
              for name, model in models.items()}
    assert all(counts["all-cl"]) and not any(counts["all-contiguous"])
    assert 0 < sum(counts["per-layer"]) < len(counts["per-layer"]), "width-2 P4M per-layer must be mixed"
    assert counts["settled"] == counts["settled-copy"]
    seen = {}
    for name in ("all-cl", "all-contiguous"):
        outs = []
        first = next(m for m in models[name].modules() if isinstance(m, GroupConv2d))
        handle = first.register_forward_hook(lambda mod, inp, out: outs.append(out))
        models[name].eval()
        with torch.no_grad():
            seen[name] = models[name](torch.randn(2, 1, 33, 33, generator=torch.Generator().manual_seed(1)))
        handle.remove()
        assert is_fast_layout(outs[0]) == (name == "all-cl")
    torch.testing.assert_close(seen["all-cl"], seen["all-contiguous"], rtol=1e-4, atol=1e-5)


def test_layers_benchmark_runs_and_prints_every_layer():
    out = subprocess.run(
        [sys.executable, str(BENCH / "layers.py"), "--repeats", "4", "--batch", "2", "--size", "8", "--channels", "2",
         "--threads", "1"],
        capture_output=True, text=True, timeout=600, check=True,
    ).stdout
    rows = [line.split() for line in out.splitlines() if line.startswith(("P4Conv", "P4MConv"))]
    assert [r[0] for r in rows] == ["P4ConvP4", "P4ConvZ2", "P4MConvP4M", "P4MConvZ2"]
    for r in rows:
        assert r[5] in ("NCHW", "NHWC") and float(r[6]) > 0 and float(r[-1]) > 0

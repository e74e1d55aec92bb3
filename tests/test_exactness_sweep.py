"""The heart of the library: the exactness predictor agrees with measurement, element by element.

For every layer kind × kernel 1–5 × stride 1–3 × padding 0–2 × dilation 1–2 × input size × group, the
equivariance error is measured in float64 against the true group action, and

    measured error ≤ EXACT_TOL (1e-12)   ⇔   the predictor lists the element as exact,

with a clearly non-zero error (> 1e-3 relative, random weights/inputs) for every element it does not list.
"""

from __future__ import annotations

import itertools

import pytest
import torch
from torch import nn

from equiv.exactness import check
from equiv.groups import get_group
from equiv.metrics import equivariance_error
from equiv.nn import GroupAvgPool2d, GroupConv2d, GroupMaxPool2d
from equiv.tolerances import EXACT_TOL

SIZES = (7, 8, 9, 10)
KERNELS = (1, 2, 3, 4, 5)
STRIDES = (1, 2, 3)
PADDINGS = (0, 1, 2)
DILATIONS = (1, 2)


def _layers(kind: str, group: str):
    """(description, module, takes_group_map) for every valid configuration of one layer kind."""
    for k, s, p, d in itertools.product(KERNELS, STRIDES, PADDINGS, DILATIONS):
        if kind in ("lifting", "gconv"):
            layer = GroupConv2d(2, 2, k, s, p, d, bias=True, group=group, lifting=(kind == "lifting"))
            yield f"{kind} k{k} s{s} p{p} d{d}", layer, kind == "gconv"
        else:
            if p > k // 2:  # PyTorch: padding at most half the kernel size
                continue
            for ceil in (False, True):
                if kind == "maxpool":
                    yield f"maxpool k{k} s{s} p{p} d{d} ceil{ceil}", GroupMaxPool2d(k, s, p, d, ceil_mode=ceil), True
                elif d == 1:  # avg pooling has no dilation
                    for include in (True, False):
                        yield (f"avgpool k{k} s{s} p{p} ceil{ceil} incl{include}",
                               GroupAvgPool2d(k, s, p, ceil_mode=ceil, count_include_pad=include), True)


class _Wrap(nn.Module):
    """Feed a layer that takes a group map while the predictor traces with an image input."""

    def __init__(self, layer: nn.Module, order: int, takes_group_map: bool) -> None:
        super().__init__()
        self.layer, self.order, self.takes_group_map = layer, order, takes_group_map
        self.in_channels = 2

    def forward(self, x):
        if self.takes_group_map and x.dim() == 4:
            x = x.unsqueeze(2).expand(-1, -1, self.order, -1, -1)
        return self.layer(x)


@pytest.mark.parametrize("group", ["p4", "p4m"])
@pytest.mark.parametrize("kind", ["lifting", "gconv", "maxpool", "avgpool"])
def test_predicted_exact_iff_measured_exact(kind: str, group: str) -> None:
    grp = get_group(group)
    torch.manual_seed(0)
    mismatches, tested, approx_cases = [], 0, 0
    for desc, layer, takes_map in _layers(kind, group):
        layer = layer.double()
        for n in SIZES:
            span_ok = n + 2 * layer_padding(layer) >= layer_span(layer)
            if not span_ok:
                continue
            report = check(_Wrap(layer, grp.order, takes_map), n, group)
            predicted = set(report.exact_elements)
            shape = (2, 2, grp.order, n, n) if takes_map else (2, 2, n, n)
            x = torch.randn(*shape, dtype=torch.float64)
            errors = equivariance_error(layer, x, group)
            tested += 1
            for name, err in zip(errors["element"], errors["error"]):
                if name in predicted and not err <= EXACT_TOL:
                    mismatches.append(f"{desc} N={n} {name}: predicted exact, measured {err:.2e}")
                if name not in predicted:
                    approx_cases += 1
                    if not err > 1e-3:
                        mismatches.append(f"{desc} N={n} {name}: predicted approximate, measured {err:.2e}")
    assert tested > 150, f"only {tested} configurations were valid"
    assert approx_cases > 100, "the sweep must contain approximate cases too"
    assert not mismatches, f"{len(mismatches)} of {tested} disagree:\n" + "\n".join(mismatches[:30])


def layer_padding(layer: nn.Module) -> int:
    p = layer.padding
    return p if isinstance(p, int) else p[0]


def layer_span(layer: nn.Module) -> int:
    k = layer.kernel_size if isinstance(layer.kernel_size, int) else layer.kernel_size[0]
    d = getattr(layer, "dilation", 1)
    d = d if isinstance(d, int) else d[0]
    return d * (k - 1) + 1


def test_floor_mode_matches_the_papers_rule() -> None:
    """For floor-mode layers the verdict is exactly the brief's (N + 2p − d(k−1) − 1) mod s == 0."""
    for k, s, p, d, n in itertools.product(KERNELS, STRIDES, PADDINGS, DILATIONS, range(6, 20)):
        span = d * (k - 1) + 1
        if n + 2 * p < span:
            continue
        layer = GroupConv2d(1, 1, k, s, p, d, group="p4", lifting=True)
        rule = (n + 2 * p - span) % s == 0
        assert check(layer, n, "p4").exact == rule, (k, s, p, d, n)

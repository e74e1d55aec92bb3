"""Assertions for other projects' test suites: is my network exact at this size, and is it really equivariant?

::

    from equiv.testing import assert_exact, assert_equivariant

    def test_my_gcnn_is_exact_at_the_training_size():
        assert_exact(MyGCNN(), 28, "p4")

    def test_my_gcnn_is_equivariant():
        assert_equivariant(MyGCNN(), torch.randn(2, 1, 28, 28), "p4", atol=1e-10)

- :func:`assert_exact` traces the model's forward pass with :func:`equiv.exactness.check` (no numbers are
  computed) and fails with the report's table of breaking layers, the verified fix hints of
  :mod:`equiv.exactness_fixes` and the nearest exact input sizes.
- :func:`assert_equivariant` *measures*: on a float64 copy of the model in eval mode it compares
  ``f(g·x)`` with ``g·f(x)`` for every ``g`` of the group, using the exact group actions of
  :mod:`equiv.groups` (``torch.rot90``, flips, the permutation of the group axis for group maps). It fails
  when ``max|f(g·x) − g·f(x)| > atol + rtol·max|g·f(x)|`` for some ``g``, listing the error per element,
  and names the layers that break exactness at that size and the size to use instead.

Both raise :class:`AssertionError`, so pytest shows their messages as the failure.
"""

from __future__ import annotations

import copy
import math
from typing import Sequence

import pandas as pd
import torch
from torch import nn

from equiv.exactness import ExactnessError, ExactnessReport, check, exact_neighbours
from equiv.exactness_fixes import fix_hints, unfixable_layers
from equiv.groups import Group, get_group
from equiv.metrics import transform_input, transform_output
from equiv.tolerances import ASSERT_ATOL
from equiv.validation import is_finite_real

__all__ = ["assert_exact", "assert_equivariant", "equivariance_errors"]


def _size_advice(model: nn.Module, size: tuple[int, int], group: Group, in_channels: int | None) -> str:
    if size[0] != size[1]:
        return "use a square input whose size the predictor finds exact"
    found = [n for n in exact_neighbours(model, size[0], group, in_channels=in_channels) if n is not None]
    if not found:
        return "no exact input size found nearby"
    return "use input size " + " or ".join(str(n) for n in found) + " instead"


def _breaking_text(model: nn.Module, report: ExactnessReport, in_channels: int | None) -> str:
    size = report.input_size
    lines = []
    for op in report.breaking:
        lines.append(f"  layer {op.layer} ({op.module}, {op.op} on {op.input_size[0]}x{op.input_size[1]}, kernel "
                     f"{op.kernel[0]}, stride {op.stride[0]}, padding {op.padding[0]}"
                     f"{', ceil_mode' if op.ceil_mode else ''}): leaves r={op.leftover[0]},{op.leftover[1]} unread")
    hints = [h for h in fix_hints(model, size, report.group, in_channels=in_channels, report=report)
             if h.kind != "input_size"]
    for h in hints:
        lines.append(f"  fix: layer {h.layer}: {h.change}"
                     f" ({'whole network exact' if h.network_exact else 'that layer exact'} after the change, re-checked)")
    for op in unfixable_layers(report, hints):
        lines.append(f"  layer {op.layer}: no padding or ceil-mode change makes it exact on its "
                     f"{op.input_size[0]}x{op.input_size[1]} input")
    lines.append("  " + _size_advice(model, size, report.group, in_channels))
    return "\n".join(lines)


def assert_exact(model: nn.Module, input_size: int | Sequence[int], group: str | Group = "p4", *,
                 in_channels: int | None = None) -> ExactnessReport:
    """Fail unless ``model`` is exactly ``group``-equivariant at ``input_size`` (by its sampling grids).

    Returns the :class:`~equiv.exactness.ExactnessReport` when it is. The failure message names each
    breaking layer, the verified change that fixes it, the nearest exact input sizes, and the report's table.
    """
    grp = get_group(group)
    report = check(model, input_size, grp, in_channels=in_channels)
    if report.exact:
        return report
    size = report.input_size
    raise AssertionError(
        f"{report.model} is not exactly {grp.name}-equivariant at {size[0]}x{size[1]}: broken by "
        f"{', '.join(op.layer for op in report.breaking)}\n{_breaking_text(model, report, in_channels)}\n"
        f"{report.table()}"
    )


def equivariance_errors(model: nn.Module, x: torch.Tensor, group: str | Group = "p4") -> pd.DataFrame:
    """Per group element: ``max_abs`` = max|f(g·x) − g·f(x)|, ``scale`` = max|g·f(x)|, ``relative`` (Frobenius).

    Measured on a float64 deep copy of ``model`` in eval mode (the model itself is not changed)."""
    grp = get_group(group)
    if not isinstance(model, nn.Module):
        raise ValueError(f"model must be a torch.nn.Module, got {type(model).__name__}")
    if not isinstance(x, torch.Tensor) or x.dim() not in (4, 5) or not x.is_floating_point():
        shape = tuple(x.shape) if isinstance(x, torch.Tensor) else type(x).__name__
        raise ValueError(f"x must be floating images (B, C, H, W) or group maps (B, C, |G|, H, W), got {shape}")
    net = copy.deepcopy(model).double().eval()
    x = x.detach().double()
    rows = []
    with torch.no_grad():
        y = net(x)
        for i, g in enumerate(grp):
            y_g = net(transform_input(g, x, grp))
            target = transform_output(g, y, grp)
            if y_g.shape != target.shape:
                raise ValueError(f"f(g·x) has shape {tuple(y_g.shape)} but g·f(x) has {tuple(target.shape)}")
            diff = (y_g - target).abs()
            ref = target.norm().item()
            rows.append({"element": g.name, "index": i, "max_abs": diff.max().item(),
                         "scale": target.abs().max().item(),
                         "relative": diff.norm().item() / ref if ref > 0 else (0.0 if diff.max() == 0 else math.inf)})
    return pd.DataFrame(rows, columns=["element", "index", "max_abs", "scale", "relative"])


def assert_equivariant(model: nn.Module, x: torch.Tensor, group: str | Group = "p4", atol: float = ASSERT_ATOL, *,
                       rtol: float = 0.0) -> pd.DataFrame:
    """Fail unless ``max|f(g·x) − g·f(x)| ≤ atol + rtol·max|g·f(x)|`` for every ``g`` (float64, eval mode).

    Returns the per-element errors (:func:`equivariance_errors`) when it holds. The failure message lists
    them and, from the exactness predictor, the layers that break exactness at ``x``'s size and the size to
    use instead (or says that the sampling grids are exact, so the weights or another op are to blame).
    """
    for name, value in (("atol", atol), ("rtol", rtol)):
        if not is_finite_real(value, numpy=False) or value < 0:
            raise ValueError(f"{name} must be a finite number >= 0, got {value!r}")
    grp = get_group(group)
    errors = equivariance_errors(model, x, grp)
    bound = atol + rtol * errors["scale"]
    failed = errors[errors["max_abs"] > bound]
    if failed.empty:
        return errors
    size = tuple(x.shape[-2:])
    table = errors.to_string(index=False, float_format=lambda v: f"{v:.3e}")
    try:
        if x.dim() != 4:
            raise ValueError("it traces models that take images (B, C, H, W), and x is a group map")
        report = check(model, size, grp, in_channels=x.shape[1])
        if report.exact:
            why = (f"  the sampling grids are exact at {size[0]}x{size[1]}: the error comes from the weights or an "
                   f"operation that is not equivariant, not from subsampling")
        else:
            why = (f"  broken by {', '.join(op.layer for op in report.breaking)} at {size[0]}x{size[1]}\n"
                   f"{_breaking_text(model, report, x.shape[1])}")
    except ExactnessError as err:
        why = f"  the exactness predictor cannot localise it: {err}"
    except ValueError as err:
        why = f"  the exactness predictor could not trace the model: {err}"
    worst = failed.loc[failed["max_abs"].idxmax()]
    raise AssertionError(
        f"{type(model).__name__} is not {grp.name}-equivariant at {size[0]}x{size[1]} within atol={atol:g}, "
        f"rtol={rtol:g}: worst element {worst['element']} with max|f(g·x) − g·f(x)| = {worst['max_abs']:.3e}\n"
        f"{why}\n{table}"
    )

"""Fix hints: for each layer that breaks exactness, the smallest change that makes it exact — verified.

:func:`fix_hints` takes a model and an input size at which :func:`equiv.exactness.check` finds it only
approximately equivariant, and proposes, per breaking layer,

- a **padding change** (``padding=p'``): the nearest padding whose sampling grid is mirror-symmetric on the
  layer's input, i.e. ``(N + 2p' − d(k−1) − 1) mod s == 0`` for a convolution or ``(N + 2p' − k) mod s == 0``
  for floor-mode pooling;
- **ceil mode** (``ceil_mode=True``) for a pooling layer, where ceil mode's extra window makes the grid
  symmetric (:func:`equiv.sampling_grid.pool_grid` enumerates the windows, no formula is trusted);

and, for the whole network, the nearest **exact input sizes** below and above. Every layer hint is
*verified by re-checking*: the change is applied to a deep copy of the model (the module's ``padding`` /
``ceil_mode`` attribute) and the copy is traced again at the same input size. A hint is kept only if the
layer is exact there; :attr:`FixHint.network_exact` says whether the whole network then is (a padding change
alters the layer's output size, which can break a later layer). :func:`fix_plan` chains such changes
greedily until the whole network is exact at the requested size, and re-checks the final copy.

A layer whose strided call happens inside ``forward`` as a functional call (no ``padding`` attribute to set)
gets no layer hint: it cannot be changed from outside, so it cannot be verified; the size hint still applies.

Example::

    >>> from equiv.models import build
    >>> [h.change for h in fix_hints(build("p4cnn"), 27)]   # doctest: +SKIP
    ['padding=1', 'ceil_mode=True', 'input size 26', 'input size 28']
"""

from __future__ import annotations

import copy
from dataclasses import dataclass, asdict
from typing import Any, Sequence

import pandas as pd
from torch import nn

from equiv import exactness
from equiv import sampling_grid as sg
from equiv.exactness import ExactnessReport, OpRecord, check, exact_neighbours
from equiv.groups import Group, get_group

__all__ = ["FixHint", "fix_hints", "fix_plan", "hints_frame", "apply_change", "unfixable_layers"]


@dataclass(frozen=True)
class FixHint:
    """One change that makes a breaking layer (or, for ``kind="input_size"``, the network) exact."""

    layer: str  # qualified module name ("<model>" for the root; "<input>" for a size hint)
    kind: str  # "padding", "ceil_mode" or "input_size"
    change: str  # human-readable: "padding=1", "ceil_mode=True", "input size 28"
    value: Any  # the new padding (int), True, or the new input size
    layer_exact: bool  # the layer is exact after the change (re-checked)
    network_exact: bool  # the whole network is exact after the change (re-checked)

    def as_dict(self) -> dict[str, Any]:
        return asdict(self)


def _module(model: nn.Module, layer: str) -> nn.Module | None:
    if layer == "<model>":
        return model
    try:
        return model.get_submodule(layer)
    except AttributeError:
        return None


def apply_change(model: nn.Module, layer: str, kind: str, value: Any) -> nn.Module:
    """A deep copy of ``model`` with ``layer``'s ``padding`` or ``ceil_mode`` set to ``value``.

    Keeps the attribute's form (an int stays an int, a pair becomes ``(value, value)``). Raises ValueError if
    the layer has no such attribute."""
    if kind not in ("padding", "ceil_mode"):
        raise ValueError(f"kind must be 'padding' or 'ceil_mode', got {kind!r}")
    clone = copy.deepcopy(model)
    module = _module(clone, layer)
    if module is None or not hasattr(module, kind):
        raise ValueError(f"layer {layer!r} has no attribute {kind!r} to change")
    old = getattr(module, kind)
    if kind == "padding":
        if isinstance(old, str):
            raise ValueError(f"layer {layer!r} uses padding={old!r}; set an explicit int padding instead")
        new: Any = tuple(value for _ in old) if isinstance(old, (tuple, list)) else int(value)
    else:
        new = bool(value)
    setattr(module, kind, new)
    return clone


def _layer_exact(report: ExactnessReport, layer: str) -> bool:
    ops = [op for op in report.ops if op.layer == layer]
    return bool(ops) and all(op.exact for op in ops)


def _grid_exact(op: OpRecord, group: Group, padding: int, ceil_mode: bool) -> bool:
    """Would ``op`` be exact on its own input with this padding / ceil mode? (Enumerated windows.)"""
    grids = []
    for a in (0, 1):
        n, k, s, d = op.input_size[a], op.kernel[a], op.stride[a], op.dilation[a]
        if op.op == "conv2d":
            if n + 2 * padding < d * (k - 1) + 1:
                return False
            grids.append(sg.conv_grid(n, k, s, padding, d))
        else:
            if padding > k // 2 or n + 2 * padding < d * (k - 1) + 1:
                return False  # PyTorch: pad at most half the kernel
            grids.append(sg.pool_grid(n, k, s, padding, d, ceil_mode, op.op.split("_")[0]))
    return len(exactness._exact_elements(group, tuple(grids))) == group.order


def _candidates(op: OpRecord, group: Group) -> list[tuple[str, Any]]:
    """Local changes that make ``op``'s grid symmetric, nearest first."""
    if op.op not in ("conv2d", "max_pool2d", "avg_pool2d") or op.padding[0] != op.padding[1]:
        return []
    if op.kernel[0] != op.kernel[1] or op.stride[0] != op.stride[1]:
        return []
    p, k, d = op.padding[0], op.kernel[0], op.dilation[0]
    limit = d * (k - 1) if op.op == "conv2d" else k // 2
    pads = sorted((q for q in range(0, limit + 1) if q != p), key=lambda q: (abs(q - p), -q))
    out: list[tuple[str, Any]] = [("padding", q) for q in pads if _grid_exact(op, group, q, op.ceil_mode)]
    if op.op != "conv2d" and not op.ceil_mode and _grid_exact(op, group, p, True):
        out.insert(0, ("ceil_mode", True))
    return out


def _try(model: nn.Module, op: OpRecord, kind: str, value: Any, size: tuple[int, int], group: Group,
         in_channels: int | None) -> FixHint | None:
    try:
        changed = apply_change(model, op.layer, kind, value)
        report = check(changed, size, group, in_channels=in_channels)
    except ValueError:  # no such attribute, or the change makes a later layer not fit
        return None
    if not _layer_exact(report, op.layer):
        return None
    change = f"{kind}={value}"
    return FixHint(op.layer, kind, change, value, True, report.exact)


def fix_hints(model: nn.Module, input_size: int | Sequence[int], group: str | Group = "p4", *,
              in_channels: int | None = None, report: ExactnessReport | None = None) -> list[FixHint]:
    """Verified changes that make each breaking layer of ``model`` exact at ``input_size``.

    Per breaking layer: the nearest padding change that re-checks as exact for that layer (and ceil mode for a
    pooling layer, when it re-checks as exact). Then the nearest exact input sizes below and above, for the
    whole network. An exact model gets no hints. Every hint's ``layer_exact`` is True by construction: a
    change that does not re-check as exact is not returned.
    """
    grp = get_group(group)
    report = report if report is not None else check(model, input_size, grp, in_channels=in_channels)
    if report.exact:
        return []
    size = report.input_size
    hints: list[FixHint] = []
    seen: set[str] = set()
    for op in report.breaking:
        if op.layer in seen:
            continue
        seen.add(op.layer)
        found: dict[str, FixHint] = {}
        for kind, value in _candidates(op, grp):
            if kind in found:
                continue
            hint = _try(model, op, kind, value, size, grp, in_channels)
            if hint is not None:
                found[kind] = hint
        hints.extend(found.values())
    if size[0] == size[1]:
        for n in exact_neighbours(model, size[0], grp, in_channels=in_channels):
            if n is not None:
                hints.append(FixHint("<input>", "input_size", f"input size {n}", n, True, True))
    return hints


def fix_plan(model: nn.Module, input_size: int | Sequence[int], group: str | Group = "p4", *,
             in_channels: int | None = None, max_steps: int = 32) -> list[FixHint] | None:
    """Layer changes that together make the whole network exact at ``input_size``, or None if none is found.

    Greedy: fix the first breaking layer with its nearest verified change, re-check the changed copy, repeat.
    The returned list's last entry has ``network_exact=True`` (the final copy re-checked as exact)."""
    grp = get_group(group)
    current = model
    plan: list[FixHint] = []
    for _ in range(max_steps):
        report = check(current, input_size, grp, in_channels=in_channels)
        if report.exact:
            return plan
        op = report.breaking[0]
        step = None
        for kind, value in _candidates(op, grp):
            step = _try(current, op, kind, value, report.input_size, grp, in_channels)
            if step is not None:
                break
        if step is None:
            return None
        plan.append(step)
        current = apply_change(current, step.layer, step.kind, step.value)
    return None


def hints_frame(hints: Sequence[FixHint]) -> pd.DataFrame:
    """The hints as a table: layer, change, layer_exact, network_exact."""
    return pd.DataFrame([h.as_dict() for h in hints], columns=["layer", "kind", "change", "value", "layer_exact",
                                                                 "network_exact"])


def unfixable_layers(report: ExactnessReport, hints: Sequence[FixHint]) -> list[OpRecord]:
    """The breaking operations for which no local change re-checked as exact (only an input size helps).

    Typical: a stride-2 layer, where ``2p`` never changes the parity of ``N + 2p − d(k−1) − 1``."""
    fixed = {h.layer for h in hints if h.kind != "input_size"}
    out, seen = [], set()
    for op in report.breaking:
        if op.layer not in fixed and op.layer not in seen:
            seen.add(op.layer)
            out.append(op)
    return out

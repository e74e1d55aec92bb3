"""Equivariance metrics that return numbers (per group element, per layer) — they never print.

- :func:`equivariance_error`: ``‖f(g·x) − g·f(x)‖ / ‖f(x)‖`` for every ``g`` in the group, where the
  output action is chosen by the output's shape: group feature maps ``(B, C, |G|, H, W)`` get the spatial
  action *and* the regular permutation of the group axis, images ``(B, C, H, W)`` the spatial action, and
  vectors ``(B, K)`` (logits) none — that is invariance.
- :func:`layerwise_equivariance`: the same at the output of every module, through forward hooks.
- :func:`accuracy_vs_rotation`: accuracy of a classifier on test images rotated by each angle, batched so
  that a 36-angle sweep costs little more than 36 forward passes. Multiples of 90° are exact index
  permutations; other angles are bilinear with an explicit background ``fill`` (:mod:`equiv.rotation`).
"""

from __future__ import annotations

import math
from typing import Callable, Sequence

import pandas as pd
import torch
from torch import nn

from equiv.groups import Group, get_group
from equiv.rotation import rotate, rotate_batch_angles
from equiv.validation import is_int

__all__ = [
    "transform_input",
    "transform_output",
    "equivariance_error",
    "layerwise_equivariance",
    "worst_per_layer",
    "accuracy_vs_rotation",
    "rotate",
]




def _geometric_to_group_map(out, group: Group) -> torch.Tensor:
    from equiv.models.e2cnn_backend import to_group_map

    return to_group_map(out, group)


def transform_input(g, x: torch.Tensor, group: str | Group) -> torch.Tensor:
    """``g·x`` for an input: images ``(B, C, H, W)`` or group maps ``(B, C, |G|, H, W)``."""
    grp = get_group(group)
    if x.dim() == 4:
        return grp.act_on_image(g, x)
    if x.dim() == 5:
        return grp.act_on_group_map(g, x)
    raise ValueError(f"x must be images (B, C, H, W) or group maps (B, C, |G|, H, W), got shape {tuple(x.shape)}")


def transform_output(g, y: torch.Tensor, group: str | Group) -> torch.Tensor:
    """``g·y`` for an output, by shape: group map → full action, size-1 group axis or image → spatial
    action, ``(B, C, |G|)`` → permutation of the group axis, vector ``(B, K)`` or ``(B,)`` → unchanged
    (invariance)."""
    grp = get_group(group)
    if y.dim() == 5 and y.shape[2] == grp.order:
        return grp.act_on_group_map(g, y)
    if y.dim() == 5 and y.shape[2] == 1:
        return grp.act_on_image(g, y)
    if y.dim() == 4:
        return grp.act_on_image(g, y)
    if y.dim() == 3 and y.shape[2] == grp.order:  # (B, C, |G|): a group function without space
        return torch.index_select(y, 2, grp.permutation(g).to(y.device))
    if y.dim() in (1, 2):
        return y
    raise ValueError(
        f"cannot act with {grp.name} on an output of shape {tuple(y.shape)}: expected (B, K), (B, C, |G|={grp.order}), "
        f"(B, C, H, W) or (B, C, |G|={grp.order} or 1, H, W)"
    )


def _relative(a: torch.Tensor, b: torch.Tensor) -> tuple[float, float]:
    diff = (a - b).double().norm().item()
    ref = b.double().norm().item()
    return (diff / ref if ref > 0 else (0.0 if diff == 0 else math.inf)), diff


def equivariance_error(fn: Callable[[torch.Tensor], torch.Tensor], x: torch.Tensor, group: str | Group = "p4") -> pd.DataFrame:
    """Relative equivariance error of ``fn`` at ``x`` for every group element.

    ``error(g) = ‖fn(g·x) − g·fn(x)‖ / ‖fn(x)‖`` (Frobenius norms over the whole batch). For logits this
    measures invariance. Exact equivariance gives 0 up to round-off (≈1e-16 in float64).

    Returns:
        DataFrame with one row per element: ``element`` (name), ``index`` (position on the group axis),
        ``error`` (relative), ``abs_error``.
    """
    grp = get_group(group)
    if not isinstance(x, torch.Tensor) or x.dim() not in (4, 5):
        shape = tuple(x.shape) if isinstance(x, torch.Tensor) else type(x).__name__
        raise ValueError(f"x must be images (B, C, H, W) or group maps (B, C, |G|, H, W), got {shape}")
    with torch.no_grad():
        y = fn(x)
        rows = []
        for i, g in enumerate(grp):
            y_g = fn(transform_input(g, x, grp))
            target = transform_output(g, y, grp)
            if y_g.shape != target.shape:
                raise ValueError(f"fn(g·x) has shape {tuple(y_g.shape)} but g·fn(x) has {tuple(target.shape)}")
            rel, abs_ = _relative(y_g, target)
            rows.append({"element": g.name, "index": i, "error": rel, "abs_error": abs_})
    return pd.DataFrame(rows, columns=["element", "index", "error", "abs_error"])


def layerwise_equivariance(
    model: nn.Module,
    x: torch.Tensor,
    group: str | Group = "p4",
    *,
    leaves_only: bool = False,
) -> pd.DataFrame:
    """Equivariance error at the output of every module of ``model`` (in call order), for every element.

    Forward hooks record each module's output for ``x`` and for every ``g·x``; the error at a module is
    ``‖out(g·x) − g·out(x)‖ / ‖out(x)‖`` with the action chosen by the output's shape (see
    :func:`transform_output`; e2cnn GeometricTensors are converted to group maps first). Modules whose
    output is not a tensor, or whose transformed shapes differ, are left out. The model should be in
    eval mode (BatchNorm statistics!), which is the caller's choice.

    Returns:
        DataFrame with columns ``order`` (call position), ``layer`` (qualified name, ``<output>`` for the
        model), ``module`` (class), ``output_shape``, ``element``, ``error``.
    """
    grp = get_group(group)
    names = {id(m): (n or "<output>", type(m).__name__) for n, m in model.named_modules()}
    current: list[tuple[str, str, torch.Tensor]] = []

    def hook(module, _inp, out):
        name, cls = names.get(id(module), (type(module).__name__, type(module).__name__))
        if leaves_only and name != "<output>" and next(module.children(), None) is not None:
            return
        if type(out).__name__ == "GeometricTensor":
            out = _geometric_to_group_map(out, grp)
        if not isinstance(out, torch.Tensor):
            return
        seen = sum(1 for k, _, _ in current if k.split("#")[0] == name)
        current.append((f"{name}#{seen}" if seen else name, cls, out.detach()))  # '#n': n-th call of a module

    handles = [m.register_forward_hook(hook) for m in model.modules()]
    outputs: list[dict[str, torch.Tensor]] = []
    try:
        with torch.no_grad():
            for g in [None, *grp]:
                current.clear()
                model(x if g is None else transform_input(g, x, grp))
                if g is None:
                    order = [(k, cls) for k, cls, _ in current]
                outputs.append({k: t for k, _, t in current})
    finally:
        for h in handles:
            h.remove()
    base = outputs[0]
    rows = []
    for pos, (key, module_name) in enumerate(order):
        ref = base[key]
        for g, out in zip(grp, outputs[1:]):
            if key not in out:
                continue
            try:
                target = transform_output(g, ref, grp)
            except ValueError:
                break
            if target.shape != out[key].shape:
                break
            rel, _ = _relative(out[key], target)
            rows.append({"order": pos, "layer": key, "module": module_name,
                         "output_shape": tuple(ref.shape), "element": g.name, "error": rel})
    return pd.DataFrame(rows, columns=["order", "layer", "module", "output_shape", "element", "error"])


def worst_per_layer(errors: pd.DataFrame, by: Sequence[str] = ("order", "layer")) -> pd.DataFrame:
    """The largest error over the group's elements, per layer: ``max_g error(layer, g)``.

    The one reduction of a :func:`layerwise_equivariance` table (or several, stacked with extra key columns such
    as ``config`` and ``epoch``) to one number per layer, used by the ledger, the experiments and the figures.
    The identity element, whose error is 0 by construction, is left out where the table has it. ``by`` are the
    key columns kept (sorted, in that order); returns them and ``error``.
    """
    keys = list(by)
    missing = [c for c in (*keys, "element", "error") if c not in errors.columns]
    if missing:
        raise ValueError(f"layer-wise errors table lacks column(s) {', '.join(missing)}; it has {', '.join(errors.columns)}")
    frame = errors[errors["element"] != "e"]
    return frame.groupby(keys, as_index=False, sort=True)["error"].max()


def accuracy_vs_rotation(
    model: nn.Module,
    images: torch.Tensor,
    labels: torch.Tensor,
    angles: Sequence[float],
    fill: float | torch.Tensor = 0.0,
    *,
    batch_size: int = 2048,
    device: str | torch.device | None = None,
) -> pd.DataFrame:
    """Top-1 accuracy of ``model`` on ``images`` rotated by each angle in ``angles`` (degrees, CCW).

    Args:
        images: ``(N, C, H, W)`` test images, already normalised as the model expects.
        labels: ``(N,)`` integer labels.
        angles: test angles in degrees. Multiples of 90° are exact index permutations.
        fill: the background value outside the rotated image — pass the data's true background
            (for normalised MNIST ``(0 − mean)/std``), not 0 of the normalised scale.
        batch_size: images per forward pass (each pass covers several angles of a chunk of images).
        device: where to run (default: the model's device).

    Returns:
        Tidy DataFrame, one row per angle: ``angle``, ``accuracy`` (percent), ``correct``, ``n``.
    """
    if images.dim() != 4:
        raise ValueError(f"images must be (N, C, H, W), got shape {tuple(images.shape)}")
    if labels.shape != (images.shape[0],):
        raise ValueError(f"labels must be ({images.shape[0]},), got shape {tuple(labels.shape)}")
    angles = [float(a) for a in angles]
    if not angles or not all(math.isfinite(a) for a in angles):
        raise ValueError(f"angles must be a non-empty list of finite numbers, got {angles!r}")
    if not is_int(batch_size) or batch_size < 1:
        raise ValueError(f"batch_size must be a positive int, got {batch_size!r}")
    param = next(iter(model.parameters()), None)
    dev = torch.device(device) if device is not None else (param.device if param is not None else torch.device("cpu"))
    correct = torch.zeros(len(angles), dtype=torch.long)
    n = images.shape[0]
    per_chunk = max(1, batch_size // len(angles))  # images per chunk so that chunk × angles ≈ batch_size
    angle_t = torch.tensor(angles, dtype=torch.float32)
    with torch.no_grad():
        for start in range(0, n, per_chunk):
            xb = images[start : start + per_chunk].to(dev)
            yb = labels[start : start + per_chunk].to(dev)
            b = xb.shape[0]
            rotated = rotate_batch_angles(xb, angle_t, fill)  # angle-major: (A·b, C, H, W)
            preds = model(rotated).argmax(dim=1).view(len(angles), b)
            correct += (preds == yb.unsqueeze(0)).sum(dim=1).cpu()
    return pd.DataFrame(
        {"angle": angles, "accuracy": (100.0 * correct.double() / n).tolist(), "correct": correct.tolist(), "n": n}
    )

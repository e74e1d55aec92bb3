"""e2cnn-backed layers behind the :class:`~equiv.models.layers.LayerKit` interface (``backend="e2cnn"``).

P4 is ``gspaces.Rot2dOnR2(N=4)``, P4M ``gspaces.FlipRot2dOnR2(N=4)`` (e2cnn's default flip axis π/2); hidden
features are regular fields, images trivial fields. Every layer takes and returns plain tensors in the
conventions of :mod:`equiv.groups` — images ``(B, C, H, W)``, group maps ``(B, C, |G|, H, W)`` — and wraps /
unwraps :class:`e2cnn.nn.GeometricTensor` inside, so :func:`equiv.exactness.check`, the metrics and the model
heads work unchanged.

**Orientation** (determined empirically, checked in ``tests/test_models_e2cnn.py``): e2cnn's action on the
pixel grid coincides with ours — its generator rotation is ``torch.rot90(x, 1, dims=(-2, -1))`` (our ``r``),
its flip is ``torch.flip(x, (-1,))`` (our ``m``) — and channel ``j`` of a regular field belongs to e2cnn's
group element number ``j``: ``k`` (C4) or ``(f, k)`` in order ``(0,0)…(0,3),(1,0)…(1,3)`` (D4), which is our
``r^k m^f`` at index ``f·4 + k``. So :func:`to_group_map` is a reshape ``(B, C·|G|, H, W) → (B, C, |G|, H, W)``
and ``group.act_on_group_map`` is the true action on its result.

**Kernel bases span the full filter space.** For 3×3 kernels ``rings=[0, 1, √2], frequencies_cutoff=1.5``
gives exactly ``k² = 9`` weights per lifting field pair and ``|G|·k²`` (36 for P4, 72 for P4M) per
group→group pair, linearly independent — the same filter space as the GrouPy-style :mod:`equiv.nn` layers.
For 4×4 kernels no choice of rings and cutoff does: in the P4 lifting basis, for instance, the
sign-irrep part needs 4 independent weights, harmonics come in ``cos/sin`` pairs per ring, and the ``cos 2θ``
(and ``cos 6θ``) ones vanish on both diagonal rings, so they all sample to multiples of one pattern: two
pairs span at most 3 dimensions, more pairs are redundant.
For every kernel size other than 3 we therefore put rings on every radius of the k×k grid, allow
frequencies up to ``2(k−1)``, and keep a maximal linearly independent subset of the sampled basis (lowest
frequencies first, greedy Gram–Schmidt) through ``basis_filter`` — 16 / 64 / 128 weights for the 4×4
lifting / P4 / P4M layers; 1×1 needs ``|G|`` and gets it. The tests check count, rank, and that the span
equals that of :class:`equiv.nn.GroupConv2d`.

**Caching pitfall.** e2cnn shares sampled bases between layers (and models) built with the same settings
(``recompute=False``, its default), so ``.double()`` on one model silently changes the dtype of another's
basis buffers and breaks it. Every R2Conv here is built with ``recompute=True`` (its own basis buffers), so
models can be cast independently, and float64 works: e2cnn samples its bases in float32, but the sampled
values keep the grid's symmetry, and a float64 model is invariant to ≈1e-15 at exact sizes (tested).
Mind also that an e2cnn ``R2Conv`` stores its expanded ``filter`` as a buffer only in eval mode, so save and
load state dicts in the same mode (e2cnn's own advice).
"""

from __future__ import annotations

import math
import warnings
from functools import lru_cache
from typing import Any

import numpy as np
import torch
from torch import nn

from e2cnn import gspaces
from e2cnn import nn as enn
from e2cnn.nn import FieldType, GeometricTensor
from e2cnn.nn.init import _generalized_he_init_variances
from e2cnn.nn.modules.r2_conv.r2convolution import compute_basis_params

from equiv.groups import Group, get_group
from equiv.validation import is_int

__all__ = [
    "SUPPORTED_GROUPS",
    "gspace_for",
    "to_group_map",
    "from_group_map",
    "conv_basis_settings",
    "he_init_",
    "E2Module",
    "E2Conv2d",
    "E2Kit",
]

SUPPORTED_GROUPS: tuple[str, ...] = ("p4", "p4m")


@lru_cache(maxsize=None)
def _gspace(name: str) -> gspaces.GSpace:
    return gspaces.Rot2dOnR2(N=4) if name == "p4" else gspaces.FlipRot2dOnR2(N=4)


def gspace_for(group: str | Group) -> gspaces.GSpace:
    """The e2cnn gspace of ``group``: ``Rot2dOnR2(N=4)`` for P4, ``FlipRot2dOnR2(N=4)`` for P4M."""
    grp = get_group(group)
    if grp.name not in SUPPORTED_GROUPS:
        raise ValueError(f"the e2cnn backend supports groups {', '.join(SUPPORTED_GROUPS)}, got {grp.name!r}")
    return _gspace(grp.name)


def _check_field_type(field_type: FieldType, grp: Group) -> None:
    gs = field_type.gspace
    if grp.name not in SUPPORTED_GROUPS or gs.fibergroup.order() != grp.order:
        raise ValueError(
            f"a field type over {gs.name} (order {gs.fibergroup.order()}) cannot be read as a {grp.name} group map"
        )
    if grp.name == "p4m" and not math.isclose(getattr(gs, "axis", math.pi / 2), math.pi / 2):
        raise ValueError(f"P4M group maps need e2cnn's default flip axis pi/2, got {gs.name}")
    names = {r.name for r in field_type.representations}
    if names != {"regular"}:
        raise ValueError(f"only regular fields form group maps, got representations {sorted(names)}")


def to_group_map(tensor: GeometricTensor | torch.Tensor, group: str | Group) -> torch.Tensor:
    """An e2cnn feature map of regular fields as a group map ``(B, C, |G|, H, W)`` in :mod:`equiv.groups` order.

    Accepts a :class:`GeometricTensor` (its field type is checked: regular fields over the gspace of
    ``group``) or its plain ``(B, C·|G|, H, W)`` tensor. Afterwards ``group.act_on_group_map(g, ·)`` is the
    action of ``g``: for an e2cnn layer ``f`` and an exact input size,
    ``to_group_map(f(g·x)) == group.act(g, to_group_map(f(x)))`` for every ``g``.
    """
    grp = get_group(group)
    if isinstance(tensor, GeometricTensor):
        _check_field_type(tensor.type, grp)
        data = tensor.tensor
    elif isinstance(tensor, torch.Tensor):
        data = tensor
    else:
        raise ValueError(f"expected a GeometricTensor or a tensor, got {type(tensor).__name__}")
    if data.dim() != 4 or data.shape[1] % grp.order:
        raise ValueError(
            f"expected (B, C·{grp.order}, H, W) for {grp.name} regular fields, got shape {tuple(data.shape)}"
        )
    return data.unflatten(1, (data.shape[1] // grp.order, grp.order))


def from_group_map(x: torch.Tensor, field_type: FieldType) -> GeometricTensor:
    """The inverse of :func:`to_group_map`: a group map ``(B, C, |G|, H, W)`` as a GeometricTensor of ``field_type``."""
    if x.dim() != 5 or x.shape[1] * x.shape[2] != field_type.size:
        raise ValueError(f"expected a group map with C·|G| = {field_type.size}, got shape {tuple(x.shape)}")
    return GeometricTensor(x.flatten(1, 2), field_type)


# ------------------------------------------------------------------------------------------ kernel bases
class _FrequencyCap:
    """``frequencies_cutoff`` callable: the same maximum angular frequency on every ring (picklable)."""

    def __init__(self, cap: int) -> None:
        self.cap = cap

    def __call__(self, radius: float) -> int:
        return self.cap


class _KeepIndices:
    """``basis_filter`` callable keeping the basis elements whose ``idx`` is in ``keep`` (picklable)."""

    def __init__(self, keep: frozenset[int]) -> None:
        self.keep = keep

    def __call__(self, attributes: dict) -> bool:
        return attributes["idx"] in self.keep


def _grid_radii(kernel_size: int) -> list[float]:
    c = np.arange(kernel_size) - (kernel_size - 1) / 2
    radii = np.sqrt(c[:, None] ** 2 + c[None, :] ** 2)
    top = float(radii.max())
    return sorted({min(float(np.round(r, 9)), top) for r in radii.ravel()})


def _pool_settings(kernel_size: int) -> dict[str, Any]:
    if kernel_size == 3:
        return {"rings": [0.0, 1.0, math.sqrt(2)], "frequencies_cutoff": 1.5}
    return {"rings": _grid_radii(kernel_size), "frequencies_cutoff": _FrequencyCap(max(2, 2 * (kernel_size - 1)))}


def _independent_subset(sampled: np.ndarray, attributes: list[dict], tol: float = 1e-6) -> list[int]:
    """Greedy Gram–Schmidt over the sampled basis rows, lowest |frequency| (then radius) first."""
    order = sorted(range(len(attributes)),
                   key=lambda i: (abs(attributes[i]["frequency"]), attributes[i]["radius"], attributes[i]["idx"]))
    basis: list[np.ndarray] = []
    chosen: list[int] = []
    for i in order:
        v = sampled[i].astype(np.float64)
        norm = np.linalg.norm(v)
        if norm < 1e-9:
            continue
        v = v / norm
        for _ in range(2):  # re-orthogonalise for stability
            for q in basis:
                v = v - (q @ v) * q
        residual = np.linalg.norm(v)
        if residual > tol:
            basis.append(v / residual)
            chosen.append(i)
    return chosen


@lru_cache(maxsize=None)
def _keep_set(group_name: str, in_trivial: bool, kernel_size: int) -> tuple[frozenset[int] | None, int]:
    """(indices to keep or None for all, resulting dimension) for a trivial/regular → regular basis."""
    gs = _gspace(group_name)
    in_repr = gs.trivial_repr if in_trivial else gs.regular_repr
    settings = _pool_settings(kernel_size)
    fco = settings["frequencies_cutoff"]
    grid, band_filter, rings, sigma, max_freq = compute_basis_params(kernel_size, fco, settings["rings"], None, 1, None)
    basis = gs.build_kernel_basis(in_repr, gs.regular_repr, sigma=sigma, rings=rings, maximum_offset=None,
                                  maximum_frequency=max_freq)
    attributes = list(basis)
    mask = np.array([band_filter(a) for a in attributes], dtype=bool)
    sampled = basis.sample_masked(grid, mask=mask)  # (O, I, B, P)
    sampled = np.transpose(sampled, (2, 0, 1, 3)).reshape(int(mask.sum()), -1)
    kept_attrs = [a for a, m in zip(attributes, mask) if m]
    chosen = _independent_subset(sampled, kept_attrs)
    if len(chosen) == len(kept_attrs):
        return None, len(chosen)
    return frozenset(int(kept_attrs[i]["idx"]) for i in chosen), len(chosen)


def conv_basis_settings(group: str | Group, kernel_size: int, lifting: bool) -> dict[str, Any]:
    """The R2Conv keyword arguments (``rings``, ``frequencies_cutoff``, maybe ``basis_filter``) whose basis
    spans the full space of equivariant ``k×k`` filters with no redundant weight: ``k²`` weights per
    (trivial → regular) field pair, ``|G|·k²`` per (regular → regular) pair."""
    grp = get_group(group)
    gspace_for(grp)
    if not is_int(kernel_size) or kernel_size < 1:
        raise ValueError(f"kernel_size must be a positive int, got {kernel_size!r}")
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        keep, _ = _keep_set(grp.name, bool(lifting), kernel_size)
    settings = _pool_settings(kernel_size)
    if keep is not None:
        settings["basis_filter"] = _KeepIndices(keep)
    return settings


@lru_cache(maxsize=None)
def _he_std_one_output_field(group_name: str, lifting: bool, kernel_size: int, in_channels: int) -> torch.Tensor:
    """e2cnn's generalized He standard deviations for ``in_channels`` input fields and one output field."""
    gs = _gspace(group_name)
    in_type = FieldType(gs, [gs.trivial_repr if lifting else gs.regular_repr] * in_channels)
    out_type = FieldType(gs, [gs.regular_repr])
    conv = enn.R2Conv(in_type, out_type, kernel_size, bias=False, recompute=True, initialize=False,
                      **conv_basis_settings(group_name, kernel_size, lifting))
    return _generalized_he_init_variances(conv.basisexpansion)


def he_init_(conv: enn.R2Conv, group: str | Group, lifting: bool) -> None:
    """e2cnn's generalized He initialisation of a regular-output R2Conv, computed per input-field count once.

    e2cnn's own ``generalized_he_init`` loops in Python over every weight (seconds per wide layer); the
    standard deviations only depend on the basis of one output field (the weights are ordered output field
    by output field), so we compute them for one and tile them.
    """
    grp = get_group(group)
    n_out = len(conv.out_type)
    n_in = len(conv.in_type)
    std = _he_std_one_output_field(grp.name, lifting, conv.kernel_size, n_in).repeat(n_out)
    with torch.no_grad():
        conv.weights.copy_(std.to(conv.weights) * torch.randn_like(conv.weights))


# ----------------------------------------------------------------------------------------------- layers
class E2Module(nn.Module):
    """Runs an e2cnn module on plain tensors: images ``(B, C, H, W)`` when its input is trivial fields,
    group maps ``(B, C, |G|, H, W)`` otherwise; returns a group map (regular output fields)."""

    def __init__(self, module: enn.EquivariantModule, group: Group, lifting: bool = False) -> None:
        super().__init__()
        self.group = group
        self.lifting = lifting
        self.e2 = module

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        in_type = self.e2.in_type
        if self.lifting:
            if x.dim() != 4 or x.shape[1] != in_type.size:
                raise ValueError(f"{type(self).__name__} expects an image (B, {in_type.size}, H, W), got shape {tuple(x.shape)}")
            geo = GeometricTensor(x, in_type)
        else:
            n = self.group.order
            if x.dim() != 5 or x.shape[2] != n or x.shape[1] * n != in_type.size:
                raise ValueError(
                    f"{type(self).__name__} expects a group feature map (B, {in_type.size // n}, {n}, H, W), "
                    f"got shape {tuple(x.shape)}"
                )
            geo = GeometricTensor(x.flatten(1, 2), in_type)
        return to_group_map(self.e2(geo).tensor, self.group)


class E2Conv2d(E2Module):
    """An e2cnn ``R2Conv`` (regular output fields) with a full-span kernel basis, on plain tensors.

    Same interface, filter space and equivariance as :class:`equiv.nn.GroupConv2d`: ``self(g·x) == g·self(x)``
    exactly when ``(N + 2p − k) mod s == 0``. Weights get e2cnn's generalized He initialisation.
    """

    def __init__(self, in_channels: int, out_channels: int, kernel_size: int, stride: int = 1, padding: int = 0,
                 bias: bool = True, *, group: str | Group = "p4", lifting: bool = False) -> None:
        grp = get_group(group)
        gs = gspace_for(grp)
        in_type = FieldType(gs, [gs.trivial_repr if lifting else gs.regular_repr] * in_channels)
        out_type = FieldType(gs, [gs.regular_repr] * out_channels)
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            conv = enn.R2Conv(in_type, out_type, kernel_size, padding=padding, stride=stride, bias=bias,
                              basisexpansion="blocks", recompute=True, initialize=False,
                              **conv_basis_settings(grp, kernel_size, lifting))
            he_init_(conv, grp, lifting)
        expected = kernel_size ** 2 * (1 if lifting else grp.order) * in_channels * out_channels
        if conv.weights.numel() != expected:  # pragma: no cover - guarded by the tests
            raise RuntimeError(f"e2cnn basis has {conv.weights.numel()} weights, expected the full {expected}")
        super().__init__(conv, grp, lifting)
        self.in_channels, self.out_channels = in_channels, out_channels
        self.kernel_size, self.stride, self.padding = kernel_size, stride, padding

    def extra_repr(self) -> str:
        return (f"{self.in_channels}, {self.out_channels}, kernel_size={self.kernel_size}, stride={self.stride}, "
                f"padding={self.padding}, group={self.group.name}, lifting={self.lifting}")


class E2Kit:
    """Layer constructors on e2cnn (R2Conv, InnerBatchNorm, ReLU, PointwiseMaxPool, PointwiseDropout) for
    P4 or P4M; every layer maps group maps in :mod:`equiv.groups` conventions."""

    name = "e2cnn"

    def __init__(self, group: str | Group) -> None:
        self.group = get_group(group)
        self.gspace = gspace_for(self.group)

    def _regular(self, channels: int) -> FieldType:
        return FieldType(self.gspace, [self.gspace.regular_repr] * channels)

    def conv(self, in_channels: int, out_channels: int, kernel_size: int, stride: int = 1, padding: int = 0,
             bias: bool = True, lifting: bool = False) -> nn.Module:
        return E2Conv2d(in_channels, out_channels, kernel_size, stride, padding, bias, group=self.group, lifting=lifting)

    def bn(self, channels: int) -> nn.Module:
        return E2Module(enn.InnerBatchNorm(self._regular(channels)), self.group)

    def relu(self, channels: int) -> nn.Module:
        return E2Module(enn.ReLU(self._regular(channels)), self.group)

    def max_pool(self, channels: int, kernel_size: int, stride: int, padding: int = 0) -> nn.Module:
        return E2Module(enn.PointwiseMaxPool(self._regular(channels), kernel_size, stride, padding), self.group)

    def dropout(self, channels: int, p: float) -> nn.Module:
        return E2Module(enn.PointwiseDropout(self._regular(channels), p), self.group)

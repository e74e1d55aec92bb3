"""Sampling grids of subsampling operations on one spatial axis, and when they are mirror-symmetric.

A strided convolution or pooling on an axis of length ``N`` reads a list of *windows* (sets of input
indices). Rotating the input by 90° or flipping it maps index ``i`` to ``N − 1 − i``; the operation
commutes with that map exactly iff the list of windows is mirror-symmetric: window ``j`` mirrored equals
window ``n − 1 − j`` (with the same weights, divisor, padding). This module enumerates the windows of
PyTorch's convolutions, max/avg pooling (floor and ceil mode, padding, dilation, ``count_include_pad``),
adaptive pooling and strided slicing, and decides symmetry by comparing them — no closed formula is
trusted. For floor mode it agrees with the paper's rule ``r = (N + 2p − d(k−1) − 1) mod s == 0``.

:func:`rotated_centres` lays one grid out on a square image and on its 90° rotation, for the window diagram of
the sampling-grids chapter (:func:`equiv.figures.sampling_grids.window_diagram`).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Iterable

import pandas as pd

__all__ = ["AxisGrid", "conv_grid", "pool_grid", "adaptive_grid", "slice_grid", "leftover", "output_size",
           "window_centres", "rotated_centres", "ceil_mode_rule_check"]

Window = tuple[tuple[int, ...], float]  # (input indices read, divisor or 1)


@dataclass(frozen=True)
class AxisGrid:
    """The windows one operation reads on one axis of length ``n_in``."""

    n_in: int
    windows: tuple[Window, ...]
    leftover: int  # r: input rows left unvisited by the regular grid (0 when the grid fits exactly)

    @property
    def n_out(self) -> int:
        return len(self.windows)

    def mirrored(self) -> tuple[Window, ...]:
        """The windows of the mirrored input ``i ↦ n_in − 1 − i``, in output order."""
        last = self.n_in - 1
        return tuple((tuple(sorted(last - i for i in pts)), div) for pts, div in reversed(self.windows))

    @property
    def symmetric(self) -> bool:
        """True iff the operation commutes exactly with mirroring this axis."""
        return self.mirrored() == tuple((tuple(sorted(p)), d) for p, d in self.windows)


def output_size(n: int, kernel: int, stride: int, padding: int, dilation: int = 1, ceil_mode: bool = False) -> int:
    """PyTorch's output length of a convolution / pooling (``ceil_mode`` as in ``nn.MaxPool2d``)."""
    span = dilation * (kernel - 1) + 1
    if n + 2 * padding < span:
        raise ValueError(f"input length {n} with padding {padding} is smaller than the kernel span {span}")
    num = n + 2 * padding - span
    out = (-(-num // stride) if ceil_mode else num // stride) + 1
    if ceil_mode and (out - 1) * stride >= n + padding:  # the last window must start inside input or left pad
        out -= 1
    return out


def leftover(n: int, kernel: int, stride: int, padding: int, dilation: int = 1) -> int:
    """``r = (N + 2p − d(k−1) − 1) mod s``: rows the last window leaves unvisited at the far end."""
    return (n + 2 * padding - dilation * (kernel - 1) - 1) % stride


def conv_grid(n: int, kernel: int, stride: int, padding: int, dilation: int = 1) -> AxisGrid:
    """Windows of a zero-padded convolution. Padding positions (outside ``[0, n)``) are kept as indices,
    because the filter weight that meets them matters for symmetry."""
    out = output_size(n, kernel, stride, padding, dilation)
    windows = tuple(
        (tuple(-padding + j * stride + t * dilation for t in range(kernel)), 1.0) for j in range(out)
    )
    return AxisGrid(n, windows, leftover(n, kernel, stride, padding, dilation))


def pool_grid(
    n: int,
    kernel: int,
    stride: int,
    padding: int,
    dilation: int = 1,
    ceil_mode: bool = False,
    kind: str = "max",
    count_include_pad: bool = True,
    divisor_override: int | None = None,
) -> AxisGrid:
    """Windows of max pooling (padding never wins a max: indices clipped to ``[0, n)``) or average pooling
    (clipped indices plus PyTorch's divisor rule, so uneven ceil-mode windows are compared faithfully)."""
    if kind not in ("max", "avg"):
        raise ValueError(f"kind must be 'max' or 'avg', got {kind!r}")
    out = output_size(n, kernel, stride, padding, dilation, ceil_mode)
    windows = []
    for j in range(out):
        start = -padding + j * stride
        pts = tuple(i for i in (start + t * dilation for t in range(kernel)) if 0 <= i < n)
        if kind == "max":
            div = 1.0
        elif divisor_override:
            div = float(divisor_override)
        elif count_include_pad:  # PyTorch: window clipped to the padded extent, then counted
            div = float(min(start + kernel, n + padding) - start)
        else:
            div = float(len(pts))
        windows.append((pts, div))
    return AxisGrid(n, tuple(windows), leftover(n, kernel, stride, padding, dilation))


def adaptive_grid(n: int, out: int, kind: str = "avg") -> AxisGrid:
    """Windows of adaptive pooling: ``[⌊jN/o⌋, ⌈(j+1)N/o⌉)`` — mirror-symmetric for every ``N`` and ``o``."""
    if out < 1:
        raise ValueError(f"adaptive pooling output size must be >= 1, got {out}")
    windows = tuple(
        (tuple(range((j * n) // out, -(-((j + 1) * n) // out))), 1.0) for j in range(out)
    )
    return AxisGrid(n, windows, n % out)


def slice_grid(n: int, start: int | None, stop: int | None, step: int | None) -> AxisGrid:
    """Indices kept by ``x[start:stop:step]`` on an axis of length ``n`` (cropping and striding)."""
    idx = tuple(range(*slice(start, stop, step).indices(n)))
    if not idx:
        raise ValueError(f"slice {start}:{stop}:{step} keeps nothing of an axis of length {n}")
    lo, hi = min(idx), max(idx)
    return AxisGrid(n, tuple(((i,), 1.0) for i in idx), (n - 1 - hi) - lo)



def window_centres(grid: AxisGrid) -> tuple[float, ...]:
    """The centre of every window of ``grid`` on its axis, in output order (padding positions included, so the
    centre of a 3-window at ``-1, 0, 1`` is 0)."""
    return tuple(sum(points) / len(points) for points, _ in grid.windows)


def rotated_centres(layer: str, grid: AxisGrid, padding: int = 0) -> pd.DataFrame:
    """Where a layer with ``grid`` on both axes of a square input ``x`` samples, on ``x`` and on ``r·x``.

    ``r`` is the 90° rotation: pixel ``(i, j)`` of ``r·x = rot90(x)`` is pixel ``(j, N − 1 − i)`` of ``x``, and
    every position on ``r·x`` is mapped back onto ``x`` by ``r⁻¹``. The grid is mirror-symmetric iff the two
    sets of centres coincide.

    Returns one row per (image, output row, output column): ``layer``, ``N``, ``padding``, ``leftover``,
    ``symmetric``, ``image`` (``"x"`` or ``"r·x"``), ``row``, ``col`` (the window centre in pixel
    coordinates of ``x``; halves for windows of even size) and ``first_row_lo`` / ``first_row_hi`` /
    ``first_col_lo`` / ``first_col_hi`` (the window of the first output on that image, mapped onto ``x``).
    """
    n = grid.n_in
    centres = window_centres(grid)
    first = grid.windows[0][0]
    lo, hi = min(first), max(first)
    common = {"layer": layer, "N": n, "padding": padding, "leftover": grid.leftover, "symmetric": grid.symmetric}
    rows = []
    for i in centres:
        for j in centres:
            rows.append({**common, "image": "x", "row": i, "col": j, "first_row_lo": lo, "first_row_hi": hi,
                         "first_col_lo": lo, "first_col_hi": hi})
            rows.append({**common, "image": "r·x", "row": j, "col": n - 1 - i, "first_row_lo": lo,
                         "first_row_hi": hi, "first_col_lo": n - 1 - hi, "first_col_hi": n - 1 - lo})
    return pd.DataFrame(rows)


def ceil_mode_rule_check(kernels: Iterable[int] = range(1, 8), strides: Iterable[int] = range(2, 5),
                         max_size: int = 69, kinds: Iterable[str] = ("max", "avg")) -> dict[str, int]:
    """Enumerate every ``ceil_mode=True`` pooling grid (each kind, kernel, stride, padding ``0..k//2`` and input
    size ``k..max_size``) and count those where the enumerated windows' symmetry disagrees with the rule
    "symmetric iff the leftover ``r`` is 0" (:func:`leftover`). Returns ``checked`` and ``disagree``."""
    checked = disagree = 0
    for kind in kinds:
        for k in kernels:
            for s in strides:
                for p in range(0, k // 2 + 1):
                    for n in range(k, max_size + 1):
                        grid = pool_grid(n, k, s, p, ceil_mode=True, kind=kind)
                        checked += 1
                        disagree += grid.symmetric != (leftover(n, k, s, p) == 0)
    return {"checked": checked, "disagree": disagree}

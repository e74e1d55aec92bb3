"""Prediction against measurement for single subsampling layers, over input sizes (claims C1, C2).

For every layer of a dict and every input size ``N`` of a list, :func:`predicted_vs_measured` puts the two
independent verdicts side by side:

- **predicted**: :func:`equiv.exactness.check` traces the layer's forward pass once and judges the sampling
  grid of every strided operation; it never looks at numbers;
- **measured**: :func:`equiv.metrics.equivariance_error` feeds random float64 images through the layer and
  takes the largest relative error ``‖f(g·x) − g·f(x)‖ / ‖f(x)‖`` over the elements ``g`` of the group; the
  measurement counts as exact at or below :data:`equiv.tolerances.EXACT_TOL`.

:func:`sweep_summary` reduces the sweep to one row per layer and :func:`sweep_numbers` to the key numbers the
sampling-grids chapter glues into its text. Everything is float64, so an exact layer reads round-off (about
1e-16, or exactly 0 for layers that do no arithmetic across pixels) and an approximate one an error of order one.

Example::

    >>> from torch import nn
    >>> sweep = predicted_vs_measured({"2×2 max-pool": nn.MaxPool2d(2)}, [8, 9])
    >>> list(sweep["predicted"]), bool(sweep["agree"].all())
    (['exact', 'approximate'], True)
"""

from __future__ import annotations

import copy
from typing import Any, Iterable, Mapping

import pandas as pd
import torch
from torch import nn

from equiv.exactness import check, exact_sizes
from equiv.metrics import equivariance_error
from equiv.tolerances import EXACT_TOL

__all__ = ["SWEEP_COLUMNS", "predicted_vs_measured", "sweep_summary", "sweep_numbers", "stacked_strided_convs"]

#: the columns of :func:`predicted_vs_measured`
SWEEP_COLUMNS = ["layer", "N", "r", "predicted", "measured", "error", "agree"]


def _verdict(exact: bool) -> str:
    return "exact" if exact else "approximate"


def predicted_vs_measured(layers: Mapping[str, nn.Module], sizes: Iterable[int], group: str = "p4", *,
                          batch: int = 4, seed: int = 0, in_channels: int = 1) -> pd.DataFrame:
    """The predictor's verdict beside the measured error, for every layer of ``layers`` at every size.

    Args:
        layers: name → layer taking ``(B, in_channels, N, N)`` images (a lifting convolution, a pool, ...). Each
            is measured on a float64 copy in eval mode; the modules passed in are left as they are.
        sizes: the input sizes ``N`` (square inputs).
        group: the group to check and measure (``"p4"`` or ``"p4m"``).
        batch: random images per measurement.
        seed: seeds the random images; they are drawn in order, layer by layer and size by size.
        in_channels: channels of the random images.

    Returns:
        One row per (layer, N), in the order given: ``layer``, ``N``, ``r`` (the leftover of the layer's first
        subsampling operation, :func:`equiv.sampling_grid.leftover`; 0 when it subsamples nothing),
        ``predicted`` and ``measured`` (``"exact"`` / ``"approximate"``), ``error`` (the largest relative
        error over the group) and ``agree``.

    Raises:
        ValueError: no layers, no sizes, a batch below 1, or a size too small for a layer.
    """
    sizes = [int(n) for n in sizes]
    if not layers:
        raise ValueError("layers is empty: give at least one name → layer")
    if not sizes:
        raise ValueError("sizes is empty: give at least one input size")
    if batch < 1:
        raise ValueError(f"batch must be >= 1, got {batch}")
    generator = torch.Generator().manual_seed(seed)
    records = []
    for name, module in layers.items():
        layer = copy.deepcopy(module).double().eval()
        for n in sizes:
            report = check(layer, n, group, in_channels=in_channels)
            x = torch.randn(batch, in_channels, n, n, dtype=torch.float64, generator=generator)
            error = float(equivariance_error(layer, x, group)["error"].max())
            subsampling = report.subsampling
            records.append({"layer": name, "N": n, "r": subsampling[0].leftover[0] if subsampling else 0,
                            "predicted": _verdict(report.exact), "measured": _verdict(error <= EXACT_TOL),
                            "error": error})
    sweep = pd.DataFrame(records, columns=SWEEP_COLUMNS[:-1])
    sweep["agree"] = sweep["predicted"] == sweep["measured"]
    return sweep


def _check_sweep(sweep: pd.DataFrame) -> None:
    missing = [c for c in SWEEP_COLUMNS if c not in sweep.columns]
    if missing:
        raise ValueError(f"sweep table lacks column(s) {', '.join(missing)}; it has {', '.join(sweep.columns)}")
    if sweep.empty:
        raise ValueError("sweep table is empty")


def sweep_summary(sweep: pd.DataFrame, shown_sizes: int = 6) -> pd.DataFrame:
    """One row per layer of a :func:`predicted_vs_measured` table, in its order (the layer as index).

    Columns: ``exact sizes`` (the first ``shown_sizes`` predicted-exact sizes, then "…"), ``max error, exact``
    (the largest error at a predicted-exact size), ``min error, approximate`` (the smallest at a
    predicted-approximate size; NaN where there is none) and ``agree`` (``"k/n"``).
    """
    _check_sweep(sweep)
    rows = {}
    for layer, d in sweep.groupby("layer", sort=False):
        exact = d[d["predicted"] == "exact"]
        approx = d[d["predicted"] == "approximate"]
        rows[layer] = {"exact sizes": ", ".join(map(str, exact["N"].head(shown_sizes))) + ", …",
                       "max error, exact": exact["error"].max(),
                       "min error, approximate": approx["error"].min(),
                       "agree": f"{int(d['agree'].sum())}/{len(d)}"}
    return pd.DataFrame.from_dict(rows, orient="index").rename_axis("layer")


def sweep_numbers(sweep: pd.DataFrame) -> dict[str, Any]:
    """The key numbers of a :func:`predicted_vs_measured` table.

    ``n_cases``, ``n_agree``, ``n_disagree``, ``n_layers``, ``n_sizes``, ``size_min``, ``size_max`` (ints);
    ``max_exact_error`` (largest error where the predictor says exact), ``min_approx_error`` and
    ``median_approx_error`` (smallest and median error where it says approximate; NaN where there is none).
    """
    _check_sweep(sweep)
    exact = sweep[sweep["predicted"] == "exact"]["error"]
    approx = sweep[sweep["predicted"] == "approximate"]["error"]
    n_agree = int(sweep["agree"].sum())
    return {"n_cases": len(sweep), "n_agree": n_agree, "n_disagree": len(sweep) - n_agree,
            "n_layers": int(sweep["layer"].nunique()), "n_sizes": int(sweep["N"].nunique()),
            "size_min": int(sweep["N"].min()), "size_max": int(sweep["N"].max()),
            "max_exact_error": float(exact.max()), "min_approx_error": float(approx.min()),
            "median_approx_error": float(approx.median())}


def stacked_strided_convs(depths: Iterable[int], sizes: Iterable[int]) -> pd.DataFrame:
    """Exact input sizes of a stack of ``depth`` strided 3×3 convolutions (stride 2, padding 1: a lifting
    :class:`~equiv.nn.P4ConvZ2` then :class:`~equiv.nn.P4ConvP4` layers), by the exactness predictor over
    ``sizes``, against the rule that such a stack is exact iff ``N ≡ 1 (mod 2^depth)``.

    One row per depth: ``strided 3×3 convs``, ``exact sizes N`` (as text), ``all ≡ 1 mod 2^depth`` and ``every
    such N found`` (every size of ``sizes`` with that residue, at least ``2^depth``, is exact)."""
    from equiv.nn import P4ConvP4, P4ConvZ2

    sizes = list(sizes)
    rows = []
    for depth in depths:
        stack = nn.Sequential(P4ConvZ2(1, 2, 3, stride=2, padding=1),
                              *[P4ConvP4(2, 2, 3, stride=2, padding=1) for _ in range(depth - 1)])
        found = exact_sizes(stack, sizes, "p4")
        rule = [n for n in sizes if n >= 2 ** depth and n % 2 ** depth == 1]
        rows.append({"strided 3×3 convs": depth, "exact sizes N": ", ".join(map(str, found)),
                     "all ≡ 1 mod 2^depth": all(n % 2 ** depth == 1 for n in found),
                     "every such N found": len(found) == len(rule)})
    return pd.DataFrame(rows)

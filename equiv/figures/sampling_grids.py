"""Figures of the sampling-grids chapter (``book/sampling_grids``).

- :func:`window_diagram`: where a strided layer samples an image and its 90° rotation, from the tables of
  :func:`equiv.sampling_grid.rotated_centres`;
- :func:`predicted_vs_measured`: the predictor's verdict against the measured error over input sizes, from the
  table of :func:`equiv.grid_sweep.predicted_vs_measured`.
"""

from __future__ import annotations

import matplotlib.pyplot as plt
import pandas as pd
import seaborn as sns

from equiv.figures import VERDICT_COLOURS, VERDICT_ORDER, WIDTH
from equiv.tolerances import EXACT_TOL, PLOT_FLOOR

__all__ = ["window_diagram", "predicted_vs_measured"]

_MARKERS = {"exact": "o", "approximate": "X"}


def _panel_frame(ax: plt.Axes, n: int, pad: int) -> None:
    """The pixel lattice (padding included), the image's border and, with padding, a dashed padding frame."""
    for i in range(-pad, n + pad + 1):
        ax.plot([-pad - 0.5, n + pad - 0.5], [i - 0.5, i - 0.5], color="0.85", lw=0.6, zorder=0)
        ax.plot([i - 0.5, i - 0.5], [-pad - 0.5, n + pad - 0.5], color="0.85", lw=0.6, zorder=0)
    if pad:
        ax.add_patch(plt.Rectangle((-pad - 0.5, -pad - 0.5), n + 2 * pad, n + 2 * pad, fill=False, lw=1, ls="--",
                                   color="0.5"))
    ax.add_patch(plt.Rectangle((-0.5, -0.5), n, n, fill=False, lw=1.8, color="0.2"))


def window_diagram(centres: pd.DataFrame) -> plt.Figure:
    """One panel per (layer, N) of ``centres`` (the rows of :func:`equiv.sampling_grid.rotated_centres`,
    concatenated), in the order of the table, side by side.

    Dots are the window centres on ``x``, crosses those on ``r·x`` mapped back by ``r⁻¹``; the shaded squares are
    the first output's window on ``x`` (blue) and on ``r·x`` (red, mapped back), the dashed frame the padding.
    """
    panels = list(centres.groupby(["layer", "N"], sort=False))
    fig, axes = plt.subplots(1, len(panels), figsize=(WIDTH, 4.4), squeeze=False, layout="constrained")
    for ax, ((layer, n), panel) in zip(axes[0], panels):
        meta = panel.iloc[0]
        pad = int(meta["padding"])
        _panel_frame(ax, int(n), pad)
        for image, colour, marker, size, label in (("x", "C0", "o", 40, "window centres on x"),
                                                   ("r·x", "C3", "x", 55, "window centres on r·x, mapped back")):
            part = panel[panel["image"] == image]
            first = part.iloc[0]
            ax.add_patch(plt.Rectangle((first["first_col_lo"] - 0.5, first["first_row_lo"] - 0.5),
                                       first["first_col_hi"] - first["first_col_lo"] + 1,
                                       first["first_row_hi"] - first["first_row_lo"] + 1, color=colour, alpha=0.18))
            ax.scatter(part["col"], part["row"], s=size, marker=marker, color=colour, label=label,
                       linewidths=2 if marker == "x" else None, zorder=3 if marker == "o" else 4)
        verdict = "exact" if meta["symmetric"] else "approximate"
        ax.set_title(f"{layer}\nN = {n}: r = {meta['leftover']} → {verdict}", fontsize=9)
        ax.set_xlim(-pad - 0.7, n + pad - 0.3)
        ax.set_ylim(n + pad - 0.3, -pad - 0.7)
        ax.set_aspect("equal")
        ax.set_xticks(range(n))
        ax.set_yticks(range(n))
        ax.tick_params(labelsize=6, length=0)
        ax.grid(False)
        sns.despine(ax=ax, left=True, bottom=True)
    handles, labels = axes[0][0].get_legend_handles_labels()
    fig.legend(handles, labels, loc="outside upper center", ncol=2, frameon=False)
    return fig


def predicted_vs_measured(sweep: pd.DataFrame) -> plt.Figure:
    """One row of panels per layer of a :func:`equiv.grid_sweep.predicted_vs_measured` table: the measured error
    against the input size (log scale), coloured and shaped by the predicted verdict.

    Errors of exactly 0 are drawn at :data:`equiv.tolerances.PLOT_FLOOR`; the dashed line is
    :data:`equiv.tolerances.EXACT_TOL`.
    """
    layers = list(dict.fromkeys(sweep["layer"]))
    sizes = sorted(int(n) for n in sweep["N"].unique())
    fig, axes = plt.subplots(len(layers), 1, figsize=(WIDTH, 1.5 * len(layers) + 1.0), sharex=True, sharey=True,
                             squeeze=False, layout="constrained")
    shown = sweep.assign(shown=sweep["error"].clip(lower=PLOT_FLOOR))
    for i, (ax, layer) in enumerate(zip(axes[:, 0], layers)):
        sns.scatterplot(data=shown[shown["layer"] == layer], x="N", y="shown", hue="predicted", style="predicted",
                        hue_order=VERDICT_ORDER, style_order=VERDICT_ORDER, markers=_MARKERS, palette=VERDICT_COLOURS,
                        s=45, ax=ax, legend=i == 0)
        ax.set(yscale="log", ylim=(PLOT_FLOOR / 4, 10), ylabel="measured error", xlabel="input size N")
        ax.axhline(EXACT_TOL, color="0.4", ls="--", lw=1)
        ax.set_xticks(sizes[:: max(1, len(sizes) // 14)])
        ax.set_title(layer, fontsize=10)
    handles, labels = axes[0, 0].get_legend_handles_labels()
    if axes[0, 0].get_legend() is not None:
        axes[0, 0].get_legend().remove()
    fig.legend(handles, labels, title="predicted", loc="outside right upper", frameon=False)
    fig.suptitle("Predicted verdict (colour) against measured equivariance error (height), P4, float64")
    return fig

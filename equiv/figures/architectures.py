"""Figures of the architectures chapter (``book/architectures``), from the tables of
:mod:`equiv.experiments.architectures`.

- :func:`size_sweeps`: the predictor's verdict at every size of the sweeps
  (:func:`~equiv.experiments.architectures.sweep_verdicts`);
- :func:`layer_errors`: the measured error after every layer at the exact and the approximate size of each
  network (tables ``errors`` and ``networks``).
"""

from __future__ import annotations

import math

import matplotlib.pyplot as plt
import numpy as np
import pandas as pd
import seaborn as sns

from equiv.figures import VERDICT_COLOURS, VERDICT_ORDER, WIDTH
from equiv.tolerances import PLOT_FLOOR

__all__ = ["size_sweeps", "layer_errors"]


def size_sweeps(sweeps: pd.DataFrame) -> plt.Figure:
    """One row per network and one cell per input size, coloured by the predicted verdict; one panel per sweep
    (column ``sweep``), each as wide as its number of sizes."""
    panels = list(sweeps.groupby("sweep", sort=False))
    widths = [part["input_size"].nunique() for _, part in panels]
    rows = max(part["label"].nunique() for _, part in panels)
    fig, axes = plt.subplots(1, len(panels), figsize=(WIDTH, 0.55 * rows + 1.1), squeeze=False, layout="constrained",
                             gridspec_kw={"width_ratios": widths})
    colours = [VERDICT_COLOURS["approximate"], VERDICT_COLOURS["exact"]]
    for ax, (_, part) in zip(axes[0], panels):
        labels = list(dict.fromkeys(part["label"]))
        sizes = sorted(int(n) for n in part["input_size"].unique())
        grid = part.pivot(index="label", columns="input_size", values="exact").loc[labels, sizes].astype(float)
        sns.heatmap(grid, ax=ax, cmap=sns.color_palette(colours), vmin=0, vmax=1, cbar=False, linewidths=1,
                    linecolor="white", annot=np.array([[str(s) for s in sizes]] * len(labels)), fmt="",
                    annot_kws={"fontsize": 7})
        ax.set_xlabel("input size N")
        ax.set_ylabel("")
        ax.set_xticks([])
        ax.tick_params(axis="y", rotation=0)
    handles = [plt.Rectangle((0, 0), 1, 1, color=VERDICT_COLOURS[v]) for v in VERDICT_ORDER]
    fig.legend(handles, list(VERDICT_ORDER), loc="outside upper center", ncol=2, frameon=False)
    return fig


def layer_errors(errors: pd.DataFrame, networks: pd.DataFrame, columns: int = 2) -> plt.Figure:
    """One panel per (network, backend): the error after every layer (call order, log scale) at the network's
    exact and approximate size; dotted lines mark the layers the predictor flags at the approximate size.
    Errors of exactly 0 are drawn at :data:`equiv.tolerances.PLOT_FLOOR`."""
    pair_of = {r.architecture: f"N = {r.approx_size} / {r.exact_size}" for r in networks.itertuples()}
    shown = errors.assign(verdict=np.where(errors["exact"].astype(bool), "exact", "approximate"),
                          error=errors["error"].clip(lower=PLOT_FLOOR))
    shown["panel"] = shown["label"] + " · " + shown["backend"] + " (" + shown["architecture"].map(pair_of) + ")"
    order = list(dict.fromkeys(shown["panel"]))
    nrows = math.ceil(len(order) / columns)
    fig, axes = plt.subplots(nrows, columns, figsize=(WIDTH, 2.7 * nrows + 0.5), sharey=True, squeeze=False,
                             layout="constrained")
    for i, (ax, panel) in enumerate(zip(axes.flat, order)):
        part = shown[shown["panel"] == panel]
        sns.lineplot(data=part, x="position", y="error", hue="verdict", hue_order=VERDICT_ORDER,
                     palette=VERDICT_COLOURS, marker="o", markersize=3, linewidth=1, ax=ax, legend=i == 0)
        for pos in part.loc[(part["verdict"] == "approximate") & part["flagged"].astype(bool), "position"]:
            ax.axvline(pos, color="0.3", ls=":", lw=1)
        ax.set(yscale="log", ylim=(PLOT_FLOOR / 4, 10), xlabel="layer (call order)", ylabel="max error over P4")
        ax.set_title(panel, fontsize=10)
    for ax in axes.flat[len(order):]:
        ax.set_visible(False)
    handles, labels = axes.flat[0].get_legend_handles_labels()
    if axes.flat[0].get_legend() is not None:
        axes.flat[0].get_legend().remove()
    fig.legend(handles, labels, title="size is", loc="outside upper center", ncol=2, frameon=False)
    return fig

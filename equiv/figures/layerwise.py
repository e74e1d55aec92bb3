"""Figures of the training-dynamics chapter (``book/training_dynamics``), from the per-layer table of
:func:`equiv.experiments.layerwise.per_layer_errors` (``config``, ``epoch``, ``order``, ``layer``, ``error``).

- :func:`error_profiles`: the error after every layer, at initialisation and after the last epoch;
- :func:`error_heatmaps`: every layer at every epoch, one panel per configuration;
- :func:`output_errors`: the network output's error over training.

Errors of exactly 0 are drawn at :data:`equiv.tolerances.PLOT_FLOOR` on the log scales.
"""

from __future__ import annotations

import matplotlib.pyplot as plt
import numpy as np
import pandas as pd
import seaborn as sns
from matplotlib.ticker import MaxNLocator

from equiv.figures import WIDTH
from equiv.tolerances import EXACT_TOL, PLOT_FLOOR

__all__ = ["error_profiles", "error_heatmaps", "output_errors"]


def _layer_names(per_layer: pd.DataFrame) -> list[str]:
    return per_layer.drop_duplicates("order").sort_values("order")["layer"].tolist()


def _shown(per_layer: pd.DataFrame) -> pd.DataFrame:
    return per_layer.assign(error_plot=per_layer["error"].clip(lower=PLOT_FLOOR))


def error_profiles(per_layer: pd.DataFrame) -> plt.Figure:
    """One panel per configuration: the error at every layer (forward order) at initialisation and after the
    last epoch, with :data:`equiv.tolerances.EXACT_TOL` dotted."""
    configs = list(dict.fromkeys(per_layer["config"]))
    last = int(per_layer["epoch"].max())
    ends = _shown(per_layer[per_layer["epoch"].isin([0, last])])
    ends = ends.assign(when=np.where(ends["epoch"] == 0, "initialisation", f"after epoch {last}"))
    names = _layer_names(per_layer)
    fig, axes = plt.subplots(1, len(configs), figsize=(WIDTH, 5.0), sharey=True, squeeze=False, layout="constrained")
    for i, (ax, config) in enumerate(zip(axes[0], configs)):
        sns.lineplot(data=ends[ends["config"] == config], x="order", y="error_plot", hue="when", marker="o",
                     markersize=4, ax=ax, legend=i == len(configs) - 1)
        ax.set_yscale("log")
        ax.axhline(EXACT_TOL, color="0.4", lw=0.8, ls=":")
        ax.set_xticks(range(len(names)))
        ax.set_xticklabels(names, rotation=90, fontsize=7)
        ax.set_title(f"config = {config}")
        ax.set_xlabel("layer (forward order)")
        ax.set_ylabel("relative equivariance error")
    return fig


def error_heatmaps(per_layer: pd.DataFrame) -> plt.Figure:
    """One panel per configuration: log₁₀ of the error of every layer (rows, forward order) at every epoch
    (columns, 0 = initialisation), on one colour scale."""
    configs = list(dict.fromkeys(per_layer["config"]))
    names = _layer_names(per_layer)
    shown = _shown(per_layer)
    fig, axes = plt.subplots(1, len(configs), figsize=(WIDTH, 6.5), sharey=True, squeeze=False, layout="constrained")
    for ax, config in zip(axes[0], configs):
        heat = (shown[shown["config"] == config]
                .pivot_table(index="order", columns="epoch", values="error_plot", aggfunc="max"))
        sns.heatmap(np.log10(heat), ax=ax, vmin=np.log10(PLOT_FLOOR), vmax=0, cmap="viridis", cbar=ax is axes[0][-1],
                    cbar_kws={"label": "log10 relative error"})
        ax.set_title(config)
        ax.set_xlabel("epoch")
        ax.set_ylabel("")
        ax.set_yticks(np.arange(len(names)) + 0.5)
        ax.set_yticklabels(names, rotation=0, fontsize=7)
    axes[0][0].set_ylabel("layer")
    return fig


def output_errors(per_layer: pd.DataFrame) -> plt.Figure:
    """The network output's (``<output>``) error against the epoch, one line per configuration."""
    output = _shown(per_layer[per_layer["layer"] == "<output>"])
    fig, ax = plt.subplots(figsize=(WIDTH, 4.0), layout="constrained")
    sns.lineplot(data=output, x="epoch", y="error_plot", hue="config", marker="o", ax=ax)
    ax.set_yscale("log")
    ax.set_ylabel("output equivariance error")
    ax.xaxis.set_major_locator(MaxNLocator(integer=True))
    ax.set_title("network output")
    return fig

"""Figures of the rotated-MNIST chapter (``book/rotated_mnist``).

- :func:`angle_curves`: test accuracy against test angle, ours beside the paper's runs, from the table of
  :func:`equiv.reference.beside_reference`.
"""

from __future__ import annotations

import matplotlib.pyplot as plt
import pandas as pd
import seaborn as sns

from equiv.figures import WIDTH

__all__ = ["angle_curves"]


def _model_order(models: pd.Series) -> list[str]:
    """The labels of :func:`equiv.reference.model_label` in legend order: exact, then approximate, then Z2."""
    return sorted(set(models), key=lambda m: ("Z2" in m, "approx" in m, m))


def angle_curves(curves: pd.DataFrame) -> plt.Figure:
    """One panel per (training rotation, source) of ``curves`` (rows, columns): each model's mean accuracy per
    test angle with ± one standard deviation over seeds as a band; dotted lines at 90°, 180° and 270°."""
    regimes = list(dict.fromkeys(curves["train_rotation"]))
    sources = list(dict.fromkeys(curves["source"]))
    order = _model_order(curves["model"])
    palette = dict(zip(order, sns.color_palette(n_colors=len(order))))
    fig, axes = plt.subplots(len(regimes), len(sources), figsize=(WIDTH, 3.6 * len(regimes) + 0.6), sharex=True,
                             sharey=True, squeeze=False, layout="constrained")
    for i, regime in enumerate(regimes):
        for j, source in enumerate(sources):
            ax = axes[i, j]
            part = curves[(curves["train_rotation"] == regime) & (curves["source"] == source)]
            sns.lineplot(data=part, x="test_angle", y="accuracy", hue="model", hue_order=order, palette=palette,
                         errorbar="sd", marker="o", markersize=3, ax=ax, legend=False)
            for angle in (90, 180, 270):
                ax.axvline(angle, color="0.5", lw=0.8, ls=":")
            ax.set_xticks(range(0, 361, 90))
            ax.set(xlabel="test rotation (degrees)", ylabel="test accuracy (%)", title=f"{source} · trained {regime}")
    handles = [plt.Line2D([], [], color=palette[m], marker="o", markersize=3, label=m) for m in order]
    fig.legend(handles=handles, title="model", loc="outside right upper", frameon=False)
    return fig

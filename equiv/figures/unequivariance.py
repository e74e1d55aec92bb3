"""Figures of the learning-unequivariance chapter (``book/learning_unequivariance``), from the tables of
:mod:`equiv.experiments.unequivariance`.

- :func:`training_images`: the glyph and its 90° rotation at each size
  (:func:`~equiv.experiments.unequivariance.image_table`);
- :func:`loss_curves`: the cross-entropy per step, every seed, against the chance level ln 2 (table ``loss``);
- :func:`feature_panels`: the lifted feature map ``f(x)`` beside ``T⁻¹ f(T x)`` at a few steps (table ``panels``).
"""

from __future__ import annotations

from typing import Mapping, Sequence

import matplotlib.pyplot as plt
import pandas as pd
import seaborn as sns

from equiv.figures import VERDICT_COLOURS, WIDTH

__all__ = ["training_images", "loss_curves", "feature_panels"]

_PANELS = ("f(x)", "T^-1 f(Tx)")


def training_images(images: pd.DataFrame, vmax: float | None = None) -> plt.Figure:
    """One panel per (input size, label) of an :func:`~equiv.experiments.unequivariance.image_table`, side by side
    (grey scale from 0 to ``vmax``; None: the largest pixel value)."""
    pairs = list(images.groupby(["input_size", "label"], sort=False))
    top = float(images["value"].max()) if vmax is None else vmax
    fig, axes = plt.subplots(1, len(pairs), figsize=(WIDTH, WIDTH / len(pairs) + 0.5), squeeze=False,
                             layout="constrained")
    for ax, ((n, label), image) in zip(axes[0], pairs):
        ax.imshow(image.pivot(index="row", columns="col", values="value").to_numpy(), cmap="gray_r", vmin=0, vmax=top)
        ax.set_title(f"{n}×{n}, label {label}" + (", rotated 90°" if label else ""), fontsize=10)
        ax.set_xticks([])
        ax.set_yticks([])
        ax.grid(False)
    return fig


def loss_curves(loss: pd.DataFrame, verdicts: Mapping[int, str], chance: float, title: str = "") -> plt.Figure:
    """The loss of every run against the step, coloured by input size (its verdict in ``verdicts``, size →
    ``"exact"`` / ``"approximate"``), with the chance level ``chance`` (ln 2) dashed."""
    fig, ax = plt.subplots(figsize=(WIDTH, 4.2), layout="constrained")
    palette = {n: VERDICT_COLOURS[v] for n, v in verdicts.items()}
    sns.lineplot(data=loss, x="step", y="loss", hue="input_size", units="seed", estimator=None, ax=ax,
                 palette=palette, linewidth=1.3)
    ax.axhline(chance, color="0.2", ls="--", lw=1)
    ax.annotate("ln 2", (loss["step"].max(), chance), xytext=(4, 3), textcoords="offset points", fontsize=9)
    handles, labels = ax.get_legend_handles_labels()
    ax.legend(handles, [f"{n}×{n} ({verdicts[int(n)]})" for n in labels], title="input size")
    ax.set_ylabel("cross-entropy (both images)")
    ax.set_title(title)
    return fig


def feature_panels(panels: pd.DataFrame, sizes: Sequence[int], element: str = "e") -> plt.Figure:
    """The orientation channel ``element`` of ``f(x)`` and of ``T⁻¹ f(T x)``, one row per recorded step and one
    column per (size, panel) for each of ``sizes``; the two panels of one size and step share a colour scale."""
    shown = panels[panels["element"] == element]
    steps = sorted(shown["step"].unique())
    columns = [(n, panel) for n in sizes for panel in _PANELS]
    side = WIDTH / len(columns)
    fig, axes = plt.subplots(len(steps), len(columns), figsize=(WIDTH, side * len(steps) + 0.6), squeeze=False,
                             layout="constrained")
    for i, step in enumerate(steps):
        for j, (n, panel) in enumerate(columns):
            pair = shown[(shown["input_size"] == n) & (shown["step"] == step)]
            image = pair[pair["panel"] == panel].pivot(index="row", columns="col", values="value")
            ax = axes[i, j]
            sns.heatmap(image, ax=ax, cmap="viridis", cbar=False, square=True, xticklabels=False, yticklabels=False,
                        vmin=pair["value"].min(), vmax=pair["value"].max())
            ax.set_xlabel("")
            ax.set_ylabel(f"step {step}" if j == 0 else "")
            if i == 0:
                ax.set_title(f"{n}×{n}: {panel}", fontsize=10)
    return fig

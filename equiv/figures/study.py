"""Figures of the powered rotated-MNIST study (``book/rotmnist_study``): they only read the tables of
:mod:`equiv.study`.

Each function returns a matplotlib ``Figure`` :data:`equiv.figures.WIDTH` inches wide; models are labelled by
:func:`equiv.reference.model_label`.
"""

from __future__ import annotations

from typing import Sequence

import matplotlib.pyplot as plt
import pandas as pd

from equiv.figures import WIDTH
from equiv.reference import model_label

__all__ = ["angle_curves", "validation_curves", "pilot_curves", "long_pilot_curves", "MODEL_STYLE"]

#: one colour per study model, the same on every figure
MODEL_STYLE = {"p4-28": "#1f77b4", "p4-27": "#d62728", "p4-29": "#ff7f0e", "p4-30": "#2ca02c", "z2-28": "#7f7f7f"}
_TITLES = {"upright": "upright", "uniform": "uniform U(0°, 360°)", "normal45_sd20_perbatch": "N(45°, 20°) per batch",
           "normal45_sd40_perbatch": "N(45°, 40°) per batch"}


def _label(model: str) -> str:
    """``"p4-28"`` → ``"P4 exact (28)"`` (:func:`equiv.reference.model_label`)."""
    group, size = model.split("-")
    return model_label(group, int(size))


def angle_curves(accuracy: pd.DataFrame, reference: pd.DataFrame | None, regimes: Sequence[str]) -> plt.Figure:
    """Accuracy against test angle, one panel per regime: ours (solid, mean ± s.d. over runs as a band) and the
    paper's official runs (dashed, mean)."""
    fig, axes = plt.subplots(1, len(regimes), figsize=(WIDTH, 3.6), sharey=True, squeeze=False, layout="constrained")
    for ax, regime in zip(axes[0], regimes):
        ours = accuracy[accuracy["regime"] == regime]
        for model, colour in MODEL_STYLE.items():
            o = ours[ours["model"] == model].groupby("test_angle")["accuracy"].agg(["mean", "std"])
            if len(o):
                ax.plot(o.index, o["mean"], color=colour, lw=1.6, label=f"{_label(model)}, ours")
                ax.fill_between(o.index, o["mean"] - o["std"].fillna(0), o["mean"] + o["std"].fillna(0), color=colour, alpha=0.15)
            if reference is not None:
                p = reference[(reference["regime"] == regime) & (reference["model"] == model)]
                p = p.groupby("test_angle")["accuracy"].mean()
                if len(p):
                    ax.plot(p.index, p.values, color=colour, lw=1.0, ls="--", label=f"{_label(model)}, paper")
        ax.set_title(_TITLES.get(regime, regime), fontsize=10)
        ax.set_xlabel("test angle (°)")
        ax.set_xticks(range(0, 361, 90))
        ax.grid(alpha=0.3)
        if not len(ours):
            ax.text(0.5, 0.5, "not run yet", transform=ax.transAxes, ha="center", va="center", color="0.4")
    axes[0][0].set_ylabel("test accuracy (%)")
    handles, labels = axes[0][0].get_legend_handles_labels()
    for ax in axes[0][1:]:
        h, lab = ax.get_legend_handles_labels()
        for hh, ll in zip(h, lab):
            if ll not in labels:
                handles.append(hh)
                labels.append(ll)
    fig.legend(handles, labels, loc="outside lower center", ncol=5, fontsize=8, frameon=False)
    return fig


def validation_curves(curves: pd.DataFrame, regimes: Sequence[str]) -> plt.Figure:
    """Validation accuracy per epoch of every study run (thin lines), one panel per regime."""
    fig, axes = plt.subplots(1, len(regimes), figsize=(WIDTH, 3.0), sharey=True, squeeze=False, layout="constrained")
    for ax, regime in zip(axes[0], regimes):
        c = curves[curves["regime"] == regime]
        for (model, _fold, _seed), run in c.groupby(["model", "fold", "seed"]):
            ax.plot(run["epoch"], run["val_accuracy"], color=MODEL_STYLE.get(model, "k"), lw=0.6, alpha=0.6)
        ax.set_title(_TITLES.get(regime, regime), fontsize=10)
        ax.set_xlabel("epoch")
        ax.set_ylim(80, 100)
        ax.grid(alpha=0.3)
    axes[0][0].set_ylabel("validation accuracy (%)")
    handles = [plt.Line2D([], [], color=c, label=_label(m)) for m, c in MODEL_STYLE.items()]
    fig.legend(handles=handles, loc="outside lower center", ncol=5, fontsize=8, frameon=False)
    return fig


def _pilot_panel(ax: plt.Axes, pilot: pd.DataFrame, epochs: int, models: Sequence[str] | None = None) -> None:
    for model, c in pilot.groupby("model"):
        if models is not None and model not in models:
            continue
        c = c.sort_values("epoch")
        ax.plot(c["epoch"], c["val_accuracy"], color=MODEL_STYLE.get(model, "k"), lw=0.8, alpha=0.5)
        ax.plot(c["epoch"], c["val_accuracy"].rolling(3).mean(), color=MODEL_STYLE.get(model, "k"), lw=2,
                label=f"{_label(model)} (3-epoch mean)")
    ax.axvline(epochs, color="k", ls=":", label=f"chosen: {epochs} epochs")
    ax.set_xlabel("epoch")
    ax.grid(alpha=0.3)
    ax.legend(fontsize=8, loc="lower right")


def pilot_curves(pilot: pd.DataFrame, epochs: int) -> plt.Figure:
    """The pilot's validation curves, with the chosen epoch count marked."""
    fig, ax = plt.subplots(figsize=(WIDTH, 3.2), layout="constrained")
    _pilot_panel(ax, pilot, epochs)
    ax.set_ylabel("validation accuracy (%)")
    ax.set_ylim(80, 100)
    return fig


def long_pilot_curves(pilot: pd.DataFrame, epochs: int, models: Sequence[tuple[str, Sequence[str]]]) -> plt.Figure:
    """The long arm's pilot: one panel per regime with the validation curves of the models the arm trains there
    (``models``: ``LONG_ARM.models``), and the chosen epoch count marked."""
    fig, axes = plt.subplots(1, len(models), figsize=(WIDTH, 3.4), sharey=True, squeeze=False, layout="constrained")
    for ax, (regime, ms) in zip(axes[0], models):
        _pilot_panel(ax, pilot[pilot["regime"] == regime], epochs, ms)
        ax.set_title(_TITLES.get(regime, regime), fontsize=10)
    axes[0][0].set_ylabel("validation accuracy (%)")
    axes[0][0].set_ylim(60, 100)
    return fig

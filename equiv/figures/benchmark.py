"""Figures of the benchmark-protocol chapter (``book/benchmark_protocol``).

- :func:`rotation_bars`: test accuracy per test rotation, per model, from the ``accuracy`` table of
  :func:`equiv.experiments.benchmark.classification_benchmark` labelled by :func:`equiv.reference.label_models`.
"""

from __future__ import annotations

import matplotlib.pyplot as plt
import pandas as pd
import seaborn as sns

from equiv.figures import WIDTH

__all__ = ["rotation_bars"]


def _model_order(models: pd.Series) -> list[str]:
    """Legend order: by group, exact before approximate."""
    return sorted(set(models), key=lambda m: (m.split()[0], "approx" in m, m))


def rotation_bars(per_rotation: pd.DataFrame) -> plt.Figure:
    """One panel per training augmentation (column ``augment``): bars of the mean accuracy per test rotation and
    model (column ``model``), with ± one standard deviation over seeds."""
    augments = list(dict.fromkeys(per_rotation["augment"]))
    order = _model_order(per_rotation["model"])
    fig, axes = plt.subplots(1, len(augments), figsize=(WIDTH, 4.2), sharey=True, squeeze=False, layout="constrained")
    for i, (ax, augment) in enumerate(zip(axes[0], augments)):
        sns.barplot(data=per_rotation[per_rotation["augment"] == augment], x="test_rotation", y="accuracy",
                    hue="model", hue_order=order, errorbar="sd", ax=ax, legend=i == 0)
        ax.set(xlabel="test rotation (degrees)", ylabel="test accuracy (%)",
               title=f"training augmentation: {augment}")
    handles, labels = axes[0][0].get_legend_handles_labels()
    if axes[0][0].get_legend() is not None:
        axes[0][0].get_legend().remove()
    fig.legend(handles, labels, title="model", loc="outside right upper", frameon=False)
    return fig

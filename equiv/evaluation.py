"""Evaluation protocols of the paper, stated unambiguously.

- :func:`upright_accuracy`: top-1 accuracy on the test set as it is.
- :func:`rotation_sweep`: accuracy at each of 36 test angles (0°, 10°, …, 350°) — see
  :func:`equiv.metrics.accuracy_vs_rotation` for the rotation itself (exact at right angles, bilinear
  with the data's true background otherwise).
- :func:`rot90_protocol`: the "seen / unseen" protocol of the classification benchmarks. *Seen* is the
  upright (0°) accuracy. *Unseen* is reported both ways, because the official code's number included
  the 0° copy: ``unseen_incl0`` = mean over the test set and its 90°, 180°, 270° copies (the official
  definition) and ``unseen_excl0`` = mean over the three rotated copies only.
"""

from __future__ import annotations

import math
from typing import Sequence

import pandas as pd
import torch
from torch import nn

from equiv.metrics import accuracy_vs_rotation

__all__ = ["TEST_ANGLES", "upright_accuracy", "rotation_sweep", "rot90_protocol", "summarize_sweep", "contrast_numbers"]

#: The 36 test angles of the rotated-MNIST experiment.
TEST_ANGLES: tuple[int, ...] = tuple(range(0, 360, 10))


def upright_accuracy(model: nn.Module, images: torch.Tensor, labels: torch.Tensor, **kwargs) -> float:
    """Top-1 accuracy (percent) on the unrotated images."""
    return float(accuracy_vs_rotation(model, images, labels, [0], **kwargs)["accuracy"].iloc[0])


def rotation_sweep(model: nn.Module, images: torch.Tensor, labels: torch.Tensor, fill,
                   angles: Sequence[float] = TEST_ANGLES, **kwargs) -> pd.DataFrame:
    """Accuracy at every test angle: a tidy frame with ``angle``, ``accuracy``, ``correct``, ``n``."""
    return accuracy_vs_rotation(model, images, labels, angles, fill, **kwargs)


def summarize_sweep(sweep: pd.DataFrame) -> dict[str, float]:
    """The three numbers of the paper's table from a sweep: accuracy at 0°, mean over 0/90/180/270°, and
    mean over all angles of the sweep (36 in the paper)."""
    by_angle = sweep.set_index(sweep["angle"].astype(float) % 360)["accuracy"]
    right = [a for a in (0.0, 90.0, 180.0, 270.0) if a in by_angle.index]
    if 0.0 not in by_angle.index or len(right) < 4:
        raise ValueError(f"the sweep must contain 0, 90, 180 and 270 degrees, got {sorted(by_angle.index)}")
    return {"acc_0": float(by_angle[0.0]), "acc_right_angles": float(by_angle[right].mean()),
            "acc_all_angles": float(by_angle.mean())}


def rot90_protocol(model: nn.Module, images: torch.Tensor, labels: torch.Tensor, **kwargs) -> dict[str, float]:
    """Seen / unseen accuracies under exact 90° rotations (no interpolation, no fill needed)."""
    frame = accuracy_vs_rotation(model, images, labels, [0, 90, 180, 270], **kwargs)
    acc = frame["accuracy"].tolist()
    return {"seen": acc[0], "unseen_incl0": sum(acc) / 4, "unseen_excl0": sum(acc[1:]) / 3,
            "acc_90": acc[1], "acc_180": acc[2], "acc_270": acc[3]}


def contrast_numbers(contrasts: pd.DataFrame, means: Sequence[str], minima: Sequence[str] = (),
                     prefix: str = "") -> dict[str, float]:
    """The key numbers of a table of exact-against-approximate contrasts (one row per approximate size, group, …;
    e.g. :func:`equiv.claims.rotmnist_contrasts`, :func:`equiv.claims.benchmark_contrasts`).

    ``<prefix><column>``: the mean over the rows of each column of ``means``; ``<prefix><column>_min``: the
    smallest value of each column of ``minima`` (the smallest gap). Every number is NaN for an empty table (which
    may lack the columns: the extractors return a bare empty frame when there is nothing to contrast).
    """
    empty = contrasts.empty
    missing = [c for c in (*means, *minima) if c not in contrasts.columns]
    if missing and not empty:
        raise ValueError(f"contrast table lacks column(s) {', '.join(missing)}; it has {', '.join(contrasts.columns)}")
    numbers = {f"{prefix}{c}": math.nan if empty else float(contrasts[c].mean()) for c in means}
    numbers.update({f"{prefix}{c}_min": math.nan if empty else float(contrasts[c].min()) for c in minima})
    return numbers

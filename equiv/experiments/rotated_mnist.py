"""Rotated MNIST (claims C3, C4): exact (28) vs approximate (27, 29) P4CNN vs a Z2 CNN, tested at 36 angles.

The model is trained on upright digits (or under a training-rotation regime) resized to the input size,
and tested on the test digits rotated by 0°, 10°, …, 350° — exactly at right angles, bilinearly with the
true background elsewhere. One row per (train rotation, group, input size, seed, test angle), with the
same columns as ``data/reference/rotmnist_official_runs.csv`` so our numbers sit beside the paper's.
"""

from __future__ import annotations

import re
import time
from typing import Any, Mapping, Sequence

import pandas as pd

from equiv.data import mnist
from equiv.claims import rotmnist_contrasts
from equiv.evaluation import TEST_ANGLES, contrast_numbers, rotation_sweep
from equiv.seeds import SEEDS_HELP, is_seed_spec, seed_list
from equiv.experiments.params import Param, check_model_sizes, per_profile, resolve
from equiv.experiments.record import attach
from equiv.experiments.result import ExperimentResult
from equiv.models import build
from equiv.reproducibility import seed_everything
from equiv.train import fit, resolve_device

__all__ = ["SPEC", "rotated_mnist", "parse_config", "CONTRAST_MEANS", "CONTRAST_MINIMA", "contrasts_beside_reference",
           "contrast_key_numbers"]

_CONFIG = re.compile(r"^(z2|p4|p4m)-(\d+)$")
#: training-rotation regimes (names of :func:`equiv.data.regimes.make_regime`); the official code rotated
#: each *batch* by one normal angle, hence the paper profile's ``_perbatch`` variants. The result column
#: ``train_rotation`` drops that suffix so rows line up with the reference CSV; ``regime`` keeps it.
REGIMES = ("upright", "normal45_sd20", "normal45_sd40", "normal45_sd20_perbatch", "normal45_sd40_perbatch",
           "uniform", "uniform_fresh", "rot90")


def parse_config(text: str) -> tuple[str, int]:
    """``"p4-28"`` → ``("p4", 28)``."""
    m = _CONFIG.match(text)
    if not m:
        raise ValueError(f"model config {text!r} must look like 'p4-28' (group z2/p4/p4m, input size)")
    return m.group(1), int(m.group(2))



SPEC = [
    Param("source", "str", per_profile("embedded", "embedded", "full"), "MNIST source", choices=("embedded", "full")),
    Param("root", "str|null", None, "data folder for source='full'"),
    Param("train_size", "int", per_profile(500, 3000, 8000), "training digits", check=lambda v: v >= 10,
          requirement=">= 10"),
    Param("val_size", "int", per_profile(100, 1000, 2000), "validation digits", check=lambda v: v >= 0, requirement=">= 0"),
    Param("test_size", "int", per_profile(300, 500, 60000), "test digits", check=lambda v: v >= 10, requirement=">= 10"),
    Param("configs", "list[str]", per_profile(["p4-27", "p4-28"], ["p4-27", "p4-28", "p4-29", "z2-28"],
                                               ["p4-27", "p4-28", "p4-29", "z2-28"]),
          "models as group-input_size", check=lambda v: all(_CONFIG.match(c) for c in v),
          requirement="strings like 'p4-28' (group z2/p4/p4m, input size)"),
    Param("train_rotations", "list[str]", per_profile(["upright"], ["upright"], ["upright", "normal45_sd20_perbatch",
                                                    "normal45_sd40_perbatch", "uniform"]),
          "training-rotation regimes", choices=REGIMES),
    Param("seeds", "int|list[int]", per_profile([1], [1], 100), "seeds (a count n means 1..n: equiv.seeds)",
          check=is_seed_spec, requirement=SEEDS_HELP),
    Param("epochs", "int", per_profile(2, 5, 50), check=lambda v: v >= 1, requirement=">= 1"),
    Param("batch_size", "int", per_profile(16, 32, 256), "(the paper: 256; smaller batches learn in fewer epochs)", check=lambda v: v >= 1, requirement=">= 1"),
    Param("lr", "float", per_profile(0.003, 0.003, 0.01), "Adam learning rate (the paper: 0.01 at batch 256)", check=lambda v: v > 0,
          requirement="> 0"),
    Param("weight_decay", "float", 1e-5, check=lambda v: v >= 0, requirement=">= 0"),
    Param("step_size", "int", per_profile(10, 2, 10), "StepLR step (epochs)", check=lambda v: v >= 1, requirement=">= 1"),
    Param("gamma", "float", 0.5, "StepLR factor", check=lambda v: 0 < v <= 1, requirement="0 < gamma <= 1"),
    Param("channels_p4", "int", 10, "channels per group element of the P4/P4M models", check=lambda v: v >= 1,
          requirement=">= 1"),
    Param("channels_z2", "int", 20, "channels of the Z2 model", check=lambda v: v >= 1, requirement=">= 1"),
    Param("dropout", "float", 0.3, check=lambda v: 0 <= v < 1, requirement="0 <= dropout < 1"),
    Param("test_angles", "list[float]", per_profile([0, 45, 90, 180, 270], list(TEST_ANGLES), list(TEST_ANGLES))),
    Param("data_seed", "int", 0, "seed of the data split", check=lambda v: v >= 0, requirement=">= 0"),
    Param("device", "str", "auto", "auto, cpu, cuda or cuda:N"),
]


def rotated_mnist(params: Mapping[str, Any] | None = None, *, progress: bool | None = None) -> ExperimentResult:
    """Run the rotated-MNIST experiment; returns tables ``accuracy`` (per angle) and ``training`` (per epoch)."""
    p = resolve(SPEC, params, "rotated_mnist")
    configs = [parse_config(c) for c in p["configs"]]
    check_model_sizes("configs", [(c, g, n) for c, (g, n) in zip(p["configs"], configs)],
                      lambda g: build("p4cnn", group=g, channels=p["channels_z2"] if g == "z2" else p["channels_p4"],
                                      dropout=p["dropout"]))
    dev = resolve_device(p["device"])
    seeds = seed_list(p["seeds"])
    t0 = time.perf_counter()
    kwargs: dict[str, Any] = {"seed": p["data_seed"], "train_size": p["train_size"], "val_size": p["val_size"],
                              "test_size": p["test_size"], "root": p["root"]}
    if p["source"] == "full":
        kwargs["protocol"] = "paper"
    base = mnist(p["source"], **kwargs)
    prepared: dict[int, Any] = {}
    acc_rows: list[dict] = []
    hist_rows: list[dict] = []
    for regime in p["train_rotations"]:
        for group, size in configs:
            if size not in prepared:
                prepared[size] = base.prepared(size, device=dev)
            data = prepared[size]
            planes = p["channels_z2"] if group == "z2" else p["channels_p4"]
            for seed in seeds:
                seed_everything(seed)
                model = build("p4cnn", group=group, channels=planes, dropout=p["dropout"])
                history = fit(model, data, epochs=p["epochs"], lr=p["lr"], weight_decay=p["weight_decay"],
                              schedule={"name": "step", "step_size": p["step_size"], "gamma": p["gamma"]},
                              batch_size=p["batch_size"], seed=seed, device=dev,
                              regime=None if regime == "upright" else regime, progress=progress)
                key = {"train_rotation": regime.replace("_perbatch", ""), "regime": regime, "group": group, "input_size": size, "planes": planes, "seed": seed}
                for row in history.epochs:
                    hist_rows.append({**key, **row})
                sweep = rotation_sweep(model, *data.test, fill=data.fill.to(dev), angles=p["test_angles"])
                for angle, acc, correct, n in sweep[["angle", "accuracy", "correct", "n"]].itertuples(index=False):
                    acc_rows.append({**key, "test_angle": angle, "accuracy": acc, "correct": correct, "n": n,
                                     "val_accuracy": history.last.get("val_accuracy"),
                                     "train_seconds": history.seconds})
    seconds = time.perf_counter() - t0
    meta = {"data": base.metadata()}
    return ExperimentResult(
        accuracy=attach(pd.DataFrame(acc_rows), "rotated_mnist", p, seconds, dev, **meta),
        training=attach(pd.DataFrame(hist_rows), "rotated_mnist", p, seconds, dev, **meta),
    )


# ------------------------------------------------------------------------------------ the chapter's numbers
#: the accuracies of :func:`equiv.claims.rotmnist_contrasts` that the chapter averages over the approximate sizes
CONTRAST_MEANS = ("exact_acc_0", "approx_acc_0", "exact_acc_right", "approx_acc_right", "exact_acc_all",
                  "approx_acc_all")
#: the gaps whose smallest value (over the approximate sizes) the chapter reports
CONTRAST_MINIMA = ("gap_all", "gap_0")


def contrasts_beside_reference(ours: pd.DataFrame, reference: pd.DataFrame, train_rotation: str = "upright",
                               ours_label: str = "ours", reference_label: str = "paper") -> pd.DataFrame:
    """:func:`equiv.claims.rotmnist_contrasts` of our per-angle table and of the reference runs, the reference
    restricted to the approximate sizes we ran (all of them when we have no contrast), stacked with an index
    level ``source``."""
    ours_c = rotmnist_contrasts(ours, train_rotation)
    ref_c = rotmnist_contrasts(reference, train_rotation)
    if len(ours_c):
        ref_c = ref_c[ref_c["approx_size"].isin(ours_c["approx_size"])]
    return pd.concat({ours_label: ours_c, reference_label: ref_c}, names=["source", None])


def contrast_key_numbers(contrasts: pd.DataFrame, sources: Sequence[str] = ("ours", "paper")) -> dict[str, float]:
    """The chapter's key numbers of a :func:`contrasts_beside_reference` table, per source ``s`` of ``sources``:
    ``<s>_<column>`` (mean over the approximate sizes) for :data:`CONTRAST_MEANS` and ``<s>_<gap>_min`` for
    :data:`CONTRAST_MINIMA` (:func:`equiv.evaluation.contrast_numbers`); NaN for a source without contrasts."""
    present = set(contrasts.index.get_level_values("source"))
    numbers: dict[str, float] = {}
    for source in sources:
        part = contrasts.xs(source, level="source") if source in present else contrasts.iloc[0:0]
        numbers.update(contrast_numbers(part, CONTRAST_MEANS, CONTRAST_MINIMA, prefix=f"{source}_"))
    return numbers

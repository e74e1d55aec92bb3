"""The classification-benchmark protocol (claim C4): ResNet-44 P4/P4M at an approximate (32) vs exact (33) size.

Trained on upright images (optionally with random 90° rotations), evaluated by the "seen / unseen"
protocol of :func:`equiv.evaluation.rot90_protocol`: *seen* = upright accuracy; *unseen* = accuracy over
the test set and its 90/180/270° copies, reported both with the 0° copy (the official definition,
``unseen_incl0``) and without it (``unseen_excl0``). Images are resized (CIFAR 32→33 upsampled, as in the
paper). The ``book`` profile runs on the embedded MNIST digits with a narrow network so it fits a CPU;
``paper`` is CIFAR-10 at the official scale.
"""

from __future__ import annotations

import time
from typing import Any, Mapping

import pandas as pd

from equiv.evaluation import contrast_numbers, rot90_protocol
from equiv.seeds import SEEDS_HELP, is_seed_spec, seed_list
from equiv.experiments.params import Param, check_model_sizes, per_profile, resolve
from equiv.experiments.record import attach
from equiv.experiments.result import ExperimentResult
from equiv.models import build
from equiv.models.resnet import RESNET18_WIDTHS, RESNET44_WIDTHS
from equiv.reproducibility import seed_everything
from equiv.train import fit, resolve_device

__all__ = ["SPEC", "classification_benchmark", "load_dataset", "CONTRAST_MEANS", "CONTRAST_MINIMA",
           "contrast_key_numbers"]

DATASETS = ("mnist", "cifar10", "cifar100", "pcam")


SPEC = [
    Param("dataset", "str", per_profile("mnist", "mnist", "cifar10"), "mnist = the embedded digits", choices=DATASETS),
    Param("root", "str|null", None, "data folder for cifar10/cifar100/pcam"),
    Param("model", "str", "resnet44", choices=("resnet44", "resnet18")),
    Param("groups", "list[str]", ["p4", "p4m"], choices=("z2", "p4", "p4m")),
    Param("sizes", "list[int]", per_profile([32, 33], [32, 33], [32, 33]), check=lambda v: min(v) >= 8, requirement="sizes >= 8"),
    Param("width", "int|list[int]", per_profile(2, 2, None), "base width: one int, a list with one per group, or None for "
          "the model's parameter-matched default (ResNet-44: 32/16/12 for z2/p4/p4m)", check=lambda v: (v >= 1) if isinstance(v, int) else min(v) >= 1,
          requirement="widths >= 1"),
    Param("head", "str", "coset", choices=("coset", "flatten")),
    Param("augment", "list[str]", per_profile(["none"], ["none"], ["none", "rot90"]), "training augmentation",
          choices=("none", "rot90")),
    Param("train_size", "int", per_profile(200, 3000, 45000), "training images (capped by the dataset)",
          check=lambda v: v >= 10, requirement=">= 10"),
    Param("test_size", "int", per_profile(200, 1000, 10000), check=lambda v: v >= 10, requirement=">= 10"),
    Param("epochs", "int", per_profile(1, 4, 200), check=lambda v: v >= 1, requirement=">= 1"),
    Param("batch_size", "int", per_profile(32, 16, 256), check=lambda v: v >= 1, requirement=">= 1"),
    Param("lr", "float", per_profile(3e-3, 3e-3, 1e-3), "Adam (one-cycle peak) learning rate", check=lambda v: v > 0, requirement="> 0"),
    Param("weight_decay", "float", 1e-5, check=lambda v: v >= 0, requirement=">= 0"),
    Param("seeds", "int|list[int]", per_profile([1], [1], 3), check=is_seed_spec, requirement=SEEDS_HELP),
    Param("device", "str", "auto"),
]


def load_dataset(name: str, root: str | None, train_size: int, test_size: int, seed: int = 0):
    """The dataset's :class:`equiv.data.ImageSplits` with at most ``train_size``/``test_size`` images."""
    from equiv import data

    if name == "mnist":
        return data.mnist("embedded", seed=seed, train_size=min(train_size, 4000), val_size=0,
                          test_size=min(test_size, 5000 - min(train_size, 4000)))
    if name == "pcam":
        return data.pcam(root, seed=seed, max_samples={"train": train_size, "val": 1, "test": test_size})
    loader = data.cifar10 if name == "cifar10" else data.cifar100
    return loader(root, seed=seed, train_size=train_size)


def classification_benchmark(params: Mapping[str, Any] | None = None, *, progress: bool | None = None) -> ExperimentResult:
    """Train every (group, size, augmentation, seed); tables ``summary`` (seen/unseen) and ``accuracy`` (per 90° rotation)."""
    p = resolve(SPEC, params, "classification_benchmark")
    widths = p["width"] if isinstance(p["width"], list) else [p["width"]] * len(p["groups"])  # None: default
    if len(widths) != len(p["groups"]):
        raise ValueError(f"parameter 'width' lists {len(widths)} widths for {len(p['groups'])} groups; allowed: one int or one per group")
    channels = 1 if p["dataset"] == "mnist" else 3
    check_model_sizes("sizes", [(str(n), g, n) for n in p["sizes"] for g in p["groups"]],
                      lambda g: build(p["model"], group=g, in_channels=channels, width=2, head=p["head"]))
    dev = resolve_device(p["device"])
    seeds = seed_list(p["seeds"])
    t0 = time.perf_counter()
    base = load_dataset(p["dataset"], p["root"], p["train_size"], p["test_size"])
    summary, per_rotation = [], []
    for size in p["sizes"]:
        data = base.prepared(size, device=dev)
        test_x, test_y = data.test[0][: p["test_size"]], data.test[1][: p["test_size"]]
        for group, width in zip(p["groups"], widths):
            for augment in p["augment"]:
                for seed in seeds:
                    seed_everything(seed)
                    options = {"width": width} if width is not None else {}
                    model = build(p["model"], group=group, in_channels=data.channels, num_classes=data.num_classes,
                                  head=p["head"], **options)
                    if width is None:
                        width = (RESNET44_WIDTHS if p["model"] == "resnet44" else RESNET18_WIDTHS)[group]
                    history = fit(model, data, epochs=p["epochs"], lr=p["lr"], weight_decay=p["weight_decay"],
                                  schedule="onecycle", batch_size=p["batch_size"], seed=seed, device=dev,
                                  regime="rot90" if augment == "rot90" else None, evaluate_on=None, progress=progress)
                    proto = rot90_protocol(model, test_x, test_y)
                    key = {"group": group, "input_size": size, "width": width, "augment": augment, "seed": seed,
                           "parameters": sum(t.numel() for t in model.parameters())}
                    summary.append({**key, **{k: proto[k] for k in ("seen", "unseen_incl0", "unseen_excl0")},
                                    "train_accuracy": history.last["train_accuracy"], "train_seconds": history.seconds})
                    for angle in (0, 90, 180, 270):
                        per_rotation.append({**key, "test_rotation": angle,
                                             "accuracy": proto["seen"] if angle == 0 else proto[f"acc_{angle}"]})
    seconds = time.perf_counter() - t0
    meta = {"data": base.metadata()}
    return ExperimentResult(
        summary=attach(pd.DataFrame(summary), "classification_benchmark", p, seconds, dev, **meta),
        accuracy=attach(pd.DataFrame(per_rotation), "classification_benchmark", p, seconds, dev, **meta),
    )


# ------------------------------------------------------------------------------------ the chapter's numbers
#: the accuracies of :func:`equiv.claims.benchmark_contrasts` that the chapter averages over the groups
CONTRAST_MEANS = ("exact_seen", "approx_seen", "exact_unseen_excl0", "approx_unseen_excl0", "exact_unseen_incl0",
                  "approx_unseen_incl0")
#: the gaps whose smallest value (over the groups) the chapter reports
CONTRAST_MINIMA = ("gap_unseen", "gap_seen")


def contrast_key_numbers(contrasts: pd.DataFrame) -> dict[str, float]:
    """The chapter's key numbers of a :func:`equiv.claims.benchmark_contrasts` table: ``<gap>_min`` for
    :data:`CONTRAST_MINIMA` and the mean over the groups of each of :data:`CONTRAST_MEANS`; NaN when empty
    (:func:`equiv.evaluation.contrast_numbers`)."""
    return contrast_numbers(contrasts, CONTRAST_MEANS, CONTRAST_MINIMA)

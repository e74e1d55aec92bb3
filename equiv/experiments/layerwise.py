"""What training does to equivariance (claims C1, C5): layer-wise equivariance error over training.

Exact and approximate P4CNNs are trained on upright MNIST; at initialisation and after every epoch the
equivariance error ``‖out(g·x) − g·out(x)‖ / ‖out(x)‖`` is measured at the output of every layer on a
fixed batch of test digits, in float64 on a copy of the model (so exact layers read ~1e-16, not float32
round-off). One row per (config, epoch, layer, group element).

The chapter's numbers: :func:`per_layer_errors` (the worst error over the group per layer and epoch,
:func:`equiv.metrics.worst_per_layer`) and :func:`summary_numbers` (the key numbers of
:func:`equiv.claims.layerwise_summary`, the table the claims ledger judges).
"""

from __future__ import annotations

import copy
import time
from typing import Any, Mapping

import pandas as pd
import torch

from equiv.data import mnist
from equiv.experiments.params import Param, check_model_sizes, per_profile, resolve
from equiv.experiments.record import attach
from equiv.experiments.result import ExperimentResult
from equiv.experiments.rotated_mnist import _CONFIG, parse_config
from equiv.metrics import layerwise_equivariance, worst_per_layer
from equiv.models import build
from equiv.reproducibility import seed_everything
from equiv.train import fit, resolve_device

__all__ = ["SPEC", "layerwise_equivariance_experiment", "per_layer_errors", "summary_numbers"]

SPEC = [
    Param("configs", "list[str]", ["p4-27", "p4-28", "p4-29"], "models as group-input_size",
          check=lambda v: all(_CONFIG.match(c) for c in v), requirement="strings like 'p4-28'"),
    Param("train_size", "int", per_profile(300, 2000, 8000), check=lambda v: v >= 10, requirement=">= 10"),
    Param("epochs", "int", per_profile(1, 3, 50), check=lambda v: v >= 1, requirement=">= 1"),
    Param("eval_images", "int", per_profile(8, 64, 256), "test digits the errors are measured on",
          check=lambda v: v >= 1, requirement=">= 1"),
    Param("channels", "int", 10, check=lambda v: v >= 1, requirement=">= 1"),
    Param("dropout", "float", 0.3, check=lambda v: 0 <= v < 1, requirement="0 <= dropout < 1"),
    Param("lr", "float", per_profile(0.003, 0.003, 0.01), check=lambda v: v > 0, requirement="> 0"),
    Param("weight_decay", "float", 1e-5, check=lambda v: v >= 0, requirement=">= 0"),
    Param("batch_size", "int", per_profile(32, 32, 256), check=lambda v: v >= 1, requirement=">= 1"),
    Param("seed", "int", 1, check=lambda v: v >= 0, requirement=">= 0"),
    Param("source", "str", per_profile("embedded", "embedded", "full"), choices=("embedded", "full")),
    Param("root", "str|null", None),
    Param("device", "str", "auto"),
]


def _measure(model, x: torch.Tensor, group: str) -> pd.DataFrame:
    probe = copy.deepcopy(model).cpu().double().eval()
    return layerwise_equivariance(probe, x.cpu().double(), "p4m" if group == "p4m" else "p4")


def layerwise_equivariance_experiment(params: Mapping[str, Any] | None = None, *,
                                      progress: bool | None = None) -> ExperimentResult:
    """Train each config and record per-layer errors at init and after every epoch; table ``errors``."""
    p = resolve(SPEC, params, "layerwise_equivariance")
    check_model_sizes("configs", [(c, *parse_config(c)) for c in p["configs"]],
                      lambda g: build("p4cnn", group=g, channels=p["channels"], dropout=p["dropout"]))
    dev = resolve_device(p["device"])
    t0 = time.perf_counter()
    kwargs: dict[str, Any] = {"seed": 0, "train_size": p["train_size"], "val_size": 0 if p["source"] == "embedded" else 2000,
                              "test_size": max(p["eval_images"], 10), "root": p["root"]}
    if p["source"] == "full":
        kwargs["protocol"] = "paper"
    base = mnist(p["source"], **kwargs)
    rows: list[dict] = []
    for config in p["configs"]:
        group, size = parse_config(config)
        data = base.prepared(size, device=dev)
        x = data.test[0][: p["eval_images"]]
        seed_everything(p["seed"])
        model = build("p4cnn", group=group, channels=p["channels"], dropout=p["dropout"])
        key = {"config": config, "group": group, "input_size": size}

        def record(epoch: int, m) -> None:
            frame = _measure(m, x, group)
            for r in frame.to_dict("records"):
                rows.append({**key, "epoch": epoch, **{k: r[k] for k in ("order", "layer", "module", "element", "error")}})

        record(0, model)
        fit(model, data, epochs=p["epochs"], lr=p["lr"], weight_decay=p["weight_decay"], schedule="constant",
            batch_size=p["batch_size"], seed=p["seed"], device=dev, evaluate_on=None, progress=progress,
            on_epoch_end=record)
    seconds = time.perf_counter() - t0
    return ExperimentResult(errors=attach(pd.DataFrame(rows), "layerwise_equivariance", p, seconds, dev))


# ------------------------------------------------------------------------------------ the chapter's numbers
def per_layer_errors(errors: pd.DataFrame) -> pd.DataFrame:
    """The largest error over the group's elements per (``config``, ``epoch``, ``order``, ``layer``) of an
    ``errors`` table (:func:`equiv.metrics.worst_per_layer`); columns those four and ``error``."""
    return worst_per_layer(errors, ["config", "epoch", "order", "layer"])


def summary_numbers(summary: pd.DataFrame) -> dict[str, Any]:
    """The key numbers of a :func:`equiv.claims.layerwise_summary` table.

    ``exact_max`` (the exact configurations' largest error, any layer, any epoch), over the approximate ones
    ``before_break_max`` (largest error before the first break), ``break_error_min`` (smallest error at the
    first break), ``output_init_max`` / ``output_final_max`` (largest output error at initialisation / after
    the last epoch), ``output_ratio_min`` / ``output_ratio_max`` (output error after training over at
    initialisation) — NaN where there is no such configuration — and ``break_layer`` (the first breaking
    layers, comma-separated; ``"none"``).
    """
    missing = [c for c in ("exact", "max_all_epochs", "max_before_break", "first_break_error", "first_break",
                           "output_init", "output_final") if c not in summary.columns]
    if missing:
        raise ValueError(f"layer-wise summary lacks column(s) {', '.join(missing)}")
    exact, approx = summary[summary["exact"]], summary[~summary["exact"]]
    ratio = approx["output_final"] / approx["output_init"]
    return {"exact_max": float(exact["max_all_epochs"].max()),
            "before_break_max": float(approx["max_before_break"].max()),
            "break_error_min": float(approx["first_break_error"].min()),
            "output_init_max": float(approx["output_init"].max()),
            "output_final_max": float(approx["output_final"].max()),
            "output_ratio_min": float(ratio.min()),
            "output_ratio_max": float(ratio.max()),
            "break_layer": ", ".join(approx["first_break"].dropna().unique()) or "none"}

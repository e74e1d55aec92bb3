"""Learning unequivariance (claim C5): one strided P4 layer learns to tell an image from its 90° rotation.

Two training images — an asymmetric glyph ``x`` (a hard-edged bitmap with raw 8-bit intensities, 0 and
255, by default) and ``rot90(x)`` — with labels 0 and 1, and the
14-parameter ``unequivariance_probe`` (P4ConvZ2 3×3/s2/p1 → spatial mean → max over rotations →
Linear(1, 2)). At an exact size (33) the network is invariant, so both images get identical logits and
the loss can never fall below ln 2; at an approximate size (32) the stride-2 grid is asymmetric and the
network learns to separate them. Tables: ``loss`` (per step and size) and ``panels`` (the lifted feature
map ``f(x)`` next to ``T⁻¹ f(T x)`` at a few steps, one row per pixel, for the figure).
"""

from __future__ import annotations

import math
import time
from typing import Any, Mapping

import pandas as pd
import torch
import torch.nn.functional as F

from equiv.seeds import SEEDS_HELP, is_seed_spec, seed_list
from equiv.experiments.params import PROFILES, Param, check_model_sizes, resolve
from equiv.experiments.record import attach
from equiv.experiments.result import ExperimentResult
from equiv.glyphs import GLYPHS, glyph
from equiv.groups import P4
from equiv.models import build
from equiv.reproducibility import seed_everything

__all__ = ["SPEC", "learning_unequivariance"]

SPEC = [
    Param("sizes", "list[int]", [32, 33], "input sizes (32 approximate, 33 exact)", check=lambda v: min(v) >= 8,
          requirement="sizes >= 8"),
    Param("glyph", "str", "R", "the asymmetric training image", choices=tuple(GLYPHS)),
    Param("intensity", "float", 255.0, "pixel value of the glyph on a 0 background (255: raw 8-bit pixels, no "
          "normalisation; small scales make the lattice differences tiny and learning slow)", check=lambda v: v > 0,
          requirement="> 0"),
    Param("antialias", "bool", False, "4x4-supersampled edges instead of a hard bitmap"),
    Param("steps", "int", dict(zip(PROFILES, (150, 800, 800))), "full-batch SGD steps", check=lambda v: v >= 1,
          requirement=">= 1"),
    Param("lr", "float", 1e-3, check=lambda v: v > 0, requirement="> 0"),
    Param("momentum", "float", 0.9, check=lambda v: 0 <= v < 1, requirement="0 <= momentum < 1"),
    Param("seeds", "int|list[int]", dict(zip(PROFILES, ([0], [0, 1, 2], 10))), "seeds (a count n means 1..n: equiv.seeds)",
          check=is_seed_spec, requirement=SEEDS_HELP),
    Param("panel_steps", "list[int]", dict(zip(PROFILES, ([0, 150], [0, 100, 800], [0, 100, 800]))),
          "steps at which feature-map panels are recorded (seed = first seed)"),
]


def _panel_rows(model, x: torch.Tensor, size: int, step: int) -> list[dict]:
    """f(x) and T⁻¹f(Tx) of the lifting layer (4 orientation channels) for the first training image."""
    conv = model.conv if hasattr(model, "conv") else next(m for m in model.modules() if hasattr(m, "transformed_weight"))
    rows = []
    with torch.no_grad():
        fx = conv(x[:1])[0, 0]  # (4, h, w)
        r, r_inv = P4.elements[1], P4.inverse(P4.elements[1])
        back = P4.act_on_group_map(r_inv, conv(P4.act_on_image(r, x[:1])))[0, 0]
        for kind, t in (("f(x)", fx), ("T^-1 f(Tx)", back)):
            for g in range(t.shape[0]):
                for (i, j), v in zip(((i, j) for i in range(t.shape[1]) for j in range(t.shape[2])), t[g].flatten().tolist()):
                    rows.append({"input_size": size, "step": step, "panel": kind, "element": P4.elements[g].name,
                                 "row": i, "col": j, "value": v})
    return rows


def learning_unequivariance(params: Mapping[str, Any] | None = None) -> ExperimentResult:
    """Train the probe at each size and seed; returns tables ``loss`` and ``panels``."""
    p = resolve(SPEC, params, "learning_unequivariance")
    check_model_sizes("sizes", [(str(n), "p4", n) for n in p["sizes"]], lambda g: build("unequivariance_probe"))
    seeds = seed_list(p["seeds"])
    t0 = time.perf_counter()
    loss_rows, panel_rows = [], []
    for size in p["sizes"]:
        img = glyph(p["glyph"], size, supersample=4 if p["antialias"] else 1).float() * p["intensity"]
        x = torch.cat([img, torch.rot90(img, 1, dims=(-2, -1))])
        y = torch.tensor([0, 1])
        for seed in seeds:
            seed_everything(seed)
            model = build("unequivariance_probe")
            opt = torch.optim.SGD(model.parameters(), lr=p["lr"], momentum=p["momentum"])
            for step in range(p["steps"] + 1):
                logits = model(x)
                loss = F.cross_entropy(logits, y)
                gap = (logits[0] - logits[1]).abs().max().item()
                if step % max(1, p["steps"] // 200) == 0 or step == p["steps"]:
                    loss_rows.append({"input_size": size, "seed": seed, "step": step, "loss": loss.item(),
                                      "logit_gap": gap, "accuracy": 100.0 * (logits.argmax(1) == y).float().mean().item()})
                if seed == seeds[0] and step in p["panel_steps"]:
                    panel_rows.extend(_panel_rows(model, x, size, step))
                if step == p["steps"]:
                    break
                opt.zero_grad()
                loss.backward()
                opt.step()
    seconds = time.perf_counter() - t0
    extra = {"ln2": math.log(2)}
    return ExperimentResult(
        loss=attach(pd.DataFrame(loss_rows), "learning_unequivariance", p, seconds, "cpu", **extra),
        panels=attach(pd.DataFrame(panel_rows), "learning_unequivariance", p, seconds, "cpu", **extra),
    )

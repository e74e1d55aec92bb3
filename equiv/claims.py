"""The claims ledger: every claim C1–C5 of the paper, the evidence for it, and a verdict by a stated rule.

One row per piece of evidence (:data:`EVIDENCE`): the claim, the experiment and the book chapter that show
it, the paper's value where one is known, ours, the profile that produced ours, the rule, what the rule
says at the scale that was run, and the verdict. The rules are fixed here, before any number is seen,
and printed in the ledger; :func:`rules_text` lists them.

Verdicts:

- ``reproduced`` / ``not reproduced``: the rule holds / fails on results that can carry it (``Evidence.needs``:
  structural checks need any profile, the probe and training-dynamics checks a real training run (``book``);
  the rotated-MNIST accuracy rows C3/C4 are judged by the data, never by a profile label: :func:`data_gate`
  applies the study's gates (seeds per model, test digits per run, an accuracy floor), so a run labelled
  ``paper`` with 400 digits, 2 seeds or models at chance gets ``not enough data`` or ``undecided``);
- the rows ``S-*`` come from the powered rotated-MNIST study (:mod:`equiv.study`, committed runs): each has its
  own rule object (text and code together), paired statistics and a verdict that needs measured power;
- ``not yet run at <scale> scale``: only smaller results exist; the column ``at_this_scale`` still says
  what the rule gives on them (a hint, not a verdict);
- ``undecided``: the results at the needed scale cannot decide the rule (e.g. a single seed where the
  rule compares with the seeds' noise);
- ``no data``: the experiment's table is missing or lacks the models the rule compares.

Noise: for a difference of two seed-averaged numbers, ``SE = sqrt(s1²/n1 + s2²/n2)`` with sample standard
deviations (``ddof=1``) over seeds; "more than the seeds' noise" means more than ``K_NOISE · SE``.
Exactness of a configuration (which sizes are exact) comes from :func:`equiv.exactness.check`, not from
a hand-written list.

The helpers that extract the evidence (:func:`rotmnist_contrasts`, :func:`layerwise_summary`,
:func:`benchmark_contrasts`, :func:`probe_summary`) are what the chapters use for their own numbers, so
the ledger and the chapters compute every number the same way.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from functools import lru_cache
from typing import Any, Callable, Mapping

import pandas as pd

from equiv import reference as ref
from equiv.metrics import worst_per_layer
from equiv.tolerances import ACCURACY_DECIMALS, BROKEN_MIN, EXACT_TOL

__all__ = [
    "CLAIMS",
    "EVIDENCE",
    "Evidence",
    "TABLES",
    "K_NOISE",
    "EXACT_TOL",
    "BROKEN_MIN",
    "PROBE_MARGIN",
    "PROBE_GAP_TOL",
    "is_exact",
    "right_angle_spreads",
    "exact_identical_at_right_angles",
    "profile_of",
    "describe_scale",
    "rotmnist_contrasts",
    "layerwise_summary",
    "benchmark_contrasts",
    "probe_summary",
    "gather_results",
    "claims_ledger",
    "ledger_rows",
    "verdict_texts",
    "styled",
    "CHAPTER_COLUMNS",
    "rules_text",
    "data_gate",
    "study_judgements",
    "STUDY_KEY",
]

#: the claims of the paper's abstract
CLAIMS = {
    "C1": "Subsampling (strided convolution, pooling) can break the equivariance of group-equivariant CNNs.",
    "C2": "Changing the input size by one pixel flips an architecture between exactly and approximately equivariant.",
    "C3": "Approximately equivariant networks generalise worse to unseen symmetries (trained upright, tested "
          "rotated) than exactly equivariant ones.",
    "C4": "When the data's symmetries differ from the network's, approximately equivariant networks relax their "
          "constraint and match or beat exact ones on the upright test set.",
    "C5": "A network learns to exploit the broken symmetry: a strided P4 layer can tell an image from its 90° "
          "rotation, which an exactly invariant network cannot.",
}

K_NOISE = 2.0  #: "more than the seeds' noise" = more than K_NOISE standard errors of the difference
PROBE_MARGIN = 0.1  #: C5 probe: the approximate loss must end this far below ln 2
PROBE_GAP_TOL = 1e-5  #: C5 probe: float32 logits of x and rot90(x) this close count as identical
#: the table of each experiment's result that the evidence reads
TABLES = {"rotated_mnist": "accuracy", "layerwise_equivariance": "errors", "classification_benchmark": "summary",
          "learning_unequivariance": "loss", "architectures": "verdicts"}
_MODEL = {"rotated_mnist": "p4cnn", "layerwise_equivariance": "p4cnn", "classification_benchmark": "resnet44"}
_RANK = {"smoke": 0, "book": 1, "paper": 2}
#: the key of ``claims_ledger``'s ``results`` under which the study's judged rules arrive (:func:`equiv.study.judge_all`)
STUDY_KEY = "rotmnist_study"
STUDY_SCALE = "5-fold cross-validation of the 5,000 embedded digits, paired models, committed runs"


@dataclass(frozen=True)
class Evidence:
    """One row of the ledger: which claim, from which experiment, shown in which chapter, judged by which rule."""

    id: str
    claim: str
    experiment: str
    chapter: str | None  # the book page (notebook name) showing it; None: not a page of this part
    what: str
    needs: str  # the smallest profile whose results can give a verdict, or "data": the study's gates decide (data_gate)
    rule: str
    paper: str  # the paper's value, in words, when it is not computed from the reference runs


_SE = f"{K_NOISE:g}·SE (SE = √(s₁²/n₁ + s₂²/n₂), sample s.d. over seeds)"

EVIDENCE: tuple[Evidence, ...] = (
    Evidence("C1-layers", "C1", "layerwise_equivariance", "training_dynamics",
             "layer-wise equivariance error of P4CNNs at initialisation (float64)", "smoke",
             f"At initialisation, in every P4 config every layer before the first one with error > {EXACT_TOL:g} "
             f"is exact (≤ {EXACT_TOL:g}); in every approximate config (exactness predictor) that first layer is "
             f"one the predictor names as breaking (a subsampling layer) and its error is ≥ {BROKEN_MIN:g}; "
             f"in every exact config no layer exceeds {EXACT_TOL:g}.",
             "odd sizes break at the 2×2/s2 max-pool; stride-1 layers never break (theory)"),
    Evidence("C2-layers", "C2", "layerwise_equivariance", "training_dynamics",
             "output equivariance error at initialisation, sizes one pixel apart", "smoke",
             f"At initialisation the network output's error is ≤ {EXACT_TOL:g} at every size the predictor calls "
             f"exact and ≥ {BROKEN_MIN:g} at every size it calls approximate, with an exact and an approximate "
             "size one pixel apart.",
             "P4CNN exact at 28, approximate at 27 and 29 (theory)"),
    Evidence("C2-mnist", "C2", "rotated_mnist", "rotated_mnist",
             "trained P4CNNs: accuracy at 0°, 90°, 180°, 270°", "smoke",
             "For every seed and training regime, the exact P4 model's test accuracies at 0°, 90°, 180° and 270° "
             f"are identical (spread 0 after rounding to {10.0 ** -ACCURACY_DECIMALS:g}) and every approximate P4 model's are not (spread > 0).",
             ""),
    Evidence("C2-architectures", "C2", "architectures", "architectures",
             "P4CNN, ResNet-44, ResNet-18 and torchvision ResNet-18 over P4: predictor verdicts over input sizes, "
             "layer-wise errors at initialisation (float64)", "smoke",
             "For every architecture of the table (all four must be present): the predictor's verdict at every "
             "checked size is the paper's (P4CNN exact iff N even; ResNet-44 iff N ≡ 1 (mod 4); ResNet-18 iff "
             "N ≡ 1 (mod 8); torchvision ResNet-18 iff N ≡ 1 (mod 32)), some exact and some approximate size are "
             f"one pixel apart, and at the measured pair the network's largest layer error is ≤ {EXACT_TOL:g} at "
             f"the exact size for every backend and ≥ {BROKEN_MIN:g} at the approximate size for every backend.",
             "P4CNN exact at 28, ResNet-44 and ResNet-18 at 33 (not CIFAR's 32), torchvision ResNet-18 at 225 "
             "(not 224) (theory)"),
    Evidence("C3-mnist", "C3", "rotated_mnist", "rotated_mnist",
             "rotated MNIST, upright training: mean accuracy over all test angles", "data",
             "Upright training; for each approximate P4 size s: mean over seeds of the accuracy over all test angles "
             f"of exact P4 minus that of P4-s > {_SE}, and P4-s's upright accuracy ≥ exact P4's − {K_NOISE:g}·SE "
             "(the approximate model is not simply a worse model).",
             ""),
    Evidence("C3-benchmark", "C3", "classification_benchmark", "benchmark_protocol",
             "ResNet-44 seen/unseen protocol: unseen accuracy without the 0° copy", "paper",
             f"No augmentation; for P4 and P4M: mean unseen_excl0 at the exact size minus at the approximate size "
             f"> {_SE}.",
             "no numbers available (the official code has no logged benchmark results)"),
    Evidence("C4-mnist", "C4", "rotated_mnist", "rotated_mnist",
             "rotated MNIST, upright training: upright test accuracy", "data",
             f"Upright training; for each approximate P4 size s: mean upright accuracy of P4-s ≥ that of exact P4 − "
             f"{_SE} (matches or beats; it beats when the difference exceeds +{K_NOISE:g}·SE).",
             ""),
    Evidence("C4-benchmark", "C4", "classification_benchmark", "benchmark_protocol",
             "ResNet-44 seen/unseen protocol: seen (upright) accuracy", "paper",
             f"No augmentation; for P4 and P4M: mean seen accuracy at the approximate size ≥ at the exact size − "
             f"{_SE}.",
             "no numbers available (the official code has no logged benchmark results)"),
    Evidence("C5-probe", "C5", "learning_unequivariance", "learning_unequivariance",
             "14-parameter strided P4 probe trained to tell x from rot90(x)", "book",
             f"For every seed: at the approximate size the final loss is < ln 2 − {PROBE_MARGIN:g}; at the exact size "
             f"the logits of x and rot90(x) differ by ≤ {PROBE_GAP_TOL:g} at every recorded step and the loss never "
             f"falls below ln 2 − {PROBE_GAP_TOL:g}.",
             "loss 0.70 → ≈0.09 at 32 in ~800 steps (official notebook; no 33 control)"),
    Evidence("C5-layers", "C5", "layerwise_equivariance", "training_dynamics",
             "output equivariance error before and after training", "book",
             f"For every approximate config the output error after the last epoch exceeds the error at "
             f"initialisation (training amplifies the broken symmetry), while every exact config stays ≤ {EXACT_TOL:g} "
             "at every epoch.",
             "not reported"),
)


# ------------------------------------------------------------------------------------------------ helpers
@lru_cache(maxsize=64)
def is_exact(group: str, input_size: int, model: str = "p4cnn") -> bool:
    """Whether ``model`` over ``group`` is exactly equivariant at ``input_size`` (:func:`equiv.exactness.check`);
    ``z2`` models have no rotation symmetry to keep: False."""
    if group == "z2":
        return False
    from equiv.exactness import check
    from equiv.models import build

    return bool(check(build(model, group=group), int(input_size), group).exact)


def _params(table: pd.DataFrame) -> dict:
    return dict(table.attrs.get("params") or {})


def _column_value(table: pd.DataFrame, column: str) -> Any:
    if column in table.columns:
        values = table[column].dropna().unique()
        if len(values) == 1:
            return values[0]
    return None


def profile_of(table: pd.DataFrame) -> str:
    """The profile that produced ``table``: its params, else its ``resolved_profile`` / ``profile`` column (a
    collected table), else ``attrs['profile']`` (the profile its file name claims)."""
    for value in (_params(table).get("profile"), _column_value(table, "resolved_profile"),
                  _column_value(table, "profile"), table.attrs.get("profile")):
        if isinstance(value, str) and value:
            return value
    return "unknown"


def _seeds(table: pd.DataFrame) -> int:
    return int(table["seed"].nunique()) if "seed" in table.columns else 1


def describe_scale(experiment: str, table: pd.DataFrame) -> str:
    """One line on how big the run behind ``table`` was (profile, seeds, data, epochs); for a table collected
    from several batch runs (``run_id`` and ``scale`` columns), their number, the seeds in all and each run's scale."""
    if "scale" in table.columns:
        scales = " | ".join(dict.fromkeys(str(v) for v in table["scale"].dropna()))
        if "run_id" in table.columns:
            return f"{table['run_id'].nunique()} run(s), {_seeds(table)} seed(s) in all; per run: {scales}"
        return scales
    p = _params(table)
    prof = profile_of(table)
    if experiment == "rotated_mnist":
        return (f"{prof}: {_seeds(table)} seed(s), {p.get('train_size')} training digits ({p.get('source')} MNIST), "
                f"{p.get('epochs')} epochs, {p.get('test_size')} test digits, {len(p.get('test_angles') or [])} test angles")
    if experiment == "layerwise_equivariance":
        return (f"{prof}: seed {p.get('seed')}, {p.get('train_size')} training digits ({p.get('source')} MNIST), "
                f"{p.get('epochs')} epochs, errors on {p.get('eval_images')} test digits")
    if experiment == "classification_benchmark":
        return (f"{prof}: {_seeds(table)} seed(s), {p.get('dataset')} ({p.get('train_size')} training images), "
                f"{p.get('model')} width {p.get('width')}, {p.get('epochs')} epochs")
    if experiment == "learning_unequivariance":
        return f"{prof}: {_seeds(table)} seed(s), {p.get('steps')} SGD steps, glyph {p.get('glyph')!r}"
    if experiment == "architectures":
        width = p.get("width") or "each model's default"
        backends = ", ".join(p.get("backends") or [])
        return (f"{prof}: {len(p.get('architectures') or [])} architecture(s), {len(table)} (architecture, size) "
                f"verdicts, width {width}, {p.get('batch')} random image(s), backends {backends}")
    return prof


def _diff(a: pd.Series, b: pd.Series) -> tuple[float, float]:
    """mean(a) − mean(b) and its standard error (NaN with fewer than two seeds on either side)."""
    a, b = a.astype(float), b.astype(float)
    if len(a) < 2 or len(b) < 2:
        se = math.nan
    else:
        se = math.sqrt(a.var(ddof=1) / len(a) + b.var(ddof=1) / len(b))
    return float(a.mean() - b.mean()), se


# --------------------------------------------------------------------------------- evidence extractors
def rotmnist_contrasts(frame: pd.DataFrame, train_rotation: str = "upright") -> pd.DataFrame:
    """Exact P4 vs each approximate P4 size in a per-angle rotated-MNIST table (ours or the reference).

    One row per approximate size: the seed means of both models for ``acc_0``, ``acc_right_angles`` and
    ``acc_all_angles``, the
    differences ``gap_all = exact − approx`` (C3) and ``gap_0 = approx − exact`` (C4) with their standard
    errors, and the seed counts. Empty when the table lacks an exact or an approximate P4 model.
    """
    runs = ref.per_run_summary(frame)
    runs = runs[(runs["train_rotation"] == train_rotation) & (runs["group"] == "p4")]
    sizes = sorted(int(s) for s in runs["input_size"].unique())
    exact = [s for s in sizes if is_exact("p4", s)]
    approx = [s for s in sizes if not is_exact("p4", s)]
    rows = []
    if exact:
        e = runs[runs["input_size"] == exact[0]]
        for s in approx:
            a = runs[runs["input_size"] == s]
            gap_all, se_all = _diff(e["acc_all_angles"], a["acc_all_angles"])
            gap_0, se_0 = _diff(a["acc_0"], e["acc_0"])
            rows.append({"exact_size": exact[0], "approx_size": s, "n_exact": len(e), "n_approx": len(a),
                         "exact_acc_0": e["acc_0"].mean(), "approx_acc_0": a["acc_0"].mean(),
                         "exact_acc_right": e["acc_right_angles"].mean(), "approx_acc_right": a["acc_right_angles"].mean(),
                         "exact_acc_all": e["acc_all_angles"].mean(), "approx_acc_all": a["acc_all_angles"].mean(),
                         "n_angles": int(runs["n_angles"].min()),
                         "gap_all": gap_all, "se_all": se_all, "gap_0": gap_0, "se_0": se_0})
    return pd.DataFrame(rows, columns=["exact_size", "approx_size", "n_exact", "n_approx", "exact_acc_0",
                                       "approx_acc_0", "exact_acc_right", "approx_acc_right", "exact_acc_all",
                                       "approx_acc_all", "n_angles", "gap_all", "se_all", "gap_0", "se_0"])


def layerwise_summary(errors: pd.DataFrame) -> pd.DataFrame:
    """Per config of a ``layerwise_equivariance`` errors table (error = max over group elements):

    ``exact`` (predictor), ``breaking`` (the predictor's breaking layers), ``first_break`` (first layer in
    forward order whose error at init exceeds :data:`EXACT_TOL`), ``first_break_error``,
    ``max_before_break`` (largest error at init before it), ``max_all_epochs`` (largest error over
    every layer and epoch), ``output_init`` / ``output_final`` (the network output's error at init and after
    the last epoch) and ``final_epoch``.
    """
    need = ("config", "group", "input_size", "epoch", "order", "layer", "error")
    missing = [c for c in need if c not in errors.columns]
    if missing:
        raise ValueError(f"layer-wise errors table lacks column(s) {', '.join(missing)}")
    rows = []
    per = worst_per_layer(errors, ["config", "group", "input_size", "epoch", "order", "layer"])
    for (config, group, size), frame in per.groupby(["config", "group", "input_size"], sort=True):
        init = frame[frame["epoch"] == 0].sort_values("order")
        last_epoch = int(frame["epoch"].max())
        final = frame[frame["epoch"] == last_epoch].sort_values("order")
        above = init[init["error"] > EXACT_TOL]
        first = above.iloc[0] if len(above) else None
        before = init[init["order"] < first["order"]] if first is not None else init
        breaking = ()
        if group != "z2":
            from equiv.exactness import check
            from equiv.models import build

            breaking = tuple(op.layer for op in check(build("p4cnn", group=group), int(size), group).breaking)
        rows.append({"config": config, "group": group, "input_size": int(size), "exact": is_exact(group, int(size)),
                     "breaking": " ".join(breaking),
                     "first_break": first["layer"] if first is not None else None,
                     "first_break_error": float(first["error"]) if first is not None else math.nan,
                     "max_before_break": float(before["error"].max()) if len(before) else math.nan,
                     "max_all_epochs": float(frame["error"].max()),
                     "output_init": float(init["error"].iloc[-1]), "output_final": float(final["error"].iloc[-1]),
                     "final_epoch": last_epoch})
    return pd.DataFrame(rows)


def benchmark_contrasts(summary: pd.DataFrame, augment: str = "none", model: str = "resnet44") -> pd.DataFrame:
    """Exact vs approximate size per group (and dataset) of a ``classification_benchmark`` summary table.

    One row per (dataset, group) with both sizes: seed means of ``seen``, ``unseen_incl0``, ``unseen_excl0`` at
    each, ``gap_unseen = exact − approx`` (unseen_excl0, C3) and ``gap_seen = approx − exact`` (C4) with
    standard errors. Tables without a ``dataset`` column count as one dataset (``dataset`` = None).
    """
    rows = []
    table = summary[summary["augment"] == augment] if "augment" in summary.columns else summary
    table = table if "dataset" in table.columns else table.assign(dataset=None)
    for (dataset, group), frame in table.groupby(["dataset", "group"], sort=False, dropna=False):
        sizes = sorted(int(s) for s in frame["input_size"].unique())
        exact = [s for s in sizes if is_exact(group, s, model)]
        approx = [s for s in sizes if not is_exact(group, s, model)]
        if not exact or not approx:
            continue
        e, a = frame[frame["input_size"] == exact[0]], frame[frame["input_size"] == approx[0]]
        gap_unseen, se_unseen = _diff(e["unseen_excl0"], a["unseen_excl0"])
        gap_seen, se_seen = _diff(a["seen"], e["seen"])
        row = {"dataset": dataset, "group": group, "exact_size": exact[0], "approx_size": approx[0],
               "n_exact": len(e), "n_approx": len(a)}
        for col in ("seen", "unseen_incl0", "unseen_excl0"):
            row[f"exact_{col}"], row[f"approx_{col}"] = float(e[col].mean()), float(a[col].mean())
        rows.append({**row, "gap_unseen": gap_unseen, "se_unseen": se_unseen, "gap_seen": gap_seen, "se_seen": se_seen})
    return pd.DataFrame(rows)


def probe_summary(loss: pd.DataFrame) -> pd.DataFrame:
    """Per (input_size, seed) of a ``learning_unequivariance`` loss table: ``exact``, first/final/min loss,
    largest logit gap, final accuracy."""
    rows = []
    for (size, seed), frame in loss.sort_values("step").groupby(["input_size", "seed"], sort=True):
        rows.append({"input_size": int(size), "seed": int(seed), "exact": is_exact("p4", int(size), "unequivariance_probe"),
                     "first_loss": float(frame["loss"].iloc[0]), "final_loss": float(frame["loss"].iloc[-1]),
                     "min_loss": float(frame["loss"].min()), "max_logit_gap": float(frame["logit_gap"].max()),
                     "final_accuracy": float(frame["accuracy"].iloc[-1]), "steps": int(frame["step"].max())})
    return pd.DataFrame(rows)


# ------------------------------------------------------------------------------------------------ rules
@dataclass
class _Outcome:
    met: bool | None  # None: cannot be decided
    ours: str
    noise_known: bool = True


def _fmt_gap(gap: float, se: float) -> str:
    return f"{gap:+.2f} pp (SE {se:.2f})" if not math.isnan(se) else f"{gap:+.2f} pp (SE n/a)"


def _rule_c1(errors: pd.DataFrame) -> _Outcome:
    s = layerwise_summary(errors)
    s = s[s["group"] != "z2"]
    if s.empty or s["exact"].all() or not s["exact"].any():
        return _Outcome(None, "needs an exact and an approximate P4 config")
    ok, parts = True, []
    for r in s.itertuples():
        if r.exact:
            ok &= not isinstance(r.first_break, str)
            parts.append(f"{r.config} (exact): every layer ≤ {max(r.max_before_break, 0):.1e}")
        else:
            ok &= bool(isinstance(r.first_break, str) and r.first_break in r.breaking.split()
                       and r.first_break_error >= BROKEN_MIN and r.max_before_break <= EXACT_TOL)
            parts.append(f"{r.config}: ≤ {r.max_before_break:.1e} up to {r.first_break}, {r.first_break_error:.2f} there")
    return _Outcome(ok, "; ".join(parts))


def _rule_c2_layers(errors: pd.DataFrame) -> _Outcome:
    s = layerwise_summary(errors)
    s = s[s["group"] != "z2"]
    exact, approx = s[s["exact"]], s[~s["exact"]]
    if exact.empty or approx.empty:
        return _Outcome(None, "needs an exact and an approximate P4 config")
    adjacent = any(abs(a - e) == 1 for a in approx["input_size"] for e in exact["input_size"])
    ok = bool(adjacent and (exact["output_init"] <= EXACT_TOL).all() and (approx["output_init"] >= BROKEN_MIN).all())
    ours = "; ".join(f"{r.config}: {r.output_init:.1e}" for r in s.itertuples())
    return _Outcome(ok, f"output error at init: {ours}")


def _rule_c2_architectures(verdicts: pd.DataFrame) -> _Outcome:
    """C2 on the ``verdicts`` table of :func:`equiv.experiments.architectures`: expected sizes from its
    ``ARCHITECTURES`` (not from the table), adjacency of an exact and an approximate size, measured errors."""
    from equiv.experiments.architectures import ARCHITECTURES

    need = ("architecture", "input_size", "exact", "pair", "worst_error_min", "worst_error_max")
    missing = [c for c in need if c not in verdicts.columns]
    if missing:
        raise ValueError(f"architectures verdicts table lacks column(s) {', '.join(missing)}")
    known = {a.key: a for a in ARCHITECTURES}
    unknown = sorted(set(verdicts["architecture"]) - set(known))
    if unknown:
        raise ValueError(f"unknown architecture {unknown[0]!r}; the table has {', '.join(known)}")
    absent = [a.label for a in ARCHITECTURES if a.key not in set(verdicts["architecture"])]
    if absent:
        return _Outcome(None, f"needs every architecture of the table; missing {', '.join(absent)}")
    pairs = verdicts[verdicts["pair"].astype(bool)]
    unmeasured = [a.label for a in ARCHITECTURES
                  if pairs.loc[pairs["architecture"] == a.key, "worst_error_min"].isna().all()]
    if unmeasured:
        return _Outcome(None, f"needs measured errors at the pair of every architecture; none for "
                              f"{', '.join(unmeasured)}")
    ok, parts, n_wrong = True, [], 0
    for arch in ARCHITECTURES:
        rows = verdicts[verdicts["architecture"] == arch.key]
        sizes, exact = rows["input_size"].astype(int), rows["exact"].astype(bool)
        wrong = sorted(int(n) for n, e in zip(sizes, exact) if e != arch.expected_exact(n))
        exact_sizes, approx_sizes = set(sizes[exact]), set(sizes[~exact])
        adjacent = any(n + 1 in approx_sizes or n - 1 in approx_sizes for n in exact_sizes)
        pair = rows[rows["pair"].astype(bool)]
        pe, pa = pair[pair["exact"].astype(bool)], pair[~pair["exact"].astype(bool)]
        measured = bool(len(pe) and len(pa) and (pe["worst_error_max"] <= EXACT_TOL).all()
                        and (pa["worst_error_min"] >= BROKEN_MIN).all())
        ok &= not wrong and adjacent and measured
        n_wrong += len(wrong)
        at_exact, at_approx = (", ".join(str(int(n)) for n in frame["input_size"]) for frame in (pe, pa))
        part = (f"{arch.label}: exact at {at_exact} (≤ {pe['worst_error_max'].max():.1e}), "
                f"approximate at {at_approx} (≥ {pa['worst_error_min'].min():.2f})")
        if wrong:
            part += f"; verdict not the paper's at {', '.join(map(str, wrong))}"
        if not adjacent:
            part += "; no exact size one pixel from an approximate one"
        parts.append(part)
    verdict = f"{len(verdicts) - n_wrong} of {len(verdicts)} verdicts as the paper says; "
    return _Outcome(ok, verdict + "; ".join(parts))


def right_angle_spreads(frame: pd.DataFrame) -> pd.DataFrame:
    """Per P4 run of a rotated-MNIST accuracy table: the spread (max − min, in points) of its accuracies at 0°,
    90°, 180° and 270°, rounded to :data:`equiv.tolerances.ACCURACY_DECIMALS`, and whether its size is ``exact``
    (:func:`is_exact`). An exactly invariant model has spread 0."""
    spread = ref.right_angle_spread(frame)
    spread = spread[spread["group"] == "p4"].copy()
    spread["exact"] = [is_exact("p4", int(s)) for s in spread["input_size"]]
    spread["right_angle_spread"] = spread["right_angle_spread"].round(ACCURACY_DECIMALS)
    return spread.reset_index(drop=True)


def exact_identical_at_right_angles(frame: pd.DataFrame) -> bool:
    """Whether there is an exact P4 run and every exact P4 run has identical accuracies at the four right angles
    (:func:`right_angle_spreads`)."""
    spread = right_angle_spreads(frame)
    exact = spread[spread["exact"]]
    return bool(len(exact) and (exact["right_angle_spread"] == 0).all())


def _rule_c2_mnist(frame: pd.DataFrame) -> _Outcome:
    spread = right_angle_spreads(frame)
    if spread.empty:
        return _Outcome(None, "no P4 runs")
    e, a = spread[spread["exact"]], spread[~spread["exact"]]
    if e.empty or a.empty:
        return _Outcome(None, "needs an exact and an approximate P4 model")
    ok = bool((e["right_angle_spread"] == 0).all() and (a["right_angle_spread"] > 0).all())
    return _Outcome(ok, f"spread over 0/90/180/270°: exact max {e['right_angle_spread'].max():.2f} pp over {len(e)} run(s); "
                        f"approximate min {a['right_angle_spread'].min():.2f} pp over {len(a)} run(s)")


def _noise_ok(gap: float, se: float, k: float) -> bool:
    """``gap > k·SE`` for k > 0 (beats by more than the noise), ``gap ≥ k·SE`` for k ≤ 0 (not worse by more
    than the noise); an unknown SE (one seed) counts as 0."""
    bound = k * (0.0 if math.isnan(se) else se)
    return gap > bound if k > 0 else gap >= bound


def _rule_c3_mnist(frame: pd.DataFrame) -> _Outcome:
    c = rotmnist_contrasts(frame)
    if c.empty:
        return _Outcome(None, "needs upright-trained exact and approximate P4 models")
    ok = all(_noise_ok(r.gap_all, r.se_all, K_NOISE) and _noise_ok(r.gap_0, r.se_0, -K_NOISE) for r in c.itertuples())
    noise = bool(c["se_all"].notna().all() and c["se_0"].notna().all())
    n_angles = int(c["n_angles"].min())
    ours = "; ".join(f"mean over {r.n_angles} angles: exact {r.exact_acc_all:.2f} vs P4-{r.approx_size} {r.approx_acc_all:.2f}, "
                     f"gap {_fmt_gap(r.gap_all, r.se_all)}; upright P4-{r.approx_size} − exact {_fmt_gap(r.gap_0, r.se_0)}"
                     for r in c.itertuples())
    return _Outcome(ok, ours + ("" if n_angles >= 36 else f" (only {n_angles} test angles)"), noise)


def _rule_c4_mnist(frame: pd.DataFrame) -> _Outcome:
    c = rotmnist_contrasts(frame)
    if c.empty:
        return _Outcome(None, "needs upright-trained exact and approximate P4 models")
    ok = all(_noise_ok(r.gap_0, r.se_0, -K_NOISE) for r in c.itertuples())
    noise = bool(c["se_0"].notna().all())
    ours = "; ".join(f"upright: P4-{r.approx_size} {r.approx_acc_0:.2f} vs exact {r.exact_acc_0:.2f}, "
                     f"diff {_fmt_gap(r.gap_0, r.se_0)}" for r in c.itertuples())
    return _Outcome(ok, ours, noise)


def _on(row: Any) -> str:
    return f"{row.dataset} " if isinstance(row.dataset, str) else ""


def _rule_c3_benchmark(summary: pd.DataFrame) -> _Outcome:
    c = benchmark_contrasts(summary)
    if c.empty:
        return _Outcome(None, "needs exact and approximate sizes of a group")
    ok = all(_noise_ok(r.gap_unseen, r.se_unseen, K_NOISE) for r in c.itertuples())
    ours = "; ".join(f"{_on(r)}{r.group.upper()}: unseen (excl. 0°) {r.exact_unseen_excl0:.2f} at {r.exact_size} vs "
                     f"{r.approx_unseen_excl0:.2f} at {r.approx_size}, gap {_fmt_gap(r.gap_unseen, r.se_unseen)}"
                     for r in c.itertuples())
    return _Outcome(ok, ours, bool(c["se_unseen"].notna().all()))


def _rule_c4_benchmark(summary: pd.DataFrame) -> _Outcome:
    c = benchmark_contrasts(summary)
    if c.empty:
        return _Outcome(None, "needs exact and approximate sizes of a group")
    ok = all(_noise_ok(r.gap_seen, r.se_seen, -K_NOISE) for r in c.itertuples())
    ours = "; ".join(f"{_on(r)}{r.group.upper()}: seen {r.approx_seen:.2f} at {r.approx_size} vs {r.exact_seen:.2f} at "
                     f"{r.exact_size}, diff {_fmt_gap(r.gap_seen, r.se_seen)}" for r in c.itertuples())
    return _Outcome(ok, ours, bool(c["se_seen"].notna().all()))


def _rule_c5_probe(loss: pd.DataFrame) -> _Outcome:
    s = probe_summary(loss)
    e, a = s[s["exact"]], s[~s["exact"]]
    if e.empty or a.empty:
        return _Outcome(None, "needs an exact and an approximate size")
    ln2 = math.log(2)
    ok = bool((a["final_loss"] < ln2 - PROBE_MARGIN).all() and (e["max_logit_gap"] <= PROBE_GAP_TOL).all()
              and (e["min_loss"] >= ln2 - PROBE_GAP_TOL).all())
    ours = (f"approximate ({int(a['input_size'].iloc[0])}): loss {a['first_loss'].mean():.3f} → "
            f"{a['final_loss'].min():.3f}–{a['final_loss'].max():.3f} in {int(a['steps'].max())} steps; exact "
            f"({int(e['input_size'].iloc[0])}): min loss {e['min_loss'].min():.4f} (ln 2 = {ln2:.4f}), "
            f"logit gap ≤ {e['max_logit_gap'].max():.1e}")
    return _Outcome(ok, ours)


def _rule_c5_layers(errors: pd.DataFrame) -> _Outcome:
    s = layerwise_summary(errors)
    s = s[s["group"] != "z2"]
    exact, approx = s[s["exact"]], s[~s["exact"]]
    if approx.empty or int(s["final_epoch"].min()) < 1:
        return _Outcome(None, "needs a trained approximate config")
    ok = bool((approx["output_final"] > approx["output_init"]).all() and (exact["max_all_epochs"] <= EXACT_TOL).all())
    ours = "; ".join(f"{r.config}: {r.output_init:.1e} → {r.output_final:.1e} after {r.final_epoch} epoch(s)"
                     for r in s.itertuples())
    return _Outcome(ok, f"output error: {ours}")


_RULES: dict[str, Callable[[pd.DataFrame], _Outcome]] = {
    "C1-layers": _rule_c1, "C2-layers": _rule_c2_layers, "C2-mnist": _rule_c2_mnist,
    "C2-architectures": _rule_c2_architectures, "C3-mnist": _rule_c3_mnist,
    "C3-benchmark": _rule_c3_benchmark, "C4-mnist": _rule_c4_mnist, "C4-benchmark": _rule_c4_benchmark,
    "C5-probe": _rule_c5_probe, "C5-layers": _rule_c5_layers,
}
#: evidence whose paper value is computed by applying the same rule to the paper's reference runs
_ON_REFERENCE = ("C2-mnist", "C3-mnist", "C4-mnist")


def rules_text() -> str:
    """Every rule, one paragraph each (what the ledger page prints), the study's rules included."""
    from equiv.study import GATES, STUDY_RULES

    def needs(e: Evidence) -> str:
        return ("needs the study's gates: ≥ {} seeds per model, ≥ {} test digits, mean 0° accuracy ≥ {:g} %".format(
            GATES.min_runs, GATES.min_test_digits, GATES.accuracy_floor) if e.needs == "data"
            else f"needs the {e.needs} profile or larger")

    lines = [f"- **{e.id}** ({e.what}; {needs(e)}): {e.rule}" for e in EVIDENCE]
    lines += [f"- **{r.id}** ({r.statement}) {r.text()}" for r in STUDY_RULES]
    return "\n".join(lines)


def _paper_value(ev: Evidence, reference: pd.DataFrame | None) -> tuple[str, bool | None]:
    """The paper's value in words, and whether the rule holds on the paper's runs (None: not computable)."""
    if ev.id not in _ON_REFERENCE or reference is None:
        return ev.paper or "—", None
    outcome = _RULES[ev.id](reference)
    return f"{outcome.ours} → rule {'holds' if outcome.met else 'fails'} on the paper's runs", outcome.met


def data_gate(table: pd.DataFrame) -> str | None:
    """Why a rotated-MNIST table cannot give a verdict, by the study's gates (:data:`equiv.study.GATES`), or
    None: fewer seeds per model than ``min_runs``, fewer test digits per run than ``min_test_digits`` (the
    ``n`` column, else the run's ``test_size`` parameter), or an upright-trained P4 model whose mean 0°
    accuracy is under ``accuracy_floor``. The profile label plays no part."""
    from equiv.study import GATES

    runs = ref.per_run_summary(table)
    runs = runs[(runs["train_rotation"] == "upright") & (runs["group"] == "p4")]
    if runs.empty:
        return None
    seeds = runs.groupby("input_size")["seed"].nunique().min()
    if seeds < GATES.min_runs:
        return f"not enough data ({seeds} seed(s) per model < {GATES.min_runs})"
    digits = int(table["n"].min()) if "n" in table.columns else _params(table).get("test_size")
    if digits is None or digits < GATES.min_test_digits:
        return f"not enough data ({digits} test digits per run < {GATES.min_test_digits})"
    acc0 = runs.groupby("input_size")["acc_0"].mean()
    low = [f"P4-{s} at {v:.1f} %" for s, v in acc0.items() if v < GATES.accuracy_floor]
    if low:
        return f"undecided (below the accuracy floor of {GATES.accuracy_floor:g} %: {', '.join(low)})"
    return None


def _verdict(ev: Evidence, outcome: _Outcome, profile: str, table: pd.DataFrame | None = None) -> tuple[str, str]:
    """(at_this_scale, verdict)."""
    if outcome.met is None:
        return "cannot be evaluated", "no data"
    hint = "rule met" if outcome.met else "rule not met"
    if not outcome.noise_known:
        hint += " (one seed: noise not estimable, taken as 0)"
    if ev.needs == "data":
        gate = data_gate(table) if table is not None else "no data"
        if gate is not None:
            return hint, gate
    elif _RANK.get(profile, -1) < _RANK[ev.needs]:
        return hint, f"not yet run at {ev.needs} scale"
    if not outcome.noise_known:
        return hint, "undecided"
    return hint, "reproduced" if outcome.met else "not reproduced"


def claims_ledger(results: Mapping[str, Any], reference: pd.DataFrame | None = None) -> pd.DataFrame:
    """The ledger: one row per :data:`EVIDENCE` item.

    Args:
        results: experiment name → its :class:`~equiv.experiments.ExperimentResult` or the table named in
            :data:`TABLES` (what :func:`gather_results` returns). A missing experiment gives ``no data``.
        reference: the paper's reference runs (:func:`equiv.reference.load_reference`); None leaves the
            paper's value to the text of :data:`EVIDENCE`.

    Columns: ``id``, ``claim``, ``statement``, ``evidence``, ``chapter``, ``paper``, ``paper_rule`` (whether
    the rule holds on the paper's reference runs; None where it cannot be applied to them), ``ours``,
    ``profile``, ``scale``, ``needs``, ``rule``, ``at_this_scale``, ``verdict``.
    """
    rows = []
    for ev in EVIDENCE:
        table = results.get(ev.experiment)
        if isinstance(table, dict):  # an ExperimentResult
            table = table.get(TABLES[ev.experiment])
        if table is None or len(table) == 0:
            outcome, profile, scale = _Outcome(None, "not run"), "—", "—"
        else:
            profile, scale = profile_of(table), describe_scale(ev.experiment, table)
            try:
                outcome = _RULES[ev.id](table)
            except (KeyError, ValueError) as err:
                outcome = _Outcome(None, f"cannot evaluate: {err}")
        at_scale, verdict = _verdict(ev, outcome, profile, table if table is not None and len(table) else None)
        paper, paper_rule = _paper_value(ev, reference)
        rows.append({"id": ev.id, "claim": ev.claim, "statement": CLAIMS[ev.claim], "evidence": ev.what,
                     "chapter": ev.chapter, "paper": paper, "paper_rule": paper_rule, "ours": outcome.ours,
                     "profile": profile, "scale": scale, "needs": ev.needs, "rule": ev.rule,
                     "at_this_scale": at_scale, "verdict": verdict})
    study = results.get(STUDY_KEY)
    if isinstance(study, pd.DataFrame):
        for r in study.itertuples():
            effect = "—" if math.isnan(r.paper_effect) else f"d̄ = {r.paper_effect:+.2f} points on the official runs"
            rows.append({"id": r.id, "claim": r.claim, "statement": r.statement if r.claim not in CLAIMS else CLAIMS[r.claim],
                         "evidence": f"rotated-MNIST study: {r.statement}", "chapter": "rotmnist_study", "paper": effect,
                         "paper_rule": None, "ours": r.ours, "profile": "study", "scale": STUDY_SCALE, "needs": "data",
                         "rule": r.rule, "at_this_scale": r.why or (f"power {r.power:.0%}" if not math.isnan(r.power) else ""),
                         "verdict": r.verdict})
    return pd.DataFrame(rows)


def ledger_rows(results: Mapping[str, Any], ids: list[str], reference: pd.DataFrame | None = None) -> pd.DataFrame:
    """The ledger rows ``ids`` (indexed by id, in that order) for ``results`` — what a chapter shows for its claims."""
    unknown = [i for i in ids if i not in _RULES]
    if unknown:
        raise ValueError(f"unknown evidence id {unknown[0]!r}; allowed: {', '.join(_RULES)}")
    return claims_ledger(results, reference).set_index("id").loc[list(ids)]


def verdict_texts(rows: pd.DataFrame) -> dict[str, str]:
    """``{"c3_at_scale": ..., "c3_verdict": ...}`` for rows of :func:`ledger_rows` (first row per claim wins):
    the names under which the chapters glue the rules' outcomes."""
    out: dict[str, str] = {}
    for claim, row in zip(rows["claim"], rows.itertuples()):
        out.setdefault(f"{claim.lower()}_at_scale", row.at_this_scale)
        out.setdefault(f"{claim.lower()}_verdict", row.verdict)
    return out


def styled(rows: pd.DataFrame, columns: list[str] | None = None):
    """Ledger rows for display: a pandas Styler, left-aligned, full text (no truncation), wrapping lines."""
    frame = rows if columns is None else rows[list(columns)]
    return frame.style.set_properties(**{"text-align": "left", "white-space": "pre-wrap", "vertical-align": "top"})


#: the columns a chapter shows for its ledger rows
CHAPTER_COLUMNS = ["rule", "paper", "ours", "profile", "at_this_scale", "verdict"]


def gather_results(profile: str | None = None, *, experiments: Mapping[str, Mapping[str, Any]] | None = None,
                   prefer_collected: bool = True, run: Callable[..., Any] | None = None) -> dict[str, pd.DataFrame]:
    """The table each piece of evidence reads, per experiment.

    For each experiment: the paper-scale table collected in ``data/results/`` when there is one (and
    ``prefer_collected``), else ``run_experiment(name, {"profile": profile, **experiments[name]})`` — the
    chapters' defaults, so with the result cache this loads what the chapters computed instead of retraining.
    """
    import inspect

    from equiv.experiments import EXPERIMENTS, resolve_profile, run_experiment

    run = run or run_experiment
    profile = resolve_profile(profile)
    extra = dict(experiments or {})
    out: dict[str, pd.DataFrame] = {}
    for name, table_name in TABLES.items():
        collected = ref.load_collected(name, "paper") if prefer_collected else None
        if collected is not None and len(collected):
            out[name] = collected
            continue
        takes_progress = "progress" in inspect.signature(EXPERIMENTS[name][0]).parameters
        kwargs = {"progress": False} if takes_progress else {}  # only to runners that report progress
        result = run(name, {"profile": profile, **dict(extra.get(name, {}))}, **kwargs)
        out[name] = result[table_name]
    out[STUDY_KEY] = study_judgements()
    return out


def study_judgements() -> pd.DataFrame:
    """The study's rules judged on the committed study (:func:`equiv.study.judge_all`; every rule ``not
    enough data`` while nothing is committed), then the long arm's rules on the arm's own committed runs
    (:func:`equiv.study.long_arm_judgements`, ids ``…-long``), and, once any of its runs is committed, the GPU
    arm's (:func:`equiv.study.gpu_arm_judgements`, ids ``…-gpu``)."""
    from equiv import study

    runs, conv = study.arm_tables(*study.load_study())
    try:
        reference = study.reference_metrics(ref.load_reference())
    except FileNotFoundError:  # no reference runs: the power of a failed test is unknown (never "not reproduced")
        reference = None
    parts = [study.judge_all(runs, conv, reference),
             study.long_arm_judgements(*study.arm_tables(*study.load_long_arm()), reference)]
    gpu_acc, gpu_curves = study.load_gpu_arm()
    if len(gpu_acc):  # an arm nobody has run adds no rows
        parts.append(study.gpu_arm_judgements(*study.arm_tables(gpu_acc, gpu_curves), reference))
    return pd.concat(parts, ignore_index=True)


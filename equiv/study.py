"""The rotated-MNIST study's statistics, power calculation and rules (the ledger's study rows).

Units and pairing. A *unit* is one ``(fold, seed)``: every model of a regime is trained on the unit's
training digits in the same order and tested on the unit's 1,000 test digits. A rule compares two models
``a`` and ``b`` of one regime on a per-run metric, through the **paired** differences ``d = m_a − m_b`` over
the units both have: ``n`` units, mean ``d̄``, ``SE = sd(d) / √n`` (sample sd, ``ddof=1``).

Per-run metrics (:func:`run_metrics`, percent): ``acc_0`` (0° test set), ``acc_right`` (mean over 0/90/180/270°),
``acc_all`` (mean over all test angles), ``acc_unseen`` (all angles but 0°), ``bias_gain`` (mean over 30–60°
minus mean over 210–240°: how much better the model is near the biased regimes' 45° than near 225°) and
``right_spread`` (max − min over 0/90/180/270°; exactly 0 for an exactly equivariant P4 model).

Verdicts (:meth:`Rule.judge`), in order:

1. ``not enough data``: fewer than :attr:`Gates.min_runs` paired units, a run with fewer than
   :attr:`Gates.min_test_digits` test digits, or fewer than :attr:`Gates.min_angles` test angles;
2. ``undecided (below the accuracy floor)``: a compared model's mean 0° accuracy is under
   :attr:`Gates.accuracy_floor` (a model at chance can neither match nor beat);
3. ``undecided (not converged)``: a compared model's validation accuracy still rises: the mean over its
   runs of (mean of the last 3 epochs − mean of the 3 before) exceeds :attr:`Gates.convergence_tol`, or it
   has no validation curves (no evidence of convergence is not evidence);
4. the test, with ``k =`` :attr:`Gates.k` standard errors: **beats** ``d̄ − k·SE > 0``; **matches**
   (non-inferiority with the fixed margin ``m``) ``d̄ − k·SE > −m``; **equivalent** (both ways)
   ``|d̄| + k·SE < m``; **periodic**: every run of the model has identical accuracies at θ and θ + 90° for
   every test angle θ (no statistics: it is exact or it is not). Every rule passes gates 1–3 first, the
   periodic ones too. ``k·SE`` is the normal-theory interval the design's power was computed for; the
   printed t-based 95 % interval is wider at small ``n`` (``t₀.₉₇₅ = 2.78`` at ``n = 5``), and both are
   printed beside each verdict;
5. the test passes: ``reproduced``; it fails and the measured power (the chance that the test passes if the
   claim holds with the paper's effect, see :func:`power`) is at least :attr:`Gates.power_target`:
   ``not reproduced``; it fails with less power: ``undecided (power P%)``.

Every threshold is a field of :data:`GATES` or of the :class:`Rule`, and each rule's printed text is built
from those same fields (:meth:`Rule.text`), so text and code cannot drift apart.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Iterable, Sequence

import numpy as np
import pandas as pd

from equiv.tolerances import ACCURACY_DECIMALS

__all__ = [
    "Gates",
    "GATES",
    "Rule",
    "Judgement",
    "STUDY_RULES",
    "STUDY_RESULTS",
    "METRICS",
    "load_study",
    "load_pilot",
    "run_metrics",
    "arm_tables",
    "reference_metrics",
    "reference_angles",
    "paired",
    "welch_table",
    "welch_report",
    "power",
    "design_power",
    "choose_seeds",
    "judge_all",
    "convergence",
    "pilot_epochs",
    "progress",
    "headline",
    "compute_time",
    "COMPUTE_BUDGET_HOURS",
    "compute_table",
    "measured_power",
    "WELCH_PAIRS",
    "load_long_arm",
    "long_arm_epochs",
    "long_arm_judgements",
    "long_arm_progress",
    "long_arm_welch_pairs",
    "load_gpu_arm",
    "gpu_arm_progress",
    "gpu_arm_judgements",
    "devices",
]

#: where the batch runner commits the study (``results:`` of ``experiments/rotmnist_study.yaml``), and the
#: pilot, under :func:`equiv.reference.data_dir` (``data/`` of the checkout, or ``$EQUIV_DATA_DIR``)
STUDY_RESULTS = "results/rotmnist_study"
PILOT_RESULTS = "results/rotmnist_study_pilot"


def _data(relative: str) -> Path:
    from equiv.reference import data_dir

    return data_dir() / relative

#: per-run metrics and what they mean
METRICS = {
    "acc_0": "accuracy on the upright (0°) test set",
    "acc_right": "mean accuracy over 0°, 90°, 180°, 270°",
    "acc_all": "mean accuracy over all test angles",
    "acc_unseen": "mean accuracy over all test angles but 0°",
    "bias_gain": "mean accuracy at 30–60° minus at 210–240°",
    "right_spread": "max − min accuracy over 0°, 90°, 180°, 270°",
}
_NEAR_45 = (30.0, 40.0, 50.0, 60.0)
_NEAR_225 = (210.0, 220.0, 230.0, 240.0)


@dataclass(frozen=True)
class Gates:
    """The conditions every study verdict needs (fixed before the study ran)."""

    min_runs: int = 5  #: paired units per comparison
    min_test_digits: int = 1000  #: test digits per run
    min_angles: int = 36  #: test angles per run
    accuracy_floor: float = 50.0  #: mean 0° accuracy (percent) of each compared model; chance is 10
    convergence_tol: float = 0.5  #: points of validation accuracy gained over the last 3 epochs vs the 3 before
    k: float = 2.0  #: standard errors of the paired mean difference
    power_target: float = 0.8  #: a failed test is "not reproduced" only at this power or more


GATES = Gates()


def _z(x: float) -> float:
    return 0.5 * (1.0 + math.erf(x / math.sqrt(2.0)))


def power(kind: str, se: float, *, effect: float = 0.0, margin: float = 0.0, k: float = GATES.k) -> float:
    """Chance that the test of ``kind`` passes when the true paired mean difference is the paper's ``effect``
    and its standard error is ``se`` (normal approximation): ``beats`` Φ(δ/SE − k), ``matches`` (margin m)
    Φ((δ + m)/SE − k), ``equivalent`` Φ((m − δ)/SE − k) + Φ((m + δ)/SE − k) − 1. ``periodic`` has no noise: 1."""
    if kind == "periodic":
        return 1.0
    if not se > 0 or math.isnan(se) or math.isnan(effect):
        return float("nan")
    if kind == "beats":
        return _z(effect / se - k)
    if kind == "matches":
        return _z((effect + margin) / se - k)
    if kind == "equivalent":
        return max(0.0, _z((margin - effect) / se - k) + _z((margin + effect) / se - k) - 1.0)
    raise ValueError(f"unknown test kind {kind!r}; allowed: beats, matches, equivalent, periodic")


# ------------------------------------------------------------------------------------------------ data
def _records(folder: Path) -> list[dict[str, Any]]:
    from equiv.batch.committed import load_committed

    return load_committed(folder)


def load_study(results_dir: str | Path | None = None) -> tuple[pd.DataFrame, pd.DataFrame]:
    """The committed study as two tidy tables: ``accuracy`` (one row per run and test angle) and ``curves``
    (one row per run and epoch), each with ``regime, fold, seed, model, group, input_size`` and the run's
    ``run_id``, ``device`` and ``duration_s``. Every record is verified first (:mod:`equiv.batch.committed`)."""
    folder = Path(results_dir) if results_dir is not None else _data(STUDY_RESULTS)
    acc, curves = [], []
    for rec in _records(folder):
        prov = rec.get("provenance") or {}
        extra = {"run_id": rec["run_id"], "device": prov.get("device"), "duration_s": prov.get("duration_s"),
                 "profile": rec.get("profile")}
        rows = rec["metrics"].get("rows") or []
        acc.extend({**r, **extra} for r in rows)
        key = {k: rows[0][k] for k in ("regime", "train_rotation", "fold", "seed", "model", "group", "input_size")} if rows else {}
        curves.extend({**key, **c, **extra} for c in rec["metrics"].get("curve") or [])
    return pd.DataFrame(acc), pd.DataFrame(curves)


def load_pilot(results_dir: str | Path | None = None) -> pd.DataFrame:
    """The convergence pilot's validation curves (one row per model and epoch)."""
    from equiv.experiments.result import ExperimentResult

    folder = Path(results_dir) if results_dir is not None else _data(PILOT_RESULTS)
    frames = [ExperimentResult.load(d)["training"] for d in sorted(folder.iterdir()) if d.is_dir()]
    if not frames:
        raise FileNotFoundError(f"no pilot results in {folder}")
    return pd.concat(frames, ignore_index=True)


def pilot_epochs(curves: pd.DataFrame, *, tol: float = 0.3, window: int = 3, cap: int = 20) -> tuple[int, pd.DataFrame]:
    """The epoch count by the design's rule (:attr:`equiv.experiments.rotmnist_study.StudyDesign.epoch_rule`):
    the first epoch at which every model's ``window``-epoch mean validation accuracy is within ``tol`` points
    of its best such mean, capped at ``cap``. Returns the count and a per-model table of that epoch."""
    rows = []
    for model, c in curves.groupby("model"):
        smooth = c.sort_values("epoch")["val_accuracy"].rolling(window).mean().to_numpy()
        best = float(np.nanmax(smooth))
        first = int(np.flatnonzero(smooth >= best - tol)[0]) + 1
        rows.append({"model": model, "best_smoothed_val": best, "plateau_epoch": first})
    table = pd.DataFrame(rows)
    return min(int(table["plateau_epoch"].max()), cap), table


def _run_metrics(run: pd.DataFrame) -> dict[str, float]:
    acc = dict(zip(run["test_angle"].astype(float) % 360, run["accuracy"].astype(float)))
    right = [acc[a] for a in (0.0, 90.0, 180.0, 270.0) if a in acc]
    out = {"acc_0": acc.get(0.0, math.nan), "acc_right": float(np.mean(right)) if len(right) == 4 else math.nan,
           "acc_all": float(np.mean(list(acc.values()))),
           "acc_unseen": float(np.mean([v for a, v in acc.items() if a != 0.0])) if len(acc) > 1 else math.nan,
           "right_spread": float(max(right) - min(right)) if len(right) == 4 else math.nan,
           "n_angles": len(acc)}
    if all(a in acc for a in _NEAR_45 + _NEAR_225):
        out["bias_gain"] = float(np.mean([acc[a] for a in _NEAR_45]) - np.mean([acc[a] for a in _NEAR_225]))
    else:
        out["bias_gain"] = math.nan
    shifted = [round(acc[a], ACCURACY_DECIMALS) == round(acc[(a + 90.0) % 360], ACCURACY_DECIMALS) for a in acc if (a + 90.0) % 360 in acc]
    out["periodic"] = bool(shifted) and all(shifted)
    return out


def arm_tables(accuracy: pd.DataFrame, curves: pd.DataFrame) -> tuple[pd.DataFrame, pd.DataFrame | None]:
    """An arm's :func:`load_study` tables as its judges take them: ``(runs, conv)``, :func:`run_metrics` and
    :func:`convergence`. Nothing committed gives an empty runs table (columns ``regime, model``) and ``None``."""
    runs = run_metrics(accuracy) if len(accuracy) else pd.DataFrame(columns=["regime", "model"])
    return runs, (convergence(curves) if len(curves) else None)


def run_metrics(accuracy: pd.DataFrame, units: Sequence[str] = ("fold", "seed")) -> pd.DataFrame:
    """One row per run: ``regime, model, *units`` and the metrics of :data:`METRICS` (plus ``n_test``,
    ``n_angles``, ``periodic``)."""
    keys = ["regime", "model", *units]
    rows = []
    for key, run in accuracy.groupby(keys, sort=True):
        n_test = int(run["n"].min()) if "n" in run else 0
        rows.append({**dict(zip(keys, key)), **_run_metrics(run), "n_test": n_test})
    return pd.DataFrame(rows)


def reference_angles(reference: pd.DataFrame) -> pd.DataFrame:
    """The paper's official per-angle runs (``data/reference``) named as the study names its runs: ``regime``
    (the biased ones with ``_perbatch``: the official code rotated each batch by one angle), ``model`` as
    ``p4-28`` and ``n`` = 60,000 test digits."""
    ref = reference.copy()
    ref["regime"] = ref["train_rotation"].map(lambda r: r + "_perbatch" if r.startswith("normal") else r)
    ref["model"] = ref["group"] + "-" + ref["input_size"].astype(str)
    ref["n"] = 60000
    return ref


def reference_metrics(reference: pd.DataFrame) -> pd.DataFrame:
    """:func:`run_metrics` of the paper's official runs (:func:`reference_angles`; units = seeds)."""
    return run_metrics(reference_angles(reference), units=("seed",))


def convergence(curves: pd.DataFrame, window: int = 3) -> pd.DataFrame:
    """Per run: the mean validation accuracy of the last ``window`` epochs minus that of the ``window`` before
    (``gain``; NaN for runs shorter than 2·window epochs)."""
    rows = []
    for key, c in curves.groupby(["regime", "model", "fold", "seed"], sort=True):
        v = c.sort_values("epoch")["val_accuracy"].astype(float).to_numpy()
        gain = float(v[-window:].mean() - v[-2 * window:-window].mean()) if v.size >= 2 * window else math.nan
        rows.append({**dict(zip(["regime", "model", "fold", "seed"], key)), "epochs": int(v.size), "gain": gain,
                     "final_val": float(v[-1]) if v.size else math.nan})
    return pd.DataFrame(rows)


def paired(runs: pd.DataFrame, regime: str, a: str, b: str, metric: str,
           units: Sequence[str] = ("fold", "seed")) -> dict[str, float]:
    """Paired statistics of ``metric`` for model ``a`` minus model ``b`` in ``regime``: ``n``, the two means,
    ``diff``, ``sd``, ``se``, the t-based 95 % interval ``ci_low``/``ci_high`` and the paired t-test ``p``."""
    from scipy import stats

    r = runs[runs["regime"] == regime]
    twice = r[r["model"].isin([a, b])].duplicated(subset=[*units, "model"], keep=False)
    if twice.any():
        first = r[r["model"].isin([a, b])][twice].iloc[0]
        raise ValueError(f"{regime}: {first['model']} has more than one run at "
                         + ", ".join(f"{u}={first[u]}" for u in units) + "; a paired unit must appear once per model")
    wide = r.pivot_table(index=list(units), columns="model", values=metric, aggfunc="first")
    if a not in wide or b not in wide:
        return {"n": 0, "mean_a": math.nan, "mean_b": math.nan, "diff": math.nan, "sd": math.nan, "se": math.nan,
                "ci_low": math.nan, "ci_high": math.nan, "p": math.nan}
    both = wide[[a, b]].dropna()
    d = (both[a] - both[b]).to_numpy(float)
    n = int(d.size)
    sd = float(d.std(ddof=1)) if n > 1 else math.nan
    se = sd / math.sqrt(n) if n > 1 else math.nan
    half = float(stats.t.ppf(0.975, n - 1)) * se if n > 1 else math.nan
    p = float(stats.ttest_rel(both[a], both[b]).pvalue) if n > 1 and sd > 0 else (1.0 if n > 1 else math.nan)
    mean = float(d.mean()) if n else math.nan
    return {"n": n, "mean_a": float(both[a].mean()) if n else math.nan, "mean_b": float(both[b].mean()) if n else math.nan,
            "diff": mean, "sd": sd, "se": se, "ci_low": mean - half, "ci_high": mean + half, "p": p}


def _summary(values: pd.Series) -> dict[str, float]:
    from scipy import stats

    v = values.dropna().to_numpy(float)
    n = v.size
    sd = float(v.std(ddof=1)) if n > 1 else math.nan
    half = float(stats.t.ppf(0.975, n - 1)) * sd / math.sqrt(n) if n > 1 else math.nan
    return {"n": n, "mean": float(v.mean()) if n else math.nan, "std": sd, "ci_low": float(v.mean()) - half if n else math.nan,
            "ci_high": float(v.mean()) + half if n else math.nan}


def welch_table(runs: pd.DataFrame, pairs: Iterable[tuple[str, str, str, str]]) -> pd.DataFrame:
    """The official notebook's statistics for each ``(regime, a, b, metric)``: mean ± std and the 95 %
    confidence interval of each model, and Welch's t-test (``equal_var=False``) of a against b, as its
    10-seed cell computes them (its 100-seed cell meant Welch but passed ``equal_var=False`` to ``str.format``,
    so it printed Student's t)."""
    from scipy import stats

    rows = []
    for regime, a, b, metric in pairs:
        r = runs[runs["regime"] == regime]
        va, vb = r.loc[r["model"] == a, metric].dropna(), r.loc[r["model"] == b, metric].dropna()
        sa, sb = _summary(va), _summary(vb)
        if len(va) > 1 and len(vb) > 1:
            t = stats.ttest_ind(va, vb, equal_var=False)
            tstat, p = float(t.statistic), float(t.pvalue)
        else:
            tstat, p = math.nan, math.nan
        rows.append({"regime": regime, "metric": metric, "a": a, "b": b, "n_a": sa["n"], "n_b": sb["n"],
                     "mean_a": sa["mean"], "std_a": sa["std"], "ci_a": (sa["ci_low"], sa["ci_high"]),
                     "mean_b": sb["mean"], "std_b": sb["std"], "ci_b": (sb["ci_low"], sb["ci_high"]),
                     "diff": sa["mean"] - sb["mean"], "welch_t": tstat, "welch_p": p})
    return pd.DataFrame(rows)


# ------------------------------------------------------------------------------------------------ rules
@dataclass
class Judgement:
    """What a rule says on the data: the verdict, the numbers behind it, and why."""

    rule: str
    verdict: str
    ours: str
    n: int = 0
    diff: float = math.nan
    se: float = math.nan
    power: float = math.nan
    reasons: list[str] = field(default_factory=list)


def _gate(sub: pd.DataFrame, models: list[str], n: int, conv: pd.DataFrame | None, regime: str,
          gates: Gates, unit: str = "paired runs") -> tuple[str, list[str]] | None:
    """The gates every rule passes before its test, in the order of the module docstring: the verdict and its
    reasons when one fails, else None. Missing validation curves are not evidence of convergence."""
    reasons = []
    if n < gates.min_runs:
        reasons.append(f"{n} {unit} < {gates.min_runs}")
    if int(sub["n_test"].min()) < gates.min_test_digits:
        reasons.append(f"{int(sub['n_test'].min())} test digits < {gates.min_test_digits}")
    if int(sub["n_angles"].min()) < gates.min_angles:
        reasons.append(f"{int(sub['n_angles'].min())} test angles < {gates.min_angles}")
    if reasons:
        return "not enough data", reasons
    floor = sub.groupby("model")["acc_0"].mean()
    low = [f"{m} at {v:.1f} %" for m, v in floor.items() if v < gates.accuracy_floor]
    if low:
        return "undecided (below the accuracy floor)", low
    if conv is None or len(conv) == 0:
        return "undecided (not converged)", ["no validation curves"]
    c = conv[(conv["regime"] == regime) & conv["model"].isin(models)]
    gains = c.groupby("model")["gain"].mean()
    rising = [f"no validation curves of {m}" if m not in gains.index else f"{m} still gains {gains[m]:.2f} points"
              for m in models if m not in gains.index or not gains[m] <= gates.convergence_tol]
    if rising:
        return "undecided (not converged)", rising
    return None


@dataclass(frozen=True)
class Rule:
    """One study claim: models ``a`` and ``b`` of ``regime`` compared on ``metric`` by the test ``kind``.

    ``margin`` is the fixed non-inferiority / equivalence margin (points); the paper's effect, for the power
    of a ``beats`` test, is ``d̄`` of the same comparison on the official runs (:func:`reference_metrics`)."""

    id: str
    claim: str
    statement: str
    regime: str
    a: str
    b: str | None
    metric: str
    kind: str  # beats | matches | equivalent | periodic
    margin: float = 0.0
    #: the official runs' models whose difference stands in for the paper's effect when the paper has no such
    #: comparison (the resampled control); None: ``(a, b)`` themselves
    effect_from: tuple[str, str] | None = None

    def text(self, gates: Gates = GATES) -> str:
        """The rule in words, built from its fields and the gates."""
        what = f"{METRICS[self.metric]} of {self.a}" + (f" minus {self.b}" if self.b else "")
        test = {
            "beats": f"the paired mean difference (d̄, over folds × seeds) minus {gates.k:g}·SE is > 0",
            "matches": f"d̄ − {gates.k:g}·SE > −{self.margin:g} points (non-inferiority, margin {self.margin:g})",
            "equivalent": f"|d̄| + {gates.k:g}·SE < {self.margin:g} points (equivalence, margin {self.margin:g})",
            "periodic": "every run has identical accuracies at θ and θ + 90° for every test angle θ",
        }[self.kind]
        subject = f"{self.a}, every run" if self.kind == "periodic" else what
        return (f"{self.regime} training; {subject}: {test}. Needs ≥ {gates.min_runs} paired runs with ≥ "
                f"{gates.min_test_digits} test digits and {gates.min_angles} angles, mean 0° accuracy ≥ "
                f"{gates.accuracy_floor:g} % and a validation gain ≤ {gates.convergence_tol:g} points over the last "
                f"3 epochs; a failed test is 'not reproduced' only at ≥ {gates.power_target:.0%} power.")

    def paper_effect(self, reference_runs: pd.DataFrame | None) -> float:
        """``d̄`` of this comparison on the official runs (NaN without them, or for a one-model rule)."""
        if reference_runs is None or self.b is None:
            return math.nan
        a, b = self.effect_from or (self.a, self.b)
        return paired(reference_runs, self.regime, a, b, self.metric, units=("seed",))["diff"]

    def judge(self, runs: pd.DataFrame, conv: pd.DataFrame | None = None, *, reference_runs: pd.DataFrame | None = None,
              gates: Gates = GATES) -> Judgement:
        """The verdict of this rule on the study's :func:`run_metrics` and :func:`convergence` tables."""
        r = runs[(runs["regime"] == self.regime)] if len(runs) else runs
        models = [m for m in (self.a, self.b) if m is not None]
        if len(r) == 0 or not all((r["model"] == m).any() for m in models):
            return Judgement(self.id, "not enough data", "not run", reasons=["no runs of " + " and ".join(models)])
        sub = r[r["model"].isin(models)]
        if self.kind == "periodic":
            n = int(len(sub))
            bad = sub[~sub["periodic"].astype(bool)]
            ours = f"{n - len(bad)} of {n} runs 90°-periodic; max spread over 0/90/180/270° {sub['right_spread'].max():.2f} points"
            gate = _gate(sub, models, n, conv, self.regime, gates, unit="runs")
            if gate:
                return Judgement(self.id, gate[0], ours, n, reasons=gate[1])
            return Judgement(self.id, "reproduced" if bad.empty else "not reproduced", ours, n, power=1.0)
        st = paired(runs, self.regime, self.a, self.b, self.metric)
        n, diff, se = st["n"], st["diff"], st["se"]
        ours = (f"{self.a} {st['mean_a']:.2f} vs {self.b} {st['mean_b']:.2f}: d̄ = {diff:+.2f} (SE {se:.2f}; the rule's "
                f"d̄ ± {gates.k:g}·SE {diff - gates.k * se:+.2f} … {diff + gates.k * se:+.2f}; t-based 95 % CI "
                f"{st['ci_low']:+.2f} … {st['ci_high']:+.2f}, n = {n})")
        gate = _gate(sub, models, n, conv, self.regime, gates)
        if gate:
            return Judgement(self.id, gate[0], ours, n, diff, se, reasons=gate[1])
        effect = self.paper_effect(reference_runs)
        pw = power(self.kind, se, effect=effect, margin=self.margin, k=gates.k)
        if self.kind == "beats":
            passed = diff - gates.k * se > 0
        elif self.kind == "matches":
            passed = diff - gates.k * se > -self.margin
        else:
            passed = abs(diff) + gates.k * se < self.margin
        if passed:
            verdict = "reproduced"
        elif pw >= gates.power_target:
            verdict = "not reproduced"
        else:
            verdict = f"undecided (power {pw:.0%})" if not math.isnan(pw) else "undecided (power unknown)"
        return Judgement(self.id, verdict, ours, n, diff, se, pw)


_UP, _UNI, _B20, _B40 = "upright", "uniform", "normal45_sd20_perbatch", "normal45_sd40_perbatch"

#: the study's claims, each decided by its own rule; margins fixed before the study ran
STUDY_RULES: tuple[Rule, ...] = (
    Rule("S-C2", "C2", "Every exact P4 run (28, and the resampled control 30) is exactly 90°-periodic.", _UP, "p4-28", None,
         "right_spread", "periodic"),
    Rule("S-C2-control", "C2", "The resampled exact control (30) is exactly 90°-periodic too.", _UP, "p4-30", None,
         "right_spread", "periodic"),
    Rule("S-C3-27", "C3", "Trained upright, exact P4 (28) beats approximate P4 (27) on rotated digits.", _UP, "p4-28", "p4-27",
         "acc_all", "beats"),
    Rule("S-C3-29", "C3", "Trained upright, exact P4 (28) beats approximate P4 (29) on rotated digits.", _UP, "p4-28", "p4-29",
         "acc_all", "beats"),
    Rule("S-C4-27", "C4", "Trained upright, approximate P4 (27) matches exact P4 (28) on upright digits.", _UP, "p4-27", "p4-28",
         "acc_0", "matches", 0.5),
    Rule("S-C4-29", "C4", "Trained upright, approximate P4 (29) matches exact P4 (28) on upright digits.", _UP, "p4-29", "p4-28",
         "acc_0", "matches", 0.5),
    Rule("S-C4-27-beats", "C4", "Trained upright, approximate P4 (27) beats exact P4 (28) on upright digits.", _UP, "p4-27",
         "p4-28", "acc_0", "beats"),
    Rule("S-C4-29-beats", "C4", "Trained upright, approximate P4 (29) beats exact P4 (28) on upright digits.", _UP, "p4-29",
         "p4-28", "acc_0", "beats"),
    Rule("S-control", "control", "The approximate model's upright advantage is not a resampling effect: approximate P4 (29) "
         "beats the resampled exact control (30), which sees digits resized like its own (power from the paper's 29 − 28 "
         "effect).", _UP, "p4-29", "p4-30", "acc_0", "beats", effect_from=("p4-29", "p4-28")),
    Rule("S-Z2", "Z2", "Trained upright, the Z2 CNN collapses under rotation: exact P4 beats it over all angles.", _UP, "p4-28",
         "z2-28", "acc_all", "beats"),
    Rule("S-uniform-equal", "uniform", "Trained on uniformly rotated digits, approximate P4 (27) and exact P4 (28) are equal.",
         _UNI, "p4-27", "p4-28", "acc_all", "equivalent", 1.0),
    Rule("S-uniform-z2", "uniform", "Trained on uniformly rotated digits, exact P4 beats the Z2 CNN.", _UNI, "p4-28", "z2-28",
         "acc_all", "beats"),
    Rule("S-uniform-z2-approx", "uniform", "Trained on uniformly rotated digits, approximate P4 (27) beats the Z2 CNN.", _UNI,
         "p4-27", "z2-28", "acc_all", "beats"),
    Rule("S-bias20", "biased", "Trained with N(45°, 20°) batch rotations, approximate P4 (27) exploits the bias: it is better "
         "near 45° than near 225°, unlike exact P4 (for which the two are equal).", _B20, "p4-27", "p4-28", "bias_gain", "beats"),
    Rule("S-bias40", "biased", "Trained with N(45°, 40°) batch rotations, approximate P4 (27) exploits the bias.", _B40, "p4-27",
         "p4-28", "bias_gain", "beats"),
    Rule("S-bias20-periodic", "biased", "Trained with N(45°, 20°) batch rotations, exact P4 stays 90°-periodic.", _B20, "p4-28",
         None, "right_spread", "periodic"),
    Rule("S-bias40-periodic", "biased", "Trained with N(45°, 40°) batch rotations, exact P4 stays 90°-periodic.", _B40, "p4-28",
         None, "right_spread", "periodic"),
)


def judge_all(runs: pd.DataFrame, conv: pd.DataFrame | None, reference_runs: pd.DataFrame | None = None,
              rules: Sequence[Rule] = STUDY_RULES, gates: Gates = GATES) -> pd.DataFrame:
    """Every rule's :class:`Judgement` as a table (``id``, ``claim``, ``statement``, ``rule``, ``paper_effect``,
    ``ours``, ``n``, ``diff``, ``se``, ``power``, ``verdict``, ``why``)."""
    rows = []
    for rule in rules:
        j = rule.judge(runs, conv, reference_runs=reference_runs, gates=gates)
        rows.append({"id": rule.id, "claim": rule.claim, "statement": rule.statement, "rule": rule.text(gates),
                     "paper_effect": rule.paper_effect(reference_runs), "ours": j.ours, "n": j.n, "diff": j.diff,
                     "se": j.se, "power": j.power, "verdict": j.verdict, "why": "; ".join(j.reasons)})
    return pd.DataFrame(rows)


# ------------------------------------------------------------------------------------------------ design
def design_power(reference_runs: pd.DataFrame, *, test_digits: int = 1000, folds: int = 5,
                 seeds_per_fold: Sequence[int] = (1, 2, 3), rules: Sequence[Rule] = STUDY_RULES,
                 gates: Gates = GATES) -> pd.DataFrame:
    """The power calculation behind the seeds per fold: for each statistical rule, the predicted standard
    error of the paired mean difference and the power of its test, for each number of seeds per fold.

    Predicted paired s.d. = √(s_a² + s_b² + v_a + v_b): ``s`` is the seed-to-seed s.d. of the metric over the
    official runs (60,000 test digits, so almost free of test-set noise), ``v = p(1 − p)/n`` the binomial
    variance of an accuracy ``p`` on our ``test_digits`` (taken as independent between the two models, which
    overstates it: paired models err on many of the same digits). The effect of a ``beats`` rule is the
    paper's (:meth:`Rule.paper_effect`)."""
    rows = []
    for rule in rules:
        if rule.kind == "periodic":
            continue
        r = reference_runs[reference_runs["regime"] == rule.regime]
        sds, binom = [], []
        for m in rule.effect_from or (rule.a, rule.b):
            v = r.loc[r["model"] == m, rule.metric].dropna()
            p = r.loc[r["model"] == m, "acc_0"].mean() / 100.0
            sds.append(float(v.std(ddof=1)) if len(v) > 1 else math.nan)
            binom.append(1e4 * p * (1 - p) / test_digits)
        sd = math.sqrt(sum(s * s for s in sds) + sum(binom))
        effect = rule.paper_effect(reference_runs)
        for s in seeds_per_fold:
            n = folds * s
            se = sd / math.sqrt(n)
            rows.append({"id": rule.id, "regime": rule.regime, "kind": rule.kind, "metric": rule.metric,
                         "paper_effect": effect, "margin": rule.margin if rule.kind != "beats" else math.nan,
                         "predicted_sd": sd, "seeds_per_fold": s, "runs": n, "predicted_se": se,
                         "power": power(rule.kind, se, effect=effect, margin=rule.margin, k=gates.k)})
    return pd.DataFrame(rows)


def choose_seeds(power_table: pd.DataFrame, regimes: Sequence[str], *, gates: Gates = GATES) -> pd.DataFrame:
    """Seeds per fold for each regime: the fewest at which every statistical rule of the regime reaches
    :attr:`Gates.power_target` in ``power_table`` (:func:`design_power`); the largest count tabulated when
    none does (``reached`` False). Every model of a regime gets that many seeds, so every rule stays paired."""
    rows = []
    for regime in regimes:
        t = power_table[power_table["regime"] == regime]
        if t.empty:
            rows.append({"regime": regime, "seeds_per_fold": 1, "reached": True, "weakest_rule": "", "power": 1.0})
            continue
        worst = t.groupby("seeds_per_fold")["power"].min()
        good = [int(n) for n, p in worst.items() if p >= gates.power_target]
        chosen = min(good) if good else int(worst.index.max())
        at = t[t["seeds_per_fold"] == chosen].sort_values("power").iloc[0]
        rows.append({"regime": regime, "seeds_per_fold": chosen, "reached": bool(good), "weakest_rule": at["id"],
                     "power": float(at["power"])})
    return pd.DataFrame(rows)


# ------------------------------------------------------------------------------------------------ page tables
def _progress_rows(runs: pd.DataFrame, plan: Iterable[tuple[str, str, int]]) -> pd.DataFrame:
    """Committed runs against ``plan`` (``(regime, model, planned)`` triples): the table of every arm's progress."""
    rows = []
    for regime, model, planned in plan:
        done = int(((runs["regime"] == regime) & (runs["model"] == model)).sum()) if len(runs) else 0
        rows.append({"regime": regime, "model": model, "committed": done, "planned": planned})
    return pd.DataFrame(rows)


def progress(runs: pd.DataFrame, design: Any = None) -> pd.DataFrame:
    """Runs committed against runs planned, per regime and model (the design's folds × seeds per fold)."""
    from equiv.experiments.rotmnist_study import DESIGN

    design = design or DESIGN
    return _progress_rows(runs, [(regime, model, design.folds * len(design.seeds(regime)))
                                 for regime in design.regimes for model in design.models])


def welch_report(runs: pd.DataFrame, reference_runs: pd.DataFrame | None,
                 pairs: Iterable[tuple[str, str, str, str]]) -> pd.DataFrame:
    """:func:`welch_table` of ``pairs`` for our runs and for the paper's (``source`` = ours / paper), side by side:
    the columns the page prints, sorted so that each pair's two sources are adjacent."""
    pairs = tuple(pairs)
    tables = [welch_table(runs, pairs).assign(source="ours")]
    if reference_runs is not None and len(reference_runs):
        tables.append(welch_table(reference_runs, pairs).assign(source="paper"))
    cols = ["source", "regime", "metric", "a", "b", "n_a", "n_b", "mean_a", "std_a", "mean_b", "std_b", "diff",
            "welch_t", "welch_p"]
    return pd.concat(tables)[cols].sort_values(["regime", "metric", "a", "b", "source"]).reset_index(drop=True)


def headline(runs: pd.DataFrame, reference_runs: pd.DataFrame | None, regime: str,
             metrics: Sequence[str] = ("acc_0", "acc_right", "acc_all")) -> pd.DataFrame:
    """The paper's headline table for ``regime``: per model, mean ± s.d. (sample, over runs) of each metric,
    ours beside the paper's official runs, with the run counts."""
    rows = []
    for source, table in (("ours", runs), ("paper", reference_runs)):
        if table is None or not len(table):
            continue
        t = table[table["regime"] == regime]
        for model, m in t.groupby("model", sort=False):
            row = {"source": source, "model": model, "runs": len(m)}
            for metric in metrics:
                v = m[metric].dropna()
                row[metric] = f"{v.mean():.2f} ± {v.std(ddof=1):.2f}" if len(v) > 1 else (f"{v.mean():.2f}" if len(v) else "—")
            rows.append(row)
    return pd.DataFrame(rows)


#: the study's compute budget (issue 9): the whole study, pilots included, in this many hours of wall time on
#: 2 CPU cores, i.e. twice as many hours of one 1-thread run slot
COMPUTE_BUDGET_HOURS = 4.0


def compute_table(budget_hours: float = COMPUTE_BUDGET_HOURS, slots: int = 2) -> pd.DataFrame:
    """The whole study's compute, part by part, from the committed records: runs, hours of one run slot, and the
    wall-clock hours at ``slots`` runs at once (perfect packing), with a ``total`` row and its ratio to
    ``budget_hours``. Run parts count each record's ``duration_s`` (kernel start, training, the 36-angle test;
    pauses and other work on the machine included, so they overstate the compute); the first pilot records its
    training time only (``train_seconds``)."""
    from equiv.experiments.result import ExperimentResult

    pilot_dir = _data(PILOT_RESULTS)
    pilot_s = [float(ExperimentResult.load(d)["training"].attrs["train_seconds"])
               for d in sorted(pilot_dir.iterdir()) if d.is_dir()] if pilot_dir.is_dir() else []
    parts = [("first pilot (upright)", {"runs": len(pilot_s), "slot_hours": sum(pilot_s) / 3600})]
    parts.append(("first arm", compute_time(load_study()[0])))
    parts.append(("long-arm pilot", compute_time(load_long_arm("pilot")[0])))
    parts.append(("long arm", compute_time(load_long_arm()[0])))
    rows = [{"part": name, "runs": t["runs"], "slot_hours": t["slot_hours"]} for name, t in parts]
    rows.append({"part": "total", "runs": sum(r["runs"] for r in rows), "slot_hours": sum(r["slot_hours"] for r in rows)})
    table = pd.DataFrame(rows)
    table["wall_hours"] = table["slot_hours"] / slots
    table["of_budget"] = table["wall_hours"] / budget_hours
    return table


def compute_time(accuracy: pd.DataFrame) -> dict[str, float]:
    """Committed runs, their summed duration (hours of one run slot) and the mean per run (seconds)."""
    if not len(accuracy):
        return {"runs": 0, "slot_hours": 0.0, "mean_run_s": float("nan")}
    per_run = accuracy.groupby("run_id")["duration_s"].first().astype(float)
    return {"runs": int(per_run.size), "slot_hours": float(per_run.sum() / 3600), "mean_run_s": float(per_run.mean())}


def measured_power(runs: pd.DataFrame, reference_runs: pd.DataFrame | None, rules: Sequence[Rule] = STUDY_RULES,
                   gates: Gates = GATES) -> pd.DataFrame:
    """Per statistical rule, the predicted SE of the design (:func:`design_power` at the design's seeds) beside the
    SE measured on the committed runs, and the power at each. Reported, never used to add seeds."""
    from equiv.experiments.rotmnist_study import DESIGN

    if reference_runs is None:
        return pd.DataFrame()
    design = design_power(reference_runs, seeds_per_fold=sorted({s for _, s in DESIGN.seeds_per_fold}), rules=rules, gates=gates)
    rows = []
    for rule in rules:
        if rule.kind == "periodic":
            continue
        s = dict(DESIGN.seeds_per_fold)[rule.regime]
        d = design[(design["id"] == rule.id) & (design["seeds_per_fold"] == s)].iloc[0]
        st = paired(runs, rule.regime, rule.a, rule.b, rule.metric) if len(runs) else {"n": 0, "se": math.nan}
        rows.append({"id": rule.id, "runs_planned": int(d["runs"]), "predicted_se": d["predicted_se"], "power_planned": d["power"],
                     "runs_now": st["n"], "measured_se": st["se"],
                     "power_measured": power(rule.kind, st["se"], effect=d["paper_effect"], margin=rule.margin, k=gates.k)})
    return pd.DataFrame(rows)


#: the pairs whose Welch t-tests the page prints, as the official notebook did: (regime, a, b, metric)
WELCH_PAIRS = (
    ("upright", "p4-28", "p4-27", "acc_0"), ("upright", "p4-28", "p4-29", "acc_0"), ("upright", "p4-28", "p4-30", "acc_0"),
    ("upright", "p4-28", "p4-27", "acc_all"), ("upright", "p4-28", "p4-29", "acc_all"), ("upright", "p4-28", "z2-28", "acc_all"),
    ("uniform", "p4-28", "p4-27", "acc_all"), ("uniform", "p4-28", "z2-28", "acc_all"),
    ("normal45_sd20_perbatch", "p4-27", "p4-28", "bias_gain"), ("normal45_sd40_perbatch", "p4-27", "p4-28", "bias_gain"),
)


# ------------------------------------------------------------------------------------------------ the long arm
def load_long_arm(which: str = "runs", arm: Any = None) -> tuple[pd.DataFrame, pd.DataFrame]:
    """The long arm's committed ``runs`` (or its ``pilot``) as :func:`load_study` tables (empty when nothing is
    committed yet)."""
    from equiv.experiments.rotmnist_study import LONG_ARM

    arm = arm or LONG_ARM
    if which not in ("runs", "pilot"):
        raise ValueError(f"which is {which!r}; allowed: 'runs', 'pilot'")
    return load_study(_data(arm.results if which == "runs" else arm.pilot_results))


def long_arm_epochs(pilot_curves: pd.DataFrame, arm: Any = None) -> tuple[int, pd.DataFrame]:
    """The long arm's epoch count by its rule (:attr:`equiv.experiments.rotmnist_study.LongArm.epoch_rule`):
    per regime, :func:`pilot_epochs` over the models the arm trains there; the largest over the regimes.
    Returns the count and a per-(regime, model) table. Refuses a pilot that lacks one of those curves, or
    whose curves are shorter than the arm's pilot (a pilot that has not finished cannot fix the design)."""
    from equiv.experiments.rotmnist_study import LONG_ARM

    arm = arm or LONG_ARM
    tables = []
    for regime, models in arm.models:
        c = pilot_curves[(pilot_curves["regime"] == regime) & pilot_curves["model"].isin(models)] if len(pilot_curves) else pilot_curves
        for m in models:
            n = int((c["model"] == m).sum()) if len(c) else 0
            if n < arm.pilot_epochs:
                raise ValueError(f"the long arm's pilot has {n} epochs of {m} under {regime}; the rule needs {arm.pilot_epochs}")
        _, t = pilot_epochs(c, tol=arm.epoch_tol, cap=arm.epoch_cap)
        tables.append(t.assign(regime=regime))
    table = pd.concat(tables, ignore_index=True)[["regime", "model", "best_smoothed_val", "plateau_epoch"]]
    return min(int(table["plateau_epoch"].max()), arm.epoch_cap), table


def long_arm_judgements(runs: pd.DataFrame, conv: pd.DataFrame | None, reference_runs: pd.DataFrame | None = None,
                        arm: Any = None, gates: Gates = GATES) -> pd.DataFrame:
    """:func:`judge_all` for the rules the long arm decides, on the arm's own runs: the same rules and gates,
    ids suffixed ``-long`` (the first arm's verdicts stay as they are)."""
    from equiv.experiments.rotmnist_study import LONG_ARM

    arm = arm or LONG_ARM
    rules = [r for r in STUDY_RULES if r.id in arm.rules]
    table = judge_all(runs, conv, reference_runs, rules=rules, gates=gates)
    epochs = f"{arm.epochs} epochs" if arm.epochs else "epochs not fixed yet"
    table["id"] = table["id"] + "-long"
    table["statement"] = f"(long arm, {epochs}) " + table["statement"]
    return table


def long_arm_progress(runs: pd.DataFrame, arm: Any = None) -> pd.DataFrame:
    """The long arm's committed runs against its plan (the design's folds × seeds per fold, per regime and model)."""
    from equiv.experiments.rotmnist_study import DESIGN, LONG_ARM

    arm = arm or LONG_ARM
    return _progress_rows(runs, [(regime, model, DESIGN.folds * len(DESIGN.seeds(regime)))
                                 for regime, models in arm.models for model in models])


def long_arm_welch_pairs(arm: Any = None) -> tuple[tuple[str, str, str, str], ...]:
    """The pairs of :data:`WELCH_PAIRS` that the long arm trains: both models in a regime of the arm."""
    from equiv.experiments.rotmnist_study import LONG_ARM

    trained = dict((arm or LONG_ARM).models)
    return tuple(p for p in WELCH_PAIRS if p[0] in trained and {p[1], p[2]} <= set(trained[p[0]]))


# ------------------------------------------------------------------------------------------------ the GPU arm
def load_gpu_arm(arm: Any = None) -> tuple[pd.DataFrame, pd.DataFrame]:
    """The GPU arm's committed runs as :func:`load_study` tables (empty when nothing is committed yet)."""
    from equiv.experiments.rotmnist_study import GPU_ARM

    return load_study(_data((arm or GPU_ARM).results))


def gpu_arm_progress(runs: pd.DataFrame, arm: Any = None) -> pd.DataFrame:
    """The GPU arm's committed runs against its plan: the design's folds × the arm's seeds per fold, for every
    regime and model of the design."""
    from equiv.experiments.rotmnist_study import DESIGN, GPU_ARM

    planned = DESIGN.folds * (arm or GPU_ARM).seeds_per_fold
    return _progress_rows(runs, [(regime, model, planned) for regime in DESIGN.regimes for model in DESIGN.models])


def gpu_arm_judgements(runs: pd.DataFrame, conv: pd.DataFrame | None, reference_runs: pd.DataFrame | None = None,
                       arm: Any = None, gates: Gates = GATES) -> pd.DataFrame:
    """:func:`judge_all` with every study rule on the GPU arm's own runs (never pooled with the CPU arms): the same
    rules and gates, ids suffixed ``-gpu``."""
    from equiv.experiments.rotmnist_study import GPU_ARM

    arm = arm or GPU_ARM
    table = judge_all(runs, conv, reference_runs, gates=gates)
    table["id"] = table["id"] + "-gpu"
    table["statement"] = f"(GPU arm, {arm.epochs} epochs, {arm.seeds_per_fold} seeds per fold) " + table["statement"]
    return table


def devices(accuracy: pd.DataFrame) -> list[str]:
    """The devices that ran the committed runs of ``accuracy`` (from each record's provenance), sorted."""
    return sorted({str(d) for d in accuracy["device"].dropna()}) if len(accuracy) and "device" in accuracy else []

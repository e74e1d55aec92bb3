"""The rotated-MNIST study: folds, design, power calculation, rules and verdicts, committed results."""

from __future__ import annotations

import json
import math
import shutil
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from equiv.batch import load_grid
from equiv.batch.committed import CommittedRunError, committed_ids, load_committed, publish_run, read_committed
from equiv.batch.runid import run_id
from equiv.data import mnist_fold
from equiv.experiments.rotmnist_study import DESIGN, regime_spec
from equiv.reference import load_reference
from equiv.study import (GATES, STUDY_RULES, Gates, Rule, choose_seeds, convergence, design_power, judge_all, load_pilot,
                         load_study, paired, pilot_epochs, power, reference_metrics, run_metrics, welch_table)
from grid_files import relocated_grid

ROOT = Path(__file__).resolve().parents[1]
GRIDS = [ROOT / "experiments" / "rotmnist_study.yaml", ROOT / "experiments" / "rotmnist_study_biased.yaml"]
ANGLES = [float(a) for a in range(0, 360, 10)]


# ------------------------------------------------------------------------------------------------ folds
def test_folds_test_every_embedded_digit_once_stratified_and_disjoint() -> None:
    tests = []
    for f in range(DESIGN.folds):
        d = mnist_fold(f)
        tr, va, te = (set(d.indices[s].tolist()) for s in ("train", "val", "test"))
        assert len(tr) == 3200 and len(va) == 800 and len(te) == 1000
        assert not (tr & va) and not (tr & te) and not (va & te)
        assert np.bincount(d.test[1].numpy(), minlength=10).tolist() == [100] * 10
        tests.append(te)
    assert set().union(*tests) == set(range(5000)) and sum(map(len, tests)) == 5000
    assert mnist_fold(2).indices["train"].tolist() == mnist_fold(2).indices["train"].tolist()


@pytest.mark.parametrize("kwargs, bad", [({"fold": 5}, "fold=5"), ({"fold": -1}, "fold=-1"), ({"fold": 0, "folds": 1}, "folds=1"),
                                         ({"fold": 0, "val_size": 5000}, "val_size=5000"), ({"fold": True}, "fold=True")])
def test_fold_arguments_are_checked_in_one_line(kwargs: dict, bad: str) -> None:
    with pytest.raises(ValueError, match=bad):
        mnist_fold(**kwargs)


def test_uniform_regime_angles_depend_on_the_seed() -> None:
    from equiv.data.regimes import make_regime

    a, b = (make_regime(regime_spec("uniform", s)) for s in (1, 2))
    idx = np.arange(20)
    import torch

    assert not torch.equal(a.angles(20, indices=torch.as_tensor(idx)), b.angles(20, indices=torch.as_tensor(idx)))
    assert regime_spec("upright", 3) is None and regime_spec("normal45_sd20_perbatch", 3) == "normal45_sd20_perbatch"


# ------------------------------------------------------------------------------------------------ design
def test_design_seeds_are_what_the_power_calculation_chooses() -> None:
    ref = reference_metrics(load_reference())
    chosen = choose_seeds(design_power(ref), DESIGN.regimes)
    assert dict(zip(chosen["regime"], chosen["seeds_per_fold"])) == dict(DESIGN.seeds_per_fold)
    assert chosen["reached"].all() and (chosen["power"] >= GATES.power_target).all()


def test_design_epochs_follow_the_pilot_by_the_stated_rule() -> None:
    epochs, table = pilot_epochs(load_pilot())
    assert epochs == DESIGN.epochs
    assert set(table["model"]) == set(DESIGN.pilot_models)


def test_study_grids_run_exactly_the_design() -> None:
    runs = [r.parameters for g in GRIDS for r in load_grid(g).runs]
    expected = {(reg, s, f, m) for reg in DESIGN.regimes for s in DESIGN.seeds(reg) for f in range(DESIGN.folds) for m in DESIGN.models}
    got = [(p["regime"], p["seed"], p["fold"], p["model"]) for p in runs]
    assert len(got) == len(set(got)) and set(got) == expected
    grids = [load_grid(g) for g in GRIDS]
    assert len({g.name for g in grids}) == 1 and len({g.results for g in grids}) == 1
    assert grids[0].results == (ROOT / "data" / "results" / "rotmnist_study").resolve()


def test_the_control_is_exact_and_the_approximate_models_are_not() -> None:
    from equiv.claims import is_exact

    assert is_exact("p4", 28) and is_exact("p4", int(DESIGN.control.split("-")[1]))
    assert not any(is_exact("p4", int(m.split("-")[1])) for m in DESIGN.approximate)


# ------------------------------------------------------------------------------------------------ power
def test_power_formulas() -> None:
    assert power("beats", 1.0, effect=2.0) == pytest.approx(0.5)
    assert power("beats", 0.5, effect=2.0) == pytest.approx(0.97725, abs=1e-4)
    assert power("matches", 1.0, effect=0.0, margin=2.0) == pytest.approx(0.5)
    assert power("equivalent", 1e-9, effect=0.0, margin=1.0) == pytest.approx(1.0)
    assert power("equivalent", 10.0, effect=0.0, margin=1.0) == 0.0
    assert power("periodic", float("nan")) == 1.0
    assert math.isnan(power("beats", float("nan"), effect=1.0))
    with pytest.raises(ValueError, match="unknown test kind 'bigger'"):
        power("bigger", 1.0)


# ------------------------------------------------------------------------------------------------ rules
def _runs(diffs: dict[str, list[float]], *, base: float = 97.0, regime: str = "upright", metric: str = "acc_0",
          n_test: int = 1000, angles: int = 36, floor_acc: float | None = None) -> pd.DataFrame:
    """Synthetic run metrics: model p4-28 at ``base``, others at base + their per-unit differences."""
    rows = []
    n = len(next(iter(diffs.values())))
    for i in range(n):
        for model, ds in [("p4-28", [0.0] * n), *diffs.items()]:
            value = (floor_acc if floor_acc is not None else base) + ds[i]
            rows.append({"regime": regime, "model": model, "fold": i % 5, "seed": 1 + i // 5, metric: value,
                         "acc_0": value if metric == "acc_0" else (floor_acc or base), "n_test": n_test, "n_angles": angles,
                         "periodic": model == "p4-28", "right_spread": 0.0 if model == "p4-28" else 3.0})
    return pd.DataFrame(rows)


def _conv(runs: pd.DataFrame, gain: float = 0.1) -> pd.DataFrame:
    c = runs[["regime", "model", "fold", "seed"]].copy()
    c["gain"] = gain
    return c


BEATS = Rule("t-beats", "C4", "27 beats 28", "upright", "p4-27", "p4-28", "acc_0", "beats")
MATCHES = Rule("t-matches", "C4", "27 matches 28", "upright", "p4-27", "p4-28", "acc_0", "matches", 0.5)
EQUAL = Rule("t-equal", "uniform", "27 equals 28", "upright", "p4-27", "p4-28", "acc_0", "equivalent", 1.0)
REF = pd.DataFrame([{"regime": "upright", "model": m, "seed": s, "acc_0": 97.0 + (0.8 if m == "p4-27" else 0.0) + 0.01 * s}
                    for m in ("p4-28", "p4-27") for s in range(10)])


def test_a_clear_effect_is_reproduced() -> None:
    runs = _runs({"p4-27": [0.9, 1.1, 0.8, 1.0, 1.2]})
    j = BEATS.judge(runs, _conv(runs), reference_runs=REF)
    assert j.verdict == "reproduced" and j.n == 5 and j.diff == pytest.approx(1.0)
    assert MATCHES.judge(runs, _conv(runs), reference_runs=REF).verdict == "reproduced"


def test_a_well_powered_failure_is_not_reproduced() -> None:
    runs = _runs({"p4-27": [-0.05, 0.05, 0.0, -0.02, 0.02]})  # SE 0.02: power at the paper's 0.8 is ~1
    j = BEATS.judge(runs, _conv(runs), reference_runs=REF)
    assert j.verdict == "not reproduced" and j.power > 0.99
    worse = _runs({"p4-27": [-2.0, -2.1, -1.9, -2.0, -2.05]})
    assert MATCHES.judge(worse, _conv(worse), reference_runs=REF).verdict == "not reproduced"


def test_an_underpowered_failure_is_undecided_not_reproduced() -> None:
    runs = _runs({"p4-27": [3.0, -2.5, 1.0, -3.0, 2.0]})  # mean +0.1, SE ~1.2: no power
    j = BEATS.judge(runs, _conv(runs), reference_runs=REF)
    assert j.verdict.startswith("undecided (power") and j.power < GATES.power_target
    assert EQUAL.judge(runs, _conv(runs), reference_runs=REF).verdict.startswith("undecided (power")


def test_runs_at_chance_can_neither_match_nor_beat() -> None:
    runs = _runs({"p4-27": [0.5, 0.6, 0.4, 0.5, 0.5]}, floor_acc=10.5)  # every model at chance (10 classes)
    for rule in (BEATS, MATCHES, EQUAL):
        j = rule.judge(runs, _conv(runs), reference_runs=REF)
        assert j.verdict == "undecided (below the accuracy floor)", rule.id


@pytest.mark.parametrize("change, reason", [({"n": 4}, "4 paired runs < 5"), ({"n_test": 400}, "400 test digits < 1000"),
                                            ({"angles": 5}, "5 test angles < 36")])
def test_too_little_data_is_not_enough_data(change: dict, reason: str) -> None:
    n = change.get("n", 5)
    runs = _runs({"p4-27": [1.0, 1.1, 0.9, 1.0, 1.05][:n]}, n_test=change.get("n_test", 1000), angles=change.get("angles", 36))
    j = BEATS.judge(runs, _conv(runs), reference_runs=REF)
    assert j.verdict == "not enough data" and reason in j.reasons


def test_missing_models_and_unconverged_runs() -> None:
    runs = _runs({"p4-29": [1.0] * 5})
    assert BEATS.judge(runs, _conv(runs)).verdict == "not enough data"
    runs = _runs({"p4-27": [0.9, 1.1, 0.8, 1.0, 1.2]})
    j = BEATS.judge(runs, _conv(runs, gain=2.0), reference_runs=REF)
    assert j.verdict == "undecided (not converged)" and "still gains 2.00" in j.reasons[0]


PERIODIC = Rule("p", "C2", "", "upright", "p4-28", None, "right_spread", "periodic")


def test_periodic_rule_is_exact_or_not() -> None:
    runs = _runs({"p4-27": [1.0] * 5})
    assert PERIODIC.judge(runs, _conv(runs)).verdict == "reproduced"
    assert Rule("p", "C2", "", "upright", "p4-27", None, "right_spread", "periodic").judge(runs, _conv(runs)).verdict == "not reproduced"


def test_periodic_rule_passes_the_gates_its_text_states() -> None:
    """Rule.text() promises the test-digit gate, the accuracy floor and the convergence gate for every rule."""
    chance = _runs({"p4-27": [0.0] * 5}, floor_acc=10.0)
    j = PERIODIC.judge(chance, _conv(chance))
    assert j.verdict == "undecided (below the accuracy floor)" and j.reasons == ["p4-28 at 10.0 %"]
    few = _runs({"p4-27": [0.0] * 5}, n_test=100)
    j = PERIODIC.judge(few, _conv(few))
    assert j.verdict == "not enough data" and "100 test digits < 1000" in j.reasons
    runs = _runs({"p4-27": [1.0] * 5})
    j = PERIODIC.judge(runs, _conv(runs, gain=5.0))
    assert j.verdict == "undecided (not converged)" and j.reasons == ["p4-28 still gains 5.00 points"]
    assert PERIODIC.judge(runs, None).verdict == "undecided (not converged)"
    assert "4 runs < 5" in PERIODIC.judge(runs.iloc[:8], _conv(runs)).reasons


def test_missing_validation_curves_are_not_convergence() -> None:
    runs = _runs({"p4-27": [0.9, 1.1, 0.8, 1.0, 1.2]})
    assert BEATS.judge(runs, _conv(runs), reference_runs=REF).verdict == "reproduced"
    j = BEATS.judge(runs, None, reference_runs=REF)
    assert j.verdict == "undecided (not converged)" and j.reasons == ["no validation curves"]
    conv = _conv(runs)
    j = BEATS.judge(runs, conv[conv["model"] == "p4-28"], reference_runs=REF)
    assert j.verdict == "undecided (not converged)" and j.reasons == ["no validation curves of p4-27"]


def test_rule_text_is_built_from_the_rule_and_the_gates() -> None:
    strict = Gates(min_runs=7, accuracy_floor=60.0, k=3.0)
    text = MATCHES.text(strict)
    for piece in ("margin 0.5", "3·SE", "≥ 7 paired runs", "≥ 60 %", "80%"):
        assert piece in text, piece
    assert "margin 0.7" in Rule(**{**MATCHES.__dict__, "margin": 0.7}).text()
    assert all(r.text() for r in STUDY_RULES) and len({r.id for r in STUDY_RULES}) == len(STUDY_RULES)


def test_the_gates_change_the_verdict_they_state() -> None:
    runs = _runs({"p4-27": [0.9, 1.1, 0.8, 1.0, 1.2]})
    assert BEATS.judge(runs, _conv(runs), reference_runs=REF, gates=Gates(min_runs=6)).verdict == "not enough data"
    assert BEATS.judge(runs, _conv(runs), reference_runs=REF, gates=Gates(accuracy_floor=99.0)).verdict.startswith("undecided")


def test_paired_and_welch_statistics_against_scipy() -> None:
    from scipy import stats

    runs = _runs({"p4-27": [0.9, 1.1, 0.8, 1.0, 1.2]})
    st = paired(runs, "upright", "p4-27", "p4-28", "acc_0")
    d = np.array([0.9, 1.1, 0.8, 1.0, 1.2])
    assert st["se"] == pytest.approx(d.std(ddof=1) / math.sqrt(5))
    assert st["ci_high"] - st["diff"] == pytest.approx(stats.t.ppf(0.975, 4) * st["se"])
    w = welch_table(runs, [("upright", "p4-27", "p4-28", "acc_0")]).iloc[0]
    a = runs.loc[runs.model == "p4-27", "acc_0"]
    b = runs.loc[runs.model == "p4-28", "acc_0"]
    assert w["welch_p"] == pytest.approx(stats.ttest_ind(a, b, equal_var=False).pvalue)


def test_welch_report_puts_ours_beside_the_paper_pair_by_pair() -> None:
    from equiv.study import welch_report

    runs = _runs({"p4-27": [0.9, 1.1, 0.8, 1.0, 1.2]})
    paper = _runs({"p4-27": [0.1, 0.3, 0.2, 0.0, 0.4]})
    pairs = [("upright", "p4-27", "p4-28", "acc_0"), ("upright", "p4-28", "p4-27", "acc_0")]
    t = welch_report(runs, paper, pairs)
    assert list(t["source"]) == ["ours", "paper", "ours", "paper"]
    assert list(zip(t["a"], t["b"])) == [("p4-27", "p4-28")] * 2 + [("p4-28", "p4-27")] * 2
    for source, table in (("ours", runs), ("paper", paper)):
        got = t[(t["source"] == source) & (t["a"] == "p4-27")].iloc[0]
        want = welch_table(table, pairs[:1]).iloc[0]
        assert got["welch_t"] == pytest.approx(want["welch_t"]) and got["diff"] == pytest.approx(want["diff"])
    assert got["diff"] > 0 and t.iloc[2]["diff"] < 0  # a − b, in the order the pair names them
    assert set(welch_report(runs, None, pairs)["source"]) == {"ours"}


def test_long_arm_welch_pairs_are_the_pairs_the_arm_trains() -> None:
    from equiv.experiments.rotmnist_study import LONG_ARM
    from equiv.study import WELCH_PAIRS, long_arm_welch_pairs

    pairs = long_arm_welch_pairs()
    trained = dict(LONG_ARM.models)
    assert pairs and set(pairs) <= set(WELCH_PAIRS)
    assert all(r in trained and a in trained[r] and b in trained[r] for r, a, b, _ in pairs)
    left_out = [p for p in WELCH_PAIRS if p not in pairs]
    assert left_out and all(r not in trained or not {a, b} <= set(trained[r]) for r, a, b, _ in left_out)


def test_run_metrics_of_a_sweep() -> None:
    rows = [{"regime": "upright", "model": "p4-28", "fold": 0, "seed": 1, "test_angle": a, "accuracy": 90.0 + (a % 90) / 10, "n": 1000}
            for a in ANGLES]
    m = run_metrics(pd.DataFrame(rows)).iloc[0]
    assert m["acc_0"] == 90.0 and m["right_spread"] == 0.0 and bool(m["periodic"]) and m["bias_gain"] == 0.0
    assert m["acc_all"] == pytest.approx(np.mean([90.0 + (a % 90) / 10 for a in ANGLES]))


def test_the_papers_runs_satisfy_the_rules_they_should() -> None:
    ref = reference_metrics(load_reference())
    assert paired(ref, "upright", "p4-28", "p4-27", "acc_all", units=("seed",))["diff"] > 15
    assert paired(ref, "normal45_sd20_perbatch", "p4-27", "p4-28", "bias_gain", units=("seed",))["diff"] > 20


# ------------------------------------------------------------------------------------------------ committed results
def _manifest(rid: str, notebook: str = "nb.ipynb") -> dict:
    return {"run_id": rid, "status": "done", "grid": "g", "notebook": notebook, "notebook_sha256": "0" * 64, "profile": None,
            "git_commit": "f" * 40, "libraries": {}, "device": "cpu", "duration_s": 1.0}


def test_committed_record_round_trip_and_tamper_detection(tmp_path: Path) -> None:
    params = {"a": 1}
    rid = run_id("nb.ipynb", params, None)
    path = publish_run(tmp_path, manifest=_manifest(rid), parameters=params, metrics={"rows": [{"x": 1.0}]})
    rec = read_committed(path)
    assert rec["metrics"]["rows"] == [{"x": 1.0}] and committed_ids(tmp_path, [rid, "other"]) == {rid}
    data = json.loads(path.read_text())
    data["metrics"]["rows"][0]["x"] = 2.0
    path.write_text(json.dumps(data))
    with pytest.raises(CommittedRunError, match="fails its checksum"):
        read_committed(path)
    path.write_text("{")
    with pytest.raises(CommittedRunError, match="cannot be read"):
        load_committed(tmp_path)
    wrong = publish_run(tmp_path, manifest=_manifest("0123456789abcdef"), parameters=params, metrics={})
    with pytest.raises(CommittedRunError, match="its parameters give run id"):
        read_committed(wrong)
    with pytest.raises(ValueError, match="only done runs are committed"):
        publish_run(tmp_path, manifest={**_manifest(rid), "status": "failed"}, parameters=params, metrics={})


def _smoke_grid(tmp_path: Path) -> Path:
    """The study grid with its notebook and results folder given as absolute paths (results under tmp_path)."""
    return relocated_grid(GRIDS[0], tmp_path, tmp_path / "results", "study.yaml")


def test_study_grid_runs_at_smoke_profile_and_resumes_from_committed_results(tmp_path: Path) -> None:
    from equiv.batch import run_grid

    grid = _smoke_grid(tmp_path)
    first = run_grid(grid, profile="smoke", jobs=1, threads=1, runs_dir=tmp_path / "runs", progress=False)
    assert first.exit_code == 0 and first.executed == 2, first.last_line()
    results = tmp_path / "results" / "smoke"
    records = load_committed(results)
    assert len(records) == 2 and {r["parameters"]["model"] for r in records} == {"p4-28", "p4-27"}
    rec = records[0]
    prov = rec["provenance"]
    assert prov["git_commit"] and prov["equiv_version"] and prov["libraries"]["torch"] and prov["device"] and prov["resources"]
    assert len(rec["metrics"]["rows"]) == 5 and rec["metrics"]["curve"][0]["epoch"] == 1
    acc, curves = load_study(results)
    runs = run_metrics(acc)
    assert bool(runs.loc[runs.model == "p4-28", "periodic"].iloc[0])  # exact: identical at 0/90/180/270 even after 1 epoch
    assert len(convergence(curves)) == 2
    # a fresh clone: no runs folder, only the committed results -> nothing is computed again
    shutil.rmtree(tmp_path / "runs")
    again = run_grid(grid, profile="smoke", jobs=1, threads=1, runs_dir=tmp_path / "runs2", progress=False)
    assert again.exit_code == 0 and again.executed == 0 and again.done_before == 2
    assert not (tmp_path / "runs2").exists()
    # a tampered record is refused before anything runs
    target = results / f"{records[0]['run_id']}.json"
    target.write_text(target.read_text().replace('"accuracy"', '"accuracy_"', 1))
    with pytest.raises(CommittedRunError, match="fails its checksum"):
        run_grid(grid, profile="smoke", jobs=1, threads=1, runs_dir=tmp_path / "runs3", progress=False)


def test_committed_study_runs_are_exact_where_they_should_be() -> None:
    """Every exact-P4 run of the committed study (28 and the control 30) has identical accuracies at θ and θ+90°."""
    acc, _ = load_study()
    if acc.empty:
        pytest.skip("no committed study runs yet in data/results/rotmnist_study")
    runs = run_metrics(acc)
    exact = runs[runs["model"].isin([DESIGN.exact, DESIGN.control])]
    assert len(exact) and exact["periodic"].all() and (exact["right_spread"] == 0).all()
    approx = runs[runs["model"].isin(DESIGN.approximate)]
    assert (approx["right_spread"] > 0).all()
    assert (runs["n_test"] >= GATES.min_test_digits).all() and (runs["n_angles"] == 36).all()


def test_judge_all_on_the_committed_study_gives_a_verdict_per_rule() -> None:
    acc, curves = load_study()
    runs = run_metrics(acc) if len(acc) else pd.DataFrame(columns=["regime", "model"])
    table = judge_all(runs, convergence(curves) if len(curves) else None, reference_metrics(load_reference()))
    assert list(table["id"]) == [r.id for r in STUDY_RULES]
    assert table["verdict"].map(lambda v: v in ("reproduced", "not reproduced", "not enough data") or v.startswith("undecided")).all()


def test_compute_table_adds_up_the_committed_records() -> None:
    """The study's compute (book and README): the total is the sum of its parts, each part counts its committed
    records, and the budget ratio is the wall time at two slots over the stated budget."""
    from equiv.study import COMPUTE_BUDGET_HOURS, compute_table, compute_time, load_long_arm

    table = compute_table().set_index("part")
    parts = table.drop(index="total")
    assert list(parts.index) == ["first pilot (upright)", "first arm", "long-arm pilot", "long arm"]
    assert table.loc["total", "runs"] == parts["runs"].sum()
    assert table.loc["total", "slot_hours"] == pytest.approx(parts["slot_hours"].sum())
    assert (table["wall_hours"] == table["slot_hours"] / 2).all()
    assert (table["of_budget"] == table["wall_hours"] / COMPUTE_BUDGET_HOURS).all()
    acc, _ = load_study()
    assert table.loc["first arm", "runs"] == acc["run_id"].nunique()
    assert table.loc["first arm", "slot_hours"] == pytest.approx(compute_time(acc)["slot_hours"])
    assert table.loc["long arm", "runs"] == load_long_arm()[0]["run_id"].nunique()
    assert (parts["slot_hours"] > 0).all()
    wide = compute_table(budget_hours=2 * COMPUTE_BUDGET_HOURS, slots=1).set_index("part")
    assert wide.loc["total", "of_budget"] == pytest.approx(table.loc["total", "of_budget"])


# ------------------------------------------------------------------------------------------------ the long arm
LONG_PILOT_GRID = ROOT / "experiments" / "rotmnist_study_long_pilot.yaml"
LONG_GRIDS = sorted(p for p in (ROOT / "experiments").glob("rotmnist_study_long*.yaml") if "pilot" not in p.name)


def _plateau_curve(regime: str, model: str, plateau: int, epochs: int = 40, top: float = 95.0) -> list[dict]:
    """A validation curve rising 2 points an epoch until ``plateau``, then flat at ``top``."""
    return [{"regime": regime, "model": model, "fold": 0, "seed": 0, "epoch": e,
             "val_accuracy": top - 2.0 * max(0, plateau - e)} for e in range(1, epochs + 1)]


def test_long_arm_epochs_by_its_rule_on_synthetic_pilots() -> None:
    from equiv.experiments.rotmnist_study import LONG_ARM
    from equiv.study import long_arm_epochs

    rows = []
    plateaus = {("normal45_sd20_perbatch", "p4-28"): 12, ("normal45_sd20_perbatch", "p4-27"): 9,
                ("uniform", "p4-28"): 23, ("uniform", "p4-27"): 26, ("uniform", "z2-28"): 18,
                ("normal45_sd20_perbatch", "z2-28"): 39}  # a model the arm does not train there: ignored
    for (regime, model), p in plateaus.items():
        rows += _plateau_curve(regime, model, p)
    epochs, table = long_arm_epochs(pd.DataFrame(rows))
    # the 3-epoch mean first comes within 0.3 points of the plateau at e = plateau + 2 (the window e-2..e is all
    # flat; at plateau + 1 it is 0.67 points below); uniform p4-27 is the slowest arm model: 26 + 2
    assert epochs == 26 + 2
    assert set(zip(table["regime"], table["model"])) == {(r, m) for r, ms in LONG_ARM.models for m in ms}
    rows = [r for r in rows if not (r["model"] == "p4-27" and r["regime"] == "uniform")] + _plateau_curve("uniform", "p4-27", 60, 40)
    assert long_arm_epochs(pd.DataFrame(rows))[0] == LONG_ARM.epoch_cap  # still rising at 40: the cap


def test_long_arm_refuses_an_unfinished_pilot() -> None:
    from equiv.study import long_arm_epochs

    rows = _plateau_curve("normal45_sd20_perbatch", "p4-28", 10) + _plateau_curve("normal45_sd20_perbatch", "p4-27", 10)
    rows += [r for r in _plateau_curve("uniform", "p4-28", 10) if r["epoch"] <= 30]
    with pytest.raises(ValueError, match="30 epochs of p4-28 under uniform; the rule needs 40"):
        long_arm_epochs(pd.DataFrame(rows))
    with pytest.raises(ValueError, match="0 epochs of p4-28 under normal45_sd20_perbatch"):
        long_arm_epochs(pd.DataFrame())


def test_long_arm_judges_only_its_rules_under_its_own_ids() -> None:
    from equiv.experiments.rotmnist_study import LONG_ARM
    from equiv.study import long_arm_judgements

    table = long_arm_judgements(pd.DataFrame(columns=["regime", "model"]), None)
    assert list(table["id"]) == [r.id + "-long" for r in STUDY_RULES if r.id in LONG_ARM.rules]
    assert set(LONG_ARM.rules) <= {r.id for r in STUDY_RULES}
    assert (table["verdict"] == "not enough data").all()


def test_long_arm_pilot_grid_trains_every_arm_model_for_the_pilot_epochs() -> None:
    from equiv.experiments.rotmnist_study import LONG_ARM, PILOT_SEED

    g = load_grid(LONG_PILOT_GRID)
    got = {(r.parameters["regime"], r.parameters["model"]) for r in g.runs}
    assert {(reg, m) for reg, ms in LONG_ARM.models for m in ms} <= got
    assert {(r.parameters["fold"], r.parameters["seed"], r.parameters["epochs"]) for r in g.runs} == {(0, PILOT_SEED, LONG_ARM.pilot_epochs)}
    assert g.results == (ROOT / "data" / LONG_ARM.pilot_results).resolve()


def test_long_arm_epochs_come_from_its_committed_pilot_and_its_grids_run_exactly_the_arm() -> None:
    from equiv.experiments.rotmnist_study import LONG_ARM
    from equiv.study import load_long_arm, long_arm_epochs

    _, curves = load_long_arm("pilot")
    if LONG_ARM.epochs is None:
        assert not LONG_GRIDS, "arm grids exist before the pilot fixed LONG_ARM.epochs"
        pytest.skip("the long arm's pilot has not fixed LONG_ARM.epochs yet (data/results/rotmnist_study_long_pilot)")
    assert long_arm_epochs(curves)[0] == LONG_ARM.epochs
    runs = [r.parameters for g in LONG_GRIDS for r in load_grid(g).runs]
    expected = {(reg, s, f, m) for reg, ms in LONG_ARM.models for s in DESIGN.seeds(reg) for f in range(DESIGN.folds) for m in ms}
    got = [(p["regime"], p["seed"], p["fold"], p["model"]) for p in runs]
    assert len(got) == len(set(got)) and set(got) == expected
    assert {p["epochs"] for p in runs} == {LONG_ARM.epochs}
    assert {load_grid(g).results for g in LONG_GRIDS} == {(ROOT / "data" / LONG_ARM.results).resolve()}


def test_a_duplicated_paired_unit_is_an_error_not_a_silent_drop() -> None:
    runs = _runs({"p4-27": [0.9, 1.1, 0.8, 1.0, 1.2]})
    twice = pd.concat([runs, runs.iloc[[1]].assign(acc_0=50.0)], ignore_index=True)
    with pytest.raises(ValueError, match=r"upright: p4-27 has more than one run at fold=0, seed=1"):
        paired(twice, "upright", "p4-27", "p4-28", "acc_0")
    assert paired(runs, "upright", "p4-27", "p4-28", "acc_0")["n"] == 5


def test_the_gpu_arm_grid_is_the_registered_gpu_arm() -> None:
    """``experiments/rotmnist_study_gpu.yaml`` runs exactly :data:`GPU_ARM`: every regime and model of the design,
    its folds, GPU_ARM's seeds and epochs, seed-major, committed to its own folder."""
    from equiv.batch.grid import load_grid
    from equiv.experiments.rotmnist_study import GPU_ARM, LONG_ARM

    grid = load_grid(ROOT / "experiments" / "rotmnist_study_gpu.yaml")
    got = [(r.parameters["seed"], r.parameters["regime"], r.parameters["fold"], r.parameters["model"]) for r in grid.runs]
    want = [(s, reg, f, m) for s in GPU_ARM.seeds() for reg in DESIGN.regimes for f in range(DESIGN.folds)
            for m in DESIGN.models]
    assert got == want and len(got) == 400
    assert {r.parameters["epochs"] for r in grid.runs} == {GPU_ARM.epochs} and GPU_ARM.epochs == LONG_ARM.epochs
    assert GPU_ARM.seeds_per_fold > max(n for _, n in DESIGN.seeds_per_fold)
    assert grid.results == (ROOT / "data" / GPU_ARM.results).resolve()


def test_gpu_arm_judges_every_rule_under_its_own_ids_and_counts_against_its_plan() -> None:
    from equiv.experiments.rotmnist_study import GPU_ARM, GpuArm
    from equiv.study import gpu_arm_judgements, gpu_arm_progress, load_gpu_arm

    empty = pd.DataFrame(columns=["regime", "model"])
    table = gpu_arm_judgements(empty, None)
    assert list(table["id"]) == [r.id + "-gpu" for r in STUDY_RULES]
    assert (table["verdict"] == "not enough data").all() and table["statement"].str.startswith("(GPU arm, 32 epochs").all()
    runs = pd.DataFrame([{"regime": "uniform", "model": "p4-27"}] * 3 + [{"regime": "upright", "model": "z2-28"}])
    done = gpu_arm_progress(runs).set_index(["regime", "model"])
    assert len(done) == len(DESIGN.regimes) * len(DESIGN.models)
    assert (done["planned"] == DESIGN.folds * GPU_ARM.seeds_per_fold).all()
    assert done.loc[("uniform", "p4-27"), "committed"] == 3 and done["committed"].sum() == 4
    accuracy, curves = load_gpu_arm(GpuArm(results="results/no_such_arm"))
    assert accuracy.empty and curves.empty  # nothing committed: empty tables, not an error

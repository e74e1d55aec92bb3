"""equiv.experiments.architectures (claim C2): the runner's tables, checked against brute-force measurement,
its parameter errors, and the ledger row C2-architectures that reads them."""

from __future__ import annotations

import pandas as pd
import pytest
import torch

import equiv.experiments as experiments
from equiv import claims
from equiv.experiments import EXPERIMENTS, ExperimentResult, run_experiment
from equiv.experiments.architectures import ARCHITECTURES, architectures, side_by_side

BY_KEY = {a.key: a for a in ARCHITECTURES}


@pytest.fixture(scope="module")
def result() -> ExperimentResult:
    """Every architecture at the smoke profile, our layers only (e2cnn costs time and is checked in the book)."""
    torch.set_num_threads(1)
    return architectures({"profile": "smoke", "backends": ["native"]})


def _verdict(result: ExperimentResult, key: str) -> pd.DataFrame:
    return result["verdicts"][result["verdicts"]["architecture"] == key].set_index("input_size")


def test_registered_with_its_docs() -> None:
    assert EXPERIMENTS["architectures"][0] is architectures
    assert "``architectures``" in experiments.__doc__ and "architectures" in experiments.__all__
    assert claims.TABLES["architectures"] == "verdicts"


def test_verdicts_are_the_papers_and_one_pixel_flips_them(result) -> None:
    verdicts, networks = result["verdicts"], result["networks"].set_index("architecture")
    assert list(networks.index) == [a.key for a in ARCHITECTURES]
    assert (verdicts["exact"] == verdicts["expected_exact"]).all()
    pairs = {k: (int(r.approx_size), int(r.exact_size)) for k, r in networks.iterrows()}
    assert pairs == {"p4cnn": (29, 28), "resnet44": (32, 33), "resnet18": (32, 33), "resnet18_imagenet": (224, 225)}
    p4 = _verdict(result, "p4cnn")
    assert list(p4.index) == list(range(26, 35)) and p4["in_sweep"].all()
    assert p4.loc[27, "breaking"] == "pool" and p4.loc[28, "breaking"] == ""
    assert (p4.loc[27, "exact_below"], p4.loc[27, "exact_above"]) == (26, 28)
    assert (p4.loc[28, "exact_below"], p4.loc[28, "exact_above"]) == (26, 30)
    assert list(p4.index[p4["pair"]]) == [28, 29]
    imagenet = _verdict(result, "resnet18_imagenet")
    assert imagenet.loc[224, "breaking"].split()[:2] == ["conv1", "maxpool"]
    assert (imagenet.loc[224, "exact_below"], imagenet.loc[224, "exact_above"]) == (193, 225)
    # measured at the pair only: the worst layer is round-off at the exact size, order one at the approximate one
    assert p4.loc[[26, 27, 30], "worst_error_max"].isna().all()
    for key, (approx_n, exact_n) in pairs.items():
        v = _verdict(result, key)
        assert v.loc[exact_n, "worst_error_max"] <= claims.EXACT_TOL
        assert v.loc[approx_n, "worst_error_min"] >= claims.BROKEN_MIN


def test_layers_table_is_the_predictors_and_shows_the_leftover(result) -> None:
    layers = result["layers"]
    p4 = layers[layers["architecture"] == "p4cnn"]
    assert list(p4["layer"].unique()) == ["pool"]
    for r in p4.itertuples():  # 2x2/s2/p0 max-pool: r = (N + 2p - k) mod s on its own input
        n = int(r.layer_input.split("x")[0])
        assert r.r == (n + 2 * r.padding - r.kernel) % r.stride and r.exact == (r.r == 0) and n == r.input_size
    resnet44 = layers[(layers["architecture"] == "resnet44") & (layers["input_size"] == 32)]
    assert list(resnet44["layer"]) == ["layer2.0.conv1", "layer2.0.shortcut.conv", "layer3.0.conv1",
                                       "layer3.0.shortcut.conv"]
    assert list(resnet44["layer_input"]) == ["32x32", "32x32", "16x16", "16x16"] and not resnet44["exact"].any()
    table = side_by_side(layers, "resnet44", [32, 33])
    assert list(table.columns) == ["layer", "op", "kernel", "stride", "padding", "input at N=32", "r at N=32",
                                   "exact at N=32", "input at N=33", "r at N=33", "exact at N=33"]
    assert list(table["exact at N=32"]) == ["no"] * 4 and list(table["exact at N=33"]) == ["yes"] * 4
    assert list(table["input at N=33"]) == ["33x33", "33x33", "17x17", "17x17"]
    with pytest.raises(ValueError, match="architecture 'vgg' is not in the layers table"):
        side_by_side(layers, "vgg", [32])
    with pytest.raises(ValueError, match="input size 99 of 'resnet44' is not in the layers table"):
        side_by_side(layers, "resnet44", [32, 99])


def test_measured_errors_rise_first_at_the_layer_the_predictor_flags(result) -> None:
    measured, errors = result["measured"], result["errors"]
    assert set(measured["backend"]) == {"native"} and len(measured) == 2 * len(ARCHITECTURES)
    approx, exact = measured[~measured["exact"]], measured[measured["exact"]]
    assert approx["agrees"].all() and (approx["first_rise"] == approx["first_flagged"]).all()
    assert (approx["max_error"] >= claims.BROKEN_MIN).all() and (exact["max_error"] <= claims.EXACT_TOL).all()
    assert (exact["first_rise"] == "").all() and (exact["first_flagged"] == "").all()
    p4 = errors[(errors["architecture"] == "p4cnn") & (errors["input_size"] == 29)]
    assert list(p4.loc[p4["flagged"], "layer"]) == ["pool"] and p4["layer"].iloc[-1] == "<output>"
    assert (p4.loc[p4["position"] < int(p4.loc[p4["flagged"], "position"].iloc[0]), "error"] <= claims.EXACT_TOL).all()


@pytest.mark.parametrize("key", ["p4cnn", "resnet44"])
def test_verdicts_match_brute_force_rotation_in_float64(result, key) -> None:
    """Rotate the input with torch.rot90 and compare the logits, which the invariant coset head leaves
    unchanged at an exact size (the output action is the identity). Width 4: the verdicts do not depend on the
    width, and at width 2 a random P4CNN can have dead final features (logits invariant by accident)."""
    arch = BY_KEY[key]
    model = arch.build(4, 0).double().eval()
    verdicts = _verdict(result, key)
    assert verdicts["exact"].any() and (~verdicts["exact"]).any()
    generator = torch.Generator().manual_seed(1)
    for n, exact in verdicts["exact"].items():
        x = torch.randn(2, model.in_channels, n, n, dtype=torch.float64, generator=generator)
        with torch.no_grad():
            y = model(x)
            error = max(float((model(torch.rot90(x, k, dims=(-2, -1))) - y).abs().max()) for k in (1, 2, 3))
        if exact:
            assert error <= 1e-12, f"{key} at {n}: the runner says exact, rot90 gives {error:.1e}"
        else:
            assert error > 1e-6, f"{key} at {n}: the runner says approximate, rot90 gives {error:.1e}"


@pytest.mark.parametrize("params, match", [
    ({"architectures": ["vgg16"]}, "parameter 'architectures' has value 'vgg16'; allowed: 'p4cnn'"),
    ({"width": 0}, r"parameter 'width' = 0 is impossible; allowed: >= 1"),
    ({"small_sizes": [28, 5000]}, r"parameter 'small_sizes' = \[28, 5000\] is impossible; allowed: sizes in 1..1024"),
    ({"small_sizes": [3], "architectures": ["p4cnn"]}, r"parameter 'small_sizes' has '3 \(P4CNN\)': input size 3 is too "
                                                       "small for the model"),
    ({"backends": ["tf"]}, "parameter 'backends' has value 'tf'; allowed: 'native', 'e2cnn'"),
    ({"seeds": 3}, "unknown parameter 'seeds' for architectures; allowed: architectures, backends"),
    ({"batch": 1.5}, r"parameter 'batch' must be of type int, got 1.5 \(float\)"),
])
def test_bad_parameters_are_one_line_errors_before_any_work(params, match) -> None:
    with pytest.raises(ValueError, match=match) as err:
        run_experiment("architectures", {"profile": "smoke", **params}, cache=False)
    assert "\n" not in str(err.value)


# ----------------------------------------------------------------------------------------- the ledger row
def _row(verdicts: pd.DataFrame) -> pd.Series:
    return claims.ledger_rows({"architectures": verdicts}, ["C2-architectures"]).iloc[0]


def test_ledger_rule_holds_on_the_real_table_also_after_a_save(result, tmp_path) -> None:
    row = _row(result["verdicts"])
    assert (row["verdict"], row["at_this_scale"], row["chapter"], row["needs"]) == ("reproduced", "rule met",
                                                                                    "architectures", "smoke")
    assert row["ours"].startswith(f"{len(result['verdicts'])} of {len(result['verdicts'])} verdicts as the paper says")
    result.save(tmp_path / "r")  # the cached CSV: empty strings come back as NaN, bools as bools
    assert _row(ExperimentResult.load(tmp_path / "r")["verdicts"])["verdict"] == "reproduced"


def test_ledger_rule_fails_on_doctored_tables(result) -> None:
    verdicts = result["verdicts"]
    flipped = verdicts.copy()
    at = flipped.index[(flipped["architecture"] == "resnet18") & (flipped["input_size"] == 29)]
    flipped.loc[at, "exact"] = True  # the predictor "says" 29 is exact for ResNet-18: not the paper's N ≡ 1 mod 8
    row = _row(flipped)
    assert row["verdict"] == "not reproduced" and "ResNet-18: " in row["ours"] and "not the paper's at 29" in row["ours"]
    unmeasured = verdicts.copy()
    at = unmeasured.index[(unmeasured["architecture"] == "p4cnn") & unmeasured["pair"] & ~unmeasured["exact"]]
    unmeasured.loc[at, "worst_error_min"] = 1e-9  # the approximate size measured as (nearly) equivariant
    assert _row(unmeasured)["verdict"] == "not reproduced"
    far = verdicts[~((verdicts["architecture"] == "resnet18") & verdicts["input_size"].isin([32, 34]))]
    assert "no exact size one pixel from an approximate one" in _row(far)["ours"]  # 33 left alone among its sizes
    assert _row(far)["verdict"] == "not reproduced"
    missing = verdicts[verdicts["architecture"] != "resnet44"]
    row = _row(missing)
    assert row["verdict"] == "no data" and "missing ResNet-44" in row["ours"]
    kept = verdicts["architecture"] != "resnet18"
    unmeasured = verdicts.assign(worst_error_min=verdicts["worst_error_min"].where(kept))
    row = _row(unmeasured)
    assert row["verdict"] == "no data" and "none for ResNet-18" in row["ours"]
    renamed = verdicts.assign(architecture=verdicts["architecture"].replace({"resnet44": "vgg"}))
    assert _row(renamed)["ours"].startswith("cannot evaluate: unknown architecture 'vgg'")


def test_rule_text_states_each_architectures_expected_sizes() -> None:
    evidence = next(e for e in claims.EVIDENCE if e.id == "C2-architectures")
    assert (evidence.claim, evidence.experiment, evidence.chapter, evidence.needs) == ("C2", "architectures",
                                                                                        "architectures", "smoke")
    for arch in ARCHITECTURES:
        assert arch.expected in evidence.rule, arch.expected


def test_gather_results_passes_progress_only_to_runners_that_take_it(tmp_path, monkeypatch) -> None:
    monkeypatch.setenv("EQUIV_DATA_DIR", str(tmp_path))  # nothing collected there: every experiment "runs"
    monkeypatch.setattr(claims, "study_judgements", lambda: pd.DataFrame())
    calls = {}

    def fake_run(name, params, **kwargs):
        calls[name] = kwargs
        return {claims.TABLES[name]: pd.DataFrame({"x": [name]})}

    claims.gather_results("smoke", run=fake_run)
    assert calls["architectures"] == {} and calls["learning_unequivariance"] == {}
    assert calls["rotated_mnist"] == {"progress": False} and calls["layerwise_equivariance"] == {"progress": False}

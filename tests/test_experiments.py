"""Experiment runners: parameter validation before work, smoke runs with the documented columns,
provenance in every table, atomic complete-or-absent result folders, the cache."""

from __future__ import annotations

import json

import pandas as pd
import pytest

from equiv.experiments import EXPERIMENTS, ExperimentResult, resolve_params, run_experiment
from equiv.experiments.cache import result_key
from equiv.experiments.params import resolve_profile
from equiv.glyphs import glyph


@pytest.fixture(scope="module")
def rotmnist():
    params = {"profile": "smoke", "configs": ["p4-27", "p4-28", "z2-28"]}
    return run_experiment("rotated_mnist", params, cache=False, progress=False)


def test_rotated_mnist_smoke_columns_and_the_papers_effect(rotmnist) -> None:
    acc = rotmnist["accuracy"]
    for col in ("train_rotation", "group", "input_size", "planes", "seed", "test_angle", "accuracy", "profile",
                "epochs", "lr"):
        assert col in acc.columns, col
    assert len(acc) == 3 * 5 and set(acc["profile"]) == {"smoke"}
    exact = acc[(acc.group == "p4") & (acc.input_size == 28)].set_index("test_angle")["correct"]
    approx = acc[(acc.group == "p4") & (acc.input_size == 27)].set_index("test_angle")["correct"]
    # exact P4: the very same digits are right at every right angle (invariant logits)
    assert exact[[0.0, 90.0, 180.0, 270.0]].nunique() == 1
    # approximate P4: not identical at right angles
    assert approx[[0.0, 90.0, 180.0, 270.0]].nunique() > 1
    prov = acc.attrs["provenance"]
    assert {"code", "libraries", "device", "host", "wall_seconds"} <= set(prov)
    assert acc.attrs["params"]["configs"] == ["p4-27", "p4-28", "z2-28"]
    assert list(rotmnist["training"]["epoch"].unique()) == [1, 2]


def test_results_are_saved_completely_or_not_at_all(rotmnist, tmp_path) -> None:
    rotmnist.save(tmp_path / "r")
    back = ExperimentResult.load(tmp_path / "r")
    assert set(back) == {"accuracy", "training"}
    assert back["accuracy"].attrs["params"] == json.loads(json.dumps(rotmnist["accuracy"].attrs["params"]))
    pd.testing.assert_frame_equal(back["accuracy"].reset_index(drop=True),
                                  pd.read_csv(tmp_path / "r" / "accuracy.csv"))
    (tmp_path / "r" / "tables.json").unlink()  # as if the run died before finishing
    with pytest.raises(FileNotFoundError, match="no complete experiment result"):
        ExperimentResult.load(tmp_path / "r")
    assert not list((tmp_path / "r").glob("*.tmp"))


def test_learning_unequivariance_smoke(tmp_path, monkeypatch) -> None:
    monkeypatch.setenv("EQUIV_RESULTS_CACHE", str(tmp_path))
    res = run_experiment("learning_unequivariance", {"profile": "smoke"})
    loss = res["loss"]
    assert set(loss["input_size"]) == {32, 33}
    at33 = loss[loss.input_size == 33]
    assert (at33["logit_gap"] < 1e-5).all()  # exact: both images get the same logits at every step
    assert (at33["loss"] > 0.6931).all()  # ... so the loss never goes below ln 2
    assert loss[loss.input_size == 32]["logit_gap"].max() > 1e-3
    panels = res["panels"]
    assert set(panels["panel"]) == {"f(x)", "T^-1 f(Tx)"} and set(panels["step"]) == {0, 150}
    # cached: a second call loads the same files instead of training
    again = run_experiment("learning_unequivariance", {"profile": "smoke"})
    assert again["loss"].attrs["provenance"]["timestamp_utc"] == loss.attrs["provenance"]["timestamp_utc"]
    assert len(list(tmp_path.glob("learning_unequivariance/*/tables.json"))) == 1


def test_layerwise_and_benchmark_smoke(tmp_path, monkeypatch) -> None:
    monkeypatch.setenv("EQUIV_RESULTS_CACHE", str(tmp_path))
    err = run_experiment("layerwise_equivariance", {"profile": "smoke", "configs": ["p4-27", "p4-28"],
                                                    "train_size": 100}, progress=False)["errors"]
    assert set(err["epoch"]) == {0, 1}
    worst = err.groupby(["input_size", "epoch"])["error"].max()
    assert worst[28].max() < 1e-10 and worst[27].min() > 1e-3
    conv1 = err[(err.layer == "conv1") & (err.input_size == 27)]
    assert conv1["error"].max() < 1e-10  # stride-1 layers stay exact even at the approximate size
    bench = run_experiment("classification_benchmark", {"profile": "smoke", "groups": ["p4"], "train_size": 60,
                                                         "test_size": 40}, progress=False)
    summary = bench["summary"]
    assert set(summary.columns) >= {"group", "input_size", "seen", "unseen_incl0", "unseen_excl0"}
    exact = summary[summary.input_size == 33].iloc[0]
    assert exact.seen == exact.unseen_incl0 == exact.unseen_excl0  # exact model: rotations change nothing


@pytest.mark.parametrize("name,params,match", [
    ("rotated_mnist", {"epoch": 3}, "unknown parameter 'epoch' for rotated_mnist; allowed: "),
    ("rotated_mnist", {"epochs": "3"}, "parameter 'epochs' must be of type int, got '3'"),
    ("rotated_mnist", {"epochs": 0}, "parameter 'epochs' = 0 is impossible; allowed: >= 1"),
    ("rotated_mnist", {"configs": ["p4_28"]}, "parameter 'configs' = \\['p4_28'\\] is impossible"),
    ("rotated_mnist", {"train_rotations": ["sideways"]}, "parameter 'train_rotations' has value 'sideways'; allowed: "),
    ("rotated_mnist", {"profile": "huge"}, "unknown profile 'huge'; allowed: smoke, book, paper"),
    ("rotated_mnist", {"source": "web"}, "parameter 'source' has value 'web'"),
    ("learning_unequivariance", {"glyph": "Q"}, "parameter 'glyph' has value 'Q'"),
    ("classification_benchmark", {"dataset": "imagenet"}, "parameter 'dataset' has value 'imagenet'"),
    ("nonsense", {}, "unknown experiment 'nonsense'; allowed: "),
])
def test_bad_parameters_are_rejected_before_any_work(name, params, match) -> None:
    with pytest.raises(ValueError, match=match):
        run_experiment(name, params)


def test_profiles_and_defaults(monkeypatch) -> None:
    monkeypatch.delenv("EQUIV_PROFILE", raising=False)
    assert resolve_profile(None) == "book"
    monkeypatch.setenv("EQUIV_PROFILE", "smoke")
    assert resolve_profile(None) == "smoke" and resolve_profile("paper") == "paper"
    paper = resolve_params("rotated_mnist", {"profile": "paper"})
    assert (paper["source"], paper["train_size"], paper["val_size"], paper["test_size"]) == ("full", 8000, 2000, 60000)
    assert (paper["epochs"], paper["seeds"], paper["lr"], paper["weight_decay"], paper["batch_size"]) == (50, 100, 0.01, 1e-5, 256)
    assert len(paper["test_angles"]) == 36
    for name in EXPERIMENTS:  # every experiment resolves at every profile
        for profile in ("smoke", "book", "paper"):
            assert resolve_params(name, {"profile": profile})["profile"] == profile
    a = resolve_params("rotated_mnist", {"profile": "smoke"})
    assert result_key("rotated_mnist", a) == result_key("rotated_mnist", dict(a))
    assert result_key("rotated_mnist", a) != result_key("rotated_mnist", {**a, "epochs": 7})


def test_glyphs_are_asymmetric() -> None:
    import torch

    for name in ("F", "flag", "R"):
        for n in (32, 33):
            g = glyph(name, n)
            assert g.shape == (1, 1, n, n) and 0 <= g.min() and g.max() <= 1 and g.sum() > n
            for k in (1, 2, 3):
                assert (torch.rot90(g, k, dims=(-2, -1)) - g).abs().sum() > 1
            assert (torch.flip(g, dims=(-1,)) - g).abs().sum() > 1
    with pytest.raises(ValueError, match="unknown glyph 'Z'"):
        glyph("Z")

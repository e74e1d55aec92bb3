"""equiv.reference: the paper's reference runs, their headline table, and collected paper-scale tables."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from equiv import reference as ref
from equiv.evaluation import TEST_ANGLES, summarize_sweep

# The headline table of the brief (paper.md): mean ± std over 100 seeds, upright training.
PAPER_HEADLINE = {
    ("p4", 28): ((97.69, 0.17), (97.69, 0.17), (87.22, 1.11)),
    ("p4", 27): ((98.52, 0.26), (77.55, 2.85), (66.17, 2.35)),
    ("p4", 29): ((98.42, 0.25), (77.81, 3.16), (66.29, 2.93)),
    ("z2", 28): ((98.47, 0.17), (44.59, 0.83), (42.79, 0.86)),
}


@pytest.fixture(scope="module")
def reference_runs() -> pd.DataFrame:
    return ref.load_reference()


def _runs(spec: dict, angles=TEST_ANGLES, rotation: str = "upright") -> pd.DataFrame:
    """A per-angle table: spec maps (group, size, seed) -> function angle -> accuracy."""
    rows = []
    for (group, size, seed), fn in spec.items():
        for a in angles:
            rows.append({"train_rotation": rotation, "group": group, "input_size": size, "seed": seed,
                         "test_angle": float(a), "accuracy": float(fn(a))})
    return pd.DataFrame(rows)


# ----------------------------------------------------------------------------------------- real reference CSV
def test_reference_file_is_complete(reference_runs):
    assert len(reference_runs) == 880 * 36
    runs = reference_runs.groupby(list(ref.RUN_KEYS)).size()
    assert len(runs) == 880 and (runs == 36).all()
    assert set(reference_runs["train_rotation"]) == {"upright", "normal45_sd20", "normal45_sd40", "uniform"}
    assert reference_runs.attrs["source"].endswith("data/reference/rotmnist_official_runs.csv")


def test_headline_reproduces_the_papers_table_to_two_decimals(reference_runs):
    table = ref.headline_table(reference_runs)
    upright = table[table["train_rotation"] == "upright"].set_index(["group", "input_size"])
    assert len(upright) == 4
    for key, expected in PAPER_HEADLINE.items():
        row = upright.loc[key]
        assert row["n_seeds"] == 100 and row["n_angles"] == 36
        for metric, (mean, std) in zip(ref.METRICS, expected):
            assert round(row[f"{metric}_mean"], 2) == mean, (key, metric)
            assert round(row[f"{metric}_std"], 2) == std, (key, metric)


def test_papers_plus_minus_is_the_population_std(reference_runs):
    sample = ref.headline_table(reference_runs, ddof=1).set_index(["train_rotation", "group", "input_size"])
    # with the sample std the P4-27 right-angle column would read 2.87, not the paper's 2.85
    assert round(sample.loc[("upright", "p4", 27), "acc_right_angles_std"], 2) == 2.87


def test_uniform_training_numbers_of_the_brief(reference_runs):
    table = ref.headline_table(reference_runs).set_index(["train_rotation", "group", "input_size"])
    for size in (27, 28, 29):
        assert round(table.loc[("uniform", "p4", size), "acc_0_mean"], 1) == 96.9
    assert round(table.loc[("uniform", "z2", 28), "acc_0_mean"], 1) == 91.6
    assert table.loc[("normal45_sd20", "p4", 28), "n_seeds"] == 10


def test_format_headline_like_the_paper(reference_runs):
    text = ref.format_headline(ref.headline_table(reference_runs))
    row = text[(text["train_rotation"] == "upright") & (text["model"] == "P4 exact (28)")].iloc[0]
    assert row["acc @0°"] == "97.69 ± 0.17"
    assert row["mean over all angles"] == "87.22 ± 1.11"
    assert set(text.loc[text["train_rotation"] == "upright", "model"]) == {
        "P4 exact (28)", "P4 approx (27)", "P4 approx (29)", "Z2 CNN (28)"}


def test_exact_model_is_identical_at_right_angles_in_the_papers_runs(reference_runs):
    spread = ref.right_angle_spread(reference_runs)
    exact = spread[(spread["group"] == "p4") & (spread["input_size"] == 28)]
    approx = spread[(spread["group"] == "p4") & (spread["input_size"] != 28)]
    assert len(exact) == 220 and (exact["right_angle_spread"] == 0).all()
    assert (approx["right_angle_spread"] > 0).all()


# ---------------------------------------------------------------------------------------- synthetic frames
def test_per_run_summary_matches_summarize_sweep():
    frame = _runs({("p4", 28, 1): lambda a: 90 + (a % 90 == 0) * 5, ("p4", 28, 2): lambda a: 80 + a / 36})
    runs = ref.per_run_summary(frame).set_index("seed")
    for seed in (1, 2):
        sweep = frame[frame["seed"] == seed].rename(columns={"test_angle": "angle"})
        expected = summarize_sweep(sweep)
        for key, value in expected.items():
            assert runs.loc[seed, key] == pytest.approx(value)
    assert runs.loc[1, "acc_0"] == 95 and runs.loc[1, "acc_right_angles"] == 95
    assert runs.loc[1, "acc_all_angles"] == pytest.approx(90 + 5 * 4 / 36)
    assert (runs["n_angles"] == 36).all()


def test_headline_mean_std_single_seed_and_format():
    frame = _runs({("p4", 28, 1): lambda a: 90.0, ("p4", 28, 2): lambda a: 92.0, ("z2", 28, 1): lambda a: 50.0},
                  angles=(0, 90, 180, 270))
    table = ref.headline_table(frame).set_index(["group", "input_size"])
    assert table.loc[("p4", 28), "acc_0_mean"] == 91.0
    assert table.loc[("p4", 28), "acc_0_std"] == 1.0  # population std of {90, 92}
    assert table.loc[("z2", 28), "acc_0_std"] == 0.0
    assert table.loc[("p4", 28), "n_angles"] == 4
    text = ref.format_headline(ref.headline_table(frame)).set_index("model")
    assert text.loc["P4 exact (28)", "acc @0°"] == "91.00 ± 1.00"
    assert text.loc["Z2 CNN (28)", "acc @0°"] == "50.00"  # one seed: no ±


def test_summary_errors_name_the_problem():
    frame = _runs({("p4", 27, 3): lambda a: 50.0}, angles=(0, 90, 180))
    with pytest.raises(ValueError, match=r"'seed': 3.*0, 90, 180 and 270"):
        ref.per_run_summary(frame)
    with pytest.raises(ValueError, match="lacks column"):
        ref.per_run_summary(frame.drop(columns=["accuracy"]))
    with pytest.raises(ValueError, match="empty"):
        ref.per_run_summary(frame.iloc[:0])


def test_headline_comparison_keeps_only_what_we_ran(reference_runs):
    ours = _runs({("p4", 28, 1): lambda a: 80.0, ("p4", 27, 1): lambda a: 70.0})
    table = ref.headline_comparison(ours, reference_runs)
    assert list(table.index.get_level_values("model")) == ["P4 approx (27)", "P4 exact (28)"]
    assert table.loc[("upright", "P4 exact (28)"), ("acc @0°", "paper")] == "97.69 ± 0.17"
    assert table.loc[("upright", "P4 exact (28)"), ("acc @0°", "ours")] == "80.00"
    assert table.loc[("upright", "P4 exact (28)"), ("seeds", "paper")] == 100


def test_model_label_uses_the_exactness_predictor():
    assert ref.model_label("p4", 28) == "P4 exact (28)"
    assert ref.model_label("p4", 26) == "P4 exact (26)"
    assert ref.model_label("p4", 27) == "P4 approx (27)"
    assert ref.model_label("z2", 28) == "Z2 CNN (28)"
    assert ref.model_label("p4m", 33, "resnet44") == "P4M exact (33)"
    assert ref.model_label("p4m", 32, "resnet44") == "P4M approx (32)"


# --------------------------------------------------------------------------------------- locating the files
def test_missing_reference_is_a_clear_file_not_found(tmp_path, monkeypatch):
    monkeypatch.setenv("EQUIV_DATA_DIR", str(tmp_path))
    with pytest.raises(FileNotFoundError, match=r"rotmnist_official_runs\.csv.*data/reference/"):
        ref.load_reference()
    monkeypatch.setenv("EQUIV_DATA_DIR", str(tmp_path / "nowhere"))
    with pytest.raises(FileNotFoundError, match="is not a directory"):
        ref.data_dir()
    with pytest.raises(FileNotFoundError, match="not at"):
        ref.load_reference(tmp_path / "missing.csv")


def test_reference_from_an_explicit_path_and_bad_columns(tmp_path):
    good = _runs({("p4", 28, 1): lambda a: 99.0}).assign(planes=10)
    good.to_csv(tmp_path / "runs.csv", index=False)
    assert len(ref.load_reference(tmp_path / "runs.csv")) == 36
    good.drop(columns=["planes"]).to_csv(tmp_path / "bad.csv", index=False)
    with pytest.raises(ValueError, match="lacks column.*planes"):
        ref.load_reference(tmp_path / "bad.csv")


def test_load_collected(tmp_path, monkeypatch):
    monkeypatch.setenv("EQUIV_DATA_DIR", str(tmp_path))
    assert ref.load_collected("rotated_mnist") is None
    assert ref.collected_path("rotated_mnist") == tmp_path / "results" / "rotated_mnist_paper.csv"
    (tmp_path / "results").mkdir()
    pd.DataFrame({
        "seeds": ["[1]", "[1]", "[2]"], "status": ["done", "done", "failed"], "profile": "paper",
        "seed": [1, 1, np.nan], "metric.seeds": [5, 6, np.nan], "accuracy": [90.0, 91.0, np.nan],
    }).to_csv(tmp_path / "results" / "rotated_mnist_paper.csv", index=False)
    frame = ref.load_collected("rotated_mnist")
    assert len(frame) == 2  # the failed run is dropped
    assert list(frame["seeds"]) == [5, 6]  # a notebook's own `metric.<name>` field wins over the parameter
    assert "metric.seeds" not in frame.columns
    assert frame.attrs["profile"] == "paper"

"""The numbers the chapters glue and tabulate, computed by the library from the experiments' tables: each checked
against an independent computation on a small synthetic table.

Covers :mod:`equiv.experiments.unequivariance` (final losses, feature-map differences, training images),
:mod:`equiv.experiments.layerwise` (per-layer errors, summary numbers), :mod:`equiv.experiments.architectures`
(size sweeps), :mod:`equiv.experiments.rotated_mnist` and :mod:`equiv.experiments.benchmark` (contrast numbers),
:func:`equiv.evaluation.contrast_numbers`, :mod:`equiv.reference` (model labels) and :mod:`equiv.book_text`.
"""

from __future__ import annotations

import html
import importlib
import math

import numpy as np
import pandas as pd
import pytest
import torch

from equiv import book_text, claims, reference
from equiv.evaluation import contrast_numbers
from equiv.glyphs import glyph

# the package equiv.experiments re-exports the runners under the modules' names: import the modules themselves
arch = importlib.import_module("equiv.experiments.architectures")
benchmark = importlib.import_module("equiv.experiments.benchmark")
layerwise = importlib.import_module("equiv.experiments.layerwise")
rotated_mnist = importlib.import_module("equiv.experiments.rotated_mnist")
uneq = importlib.import_module("equiv.experiments.unequivariance")

RNG = np.random.default_rng(1)


# ------------------------------------------------------------------------------------ learning unequivariance
def _loss() -> pd.DataFrame:
    """Probe losses at 32 (approximate) and 33 (exact), seeds 0–2, steps 0–4; seed 2 at 32 never learns."""
    rows = []
    for size in (32, 33):
        for seed in (0, 1, 2):
            for step in range(5):
                learns = size == 32 and seed < 2
                loss = math.log(2) - (0.15 * step * (seed + 1) if learns else 0.0)
                rows.append({"input_size": size, "seed": seed, "step": step, "loss": loss,
                             "logit_gap": 1e-7 * step if size == 33 else 0.3, "accuracy": 100.0 if learns else 50.0})
    return pd.DataFrame(rows).sample(frac=1.0, random_state=0)  # the functions must not rely on row order


def test_final_losses_are_the_last_steps_over_seeds() -> None:
    loss = _loss()
    last = loss[loss["step"] == loss["step"].max()]
    expected = last.groupby("input_size")["loss"].agg(["mean", "min", "max"])
    pd.testing.assert_frame_equal(uneq.final_losses(loss), expected)


def test_probe_numbers_against_a_direct_computation() -> None:
    loss = _loss()
    numbers = uneq.probe_numbers(loss, 32, 33)
    final = {(r.input_size, r.seed): r.loss for r in loss[loss["step"] == 4].itertuples()}
    approx = [final[(32, s)] for s in range(3)]
    assert numbers["final_loss_approx"] == pytest.approx(np.mean(approx))
    assert numbers["final_loss_approx_min"] == min(approx) and numbers["final_loss_approx_max"] == max(approx)
    assert numbers["final_loss_exact"] == pytest.approx(math.log(2))
    assert numbers["final_loss_exact_min"] == pytest.approx(math.log(2))
    assert numbers["max_gap_exact"] == pytest.approx(4e-7)
    assert numbers["n_seeds"] == 3
    assert numbers["seeds_solved"] == sum(v < math.log(2) / 2 for v in approx) == 2
    assert numbers["clearly_below"] is bool(np.mean(approx) < math.log(2) - claims.PROBE_MARGIN)
    assert uneq.SOLVED_LOSS == pytest.approx(math.log(2) / 2) and uneq.LN2 == pytest.approx(math.log(2))


def test_probe_numbers_refuse_a_size_without_runs() -> None:
    with pytest.raises(ValueError, match="input size 30"):
        uneq.probe_numbers(_loss(), 30, 33)


def _panels() -> tuple[pd.DataFrame, dict]:
    """Random feature maps f and T⁻¹f(T·) at sizes 32, 33 and steps 0, 50; the exact size's two panels agree."""
    rows, arrays = [], {}
    for size in (32, 33):
        for step in (0, 50):
            f = RNG.normal(size=(4, 3, 3))
            back = f + (0.0 if size == 33 else RNG.normal(scale=0.5 + step / 100, size=f.shape))
            arrays[(size, step)] = (f, back)
            for name, t in (("f(x)", f), ("T^-1 f(Tx)", back)):
                for g, element in enumerate(("e", "r", "r2", "r3")):
                    for i in range(3):
                        for j in range(3):
                            rows.append({"input_size": size, "step": step, "panel": name, "element": element,
                                         "row": i, "col": j, "value": t[g, i, j]})
    return pd.DataFrame(rows), arrays


def test_panel_differences_are_the_relative_norm_over_all_channels() -> None:
    panels, arrays = _panels()
    diff = uneq.panel_differences(panels)
    assert list(diff.columns) == ["input_size", "step", "relative_difference"]
    for row in diff.itertuples():
        f, back = arrays[(row.input_size, row.step)]
        assert row.relative_difference == pytest.approx(np.linalg.norm(f - back) / np.linalg.norm(f))
    numbers = uneq.panel_numbers(diff, 32, 33)
    first, last = (np.linalg.norm(arrays[(32, s)][0] - arrays[(32, s)][1]) / np.linalg.norm(arrays[(32, s)][0])
                   for s in (0, 50))
    assert numbers["panel_first_step"] == 0
    assert numbers["panel_diff_approx_first"] == pytest.approx(first)
    assert numbers["panel_diff_approx"] == pytest.approx(last)
    assert numbers["panel_diff_exact"] == 0.0
    assert numbers["panel_trend"] == ("grows" if last > first else "shrinks")


def test_training_images_are_the_glyph_and_its_rotation() -> None:
    params = {"glyph": "R", "intensity": 255.0, "antialias": False}
    pair = uneq.training_pair(params, 12)
    img = glyph("R", 12, supersample=1).float() * 255.0  # a hard-edged bitmap: antialias False
    assert torch.equal(pair[0], img[0]) and torch.equal(pair[1], torch.rot90(img, 1, dims=(-2, -1))[0])
    table = uneq.image_table(params, [12, 13])
    assert len(table) == 2 * (12 * 12 + 13 * 13)
    for label in (0, 1):
        back = table[(table["input_size"] == 12) & (table["label"] == label)].pivot(index="row", columns="col",
                                                                                     values="value")
        assert np.array_equal(back.to_numpy(), pair[label, 0].numpy())


# ------------------------------------------------------------------------------------------ training dynamics
def test_per_layer_errors_take_the_worst_non_identity_element() -> None:
    errors = pd.DataFrame([{"config": "p4-27", "epoch": 0, "order": 0, "layer": "conv", "element": g, "error": e}
                           for g, e in (("e", 5.0), ("r", 0.1), ("r2", 0.3), ("r3", 0.2))])
    per = layerwise.per_layer_errors(errors)
    assert per.to_dict("records") == [{"config": "p4-27", "epoch": 0, "order": 0, "layer": "conv", "error": 0.3}]


def test_summary_numbers_against_a_direct_computation() -> None:
    summary = pd.DataFrame({
        "config": ["p4-27", "p4-28", "p4-29"], "exact": [False, True, False],
        "first_break": ["pool", None, "pool"], "first_break_error": [0.7, math.nan, 0.5],
        "max_before_break": [2e-16, 3e-16, 4e-16], "max_all_epochs": [0.9, 5e-16, 0.8],
        "output_init": [1e-3, 1e-16, 2e-3], "output_final": [5e-3, 2e-16, 2e-2]})
    numbers = layerwise.summary_numbers(summary)
    assert numbers == {"exact_max": 5e-16, "before_break_max": 4e-16, "break_error_min": 0.5,
                       "output_init_max": 2e-3, "output_final_max": 2e-2,
                       "output_ratio_min": pytest.approx(5.0), "output_ratio_max": pytest.approx(10.0),
                       "break_layer": "pool"}
    assert layerwise.summary_numbers(summary[summary["exact"]])["break_layer"] == "none"
    with pytest.raises(ValueError, match="lacks column"):
        layerwise.summary_numbers(summary.drop(columns="output_init"))


# --------------------------------------------------------------------------------------------- architectures
def _verdicts() -> pd.DataFrame:
    rows = []
    for key, label, model, sizes, pair in (("p4cnn", "P4CNN", "p4cnn", range(26, 31), (28, 29)),
                                           ("resnet18_imagenet", "ResNet-18 (torchvision)", "resnet18_imagenet",
                                            range(222, 225), (224, 225))):
        for n in sorted(set(sizes) | set(pair)):
            exact = n % 2 == 0 if key == "p4cnn" else n % 32 == 1
            rows.append({"architecture": key, "label": label, "model": model, "input_size": n, "exact": exact,
                         "in_sweep": n in sizes, "pair": n in pair})
    return pd.DataFrame(rows)


def test_sweep_verdicts_keep_the_sweeps_and_name_them() -> None:
    sweeps = arch.sweep_verdicts(_verdicts())
    assert sweeps["in_sweep"].all() and len(sweeps) == 5 + 3
    assert dict(zip(sweeps["architecture"], sweeps["sweep"])) == {"p4cnn": "small_sizes",
                                                                   "resnet18_imagenet": "imagenet_sizes"}
    with pytest.raises(ValueError, match="unknown architecture"):
        arch.sweep_verdicts(_verdicts().assign(architecture="vgg"))


def test_sweep_exact_sizes_are_the_exact_sizes_of_each_sweep() -> None:
    table = arch.sweep_exact_sizes(_verdicts())
    assert table["label"].tolist() == ["P4CNN", "ResNet-18 (torchvision)"]
    assert table["exact_sizes"].tolist() == [[26, 28, 30], []]  # 225 is exact but only in the pair
    assert table["exact_text"].tolist() == ["26, 28, 30", "none"]


def test_measured_numbers_against_a_direct_computation() -> None:
    measured = pd.DataFrame({"exact": [False, True, False, True], "agrees": [True, True, False, True],
                             "max_error": [0.9, 2e-16, 0.7, 3e-16], "max_before_flagged": [1e-16, 2e-16, 4e-16, 3e-16],
                             "output_error": [0.01, 1e-16, 0.002, 1e-16]})
    assert arch.measured_numbers(measured) == {
        "n_models": 2, "first_rise_at_predicted": 1, "max_error_exact_layers": 3e-16,
        "max_before_flagged_approx": 4e-16, "min_logit_error_approx": 0.002, "max_logit_error_approx": 0.01,
        "max_error_approx_layers": 0.9}
    with pytest.raises(ValueError, match="lacks column"):
        arch.measured_numbers(measured.drop(columns="agrees"))


# --------------------------------------------------------------------------------------- contrasts, labels
def test_contrast_numbers_average_and_take_the_smallest_gap() -> None:
    table = pd.DataFrame({"exact_acc": [90.0, 92.0], "gap": [1.0, -0.5]})
    assert contrast_numbers(table, ["exact_acc"], ["gap"], prefix="x_") == {"x_exact_acc": 91.0, "x_gap_min": -0.5}
    empty = contrast_numbers(pd.DataFrame(), ["exact_acc"], ["gap"])
    assert set(empty) == {"exact_acc", "gap_min"} and all(math.isnan(v) for v in empty.values())
    with pytest.raises(ValueError, match="lacks column"):
        contrast_numbers(table, ["approx_acc"])


def _per_angle(sizes: dict[int, float], seeds=(1, 2), regime: str = "upright") -> pd.DataFrame:
    """A per-angle table: P4 at each size with accuracy base + seed at 0° and base − 10 elsewhere."""
    return pd.DataFrame([{"train_rotation": regime, "group": "p4", "input_size": n, "seed": s, "test_angle": a,
                          "accuracy": base + s - (0 if a == 0 else 10)}
                         for n, base in sizes.items() for s in seeds for a in (0, 90, 180, 270)])


def test_rotmnist_contrast_numbers_against_a_direct_computation() -> None:
    ours = _per_angle({28: 95.0, 27: 93.0})
    paper = pd.concat([_per_angle({28: 96.0, 27: 94.0, 29: 90.0}, seeds=(1, 2, 3)),
                       _per_angle({28: 50.0, 27: 40.0}, regime="uniform")])
    contrasts = rotated_mnist.contrasts_beside_reference(ours, paper)
    assert contrasts.xs("paper", level="source")["approx_size"].tolist() == [27]  # only the sizes we ran
    numbers = rotated_mnist.contrast_key_numbers(contrasts)
    assert numbers["ours_exact_acc_0"] == pytest.approx(96.5)  # 95 + mean seed 1.5
    assert numbers["ours_approx_acc_0"] == pytest.approx(94.5)
    assert numbers["ours_exact_acc_right"] == pytest.approx(96.5 - 7.5)
    assert numbers["ours_gap_0_min"] == pytest.approx(-2.0)
    assert numbers["paper_exact_acc_0"] == pytest.approx(98.0)
    assert numbers["paper_gap_all_min"] == pytest.approx(2.0)
    assert set(numbers) == {f"{s}_{c}" for s in ("ours", "paper") for c in rotated_mnist.CONTRAST_MEANS} | \
        {f"{s}_{c}_min" for s in ("ours", "paper") for c in rotated_mnist.CONTRAST_MINIMA}


def test_rotmnist_contrast_numbers_are_nan_without_contrasts() -> None:
    ours = _per_angle({28: 95.0})  # no approximate model: nothing to contrast
    numbers = rotated_mnist.contrast_key_numbers(rotated_mnist.contrasts_beside_reference(ours, _per_angle({28: 9.0})))
    assert len(numbers) == 2 * (len(rotated_mnist.CONTRAST_MEANS) + len(rotated_mnist.CONTRAST_MINIMA))
    assert all(math.isnan(v) for v in numbers.values())


def test_benchmark_contrast_numbers() -> None:
    contrasts = pd.DataFrame({c: [1.0, 3.0] for c in (*benchmark.CONTRAST_MEANS, *benchmark.CONTRAST_MINIMA)})
    numbers = benchmark.contrast_key_numbers(contrasts)
    assert numbers == {**{c: 2.0 for c in benchmark.CONTRAST_MEANS},
                       **{f"{c}_min": 1.0 for c in benchmark.CONTRAST_MINIMA}}


def test_models_are_labelled_by_the_reference_and_sit_beside_it() -> None:
    ours = pd.concat([_per_angle({28: 95.0, 27: 93.0}),
                      _per_angle({28: 80.0}).assign(group="z2")])
    ours.attrs["params"] = {"profile": "smoke"}
    labelled = reference.label_models(ours)
    assert labelled.attrs == ours.attrs
    assert set(labelled["model"]) == {reference.model_label("p4", 28), reference.model_label("p4", 27),
                                      reference.model_label("z2", 28)}
    paper = pd.concat([_per_angle({28: 96.0}), _per_angle({28: 50.0}, regime="uniform")])
    both = reference.beside_reference(ours, paper, ours_label="ours", reference_label="paper")
    assert list(dict.fromkeys(both["source"])) == ["paper", "ours"]
    assert set(both.loc[both["source"] == "paper", "train_rotation"]) == {"upright"}
    assert len(both) == len(ours) + len(paper[paper["train_rotation"] == "upright"])


# ------------------------------------------------------------------------------------------------ book text
def test_threshold_text_writes_thresholds_as_the_prose_does() -> None:
    assert [book_text.threshold_text(v) for v in (1e-6, 1e-12, 1e-18, 0.5, 2.5e-7)] == \
        ["1e-6", "1e-12", "1e-18", "0.5", "2.5e-7"]


def test_glue_values_glues_each_name_without_display(monkeypatch) -> None:
    import myst_nb

    calls = []
    monkeypatch.setattr(myst_nb, "glue", lambda name, value, display=True: calls.append((name, value, display)))
    book_text.glue_values({"a": 1, "b": "two"}, prefix="p_")
    assert calls == [("p_a", 1, False), ("p_b", "two", False)]


def _old_ledger_html(ledger: pd.DataFrame) -> str:
    """The claims-ledger chapter's own rendering before it moved into the library."""
    def chapter_link(name):
        return f'<a href="{name}.html">{name}</a>' if isinstance(name, str) else "(another part of the book)"

    def cell(*parts):
        return "<br>".join(parts)
    shown = pd.DataFrame({
        "claim and evidence": [cell(f"<b>{c}</b> · <i>{i}</i> · {chapter_link(ch)}", html.escape(w))
                               for c, i, ch, w in zip(ledger["claim"], ledger["id"], ledger["chapter"], ledger["evidence"])],
        "paper · ours": [cell(f"<i>paper:</i> {html.escape(p)}", f"<i>ours ({html.escape(s)}):</i> {html.escape(o)}")
                         for p, s, o in zip(ledger["paper"], ledger["scale"], ledger["ours"])],
        "verdict": [cell(f"<b>{html.escape(v)}</b>", html.escape(a)) for v, a in zip(ledger["verdict"], ledger["at_this_scale"])],
    })
    return ('<div class="ledger">' + shown.to_html(index=False, escape=False, col_space={"verdict": "12em"})
            .replace('<table border="1" class="dataframe">', '<table class="dataframe" style="width:100%; table-layout:fixed">')
            + "</div>")


def test_ledger_html_is_the_chapters_table_with_every_text_escaped() -> None:
    ledger = pd.DataFrame({"claim": ["C1", "C3"], "id": ["C1-layers", "S-C3-27"], "chapter": ["training_dynamics", None],
                           "evidence": ["errors < 1e-12 & more", "study"], "paper": ["—", "a <b>"],
                           "scale": ["smoke", "book"], "ours": ["x > y", "z"], "verdict": ["reproduced", "undecided"],
                           "at_this_scale": ["holds", "n < 5"]})
    text = book_text.ledger_html(ledger)
    assert text == _old_ledger_html(ledger)
    assert "&lt;b&gt;" in text and "x &gt; y" in text and "(another part of the book)" in text
    with pytest.raises(ValueError, match="lacks column"):
        book_text.ledger_html(ledger.drop(columns="verdict"))

"""The book's figures (:mod:`equiv.figures`): each function takes small synthetic tidy frames and returns one
matplotlib Figure, :data:`equiv.figures.WIDTH` inches wide, and opens no other figure."""

from __future__ import annotations

import itertools
from typing import Callable

import matplotlib

matplotlib.use("Agg")

import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402
import pandas as pd  # noqa: E402
import pytest  # noqa: E402

from equiv import sampling_grid as sg  # noqa: E402
from equiv.figures import WIDTH, architectures, benchmark, layerwise, rotated_mnist, sampling_grids, study  # noqa: E402
from equiv.figures import unequivariance  # noqa: E402

RNG = np.random.default_rng(0)


def _sweep() -> pd.DataFrame:
    rows = []
    for layer, n in itertools.product(["3×3 conv, s2, p1", "2×2 max-pool, s2"], range(8, 14)):
        exact = (n % 2 == 1) == layer.startswith("3×3")
        rows.append({"layer": layer, "N": n, "r": 0 if exact else 1, "predicted": "exact" if exact else "approximate",
                     "measured": "exact" if exact else "approximate", "error": 0.0 if exact else 0.5, "agree": True})
    return pd.DataFrame(rows)


def _centres() -> pd.DataFrame:
    return pd.concat([sg.rotated_centres("3×3 conv", sg.conv_grid(n, 3, 2, 1), 1) for n in (8, 9)]
                     + [sg.rotated_centres("2×2 pool", sg.pool_grid(8, 2, 2, 0), 0)])


def _images() -> pd.DataFrame:
    rows, cols = np.meshgrid(np.arange(6), np.arange(6), indexing="ij")
    return pd.concat([pd.DataFrame({"input_size": n, "label": k, "row": rows.ravel(), "col": cols.ravel(),
                                    "value": RNG.random(36)}) for n in (6, 7) for k in (0, 1)], ignore_index=True)


def _loss() -> pd.DataFrame:
    return pd.DataFrame([{"input_size": n, "seed": s, "step": t, "loss": 0.69 - (0.01 * t if n == 32 else 0.0),
                          "logit_gap": 0.0, "accuracy": 50.0} for n in (32, 33) for s in (0, 1) for t in range(5)])


def _panels() -> pd.DataFrame:
    return pd.DataFrame([{"input_size": n, "step": t, "panel": p, "element": g, "row": i, "col": j,
                          "value": float(RNG.random())}
                         for n in (32, 33) for t in (0, 10) for p in ("f(x)", "T^-1 f(Tx)") for g in ("e", "r")
                         for i in range(3) for j in range(3)])


def _per_layer() -> pd.DataFrame:
    layers = ["conv1", "pool", "conv2", "<output>"]
    return pd.DataFrame([{"config": c, "epoch": e, "order": o, "layer": name,
                          "error": 0.0 if c == "p4-28" or o == 0 else 10.0 ** -(o + e)}
                         for c in ("p4-27", "p4-28") for e in (0, 1, 2) for o, name in enumerate(layers)])


def _sweeps() -> pd.DataFrame:
    return pd.DataFrame([{"architecture": a, "label": label, "sweep": sweep, "input_size": n, "exact": n % 2 == 0}
                         for a, label, sweep, sizes in (("p4cnn", "P4CNN", "small_sizes", range(26, 31)),
                                                        ("resnet44", "ResNet-44", "small_sizes", range(26, 31)),
                                                        ("resnet18_imagenet", "ResNet-18 (torchvision)",
                                                         "imagenet_sizes", range(222, 225)))
                         for n in sizes])


def _errors_and_networks() -> tuple[pd.DataFrame, pd.DataFrame]:
    errors = pd.DataFrame([{"architecture": a, "label": label, "backend": b, "input_size": n, "exact": n == 28,
                            "position": p, "layer": f"l{p}", "error": 1e-16 if n == 28 or p < 2 else 0.3,
                            "flagged": n != 28 and p == 2}
                           for a, label, backends in (("p4cnn", "P4CNN", ("native", "e2cnn")),
                                                      ("resnet44", "ResNet-44", ("native",)))
                           for b in backends for n in (27, 28) for p in range(5)])
    networks = pd.DataFrame({"architecture": ["p4cnn", "resnet44"], "approx_size": [27, 27], "exact_size": [28, 28]})
    return errors, networks


def _curves() -> pd.DataFrame:
    return pd.DataFrame([{"train_rotation": r, "source": src, "model": m, "seed": s, "test_angle": a,
                          "accuracy": 90.0 + RNG.random()}
                         for r in ("upright", "uniform") for src in ("paper", "ours")
                         for m in ("P4 exact (28)", "P4 approx (27)", "Z2 CNN (28)") for s in (1, 2)
                         for a in range(0, 360, 90)])


def _study_accuracy() -> pd.DataFrame:
    return pd.DataFrame([{"regime": r, "model": m, "fold": 0, "seed": s, "test_angle": a, "accuracy": 95.0 + s}
                         for r in ("upright", "uniform") for m in ("p4-28", "p4-27", "z2-28") for s in (0, 1)
                         for a in range(0, 360, 90)])


def _study_curves() -> pd.DataFrame:
    return pd.DataFrame([{"regime": r, "model": m, "fold": 0, "seed": 0, "epoch": e, "val_accuracy": 90.0 + e}
                         for r in ("upright", "uniform") for m in ("p4-28", "z2-28") for e in range(1, 6)])


def _per_rotation() -> pd.DataFrame:
    return pd.DataFrame([{"augment": aug, "model": m, "seed": s, "test_rotation": t, "accuracy": 80.0 + s}
                         for aug in ("none", "rot90") for m in ("P4 exact (33)", "P4 approx (32)", "P4M exact (33)")
                         for s in (1, 2) for t in (0, 90, 180, 270)])


FIGURES: dict[str, Callable[[], plt.Figure]] = {
    "sampling_grids.window_diagram": lambda: sampling_grids.window_diagram(_centres()),
    "sampling_grids.predicted_vs_measured": lambda: sampling_grids.predicted_vs_measured(_sweep()),
    "unequivariance.training_images": lambda: unequivariance.training_images(_images(), vmax=1.0),
    "unequivariance.loss_curves": lambda: unequivariance.loss_curves(_loss(), {32: "approximate", 33: "exact"},
                                                                     np.log(2), "title"),
    "unequivariance.feature_panels": lambda: unequivariance.feature_panels(_panels(), [32, 33]),
    "layerwise.error_profiles": lambda: layerwise.error_profiles(_per_layer()),
    "layerwise.error_heatmaps": lambda: layerwise.error_heatmaps(_per_layer()),
    "layerwise.output_errors": lambda: layerwise.output_errors(_per_layer()),
    "architectures.size_sweeps": lambda: architectures.size_sweeps(_sweeps()),
    "architectures.layer_errors": lambda: architectures.layer_errors(*_errors_and_networks()),
    "rotated_mnist.angle_curves": lambda: rotated_mnist.angle_curves(_curves()),
    "study.angle_curves": lambda: study.angle_curves(_study_accuracy(), _study_accuracy(), ["upright", "uniform"]),
    "study.validation_curves": lambda: study.validation_curves(_study_curves(), ["upright", "uniform"]),
    "study.pilot_curves": lambda: study.pilot_curves(_study_curves()[lambda f: f["regime"] == "upright"], 4),
    "study.long_pilot_curves": lambda: study.long_pilot_curves(_study_curves(), 4, [("upright", ("p4-28",)), ("uniform", ("p4-28", "z2-28"))]),
    "benchmark.rotation_bars": lambda: benchmark.rotation_bars(_per_rotation()),
}


@pytest.mark.parametrize("name", list(FIGURES))
def test_figure_is_one_figure_of_the_page_width(name: str) -> None:
    before = set(plt.get_fignums())
    try:
        fig = FIGURES[name]()
        assert isinstance(fig, plt.Figure), f"{name} returned {type(fig).__name__}, not a Figure"
        assert fig.get_size_inches()[0] == pytest.approx(WIDTH), f"{name} is {fig.get_size_inches()[0]} in wide"
        assert set(plt.get_fignums()) - before == {fig.number}, f"{name} opened another figure"
        fig.canvas.draw()  # the layout engine runs without error and keeps the width
        assert fig.get_size_inches()[0] == pytest.approx(WIDTH)
        assert any(ax.has_data() for ax in fig.axes), f"{name} drew nothing"
    finally:
        for number in set(plt.get_fignums()) - before:
            plt.close(number)


def test_every_public_figure_function_is_tested() -> None:
    modules = {"sampling_grids": sampling_grids, "unequivariance": unequivariance, "layerwise": layerwise,
               "architectures": architectures, "rotated_mnist": rotated_mnist, "study": study, "benchmark": benchmark}
    public = {f"{m}.{name}" for m, module in modules.items() for name in module.__all__
              if callable(getattr(module, name)) and not isinstance(getattr(module, name), dict)}
    assert public == set(FIGURES), \
        f"untested: {sorted(public - set(FIGURES))}; unknown: {sorted(set(FIGURES) - public)}"


def test_study_figures_label_models_like_the_reference() -> None:
    from equiv.reference import model_label

    fig = study.validation_curves(_study_curves(), ["upright"])
    try:
        labels = {t.get_text() for legend in fig.legends for t in legend.get_texts()}
        assert model_label("p4", 28) in labels and model_label("z2", 28) in labels
    finally:
        plt.close(fig)


def test_window_diagram_marks_the_verdict_of_each_grid() -> None:
    fig = sampling_grids.window_diagram(_centres())
    try:
        titles = [ax.get_title() for ax in fig.axes]
        assert titles == ["3×3 conv\nN = 8: r = 1 → approximate", "3×3 conv\nN = 9: r = 0 → exact",
                          "2×2 pool\nN = 8: r = 0 → exact"]
    finally:
        plt.close(fig)

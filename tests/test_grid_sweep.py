"""Prediction against measurement for single layers (:mod:`equiv.grid_sweep`) and the window layout of the
sampling-grid diagram (:func:`equiv.sampling_grid.rotated_centres`), checked against independent computations."""

from __future__ import annotations

import copy
import math

import pandas as pd
import pytest
import torch
from torch import nn

from equiv import sampling_grid as sg
from equiv.exactness import check
from equiv.grid_sweep import SWEEP_COLUMNS, predicted_vs_measured, sweep_numbers, sweep_summary
from equiv.nn import P4ConvZ2
from equiv.tolerances import BROKEN_MIN, EXACT_TOL

SIZES = list(range(8, 18))
#: name → (layer, kernel, stride, padding) of its one subsampling operation
SPECS = {
    "3×3 conv, s2, p1": (lambda: P4ConvZ2(1, 2, 3, stride=2, padding=1), 3, 2, 1),
    "2×2 max-pool, s2": (lambda: nn.MaxPool2d(2), 2, 2, 0),
    "3×3 max-pool, s2, ceil": (lambda: nn.MaxPool2d(3, stride=2, ceil_mode=True), 3, 2, 0),
}


@pytest.fixture(scope="module")
def layers() -> dict[str, nn.Module]:
    torch.manual_seed(0)
    return {name: make() for name, (make, *_) in SPECS.items()}


@pytest.fixture(scope="module")
def sweep(layers: dict[str, nn.Module]) -> pd.DataFrame:
    return predicted_vs_measured(layers, SIZES, "p4", batch=2, seed=0)


def test_the_sweep_has_one_row_per_layer_and_size_in_order(sweep: pd.DataFrame) -> None:
    assert list(sweep.columns) == SWEEP_COLUMNS
    assert list(zip(sweep["layer"], sweep["N"])) == [(name, n) for name in SPECS for n in SIZES]


def test_predicted_verdicts_are_the_predictors(sweep: pd.DataFrame, layers: dict[str, nn.Module]) -> None:
    for row in sweep.itertuples():
        exact = check(copy.deepcopy(layers[row.layer]).double(), row.N, "p4", in_channels=1).exact
        assert row.predicted == ("exact" if exact else "approximate"), (row.layer, row.N)


def test_leftover_is_the_rule_of_the_sampling_grid(sweep: pd.DataFrame) -> None:
    for row in sweep.itertuples():
        _, kernel, stride, padding = SPECS[row.layer]
        assert row.r == sg.leftover(row.N, kernel, stride, padding), (row.layer, row.N)


def test_measured_errors_are_round_off_where_exact_and_order_one_where_not(sweep: pd.DataFrame) -> None:
    exact, approx = sweep[sweep["predicted"] == "exact"], sweep[sweep["predicted"] == "approximate"]
    assert len(exact) and len(approx)
    assert (exact["error"] <= EXACT_TOL).all(), exact[exact["error"] > EXACT_TOL]
    assert (approx["error"] >= BROKEN_MIN).all(), approx[approx["error"] < BROKEN_MIN]
    assert sweep["agree"].all()
    assert (sweep["measured"] == sweep["predicted"]).all()


def test_the_layers_passed_in_are_left_as_they_are(layers: dict[str, nn.Module], sweep: pd.DataFrame) -> None:
    conv = layers["3×3 conv, s2, p1"]
    fresh = predicted_vs_measured({"conv": conv.float()}, [9], batch=1)
    assert next(conv.parameters()).dtype == torch.float32 and conv.training
    assert fresh["predicted"].tolist() == ["exact"]


def test_the_images_come_from_the_seed(layers: dict[str, nn.Module]) -> None:
    one = {"pool": layers["2×2 max-pool, s2"]}
    a, b = predicted_vs_measured(one, [9, 11], seed=3), predicted_vs_measured(one, [9, 11], seed=3)
    pd.testing.assert_frame_equal(a, b)


def test_summary_and_numbers_against_a_direct_computation(sweep: pd.DataFrame) -> None:
    summary = sweep_summary(sweep, shown_sizes=2)
    assert list(summary.index) == list(SPECS)
    for name in SPECS:
        part = sweep[sweep["layer"] == name]
        exact_sizes = [n for n, p in zip(part["N"], part["predicted"]) if p == "exact"]
        assert summary.loc[name, "exact sizes"] == ", ".join(map(str, exact_sizes[:2])) + ", …"
        assert summary.loc[name, "max error, exact"] == max(e for e, p in zip(part["error"], part["predicted"])
                                                           if p == "exact")
        assert summary.loc[name, "agree"] == f"{len(part)}/{len(part)}"
    numbers = sweep_numbers(sweep)
    errors_approx = sorted(e for e, p in zip(sweep["error"], sweep["predicted"]) if p == "approximate")
    assert numbers["n_cases"] == len(SPECS) * len(SIZES) == numbers["n_agree"]
    assert numbers["n_disagree"] == 0
    assert (numbers["n_layers"], numbers["n_sizes"], numbers["size_min"], numbers["size_max"]) == (3, 10, 8, 17)
    assert numbers["min_approx_error"] == errors_approx[0]
    assert numbers["median_approx_error"] == pytest.approx(float(pd.Series(errors_approx).median()))
    assert numbers["max_exact_error"] <= EXACT_TOL


def test_a_disagreement_is_counted() -> None:
    frame = pd.DataFrame({"layer": ["a", "a"], "N": [8, 9], "r": [0, 1], "predicted": ["exact", "approximate"],
                          "measured": ["approximate", "approximate"], "error": [0.5, 0.4], "agree": [False, True]})
    numbers = sweep_numbers(frame)
    assert (numbers["n_agree"], numbers["n_disagree"]) == (1, 1)
    assert math.isclose(numbers["max_exact_error"], 0.5)


@pytest.mark.parametrize("kwargs, bad", [({"layers": {}, "sizes": [8]}, "layers is empty"),
                                         ({"layers": {"p": nn.MaxPool2d(2)}, "sizes": []}, "sizes is empty"),
                                         ({"layers": {"p": nn.MaxPool2d(2)}, "sizes": [8], "batch": 0}, "batch")])
def test_bad_arguments_are_refused_in_one_line(kwargs: dict, bad: str) -> None:
    with pytest.raises(ValueError, match=bad):
        predicted_vs_measured(**kwargs)


def test_tables_without_the_sweep_columns_are_refused() -> None:
    with pytest.raises(ValueError, match="lacks column"):
        sweep_numbers(pd.DataFrame({"layer": ["a"]}))
    with pytest.raises(ValueError, match="empty"):
        sweep_summary(pd.DataFrame(columns=SWEEP_COLUMNS))


# ---------------------------------------------------------------------------------- the window diagram
def test_window_centres_are_the_middle_of_each_window() -> None:
    assert sg.window_centres(sg.conv_grid(8, 3, 2, 1)) == (0.0, 2.0, 4.0, 6.0)
    assert sg.window_centres(sg.pool_grid(8, 2, 2, 0)) == (0.5, 2.5, 4.5, 6.5)


def _rotated_index_image(n: int) -> torch.Tensor:
    """rot90 of the image whose pixel (i, j) holds its own index i·n + j: pixel (a, b) of the result names the
    pixel of x it came from."""
    return torch.rot90(torch.arange(n * n).reshape(n, n), 1, dims=(0, 1))


@pytest.mark.parametrize("n, make, pad", [(8, lambda n: sg.conv_grid(n, 3, 2, 1), 1),
                                          (9, lambda n: sg.conv_grid(n, 3, 2, 1), 1),
                                          (8, lambda n: sg.pool_grid(n, 2, 2, 0), 0),
                                          (9, lambda n: sg.pool_grid(n, 2, 2, 0), 0)])
def test_rotated_centres_map_the_rotated_image_back_by_the_inverse_rotation(n: int, make, pad: int) -> None:
    grid = make(n)
    table = sg.rotated_centres("layer", grid, pad)
    on_x, on_rx = table[table["image"] == "x"], table[table["image"] == "r·x"]
    assert len(on_x) == len(on_rx) == grid.n_out ** 2
    assert set(table["symmetric"]) == {grid.symmetric} and set(table["leftover"]) == {grid.leftover}
    # the centres the layer samples on r·x, located on x through an actual rotation of an index image
    index = _rotated_index_image(n)
    inside = [c for c in sg.window_centres(grid) if float(c).is_integer() and 0 <= c < n]
    expected = {divmod(int(index[int(a), int(b)]), n) for a in inside for b in inside}
    found = {(int(r), int(c)) for r, c in zip(on_rx["row"], on_rx["col"]) if float(r).is_integer()
             and float(c).is_integer() and 0 <= r < n and 0 <= c < n}
    assert found == expected
    # the grid is mirror-symmetric iff both images are sampled at the same places
    same = set(zip(on_x["row"], on_x["col"])) == set(zip(on_rx["row"], on_rx["col"]))
    assert same == grid.symmetric


def test_ceil_mode_rule_check_counts_every_grid_and_agrees_with_the_enumeration() -> None:
    from equiv import sampling_grid as sg

    small = sg.ceil_mode_rule_check(kernels=[3], strides=[2], max_size=12, kinds=["max"])
    assert small == {"checked": len(range(3, 13)) * 2, "disagree": 0}  # paddings 0 and 1
    full = sg.ceil_mode_rule_check()
    assert full["checked"] == sum(len(range(k, 70)) * (k // 2 + 1) for k in range(1, 8)) * 3 * 2
    assert full["disagree"] == 0


def test_stacked_strided_convs_follow_the_residue_rule() -> None:
    from equiv.grid_sweep import stacked_strided_convs
    from equiv.exactness import check
    from equiv.nn import P4ConvP4, P4ConvZ2
    from torch import nn

    table = stacked_strided_convs((1, 2), range(8, 30))
    assert list(table["strided 3×3 convs"]) == [1, 2]
    two = [int(n) for n in table.loc[1, "exact sizes N"].split(", ")]
    assert two == [n for n in range(8, 30) if n % 4 == 1]
    stack = nn.Sequential(P4ConvZ2(1, 2, 3, stride=2, padding=1), P4ConvP4(2, 2, 3, stride=2, padding=1))
    assert check(stack, 21, "p4").exact and not check(stack, 23, "p4").exact
    assert table["all ≡ 1 mod 2^depth"].all() and table["every such N found"].all()

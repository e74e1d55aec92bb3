"""equiv.seeds: one seed convention for runners, notebooks and grid files."""

from __future__ import annotations

import pytest

from equiv.seeds import MAX_SEED, seed_list


def test_a_count_means_one_to_n_and_a_list_is_kept() -> None:
    assert seed_list(3) == [1, 2, 3] and seed_list([0, 7]) == [0, 7] and seed_list(1) == [1]


@pytest.mark.parametrize("bad", [0, -1, True, [], [1, -2], [1.5], "3", MAX_SEED + 1, [MAX_SEED + 1]])
def test_bad_seed_specs_are_one_line_errors(bad) -> None:
    with pytest.raises(ValueError, match=r"seeds=.* is invalid; allowed: a count n >= 1 \(seeds 1..n\) or a list of seeds >= 0"):
        seed_list(bad)


def test_grids_runners_and_notebooks_agree(tmp_path) -> None:
    """A grid's `seeds: 3` gives the notebook's seeds 1..3, the same seeds a runner's `seeds: 3` trains."""
    from equiv.batch import load_grid
    from equiv.experiments import resolve_params
    from pathlib import Path

    root = Path(__file__).resolve().parents[1]
    grid = tmp_path / "g.yaml"
    grid.write_text(f"notebook: {root / 'book' / 'rotated_mnist.ipynb'}\nprofile: smoke\nseeds: 3\n")
    injected = [r.parameters["seeds"] for r in load_grid(grid).runs]
    assert injected == [[1], [2], [3]]
    assert seed_list(resolve_params("rotated_mnist", {"profile": "smoke", "seeds": 3})["seeds"]) == [1, 2, 3]

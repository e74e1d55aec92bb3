"""The paper's grids in experiments/ are valid against their notebooks, at the paper and smoke profiles."""

from __future__ import annotations

from pathlib import Path

import pytest

from equiv.batch import load_grid

GRIDS = sorted((Path(__file__).resolve().parents[1] / "experiments").glob("*.yaml"))


def test_there_is_a_grid_per_paper_experiment() -> None:
    names = {p.stem for p in GRIDS}
    assert {"rotated_mnist", "rotated_mnist_biased", "training_dynamics", "benchmark_protocol"} <= names


@pytest.mark.parametrize("path", GRIDS, ids=lambda p: p.stem)
def test_grid_validates_against_its_notebook(path: Path) -> None:
    paper = load_grid(path)
    smoke = load_grid(path, profile="smoke")
    assert paper.profile in ("paper", "book") and smoke.profile == "smoke"  # the study runs at the book profile
    assert len(paper.runs) > len(smoke.runs) >= 1 or path.stem == "training_dynamics"
    assert Path(paper.notebook).is_file()


def test_rotated_mnist_grids_match_the_papers_seed_counts() -> None:
    main = load_grid(GRIDS[0].parent / "rotated_mnist.yaml")
    biased = load_grid(GRIDS[0].parent / "rotated_mnist_biased.yaml")
    assert len(main.runs) == 2 * 100 and len(biased.runs) == 2 * 10  # 100 seeds upright/uniform, 10 biased
    assert main.name == biased.name == "rotated-mnist-paper"  # one runs folder, one collected table

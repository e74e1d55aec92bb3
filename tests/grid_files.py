"""Writing grid files for the batch-runner tests (shared by tests/test_batch_*.py)."""

from __future__ import annotations

from pathlib import Path

import yaml

__all__ = ["write_grid", "relocated_grid"]


def write_grid(tmp_path: Path, body: dict | str, name: str = "grid.yaml") -> Path:
    """``body`` (a dict, dumped as YAML, or the YAML text itself) written to ``tmp_path / name``."""
    path = tmp_path / name
    path.write_text(body if isinstance(body, str) else yaml.safe_dump(body, sort_keys=False))
    return path


def relocated_grid(grid: Path, tmp_path: Path, results: Path, name: str = "grid.yaml") -> Path:
    """The repository's grid file ``grid`` written to ``tmp_path / name`` with its notebook as an absolute path
    and its results folder moved to ``results``, so that a test runs it without touching ``data/results``."""
    body = yaml.safe_load(grid.read_text())
    body["notebook"] = str(grid.parent / body["notebook"])
    body["results"] = str(results)
    return write_grid(tmp_path, body, name)

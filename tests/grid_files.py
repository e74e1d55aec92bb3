"""Writing grid files for the batch-runner tests (shared by tests/test_batch_*.py)."""

from __future__ import annotations

from pathlib import Path

import yaml

__all__ = ["write_grid"]


def write_grid(tmp_path: Path, body: dict | str, name: str = "grid.yaml") -> Path:
    """``body`` (a dict, dumped as YAML, or the YAML text itself) written to ``tmp_path / name``."""
    path = tmp_path / name
    path.write_text(body if isinstance(body, str) else yaml.safe_dump(body, sort_keys=False))
    return path

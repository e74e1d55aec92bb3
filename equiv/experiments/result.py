"""The value every experiment runner returns: named tidy tables sharing one set of parameters."""

from __future__ import annotations

import json
import os
from pathlib import Path


from equiv.atomic_io import atomic_write_json
from equiv.experiments.record import load_result, save_result

__all__ = ["ExperimentResult"]


class ExperimentResult(dict):
    """``{table name: DataFrame}``; every frame carries ``attrs`` with experiment, params and provenance.

    ``result["accuracy"]`` etc. are tidy (one row per measurement, every parameter as a column).
    :meth:`save` writes ``<dir>/<table>.csv`` + ``.json`` atomically; :meth:`load` reads them back.
    """

    @property
    def params(self) -> dict:
        return next(iter(self.values())).attrs.get("params", {}) if self else {}

    @property
    def provenance(self) -> dict:
        return next(iter(self.values())).attrs.get("provenance", {}) if self else {}

    def save(self, directory: str | os.PathLike) -> list[Path]:
        """Write every table, then ``tables.json`` listing them: a folder counts as complete only then."""
        directory = Path(directory)
        paths = [save_result(frame, directory / f"{name}.csv") for name, frame in self.items()]
        atomic_write_json(directory / "tables.json", {"tables": list(self)})
        return paths

    @classmethod
    def load(cls, directory: str | os.PathLike) -> "ExperimentResult":
        """Read a folder written by :meth:`save` (FileNotFoundError unless it is complete)."""
        directory = Path(directory)
        index = directory / "tables.json"
        if not index.is_file():
            raise FileNotFoundError(f"no complete experiment result in {directory} (no tables.json)")
        names = json.loads(index.read_text())["tables"]
        return cls({name: load_result(directory / f"{name}.csv") for name in names})

    def __repr__(self) -> str:
        inner = ", ".join(f"{k}: {len(v)} rows" for k, v in self.items())
        return f"ExperimentResult({inner})"



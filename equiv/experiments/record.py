"""Result tables with their provenance: parameters, code version, library versions, device, wall time.

Every experiment returns a tidy :class:`pandas.DataFrame` whose ``attrs`` carry ``experiment``,
``params`` and ``provenance``. :func:`save_result` writes it atomically as ``<stem>.csv`` plus
``<stem>.json`` (the attrs), and :func:`load_result` reads both back — notebooks that only draw figures
read these files and never retrain.
"""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Any, Mapping

import pandas as pd

from equiv.atomic_io import atomic_write_frame, atomic_write_json
from equiv.provenance import environment

__all__ = ["attach", "save_result", "load_result"]


def attach(frame: pd.DataFrame, experiment: str, params: Mapping[str, Any], seconds: float,
           device: Any = None, **extra: Any) -> pd.DataFrame:
    """Put every parameter in a column (scalars as they are, lists as text) and the provenance in attrs."""
    for key, value in params.items():
        if key not in frame.columns:
            frame[key] = json.dumps(value) if isinstance(value, (list, dict)) else value
    frame.attrs.update({"experiment": experiment, "params": dict(params),
                        "provenance": {**environment(device), "wall_seconds": round(seconds, 3)}, **extra})
    return frame


def save_result(frame: pd.DataFrame, path: str | os.PathLike) -> Path:
    """Write ``frame`` to ``path`` (``.csv``) and its attrs to the ``.json`` beside it, both atomically.
    The JSON is written last, so a result counts as complete only when its JSON exists."""
    path = Path(path)
    if path.suffix != ".csv":
        raise ValueError(f"result path must end in .csv, got {path}")
    atomic_write_frame(frame, path)
    atomic_write_json(path.with_suffix(".json"), dict(frame.attrs))
    return path


def load_result(path: str | os.PathLike) -> pd.DataFrame:
    """Read a result written by :func:`save_result` (CSV + JSON attrs)."""
    path = Path(path)
    meta = path.with_suffix(".json")
    if not path.is_file() or not meta.is_file():
        raise FileNotFoundError(f"no complete result at {path} (needs {path.name} and {meta.name})")
    frame = pd.read_csv(path)
    frame.attrs.update(json.loads(meta.read_text()))
    return frame

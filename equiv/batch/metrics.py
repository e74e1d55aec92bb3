"""How a notebook hands its results to the batch runner: :func:`write_metrics`.

Contract for notebook authors (see ``experiments/README.md``)::

    from equiv.batch.metrics import write_metrics
    write_metrics({"accuracy": acc, "rows": [{"angle": a, "error": e} for a, e in errors]})

- Call it once, at the end of the notebook (calling it again replaces the file: last call wins).
- ``metrics`` is a dict with string keys and JSON values (numpy / torch scalars are converted).
  Scalar values become one column each in ``equiv results``; nested dicts are flattened with dots
  (``{"err": {"max": 1}}`` -> ``err.max``); lists other than ``rows`` are stored as JSON text.
- ``rows`` (optional) is a list of dicts: ``equiv results`` makes one table row per record,
  repeating the run's parameters and scalar metrics on each.
- Under ``equiv run`` the file goes to ``$EQUIV_RUN_DIR/metrics.json`` (the run directory, whatever
  ``path`` says); run by hand it goes to ``path`` or, without one, ``./metrics.json``.

The write is atomic, so the runner never reads a half-written metrics file. This module imports
nothing heavy: notebooks pay nothing for it.
"""

from __future__ import annotations

import math
import os
from pathlib import Path
from typing import Any, Mapping

from equiv.atomic_io import atomic_write_json
from equiv.settings import PROFILE_ENV, RUN_DIR_ENV  # set by the runner in the kernel's environment

__all__ = ["RUN_DIR_ENV", "PROFILE_ENV", "ROWS_KEY", "METRICS_FILE", "write_metrics", "metrics_path"]

ROWS_KEY = "rows"  # metrics[ROWS_KEY]: list of records, one table row each
METRICS_FILE = "metrics.json"


def metrics_path(path: str | os.PathLike | None = None) -> Path:
    """Where :func:`write_metrics` writes: ``$EQUIV_RUN_DIR/metrics.json``, else ``path``, else ``./metrics.json``."""
    run_dir = os.environ.get(RUN_DIR_ENV)
    if run_dir:
        return Path(run_dir) / METRICS_FILE
    if path is not None:
        return Path(path)
    return Path.cwd() / METRICS_FILE


def _check_key(key: Any, where: str) -> None:
    if not isinstance(key, str) or not key:
        raise ValueError(f"write_metrics: {where} key {key!r} is not a non-empty string; metric names must be strings")


def _check_value(value: Any, where: str) -> None:
    if isinstance(value, float) and not math.isfinite(value):
        return  # NaN / inf are allowed (written as NaN / Infinity, read back by json and pandas)
    if isinstance(value, Mapping):
        for k, v in value.items():
            _check_key(k, where)
            _check_value(v, f"{where}.{k}")


def write_metrics(metrics: Mapping[str, Any], path: str | os.PathLike | None = None) -> Path:
    """Write ``metrics`` atomically as JSON for the batch runner; return the path written.

    ``metrics`` maps metric names to JSON values; ``metrics["rows"]``, if present, must be a list of
    dicts (one result table row each). Raises ``ValueError`` naming the offending key otherwise.
    """
    if not isinstance(metrics, Mapping):
        raise ValueError(f"write_metrics: metrics must be a dict, got {type(metrics).__name__}")
    for key, value in metrics.items():
        _check_key(key, "metrics")
        _check_value(value, key)
    if ROWS_KEY in metrics:
        rows = metrics[ROWS_KEY]
        if not isinstance(rows, (list, tuple)) or not all(isinstance(r, Mapping) for r in rows):
            raise ValueError(f"write_metrics: metrics[{ROWS_KEY!r}] must be a list of dicts (one per result row)")
        for i, row in enumerate(rows):
            for k in row:
                _check_key(k, f"{ROWS_KEY}[{i}]")
    target = metrics_path(path)
    try:
        return atomic_write_json(target, dict(metrics))
    except TypeError as err:  # a value json cannot write
        raise ValueError(f"write_metrics: {err}; metric values must be JSON (numbers, strings, lists, dicts)") from None

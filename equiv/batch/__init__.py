"""Batch runner: rerun a notebook over a whole parameter grid with papermill.

- ``equiv run GRID.yaml`` / :func:`run_grid`: every combination, once, resumably
  (``runs/<grid-name>/<run-id>/``: executed notebook, ``params.json``, ``metrics.json``, ``manifest.json``)
- ``equiv status runs/<grid>`` / :func:`list_run_states`: done / failed / running / pending
- ``equiv results runs/<grid>`` / :func:`collect_results`: one tidy table (CSV + Parquet, published
  with a manifest ``results.json``; :func:`read_results` reads only a pair that matches it)
- in notebooks: :func:`write_metrics` (``from equiv.batch.metrics import write_metrics``)

Modules, one job each: :mod:`~equiv.batch.grid` (grid files), :mod:`~equiv.batch.runid`,
:mod:`~equiv.batch.layout`, :mod:`~equiv.batch.lock`, :mod:`~equiv.batch.state`,
:mod:`~equiv.batch.execute` (one run), :mod:`~equiv.batch.worker` (its process),
:mod:`~equiv.batch.resources` (GPU / threads per run), :mod:`~equiv.batch.local`,
:mod:`~equiv.batch.slurm`, :mod:`~equiv.batch.dask_backend`, :mod:`~equiv.batch.runner`,
:mod:`~equiv.batch.progress`, :mod:`~equiv.batch.collect`, :mod:`~equiv.batch.metrics`,
:mod:`~equiv.batch.cli`. Names are imported lazily so that ``write_metrics`` stays cheap in notebooks.
"""

from __future__ import annotations

import importlib
from typing import Any

__all__ = [
    "run_grid",
    "load_grid",
    "collect_results",
    "write_results",
    "read_results",
    "write_metrics",
    "list_run_states",
    "run_id",
    "GridError",
]

_WHERE = {
    "run_grid": "equiv.batch.runner",
    "load_grid": "equiv.batch.grid",
    "GridError": "equiv.batch.grid",
    "collect_results": "equiv.batch.collect",
    "write_results": "equiv.batch.collect",
    "read_results": "equiv.batch.collect",
    "write_metrics": "equiv.batch.metrics",
    "list_run_states": "equiv.batch.state",
    "run_id": "equiv.batch.runid",
}


def __getattr__(name: str) -> Any:
    if name in _WHERE:
        return getattr(importlib.import_module(_WHERE[name]), name)
    raise AttributeError(f"module 'equiv.batch' has no attribute {name!r}")


def __dir__() -> list[str]:
    return sorted(list(globals()) + __all__)

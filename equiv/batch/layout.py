"""Where a batch run keeps its files: ``<runs-dir>/<grid-name>/<run-id>/``.

One directory per run holds

- ``params.json``    written by the runner when it plans the grid (before any run starts)
- ``manifest.json``  the run's state: ``running`` -> ``done`` | ``failed`` (plus provenance and error)
- ``metrics.json``   written by the notebook itself through :func:`equiv.batch.metrics.write_metrics`
- ``<notebook>.ipynb`` the executed notebook (papermill output, copied atomically when it ends)
- ``.lock``          the per-run lock file (``fcntl.flock``), held for the whole execution
- ``worker.log``     stderr of the worker process and its kernel

A run counts as finished only when ``manifest.json`` says ``done`` or ``failed``; every file the
runner or :func:`~equiv.batch.metrics.write_metrics` writes goes through :mod:`equiv.atomic_io`.
"""

from __future__ import annotations

from pathlib import Path

__all__ = [
    "PARAMS_FILE",
    "MANIFEST_FILE",
    "METRICS_FILE",
    "LOCK_FILE",
    "WORKER_LOG",
    "EXECUTING_NOTEBOOK",
    "RESULTS_STEM",
    "grid_dir",
    "run_dir",
    "is_run_dir",
]

PARAMS_FILE = "params.json"
MANIFEST_FILE = "manifest.json"
METRICS_FILE = "metrics.json"
LOCK_FILE = ".lock"
WORKER_LOG = "worker.log"
EXECUTING_NOTEBOOK = ".executing.ipynb"  # papermill's output while it runs (it rewrites it per cell)
RESULTS_STEM = "results"  # equiv results writes results.csv and results.parquet into the grid directory


def grid_dir(runs_dir: str | Path, grid_name: str) -> Path:
    """The directory holding every run of one grid."""
    return Path(runs_dir) / grid_name


def run_dir(runs_dir: str | Path, grid_name: str, run_id: str) -> Path:
    """The directory of one run."""
    return grid_dir(runs_dir, grid_name) / run_id


def is_run_dir(path: Path) -> bool:
    """Whether ``path`` is a run directory (it has a ``params.json``)."""
    return path.is_dir() and (path / PARAMS_FILE).is_file()

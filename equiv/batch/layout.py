"""Where a batch run keeps its files: ``<runs-dir>/<grid-name>/<run-id>/``.

One directory per run holds

- ``params.json``    written when the run first starts (planning a grid writes nothing)
- ``manifest.json``  the run's state: ``running`` -> ``done`` | ``failed`` (plus provenance and error)
- ``metrics.json``   written by the notebook itself through :func:`equiv.batch.metrics.write_metrics`
- ``<notebook>.ipynb`` the executed notebook (papermill output, copied atomically when it ends)
- ``.lock``          the per-run lock file (``fcntl.flock``), held for the whole execution
- ``worker.log``     stderr of the worker process and its kernel
- ``.jupyter-runtime/`` the kernel's Jupyter runtime folder (its connection file, which holds the
  kernel's key), private to the run and removed when the run ends or is resumed

A run counts as finished only when ``manifest.json`` says ``done`` or ``failed``; every file the
runner or :func:`~equiv.batch.metrics.write_metrics` writes goes through :mod:`equiv.atomic_io`.
"""

from __future__ import annotations

import os
from pathlib import Path

__all__ = [
    "PARAMS_FILE",
    "MANIFEST_FILE",
    "METRICS_FILE",
    "LOCK_FILE",
    "WORKER_LOG",
    "EXECUTING_NOTEBOOK",
    "RESULTS_STEM",
    "RESULTS_MANIFEST_SUFFIX",
    "KERNEL_RUNTIME_DIR",
    "NotAFolderError",
    "check_folder",
    "check_can_be_folder",
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
RESULTS_MANIFEST_SUFFIX = ".json"  # ... and, last, results.json: the pair's hashes (see equiv.batch.collect)
KERNEL_RUNTIME_DIR = ".jupyter-runtime"  # $JUPYTER_RUNTIME_DIR of the run's kernel (connection file)


class NotAFolderError(NotADirectoryError, ValueError):
    """A path given as a folder is a file (a ``NotADirectoryError`` and a ``ValueError``; one-line message)."""


def check_folder(path: str | os.PathLike, what: str) -> Path:
    """``path`` if it is an existing folder; else ``FileNotFoundError`` / :class:`NotAFolderError` naming it."""
    path = Path(path)
    if path.is_dir():
        return path
    if path.exists():
        raise NotAFolderError(f"{what} {str(path)!r} is a file, not a folder")
    raise FileNotFoundError(f"{what} {str(path)!r} does not exist")


def check_can_be_folder(path: str | os.PathLike, what: str) -> Path:
    """``path`` if it is a folder or can be created as one (every existing part of it is a folder).

    Raises :class:`NotAFolderError` naming ``path`` and the file in the way; creates nothing.
    """
    path = Path(path)
    for part in (path, *path.parents):
        if part.is_dir():
            return path
        if part.exists() and part == path:
            raise NotAFolderError(f"{what} {str(path)!r} is a file, not a folder")
        if part.exists():
            raise NotAFolderError(f"{what} {str(path)!r} cannot be a folder: {str(part)!r} is a file")
    return path


def grid_dir(runs_dir: str | Path, grid_name: str) -> Path:
    """The directory holding every run of one grid."""
    return Path(runs_dir) / grid_name


def run_dir(runs_dir: str | Path, grid_name: str, run_id: str) -> Path:
    """The directory of one run."""
    return grid_dir(runs_dir, grid_name) / run_id


def is_run_dir(path: Path) -> bool:
    """Whether ``path`` is a run directory (it has a ``params.json``)."""
    return path.is_dir() and (path / PARAMS_FILE).is_file()

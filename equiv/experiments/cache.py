"""Run an experiment once, reuse its result files afterwards (the showyourwork split).

:func:`run_cached` keys a result by the experiment name, its fully resolved parameters and a hash of
the library's source code. If ``<cache>/<experiment>/<key>/`` holds a complete result it is loaded;
otherwise the experiment runs and its tables are saved there atomically. A plot tweak in a notebook
therefore never retrains, while any change to parameters or to ``equiv``'s code does.

The cache folder is ``$EQUIV_RESULTS_CACHE`` if set, else ``_build/.equiv-results`` in the source
checkout (beside ``equiv/``), else ``~/.cache/equiv/results``.
"""

from __future__ import annotations

import hashlib
import json
import os
from functools import lru_cache
from pathlib import Path
from typing import Any, Callable, Mapping

from equiv.experiments.result import ExperimentResult
from equiv.settings import RESULTS_CACHE_ENV

__all__ = ["cache_dir", "source_hash", "result_key", "run_cached"]


def cache_dir() -> Path:
    """Where cached results live (see module docstring)."""
    env = os.environ.get(RESULTS_CACHE_ENV)
    if env:
        return Path(env)
    checkout = Path(__file__).resolve().parents[2]
    if (checkout / "pyproject.toml").is_file():
        return checkout / "_build" / ".equiv-results"
    return Path.home() / ".cache" / "equiv" / "results"


@lru_cache(maxsize=1)
def source_hash() -> str:
    """SHA-256 over every ``.py`` file of the installed ``equiv`` package (path and content)."""
    root = Path(__file__).resolve().parents[1]
    h = hashlib.sha256()
    for path in sorted(root.rglob("*.py")):
        h.update(str(path.relative_to(root)).encode())
        h.update(path.read_bytes())
    return h.hexdigest()


def result_key(experiment: str, resolved: Mapping[str, Any]) -> str:
    """A short stable key for (experiment, resolved parameters, library source)."""
    blob = json.dumps({"experiment": experiment, "params": resolved, "source": source_hash()}, sort_keys=True)
    return hashlib.sha256(blob.encode()).hexdigest()[:16]


def run_cached(experiment: str, runner: Callable[..., ExperimentResult], resolved: Mapping[str, Any],
               directory: str | os.PathLike | None = None, **kwargs: Any) -> ExperimentResult:
    """Load the result of ``runner(resolved)`` from the cache, or run it and store it."""
    folder = Path(directory) if directory is not None else cache_dir() / experiment / result_key(experiment, resolved)
    try:
        return ExperimentResult.load(folder)
    except FileNotFoundError:
        pass
    result = runner(dict(resolved), **kwargs)
    result.save(folder)
    return result

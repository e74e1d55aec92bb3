"""Profiles and environment variables: what a run reads from outside its parameters, named once.

**Profiles** scale every experiment and chapter together (:data:`PROFILES`):

- ``smoke``: seconds on a 2-core CPU, for tests and CI;
- ``book`` (the default, :data:`DEFAULT_PROFILE`): real data, a few minutes here, large enough that the paper's
  effect is visible;
- ``paper``: the official scale (full data, all epochs and seeds), for a GPU or a cluster.

A parameter with one default per profile is written ``per_profile(smoke, book, paper)``.

**Environment variables** (every name equiv reads; the library refers to them only through these constants):

================================  ==============================================================================
``EQUIV_PROFILE``                 the profile when none is given (:func:`resolve_profile`); set by the runner
                                  in each kernel
``EQUIV_RUN_DIR``                 the run folder of a notebook executed by ``equiv run`` / ``equiv book``, where
                                  ``write_metrics`` writes
``EQUIV_RESULTS_CACHE``           the experiment result cache (default ``_build/.equiv-results`` of the checkout)
``EQUIV_DATA_DIR``                the ``data/`` folder of reference tables and committed results (default: the
                                  checkout's)
``EQUIV_DATA``                    where downloaded datasets live (default ``~/.cache/equiv``)
``EQUIV_DATA_MIRROR``             base URL datasets are downloaded from (default: the canonical source)
``EQUIV_CACHE_DIR``               machine measurements such as the packing choice (default ``~/.cache/equiv``)
``EQUIV_PROGRESS``                ``0`` / ``false`` / ``no`` turns training progress bars off
``EQUIV_WORKER_PARENT``           set by the batch runner for its workers: the pid they die with (internal)
``EQUIV_MALLOC``                  ``keep`` (default: training keeps freed memory, :mod:`equiv.allocator`) or
                                  ``default`` (the C allocator's own settings)
================================  ==============================================================================
"""

from __future__ import annotations

import os
from typing import Any

__all__ = ["PROFILES", "DEFAULT_PROFILE", "resolve_profile", "per_profile", "PROFILE_ENV", "RUN_DIR_ENV",
           "RESULTS_CACHE_ENV", "DATA_DIR_ENV", "DATA_ROOT_ENV", "DATA_MIRROR_ENV", "CACHE_DIR_ENV", "PROGRESS_ENV",
           "WORKER_PARENT_ENV", "MALLOC_ENV"]

PROFILES = ("smoke", "book", "paper")
DEFAULT_PROFILE = "book"

PROFILE_ENV = "EQUIV_PROFILE"
RUN_DIR_ENV = "EQUIV_RUN_DIR"
RESULTS_CACHE_ENV = "EQUIV_RESULTS_CACHE"
DATA_DIR_ENV = "EQUIV_DATA_DIR"
DATA_ROOT_ENV = "EQUIV_DATA"
DATA_MIRROR_ENV = "EQUIV_DATA_MIRROR"
CACHE_DIR_ENV = "EQUIV_CACHE_DIR"
PROGRESS_ENV = "EQUIV_PROGRESS"
WORKER_PARENT_ENV = "EQUIV_WORKER_PARENT"
MALLOC_ENV = "EQUIV_MALLOC"


def resolve_profile(profile: str | None = None) -> str:
    """``profile`` if given, else ``$EQUIV_PROFILE``, else ``"book"``; checked against :data:`PROFILES`."""
    value = profile if profile is not None else os.environ.get(PROFILE_ENV) or DEFAULT_PROFILE
    if value not in PROFILES:
        raise ValueError(f"unknown profile {value!r}; allowed: {', '.join(PROFILES)}")
    return value


def per_profile(smoke: Any, book: Any, paper: Any) -> dict[str, Any]:
    """One default per profile, in the form :class:`equiv.experiments.params.Param` takes."""
    return dict(zip(PROFILES, (smoke, book, paper)))

"""Session-wide test settings.

- ``EQUIV_CACHE_DIR`` points at a fresh folder for the session, so ``equiv run``'s packing measurement
  (:mod:`equiv.batch.packing`) runs for real once per test session, instead of reading or writing the user's
  ``~/.cache/equiv``.
- ``make test`` runs the suite on every core with pytest-xdist (``-n auto --maxprocesses 8 --dist loadfile``: one
  process per core, at most 8, each test file on one of them). A worker then computes with **one** torch thread, so the workers do not
  oversubscribe the cores; subprocesses that a test starts set their own threads (``equiv run --threads``,
  ``OMP_NUM_THREADS`` in their environment) as before.
- :func:`book_build_lock`: the two test files that build the book in the repository's own ``_build``
  (``test_book_notebooks.py``, stage 1 at the smoke profile, and ``test_book_browser.py``, ``make book``) may run
  at the same time on two workers; they take this lock, so the second one reuses what the first executed.
"""

from __future__ import annotations

import contextlib
import fcntl
import os
import tempfile
from pathlib import Path

import pytest

os.environ["EQUIV_CACHE_DIR"] = tempfile.mkdtemp(prefix="equiv-test-cache-")

if os.environ.get("PYTEST_XDIST_WORKER"):
    import torch

    torch.set_num_threads(1)

ROOT = Path(__file__).resolve().parents[1]


@contextlib.contextmanager
def _locked(path: Path):
    path.parent.mkdir(parents=True, exist_ok=True)
    with open(path, "w") as handle:
        fcntl.flock(handle, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(handle, fcntl.LOCK_UN)


@pytest.fixture(scope="session")
def book_build_lock():
    """A context manager: held while a test builds the book in ``_build/`` (see the module docstring)."""
    return lambda: _locked(ROOT / "_build" / ".test-book-build.lock")

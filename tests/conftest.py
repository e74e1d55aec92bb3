"""Session-wide test settings.

``EQUIV_CACHE_DIR`` points at a fresh folder for the session, so ``equiv run``'s packing measurement
(:mod:`equiv.batch.packing`) runs for real once per test session, instead of reading or writing the user's
``~/.cache/equiv``.
"""

from __future__ import annotations

import os
import tempfile

os.environ["EQUIV_CACHE_DIR"] = tempfile.mkdtemp(prefix="equiv-test-cache-")

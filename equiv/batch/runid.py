"""The run id: a stable name for one parameter combination of one notebook.

``run_id = sha256(canonical_json({"notebook": KEY, "parameters": PARAMS, "profile": PROFILE}))[:16]``

- ``KEY`` is the notebook's path relative to the root of the repository that contains it (the
  nearest folder upwards with ``.git`` or ``pyproject.toml``; POSIX separators), or relative to the
  grid file's directory when the notebook lies in no repository. Moving or renaming the notebook
  therefore gives new ids; moving, renaming or rewording the grid file does not.
- ``PARAMS`` are the parameters papermill injects (fixed parameters, one value per axis, the seed,
  and ``profile`` when the notebook declares it), after coercion (an int given for a float
  default becomes a float, so ``1`` and ``1.0`` name the same run).
- ``PROFILE`` is the run's profile (``None`` when there is none), which the kernel also sees as
  ``$EQUIV_PROFILE``: the same parameters under another profile are another run.
- The notebook's *content* is not part of the id: editing a notebook does not invalidate earlier
  results. Each manifest records the notebook's SHA-256 instead, and ``equiv status`` flags runs
  made with a different version of the notebook; to recompute, delete those run directories
  (or the whole grid directory).

Canonical JSON: keys sorted, no whitespace, UTF-8, NaN/Infinity rejected.
"""

from __future__ import annotations

import hashlib
import json
from typing import Any, Mapping

__all__ = ["canonical_json", "run_id", "RUN_ID_LENGTH"]

RUN_ID_LENGTH = 16  # hex digits: 64 bits, collision-free for any realistic grid


def canonical_json(obj: Any) -> str:
    """``obj`` as canonical JSON: sorted keys, compact separators, non-ASCII kept, no NaN."""
    return json.dumps(obj, sort_keys=True, separators=(",", ":"), ensure_ascii=False, allow_nan=False)


def run_id(notebook_key: str, parameters: Mapping[str, Any], profile: str | None = None) -> str:
    """The stable id of running ``notebook_key`` with ``parameters`` under ``profile``."""
    payload = canonical_json({"notebook": notebook_key, "parameters": dict(parameters), "profile": profile})
    return hashlib.sha256(payload.encode("utf-8")).hexdigest()[:RUN_ID_LENGTH]

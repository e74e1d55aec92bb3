"""Committed results: finished runs kept in the repository, so that no clone ever computes them again.

A grid with a ``results:`` key (a folder, relative to the grid file) publishes every run that finishes
``done`` there, as one file ``<results>/<run_id>.json``. The file is self-contained and verifiable:

- ``run_id``, ``grid``, ``notebook`` (the notebook's key in the run id), ``notebook_sha256``,
  ``profile`` and ``parameters`` (exactly what the run id hashes, so the id can be recomputed);
- ``provenance``: code version (``git_commit``, ``git_dirty``, ``equiv_version``), library versions
  (``libraries``), device, platform, host, threads (``resources``), start/end time and duration;
- ``metrics``: the run's ``metrics.json`` as the notebook wrote it (its ``rows`` are the tidy table);
- ``sha256``: the SHA-256 of the canonical JSON of everything else.

:func:`read_committed` refuses (:class:`CommittedRunError`, a ``ValueError`` naming the file) a file whose
checksum, run id or parameters do not match. Planning (:func:`equiv.batch.runner.plan_grid`) counts a run
with a valid committed file as done without looking at ``runs/``: after ``git clone`` on another machine,
``equiv run`` executes only what nobody has committed yet, and a study can be finished over several
sittings. Files are written atomically; a run is published only after its manifest says ``done``.
"""

from __future__ import annotations

import hashlib
import json
import os
from pathlib import Path
from typing import Any, Iterable, Mapping

from equiv.atomic_io import atomic_write_json
from equiv.batch.runid import canonical_json, run_id

__all__ = ["COMMITTED_FORMAT", "CommittedRunError", "committed_path", "publish_run", "read_committed",
           "load_committed", "committed_ids"]

COMMITTED_FORMAT = "equiv-committed-run/1"


class CommittedRunError(ValueError):
    """A committed result file that cannot be trusted (one line naming the file and what is wrong)."""


def committed_path(results_dir: str | os.PathLike, rid: str) -> Path:
    """Where run ``rid`` is committed in ``results_dir``."""
    return Path(results_dir) / f"{rid}.json"


def _digest(record: Mapping[str, Any]) -> str:
    body = {k: v for k, v in record.items() if k != "sha256"}
    return hashlib.sha256(canonical_json(body).encode("utf-8")).hexdigest()


def publish_run(results_dir: str | os.PathLike, *, manifest: Mapping[str, Any], parameters: Mapping[str, Any],
                metrics: Mapping[str, Any]) -> Path:
    """Write the committed record of a ``done`` run (atomically) and return its path."""
    if manifest.get("status") != "done":
        raise ValueError(f"run {manifest.get('run_id')!r} is {manifest.get('status')!r}; only done runs are committed")
    keep = ("git_commit", "git_dirty", "equiv_version", "libraries", "device", "cpu", "platform", "host", "resources",
            "start_time", "end_time", "duration_s", "attempt", "backend", "executor")
    record: dict[str, Any] = {
        "format": COMMITTED_FORMAT,
        "run_id": manifest["run_id"],
        "grid": manifest.get("grid"),
        "notebook": manifest.get("notebook"),
        "notebook_sha256": manifest.get("notebook_sha256"),
        "profile": manifest.get("profile"),
        "parameters": dict(parameters),
        "provenance": {k: manifest.get(k) for k in keep},
        "metrics": json.loads(json.dumps(dict(metrics), allow_nan=True)),
    }
    record["sha256"] = _digest(record)
    folder = Path(results_dir)
    folder.mkdir(parents=True, exist_ok=True)
    path = committed_path(folder, record["run_id"])
    atomic_write_json(path, record)
    return path


def read_committed(path: str | os.PathLike) -> dict[str, Any]:
    """The verified record in ``path``; :class:`CommittedRunError` if it is not one."""
    path = Path(path)
    fix = f"delete {path} to compute that run again"
    try:
        record = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as err:
        raise CommittedRunError(f"committed result {path} cannot be read ({type(err).__name__}); {fix}") from None
    if not isinstance(record, dict) or record.get("format") != COMMITTED_FORMAT:
        raise CommittedRunError(f"committed result {path} is not an {COMMITTED_FORMAT} file; {fix}")
    if record.get("sha256") != _digest(record):
        raise CommittedRunError(f"committed result {path} fails its checksum (edited or truncated); {fix}")
    if path.stem != record.get("run_id"):
        raise CommittedRunError(f"committed result {path} holds run {record.get('run_id')!r}, not {path.stem!r}; {fix}")
    expected = run_id(str(record.get("notebook")), record.get("parameters") or {}, record.get("profile"))
    if expected != record["run_id"]:
        raise CommittedRunError(f"committed result {path}: its parameters give run id {expected}, not {record['run_id']}; {fix}")
    return record


def committed_ids(results_dir: str | os.PathLike | None, wanted: Iterable[str]) -> set[str]:
    """The ids among ``wanted`` that have a valid committed record in ``results_dir`` (each one verified)."""
    if results_dir is None:
        return set()
    folder = Path(results_dir)
    if not folder.is_dir():
        return set()
    present = {p.stem for p in folder.glob("*.json")}
    found = set()
    for rid in wanted:
        if rid in present:
            read_committed(committed_path(folder, rid))
            found.add(rid)
    return found


def load_committed(results_dir: str | os.PathLike) -> list[dict[str, Any]]:
    """Every verified record in ``results_dir``, sorted by run id (an empty list for a missing folder)."""
    folder = Path(results_dir)
    if not folder.is_dir():
        return []
    return [read_committed(p) for p in sorted(folder.glob("*.json"))]

"""The state of each run, read from its directory: done / failed / running / pending.

- ``done`` / ``failed``: ``manifest.json`` says so (it is written atomically, last of all).
- ``running``: the manifest says ``running`` and a live process holds the run's lock.
- ``pending``: no manifest yet, or a ``running`` manifest whose lock is free: the process that
  ran it died (``interrupted``), and the next ``equiv run`` runs it again.
"""

from __future__ import annotations

import datetime as _dt
import hashlib
import json
from dataclasses import dataclass
from functools import lru_cache
from pathlib import Path
from typing import Any, Iterable, Mapping

from equiv.batch.layout import LOCK_FILE, MANIFEST_FILE, PARAMS_FILE, NotAFolderError, is_run_dir
from equiv.batch.lock import is_locked
from equiv.batch.runid import canonical_json

__all__ = [
    "STATES",
    "RunState",
    "read_json",
    "read_manifest",
    "read_run_state",
    "list_run_states",
    "parameter_sort_key",
    "format_status",
    "file_sha256",
]

STATES = ("done", "failed", "running", "pending")


def read_json(path: Path) -> dict[str, Any] | None:
    """A JSON object file, or ``None`` when it is missing or unreadable (never half-read: writes are atomic)."""
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except FileNotFoundError:
        return None
    except (OSError, ValueError):
        return None
    return data if isinstance(data, dict) else None


def read_manifest(run_dir: Path) -> dict[str, Any] | None:
    """The run's manifest, or ``None`` before its first start."""
    return read_json(Path(run_dir) / MANIFEST_FILE)


def file_sha256(path: Path) -> str:
    """SHA-256 of a file's bytes."""
    h = hashlib.sha256()
    with open(path, "rb") as fh:
        for block in iter(lambda: fh.read(1 << 20), b""):
            h.update(block)
    return h.hexdigest()


@lru_cache(maxsize=64)
def _current_sha(path: str, mtime_ns: int) -> str:
    return file_sha256(Path(path))


@dataclass(frozen=True)
class RunState:
    """One run as found on disk."""

    run_id: str
    path: Path
    state: str  # one of STATES
    attempt: int  # how many times it was started (0: never)
    parameters: dict[str, Any]
    profile: str | None
    manifest: dict[str, Any] | None
    interrupted: bool = False  # manifest says running, but its process is gone
    notebook_changed: bool | None = None  # the notebook differs from the one the run used

    @property
    def duration_s(self) -> float | None:
        """Seconds the run took (finished runs) or has taken so far (running ones)."""
        m = self.manifest or {}
        if self.state in ("done", "failed"):
            return m.get("duration_s")
        if self.state == "running" and m.get("start_time"):
            try:
                start = _dt.datetime.fromisoformat(m["start_time"])
            except ValueError:
                return None
            return (_dt.datetime.now(_dt.timezone.utc) - start).total_seconds()
        return None

    @property
    def error(self) -> dict[str, Any] | None:
        """``{"type", "message", "traceback"}`` of a failed run."""
        return (self.manifest or {}).get("error")


def _notebook_changed(manifest: Mapping[str, Any]) -> bool | None:
    path, recorded = manifest.get("notebook_path"), manifest.get("notebook_sha256")
    if not path or not recorded:
        return None
    try:
        current = _current_sha(path, Path(path).stat().st_mtime_ns)
    except OSError:
        return None
    return current != recorded


def read_run_state(run_dir: str | Path, *, probe_lock: bool = True) -> RunState:
    """The state of the run in ``run_dir`` (probing its lock tells running from interrupted)."""
    run_dir = Path(run_dir)
    params = read_json(run_dir / PARAMS_FILE) or {}
    manifest = read_manifest(run_dir)
    interrupted = False
    if manifest is None:
        state = "pending"
    else:
        status = manifest.get("status")
        if status in ("done", "failed"):
            state = status
        elif probe_lock and not is_locked(run_dir / LOCK_FILE):
            state, interrupted = "pending", True
        else:
            state = "running"
    changed = _notebook_changed(manifest) if manifest else None
    return RunState(
        run_id=run_dir.name,
        path=run_dir,
        state=state,
        attempt=int((manifest or {}).get("attempt", 0)),
        parameters=dict(params.get("parameters", {})),
        profile=params.get("profile"),
        manifest=manifest,
        interrupted=interrupted,
        notebook_changed=changed,
    )


def parameter_sort_key(parameters: Mapping[str, Any], names: Iterable[str]) -> tuple:
    """A total order on parameter dicts: numbers numerically, strings alphabetically, by ``names``."""
    key = []
    for name in names:
        if name not in parameters:
            key.append((0, 0.0, ""))
            continue
        v = parameters[name]
        if v is None:
            key.append((1, 0.0, ""))
        elif isinstance(v, bool):
            key.append((2, float(v), ""))
        elif isinstance(v, (int, float)):
            key.append((3, float(v), ""))
        elif isinstance(v, str):
            key.append((4, 0.0, v))
        else:
            key.append((5, 0.0, canonical_json(v)))
    return tuple(key)


def _parameter_names(param_dicts: Iterable[Mapping[str, Any]]) -> list[str]:
    names: dict[str, None] = {}
    for p in param_dicts:
        for n in p:
            names.setdefault(n, None)
    return list(names)


def list_run_states(grid_dir: str | Path, *, probe_lock: bool = True) -> list[RunState]:
    """Every run under ``grid_dir``, ordered by parameters.

    Raises ``FileNotFoundError`` if it does not exist and :class:`~equiv.batch.layout.NotAFolderError`
    if it is a file (one-line messages naming the path).
    """
    grid_dir = Path(grid_dir)
    if not grid_dir.is_dir():
        expected = "expected runs/<grid-name>, a folder written by `equiv run`"
        if grid_dir.exists():
            raise NotAFolderError(f"{str(grid_dir)!r} is a file, not a runs directory ({expected})")
        raise FileNotFoundError(f"no runs directory {str(grid_dir)!r} ({expected})")
    states = [read_run_state(p, probe_lock=probe_lock) for p in sorted(grid_dir.iterdir()) if is_run_dir(p)]
    names = _parameter_names(s.parameters for s in states)
    states.sort(key=lambda s: (parameter_sort_key(s.parameters, names), s.run_id))
    return states


def _fmt_duration(seconds: float | None) -> str:
    if seconds is None:
        return "-"
    if seconds < 120:
        return f"{seconds:.1f}s"
    if seconds < 7200:
        return f"{seconds / 60:.1f}m"
    return f"{seconds / 3600:.1f}h"


def _fmt_value(v: Any) -> str:
    return v if isinstance(v, str) and v and " " not in v else json.dumps(v, ensure_ascii=False)


def format_status(states: list[RunState]) -> str:
    """A table of runs (id, state, attempts, duration, parameters, error) and a count line."""
    lines = [f"{'RUN ID':<16}  {'STATE':<8} {'TRIES':>5} {'DURATION':>8}  PARAMETERS"]
    for s in states:
        params = " ".join(f"{k}={_fmt_value(v)}" for k, v in s.parameters.items())
        notes = []
        if s.interrupted:
            notes.append("(interrupted: runs again on the next `equiv run`)")
        if s.notebook_changed:
            notes.append("(notebook changed since)")
        line = f"{s.run_id:<16}  {s.state:<8} {s.attempt:>5} {_fmt_duration(s.duration_s):>8}  {params}"
        lines.append(" ".join([line, *notes]))
        if s.state == "failed" and s.error:
            msg = str(s.error.get("message", "")).strip().splitlines()
            lines.append(f"{'':18}{s.error.get('type', 'Error')}: {msg[0] if msg else ''}")
    counts = {k: sum(1 for s in states if s.state == k) for k in STATES}
    lines.append(f"{len(states)} runs: " + ", ".join(f"{counts[k]} {k}" for k in STATES))
    return "\n".join(lines)

"""``equiv results``: every finished run of a grid in one tidy table (CSV and Parquet).

Columns, in order:

1. every parameter (``params.json``), one column each;
2. ``run_id``, ``status`` (done / failed), ``duration_s``, ``profile`` (omitted when ``profile`` is
   already a parameter), ``error`` (``Type: message`` of failed runs);
3. the metrics of ``metrics.json``: scalar values one column each, nested dicts flattened with
   dots (``{"err": {"max": 1}}`` -> ``err.max``), other lists as JSON text.

If the metrics hold ``rows`` (a list of dicts), the run gives one table row per record, each with
the run's parameters and scalar metrics repeated and the record's fields as columns; a run without
``rows`` (or with an empty list) gives one row. A metric or row field whose name is already a
column (a parameter, a column of 2., or, for a row field, a run-level metric) is renamed
``metric.<name>``. Failed runs appear with empty metric columns; pending and running runs do not
appear. Rows are ordered by parameters (numbers numerically), then by position in ``rows``.

Writing the pair (:func:`write_results`): ``<out>.csv`` and ``<out>.parquet`` cannot be replaced
together in one atomic step, so they are published with a manifest, ``<out>.json``, written last:

1. both tables are serialised in memory, then written and fsynced into a fresh staging folder
   ``.<name>.<random>.staging/`` next to the targets (under the lock ``.<name>.lock``);
2. each file is renamed over its target (``os.replace``), and the folder is fsynced;
3. ``<out>.json`` -- the SHA-256, size and row count of each file -- is written atomically, last.

A kill before step 2 leaves the previous pair and manifest as they were (the staging folder is
removed by the next write); a kill in step 2 or before step 3 leaves at least one file whose hash
differs from the manifest (or no manifest at all); a kill during step 3 leaves the old manifest or
the new one, never half of one. So a pair is *current* exactly when both files match ``<out>.json``:
:func:`results_state` tells ``current`` / ``stale`` / ``missing``, :func:`read_results` reads only a
current pair (else a one-line :class:`StaleResultsError`), and ``equiv results`` rewrites a stale
pair (it always writes a fresh one, and says when it replaced a stale one).
"""

from __future__ import annotations

import datetime as _dt
import hashlib
import io
import json
import os
import shutil
import tempfile
from pathlib import Path
from typing import Any, Mapping

import pandas as pd

from equiv.atomic_io import atomic_write_json
from equiv.batch.layout import METRICS_FILE, RESULTS_MANIFEST_SUFFIX, RESULTS_STEM, check_can_be_folder
from equiv.batch.lock import RunLock
from equiv.batch.metrics import ROWS_KEY
from equiv.batch.state import list_run_states, parameter_sort_key, read_json

__all__ = [
    "collect_results",
    "write_results",
    "read_results",
    "results_state",
    "results_stem",
    "results_manifest_path",
    "StaleResultsError",
    "RESERVED_COLUMNS",
    "RESULT_FORMATS",
]

RESERVED_COLUMNS = ("run_id", "status", "duration_s", "profile", "error")
RESULT_FORMATS = ("csv", "parquet")  # the pair, in the order it is published
_MANIFEST_FORMAT = 1
_METRIC_PREFIX = "metric."


class StaleResultsError(ValueError):
    """The results pair does not match its manifest (an interrupted write); one line naming it."""


def _flatten(value: Mapping[str, Any], prefix: str = "") -> dict[str, Any]:
    out: dict[str, Any] = {}
    for key, v in value.items():
        name = f"{prefix}{key}"
        if isinstance(v, Mapping):
            out.update(_flatten(v, name + "."))
        elif isinstance(v, (list, tuple)):
            out[name] = json.dumps(v, ensure_ascii=False, default=str)
        else:
            out[name] = v
    return out


def _add(record: dict[str, Any], values: Mapping[str, Any]) -> None:
    for key, v in values.items():
        record[_METRIC_PREFIX + key if key in record else key] = v


def _arrow_safe(frame: pd.DataFrame) -> pd.DataFrame:
    """Object columns mixing types (e.g. str and float) become text, so that Parquet can store them."""
    frame = frame.copy()
    for col in frame.columns:
        if frame[col].dtype != object:
            continue
        kinds = {type(v) for v in frame[col] if v is not None and not (isinstance(v, float) and pd.isna(v))}
        if kinds <= {int, float} or len(kinds) <= 1:
            continue
        frame[col] = [None if v is None or (isinstance(v, float) and pd.isna(v)) else (v if isinstance(v, str) else json.dumps(v)) for v in frame[col]]
    return frame


def collect_results(run_dir: str | os.PathLike) -> pd.DataFrame:
    """The tidy table of every finished run under ``run_dir`` (``runs/<grid-name>``); see the module docstring."""
    states = [s for s in list_run_states(run_dir, probe_lock=False) if s.state in ("done", "failed")]
    records: list[dict[str, Any]] = []
    param_names: dict[str, None] = {}
    for s in states:
        for name in s.parameters:
            param_names.setdefault(name, None)
    for s in states:
        base: dict[str, Any] = {name: s.parameters.get(name) for name in param_names}
        base.update(run_id=s.run_id, status=s.state, duration_s=(s.manifest or {}).get("duration_s"))
        if "profile" not in param_names:
            base["profile"] = s.profile
        err = s.error or {}
        base["error"] = f"{err.get('type')}: {str(err.get('message', '')).strip()}" if s.state == "failed" else None
        metrics = (read_json(s.path / METRICS_FILE) or {}) if s.state == "done" else {}
        rows = metrics.get(ROWS_KEY)
        scalars = {k: v for k, v in metrics.items() if k != ROWS_KEY}
        _add(base, _flatten(scalars))
        if isinstance(rows, list) and rows:
            for row in rows:
                record = dict(base)
                _add(record, _flatten(row) if isinstance(row, Mapping) else {ROWS_KEY: json.dumps(row)})
                records.append(record)
        else:
            records.append(base)
    if not records:
        return pd.DataFrame(columns=[*param_names, "run_id", "status", "duration_s"])
    names = list(param_names)
    order = {s.run_id: parameter_sort_key(s.parameters, names) for s in states}
    indexed = sorted(enumerate(records), key=lambda ir: (order[ir[1]["run_id"]], ir[1]["run_id"], ir[0]))
    frame = pd.DataFrame.from_records([r for _, r in indexed])
    return frame


def results_stem(run_dir: str | os.PathLike, out: str | os.PathLike | None = None) -> Path:
    """The path of the results files without suffix: ``out`` (``.csv`` / ``.parquet`` dropped), else ``<run_dir>/results``."""
    stem = Path(out) if out is not None else Path(run_dir) / RESULTS_STEM
    return stem.with_suffix("") if stem.suffix in (".csv", ".parquet") else stem


def _target(stem: Path, fmt: str) -> Path:
    return stem.with_name(f"{stem.name}.{fmt}")


def results_manifest_path(stem: str | os.PathLike) -> Path:
    """``<stem>.json``: the manifest naming the current pair."""
    stem = Path(stem)
    return stem.with_name(stem.name + RESULTS_MANIFEST_SUFFIX)


def _serialise(frame: pd.DataFrame) -> dict[str, bytes]:
    parquet = io.BytesIO()
    frame.to_parquet(parquet, index=False)
    return {"csv": frame.to_csv(index=False).encode("utf-8"), "parquet": parquet.getvalue()}


def _write_synced(path: Path, data: bytes) -> None:
    with open(path, "wb") as fh:
        fh.write(data)
        fh.flush()
        os.fsync(fh.fileno())


def _fsync_dir(folder: Path) -> None:
    try:
        fd = os.open(folder, os.O_RDONLY)
    except OSError:
        return
    try:
        os.fsync(fd)
    except OSError:  # file systems that cannot sync a directory
        pass
    finally:
        os.close(fd)


def _publish(staged: Path, target: Path) -> None:
    """Move one staged, synced file over its target (atomic for that one file)."""
    os.replace(staged, target)


def _remove_staging_leftovers(stem: Path) -> None:
    """Staging folders of writers that were killed (call under the results lock)."""
    for leftover in stem.parent.glob(f".{stem.name}.*.staging"):
        if leftover.is_dir() and not leftover.is_symlink():
            shutil.rmtree(leftover, ignore_errors=True)


def _entry(fmt: str, stem: Path, data: bytes, rows: int) -> dict[str, Any]:
    return {"file": _target(stem, fmt).name, "sha256": hashlib.sha256(data).hexdigest(), "bytes": len(data), "rows": rows}


def _publish_pair(stem: Path, payloads: Mapping[str, bytes], manifest: dict[str, Any]) -> None:
    staging = Path(tempfile.mkdtemp(prefix=f".{stem.name}.", suffix=".staging", dir=stem.parent))
    try:
        for fmt in RESULT_FORMATS:
            _write_synced(staging / _target(stem, fmt).name, payloads[fmt])
        _fsync_dir(staging)
        for fmt in RESULT_FORMATS:
            _publish(staging / _target(stem, fmt).name, _target(stem, fmt))
        _fsync_dir(stem.parent)
        atomic_write_json(results_manifest_path(stem), manifest)  # last: it makes the pair current
    finally:
        shutil.rmtree(staging, ignore_errors=True)


def write_results(run_dir: str | os.PathLike, out: str | os.PathLike | None = None) -> tuple[Path, Path, pd.DataFrame]:
    """Collect ``run_dir`` and publish ``<out>.csv``, ``<out>.parquet`` and their manifest ``<out>.json``.

    ``out`` defaults to ``<run_dir>/results``; see the module docstring for why a kill at any moment
    never leaves a pair that :func:`read_results` would take for current.
    """
    stem = results_stem(run_dir, out)
    if out is not None:  # without it the folder is run_dir, which collect_results checks
        check_can_be_folder(stem.parent, "the folder of --out")
    frame = collect_results(run_dir)
    payloads = _serialise(_arrow_safe(frame))
    manifest = {
        "format": _MANIFEST_FORMAT,
        "written_at": _dt.datetime.now(_dt.timezone.utc).isoformat(timespec="seconds"),
        "rows": len(frame),
        "runs": int(frame["run_id"].nunique()) if len(frame) else 0,
        "files": {fmt: _entry(fmt, stem, payloads[fmt], len(frame)) for fmt in RESULT_FORMATS},
    }
    stem.parent.mkdir(parents=True, exist_ok=True)
    with RunLock(stem.parent / f".{stem.name}.lock"):
        _remove_staging_leftovers(stem)
        _publish_pair(stem, payloads, manifest)
    return _target(stem, "csv"), _target(stem, "parquet"), frame


def _read_current(stem: Path) -> tuple[str, dict[str, bytes]]:
    """(state, the files' bytes when current)."""
    manifest = read_json(results_manifest_path(stem))
    present = [fmt for fmt in RESULT_FORMATS if _target(stem, fmt).is_file()]
    if manifest is None:
        return ("missing" if not present else "stale"), {}
    files = manifest.get("files")
    if manifest.get("format") != _MANIFEST_FORMAT or not isinstance(files, dict) or len(present) < len(RESULT_FORMATS):
        return "stale", {}
    data: dict[str, bytes] = {}
    for fmt in RESULT_FORMATS:
        try:
            data[fmt] = _target(stem, fmt).read_bytes()
        except OSError:
            return "stale", {}
        entry = files.get(fmt)
        if not isinstance(entry, dict) or entry.get("sha256") != hashlib.sha256(data[fmt]).hexdigest():
            return "stale", {}
    return "current", data


def results_state(path: str | os.PathLike) -> str:
    """``current`` (both files match the manifest), ``stale`` (an interrupted write left them out of step, or
    there is no manifest) or ``missing`` (no files). ``path``: a grid's runs folder, or the ``--out`` path."""
    return _read_current(_stem_of(path))[0]


def _stem_of(path: str | os.PathLike) -> Path:
    path = Path(path)
    if path.is_dir():
        return results_stem(path)
    return path.with_suffix("") if path.suffix == RESULTS_MANIFEST_SUFFIX else results_stem(path, path)


def read_results(path: str | os.PathLike, fmt: str = "parquet") -> pd.DataFrame:
    """The results table, read only from a current pair (see :func:`results_state`).

    ``path`` is a grid's runs folder (``runs/<grid>``) or the ``--out`` path given to ``equiv results``;
    ``fmt`` is ``parquet`` or ``csv``. Raises :class:`StaleResultsError` or ``FileNotFoundError`` (one line).
    """
    if fmt not in RESULT_FORMATS:
        raise ValueError(f"format {fmt!r} is not allowed (allowed: {', '.join(RESULT_FORMATS)})")
    stem = _stem_of(path)
    state, data = _read_current(stem)
    if state == "missing":
        raise FileNotFoundError(f"no results at {str(stem)!r} (run `equiv results` first)")
    if state == "stale":
        raise StaleResultsError(
            f"{_target(stem, 'csv')} and {_target(stem, 'parquet').name} do not match {results_manifest_path(stem).name} "
            f"(an interrupted write); run `equiv results` again to rewrite them"
        )
    buffer = io.BytesIO(data[fmt])
    return pd.read_parquet(buffer) if fmt == "parquet" else pd.read_csv(buffer)

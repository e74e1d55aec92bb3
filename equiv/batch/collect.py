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
"""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Any, Mapping

import pandas as pd

from equiv.atomic_io import atomic_write_frame
from equiv.batch.layout import METRICS_FILE, RESULTS_STEM
from equiv.batch.metrics import ROWS_KEY
from equiv.batch.state import list_run_states, parameter_sort_key, read_json

__all__ = ["collect_results", "write_results", "RESERVED_COLUMNS"]

RESERVED_COLUMNS = ("run_id", "status", "duration_s", "profile", "error")
_METRIC_PREFIX = "metric."


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


def write_results(run_dir: str | os.PathLike, out: str | os.PathLike | None = None) -> tuple[Path, Path, pd.DataFrame]:
    """Collect ``run_dir`` and write ``<out>.csv`` and ``<out>.parquet`` atomically (default ``<run_dir>/results``)."""
    frame = collect_results(run_dir)
    stem = Path(out) if out is not None else Path(run_dir) / RESULTS_STEM
    if stem.suffix in (".csv", ".parquet"):
        stem = stem.with_suffix("")
    safe = _arrow_safe(frame)
    csv_path = atomic_write_frame(safe, stem.with_name(stem.name + ".csv"))
    parquet_path = atomic_write_frame(safe, stem.with_name(stem.name + ".parquet"))
    return csv_path, parquet_path, frame

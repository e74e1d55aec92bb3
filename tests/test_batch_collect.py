"""The metrics contract (write_metrics) and the tidy results table (collect_results / equiv results)."""

from __future__ import annotations

import json
from pathlib import Path

import pandas as pd
import pytest

from equiv.batch import collect_results, write_metrics
from equiv.batch.collect import write_results
from equiv.cli import main


def test_write_metrics_goes_to_the_run_dir_else_the_path_else_cwd(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    monkeypatch.delenv("EQUIV_RUN_DIR", raising=False)
    assert write_metrics({"a": 1}) == tmp_path / "metrics.json"
    assert write_metrics({"a": 2}, tmp_path / "sub" / "m.json") == tmp_path / "sub" / "m.json"
    run = tmp_path / "run"
    monkeypatch.setenv("EQUIV_RUN_DIR", str(run))
    assert write_metrics({"a": 3}, tmp_path / "ignored.json") == run / "metrics.json"
    assert json.loads((run / "metrics.json").read_text()) == {"a": 3}
    assert not (tmp_path / "ignored.json").exists()


def test_write_metrics_converts_numpy_and_rejects_bad_input(tmp_path, monkeypatch):
    np = pytest.importorskip("numpy", reason="numpy scalars are what notebooks produce")
    monkeypatch.setenv("EQUIV_RUN_DIR", str(tmp_path))
    write_metrics({"acc": np.float32(0.5), "rows": [{"k": np.int64(3)}]})
    assert json.loads((tmp_path / "metrics.json").read_text()) == {"acc": 0.5, "rows": [{"k": 3}]}
    with pytest.raises(ValueError, match="metrics must be a dict"):
        write_metrics([1, 2])
    with pytest.raises(ValueError, match=r"metrics\['rows'\] must be a list of dicts"):
        write_metrics({"rows": [1, 2]})
    with pytest.raises(ValueError, match="key 3 is not a non-empty string"):
        write_metrics({3: 1})
    with pytest.raises(ValueError, match="cannot write object as JSON"):
        write_metrics({"x": object()})


def make_run(grid: Path, run_id: str, params: dict, status: str | None, metrics: dict | None = None, error=None) -> None:
    rd = grid / run_id
    rd.mkdir(parents=True)
    (rd / "params.json").write_text(json.dumps({"run_id": run_id, "profile": "book", "parameters": params}))
    if status:
        m = {"status": status, "attempt": 1, "duration_s": 1.5, "error": error}
        (rd / "manifest.json").write_text(json.dumps(m))
    if metrics is not None:
        (rd / "metrics.json").write_text(json.dumps(metrics))


def test_collect_expands_rows_flattens_and_renames_clashes(tmp_path):
    g = tmp_path / "grid"
    make_run(g, "b", {"lr": 0.1, "model": "p4"}, "done", {"acc": 0.9, "cfg": {"depth": 3}, "hist": [1, 2], "rows": [{"angle": 0, "err": 0.0}, {"angle": 90, "err": 0.5, "acc": 1.0}]})
    make_run(g, "a", {"lr": 0.01, "model": "p4"}, "done", {"acc": 0.8, "lr": 7, "run_id": "x"})
    make_run(g, "c", {"lr": 1, "model": "z2"}, "failed", None, {"type": "ValueError", "message": "bad\nmore"})
    make_run(g, "d", {"lr": 2, "model": "z2"}, "running")
    make_run(g, "e", {"lr": 3, "model": "z2"}, None)
    frame = collect_results(g)
    assert list(frame.columns[:7]) == ["lr", "model", "run_id", "status", "duration_s", "profile", "error"]
    # ordered by parameters (numbers numerically); b expands into two rows; running / pending left out
    assert list(frame["run_id"]) == ["a", "b", "b", "c"]
    assert list(frame["angle"].iloc[1:3]) == [0, 90] and list(frame["err"].iloc[1:3]) == [0.0, 0.5]
    assert list(frame["acc"].iloc[:3]) == [0.8, 0.9, 0.9]
    assert frame["metric.acc"].iloc[2] == 1.0 and pd.isna(frame["metric.acc"].iloc[1])  # row field clashing with a run metric
    assert frame["metric.lr"].iloc[0] == 7 and frame["metric.run_id"].iloc[0] == "x"  # metrics clashing with columns
    assert frame["cfg.depth"].iloc[1] == 3 and frame["hist"].iloc[1] == "[1, 2]"
    assert frame["status"].iloc[3] == "failed" and frame["error"].iloc[3] == "ValueError: bad\nmore" and pd.isna(frame["acc"].iloc[3])

    csv_path, parquet_path, _ = write_results(g)
    assert csv_path == g / "results.csv" and parquet_path == g / "results.parquet"
    back = pd.read_parquet(parquet_path)
    assert back.shape == frame.shape and list(back.columns) == list(frame.columns)
    assert pd.read_csv(csv_path).shape == frame.shape


def test_collect_keeps_mixed_type_columns_writable(tmp_path):
    g = tmp_path / "grid"
    make_run(g, "a", {"k": 1}, "done", {"v": "text"})
    make_run(g, "b", {"k": 2}, "done", {"v": 2.5})
    _, parquet_path, frame = write_results(g, tmp_path / "out" / "table.csv")
    assert parquet_path == tmp_path / "out" / "table.parquet"
    assert list(pd.read_parquet(parquet_path)["v"]) == ["text", "2.5"]


def test_results_cli_on_empty_and_missing_dirs(tmp_path, capsys):
    g = tmp_path / "grid"
    make_run(g, "a", {"k": 1}, None)
    assert main(["results", str(g)]) == 1
    assert "no finished runs" in capsys.readouterr().err
    assert main(["results", str(tmp_path / "nope")]) == 2
    assert "no runs directory" in capsys.readouterr().err

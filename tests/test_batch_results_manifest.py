"""``equiv results`` publishes results.csv and results.parquet with a manifest written last:
after a kill at any moment, a reader never takes a mixed pair for current, and a rerun repairs it."""

from __future__ import annotations

import hashlib
import json
import subprocess
import sys
import textwrap
from pathlib import Path

import pandas as pd
import pytest

import equiv.batch.collect as collect
from equiv.batch.collect import StaleResultsError, read_results, results_state, write_results
from equiv.cli import main

REPO = Path(__file__).resolve().parents[1]


def make_run(grid: Path, run_id: str, k: int, acc: float) -> None:
    rd = grid / run_id
    rd.mkdir(parents=True)
    (rd / "params.json").write_text(json.dumps({"run_id": run_id, "profile": None, "parameters": {"k": k}}))
    (rd / "manifest.json").write_text(json.dumps({"status": "done", "attempt": 1, "duration_s": 1.0, "error": None}))
    (rd / "metrics.json").write_text(json.dumps({"acc": acc}))


@pytest.fixture()
def grid(tmp_path: Path) -> Path:
    g = tmp_path / "runs" / "g"
    make_run(g, "a", 1, 0.5)
    write_results(g)  # version 1: one run
    make_run(g, "b", 2, 0.75)  # version 2 will have two
    return g


def pair(g: Path) -> tuple[bytes, bytes]:
    return (g / "results.csv").read_bytes(), (g / "results.parquet").read_bytes()


def test_the_manifest_records_each_file_and_readers_check_it(grid):
    manifest = json.loads((grid / "results.json").read_text())
    for fmt in ("csv", "parquet"):
        data = (grid / f"results.{fmt}").read_bytes()
        assert manifest["files"][fmt] == {"file": f"results.{fmt}", "sha256": hashlib.sha256(data).hexdigest(), "bytes": len(data), "rows": 1}
    assert manifest["rows"] == 1 and manifest["runs"] == 1
    assert results_state(grid) == "current" and list(read_results(grid)["run_id"]) == ["a"]
    assert list(read_results(grid / "results.csv", "csv")["k"]) == [1]
    assert not list(grid.glob(".results.*.staging"))
    assert results_state(grid.parent / "elsewhere") == "missing"


def test_a_kill_between_the_two_files_is_seen_as_stale_and_a_rerun_repairs_it(grid, monkeypatch, capsys):
    old_csv, old_parquet = pair(grid)
    real = collect._publish
    calls = []

    def killed_on_the_second(staged: Path, target: Path) -> None:
        calls.append(target.name)
        if len(calls) == 2:
            raise KeyboardInterrupt("killed between results.csv and results.parquet")
        real(staged, target)

    monkeypatch.setattr(collect, "_publish", killed_on_the_second)
    with pytest.raises(KeyboardInterrupt):
        write_results(grid)
    monkeypatch.setattr(collect, "_publish", real)
    csv_now, parquet_now = pair(grid)
    assert calls == ["results.csv", "results.parquet"]
    assert csv_now != old_csv and parquet_now == old_parquet  # the mixed pair a plain write would have left
    assert results_state(grid) == "stale"
    with pytest.raises(StaleResultsError) as err:
        read_results(grid)
    assert "\n" not in str(err.value) and "do not match results.json" in str(err.value)

    assert main(["results", str(grid)]) == 0
    out = capsys.readouterr()
    assert "replaced a pair that did not match results.json" in out.err and "2 rows from 2 runs" in out.out
    assert results_state(grid) == "current"
    assert list(read_results(grid)["run_id"]) == ["a", "b"] and list(read_results(grid, "csv")["run_id"]) == ["a", "b"]


def test_a_failure_before_publishing_leaves_the_old_pair_current(grid, monkeypatch):
    before = pair(grid), (grid / "results.json").read_bytes()
    real = collect._write_synced
    calls = []

    def fails_on_the_second(path: Path, data: bytes) -> None:
        calls.append(path.name)
        if len(calls) == 2:
            raise OSError(28, "No space left on device")
        real(path, data)

    monkeypatch.setattr(collect, "_write_synced", fails_on_the_second)
    with pytest.raises(OSError):
        write_results(grid)
    assert (pair(grid), (grid / "results.json").read_bytes()) == before
    assert results_state(grid) == "current" and list(read_results(grid)["run_id"]) == ["a"]
    assert not list(grid.glob(".results.*.staging"))


def killed(path, obj, **kw):
    raise KeyboardInterrupt("killed before the manifest")


def test_a_kill_before_the_manifest_is_stale_too(grid, monkeypatch):
    monkeypatch.setattr(collect, "atomic_write_json", killed)
    with pytest.raises(KeyboardInterrupt):
        write_results(grid)
    assert results_state(grid) == "stale"  # both files are new, the manifest is old: not trusted


def test_a_first_write_killed_half_way_is_stale_not_missing(tmp_path, monkeypatch):
    g = tmp_path / "g"
    make_run(g, "a", 1, 0.5)
    monkeypatch.setattr(collect, "atomic_write_json", killed)
    with pytest.raises(KeyboardInterrupt):
        write_results(g)
    assert results_state(g) == "stale"
    with pytest.raises(StaleResultsError):
        read_results(g)


def test_a_real_kill_between_the_two_renames(grid):
    """``os._exit`` (no cleanup runs, like SIGKILL) right after results.csv is in place."""
    script = textwrap.dedent(
        f"""
        import os
        import equiv.batch.collect as collect
        real = collect._publish
        def publish(staged, target):
            real(staged, target)
            os._exit(9)
        collect._publish = publish
        collect.write_results({str(grid)!r})
        """
    )
    proc = subprocess.run([sys.executable, "-c", script], cwd=REPO, capture_output=True, text=True, timeout=120)
    assert proc.returncode == 9, proc.stderr
    assert results_state(grid) == "stale"
    assert len(list(grid.glob(".results.*.staging"))) == 1  # the killed writer's staging folder
    assert pd.read_csv(grid / "results.csv")["run_id"].tolist() == ["a", "b"]  # new CSV ...
    assert pd.read_parquet(grid / "results.parquet")["run_id"].tolist() == ["a"]  # ... beside the old Parquet

    write_results(grid)
    assert results_state(grid) == "current" and not list(grid.glob(".results.*.staging"))
    assert read_results(grid)["run_id"].tolist() == ["a", "b"]

"""Real runs on the local backend: results on disk, parameters as data, skips, failures, retries."""

from __future__ import annotations

import json
from pathlib import Path

import pandas as pd
import pytest

from equiv.batch.grid import load_grid
from equiv.batch.resources import cpu_count
from equiv.cli import main

TESTS = Path(__file__).resolve().parent
REPO = TESTS.parent
GRIDS = TESTS / "grids"
HOSTILE = {"\"; rm -rf / # it's \\ a `touch PWNED`", "$(touch PWNED)"}


def snapshot(grid_dir: Path) -> dict[str, tuple[bytes, int]]:
    return {p.parent.name: (p.read_bytes(), p.stat().st_mtime_ns) for p in grid_dir.glob("*/manifest.json")}


@pytest.fixture(scope="module")
def compute_runs(tmp_path_factory):
    """The compute grid, run once with --jobs 2 from a scratch working directory."""
    mp = pytest.MonkeyPatch()
    work = tmp_path_factory.mktemp("work")
    mp.chdir(work)
    mp.delenv("EQUIV_PROFILE", raising=False)
    try:
        code = main(["run", str(GRIDS / "compute.yaml"), "--jobs", "2", "--runs-dir", "runs", "--no-progress"])
    finally:
        mp.undo()
    return work, work / "runs" / "compute", code


def test_every_run_is_done_with_its_files(compute_runs):
    work, gdir, code = compute_runs
    assert code == 0
    grid = load_grid(GRIDS / "compute.yaml")
    assert sorted(p.name for p in gdir.iterdir() if p.is_dir()) == sorted(r.run_id for r in grid.runs)
    for spec in grid.runs:
        rd = gdir / spec.run_id
        m = json.loads((rd / "manifest.json").read_text())
        assert m["status"] == "done" and m["attempt"] == 1 and m["error"] is None
        for key in ("start_time", "end_time", "duration_s", "git_commit", "libraries", "device", "host", "notebook_sha256"):
            assert m[key] is not None, key
        assert m["libraries"]["papermill"] and m["notebook"] == "tests/notebooks/compute.ipynb"
        assert json.loads((rd / "params.json").read_text())["parameters"] == spec.parameters
        nb = json.loads((rd / "compute.ipynb").read_text())
        assert any("injected-parameters" in c["metadata"].get("tags", []) for c in nb["cells"])
        assert (rd / "executions.txt").read_text().count("\n") == 1


def test_parameters_arrive_as_data_and_nothing_runs_in_a_shell(compute_runs):
    work, gdir, _ = compute_runs
    labels = set()
    for mfile in gdir.glob("*/metrics.json"):
        metrics = json.loads(mfile.read_text())
        params = json.loads((mfile.parent / "params.json").read_text())["parameters"]
        assert metrics["label"] == params["label"]  # verbatim, quotes, backslash and all
        labels.add(metrics["label"])
        assert metrics["x_type"] == "float" and metrics["y"] == params["x"] * 3
        assert metrics["profile_seen"] == metrics["profile_env"] == "book"
        assert metrics["threads"] == str(max(1, cpu_count() // 2))
        assert Path(metrics["cwd"]) == TESTS / "notebooks"  # the kernel runs next to its notebook
    assert labels == HOSTILE
    assert not list(work.rglob("PWNED*"))  # runner's cwd and runs dir
    for where in (TESTS / "notebooks", REPO, Path.cwd()):  # the kernel's cwd, the repo, pytest's cwd
        assert not (where / "PWNED").exists()


def test_rerun_skips_done_runs_without_touching_them(compute_runs, capsys):
    work, gdir, _ = compute_runs
    before = snapshot(gdir)
    code = main(["run", str(GRIDS / "compute.yaml"), "--jobs", "2", "--runs-dir", str(work / "runs"), "--no-progress", "--profile", "book"])
    assert code == 0
    assert capsys.readouterr().out.strip().splitlines()[-1] == "equiv run compute: 0 failed, 4 done (0 now, 4 before) of 4 runs"
    assert snapshot(gdir) == before
    assert all(p.read_text().count("\n") == 1 for p in gdir.glob("*/executions.txt"))


def test_status_and_results_commands(compute_runs, capsys):
    work, gdir, _ = compute_runs
    assert main(["status", str(gdir)]) == 0
    out = capsys.readouterr().out.splitlines()
    assert out[-1] == "4 runs: 4 done, 0 failed, 0 running, 0 pending"
    assert sum(" done " in line for line in out) == 4
    assert main(["results", str(gdir)]) == 0
    assert "12 rows from 4 runs" in capsys.readouterr().out
    frame = pd.read_parquet(gdir / "results.parquet")
    assert len(frame) == 12 and frame["run_id"].nunique() == 4  # n=3 rows per run
    for col in ("n", "x", "label", "profile", "run_id", "status", "duration_s", "y", "stats.mean", "step", "value"):
        assert col in frame.columns, col
    assert set(frame["label"]) == HOSTILE and set(frame["status"]) == {"done"}
    assert pd.read_csv(gdir / "results.csv", keep_default_na=False).shape == frame.shape


def test_failing_notebook_does_not_stop_the_others(tmp_path, capsys, monkeypatch):
    monkeypatch.delenv("EQUIV_PROFILE", raising=False)
    runs = tmp_path / "runs"
    argv = ["run", str(GRIDS / "fails.yaml"), "--runs-dir", str(runs), "--no-progress"]
    assert main(argv) == 1  # n=1 (first in order) fails, n=2 and n=4 still run
    out = capsys.readouterr().out.strip().splitlines()
    assert out[-1] == f"equiv run fails: 1 failed, 2 done (2 now, 0 before) of 3 runs; details: equiv status {runs / 'fails'}"
    states = {}
    for m in (runs / "fails").glob("*/manifest.json"):
        data = json.loads(m.read_text())
        states[json.loads((m.parent / "params.json").read_text())["parameters"]["n"]] = data
    assert {n: d["status"] for n, d in states.items()} == {1: "failed", 2: "done", 4: "done"}
    err = states[1]["error"]
    assert err["type"] == "ValueError" and err["message"] == "n must be even, got 1"
    assert "raise ValueError" in err["traceback"] and "\x1b[" not in err["traceback"]

    before = snapshot(runs / "fails")
    assert main(argv) == 1  # failed runs are left alone without --retry-failed
    assert snapshot(runs / "fails") == before
    assert main([*argv, "--retry-failed"]) == 1
    after = snapshot(runs / "fails")
    changed = {rid for rid in before if before[rid] != after[rid]}
    assert len(changed) == 1 and json.loads(after[changed.pop()][0])["attempt"] == 2  # only the failed one reran
    assert capsys.readouterr().out.strip().splitlines()[-1].startswith("equiv run fails: 1 failed, 2 done (0 now, 2 before)")

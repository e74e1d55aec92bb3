"""Input limits of the batch runner: run counts, hostile YAML, --cell-timeout, files given as folders.

Each is refused with one line naming the bad value, before anything is expanded or written.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
from pathlib import Path

import pytest
import yaml

from equiv.batch.execute import RunTask, execute_task
from equiv.batch.grid import MAX_RUNS, MAX_RUNS_CEILING, MAX_YAML_ALIASES, MAX_YAML_DEPTH, GridError, count_runs, load_grid
from equiv.batch.runner import plan_grid, run_grid
from equiv.batch.state import list_run_states
from equiv.batch.worker import record_lost_worker
from equiv.cli import main
from grid_files import write_grid

TESTS = Path(__file__).resolve().parent
NOTEBOOKS = TESTS / "notebooks"
GRIDS = TESTS / "grids"
REPO = TESTS.parent


@pytest.fixture(autouse=True)
def _no_profile_env(monkeypatch):
    monkeypatch.delenv("EQUIV_PROFILE", raising=False)


def sleeps_grid(**extra) -> dict:
    return {"notebook": str(NOTEBOOKS / "sleeps.ipynb"), "parameters": {"seconds": 0.0}, **extra}


def one_error_line(capsys) -> str:
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1, err
    return err[0]


# --- 1. the number of runs -------------------------------------------------------------------


def test_run_count_is_arithmetic():
    assert count_runs({"a": [1, 2, 3], "b": ["x", "y"]}, range(10**15)) == 6 * 10**15
    assert count_runs({}, None) == 1 and count_runs({"a": [1]}, [4, 7]) == 2


def test_a_grid_over_the_limit_is_refused_with_its_count_and_the_limit(tmp_path):
    path = write_grid(tmp_path, sleeps_grid(axes={"seconds": [0.0, 0.1]}, parameters={}, seeds=MAX_RUNS // 2 + 1))
    with pytest.raises(GridError) as err:
        load_grid(path)
    text = str(err.value)
    assert "\n" not in text and f"the grid has {MAX_RUNS + 2} runs (seconds: 2 x seeds: {MAX_RUNS // 2 + 1})" in text
    assert f"more than the limit of {MAX_RUNS}" in text and f"--max-runs {MAX_RUNS + 2}" in text
    assert len(load_grid(path, max_runs=MAX_RUNS + 2).runs) == MAX_RUNS + 2  # the explicit limit raises it


@pytest.mark.parametrize("seeds", [10**12, 10**30])
def test_a_huge_seed_count_is_refused_not_a_memory_error(tmp_path, seeds):
    started = time.monotonic()
    with pytest.raises(GridError, match=f"the grid has {seeds} runs .*more than {MAX_RUNS_CEILING}, the most --max-runs allows"):
        load_grid(write_grid(tmp_path, sleeps_grid(seeds=seeds)), max_runs=MAX_RUNS_CEILING)
    assert time.monotonic() - started < 30


def test_seed_values_are_bounded_and_other_profiles_cost_nothing(tmp_path):
    with pytest.raises(GridError, match=r"seeds contains 4294967296; seeds must be ints from 0 to 4294967295"):
        load_grid(write_grid(tmp_path, sleeps_grid(seeds=[1, 2**32])))
    # a huge count in a profile that is not chosen is checked (it is a valid count) but never listed
    grid = load_grid(write_grid(tmp_path, sleeps_grid(seeds=2, profiles={"paper": {"seeds": 10**18}}), "p.yaml"))
    assert len(grid.runs) == 2


def test_cli_refuses_a_big_grid_before_writing_anything_and_max_runs_allows_it(tmp_path, capsys, monkeypatch):
    runs = tmp_path / "runs"
    path = write_grid(tmp_path, sleeps_grid(seeds=MAX_RUNS + 1))
    assert main(["run", str(path), "--runs-dir", str(runs), "--no-progress"]) == 2
    line = one_error_line(capsys)
    assert line.startswith(f"equiv run: error: grid.yaml: the grid has {MAX_RUNS + 1} runs") and f"limit of {MAX_RUNS}" in line
    assert not runs.exists()

    seen = {}

    def fake_local(tasks, *, jobs, progress, threads=None, on_outcome=None):
        seen["tasks"] = list(tasks)
        return []

    monkeypatch.setattr("equiv.batch.local.run_local", fake_local)
    started = time.monotonic()
    assert main(["run", str(path), "--runs-dir", str(runs), "--no-progress", "--max-runs", str(MAX_RUNS + 1)]) == 1
    assert len(seen["tasks"]) == MAX_RUNS + 1
    assert not runs.exists()  # planning 10,001 runs wrote nothing
    assert time.monotonic() - started < 60
    capsys.readouterr()
    for bad in ("0", "x", str(MAX_RUNS_CEILING + 1)):
        with pytest.raises(SystemExit) as exit_:
            main(["run", str(path), "--runs-dir", str(runs), "--max-runs", bad])
        assert exit_.value.code == 2
        assert f"argument --max-runs: '{bad}' is not allowed (a whole number from 1 to {MAX_RUNS_CEILING})" in capsys.readouterr().err
    with pytest.raises(ValueError, match="--max-runs 0 is not allowed"):
        run_grid(path, runs_dir=runs, max_runs=0, progress=False)


def _make_run(gdir: Path, run_id: str, manifest: dict | None) -> None:
    rd = gdir / run_id
    rd.mkdir(parents=True)
    (rd / "params.json").write_text(json.dumps({"run_id": run_id, "parameters": {}}))
    if manifest is not None:
        (rd / "manifest.json").write_text(json.dumps(manifest))


def test_planning_writes_nothing_and_keeps_resume_semantics(tmp_path):
    grid = load_grid(GRIDS / "sleeps.yaml")
    runs = tmp_path / "runs"
    tasks, done_before = plan_grid(grid, runs)
    assert not runs.exists()  # no folder, no params.json before the first run starts
    assert [t.run_id for t in tasks] == [r.run_id for r in grid.runs] and done_before == 0

    gdir = runs / grid.name
    ids = [r.run_id for r in grid.runs]
    _make_run(gdir, ids[0], {"status": "done", "attempt": 1})
    _make_run(gdir, ids[1], {"status": "failed", "attempt": 1})
    _make_run(gdir, ids[2], {"status": "running", "attempt": 1})  # interrupted: its lock is free
    before = sorted(p.relative_to(runs) for p in runs.rglob("*"))
    tasks, done_before = plan_grid(grid, runs)
    assert done_before == 1 and [t.run_id for t in tasks] == [ids[3], ids[2]]  # fresh first, then in-flight ones
    assert [t.expected_attempt for t in tasks] == [0, 1]
    tasks, _ = plan_grid(grid, runs, retry_failed=True)
    assert [t.run_id for t in tasks] == [ids[1], ids[3], ids[2]]
    assert sorted(p.relative_to(runs) for p in runs.rglob("*")) == before  # still nothing written
    assert not (gdir / ids[3]).exists()

    def fake_ok(task, output):
        output.write_text(json.dumps({"cells": [], "metadata": {}, "nbformat": 4, "nbformat_minor": 5}))

    fresh = next(t for t in tasks if t.run_id == ids[3])
    fresh.environment = {"code": {}, "libraries": {}, "device": "cpu:test"}
    assert execute_task(fresh, execute=fake_ok).status == "done"  # the run writes its own folder and params.json
    params = json.loads((gdir / ids[3] / "params.json").read_text())
    assert params == {"run_id": ids[3], "grid": "sleeps", "notebook": "tests/notebooks/sleeps.ipynb", "profile": None, "parameters": grid.runs[3].parameters}
    assert ids[3] in {s.run_id for s in list_run_states(gdir)}


def test_a_worker_lost_before_its_run_started_still_leaves_a_listed_failed_run(tmp_path):
    rd = tmp_path / "g" / "r1"
    task = RunTask(grid="g", run_id="r1", run_dir=str(rd), notebook="nb.ipynb", notebook_key="nb.ipynb", parameters={"n": 1})
    rd.mkdir(parents=True)  # the worker made the folder, then died before writing anything
    assert record_lost_worker(task, -9).status == "failed"
    states = list_run_states(tmp_path / "g")
    assert [(s.run_id, s.state, s.parameters) for s in states] == [("r1", "failed", {"n": 1})]


# --- 2. hostile YAML ---------------------------------------------------------------------------


def _laughs() -> str:
    levels = ["&a [lol, lol, lol, lol, lol, lol, lol, lol, lol]"]
    for prev, name in zip("abcdefgh", "bcdefghi"):
        levels.append(f"&{name} [" + ", ".join([f"*{prev}"] * 9) + "]")
    return f"notebook: {NOTEBOOKS / 'compute.ipynb'}\nparameters:\n  label: [{', '.join(levels)}, *i]\n"


HOSTILE = {
    "billion-laughs": (_laughs(), "the YAML expands to more than 100000 values (aliases included)"),
    "deep-flow": (
        f"notebook: {NOTEBOOKS / 'compute.ipynb'}\nparameters: {{label: " + "[" * 5000 + "]" * 5000 + "}\n",
        f"the YAML nests deeper than {MAX_YAML_DEPTH} levels",
    ),
    "deep-block": (
        f"notebook: {NOTEBOOKS / 'compute.ipynb'}\nparameters:\n" + "".join("  " * (i + 1) + f"k{i}:\n" for i in range(400)),
        f"the YAML nests deeper than {MAX_YAML_DEPTH} levels",
    ),
    "recursive-alias": (f"notebook: {NOTEBOOKS / 'compute.ipynb'}\nparameters: {{label: &r [*r]}}\n", "alias *r at line 2 is inside the node it names"),
    "many-aliases": (
        f"notebook: {NOTEBOOKS / 'compute.ipynb'}\nparameters: {{label: &s x}}\naxes: {{x: [" + ", ".join(["*s"] * 150) + "]}\n",
        f"the YAML uses more than {MAX_YAML_ALIASES} alias references",
    ),
}


@pytest.mark.parametrize("case", sorted(HOSTILE))
def test_hostile_yaml_is_refused_quickly_with_one_line(tmp_path, case):
    text, message = HOSTILE[case]
    path = write_grid(tmp_path, text)
    if case == "billion-laughs":
        assert len(text.encode()) < 600
    runs = tmp_path / "runs"
    cmd = [sys.executable, "-m", "equiv.cli", "run", str(path), "--runs-dir", str(runs), "--no-progress"]
    env = {k: v for k, v in os.environ.items() if k != "EQUIV_PROFILE"}
    started = time.monotonic()
    try:
        proc = subprocess.run(cmd, capture_output=True, text=True, timeout=60, cwd=REPO, env=env)
    except subprocess.TimeoutExpired:
        pytest.fail(f"{case}: the grid check hung")
    assert time.monotonic() - started < 60
    err = proc.stderr.strip().splitlines()
    assert proc.returncode == 2 and len(err) == 1, proc.stderr[-2000:]
    assert err[0].startswith("equiv run: error: grid.yaml: ") and message in err[0]
    assert not runs.exists()


def test_the_loader_is_fast_and_keeps_ordinary_anchors(tmp_path):
    started = time.monotonic()
    with pytest.raises(GridError, match="expands to more than"):
        load_grid(write_grid(tmp_path, HOSTILE["billion-laughs"][0]))
    with pytest.raises(GridError, match="nests deeper than"):
        load_grid(write_grid(tmp_path, HOSTILE["deep-flow"][0], "d.yaml"))
    assert time.monotonic() - started < 5
    body = f"notebook: {NOTEBOOKS / 'compute.ipynb'}\nparameters: &p {{n: 1}}\nprofiles: {{smoke: {{parameters: {{<<: *p, label: b}}}}}}\n"
    grid = load_grid(write_grid(tmp_path, body, "ok.yaml"), profile="smoke")
    assert grid.parameters == {"n": 1, "label": "b"}


# --- 3. --cell-timeout ------------------------------------------------------------------------


@pytest.mark.parametrize("value", ["1.5", "inf", "nan", "0", "-3", "1e3"])
def test_cell_timeout_must_be_whole_seconds_at_the_cli(tmp_path, capsys, value):
    runs = tmp_path / "runs"
    with pytest.raises(SystemExit) as exit_:
        main(["run", str(GRIDS / "fails.yaml"), "--runs-dir", str(runs), "--no-progress", f"--cell-timeout={value}"])
    assert exit_.value.code == 2
    assert f"argument --cell-timeout: '{value}' is not allowed (a whole number of seconds >= 1)" in capsys.readouterr().err
    assert not runs.exists()


@pytest.mark.parametrize("value", [1.5, float("inf"), 0, True, 60.0])
def test_cell_timeout_must_be_whole_seconds_in_run_grid(tmp_path, value):
    with pytest.raises(ValueError, match=r"--cell-timeout .* is not allowed \(a whole number of seconds >= 1\)"):
        run_grid(GRIDS / "fails.yaml", runs_dir=tmp_path / "runs", cell_timeout=value, progress=False)
    assert not (tmp_path / "runs").exists()


def test_cell_timeout_reaches_papermill_as_an_int(tmp_path, monkeypatch):
    seen = {}

    def fake_local(tasks, *, jobs, progress, threads=None, on_outcome=None):
        seen["timeouts"] = {t.cell_timeout for t in tasks}
        return []

    monkeypatch.setattr("equiv.batch.local.run_local", fake_local)
    run_grid(GRIDS / "fails.yaml", runs_dir=tmp_path / "runs", cell_timeout=30, progress=False)
    assert seen["timeouts"] == {30} and all(type(t) is int for t in seen["timeouts"])

    import papermill

    from equiv.batch.execute import _papermill_execute

    monkeypatch.setattr(papermill, "execute_notebook", lambda *a, **kw: seen.update(kw=kw))
    task = RunTask(grid="g", run_id="r", run_dir=str(tmp_path), notebook=str(NOTEBOOKS / "fails.ipynb"), notebook_key="k", parameters={}, cell_timeout=30)
    _papermill_execute(task, tmp_path / "out.ipynb")
    assert type(seen["kw"]["execution_timeout"]) is int and seen["kw"]["execution_timeout"] == 30


# --- 4. a file where a folder is expected ---------------------------------------------------------


def test_a_file_given_as_a_folder_is_one_line_naming_it(tmp_path, capsys):
    afile = tmp_path / "afile"
    afile.write_text("not a folder")
    cases = [
        (["run", str(GRIDS / "fails.yaml"), "--runs-dir", str(afile), "--no-progress"], f"equiv run: error: --runs-dir '{afile}' is a file, not a folder"),
        (["run", str(GRIDS / "fails.yaml"), "--runs-dir", str(afile / "sub"), "--no-progress"], f"cannot be a folder: '{afile}' is a file"),
        (["status", str(afile)], f"equiv status: error: '{afile}' is a file, not a runs directory"),
        (["results", str(afile)], f"equiv results: error: '{afile}' is a file, not a runs directory"),
        (["status", str(tmp_path / "nope")], f"equiv status: error: no runs directory '{tmp_path / 'nope'}'"),
        (["results", str(tmp_path / "nope")], f"equiv results: error: no runs directory '{tmp_path / 'nope'}'"),
        (["run", str(tmp_path), "--runs-dir", str(tmp_path / "r")], f"grid file '{tmp_path}' is a folder"),
    ]
    for argv, message in cases:
        assert main(argv) == 2, argv
        line = one_error_line(capsys)
        assert message in line, (argv, line)
    assert afile.read_text() == "not a folder"


def test_results_out_under_a_file_is_one_line(tmp_path, capsys):
    g = tmp_path / "grid" / "r1"
    g.mkdir(parents=True)
    (g / "params.json").write_text(json.dumps({"run_id": "r1", "parameters": {"k": 1}}))
    (g / "manifest.json").write_text(json.dumps({"status": "done", "attempt": 1}))
    afile = tmp_path / "afile"
    afile.write_text("x")
    assert main(["results", str(tmp_path / "grid"), "--out", str(afile / "table")]) == 2
    assert f"the folder of --out '{afile}' is a file, not a folder" in one_error_line(capsys)

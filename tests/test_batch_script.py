"""The script executor (``equiv run --executor script``): the same runs as papermill, without Jupyter."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import papermill
import pytest

from equiv.batch.grid import _TYPE_NAMES, load_grid, notebook_parameter_types
from equiv.batch.runner import run_grid
from equiv.batch.script import check_notebook
from equiv.cli import main

TESTS = Path(__file__).resolve().parent
REPO = TESTS.parent
GRIDS = TESTS / "grids"
NOTEBOOKS = TESTS / "notebooks"
JUPYTER = ("papermill", "nbclient", "nbformat", "jupyter_client", "ipykernel", "IPython", "zmq", "traitlets")
#: what the GPU image lacks besides Jupyter (benchmarks/device_check.sh; /work/.library/device/KINDS.md)
NOT_ON_THE_GPU_IMAGE = JUPYTER + ("e2cnn", "pooch", "submitit", "dask", "distributed", "myst_nb", "jupyter_book")


def _env_without_what_the_gpu_image_lacks(tmp_path: Path) -> dict[str, str]:
    """The environment of a process in which every package of :data:`NOT_ON_THE_GPU_IMAGE` fails to import."""
    blocker = tmp_path / "blocked"
    blocker.mkdir(exist_ok=True)
    for name in NOT_ON_THE_GPU_IMAGE:
        (blocker / f"{name}.py").write_text(f"raise ImportError('{name} is blocked for this test')\n")
    env = {**os.environ, "PYTHONPATH": os.pathsep.join([str(blocker), str(REPO)]), "EQUIV_PROGRESS": "0"}
    env.pop("EQUIV_PROFILE", None)
    return env


def _metrics(grid_dir: Path) -> dict[str, dict]:
    return {p.parent.name: json.loads(p.read_text()) for p in grid_dir.glob("*/metrics.json")}


@pytest.fixture(scope="module")
def both(tmp_path_factory):
    """The compute grid run once by papermill and once by the script executor, in two runs folders."""
    mp = pytest.MonkeyPatch()
    mp.delenv("EQUIV_PROFILE", raising=False)
    work = tmp_path_factory.mktemp("work")
    try:
        mp.chdir(work)
        out = {ex: run_grid(GRIDS / "compute.yaml", runs_dir=f"runs-{ex}", executor=ex, progress=False, threads=1)
               for ex in ("papermill", "script")}
    finally:
        mp.undo()
    return work, out


def test_the_script_executor_gives_papermills_runs_and_results(both):
    work, out = both
    assert all(s.exit_code == 0 and s.done == s.total == 4 for s in out.values())
    pm, sc = (_metrics(work / f"runs-{ex}" / "compute") for ex in ("papermill", "script"))
    assert sorted(pm) == sorted(sc) == sorted(r.run_id for r in load_grid(GRIDS / "compute.yaml").runs)
    assert pm == sc  # same run ids, same metrics, the hostile labels verbatim
    for run_id in sc:
        rd = work / "runs-script" / "compute" / run_id
        manifest = json.loads((rd / "manifest.json").read_text())
        assert manifest["status"] == "done" and manifest["executor"] == "script" and manifest["cell_execution_s"] > 0
        nb = json.loads((rd / "compute.ipynb").read_text())
        assert nb["metadata"]["equiv"]["executor"] == "script"
        tags = [c.get("metadata", {}).get("tags", []) for c in nb["cells"]]
        assert tags.index(["injected-parameters"]) == tags.index(["parameters"]) + 1
        assert (rd / "executions.txt").read_text().count("\n") == 1
        papermill_manifest = json.loads((work / "runs-papermill" / "compute" / run_id / "manifest.json").read_text())
        assert papermill_manifest["executor"] == "papermill"


def test_a_run_done_by_papermill_is_done_for_the_script_executor(both, monkeypatch):
    work, _ = both
    monkeypatch.chdir(work)
    again = run_grid(GRIDS / "compute.yaml", runs_dir="runs-papermill", executor="script", progress=False, threads=1)
    assert again.exit_code == 0 and again.executed == 0 and again.done_before == 4


def test_a_failing_cell_fails_the_run_naming_the_cell_and_the_exception(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    summary = run_grid(GRIDS / "fails.yaml", runs_dir="runs", executor="script", progress=False, threads=1)
    failed = [o for o in summary.outcomes if o.status == "failed"]
    assert failed and summary.done == summary.total - len(failed)
    for outcome in failed:
        assert outcome.error["type"] == "ValueError" and outcome.error["message"].startswith("n must be even, got ")
        assert outcome.error["cell_index"] == 2 and outcome.error["where"] == "notebook"
        assert "raise ValueError" in outcome.error["traceback"]
        nb = json.loads((tmp_path / "runs" / summary.grid / outcome.run_id / "fails.ipynb").read_text())
        errors = [o for c in nb["cells"] for o in c.get("outputs", []) if o["output_type"] == "error"]
        assert [e["ename"] for e in errors] == ["ValueError"]


def test_a_cell_over_its_timeout_fails_with_timeouterror(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    grid = tmp_path / "slow.yaml"
    grid.write_text(f"name: slow\nnotebook: {NOTEBOOKS / 'sleeps.ipynb'}\nparameters: {{seconds: 30.0}}\n"
                    "axes: {seed: [1]}\n")
    summary = run_grid(grid, runs_dir="runs", executor="script", cell_timeout=1, progress=False, threads=1)
    (outcome,) = summary.outcomes
    assert outcome.status == "failed" and outcome.error["type"] == "TimeoutError"
    assert outcome.duration_s < 20


def test_ipython_syntax_and_other_kernels_are_refused_before_any_run(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    nb = json.loads((NOTEBOOKS / "compute.ipynb").read_text())
    nb["cells"][2]["source"] = ["%time y = 1\n"] + nb["cells"][2]["source"]
    (tmp_path / "magic.ipynb").write_text(json.dumps(nb))
    grid = tmp_path / "magic.yaml"
    grid.write_text("name: magic\nnotebook: magic.ipynb\naxes: {x: [1.0]}\n")
    with pytest.raises(ValueError, match=r"magic.ipynb, cell 2: IPython syntax '%time y = 1'") as err:
        run_grid(grid, runs_dir="runs", executor="script", progress=False, threads=1)
    assert "\n" not in str(err.value) and not (tmp_path / "runs").exists()
    with pytest.raises(ValueError, match=r"kernel language 'julia' cannot run under --executor script"):
        check_notebook({"nbformat": 4, "metadata": {"kernelspec": {"language": "julia"}}, "cells": []}, "j.ipynb")
    with pytest.raises(ValueError, match=r"--executor 'kernel' is not allowed \(allowed: papermill, script\)"):
        run_grid(GRIDS / "compute.yaml", runs_dir="runs", executor="kernel", progress=False)


def test_equiv_run_with_the_script_executor_needs_no_jupyter(tmp_path):
    """Every Jupyter package (and what else the GPU image lacks) made unimportable: ``equiv run --executor script``
    still runs."""
    env = _env_without_what_the_gpu_image_lacks(tmp_path)
    check = subprocess.run([sys.executable, "-c", "import papermill"], env=env, capture_output=True, text=True)
    assert "blocked for this test" in check.stderr  # the blocker works
    proc = subprocess.run([sys.executable, "-m", "equiv.cli", "run", str(GRIDS / "compute.yaml"), "--executor",
                           "script", "--threads", "1", "--runs-dir", str(tmp_path / "runs"), "--no-progress"],
                          cwd=tmp_path, env=env, capture_output=True, text=True, timeout=300)
    assert proc.returncode == 0, proc.stdout + proc.stderr
    assert "4 done" in proc.stdout
    assert len(list((tmp_path / "runs" / "compute").glob("*/metrics.json"))) == 4


def _papermill_types(notebook: Path) -> dict:
    import ast

    out = {}
    for name, entry in papermill.inspect_notebook(str(notebook)).items():
        expected = _TYPE_NAMES.get(str(entry.get("inferred_type_name", "")).strip())
        if expected is None:
            try:
                default = ast.literal_eval(str(entry.get("default", "")))
            except (ValueError, SyntaxError, TypeError):
                default = None
            expected = None if default is None else type(default)
        out[name] = list if expected in (set, frozenset) else expected
    return out


@pytest.mark.parametrize("notebook", sorted([*REPO.glob("book/*.ipynb"), *REPO.glob("experiments/*.ipynb"),
                                             *NOTEBOOKS.glob("*.ipynb")]), ids=lambda p: p.name)
def test_parameter_types_read_without_papermill_agree_with_papermill(notebook):
    assert notebook_parameter_types(notebook) == _papermill_types(notebook)


def test_the_study_grid_under_the_script_executor_without_jupyter_gives_papermills_numbers(tmp_path):
    """The GPU image's path (no Jupyter), on the CPU at the smoke profile: the same committed accuracies and
    validation curves, bit for bit, as the same runs executed by papermill."""
    from equiv.batch.committed import load_committed
    from grid_files import relocated_grid

    results = {}
    for executor in ("papermill", "script"):
        grid = relocated_grid(REPO / "experiments" / "rotmnist_study.yaml", tmp_path, tmp_path / f"results-{executor}",
                              f"study-{executor}.yaml")
        if executor == "papermill":
            summary = run_grid(grid, profile="smoke", threads=1, runs_dir=tmp_path / "runs-pm", progress=False)
            assert summary.exit_code == 0 and summary.executed == 2, summary.last_line()
        else:
            env = _env_without_what_the_gpu_image_lacks(tmp_path)
            proc = subprocess.run([sys.executable, "-m", "equiv.cli", "run", str(grid), "--executor", "script",
                                   "--profile", "smoke", "--threads", "1", "--runs-dir", str(tmp_path / "runs-sc"),
                                   "--no-progress"], cwd=tmp_path, env=env, capture_output=True, text=True,
                                  timeout=600)
            assert proc.returncode == 0, proc.stdout + proc.stderr
        records = load_committed(tmp_path / f"results-{executor}" / "smoke")
        assert len(records) == 2
        results[executor] = {r["run_id"]: r for r in records}
    assert sorted(results["papermill"]) == sorted(results["script"])
    for run_id, pm in results["papermill"].items():
        sc = results["script"][run_id]
        assert sc["provenance"]["executor"] == "script" and pm["provenance"]["executor"] == "papermill"
        assert sc["metrics"]["rows"] == pm["metrics"]["rows"]
        strip = lambda curve: [{k: v for k, v in row.items() if k != "seconds"} for row in curve]  # noqa: E731
        assert strip(sc["metrics"]["curve"]) == strip(pm["metrics"]["curve"])

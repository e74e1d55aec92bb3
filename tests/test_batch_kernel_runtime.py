"""Each run's kernel keeps its Jupyter connection file (it holds the kernel's key) in a runtime
folder of its own, inside the run folder; what a killed kernel leaves there goes on resume."""

from __future__ import annotations

import json
import os
import stat
import tempfile
from pathlib import Path

import nbformat

from equiv.batch.execute import RunTask, execute_task
from equiv.batch.layout import KERNEL_RUNTIME_DIR
from equiv.batch.worker import record_lost_worker

NOTEBOOK = Path(__file__).resolve().parent / "notebooks" / "fails.ipynb"
PROVENANCE = {"code": {"git_commit": "abc", "equiv": "0"}, "libraries": {"python": "3"}, "device": "cpu:test"}


def make_task(run_dir: Path, notebook: Path = NOTEBOOK, **kw) -> RunTask:
    base = dict(grid="g", run_id=run_dir.name, run_dir=str(run_dir), notebook=str(notebook), notebook_key="nb.ipynb",
                parameters={}, environment=PROVENANCE)
    return RunTask(**{**base, **kw})


def interrupted_run(run_dir: Path) -> Path:
    """A run whose worker and kernel were SIGKILLed: manifest ``running``, lock free, connection file left."""
    run_dir.mkdir(parents=True)
    (run_dir / "manifest.json").write_text(json.dumps({"status": "running", "attempt": 1}))
    leftover = run_dir / KERNEL_RUNTIME_DIR / "kernel-0123abcd.json"
    leftover.parent.mkdir()
    leftover.write_text(json.dumps({"key": "secret", "transport": "tcp", "shell_port": 1}))
    return leftover


def test_resuming_an_interrupted_run_removes_its_leftover_connection_file(tmp_path, monkeypatch):
    monkeypatch.delenv("JUPYTER_RUNTIME_DIR", raising=False)
    rd = tmp_path / "r1"
    leftover = interrupted_run(rd)
    seen = {}

    def fake(task: RunTask, output: Path) -> None:
        runtime = Path(os.environ["JUPYTER_RUNTIME_DIR"])
        seen.update(runtime=runtime, files=sorted(p.name for p in runtime.iterdir()), mode=stat.S_IMODE(runtime.stat().st_mode))
        (runtime / "kernel-new.json").write_text("{}")  # as if this attempt's kernel died without cleaning up
        output.write_text(json.dumps({"cells": [], "metadata": {}, "nbformat": 4, "nbformat_minor": 5}))

    out = execute_task(make_task(rd, expected_attempt=1), execute=fake)
    assert (out.status, out.attempt) == ("done", 2)
    assert seen["runtime"] == (rd / KERNEL_RUNTIME_DIR).resolve() and seen["files"] == [] and seen["mode"] == 0o700
    assert not leftover.exists() and not (rd / KERNEL_RUNTIME_DIR).exists()
    assert "JUPYTER_RUNTIME_DIR" not in os.environ  # restored after the run


def test_a_lost_worker_has_its_connection_file_removed(tmp_path):
    rd = tmp_path / "r2"
    leftover = interrupted_run(rd)
    assert record_lost_worker(make_task(rd), -9).status == "failed"
    assert not leftover.exists()


def test_a_real_kernel_writes_its_connection_file_into_the_run_folder(tmp_path, monkeypatch):
    default_runtime = tmp_path / "default-runtime"
    monkeypatch.setenv("JUPYTER_RUNTIME_DIR", str(default_runtime))  # where it would go without a per-run folder ...
    temp = tmp_path / "temp"
    temp.mkdir()
    monkeypatch.setattr(tempfile, "tempdir", str(temp))  # ... or in $TMPDIR, jupyter_client's default
    nb = nbformat.v4.new_notebook()
    nb.metadata["kernelspec"] = {"name": "python3", "display_name": "Python 3", "language": "python"}
    nb.cells.append(nbformat.v4.new_code_cell(
        "import os, pathlib\n"
        "from ipykernel.connect import get_connection_file\n"
        "pathlib.Path(os.environ['EQUIV_RUN_DIR'], 'connection.txt').write_text(get_connection_file())"
    ))
    notebook = tmp_path / "where.ipynb"
    nbformat.write(nb, notebook)
    rd = tmp_path / "r3"
    out = execute_task(make_task(rd, notebook))
    assert out.status == "done", out.error
    connection = Path((rd / "connection.txt").read_text())
    assert connection.parent == (rd / KERNEL_RUNTIME_DIR).resolve() and connection.name.startswith("kernel-")
    assert not connection.exists() and not (rd / KERNEL_RUNTIME_DIR).exists()  # removed when the run ended
    assert not default_runtime.exists() and not list(temp.glob("*.json"))
    assert os.environ["JUPYTER_RUNTIME_DIR"] == str(default_runtime)

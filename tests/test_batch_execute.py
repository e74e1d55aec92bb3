"""One run without a real kernel: locking, manifests, leftovers, retry of kernel start-up races."""

from __future__ import annotations

import errno
import json
import os
from pathlib import Path

import zmq

from equiv.batch.execute import RunTask, execute_task, is_kernel_startup_race
from equiv.batch.lock import RunLock, is_locked
from equiv.batch.state import format_status, list_run_states, read_run_state
from equiv.batch.worker import record_lost_worker

NOTEBOOK = Path(__file__).resolve().parent / "notebooks" / "fails.ipynb"


def make_task(run_dir: Path, **kw) -> RunTask:
    (run_dir).mkdir(parents=True, exist_ok=True)
    (run_dir / "params.json").write_text(json.dumps({"run_id": run_dir.name, "parameters": {"n": 2}}))
    base = dict(
        grid="g",
        run_id=run_dir.name,
        run_dir=str(run_dir),
        notebook=str(NOTEBOOK),
        notebook_key="tests/notebooks/fails.ipynb",
        parameters={"n": 2},
        environment={"code": {"git_commit": "abc", "equiv": "0"}, "libraries": {"python": "3"}, "device": "cpu:test"},
    )
    base.update(kw)
    return RunTask(**base)


def fake_ok(task: RunTask, output: Path) -> None:
    assert os.environ["EQUIV_RUN_DIR"] == str(Path(task.run_dir).resolve())
    cell = {"cell_type": "code", "metadata": {"papermill": {"duration": 0.25}}, "source": "", "outputs": []}
    output.write_text(json.dumps({"cells": [cell, cell], "metadata": {}, "nbformat": 4, "nbformat_minor": 5}))
    (Path(task.run_dir) / "metrics.json").write_text('{"half": 1}')


def fake_fail(task: RunTask, output: Path) -> None:
    output.write_text(json.dumps({"cells": [], "metadata": {}, "nbformat": 4, "nbformat_minor": 5}))
    raise KeyError("no such column")


def manifest(run_dir: Path) -> dict:
    return json.loads((run_dir / "manifest.json").read_text())


def test_done_run_writes_manifest_and_output_then_is_never_rerun(tmp_path, monkeypatch):
    monkeypatch.delenv("EQUIV_RUN_DIR", raising=False)
    rd = tmp_path / "r1"
    out = execute_task(make_task(rd), execute=fake_ok)
    assert (out.status, out.attempt) == ("done", 1)
    m = manifest(rd)
    assert m["status"] == "done" and m["attempt"] == 1 and m["error"] is None
    assert m["cell_execution_s"] == 0.5 and m["metrics_file"] == "metrics.json" and m["git_commit"] == "abc"
    assert m["start_time"] <= m["end_time"] and m["duration_s"] >= 0 and m["host"] and m["device"] == "cpu:test"
    assert (rd / "fails.ipynb").is_file() and not (rd / ".executing.ipynb").exists()
    assert "EQUIV_RUN_DIR" not in os.environ  # restored
    before = (rd / "manifest.json").read_bytes(), (rd / "manifest.json").stat().st_mtime_ns

    def must_not_run(task, output):
        raise AssertionError("a done run was executed again")

    again = execute_task(make_task(rd, retry_failed=True), execute=must_not_run)
    assert again.status == "skipped"
    assert ((rd / "manifest.json").read_bytes(), (rd / "manifest.json").stat().st_mtime_ns) == before


def test_failed_run_records_the_error_and_reruns_only_when_asked(tmp_path):
    rd = tmp_path / "r2"
    out = execute_task(make_task(rd), execute=fake_fail)
    m = manifest(rd)
    assert out.status == "failed" and m["status"] == "failed"
    assert m["error"]["type"] == "KeyError" and "no such column" in m["error"]["message"]
    assert "fake_fail" in m["error"]["traceback"] and (rd / "fails.ipynb").is_file()

    assert execute_task(make_task(rd, expected_attempt=1), execute=fake_ok).status == "failed"  # no retry_failed
    assert manifest(rd)["attempt"] == 1
    # retry_failed, but the planner saw attempt 0: someone else ran it since, leave it
    assert execute_task(make_task(rd, retry_failed=True, expected_attempt=0), execute=fake_ok).status == "failed"
    out = execute_task(make_task(rd, retry_failed=True, expected_attempt=1), execute=fake_ok)
    assert (out.status, out.attempt, manifest(rd)["status"]) == ("done", 2, "done")


def test_interrupted_run_is_cleaned_and_rerun(tmp_path):
    rd = tmp_path / "r3"
    task = make_task(rd)
    (rd / "manifest.json").write_text(json.dumps({"status": "running", "attempt": 1}))
    (rd / "metrics.json").write_text('{"stale": true}')
    (rd / ".executing.ipynb").write_text("{half")
    (rd / ".manifest.json.abc.tmp").write_text("{half")
    state = read_run_state(rd)
    assert state.state == "pending" and state.interrupted  # lock free: its holder is gone

    def check_clean(task, output):
        assert not (rd / "metrics.json").exists() and not list(rd.glob(".*.tmp"))
        fake_ok(task, output)

    out = execute_task(RunTask(**{**task.to_dict(), "expected_attempt": 1}), execute=check_clean)
    assert (out.status, out.attempt) == ("done", 2)


def test_a_held_lock_makes_the_run_busy_and_shows_it_running(tmp_path):
    rd = tmp_path / "r4"
    task = make_task(rd, wait_for_lock=False)
    (rd / "manifest.json").write_text(json.dumps({"status": "running", "attempt": 1, "start_time": "2020-01-01T00:00:00+00:00"}))
    holder = RunLock(rd / ".lock")
    assert holder.acquire(blocking=False)
    try:
        assert is_locked(rd / ".lock")
        assert not RunLock(rd / ".lock").acquire(blocking=False)
        assert execute_task(task, execute=fake_ok).status == "busy"
        assert read_run_state(rd).state == "running"
        assert "running" in format_status(list_run_states(tmp_path))
    finally:
        holder.release()
    assert not is_locked(rd / ".lock")


def test_kernel_start_races_are_recognised():
    assert is_kernel_startup_race(zmq.error.ZMQError(errno.EADDRINUSE))
    assert is_kernel_startup_race(RuntimeError("Kernel died before replying to kernel_info"))
    try:
        try:
            raise zmq.error.ZMQError(errno.EADDRINUSE)
        except zmq.error.ZMQError as inner:
            raise RuntimeError("start failed") from inner
    except RuntimeError as outer:
        assert is_kernel_startup_race(outer)
    assert not is_kernel_startup_race(RuntimeError("Kernel died"))
    assert not is_kernel_startup_race(ValueError("Address already in use"))


def test_kernel_start_race_is_retried_and_counted(tmp_path, monkeypatch):
    monkeypatch.setattr("equiv.batch.execute.time.sleep", lambda s: None)
    calls = []

    def flaky(task, output):
        calls.append(1)
        if len(calls) == 1:
            raise zmq.error.ZMQError(errno.EADDRINUSE)
        if len(calls) == 2:
            raise RuntimeError("Kernel died before replying to kernel_info")
        fake_ok(task, output)

    out = execute_task(make_task(tmp_path / "r5"), execute=flaky)
    assert out.status == "done" and len(calls) == 3 and manifest(tmp_path / "r5")["kernel_start_retries"] == 2

    def always(task, output):
        raise zmq.error.ZMQError(errno.EADDRINUSE)

    out = execute_task(make_task(tmp_path / "r6"), execute=always)
    assert out.status == "failed" and out.error["type"] == "ZMQError"


def test_a_lost_worker_is_recorded_as_failed(tmp_path):
    rd = tmp_path / "r7"
    task = make_task(rd)
    (rd / "manifest.json").write_text(json.dumps({"status": "running", "attempt": 1, "run_id": "r7"}))
    (rd / "worker.log").write_text("Segmentation fault\n")
    out = record_lost_worker(task, -11)
    m = manifest(rd)
    assert out.status == "failed" and m["status"] == "failed" and m["error"]["type"] == "WorkerDied"
    assert "-11" in m["error"]["message"] and "Segmentation fault" in m["error"]["message"]


def test_status_flags_runs_made_with_another_version_of_the_notebook(tmp_path):
    rd = tmp_path / "r8"
    execute_task(make_task(rd), execute=fake_ok)
    assert read_run_state(rd).notebook_changed is False
    m = manifest(rd)
    m["notebook_sha256"] = "0" * 64  # as if the notebook was edited after the run
    (rd / "manifest.json").write_text(json.dumps(m))
    state = read_run_state(rd)
    assert state.state == "done" and state.notebook_changed is True
    assert "(notebook changed since)" in format_status([state])

"""The runner survives SIGKILL and concurrent runners: every run completes exactly once."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from equiv.batch.grid import load_grid

TESTS = Path(__file__).resolve().parent
GRID = TESTS / "grids" / "sleeps.yaml"


def runner_cmd(runs: Path, jobs: int) -> list[str]:
    return [sys.executable, "-m", "equiv.cli", "run", str(GRID), "--jobs", str(jobs), "--runs-dir", str(runs), "--no-progress"]


def clean_env() -> dict[str, str]:
    return {k: v for k, v in os.environ.items() if k not in ("EQUIV_PROFILE", "EQUIV_RUN_DIR")}


def statuses(gdir: Path) -> dict[str, str]:
    out = {}
    for m in gdir.glob("*/manifest.json"):
        try:
            out[m.parent.name] = json.loads(m.read_text())["status"]
        except ValueError:  # would mean a half-written manifest
            raise AssertionError(f"half-written manifest {m}") from None
    return out


def check_all_done_exactly_once(gdir: Path) -> dict[str, dict]:
    ids = [r.run_id for r in load_grid(GRID).runs]
    manifests = {}
    for rid in ids:
        rd = gdir / rid
        manifests[rid] = json.loads((rd / "manifest.json").read_text())
        assert manifests[rid]["status"] == "done", rid
        lines = (rd / "completions.txt").read_text().splitlines()  # the committed attempt's record
        assert len(lines) == 1, f"{rid}: its final attempt recorded {len(lines)} completions"
        assert json.loads((rd / "metrics.json").read_text())["seed"] == int(lines[0].split()[0])
        assert not (rd / ".executing.ipynb").exists() and not list(rd.glob(".*.tmp"))
    return manifests


def test_sigkill_mid_grid_then_rerun_completes_every_run_once(tmp_path):
    runs = tmp_path / "runs"
    gdir = runs / "sleeps"
    proc = subprocess.Popen(runner_cmd(runs, 2), start_new_session=True, env=clean_env(), stdout=subprocess.PIPE, stderr=subprocess.STDOUT)
    deadline = time.monotonic() + 90
    try:
        while True:  # kill once a run is done and another one is running
            st = statuses(gdir) if gdir.exists() else {}
            if "done" in st.values() and "running" in st.values():
                break
            assert proc.poll() is None, "the runner finished before it could be killed:\n" + proc.stdout.read().decode()
            assert time.monotonic() < deadline, f"runner never reached the middle of the grid: {st}"
            time.sleep(0.05)
    finally:
        os.killpg(proc.pid, signal.SIGKILL)  # the runner and its workers
        proc.wait()
        proc.stdout.close()
    st = statuses(gdir)
    finished = {rid: (gdir / rid / "manifest.json").read_bytes() for rid, s in st.items() if s == "done"}
    mtimes = {rid: (gdir / rid / "manifest.json").stat().st_mtime_ns for rid in finished}
    interrupted = [rid for rid, s in st.items() if s == "running"]
    assert finished and interrupted

    status = subprocess.run([sys.executable, "-m", "equiv.cli", "status", str(gdir)], capture_output=True, text=True, env=clean_env())
    assert status.returncode == 0 and "interrupted" in status.stdout  # stale "running": lock holder is dead

    again = subprocess.run(runner_cmd(runs, 2), capture_output=True, text=True, env=clean_env(), timeout=120)
    assert again.returncode == 0, again.stdout + again.stderr
    last = again.stdout.strip().splitlines()[-1]
    assert last == f"equiv run sleeps: 0 failed, 4 done ({4 - len(finished)} now, {len(finished)} before) of 4 runs"
    manifests = check_all_done_exactly_once(gdir)
    completions = [line.split()[1] for line in (gdir / "completions.log").read_text().splitlines()]
    for rid, data in finished.items():  # finished runs: executed once, result neither lost nor rewritten
        assert completions.count(rid) == 1, f"{rid} was done before the kill but executed again"
        assert (gdir / rid / "manifest.json").read_bytes() == data
        assert (gdir / rid / "manifest.json").stat().st_mtime_ns == mtimes[rid]
    for rid in interrupted:  # interrupted runs: run again, committed once
        assert manifests[rid]["attempt"] == 2
        assert 1 <= completions.count(rid) <= 2  # 2 when the kill fell between its last cell and its manifest


def test_two_runners_at_once_never_run_a_run_twice(tmp_path):
    runs = tmp_path / "runs"
    procs = [subprocess.Popen(runner_cmd(runs, 1), env=clean_env(), stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True) for _ in range(2)]
    outs = [p.communicate(timeout=150) for p in procs]
    for p, (out, err) in zip(procs, outs):
        assert p.returncode == 0, out + err
        assert out.strip().splitlines()[-1].startswith("equiv run sleeps: 0 failed, 4 done")
    manifests = check_all_done_exactly_once(runs / "sleeps")
    assert all(m["attempt"] == 1 for m in manifests.values())
    completions = [line.split()[1] for line in (runs / "sleeps" / "completions.log").read_text().splitlines()]
    assert sorted(completions) == sorted(manifests)  # each run executed exactly once over both runners


def test_ctrl_c_leaves_running_runs_interrupted_not_failed(tmp_path):
    runs = tmp_path / "runs"
    gdir = runs / "sleeps"
    # as from a terminal: SIGINT at its default disposition, even where this test itself runs with SIGINT ignored
    # (a shell without job control starts `cmd &` so, and Python then keeps it ignored and never raises
    # KeyboardInterrupt: that is the right behaviour for a background job, and not what this test is about)
    proc = subprocess.Popen(runner_cmd(runs, 2), start_new_session=True, env=clean_env(), stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
                            text=True, preexec_fn=lambda: signal.signal(signal.SIGINT, signal.SIG_DFL))
    deadline = time.monotonic() + 90
    try:
        while "running" not in (statuses(gdir) if gdir.exists() else {}).values():
            assert proc.poll() is None and time.monotonic() < deadline, "no run started"
            time.sleep(0.05)
        os.killpg(proc.pid, signal.SIGINT)  # what Ctrl-C in a terminal does
        out, _ = proc.communicate(timeout=60)
    finally:
        if proc.poll() is None:
            os.killpg(proc.pid, signal.SIGKILL)
            proc.wait()
    assert proc.returncode == 130, out
    assert out.strip().splitlines()[-1].startswith("equiv run: interrupted")
    status = subprocess.run([sys.executable, "-m", "equiv.cli", "status", "--json", str(gdir)], capture_output=True, text=True, env=clean_env())
    states = json.loads(status.stdout)
    assert "failed" not in {s["state"] for s in states}  # an interruption is not a failure: a plain rerun resumes
    assert any(s["interrupted"] for s in states)


def _alive(pid: int) -> bool:
    try:
        with open(f"/proc/{pid}/stat") as fh:
            return fh.read().rsplit(")", 1)[1].split()[0] != "Z"
    except OSError:
        return False


def _children(pid: int) -> list[int]:
    out = []
    for stat in Path("/proc").glob("[0-9]*/stat"):
        try:
            if int(stat.read_text().rsplit(")", 1)[1].split()[1]) == pid:
                out.append(int(stat.parent.name))
        except (OSError, ValueError, IndexError):
            pass
    return out


def _kernels_under(folder: Path) -> list[int]:
    out = []
    for cmd in Path("/proc").glob("[0-9]*/cmdline"):
        try:
            text = cmd.read_bytes().decode("utf-8", "replace")
        except OSError:
            continue
        if "ipykernel" in text and str(folder) in text:
            out.append(int(cmd.parent.name))
    return out


@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="the parent-death signal (prctl) exists on Linux only")
def test_workers_and_kernels_stop_when_the_runner_is_sigkilled(tmp_path):
    """SIGKILL of the runner alone (not its process group) must not leave workers and kernels training on."""
    grid = tmp_path / "long.yaml"
    grid.write_text(f"name: long\nnotebook: {TESTS / 'notebooks' / 'sleeps.ipynb'}\nparameters:\n  seconds: 120.0\nseeds: 2\n")
    runs = tmp_path / "runs"
    cmd = [sys.executable, "-m", "equiv.cli", "run", str(grid), "--jobs", "2", "--threads", "1", "--runs-dir", str(runs), "--no-progress"]
    proc = subprocess.Popen(cmd, start_new_session=True, env=clean_env(), stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    watched: list[int] = []
    try:
        deadline = time.monotonic() + 90
        while True:  # both runs executing: their kernels exist
            kernels = _kernels_under(runs)
            if len(kernels) == 2 and list(statuses(runs / "long").values()).count("running") == 2:
                break
            assert proc.poll() is None and time.monotonic() < deadline, "the runs never started"
            time.sleep(0.1)
        workers = _children(proc.pid)
        watched = workers + kernels
        assert len(workers) == 2
        proc.kill()  # the runner only
        proc.wait()
        deadline = time.monotonic() + 20
        while any(_alive(p) for p in watched) and time.monotonic() < deadline:
            time.sleep(0.2)
        left = [p for p in watched if _alive(p)]
        assert not left, f"still running 20 s after the runner was killed: {left}"
        assert set(statuses(runs / "long").values()) == {"running"}  # interrupted: the next run resumes them
    finally:
        for p in watched:
            if _alive(p):
                os.kill(p, signal.SIGKILL)
        if proc.poll() is None:
            os.killpg(proc.pid, signal.SIGKILL)
            proc.wait()

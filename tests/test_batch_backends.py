"""The Slurm backend (submitit's LocalExecutor in place of Slurm) and the Dask backend (a LocalCluster)."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import pytest

from equiv.batch.slurm import SlurmOptions
from equiv.cli import main

GRIDS = Path(__file__).resolve().parent / "grids"


@pytest.fixture(autouse=True)
def _no_profile_env(monkeypatch):
    monkeypatch.delenv("EQUIV_PROFILE", raising=False)


def manifests(gdir: Path) -> list[dict]:
    return [json.loads(p.read_text()) for p in sorted(gdir.glob("*/manifest.json"))]


def test_slurm_backend_runs_a_job_array_with_submitit_local_executor(tmp_path, capsys):
    runs = tmp_path / "runs"
    argv = ["run", str(GRIDS / "compute.yaml"), "--profile", "smoke", "--backend", "slurm", "--slurm-cluster", "local",
            "--slurm-cpus-per-run", "1", "--slurm-time-limit", "5", "--runs-dir", str(runs), "--no-progress"]
    assert main(argv) == 0
    assert capsys.readouterr().out.strip().splitlines()[-1] == "equiv run compute: 0 failed, 2 done (2 now, 0 before) of 2 runs"
    gdir = runs / "compute"
    ms = manifests(gdir)
    assert len(ms) == 2 and {m["status"] for m in ms} == {"done"} and {m["backend"] for m in ms} == {"slurm"}
    assert all(m["resources"]["OMP_NUM_THREADS"] == "1" and m["git_commit"] and m["device"] for m in ms)
    metrics = [json.loads(p.read_text()) for p in gdir.glob("*/metrics.json")]
    assert {m["profile_seen"] for m in metrics} == {"smoke"} and {m["threads"] for m in metrics} == {"1"}
    assert list((gdir / ".submitit").rglob("*_submitted.pkl"))  # it really went through submitit


def test_slurm_without_sbatch_is_rejected_before_submitting(tmp_path, capsys, monkeypatch):
    if shutil.which("sbatch"):
        pytest.skip("a real Slurm is installed here: nothing to reject")
    runs = tmp_path / "runs"
    assert main(["run", str(GRIDS / "fails.yaml"), "--backend", "slurm", "--runs-dir", str(runs), "--no-progress"]) == 2
    assert "no Slurm here (sbatch is not on PATH)" in capsys.readouterr().err
    assert not runs.exists()  # rejected before planning


def test_slurm_options_merge_grid_section_and_flags():
    opts = SlurmOptions.merged({"partition": "gpu", "gpus_per_run": 1, "time_limit_min": 30}, {"time_limit_min": 90, "partition": None})
    assert (opts.partition, opts.gpus_per_run, opts.time_limit_min, opts.cluster) == ("gpu", 1, 90, "slurm")
    with pytest.raises(ValueError, match="Slurm cluster 'aws' is not allowed"):
        SlurmOptions.merged({}, {"cluster": "aws"})


def test_dask_backend_maps_runs_over_a_local_cluster(tmp_path, capsys):
    distributed = pytest.importorskip("distributed", reason="the dask backend needs distributed")
    runs = tmp_path / "runs"
    with distributed.LocalCluster(n_workers=1, threads_per_worker=2, processes=True, host="127.0.0.1", dashboard_address=None) as cluster:
        code = main(["run", str(GRIDS / "fails.yaml"), "--backend", "dask", "--scheduler", cluster.scheduler_address, "--runs-dir", str(runs), "--no-progress"])
    assert code == 1
    assert capsys.readouterr().out.strip().splitlines()[-1].startswith("equiv run fails: 1 failed, 2 done (2 now, 0 before) of 3 runs")
    ms = manifests(runs / "fails")
    assert sorted(m["status"] for m in ms) == ["done", "done", "failed"] and {m["backend"] for m in ms} == {"dask"}
    assert [m["error"]["message"] for m in ms if m["status"] == "failed"] == ["n must be even, got 1"]


def test_dask_backend_names_an_unreachable_scheduler(tmp_path, capsys):
    pytest.importorskip("distributed", reason="the dask backend needs distributed")
    from equiv.batch.dask_backend import run_dask
    from equiv.batch.execute import RunTask
    from equiv.batch.progress import GridProgress

    task = RunTask(grid="g", run_id="r", run_dir=str(tmp_path / "r"), notebook="x", notebook_key="x", parameters={})
    with pytest.raises(ValueError, match="--scheduler 'tcp://127.0.0.1:9': cannot connect"):
        run_dask([task], scheduler="tcp://127.0.0.1:9", progress=GridProgress("g", 1, enabled=False), connect_timeout_s=1)

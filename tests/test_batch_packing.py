"""equiv run's packing: measured best (jobs, threads), cached per machine, printed, overridable."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from equiv.batch.packing import Packing, cache_path, candidates, choose_packing, machine_key, measure_packing
from equiv.batch.resources import slot_environment
from equiv.cli import main

GRIDS = Path(__file__).parent / "grids"


def test_candidates_fill_the_cores() -> None:
    assert candidates(2) == [(1, 2), (2, 1)]
    assert candidates(6) == [(1, 6), (2, 3), (3, 2), (6, 1)]
    assert candidates(1) == [(1, 1)]


def test_the_fastest_measured_packing_wins_and_is_cached(tmp_path, monkeypatch) -> None:
    monkeypatch.setenv("EQUIV_CACHE_DIR", str(tmp_path))
    calls = []

    def fake(jobs, threads, steps):
        calls.append((jobs, threads))
        return {1: 100.0, 2: 160.0, 4: 150.0}[jobs]

    packing = measure_packing(4, run=fake)
    assert (packing.jobs, packing.threads, packing.source) == (2, 2, "measured")
    assert calls == [(1, 4), (2, 2), (4, 1)]
    again = measure_packing(4, run=lambda *a: pytest.fail("measured again despite the cache"))
    assert (again.jobs, again.threads, again.source) == (2, 2, "cached")
    cached = json.loads(cache_path().read_text())[machine_key(4)]
    assert cached["throughputs"] == {"1x4": 100.0, "2x2": 160.0, "4x1": 150.0}
    line = str(again)
    assert line.startswith("packing: 2 runs at once x 2 threads each (cached: 160 img/s;") and "1x4: 100 img/s" in line


def test_options_override_the_measurement() -> None:
    never = lambda cores: pytest.fail("measured although --jobs/--threads were given")  # noqa: E731
    assert choose_packing(2, None, cores=8, measure=never) == Packing(2, 4, "--jobs")
    assert choose_packing(None, 2, cores=8, measure=never) == Packing(4, 2, "--threads")
    assert choose_packing(3, 1, cores=8, measure=never) == Packing(3, 1, "--threads")
    assert choose_packing(None, None, cores=8, gpu_ids=["0", "1"], measure=never) == Packing(2, 4, "gpu")
    with pytest.raises(ValueError, match="--threads 0 is not allowed"):
        choose_packing(None, 0, cores=8)
    assert slot_environment(0, 2, [], 8, threads=1)["OMP_NUM_THREADS"] == "1"


def test_a_real_measurement_on_this_machine(tmp_path, monkeypatch) -> None:
    monkeypatch.setenv("EQUIV_CACHE_DIR", str(tmp_path))
    packing = measure_packing(2, steps=1)
    assert packing.source == "measured" and (packing.jobs, packing.threads) in candidates(2)
    assert set(packing.throughputs) == {"1x2", "2x1"} and all(v > 0 for v in packing.throughputs.values())


def test_equiv_run_prints_its_packing_and_threads_reach_the_runs(tmp_path, capsys) -> None:
    runs = tmp_path / "runs"
    code = main(["run", str(GRIDS / "compute.yaml"), "--profile", "smoke", "--runs-dir", str(runs), "--no-progress",
                 "--jobs", "2", "--threads", "1"])
    out = capsys.readouterr().out
    assert code == 0 and "equiv run: packing: 2 runs at once x 1 thread each (--threads)" in out
    manifests = [json.loads(p.read_text()) for p in runs.rglob("manifest.json")]
    assert manifests and all(m["resources"]["OMP_NUM_THREADS"] == "1" for m in manifests), manifests[:1]

"""Atomic writes leave no half-written file; provenance records code, libraries, device; seeds reproduce."""

from __future__ import annotations

import json
import os

import pandas as pd
import pytest
import torch

from equiv.atomic_io import atomic_write_bytes, atomic_write_frame, atomic_write_json
from equiv.provenance import device_description, environment
from equiv.reproducibility import seed_everything


def test_atomic_write_replaces_whole_files_and_cleans_up_on_failure(tmp_path, monkeypatch) -> None:
    target = tmp_path / "sub" / "result.json"
    atomic_write_json(target, {"a": 1, "t": torch.tensor(2.5)})
    assert json.loads(target.read_text()) == {"a": 1, "t": 2.5}

    def broken_replace(src, dst):
        raise OSError("disk full")

    monkeypatch.setattr(os, "replace", broken_replace)
    with pytest.raises(OSError, match="disk full"):
        atomic_write_bytes(target, b"new content")
    monkeypatch.undo()
    assert json.loads(target.read_text()) == {"a": 1, "t": 2.5}  # the old file is intact
    assert [p.name for p in target.parent.iterdir()] == ["result.json"]  # no temporary file left


def test_atomic_frames(tmp_path) -> None:
    frame = pd.DataFrame({"x": [1, 2], "y": ["a", "b"]})
    atomic_write_frame(frame, tmp_path / "t.csv")
    atomic_write_frame(frame, tmp_path / "t.parquet")
    pd.testing.assert_frame_equal(pd.read_csv(tmp_path / "t.csv"), frame)
    pd.testing.assert_frame_equal(pd.read_parquet(tmp_path / "t.parquet"), frame)
    with pytest.raises(ValueError, match="unsupported table suffix '.xlsx'"):
        atomic_write_frame(frame, tmp_path / "t.xlsx")


def test_environment_records_what_a_result_needs() -> None:
    env = environment()
    assert env["code"]["equiv"] and len(env["code"]["git_commit"] or "x" * 40) == 40
    assert env["libraries"]["torch"].startswith("2.") and env["libraries"]["numpy"].startswith("1.")
    assert env["device"].startswith(("cpu:", "cuda:")) and env["host"] and env["timestamp_utc"]
    cpu = env["cpu"]
    assert cpu["model"] and cpu["logical_cpus"] >= 1
    assert cpu["capability"] == torch.backends.cpu.get_cpu_capability() and cpu["capability"] in (
        "DEFAULT", "AVX", "AVX2", "AVX512", "ZVECTOR", "NEON", "SVE256", "VSX")
    assert f"{cpu['model']}, {cpu['capability']} (" in device_description("cpu")
    cpu["model"] = "changed by a caller"
    assert environment()["cpu"]["model"] != "changed by a caller"  # each call gets its own dict, not the cache's
    json.dumps(env)  # JSON-able


def test_seed_everything_reproduces_and_rejects_bad_seeds() -> None:
    seed_everything(5)
    a = torch.randn(3)
    seed_everything(5)
    assert torch.equal(a, torch.randn(3))
    assert torch.are_deterministic_algorithms_enabled()
    with pytest.raises(ValueError, match="seed must be a non-negative int, got -1"):
        seed_everything(-1)

"""Per-run resources (GPU round robin, CPU thread shares) and the progress counts."""

from __future__ import annotations

import io

import pytest

from equiv.batch.progress import GridProgress
from equiv.batch.resources import slot_environment


def test_each_slot_gets_its_own_gpu_round_robin():
    gpus = ["0", "1"]
    assert [slot_environment(s, 2, gpus, 16)["CUDA_VISIBLE_DEVICES"] for s in range(2)] == ["0", "1"]
    assert [slot_environment(s, 4, ["3", "5", "7"], 16)["CUDA_VISIBLE_DEVICES"] for s in range(4)] == ["3", "5", "7", "3"]
    assert slot_environment(1, 2, gpus, 16)["OMP_NUM_THREADS"] == "8"


def test_without_gpus_each_slot_gets_its_share_of_threads():
    env = slot_environment(0, 3, [], 8)
    assert "CUDA_VISIBLE_DEVICES" not in env
    assert env["OMP_NUM_THREADS"] == env["MKL_NUM_THREADS"] == env["OPENBLAS_NUM_THREADS"] == "2"
    assert slot_environment(3, 4, [], 2)["OMP_NUM_THREADS"] == "1"  # never 0


def test_bad_slots_are_rejected():
    with pytest.raises(ValueError, match="jobs must be >= 1, got 0"):
        slot_environment(0, 0, [], 4)
    with pytest.raises(ValueError, match=r"slot must be in 0..1, got 2"):
        slot_environment(2, 2, [], 4)


def test_progress_counts_done_failed_running_left():
    out = io.StringIO()
    bar = GridProgress("g", 4, already_done=2, file=out)
    bar.started()
    bar.started()
    assert (bar.running, bar.left) == (2, 2)
    bar.finished("done")
    bar.finished("failed")
    bar.close()
    assert (bar.done, bar.failed, bar.running, bar.left) == (1, 1, 0, 2)
    text = out.getvalue()
    assert "g (2 done before)" in text and "done=1 failed=1 running=0 left=2" in text and "2/4" in text

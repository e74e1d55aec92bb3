"""equiv.allocator: the thresholds really change where glibc puts a large tensor, and never a number.

Each case runs in its own interpreter: the allocator's settings are per process and cannot be undone."""

from __future__ import annotations

import json
import os
import subprocess
import sys

import pytest

from equiv.allocator import _glibc
from equiv.settings import MALLOC_ENV

GLIBC = _glibc() is not None
needs_glibc = pytest.mark.skipif(not GLIBC, reason="the C library is not glibc: keep_freed_memory is a no-op there")

# a 64 MiB tensor is above glibc's default mmap threshold (at most 32 MiB): without the setting it gets its own
# mapping (mallinfo2's hblkhd), with it it comes from the heap
_PROBE = """
import ctypes, json
import torch
from equiv.allocator import keep_freed_memory
class MallInfo2(ctypes.Structure):
    _fields_ = [(n, ctypes.c_size_t) for n in ("arena", "ordblks", "smblks", "hblks", "hblkhd", "usmblks",
                                               "fsmblks", "uordblks", "fordblks", "keepcost")]
libc = ctypes.CDLL("libc.so.6")
libc.mallinfo2.restype = MallInfo2
state = keep_freed_memory()
before = libc.mallinfo2().hblkhd
x = torch.ones(16 * 2**20)
print(json.dumps({"state": state, "mapped": libc.mallinfo2().hblkhd - before}))
"""

_FIT = """
import hashlib, json
import torch
from equiv.models import build
from equiv.train import fit
from equiv.allocator import allocator_state
g = torch.Generator().manual_seed(0)
x, y = torch.randn(64, 1, 28, 28, generator=g), torch.randint(0, 10, (64,), generator=g)
torch.manual_seed(0)
model = build("p4cnn")
fit(model, (x, y), epochs=1, batch_size=32, seed=3, device="cpu", progress=False)
digest = hashlib.sha256(b"".join(t.detach().numpy().tobytes() for t in model.state_dict().values())).hexdigest()
print(json.dumps({"digest": digest, "state": allocator_state()}))
"""


def _run(code: str, mode: str | None) -> dict:
    env = {k: v for k, v in os.environ.items() if k != MALLOC_ENV}
    if mode is not None:
        env[MALLOC_ENV] = mode
    env["OMP_NUM_THREADS"] = "1"
    out = subprocess.run([sys.executable, "-c", code], env=env, capture_output=True, text=True, timeout=300)
    assert out.returncode == 0, out.stderr[-2000:]
    return json.loads(out.stdout.strip().splitlines()[-1])


@needs_glibc
def test_keep_freed_memory_moves_large_tensors_onto_the_heap() -> None:
    kept = _run(_PROBE, None)
    assert kept["state"]["applied"] is True and kept["state"]["mmap_threshold"] == 1 << 30, kept
    assert kept["mapped"] < 2**20, kept  # from the heap
    default = _run(_PROBE, "default")
    assert default["state"] == {"applied": False, "reason": f"{MALLOC_ENV}=default"}
    assert default["mapped"] >= 64 * 2**20, default  # its own mapping: the probe sees the difference


@needs_glibc
def test_a_seeded_fit_gives_the_same_bits_either_way() -> None:
    kept, default = _run(_FIT, "keep"), _run(_FIT, "default")
    assert kept["state"]["applied"] is True and default["state"]["applied"] is False
    assert kept["digest"] == default["digest"]


def test_an_unknown_mode_is_one_line_before_anything_changes(monkeypatch) -> None:
    import equiv.allocator as allocator

    monkeypatch.setenv(MALLOC_ENV, "huge")
    monkeypatch.setattr(allocator, "_state", {"applied": False, "reason": "not requested yet"})
    with pytest.raises(ValueError, match=r"^EQUIV_MALLOC='huge'; allowed: keep, default$"):
        allocator.keep_freed_memory()
    assert allocator.allocator_state() == {"applied": False, "reason": "not requested yet"}


def test_result_files_record_the_allocator() -> None:
    from equiv.provenance import environment

    assert "applied" in environment("cpu")["allocator"]

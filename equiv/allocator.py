"""The C allocator under PyTorch's CPU tensors: keep freed memory for the next training step.

PyTorch's CPU tensors come from the C library's ``malloc``. glibc, by default, serves a block above a dynamic
threshold (128 KiB, rising to at most 32 MiB) with a fresh ``mmap`` and gives it back with ``munmap`` when it is
freed, and returns free memory at the top of its heap to the system once it exceeds twice that threshold. A
training step allocates and frees the same activations every step, so the kernel maps, zero-fills and page-faults
them in again and again. :func:`keep_freed_memory` raises both thresholds (``mallopt``), so that blocks come from
the heap and freed memory stays there for the next step. It changes where tensors live, never their values: the
numbers of a seeded run are the same bit for bit (``tests/test_allocator.py``).

Measured here (``python benchmarks/allocator.py``, each configuration in its own process, interleaved): see the
README's benchmark table. The peak resident memory of a run does not grow (the same activations are reused);
memory freed after the peak stays with the process until it exits.

:func:`equiv.train.fit` calls it. ``EQUIV_MALLOC=default`` (:data:`equiv.settings.MALLOC_ENV`) leaves the
allocator as it is. On a C library other than glibc it does nothing and says why.
"""

from __future__ import annotations

import ctypes
import ctypes.util
import os
from typing import Any

from equiv.settings import MALLOC_ENV

__all__ = ["keep_freed_memory", "allocator_state", "MMAP_THRESHOLD", "TRIM_THRESHOLD", "MALLOC_MODES"]

#: blocks below this many bytes come from the heap, not from their own ``mmap`` (glibc's ``M_MMAP_THRESHOLD``)
MMAP_THRESHOLD = 1 << 30
#: free memory at the heap's top is returned to the system only above this many bytes (``M_TRIM_THRESHOLD``)
TRIM_THRESHOLD = 1 << 31
#: the values :data:`equiv.settings.MALLOC_ENV` takes: ``keep`` (the default) or ``default`` (glibc's own)
MALLOC_MODES = ("keep", "default")

_M_TRIM_THRESHOLD, _M_MMAP_THRESHOLD = -1, -3  # glibc's <malloc.h>
_state: dict[str, Any] = {"applied": False, "reason": "not requested yet"}


def _glibc() -> tuple[Any, str] | None:
    """glibc's handle and version, or None on another C library."""
    try:
        libc = ctypes.CDLL(ctypes.util.find_library("c") or "libc.so.6")
        version = libc.gnu_get_libc_version
    except (OSError, AttributeError):
        return None
    version.restype = ctypes.c_char_p
    return libc, version().decode()


def keep_freed_memory() -> dict[str, Any]:
    """Raise glibc's mmap and trim thresholds to :data:`MMAP_THRESHOLD` and :data:`TRIM_THRESHOLD`, once per
    process; return :func:`allocator_state`. A no-op (with the reason in the state) when ``$EQUIV_MALLOC`` is
    ``default`` or the C library is not glibc.

    Raises:
        ValueError: ``$EQUIV_MALLOC`` is neither ``keep`` nor ``default`` (one line, before anything changes).
    """
    mode = os.environ.get(MALLOC_ENV, "keep") or "keep"
    if mode not in MALLOC_MODES:
        raise ValueError(f"{MALLOC_ENV}={mode!r}; allowed: {', '.join(MALLOC_MODES)}")
    if _state["applied"]:
        return allocator_state()
    if mode == "default":
        _state.update(applied=False, reason=f"{MALLOC_ENV}=default")
        return allocator_state()
    found = _glibc()
    if found is None:
        _state.update(applied=False, reason="the C library is not glibc")
        return allocator_state()
    libc, version = found
    ok = libc.mallopt(_M_MMAP_THRESHOLD, MMAP_THRESHOLD) == 1 and libc.mallopt(_M_TRIM_THRESHOLD, TRIM_THRESHOLD) == 1
    _state.update(applied=ok, reason=None if ok else "mallopt refused the thresholds", libc=f"glibc {version}")
    if ok:
        _state.update(mmap_threshold=MMAP_THRESHOLD, trim_threshold=TRIM_THRESHOLD)
    return allocator_state()


def allocator_state() -> dict[str, Any]:
    """What :func:`keep_freed_memory` did in this process: ``applied``, and the thresholds or the reason not."""
    return {k: v for k, v in _state.items() if v is not None}

"""What every result file records: code version, library versions, device, host and time.

:func:`environment` returns a plain JSON-able dict; experiment runners and the batch runner put it
next to their parameters in every file they write.
"""

from __future__ import annotations

import datetime as _dt
import os
import platform
import socket
import subprocess
import sys
from functools import lru_cache
from importlib import metadata
from pathlib import Path
from typing import Any

from equiv.allocator import allocator_state

__all__ = ["code_version", "library_versions", "cpu_description", "device_description", "environment"]

_LIBRARIES = ("torch", "numpy", "e2cnn", "pandas", "tqdm", "mlxtend", "pooch", "papermill", "jupyter-book")


@lru_cache(maxsize=1)
def code_version() -> dict[str, Any]:
    """The equiv package version and, inside a git checkout, the commit and whether the tree is dirty."""
    from equiv import __version__

    info: dict[str, Any] = {"equiv": __version__, "git_commit": None, "git_dirty": None}
    root = Path(__file__).resolve().parent.parent
    try:
        commit = subprocess.run(["git", "rev-parse", "HEAD"], cwd=root, capture_output=True, text=True, timeout=10)
        if commit.returncode == 0:
            info["git_commit"] = commit.stdout.strip()
            status = subprocess.run(
                ["git", "status", "--porcelain", "--untracked-files=no"], cwd=root, capture_output=True, text=True, timeout=10
            )
            info["git_dirty"] = bool(status.stdout.strip()) if status.returncode == 0 else None
    except (OSError, subprocess.SubprocessError):
        pass
    return info


def library_versions() -> dict[str, str | None]:
    """Installed versions of the libraries a result depends on (None when not installed)."""
    out: dict[str, str | None] = {"python": sys.version.split()[0]}
    for name in _LIBRARIES:
        try:
            out[name] = metadata.version(name)
        except metadata.PackageNotFoundError:
            out[name] = None
    return out


def cpu_description() -> dict[str, Any]:
    """The CPU a computation ran on: its model name (``/proc/cpuinfo``, else :func:`platform.processor`), the
    vector instruction set torch's kernels use on it (``torch.backends.cpu.get_cpu_capability()``: ``AVX512``,
    ``AVX2``, ``DEFAULT``, …) and the logical CPUs. Timings depend on all three: the same code ran 20–30 % slower
    on a 2-core AVX2 machine than on a 2-core AVX-512 one. A fresh dict each call (the lookup is cached)."""
    return dict(_cpu_description())


@lru_cache(maxsize=1)
def _cpu_description() -> tuple[tuple[str, Any], ...]:
    import torch

    model = None
    try:
        for line in Path("/proc/cpuinfo").read_text(encoding="utf-8", errors="replace").splitlines():
            if line.lower().startswith("model name"):
                model = line.split(":", 1)[1].strip()
                break
    except OSError:
        pass
    return (("model", model or platform.processor() or platform.machine()),
            ("capability", torch.backends.cpu.get_cpu_capability()), ("logical_cpus", os.cpu_count()))


def device_description(device: Any = None) -> str:
    """A human-readable name of the device a computation ran on: the GPU model, or the CPU model, its vector
    instruction set and the threads torch uses (``cpu:AMD EPYC, AVX2 (1 threads)``)."""
    import torch

    dev = torch.device(device) if device is not None else torch.device("cuda" if torch.cuda.is_available() else "cpu")
    if dev.type == "cuda":
        return f"cuda:{torch.cuda.get_device_name(dev)}"
    cpu = cpu_description()
    return f"cpu:{cpu['model']}, {cpu['capability']} ({torch.get_num_threads()} threads)"


def environment(device: Any = None) -> dict[str, Any]:
    """Everything a result file should carry besides its parameters."""
    return {
        "code": code_version(),
        "libraries": library_versions(),
        "device": device_description(device),
        "cpu": cpu_description(),
        "allocator": allocator_state(),
        "host": socket.gethostname(),
        "platform": platform.platform(),
        "timestamp_utc": _dt.datetime.now(_dt.timezone.utc).isoformat(timespec="seconds"),
    }

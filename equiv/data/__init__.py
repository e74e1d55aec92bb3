"""Datasets as tensors: MNIST (embedded subset or full), CIFAR-10/100, PCam; preprocessing; rotation regimes.

- :func:`mnist` (offline by default), :func:`cifar10`, :func:`cifar100`, :func:`pcam` return
  :class:`ImageSplits` (``train`` / ``val`` / ``test`` ``(x, y)`` tensors + provenance and statistics).
- :func:`download` fetches and verifies the full datasets (``equiv data download NAME``); nothing is
  downloaded implicitly. Every file on disk is checked against its recorded checksum before a loader
  parses it (:mod:`~equiv.data.integrity`; ``equiv data verify [NAME|all]``): corrupt, unknown or missing
  files are refused with a one-line error.
- :func:`resize` / :func:`normalize` / :meth:`ImageSplits.prepared`: the paper's preprocessing.
- :func:`make_regime`: the training-rotation regimes (``upright``, ``normal45_sd20``, ``uniform``, ...).

Modules: :mod:`~equiv.data.mnist`, :mod:`~equiv.data.cifar`, :mod:`~equiv.data.pcam`,
:mod:`~equiv.data.idx` (IDX format), :mod:`~equiv.data.registry` (files, hashes, mirrors),
:mod:`~equiv.data.download`, :mod:`~equiv.data.integrity` (checks of the files on disk),
:mod:`~equiv.data.checksums` (hashing and its cache), :mod:`~equiv.data.splits`, :mod:`~equiv.data.preprocess`,
:mod:`~equiv.data.regimes`, :mod:`~equiv.data.cli`.
"""

from equiv.data.cifar import cifar10, cifar100
from equiv.data.download import download, missing_files, require_files
from equiv.data.integrity import CorruptDataError, FileCheck, check_dataset
from equiv.data.mnist import EMBEDDED_SIZES, mnist, mnist_fold
from equiv.data.pcam import pcam
from equiv.data.preprocess import INTERPOLATION, channel_stats, normalize, resize
from equiv.data.regimes import REGIME_NAMES, Normal, Regime, Rot90, Uniform, Upright, make_regime
from equiv.data.registry import DATASET_NAMES, REGISTRY
from equiv.data.splits import ImageSplits, stratified_split

__all__ = [
    "ImageSplits",
    "mnist",
    "mnist_fold",
    "cifar10",
    "cifar100",
    "pcam",
    "download",
    "require_files",
    "missing_files",
    "check_dataset",
    "FileCheck",
    "CorruptDataError",
    "resize",
    "normalize",
    "channel_stats",
    "INTERPOLATION",
    "make_regime",
    "Regime",
    "Upright",
    "Normal",
    "Uniform",
    "Rot90",
    "REGIME_NAMES",
    "DATASET_NAMES",
    "REGISTRY",
    "EMBEDDED_SIZES",
    "stratified_split",
]

"""Integrity of the dataset files on disk: every file is checked against a recorded checksum before use.

The promise: **no loader parses a dataset file that has not just been found equal to its recorded
checksum.** A file kept as served (MNIST ``.gz``, CIFAR ``.tar.gz``) is checked against the registry
(:mod:`equiv.data.registry`). A file decompressed from a verified archive (PCam ``.h5``) is checked against
the sha256 recorded in the manifest :data:`MANIFEST_NAME` beside it, written (atomically) by
:func:`equiv.data.download` at the moment it decompressed that archive; an ``.h5`` file without a manifest
entry for the registry's archive is *unknown* and refused. Each file is ``ok``, ``corrupt`` (checksum
mismatch), ``missing`` or ``unknown`` (no recorded checksum); only ``ok`` files are used: the loaders raise
:class:`CorruptDataError` (a ValueError, one line naming the file, the expected and the actual checksum and
the command that replaces it) or FileNotFoundError otherwise. Repeated checks of an unchanged file are
cached (see :mod:`equiv.data.checksums`); a changed file is always hashed again.
"""

from __future__ import annotations

import json
import os
from dataclasses import dataclass
from pathlib import Path

from equiv.atomic_io import atomic_write_json
from equiv.data.checksums import STAMP_NAME, checksum_algorithm, same_checksum, split_checksum, verified_checksum
from equiv.data.registry import RemoteFile, dataset_dir, download_command, source

__all__ = [
    "STATUSES",
    "MANIFEST_NAME",
    "CorruptDataError",
    "FileCheck",
    "check_stored",
    "check_remote_file",
    "check_dataset",
    "require_verified",
    "read_manifest",
    "record_decompressed",
    "forget_decompressed",
]

#: The verdicts of a check, in the order ``equiv data verify`` explains them.
STATUSES = ("ok", "corrupt", "missing", "unknown")
#: Manifest of the files decompressed from verified archives, kept in the dataset folder.
MANIFEST_NAME = "equiv-decompressed.json"
_BOOKKEEPING = (MANIFEST_NAME, STAMP_NAME)


class CorruptDataError(ValueError):
    """A dataset file on disk does not match its recorded checksum, or has none (one-line message)."""


@dataclass(frozen=True)
class FileCheck:
    """The verdict on one file.

    Attributes:
        dataset: the dataset the file belongs to.
        path: where the file is (or should be).
        status: one of :data:`STATUSES`.
        expected: the recorded checksum (None when there is none).
        actual: the checksum found (None when the file is missing or there is nothing to compare with).
        detail: why it is not ok (empty when ok).
    """

    dataset: str
    path: Path
    status: str
    expected: str | None = None
    actual: str | None = None
    detail: str = ""

    @property
    def ok(self) -> bool:
        """Whether the file may be used."""
        return self.status == "ok"

    def line(self) -> str:
        """One line for ``equiv data verify``: status, path and what is wrong."""
        return f"{self.status:<8}{self.path}" + (f"  ({self.detail})" if self.detail else "")

    def error(self, root: str | os.PathLike | None) -> OSError | CorruptDataError:
        """The one-line exception a loader raises for this file (FileNotFoundError when missing)."""
        fix = download_command(self.dataset, root)
        if self.status == "missing":
            return FileNotFoundError(f"missing {self.dataset} file {self.path}; get it with: {fix}")
        return CorruptDataError(f"{self.status} {self.dataset} file {self.path}: {self.detail}; it is not used; re-download it with: {fix}")


def _mismatch(algorithm: str, actual: str, expected: str) -> str:
    return f"its {algorithm} is {split_checksum(actual)[1]}, expected {split_checksum(expected)[1]}"


def check_stored(dataset: str, path: Path, expected: str, *, use_cache: bool = True) -> FileCheck:
    """Check one file against the checksum ``expected``: ok, corrupt or missing."""
    if not path.is_file():
        return FileCheck(dataset, path, "missing", expected)
    try:
        actual = verified_checksum(path, expected, use_cache=use_cache)
    except OSError as err:
        return FileCheck(dataset, path, "corrupt", expected, None, f"cannot be read: {err.strerror or err}")
    if same_checksum(actual, expected):
        return FileCheck(dataset, path, "ok", expected, actual)
    return FileCheck(dataset, path, "corrupt", expected, actual, _mismatch(checksum_algorithm(expected), actual, expected))


def read_manifest(folder: Path) -> dict[str, dict]:
    """The entries of :data:`MANIFEST_NAME` in ``folder`` (local file name -> entry); ``{}`` when there is
    no readable manifest (every decompressed file is then unknown)."""
    try:
        data = json.loads((folder / MANIFEST_NAME).read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return {}
    files = data.get("files") if isinstance(data, dict) else None
    return {k: v for k, v in files.items() if isinstance(v, dict)} if isinstance(files, dict) else {}


def record_decompressed(folder: Path, file: RemoteFile, checksum: str, size: int) -> None:
    """Record (atomically) that ``file.local_name`` was decompressed from the verified archive ``file``."""
    files = read_manifest(folder)
    files[file.local_name] = {"checksum": checksum, "size": size, "archive": file.name, "archive_checksum": file.known_hash}
    atomic_write_json(folder / MANIFEST_NAME, {"format": 1, "files": files})


def forget_decompressed(folder: Path, file: RemoteFile) -> None:
    """Drop the manifest entry of ``file.local_name`` (before that file is replaced or removed)."""
    files = read_manifest(folder)
    if files.pop(file.local_name, None) is not None:
        atomic_write_json(folder / MANIFEST_NAME, {"format": 1, "files": files})


def _recorded(folder: Path, file: RemoteFile) -> tuple[str | None, str]:
    """The checksum recorded for the decompressed ``file`` and, when there is none, why."""
    entry = read_manifest(folder).get(file.local_name)
    if entry is None:
        return None, f"no checksum is recorded for it in {MANIFEST_NAME} (equiv records one when it decompresses a verified {file.name})"
    checksum, archive = entry.get("checksum"), entry.get("archive_checksum")
    try:
        valid = isinstance(checksum, str) and isinstance(archive, str) and split_checksum(checksum) and same_checksum(archive, file.known_hash)
    except ValueError:
        valid = False
    if not valid:
        return None, f"its entry in {MANIFEST_NAME} is not for the archive {file.name} {file.known_hash}"
    return checksum, ""


def check_remote_file(dataset: str, folder: Path, file: RemoteFile, *, use_cache: bool = True) -> FileCheck:
    """Check the local copy of registry file ``file`` in ``folder`` (decompressed ones via the manifest)."""
    path = folder / file.local_name
    if not file.gunzip:
        return check_stored(dataset, path, file.known_hash, use_cache=use_cache)
    if not path.is_file():
        return FileCheck(dataset, path, "missing")
    expected, why = _recorded(folder, file)
    if expected is None:
        return FileCheck(dataset, path, "unknown", None, None, why)
    return check_stored(dataset, path, expected, use_cache=use_cache)


def _extra_files(dataset: str, folder: Path, use_cache: bool) -> list[FileCheck]:
    """Kept archives of decompressed files (checked) and files that are no part of the dataset (unknown)."""
    files = source(dataset).files
    local = {f.local_name for f in files} | set(_BOOKKEEPING)
    archives = {f.name: f for f in files if f.gunzip and f.name != f.local_name}
    out = []
    for path in sorted(folder.iterdir()) if folder.is_dir() else []:
        if path.name in archives:
            out.append(check_stored(dataset, path, archives[path.name].known_hash, use_cache=use_cache))
        elif path.name not in local:
            out.append(FileCheck(dataset, path, "unknown", None, None, f"not a file of the {dataset} dataset; it is never used"))
    return out


def check_dataset(name: str, root: str | os.PathLike | None = None, *, use_cache: bool = True, extras: bool = False) -> list[FileCheck]:
    """Check every file of dataset ``name`` in ``<root>/<name>``, in registry order.

    Args:
        use_cache: accept an unchanged file verified before (see :mod:`equiv.data.checksums`); False
            hashes every file.
        extras: also report kept ``.gz`` archives (checked) and any other file in the folder (unknown).
    """
    folder = dataset_dir(name, root)
    checks = [check_remote_file(name, folder, f, use_cache=use_cache) for f in source(name).files]
    return checks + (_extra_files(name, folder, use_cache) if extras else [])


def require_verified(name: str, root: str | os.PathLike | None = None) -> dict[str, Path]:
    """Map each registry file name of dataset ``name`` to its local path, once every one is ok.

    Raises:
        FileNotFoundError: a file is missing (first missing one named, with the download command); checked
            before any file is hashed.
        CorruptDataError: a file is corrupt or unknown (named, with expected and actual checksum and the
            command that replaces it).
    """
    folder = dataset_dir(name, root)
    files = source(name).files
    missing = [folder / f.local_name for f in files if not (folder / f.local_name).is_file()]
    if missing:
        more = f" (and {len(missing) - 1} more)" if len(missing) > 1 else ""
        raise FileNotFoundError(f"missing {name} file {missing[0]}{more}; get it with: {download_command(name, root)}")
    for file in files:
        check = check_remote_file(name, folder, file)
        if not check.ok:
            raise check.error(root)
    return {f.name: folder / f.local_name for f in files}

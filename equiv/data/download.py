"""Verified downloads of the full datasets, and the check that they are present and intact.

:func:`download` fetches every file of a dataset with :mod:`pooch`: each file is streamed to a
temporary file in the dataset folder, its checksum is compared with the registry, and only then is it
renamed to its final name. A mismatch deletes the temporary file and raises. A file already in the folder
is verified first: when it matches it is not fetched again; when it does not (corrupt, or a decompressed
file without a recorded checksum) it is removed *before* the new download starts, so after a failed
download nothing unverified is left behind. Gzipped HDF5 files (PCam) are decompressed to a temporary file
and renamed into place; the sha256 of the decompressed file is recorded in the dataset's manifest
(:data:`equiv.data.integrity.MANIFEST_NAME`) and the verified archive is removed (``keep_archives=True``
keeps it).

Nothing in :mod:`equiv` downloads implicitly: the loaders call :func:`require_files`, which raises
:class:`FileNotFoundError` with the command to run, or :class:`~equiv.data.integrity.CorruptDataError`
for a file that fails its checksum, unless they are called with ``download=True``.
"""

from __future__ import annotations

import gzip
import hashlib
import os
import tempfile
import zlib
from collections.abc import Callable
from pathlib import Path
from typing import BinaryIO

from equiv.atomic_io import file_mode
from equiv.data.integrity import FileCheck, check_remote_file, check_stored, forget_decompressed, record_decompressed, require_verified
from equiv.data.registry import RemoteFile, dataset_dir, resolve_mirror, resolve_root, source

__all__ = ["download", "require_files", "missing_files", "local_paths"]

Notify = Callable[[str], None]
_CHUNK = 1 << 22


def local_paths(name: str, root: str | os.PathLike | None = None) -> dict[str, Path]:
    """Map each registry file name of dataset ``name`` to where it is kept locally."""
    folder = dataset_dir(name, root)
    return {f.name: folder / f.local_name for f in source(name).files}


def missing_files(name: str, root: str | os.PathLike | None = None) -> list[Path]:
    """The local files of dataset ``name`` that are not present (empty list: all there)."""
    return [p for p in local_paths(name, root).values() if not p.is_file()]


def require_files(name: str, root: str | os.PathLike | None = None) -> dict[str, Path]:
    """Return :func:`local_paths` once every file is present *and* matches its recorded checksum.

    Raises a one-line FileNotFoundError naming the first missing file and the command that downloads it,
    or :class:`~equiv.data.integrity.CorruptDataError` (a ValueError) naming a corrupt or unknown file, the
    expected and actual checksum and the command that replaces it (see :func:`~equiv.data.integrity.require_verified`).
    """
    return require_verified(name, root)


def _read(inp: BinaryIO, src: Path) -> bytes:
    """One chunk of the decompressed archive ``src`` (ValueError, one line, when it is not valid gzip)."""
    try:
        return inp.read(_CHUNK)
    except (gzip.BadGzipFile, EOFError, zlib.error) as err:
        raise ValueError(f"cannot decompress {src}: {err}; the archive matches its checksum but is not valid gzip") from None


def _gunzip_atomic(src: Path, dst: Path) -> tuple[str, int]:
    """Decompress ``src`` into ``dst`` through a temporary file in the same folder + rename; return the
    sha256 (``"sha256:<hex>"``) and size of the decompressed file."""
    digest, size = hashlib.sha256(), 0
    fd, tmp = tempfile.mkstemp(prefix=f".{dst.name}.", suffix=".tmp", dir=dst.parent)
    try:
        with os.fdopen(fd, "wb") as out, gzip.open(src, "rb") as inp:
            for chunk in iter(lambda: _read(inp, src), b""):
                out.write(chunk)
                digest.update(chunk)
                size += len(chunk)
            out.flush()
            os.fchmod(out.fileno(), file_mode())  # the umask's mode, not mkstemp's 0600
            os.fsync(out.fileno())
        os.replace(tmp, dst)
    except BaseException:
        try:
            os.unlink(tmp)
        except FileNotFoundError:
            pass
        raise
    return f"sha256:{digest.hexdigest()}", size


def _fetch(file: RemoteFile, url: str, folder: Path, progress: bool) -> Path:
    import pooch  # imported lazily: only downloads need it
    import requests

    try:
        path = pooch.retrieve(
            url,
            known_hash=file.known_hash,
            fname=file.name,
            path=folder,
            progressbar=progress,
            downloader=pooch.HTTPDownloader(progressbar=progress, timeout=60) if url.startswith("http") else None,
        )
    except ValueError as err:  # pooch: hash mismatch (the temporary download is already deleted)
        raise ValueError(f"checksum mismatch for {url}, nothing kept: {err}".replace("\n", " ")) from None
    except requests.exceptions.RequestException as err:
        raise ConnectionError(f"could not download {url}: {err}".replace("\n", " ")) from None
    os.chmod(path, file_mode())  # pooch moves a mkstemp file (0600) into place: give it the umask's mode
    return Path(path)


def _discard(check: FileCheck, notify: Notify | None) -> None:
    """Remove a local file that failed its check, so that it can never be used (and say so)."""
    check.path.unlink(missing_ok=True)
    if notify is not None:
        notify(f"removed {check.status} file {check.path} ({check.detail})")


def _ensure_stored(check: FileCheck, file: RemoteFile, base: str, folder: Path, progress: bool, notify: Notify | None) -> Path:
    """The verified file as served: kept when ``check`` is ok, else the bad copy is removed and fetched anew."""
    if check.ok:
        return check.path
    if check.status != "missing":
        _discard(check, notify)
    return _fetch(file, f"{base}/{file.name}", folder, progress)


def _ensure_decompressed(name: str, file: RemoteFile, base: str, folder: Path, keep_archives: bool, progress: bool, notify: Notify | None) -> Path:
    """The verified decompressed file: kept when it matches the manifest, else rebuilt from a verified archive
    (the local one if it is intact, else a fresh download) and recorded in the manifest."""
    final = folder / file.local_name
    check = check_remote_file(name, folder, file)
    if check.ok:
        return final
    forget_decompressed(folder, file)
    if check.status != "missing":
        _discard(check, notify)
    archive = _ensure_stored(check_stored(name, folder / file.name, file.known_hash), file, base, folder, progress, notify)
    checksum, size = _gunzip_atomic(archive, final)
    record_decompressed(folder, file, checksum, size)
    if not keep_archives:
        archive.unlink()
    return final


def download(
    name: str,
    root: str | os.PathLike | None = None,
    *,
    mirror: str | None = None,
    keep_archives: bool = False,
    progress: bool = False,
    notify: Notify | None = None,
) -> list[Path]:
    """Download and verify every file of dataset ``name`` into ``<root>/<name>/``.

    Files already there are verified: intact ones are kept (not fetched again), corrupt or unknown ones are
    removed before they are fetched anew.

    Args:
        name: one of ``mnist``, ``cifar10``, ``cifar100``, ``pcam``.
        root: data root (default ``$EQUIV_DATA`` or ``~/.cache/equiv``).
        mirror: base URL to fetch ``<mirror>/<file>`` from (default ``$EQUIV_DATA_MIRROR`` or the
            canonical mirror of the dataset).
        keep_archives: for gzipped HDF5 files, keep the verified ``.gz`` next to the decompressed file.
        progress: show pooch's progress bar (needs tqdm).
        notify: called with one line for each bad local file that is removed (e.g. ``print``).

    Returns:
        The local paths of the dataset's files, in registry order.

    Raises:
        ValueError: unknown dataset or mirror, or a checksum mismatch (nothing unverified is left behind).
        ConnectionError: the mirror could not be reached or returned an HTTP error.
    """
    src = source(name)
    base = resolve_mirror(name, mirror)
    folder = dataset_dir(name, resolve_root(root))
    out: list[Path] = []
    for file in src.files:
        if file.gunzip:
            out.append(_ensure_decompressed(name, file, base, folder, keep_archives, progress, notify))
        else:
            out.append(_ensure_stored(check_remote_file(name, folder, file), file, base, folder, progress, notify))
    return out

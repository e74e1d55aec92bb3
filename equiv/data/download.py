"""Verified downloads of the full datasets, and the check that they are present.

:func:`download` fetches every file of a dataset with :mod:`pooch`: each file is streamed to a
temporary file in the dataset folder, its checksum is compared with the registry, and only then is it
renamed to its final name. A mismatch deletes the temporary file and raises, so a corrupt file is never
left behind. Files that are already present with the right checksum are not fetched again. Gzipped
HDF5 files (PCam) are then decompressed to a temporary file and renamed into place, and the verified
archive is removed (``keep_archives=True`` keeps it).

Nothing in :mod:`equiv` downloads implicitly: the loaders raise :class:`FileNotFoundError` with the
command to run (:func:`require_files`) unless they are called with ``download=True``.
"""

from __future__ import annotations

import gzip
import os
import shutil
import tempfile
from pathlib import Path

from equiv.data.registry import RemoteFile, dataset_dir, download_command, resolve_mirror, resolve_root, source

__all__ = ["download", "require_files", "missing_files", "local_paths"]


def local_paths(name: str, root: str | os.PathLike | None = None) -> dict[str, Path]:
    """Map each registry file name of dataset ``name`` to where it is kept locally."""
    folder = dataset_dir(name, root)
    return {f.name: folder / f.local_name for f in source(name).files}


def missing_files(name: str, root: str | os.PathLike | None = None) -> list[Path]:
    """The local files of dataset ``name`` that are not present (empty list: all there)."""
    return [p for p in local_paths(name, root).values() if not p.is_file()]


def require_files(name: str, root: str | os.PathLike | None = None) -> dict[str, Path]:
    """Return :func:`local_paths` if every file is present, else raise a one-line FileNotFoundError
    naming the first missing file and the exact command that downloads it."""
    missing = missing_files(name, root)
    if missing:
        more = f" (and {len(missing) - 1} more)" if len(missing) > 1 else ""
        raise FileNotFoundError(f"missing {name} file {missing[0]}{more}; get it with: {download_command(name, root)}")
    return local_paths(name, root)


def _gunzip_atomic(src: Path, dst: Path) -> None:
    """Decompress ``src`` into ``dst`` through a temporary file in the same folder + rename."""
    fd, tmp = tempfile.mkstemp(prefix=f".{dst.name}.", suffix=".tmp", dir=dst.parent)
    try:
        with os.fdopen(fd, "wb") as out, gzip.open(src, "rb") as inp:
            shutil.copyfileobj(inp, out, length=1 << 22)
            out.flush()
            os.fsync(out.fileno())
        os.replace(tmp, dst)
    except BaseException:
        try:
            os.unlink(tmp)
        except FileNotFoundError:
            pass
        raise


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
    return Path(path)


def download(
    name: str,
    root: str | os.PathLike | None = None,
    *,
    mirror: str | None = None,
    keep_archives: bool = False,
    progress: bool = False,
) -> list[Path]:
    """Download and verify every file of dataset ``name`` into ``<root>/<name>/``.

    Args:
        name: one of ``mnist``, ``cifar10``, ``cifar100``, ``pcam``.
        root: data root (default ``$EQUIV_DATA`` or ``~/.cache/equiv``).
        mirror: base URL to fetch ``<mirror>/<file>`` from (default ``$EQUIV_DATA_MIRROR`` or the
            canonical mirror of the dataset).
        keep_archives: for gzipped HDF5 files, keep the verified ``.gz`` next to the decompressed file.
        progress: show pooch's progress bar (needs tqdm).

    Returns:
        The local paths of the dataset's files, in registry order.

    Raises:
        ValueError: unknown dataset or mirror, or a checksum mismatch (nothing is left behind).
        ConnectionError: the mirror could not be reached or returned an HTTP error.
    """
    src = source(name)
    base = resolve_mirror(name, mirror)
    folder = dataset_dir(name, resolve_root(root))
    out: list[Path] = []
    for file in src.files:
        final = folder / file.local_name
        if file.gunzip and final.is_file():
            out.append(final)  # decompressed earlier from a verified archive
            continue
        fetched = _fetch(file, f"{base}/{file.name}", folder, progress)
        if file.gunzip:
            _gunzip_atomic(fetched, final)
            if not keep_archives:
                fetched.unlink()
            out.append(final)
        else:
            out.append(fetched)
    return out

"""Checksums of dataset files, and a cache that never lets a changed file pass unhashed.

A checksum is written ``"<algorithm>:<hex>"`` with ``algorithm`` one of :data:`ALGORITHMS`; a bare hex
string means sha256 (pooch's convention). :func:`file_checksum` hashes a file in 4 MiB chunks.

:func:`verified_checksum` returns the checksum of a file, taking it from a cache when the file is provably
unchanged since it was last hashed and found equal to the expected checksum. The cache is kept in the process
and in a small stamp file (:data:`STAMP_NAME`) in the file's folder, keyed on the expected checksum and the
file's size, inode, mtime and ctime (nanoseconds). Writing, truncating or replacing the file changes that key,
and so does resetting its mtime (``touch -d``, ``os.utime``), which updates the ctime; any change means the
file is hashed again. A file whose mtime or ctime is less than :data:`RACY_SECONDS` old is never cached, so a
second change within the same tick of a coarse filesystem clock cannot hide behind an old key. The stamp
protects against accidents (truncated or replaced files, disk errors); like any checksum kept beside the data
it is no defence against someone who deliberately rewrites both.
"""

from __future__ import annotations

import hashlib
import json
import os
import time
from pathlib import Path

from equiv.atomic_io import atomic_write_json

__all__ = [
    "ALGORITHMS",
    "STAMP_NAME",
    "RACY_SECONDS",
    "split_checksum",
    "checksum_algorithm",
    "same_checksum",
    "file_checksum",
    "verified_checksum",
    "clear_memo",
]

#: The hash algorithms a recorded checksum may use.
ALGORITHMS = ("md5", "sha1", "sha256", "sha512")
#: Name of the stamp file (in each dataset folder) that remembers verified files between processes.
STAMP_NAME = ".equiv-verified.json"
#: A file changed less than this many seconds ago is hashed on every check (never cached).
RACY_SECONDS = 2.0

_CHUNK = 1 << 22
_Key = tuple[int, int, int, int]  # size, inode, mtime_ns, ctime_ns
_MEMO: dict[tuple[str, str], _Key] = {}


def split_checksum(checksum: str) -> tuple[str, str]:
    """``"md5:<hex>"`` -> ``("md5", "<hex>")`` (lower case); a bare hex string is sha256.

    Raises ValueError naming the checksum when the algorithm is not one of :data:`ALGORITHMS` or the hex part
    does not have that algorithm's length."""
    algorithm, _, hexdigest = checksum.rpartition(":") if ":" in checksum else ("sha256", "", checksum)
    algorithm, hexdigest = algorithm.lower(), hexdigest.lower()
    if algorithm not in ALGORITHMS:
        raise ValueError(f"checksum {checksum!r} uses algorithm {algorithm!r}; allowed: {', '.join(ALGORITHMS)}")
    size = hashlib.new(algorithm).digest_size * 2
    if len(hexdigest) != size or any(c not in "0123456789abcdef" for c in hexdigest):
        raise ValueError(f"checksum {checksum!r} is not {size} hex digits after '{algorithm}:'")
    return algorithm, hexdigest


def checksum_algorithm(checksum: str) -> str:
    """The algorithm of a recorded checksum (``"md5:<hex>"`` -> ``"md5"``)."""
    return split_checksum(checksum)[0]


def same_checksum(a: str, b: str) -> bool:
    """Whether two checksums are the same algorithm and digest (case and the ``sha256:`` prefix ignored)."""
    return split_checksum(a) == split_checksum(b)


def file_checksum(path: str | os.PathLike, algorithm: str = "sha256") -> str:
    """``"<algorithm>:<hex>"`` of the file at ``path``, read in 4 MiB chunks."""
    digest = hashlib.new(algorithm)
    with open(path, "rb") as fh:
        for chunk in iter(lambda: fh.read(_CHUNK), b""):
            digest.update(chunk)
    return f"{algorithm}:{digest.hexdigest()}"


def _key(st: os.stat_result) -> _Key:
    return (st.st_size, st.st_ino, st.st_mtime_ns, st.st_ctime_ns)


def _settled(st: os.stat_result) -> bool:
    """True when the file has not changed for :data:`RACY_SECONDS` (its key can be trusted)."""
    return time.time() - max(st.st_mtime, st.st_ctime) > RACY_SECONDS


def _read_stamps(folder: Path) -> dict[str, dict]:
    try:
        data = json.loads((folder / STAMP_NAME).read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return {}
    files = data.get("files") if isinstance(data, dict) else None
    return files if isinstance(files, dict) else {}


def _stamped(path: Path, expected: str, key: _Key) -> bool:
    entry = _read_stamps(path.parent).get(path.name)
    if not isinstance(entry, dict) or not isinstance(entry.get("checksum"), str):
        return False
    try:
        matches = same_checksum(entry["checksum"], expected)
    except ValueError:
        return False
    return matches and [entry.get(k) for k in ("size", "inode", "mtime_ns", "ctime_ns")] == list(key)


def _stamp(path: Path, checksum: str, key: _Key) -> None:
    files = _read_stamps(path.parent)
    files[path.name] = {"checksum": checksum, "size": key[0], "inode": key[1], "mtime_ns": key[2], "ctime_ns": key[3]}
    try:
        atomic_write_json(path.parent / STAMP_NAME, {"format": 1, "files": files})
    except OSError:
        pass  # a read-only data folder: the stamp is an optimisation only


def verified_checksum(path: str | os.PathLike, expected: str, *, use_cache: bool = True) -> str:
    """The checksum of ``path`` in the algorithm of ``expected``.

    With ``use_cache`` it is ``expected`` itself, without reading the file, when the process memo or the
    stamp file says the file was hashed to ``expected`` and its size, inode, mtime and ctime have not changed
    since. Otherwise the file is hashed; a match on a file that stayed unchanged while it was hashed and is
    older than :data:`RACY_SECONDS` is remembered (in the process and in the stamp file), whatever
    ``use_cache`` says. Raises OSError (e.g. FileNotFoundError) when the file cannot be read.
    """
    path = Path(os.path.abspath(path))
    algorithm = checksum_algorithm(expected)
    memo_key = (str(path), f"{algorithm}:{split_checksum(expected)[1]}")
    before = os.stat(path)
    key = _key(before)
    if use_cache and _settled(before) and (_MEMO.get(memo_key) == key or _stamped(path, expected, key)):
        _MEMO[memo_key] = key
        return memo_key[1]
    actual = file_checksum(path, algorithm)
    after = os.stat(path)
    if same_checksum(actual, expected) and _key(after) == key and _settled(after):
        _MEMO[memo_key] = key
        _stamp(path, memo_key[1], key)
    return actual


def clear_memo() -> None:
    """Forget every verification remembered in this process (the stamp files stay)."""
    _MEMO.clear()

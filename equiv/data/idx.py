"""Reading (and, for test fixtures, writing) IDX files, the format of the official MNIST distribution.

An IDX file is: two zero bytes, a type byte (0x08 = unsigned byte, the only type MNIST uses; the
others are accepted too), the number of dimensions, one big-endian uint32 per dimension, then the data
in C order (big-endian for multi-byte types). Files ending in ``.gz`` are gunzipped on the fly.
"""

from __future__ import annotations

import gzip
import os
import zlib
from pathlib import Path

import numpy as np

__all__ = ["read_idx", "encode_idx"]

_TYPES = {0x08: np.dtype("u1"), 0x09: np.dtype("i1"), 0x0B: np.dtype(">i2"), 0x0C: np.dtype(">i4"), 0x0D: np.dtype(">f4"), 0x0E: np.dtype(">f8")}
_CODES = {np.dtype("u1"): 0x08, np.dtype("i1"): 0x09}


def read_idx(path: str | os.PathLike) -> np.ndarray:
    """Parse an IDX(.gz) file into a numpy array of its declared shape (native byte order)."""
    path = Path(path)
    opener = gzip.open if path.name.endswith(".gz") else open
    try:
        with opener(path, "rb") as fh:
            raw = fh.read()
    except (gzip.BadGzipFile, EOFError, zlib.error) as err:
        raise ValueError(f"{path} is not a valid gzip file ({err}); expected a gzipped IDX file") from None
    if len(raw) < 4 or raw[0] != 0 or raw[1] != 0 or raw[2] not in _TYPES or raw[3] == 0:
        raise ValueError(f"{path} is not an IDX file (bad magic {raw[:4].hex()!r}); allowed: 00 00 <type> <ndim>")
    dtype, ndim = _TYPES[raw[2]], raw[3]
    header = 4 + 4 * ndim
    shape = tuple(int(d) for d in np.frombuffer(raw, dtype=">u4", count=ndim, offset=4))
    expected = header + int(np.prod(shape, dtype=np.int64)) * dtype.itemsize
    if len(raw) != expected:
        raise ValueError(f"{path} has {len(raw)} bytes but its IDX header {shape} needs {expected}; the file is truncated or corrupt")
    data = np.frombuffer(raw, dtype=dtype, offset=header).reshape(shape)
    return data.astype(dtype.newbyteorder("="), copy=False) if dtype.itemsize > 1 else data


def encode_idx(array: np.ndarray) -> bytes:
    """The IDX encoding of a uint8/int8 array (used to build small test fixtures)."""
    arr = np.ascontiguousarray(array)
    if arr.dtype not in _CODES or arr.ndim == 0 or arr.ndim > 255:
        raise ValueError(f"encode_idx supports uint8/int8 arrays with 1..255 dimensions, got {arr.dtype} with {arr.ndim}")
    header = bytes([0, 0, _CODES[arr.dtype], arr.ndim]) + np.asarray(arr.shape, dtype=">u4").tobytes()
    return header + arr.tobytes()

"""Test helpers for equiv.data: a local HTTP mirror and small fixture files in the real formats.

Nothing here touches the internet. :func:`data_server` is a pytest fixture serving a temporary folder
from ``http://127.0.0.1:<port>`` (port chosen by the OS) in a background thread; the ``fake_*``
builders return ``{file name: bytes}`` in the official formats (gzipped IDX, CIFAR python tarballs,
gzipped PCam HDF5), and :func:`install_source` writes them to the server folder and registers them in
``equiv.data.registry.REGISTRY`` with their real, computed md5 checksums.
"""

from __future__ import annotations

import gzip
import hashlib
import io
import pickle
import tarfile
import threading
from dataclasses import dataclass, field
from functools import partial
from http.server import SimpleHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import numpy as np
import pytest

from equiv.data import registry
from equiv.data.idx import encode_idx

__all__ = [
    "LocalMirror",
    "data_server",
    "install_source",
    "register_source",
    "write_local",
    "md5_of",
    "fake_mnist",
    "fake_cifar10",
    "fake_cifar100",
    "fake_pcam",
]


@dataclass
class LocalMirror:
    """A running local HTTP server: ``url`` serves the files in ``folder``; ``requests`` logs paths."""

    url: str
    folder: Path
    requests: list[str] = field(default_factory=list)

    def put(self, name: str, data: bytes) -> None:
        (self.folder / name).write_bytes(data)


class _QuietHandler(SimpleHTTPRequestHandler):
    def log_message(self, format: str, *args: object) -> None:  # noqa: A002 - signature of the base class
        pass

    def do_GET(self) -> None:  # noqa: N802 - http.server naming
        self.server.request_log.append(self.path)  # type: ignore[attr-defined]
        super().do_GET()


@pytest.fixture
def data_server(tmp_path: Path, monkeypatch: pytest.MonkeyPatch):
    """Serve ``tmp_path / "mirror"`` on 127.0.0.1; no proxy, no EQUIV_* variables leak in."""
    for var in ("http_proxy", "HTTP_PROXY", "https_proxy", "HTTPS_PROXY", "all_proxy", "ALL_PROXY"):
        monkeypatch.delenv(var, raising=False)
    monkeypatch.setenv("NO_PROXY", "127.0.0.1,localhost")
    monkeypatch.setenv("no_proxy", "127.0.0.1,localhost")
    monkeypatch.delenv(registry.ENV_MIRROR, raising=False)
    monkeypatch.delenv(registry.ENV_ROOT, raising=False)
    folder = tmp_path / "mirror"
    folder.mkdir()
    server = ThreadingHTTPServer(("127.0.0.1", 0), partial(_QuietHandler, directory=str(folder)))
    server.request_log = []  # type: ignore[attr-defined]
    thread = threading.Thread(target=server.serve_forever, kwargs={"poll_interval": 0.02}, daemon=True)
    thread.start()
    mirror = LocalMirror(url=f"http://127.0.0.1:{server.server_address[1]}", folder=folder, requests=server.request_log)  # type: ignore[attr-defined]
    try:
        yield mirror
    finally:
        server.shutdown()
        server.server_close()
        thread.join(timeout=5)


def md5_of(data: bytes) -> str:
    """``"md5:<hex>"`` of ``data``."""
    return "md5:" + hashlib.md5(data).hexdigest()


def install_source(
    monkeypatch: pytest.MonkeyPatch,
    name: str,
    files: dict[str, bytes],
    mirror: LocalMirror,
    *,
    wrong_hash_for: str | None = None,
    serve: bool = True,
    registry_mirror: str | None = None,
) -> dict[str, str]:
    """Put ``files`` on ``mirror`` and register them as dataset ``name`` (real md5s, except a wrong
    one for ``wrong_hash_for``). Files ending in ``.h5.gz`` are registered with ``gunzip=True``.
    Returns the registered hashes."""
    if serve:
        for fname, data in files.items():
            mirror.put(fname, data)
    return register_source(monkeypatch, name, files, registry_mirror or mirror.url, wrong_hash_for=wrong_hash_for)


def register_source(
    monkeypatch: pytest.MonkeyPatch,
    name: str,
    files: dict[str, bytes],
    url: str = "http://127.0.0.1:9/no-mirror",
    *,
    wrong_hash_for: str | None = None,
) -> dict[str, str]:
    """Register ``files`` as dataset ``name`` with their real md5s (a wrong one for ``wrong_hash_for``),
    served from ``url``, without serving them; returns the registered hashes."""
    hashes = {fname: md5_of(data + b"corrupt") if fname == wrong_hash_for else md5_of(data) for fname, data in files.items()}
    entries = tuple(registry.RemoteFile(fname, known, gunzip=fname.endswith(".h5.gz")) for fname, known in hashes.items())
    monkeypatch.setitem(registry.REGISTRY, name, registry.DatasetSource(name=name, mirror=url, files=entries, description=f"fake {name}"))
    return hashes


def write_local(root: Path, name: str, files: dict[str, bytes]) -> Path:
    """Write ``files`` into the dataset folder ``root / name`` (as if copied there by hand); return it."""
    folder = root / name
    folder.mkdir(parents=True, exist_ok=True)
    for fname, data in files.items():
        (folder / fname).write_bytes(data)
    return folder


def _gz(data: bytes) -> bytes:
    return gzip.compress(data, mtime=0)


def _digit_images(labels: np.ndarray, rng: np.random.Generator, size: int = 28) -> np.ndarray:
    """uint8 ``(N, size, size)``: black background with a bright block whose place depends on the label."""
    n = labels.shape[0]
    images = np.zeros((n, size, size), dtype=np.uint8)
    for i, lab in enumerate(labels):
        r, c = 4 + (lab % 5) * 3, 4 + (lab // 5) * 8
        images[i, r : r + 8, c : c + 6] = rng.integers(128, 256, size=(8, 6), dtype=np.uint8)
    return images


def fake_mnist(n_train: int = 200, n_test: int = 100, seed: int = 0) -> dict[str, bytes]:
    """The four gzipped IDX files of MNIST with ``n_train`` / ``n_test`` digits (labels cycle 0..9)."""
    rng = np.random.default_rng(seed)
    out = {}
    for prefix, n in (("train", n_train), ("t10k", n_test)):
        labels = (np.arange(n) % 10).astype(np.uint8)
        rng.shuffle(labels)
        out[f"{prefix}-images-idx3-ubyte.gz"] = _gz(encode_idx(_digit_images(labels, rng)))
        out[f"{prefix}-labels-idx1-ubyte.gz"] = _gz(encode_idx(labels))
    return out


def _tar_gz(members: dict[str, bytes]) -> bytes:
    buf = io.BytesIO()
    with tarfile.open(fileobj=buf, mode="w:gz") as tar:
        for name, data in members.items():
            info = tarfile.TarInfo(name)
            info.size = len(data)
            info.mtime = 0
            tar.addfile(info, io.BytesIO(data))
    return buf.getvalue()


def fake_cifar10(per_batch: int = 20, n_test: int = 20, seed: int = 0) -> dict[str, bytes]:
    """``cifar-10-python.tar.gz`` with five training batches of ``per_batch`` images and a test batch."""
    rng = np.random.default_rng(seed)

    def batch(n: int, label: str) -> bytes:
        labels = [int(v) for v in rng.permutation(np.arange(n) % 10)]
        data = rng.integers(0, 256, size=(n, 3072), dtype=np.uint8)
        return pickle.dumps({"batch_label": label, "labels": labels, "data": data, "filenames": [f"{label}_{i}.png" for i in range(n)]}, protocol=2)

    members = {f"cifar-10-batches-py/data_batch_{i}": batch(per_batch, f"training batch {i} of 5") for i in range(1, 6)}
    members["cifar-10-batches-py/test_batch"] = batch(n_test, "testing batch 1 of 1")
    members["cifar-10-batches-py/batches.meta"] = pickle.dumps({"label_names": [f"class{i}" for i in range(10)]}, protocol=2)
    return {"cifar-10-python.tar.gz": _tar_gz(members)}


def fake_cifar100(n_train: int = 200, n_test: int = 100, seed: int = 0) -> dict[str, bytes]:
    """``cifar-100-python.tar.gz`` with ``train`` and ``test`` (fine labels cycle 0..99, coarse = fine // 5)."""
    rng = np.random.default_rng(seed)

    def batch(n: int) -> bytes:
        fine = rng.permutation(np.arange(n) % 100)
        data = rng.integers(0, 256, size=(n, 3072), dtype=np.uint8)
        return pickle.dumps({"fine_labels": [int(v) for v in fine], "coarse_labels": [int(v) // 5 for v in fine], "data": data}, protocol=2)

    return {"cifar-100-python.tar.gz": _tar_gz({"cifar-100-python/train": batch(n_train), "cifar-100-python/test": batch(n_test), "cifar-100-python/meta": pickle.dumps({}, protocol=2)})}


def fake_pcam(n: int = 6, size: int = 96, seed: int = 0) -> dict[str, bytes]:
    """The six gzipped PCam HDF5 files (``x`` uint8 ``(n, size, size, 3)``, ``y`` uint8 ``(n, 1, 1, 1)``)."""
    import h5py

    rng = np.random.default_rng(seed)
    out = {}
    for split, offset in (("train", 0), ("valid", 1), ("test", 2)):
        x = rng.integers(0, 256, size=(n, size, size, 3), dtype=np.uint8)
        x[:, 0, 0, 0] = np.arange(n) + 10 * offset  # a marker: row i of split s has x[i, 0, 0, 0] == i + 10 s
        y = (np.arange(n) % 2).astype(np.uint8).reshape(n, 1, 1, 1)
        for key, arr in (("x", x), ("y", y)):
            buf = io.BytesIO()
            with h5py.File(buf, "w") as fh:
                fh.create_dataset(key, data=arr)
            out[f"camelyonpatch_level_2_split_{split}_{key}.h5.gz"] = _gz(buf.getvalue())
    return out

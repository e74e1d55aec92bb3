"""Verified downloads (against a local HTTP mirror), CIFAR/PCam parsing, the ``equiv data`` CLI."""

from __future__ import annotations

import gzip
import re
import sys

import numpy as np
import pytest
import torch

from data_server import data_server, fake_cifar10, fake_cifar100, fake_mnist, fake_pcam, install_source  # noqa: F401 - fixture
from equiv.cli import main
from equiv.data import DATASET_NAMES, REGISTRY, cifar10, cifar100, download, pcam
from equiv.data.idx import read_idx
from equiv.data.integrity import MANIFEST_NAME
from equiv.data.registry import resolve_mirror


@pytest.fixture
def root(tmp_path):
    """The data root of a test (the local mirror's folder is a sibling, tmp_path / "mirror")."""
    return tmp_path / "root"


def _files_under(path):
    return sorted(p for p in path.rglob("*") if p.is_file()) if path.exists() else []


def test_registry_lists_real_looking_checksums_for_every_dataset():
    assert set(DATASET_NAMES) == set(REGISTRY)
    for name in DATASET_NAMES:
        src = REGISTRY[name]
        assert src.mirror.startswith("https://")
        assert src.files
        for f in src.files:
            assert re.fullmatch(r"md5:[0-9a-f]{32}", f.known_hash), f
    assert len({f.known_hash for s in REGISTRY.values() for f in s.files}) == 4 + 1 + 1 + 6


def test_download_success_verifies_and_parses(root, data_server, monkeypatch):
    files = fake_mnist(n_train=40, n_test=20)
    install_source(monkeypatch, "mnist", files, data_server)
    paths = download("mnist", root)
    assert [p.name for p in paths] == list(files)
    for p in paths:
        assert p.parent == root / "mnist" and p.read_bytes() == files[p.name]
    assert read_idx(root / "mnist" / "train-images-idx3-ubyte.gz").shape == (40, 28, 28)
    assert _files_under(root) == sorted(paths)  # no temporary files left
    n_requests = len(data_server.requests)
    download("mnist", root)  # already present and verified: nothing fetched again
    assert len(data_server.requests) == n_requests


def test_checksum_mismatch_raises_and_leaves_no_file(root, data_server, monkeypatch):
    install_source(monkeypatch, "mnist", fake_mnist(n_train=20, n_test=10), data_server, wrong_hash_for="t10k-images-idx3-ubyte.gz")
    with pytest.raises(ValueError) as info:
        download("mnist", root)
    assert "checksum mismatch" in str(info.value) and "t10k-images-idx3-ubyte.gz" in str(info.value) and "\n" not in str(info.value)
    names = [p.name for p in _files_under(root)]
    assert "t10k-images-idx3-ubyte.gz" not in names
    assert not [n for n in names if n.endswith(".tmp") or n.startswith("tmp")]


def test_only_the_corrupt_file_is_missing_after_a_mismatch(root, data_server, monkeypatch):
    install_source(monkeypatch, "cifar10", fake_cifar10(per_batch=10, n_test=10), data_server, wrong_hash_for="cifar-10-python.tar.gz")
    with pytest.raises(ValueError, match="checksum mismatch"):
        download("cifar10", root)
    assert _files_under(root) == []


def test_mirror_from_environment_and_argument(root, data_server, monkeypatch):
    install_source(monkeypatch, "mnist", fake_mnist(n_train=20, n_test=10), data_server, registry_mirror="http://127.0.0.1:9/unreachable")
    monkeypatch.setenv("EQUIV_DATA_MIRROR", data_server.url + "/")
    assert resolve_mirror("mnist") == data_server.url
    assert len(download("mnist", root / "a")) == 4
    assert resolve_mirror("mnist", "https://example.org/x/") == "https://example.org/x"  # argument wins
    with pytest.raises(ValueError, match="'ftp:/bad'"):
        resolve_mirror("mnist", "ftp:/bad")


def test_http_error_is_a_connection_error(root, data_server, monkeypatch):
    install_source(monkeypatch, "mnist", fake_mnist(n_train=20, n_test=10), data_server, serve=False)
    with pytest.raises(ConnectionError, match="404"):
        download("mnist", root)
    assert _files_under(root) == []


def test_unknown_dataset_is_a_value_error_listing_the_names(root):
    with pytest.raises(ValueError, match="'imagenet'.*cifar10, cifar100, mnist, pcam"):
        download("imagenet", root)


def test_cifar10_download_and_parse(root, data_server, monkeypatch):
    install_source(monkeypatch, "cifar10", fake_cifar10(per_batch=20, n_test=30), data_server)
    splits = cifar10(root, val_size=20, seed=1, download=True)
    assert splits.sizes == {"train": 80, "val": 20, "test": 30}
    assert splits.train[0].shape[1:] == (3, 32, 32) and splits.train[0].dtype == torch.float32
    assert 0.0 <= float(splits.train[0].min()) and float(splits.train[0].max()) <= 1.0
    assert torch.bincount(splits.val[1], minlength=10).tolist() == [2] * 10
    assert splits.background is None and len(splits.mean) == 3
    with pytest.raises(ValueError, match="no uniform background"):
        _ = splits.fill
    rows = set(splits.indices["train"].tolist()) | set(splits.indices["val"].tolist())
    assert rows == set(range(100))


def test_cifar_rows_are_the_pickled_pixels(root, data_server, monkeypatch):
    import io
    import pickle
    import tarfile

    files = fake_cifar10(per_batch=10, n_test=10)
    install_source(monkeypatch, "cifar10", files, data_server)
    download("cifar10", root)
    splits = cifar10(root, val_size=10)
    with tarfile.open(fileobj=io.BytesIO(files["cifar-10-python.tar.gz"])) as tar:
        batch3 = pickle.load(tar.extractfile("cifar-10-batches-py/data_batch_3"), encoding="latin1")
    row = 2 * 10 + 4  # sample 4 of batch 3
    pos = [i for i, r in enumerate(splits.indices["train"].tolist() + splits.indices["val"].tolist()) if r == row][0]
    x = torch.cat([splits.train[0], splits.val[0]])[pos]
    assert torch.equal(x, torch.as_tensor(batch3["data"][4].reshape(3, 32, 32)).float() / 255)


def test_cifar100_fine_and_coarse(root, data_server, monkeypatch):
    install_source(monkeypatch, "cifar100", fake_cifar100(n_train=200, n_test=100), data_server)
    download("cifar100", root)
    fine = cifar100(root, val_size=100)
    coarse = cifar100(root, val_size=100, labels="coarse")
    assert fine.num_classes == 100 and coarse.num_classes == 20
    assert torch.bincount(fine.val[1], minlength=100).tolist() == [1] * 100
    assert torch.equal(coarse.test[1], fine.test[1] // 5)
    with pytest.raises(ValueError, match="'superfine'"):
        cifar100(root, labels="superfine")


def test_cifar_refuses_pickles_with_foreign_objects(root, data_server, monkeypatch):
    import io
    import pickle
    import tarfile

    class Evil:
        def __reduce__(self):
            return (print, ("pwned",))

    buf = io.BytesIO()
    payload = pickle.dumps({"data": Evil(), "labels": []}, protocol=2)
    with tarfile.open(fileobj=buf, mode="w:gz") as tar:
        for name in [f"cifar-10-batches-py/data_batch_{i}" for i in range(1, 6)] + ["cifar-10-batches-py/test_batch"]:
            info = tarfile.TarInfo(name)
            info.size = len(payload)
            tar.addfile(info, io.BytesIO(payload))
    install_source(monkeypatch, "cifar10", {"cifar-10-python.tar.gz": buf.getvalue()}, data_server)
    download("cifar10", root)
    with pytest.raises(ValueError, match="refusing to unpickle .*print"):
        cifar10(root, val_size=0)


def test_pcam_download_decompress_and_parse(root, data_server, monkeypatch):
    files = fake_pcam(n=6)
    install_source(monkeypatch, "pcam", files, data_server)
    paths = download("pcam", root)
    assert sorted(p.name for p in paths) == sorted(n[: -len(".gz")] for n in files)
    manifest = root / "pcam" / MANIFEST_NAME  # the sha256 of each decompressed file, recorded at decompression
    assert _files_under(root) == sorted([*paths, manifest])  # archives removed after verified decompression
    for p in paths:
        assert p.read_bytes() == gzip.decompress(files[p.name + ".gz"])
    splits = pcam(root)
    assert splits.sizes == {"train": 6, "val": 6, "test": 6}
    assert splits.train[0].shape == (6, 3, 96, 96) and splits.num_classes == 2
    assert splits.val[1].tolist() == [0, 1, 0, 1, 0, 1]
    # row i of split s carries the marker i + 10 s in pixel (0, 0) of channel 0
    for s, offset in (("train", 0), ("val", 1), ("test", 2)):
        assert (splits.split(s)[0][:, 0, 0, 0] * 255).round().tolist() == [float(i + 10 * offset) for i in range(6)]
    sub = pcam(root, max_samples={"train": 3}, seed=4)
    rows = sub.indices["train"].tolist()
    assert sub.sizes == {"train": 3, "val": 6, "test": 6} and rows == sorted(rows)
    assert (sub.train[0][:, 0, 0, 0] * 255).round().tolist() == [float(r) for r in rows]
    with pytest.raises(ValueError, match="'holdout'"):
        pcam(root, max_samples={"holdout": 3})


def test_pcam_without_h5py_says_how_to_install(root, monkeypatch):
    monkeypatch.setitem(sys.modules, "h5py", None)
    with pytest.raises(ImportError, match=r"pip install equiv\[pcam\]"):
        pcam(root)


@pytest.mark.parametrize(
    "loader,name",
    [(lambda root: cifar10(root), "cifar10"), (lambda root: cifar100(root), "cifar100"), (lambda root: pcam(root), "pcam")],
)
def test_missing_files_name_the_download_command(root, loader, name):
    with pytest.raises(FileNotFoundError) as info:
        loader(root)
    assert f"equiv data download {name} --root {root}" in str(info.value)
    assert "\n" not in str(info.value)


def test_cli_download_success_and_failures(root, data_server, monkeypatch, capsys):
    install_source(monkeypatch, "mnist", fake_mnist(n_train=20, n_test=10), data_server, registry_mirror="http://127.0.0.1:9/unreachable")
    assert main(["data", "download", "mnist", "--root", str(root), "--mirror", data_server.url]) == 0
    out = capsys.readouterr().out
    assert out.count("verified ") == 4 and str(root / "mnist") in out
    assert np.asarray(read_idx(root / "mnist" / "t10k-labels-idx1-ubyte.gz")).shape == (10,)

    install_source(monkeypatch, "cifar10", fake_cifar10(per_batch=10, n_test=10), data_server, wrong_hash_for="cifar-10-python.tar.gz")
    assert main(["data", "download", "cifar10", "--root", str(root)]) == 2
    assert "checksum mismatch" in capsys.readouterr().err
    assert not (root / "cifar10" / "cifar-10-python.tar.gz").exists()

    install_source(monkeypatch, "cifar100", fake_cifar100(), data_server, serve=False)
    assert main(["data", "download", "cifar100", "--root", str(root)]) == 1
    assert "could not download" in capsys.readouterr().err

    with pytest.raises(SystemExit):
        main(["data", "download", "imagenet"])
    assert "invalid choice" in capsys.readouterr().err


@pytest.mark.parametrize("umask", [0o022, 0o002])
def test_downloaded_and_decompressed_files_follow_the_umask(root, data_server, monkeypatch, umask):
    import os
    import stat

    old = os.umask(umask)
    try:
        install_source(monkeypatch, "mnist", fake_mnist(n_train=20, n_test=10), data_server)
        install_source(monkeypatch, "pcam", fake_pcam(), data_server)
        files = download("mnist", root) + list(download("pcam", root))
        for path in files:
            assert stat.S_IMODE(path.stat().st_mode) == 0o666 & ~umask, (path, oct(path.stat().st_mode))
    finally:
        os.umask(old)

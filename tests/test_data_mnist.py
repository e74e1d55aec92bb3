"""equiv.data.mnist: the embedded subset (offline) and the full IDX files (local fixtures)."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from data_server import data_server, fake_mnist, install_source, register_source, write_local  # noqa: F401 - fixture
from equiv.data import EMBEDDED_SIZES, mnist
from equiv.data.idx import encode_idx, read_idx
from equiv.data.mnist import load_embedded_mnist
from equiv.data.splits import stratified_split

SPLITS = ("train", "val", "test")


@pytest.fixture(scope="module")
def embedded():
    return mnist()


def test_embedded_loads_offline_with_documented_sizes(embedded):
    assert embedded.sizes == dict(zip(SPLITS, EMBEDDED_SIZES)) == {"train": 3000, "val": 1000, "test": 1000}
    assert embedded.source == "embedded" and embedded.dataset == "mnist" and embedded.num_classes == 10
    assert embedded.background == (0.0,)
    for name in SPLITS:
        x, y = embedded.split(name)
        assert x.dtype == torch.float32 and x.shape[1:] == (1, 28, 28)
        assert y.dtype == torch.int64
        assert float(x.min()) == 0.0 and float(x.max()) <= 1.0 and float(x.max()) > 0.9
        assert sorted(torch.unique(y).tolist()) == list(range(10))


def test_embedded_splits_are_disjoint_and_match_their_source_rows(embedded):
    images, labels, _ = load_embedded_mnist()
    rows = {name: embedded.indices[name].numpy() for name in SPLITS}
    union = np.concatenate(list(rows.values()))
    assert len(np.unique(union)) == union.size == 5000  # no row in two splits, none twice
    assert union.min() >= 0 and union.max() < 5000
    for name in SPLITS:
        x, y = embedded.split(name)
        assert torch.equal(x, torch.as_tensor(images[rows[name]]).float() / 255)
        assert torch.equal(y, torch.as_tensor(labels[rows[name]]))
    # the file is sorted by label: the splits must not be
    assert (np.diff(embedded.train[1].numpy()) != 0).sum() > 1000


def test_embedded_splits_are_stratified(embedded):
    for name, size in zip(SPLITS, EMBEDDED_SIZES):
        counts = torch.bincount(embedded.split(name)[1], minlength=10)
        assert counts.tolist() == [size // 10] * 10


def test_odd_sizes_stay_within_one_sample_of_proportional():
    splits = mnist(seed=3, train_size=1234, val_size=567, test_size=89)
    assert splits.sizes == {"train": 1234, "val": 567, "test": 89}
    for name, size in splits.sizes.items():
        counts = torch.bincount(splits.split(name)[1], minlength=10).double()
        assert (counts - size / 10).abs().max() < 1.0


def test_stratified_split_on_unbalanced_labels():
    labels = np.repeat(np.arange(4), [7, 50, 13, 30])
    parts = stratified_split(labels, [41, 30, 9], torch.Generator().manual_seed(0))
    assert [p.size for p in parts] == [41, 30, 9]
    assert len(np.unique(np.concatenate(parts))) == 80
    counts = np.bincount(labels)
    for p, size in zip(parts, [41, 30, 9]):
        assert np.abs(np.bincount(labels[p], minlength=4) - size * counts / counts.sum()).max() < 1.0


def test_same_seed_same_splits_other_seed_other_splits(embedded):
    again = mnist(seed=0)
    other = mnist(seed=1)
    for name in SPLITS:
        assert torch.equal(embedded.indices[name], again.indices[name])
        assert torch.equal(embedded.split(name)[0], again.split(name)[0])
        assert not torch.equal(embedded.indices[name], other.indices[name])
    assert set(embedded.indices["test"].tolist()) != set(other.indices["test"].tolist())


def test_training_statistics_are_those_of_the_training_split(embedded):
    x = embedded.train[0].double()
    assert embedded.mean[0] == pytest.approx(float(x.mean()), rel=1e-9)
    assert embedded.std[0] == pytest.approx(float(x.std(unbiased=False)), rel=1e-9)
    assert 0.10 < embedded.mean[0] < 0.16 and 0.28 < embedded.std[0] < 0.34  # MNIST-like
    meta = embedded.metadata()
    assert meta["sizes"]["train"] == 3000 and meta["train_mean"] == [embedded.mean[0]] and len(meta["details"]["file_sha256"]) == 64


@pytest.mark.parametrize(
    "kwargs,needle",
    [
        ({"source": "internet"}, "'internet'"),
        ({"train_size": 4000, "val_size": 1000, "test_size": 1000}, "6000"),
        ({"val_size": -1}, "val_size=-1"),
        ({"train_size": 0}, "train_size=0"),
        ({"test_size": 10.5}, "test_size=10.5"),
        ({"val_size": True}, "val_size=True"),
        ({"seed": -3}, "seed=-3"),
        ({"protocol": "paper"}, "protocol='paper'"),
        ({"source": "full", "protocol": "sideways"}, "'sideways'"),
        ({"download": True}, "download=True"),
    ],
)
def test_bad_parameters_raise_value_error_naming_the_value(kwargs, needle):
    source = kwargs.pop("source", "embedded")
    with pytest.raises(ValueError) as info:
        mnist(source, **kwargs)
    assert needle in str(info.value) and "allowed" in str(info.value) and "\n" not in str(info.value)


def test_idx_round_trip_and_corrupt_file(tmp_path):
    arr = np.arange(24, dtype=np.uint8).reshape(2, 3, 4)
    (tmp_path / "a.idx").write_bytes(encode_idx(arr))
    assert np.array_equal(read_idx(tmp_path / "a.idx"), arr)
    (tmp_path / "b.idx").write_bytes(encode_idx(arr)[:-1])
    with pytest.raises(ValueError, match="truncated"):
        read_idx(tmp_path / "b.idx")
    (tmp_path / "c.idx").write_bytes(b"\x01\x02\x08\x01" + b"\x00" * 8)
    with pytest.raises(ValueError, match="not an IDX file"):
        read_idx(tmp_path / "c.idx")


def _write_fake_mnist(root, monkeypatch, **kwargs):
    """Put fake IDX files in ``root/mnist`` and register their checksums (the loader verifies them)."""
    files = fake_mnist(**kwargs)
    register_source(monkeypatch, "mnist", files)
    write_local(root, "mnist", files)


def test_full_standard_protocol_from_local_files(tmp_path, monkeypatch):
    _write_fake_mnist(tmp_path, monkeypatch, n_train=200, n_test=100)
    splits = mnist("full", root=tmp_path, val_size=50, seed=5)
    assert splits.sizes == {"train": 150, "val": 50, "test": 100}
    assert splits.details["protocol"] == "standard"
    assert torch.bincount(splits.val[1], minlength=10).tolist() == [5] * 10
    assert torch.equal(splits.indices["test"], torch.arange(100))
    train_images = read_idx(tmp_path / "mnist" / "train-images-idx3-ubyte.gz")
    rows = splits.indices["val"].numpy()
    assert torch.equal(splits.val[0][:, 0], torch.as_tensor(train_images[rows]).float() / 255)
    assert not set(rows) & set(splits.indices["train"].tolist())
    again = mnist("full", root=tmp_path, val_size=50, seed=5)
    assert torch.equal(again.indices["train"], splits.indices["train"])


def test_full_paper_protocol_trains_on_the_test_file(tmp_path, monkeypatch):
    _write_fake_mnist(tmp_path, monkeypatch, n_train=200, n_test=100)
    splits = mnist("full", root=tmp_path, protocol="paper", val_size=20, test_size=50)
    assert splits.sizes == {"train": 80, "val": 20, "test": 50}
    t10k = read_idx(tmp_path / "mnist" / "t10k-images-idx3-ubyte.gz")
    assert torch.equal(splits.train[0][:, 0], torch.as_tensor(t10k[splits.indices["train"].numpy()]).float() / 255)
    assert torch.bincount(splits.test[1], minlength=10).tolist() == [5] * 10


def test_full_sizes_that_do_not_fit_the_files(tmp_path, monkeypatch):
    _write_fake_mnist(tmp_path, monkeypatch, n_train=200, n_test=100)
    with pytest.raises(ValueError, match="150 \\+ 100"):
        mnist("full", root=tmp_path, train_size=150, val_size=100)
    with pytest.raises(ValueError, match="test_size=101"):
        mnist("full", root=tmp_path, val_size=10, test_size=101)


def test_full_missing_files_name_the_download_command(tmp_path, monkeypatch):
    monkeypatch.setenv("EQUIV_DATA", str(tmp_path / "envroot"))
    with pytest.raises(FileNotFoundError) as info:
        mnist("full", root=tmp_path / "nothing")
    msg = str(info.value)
    assert "train-images-idx3-ubyte.gz" in msg and f"equiv data download mnist --root {tmp_path / 'nothing'}" in msg and "\n" not in msg
    with pytest.raises(FileNotFoundError, match=f"--root {tmp_path / 'envroot'}"):
        mnist("full")  # default root from $EQUIV_DATA


def test_full_download_true_fetches_from_the_mirror(tmp_path, data_server, monkeypatch):
    install_source(monkeypatch, "mnist", fake_mnist(n_train=100, n_test=50), data_server)
    splits = mnist("full", root=tmp_path / "root", val_size=10, download=True)
    assert splits.sizes == {"train": 90, "val": 10, "test": 50}
    assert sorted(data_server.requests) == sorted(f"/{n}" for n in fake_mnist())

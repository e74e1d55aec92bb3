"""equiv.data.preprocess and ImageSplits.prepared: resize, statistics, normalisation, batches."""

from __future__ import annotations

import pytest
import torch
import torch.nn.functional as F

from equiv.data import INTERPOLATION, channel_stats, mnist, normalize, resize


@pytest.fixture(scope="module")
def splits():
    return mnist()


def test_resize_is_the_documented_bilinear_antialiased_interpolation(splits):
    x = splits.train[0][:16]
    assert INTERPOLATION == {"mode": "bilinear", "antialias": True, "align_corners": False}
    for size in (27, 29, 33):
        out = resize(x, size)
        assert out.shape == (16, 1, size, size)
        assert torch.equal(out, F.interpolate(x, size=(size, size), mode="bilinear", antialias=True, align_corners=False))
        assert float(out.min()) >= 0.0 and float(out.max()) <= 1.0
        assert float(out[:, :, 0, :].abs().max()) == 0.0  # the black border stays exactly black
    assert resize(x, 28) is x
    assert resize(x, (20, 24)).shape == (16, 1, 20, 24)


def test_resize_and_normalize_reject_bad_arguments(splits):
    x = splits.train[0][:2]
    for bad in (0, -3, 2.5, (3,), "28", True):
        with pytest.raises(ValueError, match="allowed"):
            resize(x, bad)
    with pytest.raises(ValueError, match="floating-point"):
        resize((x * 255).to(torch.uint8), 27)
    with pytest.raises(ValueError, match="<= 0"):
        normalize(x, 0.1, 0.0)
    with pytest.raises(ValueError, match="3 values for 1 channels"):
        normalize(x, [0.1, 0.2, 0.3], 1.0)


def test_channel_stats_match_torch():
    x = torch.rand(50, 3, 5, 5, generator=torch.Generator().manual_seed(0))
    mean, std = channel_stats(x, chunk=7)
    assert torch.allclose(torch.tensor(mean, dtype=torch.float64), x.double().mean(dim=(0, 2, 3)), atol=1e-12)
    assert torch.allclose(torch.tensor(std, dtype=torch.float64), x.double().std(dim=(0, 2, 3), unbiased=False), atol=1e-10)


@pytest.mark.parametrize("size", [27, 28, 29])
def test_prepared_resizes_and_normalises_with_training_statistics(splits, size):
    p = splits.prepared(size)
    assert p.normalized and p.image_size == (size, size) and p.sizes == splits.sizes
    x = p.train[0].double()
    assert abs(float(x.mean())) < 1e-5 and abs(float(x.std(unbiased=False)) - 1.0) < 1e-5
    raw_stats = channel_stats(resize(splits.train[0], size))
    assert p.mean == raw_stats[0] and p.std == raw_stats[1]
    assert torch.equal(p.test[0], normalize(resize(splits.test[0], size), p.mean, p.std))
    assert torch.equal(p.train[1], splits.train[1])
    bg = p.fill
    assert bool((p.val[0] == bg[0]).any()) and bool((p.test[0] == bg[0]).any())
    assert p.metadata()["details"]["input_size"] == [size, size]
    with pytest.raises(ValueError, match="already normalised"):
        p.prepared(size)


def test_prepared_without_normalisation_and_device(splits):
    p = splits.prepared(29, normalize=False, device="cpu")
    assert not p.normalized and float(p.fill[0]) == 0.0 and p.train[0].device.type == "cpu"
    assert float(p.train[0].min()) == 0.0


def test_batches_cover_the_split_once(splits):
    seen = []
    for x, y, pos in splits.batches("val", 300, shuffle=True, generator=torch.Generator().manual_seed(0)):
        assert torch.equal(x, splits.val[0][pos]) and torch.equal(y, splits.val[1][pos])
        seen.append(pos)
    assert sorted(torch.cat(seen).tolist()) == list(range(1000))
    assert [len(p) for *_, p in splits.batches("val", 300, drop_last=True)] == [300, 300, 300]
    with pytest.raises(ValueError, match="'validation'"):
        splits.split("validation")
    with pytest.raises(ValueError, match="batch_size=0"):
        next(splits.batches("val", 0))

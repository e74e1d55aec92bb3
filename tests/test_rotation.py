"""equiv.rotation: exact quarter turns, bilinear rotations with an exact background fill, errors."""

from __future__ import annotations

import math

import pytest
import torch

from equiv.rotation import quarter_turns, rotate, rotate_batch_angles


@pytest.fixture
def x() -> torch.Tensor:
    return torch.rand(3, 2, 9, 9, generator=torch.Generator().manual_seed(0))


@pytest.mark.parametrize("angle,k", [(0, 0), (90, 1), (180, 2), (270, 3), (-90, 3), (360, 0), (450, 1), (-180.0, 2), (720.0, 0)])
def test_multiples_of_90_are_bit_identical_to_rot90(x, angle, k):
    expected = torch.rot90(x, k, dims=(-2, -1))
    assert torch.equal(rotate(x, angle), expected)
    assert torch.equal(rotate(x[0], angle), expected[0])  # (C, H, W)
    assert torch.equal(rotate(x[0, 0], angle), expected[0, 0])  # (H, W)
    assert torch.equal(rotate(x, torch.tensor(float(angle))), expected)  # 0-d tensor


def test_quarter_turns_of_integer_images_and_non_square_scalar():
    img = torch.arange(12, dtype=torch.uint8).reshape(1, 1, 3, 4)
    assert torch.equal(rotate(img, 90), torch.rot90(img, 1, dims=(-2, -1)))
    assert rotate(img, 90).shape == (1, 1, 4, 3)
    # counter-clockwise as displayed: the top-right pixel moves to the top-left
    small = torch.tensor([[1.0, 2.0], [3.0, 4.0]])
    assert torch.equal(rotate(small, 90), torch.tensor([[2.0, 4.0], [1.0, 3.0]]))


def test_quarter_turns_helper():
    assert quarter_turns([0, 90, -90, 45, 720, 89.999]).tolist() == [0, 1, 3, -1, 0, -1]


@pytest.mark.parametrize("k", [1, 2, 3])
def test_bilinear_path_at_multiples_of_90_is_close_to_rot90(x, k):
    expected = torch.rot90(x, k, dims=(-2, -1))
    forced = rotate(x, 90 * k, force_bilinear=True)
    assert not torch.equal(forced, expected) or k == 2  # it really took the interpolating path (round-off)
    assert torch.allclose(forced, expected, atol=1e-5)
    nudged = rotate(x, 90 * k + 1e-9)
    assert torch.allclose(nudged, expected, atol=1e-5)


def test_bilinear_on_non_square_images_keeps_geometry():
    img = torch.rand(2, 1, 6, 10, generator=torch.Generator().manual_seed(1))
    assert torch.allclose(rotate(img, 180, force_bilinear=True), torch.rot90(img, 2, dims=(-2, -1)), atol=1e-5)


def _outside_mask(h: int, w: int, degrees: float, margin: float = 1.0) -> torch.Tensor:
    """Output pixels whose sampling point lies more than ``margin`` pixels outside the input."""
    ys, xs = torch.meshgrid(torch.arange(h, dtype=torch.float64), torch.arange(w, dtype=torch.float64), indexing="ij")
    xc, yc = xs - (w - 1) / 2, ys - (h - 1) / 2
    c, s = math.cos(math.radians(degrees)), math.sin(math.radians(degrees))
    x_in, y_in = c * xc - s * yc, s * xc + c * yc
    return (x_in.abs() > w / 2 + margin) | (y_in.abs() > h / 2 + margin)


@pytest.mark.parametrize("degrees", [45.0, 30.0, -125.0])
def test_background_outside_the_rotated_image_is_exactly_fill(degrees):
    img = torch.rand(2, 3, 15, 15, generator=torch.Generator().manual_seed(2)) * 5 - 2
    fill = torch.tensor([-0.4242640687, 0.1, 2.5])
    out = rotate(img, degrees, fill=fill)
    mask = _outside_mask(15, 15, degrees)
    assert mask.sum() >= 8
    for ch in range(3):
        region = out[:, ch][:, mask]
        assert torch.equal(region, torch.full_like(region, float(fill[ch])))
    inside = ~_outside_mask(15, 15, degrees, margin=-2.0)
    assert not torch.equal(out[:, 0][:, inside], torch.full_like(out[:, 0][:, inside], float(fill[0])))


def test_constant_image_of_the_fill_value_stays_exactly_constant():
    value = -0.4242640687
    img = torch.full((1, 1, 11, 11), value)
    assert torch.equal(rotate(img, 37.0, fill=value), img)


def test_per_sample_angles(x):
    mixed = rotate(x, [90, 45.0, 180])
    assert torch.equal(mixed[0], torch.rot90(x[0], 1, dims=(-2, -1)))
    assert torch.equal(mixed[2], torch.rot90(x[2], 2, dims=(-2, -1)))
    assert torch.allclose(mixed[1], rotate(x[1:2], 45.0)[0], atol=1e-6)
    quarter = rotate(x, torch.tensor([0.0, 270.0, -90.0]))
    assert torch.equal(quarter[1], torch.rot90(x[1], 3, dims=(-2, -1)))
    assert torch.equal(quarter[2], torch.rot90(x[2], 3, dims=(-2, -1)))
    assert torch.equal(quarter[0], x[0])


def test_rotate_batch_angles_matches_rotate(x):
    angles = [0, 10, 90, 200, 270]
    out = rotate_batch_angles(x, angles, fill=0.25)
    b = x.shape[0]
    assert out.shape == (len(angles) * b, 2, 9, 9)
    for a, angle in enumerate(angles):
        block = out[a * b : (a + 1) * b]
        if angle % 90 == 0:
            assert torch.equal(block, torch.rot90(x, angle // 90, dims=(-2, -1)))
        else:
            assert torch.allclose(block, rotate(x, angle, fill=0.25), atol=1e-6)


def _one_line_value_error(call, *needles: str) -> None:
    with pytest.raises(ValueError) as info:
        call()
    msg = str(info.value)
    assert "\n" not in msg
    for needle in needles:
        assert needle in msg, msg


def test_bad_inputs_raise_one_line_value_errors(x):
    _one_line_value_error(lambda: rotate(torch.rand(5), 90), "rank 1", "allowed")
    _one_line_value_error(lambda: rotate(torch.rand(1, 1, 1, 4, 4), 90), "rank 5", "allowed")
    _one_line_value_error(lambda: rotate(x, float("nan")), "nan", "finite")
    _one_line_value_error(lambda: rotate(x, [0.0, float("inf"), 1.0]), "inf", "finite")
    _one_line_value_error(lambda: rotate(x, [0, 90]), "2 angles", "batch of 3", "allowed")
    _one_line_value_error(lambda: rotate(x, [[0, 90, 1]]), "allowed")
    _one_line_value_error(lambda: rotate(x, 45.0, fill=[0.0, 1.0, 2.0]), "3 values", "2 channels")
    _one_line_value_error(lambda: rotate(x, 45.0, fill=float("nan")), "non-finite")
    _one_line_value_error(lambda: rotate(torch.zeros(1, 1, 4, 4, dtype=torch.uint8), 45.0), "torch.uint8", "floating-point")
    _one_line_value_error(lambda: rotate(torch.rand(2, 1, 4, 6), [90, 0]), "4x6", "allowed")
    _one_line_value_error(lambda: rotate_batch_angles(x[0], [0, 90]), "(2, 9, 9)", "4-D")
    _one_line_value_error(lambda: rotate_batch_angles(x, []), "empty")

"""Image rotations: exact for multiples of 90°, bilinear with an explicit fill value otherwise.

Conventions (used everywhere in :mod:`equiv`):

- Images are ``(B, C, H, W)`` tensors (``(C, H, W)`` and ``(H, W)`` are accepted and returned in the
  same rank). Row index grows downwards, column index to the right, as displayed by ``imshow``.
- A positive angle rotates **counter-clockwise as displayed**, so ``rotate(x, 90)`` is bit-for-bit
  ``torch.rot90(x, 1, dims=(-2, -1))``.
- Angles that are exact multiples of 90° (… −90, 0, 90, 180, 270, 360 …) are applied as index
  permutations (:func:`torch.rot90`): no interpolation, no round-off, per sample when every sample has
  its own angle. This is what the equivariance experiments need (an interpolating "rotation" by 90° is
  not the group action).
- Any other angle is a bilinear resampling about the image centre (``F.affine_grid`` +
  ``F.grid_sample``, ``align_corners=False``). The area that comes from outside the input image is
  filled with ``fill``: we rotate ``x - fill`` with zero padding and add ``fill`` back, so the
  background is *exactly* ``fill`` and pixels near the border blend towards it. Pass the true
  background of the data in the space the tensor lives in (for normalised MNIST ``(0 - mean) / std``,
  never a bare 0, which would paint bright corners — a pitfall of the official code).
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Union

import torch
import torch.nn.functional as F

__all__ = ["Angles", "rotate", "rotate_batch_angles", "quarter_turns"]

#: A single angle in degrees, or one angle per sample.
Angles = Union[float, int, Sequence[float], torch.Tensor]
Fill = Union[float, int, Sequence[float], torch.Tensor]


def _as_4d(x: torch.Tensor) -> tuple[torch.Tensor, int]:
    if not isinstance(x, torch.Tensor):
        raise ValueError(f"x must be a torch.Tensor of shape (B, C, H, W), (C, H, W) or (H, W), got {type(x).__name__}")
    if x.dim() == 4:
        return x, 4
    if x.dim() == 3:
        return x.unsqueeze(0), 3
    if x.dim() == 2:
        return x.unsqueeze(0).unsqueeze(0), 2
    raise ValueError(f"x has shape {tuple(x.shape)} (rank {x.dim()}); allowed ranks are 2 (H, W), 3 (C, H, W) or 4 (B, C, H, W)")


def _restore(y: torch.Tensor, rank: int) -> torch.Tensor:
    if rank == 4:
        return y
    if rank == 3:
        return y.squeeze(0)
    return y.squeeze(0).squeeze(0)


def _angles_tensor(degrees: Angles, batch: int | None, *, name: str = "degrees") -> tuple[torch.Tensor, bool]:
    """Angles as a 1-D float64 CPU tensor and whether a single number was given.

    ``batch=None`` allows any (non-zero) number of angles (a sweep); otherwise a sequence must have
    exactly ``batch`` entries."""
    allowed = "allowed: a finite number or a 1-D sequence/tensor of finite numbers (degrees)"
    if isinstance(degrees, bool) or (isinstance(degrees, torch.Tensor) and (degrees.dtype == torch.bool or degrees.is_complex())):
        raise ValueError(f"{name}={degrees!r} is not a real number; {allowed}")
    try:
        t = degrees.detach() if isinstance(degrees, torch.Tensor) else torch.as_tensor(degrees, dtype=torch.float64)
    except (TypeError, ValueError, RuntimeError):
        raise ValueError(f"{name}={degrees!r} is not understood; {allowed}") from None
    if t.dim() > 1:
        raise ValueError(f"{name} has shape {tuple(t.shape)}; {allowed}")
    scalar = t.dim() == 0
    ang = t.to("cpu", torch.float64).reshape(-1)
    bad = ~torch.isfinite(ang)
    if bad.any():
        raise ValueError(f"{name} contains the non-finite angle {ang[bad][0].item()!r}; {allowed}")
    if ang.numel() == 0:
        raise ValueError(f"{name} is empty; {allowed}")
    if batch is not None and not scalar and ang.numel() != batch:
        raise ValueError(f"{name} has {ang.numel()} angles for a batch of {batch}; allowed: one number or exactly {batch} angles")
    return ang, scalar


def quarter_turns(degrees: Angles) -> torch.Tensor:
    """For each angle, its number of counter-clockwise quarter turns in {0, 1, 2, 3}, or -1 if the
    angle is not an exact multiple of 90°. Returns an int64 tensor (1-D, one entry per angle)."""
    ang, _ = _angles_tensor(degrees, None)
    exact = torch.remainder(ang, 90.0) == 0
    k = torch.remainder(torch.floor(ang / 90.0), 4).to(torch.int64)
    return torch.where(exact, k, torch.full_like(k, -1))


def _fill_tensor(fill: Fill, channels: int, like: torch.Tensor) -> torch.Tensor:
    """``fill`` as a ``(1, C, 1, 1)`` tensor of ``like``'s dtype and device."""
    if isinstance(fill, bool):
        raise ValueError(f"fill={fill!r} is a bool; allowed: a finite number or one finite number per channel ({channels})")
    f = torch.as_tensor(fill, dtype=torch.float64).detach().cpu().reshape(-1) if not isinstance(fill, torch.Tensor) else fill.detach().to("cpu", torch.float64).reshape(-1)
    if f.numel() not in (1, channels):
        raise ValueError(f"fill has {f.numel()} values for {channels} channels; allowed: one number or one per channel")
    if not torch.isfinite(f).all():
        raise ValueError(f"fill={f.tolist()} contains a non-finite value; allowed: finite numbers")
    return f.to(device=like.device, dtype=like.dtype).reshape(1, -1, 1, 1).expand(1, channels, 1, 1)


def _theta(ang: torch.Tensor, height: int, width: int, dtype: torch.dtype, device: torch.device) -> torch.Tensor:
    """Affine matrices ``(N, 2, 3)`` for ``F.affine_grid``: a counter-clockwise (as displayed) rotation
    about the image centre, corrected for the aspect ratio of non-square images."""
    rad = torch.deg2rad(ang.to(torch.float64))
    c, s = torch.cos(rad), torch.sin(rad)
    zero = torch.zeros_like(c)
    # Output pixel (x, y) (y down, pixel units about the centre) samples the input at
    # (c*x - s*y, s*x + c*y); in normalised coordinates x_n = x / (W/2), y_n = y / (H/2).
    row0 = torch.stack([c, -s * (height / width), zero], dim=-1)
    row1 = torch.stack([s * (width / height), c, zero], dim=-1)
    return torch.stack([row0, row1], dim=-2).to(device=device, dtype=dtype)


def _bilinear(x4: torch.Tensor, ang: torch.Tensor, fill4: torch.Tensor) -> torch.Tensor:
    """Bilinear rotation of every sample of ``x4`` by its own angle in ``ang`` (len B)."""
    _, _, h, w = x4.shape
    theta = _theta(ang, h, w, x4.dtype, x4.device)
    grid = F.affine_grid(theta, list(x4.shape), align_corners=False)
    out = F.grid_sample(x4 - fill4, grid, mode="bilinear", padding_mode="zeros", align_corners=False)
    return out + fill4


def _check_float(x4: torch.Tensor) -> None:
    if not x4.is_floating_point():
        raise ValueError(f"x has dtype {x4.dtype}; bilinear rotation needs a floating-point tensor (float16/32/64)")


def rotate(x: torch.Tensor, degrees: Angles, fill: Fill = 0.0, *, force_bilinear: bool = False) -> torch.Tensor:
    """Rotate images counter-clockwise (as displayed) by ``degrees``.

    Args:
        x: ``(B, C, H, W)``, ``(C, H, W)`` or ``(H, W)``; the output has the same rank.
        degrees: one angle for all samples, or a 1-D sequence/tensor with one angle per sample
            (``B`` angles; only allowed for 4-D input or ``B == 1``).
        fill: the value of the area that is outside the input image after a non-90° rotation: a
            number or one number per channel, in the same units as ``x`` (e.g. the normalised
            background). Ignored for multiples of 90°.
        force_bilinear: use the bilinear path even for multiples of 90° (for testing the
            interpolating path; never for experiments).

    Returns:
        The rotated tensor. Multiples of 90° are exact ``torch.rot90`` permutations (non-square
        images change shape only for a single scalar odd quarter turn); other angles are bilinear
        about the image centre with the background exactly ``fill``.

    Raises:
        ValueError: wrong rank, non-finite angle, wrong number of angles, bad fill, integer input
            that would need interpolation, or per-sample odd quarter turns of non-square images.
    """
    x4, rank = _as_4d(x)
    b, c, h, w = x4.shape
    ang, scalar = _angles_tensor(degrees, b)
    k = quarter_turns(ang) if not force_bilinear else torch.full((ang.numel(),), -1, dtype=torch.int64)
    if scalar:
        if int(k[0]) >= 0:
            return _restore(torch.rot90(x4, int(k[0]), dims=(-2, -1)), rank)
        ang, k = ang.expand(b), k.expand(b)
    if b == 0:
        return _restore(x4.clone(), rank)
    if h != w and bool(((k >= 0) & (k % 2 == 1)).any()):
        raise ValueError(
            f"per-sample odd quarter turns of non-square images ({h}x{w}) would change the shape; allowed: square images or one scalar angle"
        )
    out = torch.empty_like(x4)
    interp = (k < 0).nonzero().flatten()
    if interp.numel():
        _check_float(x4)
        sel = interp.to(x4.device)
        out[sel] = _bilinear(x4.index_select(0, sel), ang[interp], _fill_tensor(fill, c, x4))
    for turns in (0, 1, 2, 3):
        idx = (k == turns).nonzero().flatten().to(x4.device)
        if idx.numel():
            out[idx] = torch.rot90(x4.index_select(0, idx), turns, dims=(-2, -1))
    return _restore(out, rank)


def rotate_batch_angles(x: torch.Tensor, angles: Angles, fill: Fill = 0.0, *, force_bilinear: bool = False) -> torch.Tensor:
    """Every rotation of a batch by every angle, stacked angle-major: ``(len(angles) * B, C, H, W)``.

    Row ``a * B + i`` is sample ``i`` rotated by ``angles[a]``. Multiples of 90° are exact
    ``torch.rot90`` permutations; all other angles are done in a single ``grid_sample`` call (used for
    the 36-angle accuracy sweep; chunk the batch yourself if memory is tight). Same conventions and
    ``fill`` semantics as :func:`rotate`; ``x`` must be 4-D and, when an angle is an odd multiple of
    90°, square.
    """
    if not isinstance(x, torch.Tensor) or x.dim() != 4:
        shape = tuple(x.shape) if isinstance(x, torch.Tensor) else type(x).__name__
        raise ValueError(f"x has shape {shape}; rotate_batch_angles needs a 4-D (B, C, H, W) tensor")
    b, c, h, w = x.shape
    ang, _ = _angles_tensor(angles, None, name="angles")
    n = ang.numel()
    k = quarter_turns(ang) if not force_bilinear else torch.full((n,), -1, dtype=torch.int64)
    if h != w and bool((k % 2 == 1).any()):
        raise ValueError(f"an odd multiple of 90° would change the shape of non-square images ({h}x{w}); allowed: square images")
    out = x.new_empty((n * b, c, h, w))
    interp = (k < 0).nonzero().flatten()
    if interp.numel():
        _check_float(x)
        fill4 = _fill_tensor(fill, c, x)
        per_sample = ang[interp].repeat_interleave(b)
        rotated = _bilinear(x.repeat(interp.numel(), 1, 1, 1), per_sample, fill4)
        rows = (interp.repeat_interleave(b) * b + torch.arange(b).repeat(interp.numel())).to(x.device)
        out[rows] = rotated
    for a in (k >= 0).nonzero().flatten().tolist():
        out[a * b : (a + 1) * b] = torch.rot90(x, int(k[a]), dims=(-2, -1))
    return out


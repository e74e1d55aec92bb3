"""Tensor preprocessing shared by every dataset: to float, resize, per-channel statistics, normalise.

Data is held as whole tensors ``(N, C, H, W)`` (no per-image PIL pipeline):

- :func:`to_float` maps ``uint8`` pixels to float32 in [0, 1] (divide by 255).
- :func:`resize` is the one resampling used for every input size of the paper (27/28/29 for MNIST,
  32/33 for CIFAR, 96/97 for PCam, 224/225 for ImageNet-style nets): **bilinear,
  ``antialias=True``, ``align_corners=False``** (``F.interpolate``). It never overshoots (the weights
  are non-negative), so [0, 1] data stays in [0, 1] and a constant background stays exactly constant.
- :func:`channel_stats` gives the per-channel mean and (population) standard deviation, accumulated
  in float64 in chunks.
- :func:`normalize` computes ``(x - mean) / std`` per channel in ``x``'s dtype; applying it to the raw
  background value gives bit-for-bit the background of the normalised data.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import torch
import torch.nn.functional as F

from equiv.validation import is_int

__all__ = ["INTERPOLATION", "to_float", "resize", "channel_stats", "normalize", "as_size"]

#: The documented interpolation of :func:`resize`.
INTERPOLATION = {"mode": "bilinear", "antialias": True, "align_corners": False}


def as_size(size: int | Sequence[int], *, name: str = "size") -> tuple[int, int]:
    """``size`` (an int or an (H, W) pair of positive ints) as an ``(H, W)`` tuple."""
    if is_int(size):
        pair = (int(size), int(size))
    elif isinstance(size, Sequence) and len(size) == 2 and all(is_int(s) for s in size):
        pair = (int(size[0]), int(size[1]))
    else:
        raise ValueError(f"{name}={size!r} is not an image size; allowed: a positive int or a pair (H, W) of positive ints")
    if min(pair) < 1:
        raise ValueError(f"{name}={size!r} is not positive; allowed: a positive int or a pair (H, W) of positive ints")
    return pair


def to_float(images: np.ndarray | torch.Tensor) -> torch.Tensor:
    """``uint8`` pixels ``(N, C, H, W)`` as float32 in [0, 1] (``/ 255``)."""
    t = torch.as_tensor(np.ascontiguousarray(images)) if isinstance(images, np.ndarray) else images
    if t.dtype != torch.uint8:
        raise ValueError(f"to_float expects uint8 pixels, got dtype {t.dtype}")
    return t.to(torch.float32).div_(255.0)


def resize(x: torch.Tensor, size: int | Sequence[int], *, chunk: int = 8192) -> torch.Tensor:
    """Resize ``(N, C, H, W)`` images to ``size`` with bilinear, antialias=True, align_corners=False.

    Returns ``x`` itself when it already has that size. Works in chunks of ``chunk`` images to bound
    the temporary memory of the antialiasing kernel.
    """
    h, w = as_size(size)
    if not isinstance(x, torch.Tensor) or x.dim() != 4:
        shape = tuple(x.shape) if isinstance(x, torch.Tensor) else type(x).__name__
        raise ValueError(f"resize expects a (N, C, H, W) tensor, got {shape}")
    if not x.is_floating_point():
        raise ValueError(f"resize expects floating-point images, got dtype {x.dtype}; convert with to_float first")
    if tuple(x.shape[-2:]) == (h, w):
        return x
    parts = [F.interpolate(x[i : i + chunk], size=(h, w), **INTERPOLATION) for i in range(0, x.shape[0], chunk)]
    if not parts:
        return x.new_empty((0, x.shape[1], h, w))
    return torch.cat(parts)


def channel_stats(x: torch.Tensor, *, chunk: int = 4096) -> tuple[tuple[float, ...], tuple[float, ...]]:
    """Per-channel mean and population standard deviation of ``(N, C, H, W)`` data (float64 sums)."""
    if not isinstance(x, torch.Tensor) or x.dim() != 4 or x.shape[0] == 0:
        shape = tuple(x.shape) if isinstance(x, torch.Tensor) else type(x).__name__
        raise ValueError(f"channel_stats expects a non-empty (N, C, H, W) tensor, got {shape}")
    c = x.shape[1]
    s1 = torch.zeros(c, dtype=torch.float64)
    s2 = torch.zeros(c, dtype=torch.float64)
    for i in range(0, x.shape[0], chunk):
        part = x[i : i + chunk].to("cpu", torch.float64)
        s1 += part.sum(dim=(0, 2, 3))
        s2 += (part * part).sum(dim=(0, 2, 3))
    n = x.shape[0] * x.shape[2] * x.shape[3]
    mean = s1 / n
    var = (s2 / n - mean * mean).clamp_min(0.0)
    return tuple(float(v) for v in mean), tuple(float(v) for v in var.sqrt())


def _per_channel(values: float | Sequence[float] | torch.Tensor, channels: int, like: torch.Tensor, name: str) -> torch.Tensor:
    t = torch.as_tensor(values, dtype=torch.float64).reshape(-1)
    if t.numel() not in (1, channels):
        raise ValueError(f"{name} has {t.numel()} values for {channels} channels; allowed: one value or one per channel")
    if not torch.isfinite(t).all():
        raise ValueError(f"{name}={t.tolist()} contains a non-finite value; allowed: finite numbers")
    return t.expand(channels).to(device=like.device, dtype=like.dtype).reshape(1, channels, 1, 1)


def normalize(x: torch.Tensor, mean: float | Sequence[float], std: float | Sequence[float]) -> torch.Tensor:
    """``(x - mean) / std`` per channel for ``(N, C, H, W)`` floating-point ``x``; ``std`` must be > 0."""
    if not isinstance(x, torch.Tensor) or x.dim() != 4 or not x.is_floating_point():
        desc = f"{tuple(x.shape)} {x.dtype}" if isinstance(x, torch.Tensor) else type(x).__name__
        raise ValueError(f"normalize expects a floating-point (N, C, H, W) tensor, got {desc}")
    c = x.shape[1]
    m = _per_channel(mean, c, x, "mean")
    s = _per_channel(std, c, x, "std")
    if bool((s <= 0).any()):
        raise ValueError(f"std={torch.as_tensor(std).tolist()} has a value <= 0; allowed: positive numbers")
    return (x - m) / s

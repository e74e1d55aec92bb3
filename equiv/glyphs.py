"""Asymmetric glyphs drawn in code, for the "learning unequivariance" experiment.

A glyph is defined in continuous coordinates on the unit square (x to the right, y downwards) as a union
of rectangles and discs, and rasterised at any size with 4×4 supersampling (anti-aliased, values in [0, 1]).
Drawing from geometry rather than resizing a bitmap keeps the 32×32 and 33×33 versions the same shape.
Every glyph here has no rotational or mirror symmetry, so ``x`` and ``rot90(x)`` are different images.
"""

from __future__ import annotations

import torch

from equiv.validation import is_int

__all__ = ["GLYPHS", "glyph"]

# (kind, params): "rect" x0, y0, x1, y1 ; "disc" cx, cy, r ; "hole" removes a disc
GLYPHS: dict[str, list[tuple[str, tuple[float, ...]]]] = {
    # a bold letter F: stem, top bar, shorter middle bar
    "F": [("rect", (0.22, 0.12, 0.40, 0.88)), ("rect", (0.22, 0.12, 0.80, 0.28)), ("rect", (0.22, 0.44, 0.66, 0.58))],
    # a flag on a pole with a round finial: no symmetry at all
    "flag": [("rect", (0.30, 0.10, 0.40, 0.90)), ("rect", (0.40, 0.14, 0.82, 0.44)), ("disc", (0.35, 0.08, 0.07)),
             ("rect", (0.18, 0.84, 0.56, 0.92))],
    # the letter R: stem, bowl with a hole, diagonal leg
    "R": [("rect", (0.22, 0.12, 0.38, 0.88)), ("disc", (0.50, 0.32, 0.22)), ("hole", (0.50, 0.32, 0.09)),
          ("rect", (0.22, 0.10, 0.50, 0.26)), ("leg", (0.42, 0.50, 0.80, 0.88, 0.09))],
}


def glyph(name: str = "F", size: int = 32, *, supersample: int = 4) -> torch.Tensor:
    """The glyph ``name`` rasterised on a ``size × size`` grid: float64 tensor ``(1, 1, size, size)`` in [0, 1]."""
    if name not in GLYPHS:
        raise ValueError(f"unknown glyph {name!r}; allowed: {', '.join(GLYPHS)}")
    if not is_int(size) or size < 8:
        raise ValueError(f"size must be an int >= 8, got {size!r}")
    n = size * supersample
    c = (torch.arange(n, dtype=torch.float64) + 0.5) / n
    y, x = torch.meshgrid(c, c, indexing="ij")
    inside = torch.zeros(n, n, dtype=torch.bool)
    for kind, p in GLYPHS[name]:
        if kind == "rect":
            inside |= (x >= p[0]) & (x <= p[2]) & (y >= p[1]) & (y <= p[3])
        elif kind == "disc":
            inside |= (x - p[0]) ** 2 + (y - p[1]) ** 2 <= p[2] ** 2
        elif kind == "hole":
            inside &= ~((x - p[0]) ** 2 + (y - p[1]) ** 2 <= p[2] ** 2)
        elif kind == "leg":  # a thick segment from (x0, y0) to (x1, y1) with half-width w
            x0, y0, x1, y1, w = p
            dx, dy = x1 - x0, y1 - y0
            t = (((x - x0) * dx + (y - y0) * dy) / (dx * dx + dy * dy)).clamp(0, 1)
            inside |= (x - x0 - t * dx) ** 2 + (y - y0 - t * dy) ** 2 <= w * w
    img = inside.double().reshape(size, supersample, size, supersample).mean(dim=(1, 3))
    return img.reshape(1, 1, size, size)

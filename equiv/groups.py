"""The groups Z2 (trivial), P4 (C4: rotations by multiples of 90°) and P4M (D4: rotations and mirrors).

Conventions (used by every layer, metric and test of the library):

- Images are ``(..., H, W)`` tensors; group feature maps are ``(B, C, |G|, H, W)`` (GrouPy's layout).
- The generator ``r`` rotates an image by 90° counter-clockwise as displayed:
  ``r·x = torch.rot90(x, 1, dims=(-2, -1))``. The mirror ``m`` flips left-right: ``m·x = torch.flip(x, (-1,))``.
- Elements are ``r^k m^f`` with ``k ∈ {0,1,2,3}``, ``f ∈ {0,1}`` (``f = 0`` only for P4), indexed on the
  group axis by ``f·4 + k``. ``r^k m^f`` acts on an image by first flipping (if ``f``), then rotating ``k`` times.
- Composition follows ``m r m = r^{-1}``: ``(k1, f1)·(k2, f2) = (k1 + (-1)^{f1} k2 mod 4, f1 xor f2)``.
- On a group feature map the action is the regular representation combined with the spatial action:
  ``[g·F](h, x) = F(g^{-1} h, g^{-1} x)``, i.e. ``(g·F)[:, :, i] = g·(F[:, :, index(g^{-1} h_i)])``.

With these conventions a group convolution ``Φ`` satisfies ``Φ(g·x) = g·Φ(x)`` exactly whenever every
subsampling layer keeps its sampling grid symmetric (see :mod:`equiv.exactness`).
"""

from __future__ import annotations

from dataclasses import dataclass
from functools import cached_property
from typing import Iterator

import torch

__all__ = ["Element", "Group", "Z2", "P4", "P4M", "get_group", "GROUPS"]


@dataclass(frozen=True, order=True)
class Element:
    """The group element ``r^k m^f`` (rotation by ``k``·90° counter-clockwise after an optional mirror)."""

    flip: int  # f ∈ {0, 1}
    rot: int  # k ∈ {0, 1, 2, 3}

    @property
    def name(self) -> str:
        if self.flip == 0 and self.rot == 0:
            return "e"
        rot = "" if self.rot == 0 else ("r" if self.rot == 1 else f"r{self.rot}")
        return rot + ("m" if self.flip else "")

    def __repr__(self) -> str:  # pragma: no cover - cosmetic
        return f"Element({self.name})"


class Group:
    """A finite subgroup of D4 acting on square pixel grids by exact index permutations."""

    def __init__(self, name: str, flips: bool, rotations: bool) -> None:
        self.name = name
        fs = (0, 1) if flips else (0,)
        ks = (0, 1, 2, 3) if rotations else (0,)
        self.elements: tuple[Element, ...] = tuple(Element(f, k) for f in fs for k in ks)
        self._index = {g: i for i, g in enumerate(self.elements)}

    # ----------------------------------------------------------------- algebra
    @property
    def order(self) -> int:
        """``|G|``: the size of the group axis of a group feature map."""
        return len(self.elements)

    def __len__(self) -> int:
        return self.order

    def __iter__(self) -> Iterator[Element]:
        return iter(self.elements)

    def __repr__(self) -> str:
        return f"Group({self.name!r}, order={self.order})"

    @property
    def identity(self) -> Element:
        return self.elements[0]

    def index(self, g: Element) -> int:
        """Position of ``g`` on the group axis."""
        try:
            return self._index[g]
        except KeyError:
            raise ValueError(f"element {g.name!r} is not in group {self.name}") from None

    def compose(self, a: Element, b: Element) -> Element:
        """The product ``a·b`` (apply ``b`` first, then ``a``)."""
        rot = (a.rot + (-1) ** a.flip * b.rot) % 4
        return self._checked(Element(a.flip ^ b.flip, rot))

    def inverse(self, g: Element) -> Element:
        """``g^{-1}``: mirrors are their own inverse, rotations invert their angle."""
        return self._checked(Element(g.flip, g.rot if g.flip else (-g.rot) % 4))

    def _checked(self, g: Element) -> Element:
        if g not in self._index:  # pragma: no cover - closure is tested
            raise ValueError(f"element {g.name!r} is not in group {self.name}")
        return g

    @cached_property
    def cayley_table(self) -> torch.Tensor:
        """``table[i, j] = index(g_i · g_j)``."""
        n = self.order
        return torch.tensor(
            [[self.index(self.compose(a, b)) for b in self.elements] for a in self.elements], dtype=torch.long
        ).reshape(n, n)

    def permutation(self, g: Element) -> torch.Tensor:
        """Index vector ``p`` with ``(g·F)[:, :, i] = spatial_g(F[:, :, p[i]])``, i.e. ``p[i] = index(g^{-1} h_i)``."""
        g_inv = self.inverse(g)
        return torch.tensor([self.index(self.compose(g_inv, h)) for h in self.elements], dtype=torch.long)

    # ---------------------------------------------------------------- actions
    @staticmethod
    def transform_image(x: torch.Tensor, g: Element) -> torch.Tensor:
        """Spatial action of ``g`` on the last two axes of ``x`` (exact: flips and ``rot90`` only)."""
        if x.dim() < 2:
            raise ValueError(f"an image needs at least 2 dimensions (H, W), got shape {tuple(x.shape)}")
        if g.rot and x.shape[-1] != x.shape[-2]:
            raise ValueError(f"rotations need square images, got H×W = {x.shape[-2]}×{x.shape[-1]}")
        if g.flip:
            x = torch.flip(x, dims=(-1,))
        if g.rot:
            x = torch.rot90(x, g.rot, dims=(-2, -1))
        return x

    def act_on_image(self, g: Element, x: torch.Tensor) -> torch.Tensor:
        """``g·x`` for an image tensor ``(..., H, W)``."""
        self.index(g)
        return self.transform_image(x, g)

    def act_on_group_map(self, g: Element, x: torch.Tensor, group_dim: int = 2) -> torch.Tensor:
        """``g·F`` for a group feature map with the group axis at ``group_dim`` (``(B, C, |G|, H, W)`` by default):
        the spatial action on the last two axes combined with the regular permutation of the group axis."""
        if x.dim() < 3 or x.shape[group_dim] != self.order:
            raise ValueError(
                f"a {self.name} group feature map needs a group axis of size {self.order} at dim {group_dim}, "
                f"got shape {tuple(x.shape)}"
            )
        perm = self.permutation(g).to(x.device)
        return self.transform_image(torch.index_select(x, group_dim, perm), g)

    def act(self, g: Element, x: torch.Tensor) -> torch.Tensor:
        """``g·x`` choosing the action by rank: ``(B, C, H, W)`` images, ``(B, C, |G|, H, W)`` group maps."""
        if x.dim() == 5:
            return self.act_on_group_map(g, x)
        if x.dim() == 4:
            return self.act_on_image(g, x)
        raise ValueError(
            f"expected an image (B, C, H, W) or a group feature map (B, C, |G|, H, W), got shape {tuple(x.shape)}"
        )


Z2 = Group("z2", flips=False, rotations=False)
P4 = Group("p4", flips=False, rotations=True)
P4M = Group("p4m", flips=True, rotations=True)
GROUPS: dict[str, Group] = {"z2": Z2, "p4": P4, "p4m": P4M}


def get_group(group: str | Group) -> Group:
    """The group named ``group`` (``"z2"``, ``"p4"`` or ``"p4m"``, case-insensitive) or ``group`` itself."""
    if isinstance(group, Group):
        return group
    if isinstance(group, str) and group.lower() in GROUPS:
        return GROUPS[group.lower()]
    raise ValueError(f"unknown group {group!r}: use one of {', '.join(GROUPS)}")

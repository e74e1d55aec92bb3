"""Training-rotation regimes: which angle each training image is rotated by.

Every regime is a small frozen dataclass with one method, ``apply`` (also ``__call__``)::

    rotated, angles = regime(x, indices, epoch=epoch, generator=gen, fill=splits.fill)

``x`` is a batch ``(B, C, H, W)``; ``indices`` identify its samples (e.g. positions within the training
split, as yielded by :meth:`ImageSplits.batches`); ``angles`` is a float64 CPU tensor ``(B,)`` of the
angles used, in degrees, counter-clockwise (:mod:`equiv.rotation` conventions: multiples of 90° are
exact permutations, anything else is bilinear with the background ``fill``).

``fill`` must be the true background of the data *in the space of x* (``ImageSplits.fill``: for MNIST
0 before normalisation, ``(0 - mean) / std`` after) — never a value that does not occur in the data.
Regimes that rotate by non-multiples of 90° raise ValueError when no fill is given (either to the
constructor / :func:`make_regime` or to ``apply``).

Randomness comes from the ``generator`` passed to ``apply`` (None: torch's global RNG), except for
``Uniform(mode="fixed")``, whose angle for a sample is a fixed function of ``(seed, index)`` (a
SplitMix64 hash): each image is rotated once and for all, whatever the batch order or epoch. ``epoch``
is part of the interface for every regime; the built-in ones do not need it.

Names accepted by :func:`make_regime` (the paper's regimes first):

- ``"upright"``: no rotation.
- ``"normal45_sd20"``, ``"normal45_sd40"`` (any ``normal<mean>_sd<sd>``): one angle per sample from
  N(mean, sd²); append ``_perbatch`` (``"normal45_sd20_perbatch"``) for one angle per batch, as the
  official code did.
- ``"uniform"``: each image gets a fixed angle ~ U[0, 360) (official setting); ``"uniform_fresh"``
  draws a fresh angle per sample and call.
- ``"rot90"``: a random multiple of 90° per sample (exact).

Dict form: ``{"name": "normal", "mean": 45, "sd": 20, "per_batch": False}``,
``{"name": "uniform", "mode": "fixed", "seed": 0}``, ``{"name": "rot90"}``, ``{"name": "upright"}``
(each may also carry ``"fill"``).
"""

from __future__ import annotations

import re
from collections.abc import Mapping, Sequence
from dataclasses import asdict, dataclass, field, fields
from typing import Any, ClassVar, Union

import numpy as np
import torch

from equiv.rotation import rotate
from equiv.validation import is_finite_real, is_int

__all__ = [
    "Regime",
    "Upright",
    "Normal",
    "Uniform",
    "Rot90",
    "make_regime",
    "REGIME_NAMES",
    "fixed_uniform_angles",
]

#: The regime names of the paper's rotated-MNIST experiment, plus ``rot90``.
REGIME_NAMES = ("upright", "normal45_sd20", "normal45_sd40", "uniform", "rot90")
_NAME_HELP = (
    "upright, normal45_sd20, normal45_sd40 (or any normal<mean>_sd<sd>, with optional _perbatch), "
    "uniform, uniform_fresh, rot90, or a dict with name upright/normal/uniform/rot90"
)
FillSpec = Union[None, float, Sequence[float], torch.Tensor]


def _fill_tuple(fill: FillSpec) -> tuple[float, ...] | None:
    if fill is None:
        return None
    if isinstance(fill, bool):
        raise ValueError(f"fill={fill!r} is a bool; allowed: a finite number or one finite number per channel")
    values = torch.as_tensor(fill, dtype=torch.float64).reshape(-1) if not isinstance(fill, torch.Tensor) else fill.detach().to("cpu", torch.float64).reshape(-1)
    if values.numel() == 0 or not torch.isfinite(values).all():
        raise ValueError(f"fill={values.tolist()} is invalid; allowed: a finite number or one finite number per channel")
    return tuple(float(v) for v in values)


def _check_batch(x: torch.Tensor, indices: Any, generator: Any) -> torch.Tensor | None:
    if not isinstance(x, torch.Tensor) or x.dim() != 4:
        shape = tuple(x.shape) if isinstance(x, torch.Tensor) else type(x).__name__
        raise ValueError(f"x has shape {shape}; regimes need a (B, C, H, W) batch")
    if generator is not None and not isinstance(generator, torch.Generator):
        raise ValueError(f"generator={generator!r} is not a torch.Generator; allowed: a torch.Generator or None")
    if indices is None:
        return None
    idx = torch.as_tensor(indices).reshape(-1).to("cpu")
    if idx.numel() != x.shape[0] or idx.is_floating_point() or idx.dtype == torch.bool:
        raise ValueError(f"indices has {idx.numel()} entries of dtype {idx.dtype} for a batch of {x.shape[0]}; allowed: one integer per sample")
    if idx.numel() and int(idx.min()) < 0:
        raise ValueError(f"indices contains {int(idx.min())}; allowed: non-negative integers")
    return idx.to(torch.int64)


@dataclass(frozen=True)
class Regime:
    """Base class: subclasses implement :meth:`angles`; :meth:`apply` rotates a batch by them."""

    fill: tuple[float, ...] | None = field(default=None, kw_only=True)
    name: ClassVar[str] = "regime"
    #: False when every angle is a multiple of 90° (no fill needed).
    needs_fill: ClassVar[bool] = True

    def __post_init__(self) -> None:
        object.__setattr__(self, "fill", _fill_tuple(self.fill))

    def angles(self, n: int, *, indices: torch.Tensor | None = None, epoch: int = 0, generator: torch.Generator | None = None) -> torch.Tensor:
        """The float64 angles ``(n,)`` in degrees for a batch of ``n`` samples."""
        raise NotImplementedError

    def apply(
        self,
        x: torch.Tensor,
        indices: Sequence[int] | torch.Tensor | None = None,
        *,
        epoch: int = 0,
        generator: torch.Generator | None = None,
        fill: FillSpec = None,
    ) -> tuple[torch.Tensor, torch.Tensor]:
        """Rotate batch ``x`` ``(B, C, H, W)``; returns ``(rotated, angles)`` (angles float64 ``(B,)``)."""
        idx = _check_batch(x, indices, generator)
        angles = self.angles(x.shape[0], indices=idx, epoch=epoch, generator=generator)
        if bool((angles == 0).all()):
            return x, angles
        use = _fill_tuple(fill) if fill is not None else self.fill
        exact = bool((torch.remainder(angles, 90.0) == 0).all())
        if use is None and not exact:
            raise ValueError(
                f"regime {self.name!r} rotates by non-multiples of 90 degrees and has no fill; allowed: the data's background, e.g. fill=splits.fill"
            )
        return rotate(x, angles, fill=use if use is not None else 0.0), angles

    __call__ = apply

    @property
    def spec(self) -> dict[str, Any]:
        """The dict form accepted by :func:`make_regime` (round-trips)."""
        out = {"name": self.name, **{k: v for k, v in asdict(self).items()}}
        if out.get("fill") is None:
            out.pop("fill", None)
        else:
            out["fill"] = list(out["fill"])
        return out


@dataclass(frozen=True)
class Upright(Regime):
    """No rotation (angles all 0; the batch is returned as is)."""

    name: ClassVar[str] = "upright"
    needs_fill: ClassVar[bool] = False

    def angles(self, n: int, *, indices: torch.Tensor | None = None, epoch: int = 0, generator: torch.Generator | None = None) -> torch.Tensor:
        return torch.zeros(n, dtype=torch.float64)


@dataclass(frozen=True)
class Normal(Regime):
    """Angles ~ N(mean, sd²) in degrees: one per sample, or one per batch if ``per_batch``."""

    mean: float = 45.0
    sd: float = 20.0
    per_batch: bool = False
    name: ClassVar[str] = "normal"

    def __post_init__(self) -> None:
        super().__post_init__()
        for key in ("mean", "sd"):
            v = getattr(self, key)
            if not is_finite_real(v):
                raise ValueError(f"normal {key}={v!r} is invalid; allowed: a finite number of degrees")
            object.__setattr__(self, key, float(v))
        if self.sd < 0:
            raise ValueError(f"normal sd={self.sd!r} is negative; allowed: sd >= 0")
        if not isinstance(self.per_batch, bool):
            raise ValueError(f"per_batch={self.per_batch!r} is invalid; allowed: True or False")

    def angles(self, n: int, *, indices: torch.Tensor | None = None, epoch: int = 0, generator: torch.Generator | None = None) -> torch.Tensor:
        draws = torch.randn(1 if self.per_batch else n, generator=generator, dtype=torch.float64)
        out = self.mean + self.sd * draws
        return out.expand(n).clone() if self.per_batch else out


def _splitmix64(z: np.ndarray) -> np.ndarray:
    with np.errstate(over="ignore"):
        z = z + np.uint64(0x9E3779B97F4A7C15)
        z = (z ^ (z >> np.uint64(30))) * np.uint64(0xBF58476D1CE4E5B9)
        z = (z ^ (z >> np.uint64(27))) * np.uint64(0x94D049BB133111EB)
        return z ^ (z >> np.uint64(31))


def fixed_uniform_angles(indices: torch.Tensor | Sequence[int], seed: int) -> torch.Tensor:
    """Angles in [0, 360) that depend only on ``(seed, index)``: float64 ``(len(indices),)``.

    ``u = splitmix64(splitmix64(seed) ^ index) >> 11`` gives 53 uniform bits; angle = 360 * u / 2**53.
    """
    idx = np.asarray(torch.as_tensor(indices).reshape(-1).cpu().numpy(), dtype=np.uint64)
    key = _splitmix64(np.array([seed], dtype=np.uint64))[0]
    bits = _splitmix64(idx ^ key) >> np.uint64(11)
    return torch.from_numpy(bits.astype(np.float64) * (360.0 / 2.0**53))


@dataclass(frozen=True)
class Uniform(Regime):
    """Angles ~ U[0, 360).

    ``mode="fixed"`` (default, the official "uniform" regime): every image has one angle for the whole
    training, a function of ``(seed, index)``; ``apply`` then needs ``indices``.
    ``mode="fresh"``: a new angle per sample on every call, from ``generator``.
    """

    mode: str = "fixed"
    seed: int = 0
    name: ClassVar[str] = "uniform"
    MODES: ClassVar[tuple[str, ...]] = ("fixed", "fresh")

    def __post_init__(self) -> None:
        super().__post_init__()
        if self.mode not in self.MODES:
            raise ValueError(f"uniform mode={self.mode!r} is unknown; allowed: {', '.join(self.MODES)}")
        if not is_int(self.seed) or not 0 <= self.seed < 2**64:
            raise ValueError(f"uniform seed={self.seed!r} is invalid; allowed: an int in [0, 2**64)")
        object.__setattr__(self, "seed", int(self.seed))

    def angles(self, n: int, *, indices: torch.Tensor | None = None, epoch: int = 0, generator: torch.Generator | None = None) -> torch.Tensor:
        if self.mode == "fresh":
            return torch.rand(n, generator=generator, dtype=torch.float64) * 360.0
        if indices is None:
            raise ValueError("uniform mode='fixed' needs the sample indices of the batch; allowed: indices=positions of the samples in the split")
        return fixed_uniform_angles(indices, self.seed)


@dataclass(frozen=True)
class Rot90(Regime):
    """A random multiple of 90° per sample (0, 90, 180 or 270, equally likely), applied exactly."""

    name: ClassVar[str] = "rot90"
    needs_fill: ClassVar[bool] = False

    def angles(self, n: int, *, indices: torch.Tensor | None = None, epoch: int = 0, generator: torch.Generator | None = None) -> torch.Tensor:
        return torch.randint(0, 4, (n,), generator=generator).to(torch.float64) * 90.0


_CLASSES: dict[str, type[Regime]] = {"upright": Upright, "normal": Normal, "uniform": Uniform, "rot90": Rot90}
_NORMAL_RE = re.compile(r"normal(-?\d+(?:\.\d+)?)_sd(\d+(?:\.\d+)?)(_perbatch)?")


def make_regime(spec: str | Mapping[str, Any] | Regime, *, fill: FillSpec = None) -> Regime:
    """Build a regime from a name (see the module docstring), a dict, or return a Regime as is.

    ``fill`` sets the default background fill (overrides a ``"fill"`` in the dict). Raises ValueError
    listing the valid names for an unknown name, and naming the bad key for a bad dict.
    """
    if isinstance(spec, Regime):
        return spec if fill is None else type(spec)(**{**{f.name: getattr(spec, f.name) for f in fields(spec)}, "fill": fill})
    if isinstance(spec, str):
        if spec in ("upright", "rot90"):
            return _CLASSES[spec](fill=fill)
        if spec == "uniform":
            return Uniform(mode="fixed", fill=fill)
        if spec == "uniform_fresh":
            return Uniform(mode="fresh", fill=fill)
        m = _NORMAL_RE.fullmatch(spec)
        if m:
            return Normal(mean=float(m.group(1)), sd=float(m.group(2)), per_batch=m.group(3) is not None, fill=fill)
        raise ValueError(f"unknown rotation regime {spec!r}; allowed: {_NAME_HELP}")
    if isinstance(spec, Mapping):
        params = dict(spec)
        name = params.pop("name", None)
        if name not in _CLASSES:
            raise ValueError(f"unknown rotation regime name {name!r} in {dict(spec)!r}; allowed: {_NAME_HELP}")
        cls = _CLASSES[name]
        allowed = {f.name for f in fields(cls)}
        unknown = sorted(set(params) - allowed)
        if unknown:
            raise ValueError(f"unknown key {unknown[0]!r} for regime {name!r}; allowed keys: name, {', '.join(sorted(allowed))}")
        if fill is not None:
            params["fill"] = fill
        return cls(**params)
    raise ValueError(f"regime spec {spec!r} is a {type(spec).__name__}; allowed: a name string, a dict or a Regime")

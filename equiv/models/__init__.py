"""The paper's networks behind one factory: ``build(name, group="p4", **options)``.

========================  ===============================================  ==================  ===============
name                      network                                          exact sizes         approximate
========================  ===============================================  ==================  ===============
``p4cnn`` / ``z2cnn``     7-layer rotated-MNIST CNN (one 2×2/s2 max-pool)  even, e.g. 28       27, 29
``resnet44``              CIFAR ResNet-44 (pre-act, 3×3 stem, s1,2,2)      ≡ 1 mod 4, e.g. 33  32
``resnet18``              official "ResNet-18" (3×3 stem, s1,2,2,2)        ≡ 1 mod 8: 33, 97,  32, 224
                                                                           225
``resnet18_imagenet``     torchvision-style ResNet-18 (7×7/s2, max-pool)   ≡ 1 mod 32: 225     224
``unequivariance_probe``  P4ConvZ2 3×3/s2 → mean → max → Linear (14 par.)  odd, e.g. 33        32
========================  ===============================================  ==================  ===============

Every model takes images ``(B, C, H, W)``, returns logits ``(B, num_classes)`` and has an int attribute
``in_channels``. Groups: ``"z2"`` (plain CNN: a group axis of size 1), ``"p4"``, ``"p4m"``. At an exact size
the features are exactly equivariant and, with the default ``head="coset"``, the logits exactly invariant:
``model(g·x) == model(x)`` for every ``g`` (eval mode). ``head="flatten"`` reproduces the official ResNets'
default (C×|G| flattened into the Linear), which is not invariant at any size.

Options (all keyword-only; unknown ones raise ValueError):

- ``p4cnn``/``z2cnn``: ``channels`` (per group element; 20 / 10 / 7 for z2 / p4 / p4m), ``in_channels`` (1),
  ``num_classes`` (10), ``dropout`` (0.3), ``head``, ``backend`` (``"native"`` or ``"e2cnn"``).
- ``resnet44``: ``width`` (32 / 16 / 12), ``in_channels`` (3), ``num_classes`` (10), ``head``, ``backend``.
- ``resnet18``: ``width`` (64 / 32 / 23), ``in_channels`` (3), ``num_classes`` (10), ``head``, ``backend``.
- ``resnet18_imagenet``: ``width`` (64 / 32 / 23), ``in_channels`` (3), ``num_classes`` (1000), ``head``,
  ``backend``.
- ``unequivariance_probe``: ``in_channels`` (1), ``num_classes`` (2), ``backend``.

``backend`` is ``"native"`` (the default: :mod:`equiv.nn` layers) for every model;
``backend="e2cnn"`` (p4cnn and resnet44 only, groups p4/p4m) builds the same network from e2cnn layers with
full-span kernel bases (:mod:`equiv.models.e2cnn_backend`); inputs, outputs and every layer's output are
plain tensors in :mod:`equiv.groups` conventions.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Callable

from torch import nn

from equiv.groups import GROUPS, Group, get_group
from equiv.models.layers import HEADS, ClassifierHead, LayerKit, NativeKit
from equiv.models.p4cnn import DEFAULT_CHANNELS, P4CNN
from equiv.models.probe import UnequivarianceProbe
from equiv.models.resnet import RESNET18_WIDTHS, RESNET44_WIDTHS, CifarResNet
from equiv.models.resnet_imagenet import ImageNetResNet
from equiv.nn import settle_layout
from equiv.validation import is_int, is_real

__all__ = [
    "build",
    "available",
    "options",
    "describe",
    "BACKENDS",
    "HEADS",
    "P4CNN",
    "CifarResNet",
    "ImageNetResNet",
    "UnequivarianceProbe",
    "ClassifierHead",
    "NativeKit",
]

BACKENDS: tuple[str, ...] = ("native", "e2cnn")


@dataclass(frozen=True)
class _Spec:
    builder: Callable[..., nn.Module]
    groups: tuple[str, ...]
    defaults: dict[str, Any]
    default_group: str = "p4"
    backends: tuple[str, ...] = ("native",)
    summary: str = ""


def _kit(group: Group, backend: str) -> LayerKit:
    if backend == "e2cnn":
        from equiv.models.e2cnn_backend import E2Kit

        return E2Kit(group)
    return NativeKit(group)


def _p4cnn(group: Group, channels: int | None, in_channels: int, num_classes: int, dropout: float, head: str,
           backend: str) -> nn.Module:
    return P4CNN(_kit(group, backend), channels or DEFAULT_CHANNELS[group.name], in_channels, num_classes, dropout, head)


def _resnet44(group: Group, width: int | None, in_channels: int, num_classes: int, head: str, backend: str) -> nn.Module:
    return CifarResNet(_kit(group, backend), (7, 7, 7), width or RESNET44_WIDTHS[group.name], in_channels, num_classes,
                       head)


def _resnet18(group: Group, width: int | None, in_channels: int, num_classes: int, head: str,
              backend: str) -> nn.Module:
    return CifarResNet(_kit(group, backend), (2, 2, 2, 2), width or RESNET18_WIDTHS[group.name], in_channels, num_classes,
                       head)


def _resnet18_imagenet(group: Group, width: int | None, in_channels: int, num_classes: int, head: str,
                       backend: str) -> nn.Module:
    return ImageNetResNet(_kit(group, backend), (2, 2, 2, 2), width or RESNET18_WIDTHS[group.name], in_channels,
                          num_classes, head)


def _probe(group: Group, in_channels: int, num_classes: int, backend: str) -> nn.Module:
    return UnequivarianceProbe(group, in_channels, num_classes)


_ALL_GROUPS = tuple(GROUPS)
_P4CNN_DEFAULTS = {"channels": None, "in_channels": 1, "num_classes": 10, "dropout": 0.3, "head": "coset",
                   "backend": "native"}
_REGISTRY: dict[str, _Spec] = {
    "p4cnn": _Spec(_p4cnn, _ALL_GROUPS, _P4CNN_DEFAULTS, backends=BACKENDS,
                   summary="7-layer rotated-MNIST CNN; exact at even sizes (28), approximate at odd (27, 29)"),
    "z2cnn": _Spec(_p4cnn, ("z2",), _P4CNN_DEFAULTS, default_group="z2",
                   summary="the Z2 baseline of p4cnn (20 channels)"),
    "resnet44": _Spec(_resnet44, _ALL_GROUPS,
                      {"width": None, "in_channels": 3, "num_classes": 10, "head": "coset", "backend": "native"},
                      backends=BACKENDS, summary="CIFAR ResNet-44; exact at N = 1 mod 4 (33), approximate at 32"),
    "resnet18": _Spec(_resnet18, _ALL_GROUPS,
                      {"width": None, "in_channels": 3, "num_classes": 10, "head": "coset", "backend": "native"},
                      summary="official ResNet-18 (3x3 stem); exact at N = 1 mod 8 (33, 97, 225)"),
    "resnet18_imagenet": _Spec(_resnet18_imagenet, _ALL_GROUPS,
                               {"width": None, "in_channels": 3, "num_classes": 1000, "head": "coset", "backend": "native"},
                               summary="torchvision-style ResNet-18; exact at N = 1 mod 32 (225), approximate at 224"),
    "unequivariance_probe": _Spec(_probe, _ALL_GROUPS, {"in_channels": 1, "num_classes": 2, "backend": "native"},
                                  summary="14-parameter P4 probe; exact at odd sizes (33), approximate at even (32)"),
}


def available() -> list[str]:
    """The model names :func:`build` accepts."""
    return sorted(_REGISTRY)


def options(name: str) -> dict[str, Any]:
    """The options of model ``name`` and their defaults (``None``: chosen per group)."""
    return dict(_spec(name).defaults)


def describe(name: str) -> str:
    """One line: what model ``name`` is and where it is exact."""
    return _spec(name).summary


def _spec(name: str) -> _Spec:
    if not isinstance(name, str) or name.lower() not in _REGISTRY:
        raise ValueError(f"unknown model {name!r}: available models are {', '.join(available())}")
    return _REGISTRY[name.lower()]


def _positive_int(name: str, key: str, value: Any, allow_none: bool = False) -> None:
    if value is None and allow_none:
        return
    if not is_int(value, numpy=False) or value < 1:
        raise ValueError(f"option {key} of model {name!r} must be a positive int, got {value!r}")


def _validate(name: str, spec: _Spec, group: Group, opts: dict[str, Any]) -> None:
    for key in ("channels", "width"):
        if key in opts:
            _positive_int(name, key, opts[key], allow_none=True)
    for key in ("in_channels", "num_classes"):
        if key in opts:
            _positive_int(name, key, opts[key])
    if "dropout" in opts:
        p = opts["dropout"]
        if not is_real(p, numpy=False) or not 0 <= p < 1:
            raise ValueError(f"option dropout of model {name!r} must be a number in [0, 1), got {p!r}")
    if "head" in opts and opts["head"] not in HEADS:
        raise ValueError(f"unknown head {opts['head']!r} for model {name!r}: allowed heads are {', '.join(HEADS)}")
    if "backend" in opts:
        backend = opts["backend"]
        if backend not in spec.backends:
            raise ValueError(f"unknown backend {backend!r} for model {name!r}: allowed backends are {', '.join(spec.backends)}")
        if backend == "e2cnn" and group.name == "z2":
            raise ValueError(f"backend 'e2cnn' of model {name!r} supports groups p4, p4m, got 'z2'")


def build(name: str, group: str | Group | None = None, **opts: Any) -> nn.Module:
    """Build model ``name`` over ``group`` (``"z2"``, ``"p4"`` — the default, ``z2`` for ``z2cnn`` — or ``"p4m"``).

    Returns an ``nn.Module`` mapping images ``(B, C, H, W)`` to logits ``(B, num_classes)``, with an int
    attribute ``in_channels``; see the module docstring for the options and the exact input sizes.

    Raises:
        ValueError: unknown model name, group or option, or an invalid option value (one line, naming the
            bad value and what is allowed).
    """
    spec = _spec(name)
    key = name.lower()
    if group is None:
        group = spec.default_group
    try:
        grp = get_group(group)
    except ValueError:
        raise ValueError(f"unknown group {group!r} for model {key!r}: allowed groups are {', '.join(spec.groups)}") from None
    if grp.name not in spec.groups:
        raise ValueError(f"unknown group {grp.name!r} for model {key!r}: allowed groups are {', '.join(spec.groups)}")
    unknown = [k for k in opts if k not in spec.defaults]
    if unknown:
        raise ValueError(
            f"unknown option {unknown[0]!r} for model {key!r}: allowed options are {', '.join(spec.defaults)}"
        )
    _validate(key, spec, grp, opts)
    return settle_layout(spec.builder(grp, **{**spec.defaults, **opts}))

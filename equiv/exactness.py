"""The exactness predictor: is a network exactly equivariant at a given input size — and if not, where does it break?

:func:`check` runs the model's real forward pass once on a zero tensor of the requested size, intercepting
every spatial operation it meets through :class:`torch.overrides.TorchFunctionMode` (so plain
``nn.Conv2d``/``nn.MaxPool2d``/``nn.AvgPool2d``, our group layers, e2cnn layers and functional calls in
user code are all seen), with the innermost ``nn.Module`` attributed by global forward hooks. For every
operation it enumerates the sampling windows on each axis (:mod:`equiv.sampling_grid`) and decides, per
group element, whether the operation commutes with that element: a 90° rotation or a mirror maps row
``i`` to ``N − 1 − i``, so the windows must be mirror-symmetric (floor mode: ``(N + 2p − d(k−1) − 1) mod s == 0``).
The network is exactly equivariant for ``g`` iff every operation is; :attr:`ExactnessReport.exact` asks it
for every ``g`` in the group.

It judges sampling grids only; it assumes the weights themselves are equivariant (group convolutions).
What it cannot judge it refuses with :class:`ExactnessError`: asymmetric explicit padding, ``padding="same"``
with an even kernel span (PyTorch pads one side more), transposed convolutions, interpolation, unfolding,
1-D/3-D pooling, and advanced indexing of spatial axes.

Example::

    >>> from equiv.models import build
    >>> report = check(build("p4cnn"), 27)
    >>> report.exact, nearest_exact_size(build("p4cnn"), 27)
    (False, 28)
"""

from __future__ import annotations

import contextlib
import os
from dataclasses import dataclass, field
from typing import Any, Callable, Iterable, Sequence

import pandas as pd
import torch
import torch.nn.functional as F
from torch import nn
from torch.overrides import TorchFunctionMode

from equiv import sampling_grid as sg
from equiv.groups import Element, Group, get_group
from equiv.validation import is_int

__all__ = [
    "ExactnessError",
    "OpRecord",
    "ExactnessReport",
    "check",
    "exact_sizes",
    "size_sweep",
    "nearest_exact_size",
    "element_axis_map",
    "physical_memory",
    "exact_neighbours",
]


class ExactnessError(ValueError):
    """The predictor met an operation whose effect on equivariance it cannot judge."""


@dataclass(frozen=True)
class OpRecord:
    """One spatial operation met in the forward pass, and its verdict."""

    layer: str  # qualified name of the innermost module running it ("<model>" for the root)
    module: str  # class name of that module
    op: str  # conv2d, max_pool2d, avg_pool2d, adaptive_avg_pool2d, adaptive_max_pool2d, slice
    input_size: tuple[int, int]
    output_size: tuple[int, int]
    kernel: tuple[int, int]
    stride: tuple[int, int]
    padding: tuple[int, int]
    dilation: tuple[int, int]
    ceil_mode: bool
    leftover: tuple[int, int]  # r per axis (H, W)
    symmetric: tuple[bool, bool]  # windows mirror-symmetric per axis
    exact_elements: tuple[str, ...]  # group elements this operation commutes with exactly
    exact: bool  # commutes with every element of the group
    subsampling: bool  # changes the sampling lattice (stride > 1, adaptive pooling or slicing)

    def as_dict(self) -> dict[str, Any]:
        return {
            "layer": self.layer,
            "module": self.module,
            "op": self.op,
            "input_size": f"{self.input_size[0]}x{self.input_size[1]}",
            "output_size": f"{self.output_size[0]}x{self.output_size[1]}",
            "kernel": _fmt(self.kernel),
            "stride": _fmt(self.stride),
            "padding": _fmt(self.padding),
            "dilation": _fmt(self.dilation),
            "ceil_mode": self.ceil_mode,
            "r": _fmt(self.leftover),
            "symmetric": all(self.symmetric),
            "exact": self.exact,
            "exact_elements": " ".join(self.exact_elements),
            "subsampling": self.subsampling,
        }


_COLUMNS = ["layer", "module", "op", "input_size", "output_size", "kernel", "stride", "padding", "dilation",
            "ceil_mode", "r", "symmetric", "exact", "exact_elements", "subsampling"]


def _fmt(pair: tuple) -> str | int:
    return pair[0] if pair[0] == pair[1] else f"{pair[0]},{pair[1]}"


@dataclass
class ExactnessReport:
    """Every spatial operation of one forward pass at one input size, and the network's verdict."""

    model: str
    group: Group
    input_size: tuple[int, int]
    ops: list[OpRecord] = field(default_factory=list)

    @property
    def subsampling(self) -> list[OpRecord]:
        """The operations that change the sampling lattice (the only ones that can break exactness)."""
        return [op for op in self.ops if op.subsampling]

    @property
    def exact_elements(self) -> tuple[str, ...]:
        """Group elements for which the whole network is exactly equivariant (the identity always is)."""
        names = [g.name for g in self.group]
        for op in self.ops:
            names = [n for n in names if n in op.exact_elements]
        return tuple(names)

    @property
    def exact(self) -> bool:
        """True iff every operation keeps its sampling grid symmetric for every group element."""
        return all(op.exact for op in self.ops)

    @property
    def breaking(self) -> list[OpRecord]:
        """The operations that break exactness."""
        return [op for op in self.ops if not op.exact]

    def to_frame(self, all_ops: bool = False) -> pd.DataFrame:
        """One row per subsampling operation (``all_ops=True``: per spatial operation)."""
        rows = [op.as_dict() for op in (self.ops if all_ops else self.subsampling)]
        return pd.DataFrame(rows, columns=_COLUMNS)

    def table(self) -> str:
        """A readable text table of the subsampling operations and the verdict."""
        frame = self.to_frame()[
            ["layer", "op", "input_size", "kernel", "stride", "padding", "dilation", "ceil_mode", "r", "exact"]
        ]
        size = f"{self.input_size[0]}x{self.input_size[1]}"
        head = f"{self.model} at input {size}, group {self.group.name}: "
        if self.exact:
            verdict = "EXACTLY equivariant"
        else:
            keep = [n for n in self.exact_elements if n != "e"]
            verdict = "APPROXIMATELY equivariant (broken by " + ", ".join(o.layer for o in self.breaking) + ")"
            if keep:
                verdict += f"; still exact for {', '.join(keep)}"
        body = frame.to_string(index=False) if len(frame) else "(no subsampling operations)"
        return f"{head}{verdict}\n{body}"

    def __str__(self) -> str:
        return self.table()

    def _repr_html_(self) -> str:  # notebooks
        return f"<p><b>{self.model}</b> at {self.input_size[0]}×{self.input_size[1]} ({self.group.name}): " \
               f"{'exact' if self.exact else 'approximate'}</p>" + self.to_frame().to_html(index=False)


# --------------------------------------------------------------------------------------------- helpers
def _pair(value: Any, name: str) -> tuple[int, int]:
    if isinstance(value, int):
        return (value, value)
    if isinstance(value, (tuple, list)) and len(value) == 1:
        return (int(value[0]), int(value[0]))
    if isinstance(value, (tuple, list)) and len(value) == 2:
        return (int(value[0]), int(value[1]))
    raise ExactnessError(f"cannot read {name}={value!r}")


def element_axis_map(g: Element) -> tuple[tuple[int, bool], tuple[int, bool]]:
    """For each output axis (rows, cols) of ``g·x``: the input axis it reads and whether mirrored."""
    probe = torch.arange(9).reshape(3, 3)
    out = Group.transform_image(probe, g)
    result = []
    for axis in (0, 1):
        # walk along this output axis from index 0 to 2 with the other index at 0
        a = out[0, 0].item(), (out[2, 0] if axis == 0 else out[0, 2]).item()
        (r0, c0), (r1, c1) = divmod(a[0], 3), divmod(a[1], 3)
        src = 0 if r0 != r1 else 1
        mirrored = (r1 < r0) if src == 0 else (c1 < c0)
        result.append((src, mirrored))
    return result[0], result[1]


def _exact_elements(group: Group, grids: tuple[sg.AxisGrid, sg.AxisGrid]) -> tuple[str, ...]:
    names = []
    for g in group:
        ok = True
        for axis, (src, mirrored) in enumerate(element_axis_map(g)):
            source = grids[src]
            windows = source.mirrored() if mirrored else tuple((tuple(sorted(p)), d) for p, d in source.windows)
            target = tuple((tuple(sorted(p)), d) for p, d in grids[axis].windows)
            if source.n_in != grids[axis].n_in or windows != target:
                ok = False
                break
        if ok:
            names.append(g.name)
    return tuple(names)


_CONV = ("input", "weight", "bias", "stride", "padding", "dilation", "groups")
_MAXPOOL = ("input", "kernel_size", "stride", "padding", "dilation", "ceil_mode", "return_indices")
_AVGPOOL = ("input", "kernel_size", "stride", "padding", "ceil_mode", "count_include_pad", "divisor_override")
_ADAPTIVE = ("input", "output_size", "return_indices")
_PAD = ("input", "pad", "mode", "value")

_REFUSED = {
    "conv_transpose1d", "conv_transpose2d", "conv_transpose3d", "interpolate", "upsample", "upsample_nearest",
    "upsample_bilinear", "grid_sample", "pixel_unshuffle", "pixel_shuffle", "fractional_max_pool2d", "lp_pool2d",
    "max_unpool2d", "conv1d", "conv3d", "max_pool1d", "max_pool3d", "avg_pool1d", "avg_pool3d",
    "adaptive_avg_pool3d", "adaptive_max_pool3d", "fold",
}


def _bind(names: Sequence[str], args: tuple, kwargs: dict) -> dict[str, Any]:
    bound = dict(zip(names, args))
    bound.update(kwargs)
    return bound


class _Tracer(TorchFunctionMode):
    def __init__(self, group: Group, stack: list[tuple[str, str]]) -> None:
        super().__init__()
        self.group = group
        self.stack = stack
        self.records: list[OpRecord] = []

    # which module is running
    def _where(self) -> tuple[str, str]:
        return self.stack[-1] if self.stack else ("<model>", "")

    def __torch_function__(self, func: Callable, types, args=(), kwargs=None):
        kwargs = kwargs or {}
        name = getattr(func, "__name__", "")
        if name in _REFUSED and not (name == "fold" and func is not F.fold):
            layer, module = self._where()
            raise ExactnessError(
                f"{name} in layer {layer!r} ({module}): the predictor cannot judge how it moves the sampling grid"
            )
        if name == "unfold" and func is F.unfold:
            layer, module = self._where()
            raise ExactnessError(f"F.unfold in layer {layer!r} ({module}): the predictor cannot judge it")
        if name == "pad":
            self._check_pad(_bind(_PAD, args, kwargs))
        if name == "conv2d" and isinstance(_bind(_CONV, args, kwargs).get("padding"), str):
            self._check_string_padding(_bind(_CONV, args, kwargs))
        result = func(*args, **kwargs)
        try:
            if name == "conv2d":
                self._conv(_bind(_CONV, args, kwargs), result)
            elif name in ("max_pool2d", "max_pool2d_with_indices"):
                self._pool(_bind(_MAXPOOL, args, kwargs), result, "max")
            elif name == "avg_pool2d":
                self._pool(_bind(_AVGPOOL, args, kwargs), result, "avg")
            elif name in ("adaptive_avg_pool2d", "adaptive_max_pool2d", "adaptive_max_pool2d_with_indices"):
                self._adaptive(_bind(_ADAPTIVE, args, kwargs), result, "avg" if "avg" in name else "max")
            elif name == "__getitem__":
                self._getitem(args[0], args[1])
        except ExactnessError:
            raise
        return result

    # -- records
    def _record(self, op: str, x: torch.Tensor, out_hw: tuple[int, int], grids, kernel, stride, padding,
                dilation, ceil_mode: bool, subsampling: bool) -> None:
        layer, module = self._where()
        elements = _exact_elements(self.group, grids)
        self.records.append(
            OpRecord(
                layer=layer, module=module, op=op, input_size=(x.shape[-2], x.shape[-1]), output_size=out_hw,
                kernel=kernel, stride=stride, padding=padding, dilation=dilation, ceil_mode=ceil_mode,
                leftover=(grids[0].leftover, grids[1].leftover), symmetric=(grids[0].symmetric, grids[1].symmetric),
                exact_elements=elements, exact=len(elements) == self.group.order, subsampling=subsampling,
            )
        )

    def _conv(self, b: dict, result: torch.Tensor) -> None:
        x, w = b["input"], b["weight"]
        kernel = (w.shape[-2], w.shape[-1])
        stride = _pair(b.get("stride", 1), "stride")
        dilation = _pair(b.get("dilation", 1), "dilation")
        padding = b.get("padding", 0)
        if isinstance(padding, str):  # 'valid' or symmetric 'same' (checked before the call)
            padding = (0, 0) if padding == "valid" else tuple(d * (k - 1) // 2 for d, k in zip(dilation, kernel))
        padding = _pair(padding, "padding")
        grids = tuple(sg.conv_grid(x.shape[-2 + a], kernel[a], stride[a], padding[a], dilation[a]) for a in (0, 1))
        self._record("conv2d", x, tuple(result.shape[-2:]), grids, kernel, stride, padding, dilation, False,
                     max(stride) > 1)

    def _pool(self, b: dict, result: Any, kind: str) -> None:
        x = b["input"]
        out = result[0] if isinstance(result, tuple) else result
        kernel = _pair(b["kernel_size"], "kernel_size")
        stride = b.get("stride")
        stride = kernel if stride is None or (isinstance(stride, (tuple, list)) and len(stride) == 0) else _pair(stride, "stride")
        padding = _pair(b.get("padding", 0), "padding")
        dilation = _pair(b.get("dilation", 1), "dilation") if kind == "max" else (1, 1)
        ceil_mode = bool(b.get("ceil_mode", False))
        grids = tuple(
            sg.pool_grid(x.shape[-2 + a], kernel[a], stride[a], padding[a], dilation[a], ceil_mode, kind,
                         bool(b.get("count_include_pad", True)), b.get("divisor_override"))
            for a in (0, 1)
        )
        self._record(f"{kind}_pool2d", x, tuple(out.shape[-2:]), grids, kernel, stride, padding, dilation, ceil_mode,
                     max(stride) > 1)

    def _adaptive(self, b: dict, result: Any, kind: str) -> None:
        x = b["input"]
        size = b["output_size"]
        size = (size, size) if isinstance(size, int) else tuple(size)
        size = tuple(x.shape[-2 + a] if s is None else int(s) for a, s in enumerate(size))
        grids = tuple(sg.adaptive_grid(x.shape[-2 + a], size[a], kind) for a in (0, 1))
        out = result[0] if isinstance(result, tuple) else result
        self._record(f"adaptive_{kind}_pool2d", x, tuple(out.shape[-2:]), grids, (0, 0), (0, 0), (0, 0), (1, 1),
                     False, tuple(size) != tuple(x.shape[-2:]))

    def _getitem(self, x: Any, index: Any) -> None:
        if not isinstance(x, torch.Tensor) or x.dim() < 4 or isinstance(x, nn.Parameter) or x.requires_grad:
            return
        items = list(index) if isinstance(index, tuple) else [index]
        if any(isinstance(i, torch.Tensor) and i.dtype == torch.bool for i in items):
            return self._refuse_index(index)
        consumed = [i for i in items if i is not None and i is not Ellipsis]
        if Ellipsis in items:
            k = items.index(Ellipsis)
            before = [i for i in items[:k] if i is not None]
            after = [i for i in items[k + 1 :] if i is not None]
            dims = list(range(len(before))) + list(range(x.dim() - len(after), x.dim()))
            consumed = before + after
        else:
            dims = list(range(len(consumed)))
        spatial = {x.dim() - 2: slice(None), x.dim() - 1: slice(None)}
        for d, item in zip(dims, consumed):
            if d in spatial:
                if isinstance(item, slice):
                    spatial[d] = item
                elif isinstance(item, int):
                    spatial[d] = slice(item % x.shape[d], item % x.shape[d] + 1, 1)
                else:
                    return self._refuse_index(index)
        if all(s.indices(x.shape[d]) == (0, x.shape[d], 1) for d, s in spatial.items()):
            return
        grids = tuple(sg.slice_grid(x.shape[d], s.start, s.stop, s.step) for d, s in spatial.items())
        steps = tuple(s.step or 1 for s in spatial.values())
        self._record("slice", x, (grids[0].n_out, grids[1].n_out), grids, (1, 1), steps, (0, 0), (1, 1), False, True)

    def _refuse_index(self, index: Any) -> None:
        layer, module = self._where()
        raise ExactnessError(f"advanced indexing {index!r} of spatial axes in layer {layer!r} ({module}) cannot be judged")

    def _check_pad(self, b: dict) -> None:
        pad = tuple(b["pad"])
        x = b["input"]
        if isinstance(x, torch.Tensor) and x.dim() >= 3:
            pairs = [pad[i : i + 2] for i in range(0, min(len(pad), 4), 2)]
            if any(len(p) == 2 and p[0] != p[1] for p in pairs):
                layer, module = self._where()
                raise ExactnessError(
                    f"asymmetric padding {pad} in layer {layer!r} ({module}): the predictor only judges symmetric padding"
                )

    def _check_string_padding(self, b: dict) -> None:
        if b["padding"] == "same":
            w = b["weight"]
            dilation = _pair(b.get("dilation", 1), "dilation")
            spans = [dilation[a] * (w.shape[-2 + a] - 1) for a in (0, 1)]
            if any(s % 2 for s in spans):
                layer, module = self._where()
                raise ExactnessError(
                    f"padding='same' with even kernel span in layer {layer!r} ({module}) pads one side more: cannot judge"
                )


@contextlib.contextmanager
def _module_stack(model: nn.Module):
    names = {id(m): (n or "<model>", type(m).__name__) for n, m in model.named_modules()}
    stack: list[tuple[str, str]] = []

    def pre(module, _inputs):
        stack.append(names.get(id(module), (type(module).__name__, type(module).__name__)))

    def post(module, _inputs, _output):
        if stack:
            stack.pop()

    h1 = nn.modules.module.register_module_forward_pre_hook(pre)
    h2 = nn.modules.module.register_module_forward_hook(post)
    try:
        yield stack
    finally:
        h1.remove()
        h2.remove()


def _infer_in_channels(model: nn.Module) -> int:
    for attr in ("in_channels",):
        if isinstance(getattr(model, attr, None), int):
            return getattr(model, attr)
    for m in model.modules():
        value = getattr(m, "in_channels", None)
        if isinstance(value, int):
            return value
        in_type = getattr(m, "in_type", None)  # e2cnn R2Conv
        if in_type is not None and hasattr(in_type, "size"):
            return int(in_type.size)
    raise ValueError("cannot infer the model's input channels: pass in_channels=")


def _size_pair(input_size: int | Sequence[int]) -> tuple[int, int]:
    if is_int(input_size, numpy=False):
        size = (input_size, input_size)
    elif isinstance(input_size, (tuple, list)) and len(input_size) == 2 and all(is_int(s, numpy=False) for s in input_size):
        size = (int(input_size[0]), int(input_size[1]))
    else:
        raise ValueError(f"input_size must be an int or a pair (H, W) of ints, got {input_size!r}")
    if min(size) < 1:
        raise ValueError(f"input_size must be positive, got {input_size!r}")
    return size


def _widest_map(model: nn.Module, channels: int) -> int:
    """The most channels a feature map of ``model`` can have (group axis flattened): a bound for memory."""
    widest = channels
    for m in model.modules():
        out = getattr(m, "out_channels", None)
        if isinstance(out, int):
            order = getattr(getattr(m, "group", None), "order", 1)
            widest = max(widest, out * (order if isinstance(order, int) else 1))
        weight = getattr(m, "weight", None)
        if isinstance(weight, torch.Tensor) and weight.dim() >= 3:
            widest = max(widest, int(weight.shape[0]))
    return widest


def physical_memory() -> int:
    """Bytes of RAM on this machine (0 if unknown)."""
    try:
        return os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES")
    except (ValueError, OSError, AttributeError):  # pragma: no cover - non-POSIX
        return 0


def _refuse_huge(model: nn.Module, channels: int, size: tuple[int, int], dtype: torch.dtype) -> None:
    """Refuse, before allocating anything, an input size whose widest feature map cannot fit in memory."""
    element = torch.empty((), dtype=dtype).element_size()
    widest = _widest_map(model, channels)
    need = 2 * size[0] * size[1] * widest * element  # a layer's input and output
    ram = physical_memory()
    if ram and need > ram // 2:
        raise ValueError(
            f"input size {size[0]}x{size[1]} needs about {need / 2**30:.1f} GiB for one layer's feature maps "
            f"({widest} channels), more than half of this machine's {ram / 2**30:.0f} GiB; "
            f"use a smaller size"
        )


def check(
    model: nn.Module,
    input_size: int | Sequence[int],
    group: str | Group = "p4",
    *,
    in_channels: int | None = None,
) -> ExactnessReport:
    """Trace one forward pass of ``model`` at ``input_size`` and report every spatial operation's verdict.

    Args:
        model: any ``nn.Module`` taking ``(B, C, H, W)`` images.
        input_size: ``N`` (square) or ``(H, W)``.
        group: the symmetry group to judge (``"p4"``, ``"p4m"``; ``"z2"`` is trivially exact).
        in_channels: input channels; inferred from the model when omitted.

    Raises:
        ExactnessError: an operation the predictor cannot judge (see module docstring).
        ValueError: a bad argument, or an input size too small for the model.
    """
    grp = get_group(group)
    size = _size_pair(input_size)
    if not isinstance(model, nn.Module):
        raise ValueError(f"model must be a torch.nn.Module, got {type(model).__name__}")
    channels = in_channels if in_channels is not None else _infer_in_channels(model)
    param = next(iter(model.parameters()), None)
    _refuse_huge(model, channels, size, param.dtype if param is not None else torch.float32)
    x = torch.zeros(1, channels, *size, dtype=param.dtype if param is not None else torch.float32,
                    device=param.device if param is not None else "cpu")
    was_training = model.training
    model.eval()
    try:
        with _module_stack(model) as stack, torch.no_grad():
            tracer = _Tracer(grp, stack)
            try:
                with tracer:
                    model(x)
            except ExactnessError:
                raise
            except (RuntimeError, ValueError) as err:
                first = str(err).strip().splitlines()[0] if str(err).strip() else type(err).__name__
                raise ValueError(f"input size {size[0]}x{size[1]} does not fit the model: {first}") from err
    finally:
        model.train(was_training)
    return ExactnessReport(model=type(model).__name__, group=grp, input_size=size, ops=tracer.records)


def size_sweep(model: nn.Module, sizes: Iterable[int], group: str | Group = "p4", **kwargs: Any) -> pd.DataFrame:
    """One row per size: ``size``, ``exact`` (None when the size does not fit the model), the number of
    subsampling operations, the breaking layers and the elements that stay exact."""
    rows = []
    for n in sizes:
        try:
            rep = check(model, int(n), group, **kwargs)
        except ExactnessError:
            raise
        except ValueError as err:
            if "does not fit" not in str(err):
                raise
            rows.append({"size": int(n), "exact": None, "subsampling_ops": None, "breaking": "input too small",
                         "exact_elements": ""})
            continue
        rows.append({"size": int(n), "exact": rep.exact, "subsampling_ops": len(rep.subsampling),
                     "breaking": " ".join(op.layer for op in rep.breaking), "exact_elements": " ".join(rep.exact_elements)})
    return pd.DataFrame(rows, columns=["size", "exact", "subsampling_ops", "breaking", "exact_elements"])


def exact_sizes(model: nn.Module, sizes: Iterable[int], group: str | Group = "p4", **kwargs: Any) -> list[int]:
    """The sizes among ``sizes`` at which ``model`` is exactly equivariant (sizes too small for it excluded)."""
    frame = size_sweep(model, sizes, group, **kwargs)
    return [int(s) for s, e in zip(frame["size"], frame["exact"]) if e is True]


def nearest_exact_size(model: nn.Module, n: int, group: str | Group = "p4", *, direction: str = "nearest",
                       max_distance: int = 64, **kwargs: Any) -> int:
    """The exact input size closest to ``n``, ``n`` itself included (``direction``: ``"nearest"`` — ties go
    up, since upsampling keeps information —, ``"up"`` (``≥ n``) or ``"down"`` (``≤ n``)). Raises ValueError if
    none lies within ``max_distance``."""
    if direction not in ("nearest", "up", "down"):
        raise ValueError(f"direction must be 'nearest', 'up' or 'down', got {direction!r}")
    if not is_int(n) or n < 1:
        raise ValueError(f"n must be a positive int, got {n!r}")
    for dist in range(0, max_distance + 1):
        candidates = []
        if direction in ("nearest", "up"):
            candidates.append(n + dist)
        if (direction == "down" or (direction == "nearest" and dist)) and n - dist >= 1:
            candidates.append(n - dist)
        for c in candidates:
            if exact_sizes(model, [c], group, **kwargs):
                return c
    raise ValueError(f"no exact input size within {max_distance} of {n} ({direction})")


def exact_neighbours(model: nn.Module, n: int, group: str | Group = "p4", **kwargs: Any) -> tuple[int | None, int | None]:
    """The nearest exact input sizes strictly below and strictly above ``n`` (None where there is none)."""
    found: list[int | None] = []
    for direction, start in (("down", n - 1), ("up", n + 1)):
        try:
            found.append(nearest_exact_size(model, start, group, direction=direction, **kwargs) if start >= 1 else None)
        except ValueError:
            found.append(None)
    return found[0], found[1]

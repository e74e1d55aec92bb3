"""The paper's architectures (claim C2): exact at one input size, approximate one pixel away.

For each network of :data:`ARCHITECTURES` — the rotated-MNIST P4CNN, the CIFAR ResNet-44, the official
"ResNet-18" (3×3 stem) and a torchvision-style ResNet-18 (7×7/s2 stem and 3×3/s2 max-pool), all over P4 with
the invariant ``"coset"`` head — the runner asks the exactness predictor (:func:`equiv.exactness.check`)
which subsampling layers break the symmetry at every input size of a sweep and at the pair
(*usual size*, *nearest size with the other verdict*), and then *measures* the equivariance error after every
layer of a randomly initialised network at that pair (:func:`equiv.metrics.layerwise_equivariance`), with our
own group layers and, where the model has one, with the e2cnn backend.

The condition. A subsampling layer (kernel ``k``, stride ``s``, padding ``p``, dilation 1, floor mode) on an
``N × N`` input reads windows starting at ``0, s, 2s, …`` and leaves ``r = (N + 2p − k) mod s`` rows and
columns unread at the bottom and right. A 90° rotation maps row ``i`` to ``N − 1 − i``, so the layer commutes
with P4 iff its windows are mirror-symmetric, i.e. iff ``(N + 2p − k) mod s == 0``; the network is exact iff
every subsampling layer is, each on the size *it* sees. The predictor decides this by enumerating the
windows (:mod:`equiv.sampling_grid`); nothing here re-derives it. The expected exact sizes recorded in
:data:`ARCHITECTURES` (the paper's: P4CNN at even ``N``, ResNet-44 at ``N ≡ 1 mod 4``, ResNet-18 at
``N ≡ 1 mod 8``, torchvision ResNet-18 at ``N ≡ 1 mod 32``) are what the claims ledger checks the
predictor's verdicts against (``C2-architectures`` in :mod:`equiv.claims`).

Nothing is trained and no data is read, so the profiles differ only in the networks' width, the number of
random images per measurement and the sweep ranges — none of which moves a sampling grid: every profile gives
the same verdicts. Measurements are in float64, eval mode (BatchNorm uses its running statistics), on inputs
drawn from ``seed`` (the same images for both backends at a size); weights are drawn from ``seed`` too.

Tables (every one carries the parameters as columns and the provenance in ``attrs``):

- ``networks``: one row per architecture — ``label``, ``model``, ``summary``, ``parameters``, ``usual_size``,
  ``usual_exact``, the measured pair ``exact_size`` / ``approx_size``, ``expected`` (the paper's exact sizes,
  in words) and the ``measured_backends``.
- ``verdicts``: one row per (architecture, input size) — the sweep's sizes and the pair — with ``in_sweep``,
  ``pair``, ``exact`` (predictor), ``expected_exact`` (:data:`ARCHITECTURES`), ``exact_elements``,
  ``subsampling_ops``, ``breaking`` (the breaking layers, space-separated; empty when exact), ``exact_below`` /
  ``exact_above`` (:func:`equiv.exactness.exact_neighbours`) and, at the pair, ``worst_error_min`` /
  ``worst_error_max``: the network's measured error (its largest over every layer, logits included), min /
  max over the backends (NaN elsewhere). The worst layer, not the logits: a narrow random network can have
  dead final features, whose logits are trivially invariant. This is the table the claims ledger reads.
- ``layers``: one row per (architecture, input size, subsampling operation), in forward order — the
  predictor's own table (:meth:`equiv.exactness.ExactnessReport.to_frame`): ``layer``, ``module``, ``op``,
  ``layer_input`` / ``layer_output`` (``HxW``), ``kernel``, ``stride``, ``padding``, ``dilation``,
  ``ceil_mode``, ``r``, ``exact``, …
- ``errors``: one row per (architecture, backend, input size of the pair, layer) in call order — ``exact``
  (the predictor's verdict for the network at that size), ``position``,
  ``layer`` (``<output>`` for the logits), ``module``, ``error`` (max over the elements of P4 of
  ``‖f_l(g·x) − g·f_l(x)‖ / ‖f_l(x)‖``) and ``flagged`` (the predictor names this layer as breaking at this
  size). Containers (stages, blocks) and e2cnn's internal modules are left out.
- ``measured``: one row per (architecture, backend, input size of the pair) — ``exact``, ``output_error``,
  ``max_error``, ``max_before_flagged`` (largest error before the first flagged layer; every layer when
  exact), ``first_rise`` (first layer with error > :data:`equiv.tolerances.BROKEN_MIN`; empty if none),
  ``first_flagged`` (the predictor's first breaking layer; empty when exact) and ``agrees``
  (``first_rise == first_flagged``).

Example::

    >>> from equiv.experiments import run_experiment
    >>> result = run_experiment("architectures", {"profile": "smoke", "architectures": ["p4cnn"]})  # doctest: +SKIP
    >>> result["networks"][["label", "exact_size", "approx_size"]]  # doctest: +SKIP
"""

from __future__ import annotations

import time
from dataclasses import dataclass
from typing import Any, Mapping, Sequence

import pandas as pd
import torch
from torch import nn

from equiv.tolerances import BROKEN_MIN
from equiv.exactness import ExactnessReport, check, exact_neighbours, nearest_exact_size
from equiv.experiments.params import MAX_INPUT_SIZE, Param, check_model_sizes, per_profile, resolve
from equiv.experiments.record import attach
from equiv.experiments.result import ExperimentResult
from equiv.metrics import layerwise_equivariance, worst_per_layer
from equiv.models import BACKENDS, build, describe

__all__ = ["Architecture", "ARCHITECTURES", "SPEC", "architectures", "side_by_side", "sweep_verdicts",
           "sweep_exact_sizes", "measured_numbers", "MAX_DISTANCE"]

#: how far (pixels) from an input size the runner looks for an exact / approximate neighbour
MAX_DISTANCE = 64
_GROUP = "p4"
_ERROR_COLUMNS = ["architecture", "label", "backend", "input_size", "exact", "position", "order", "layer", "module",
                  "error", "flagged"]


@dataclass(frozen=True)
class Architecture:
    """One network of the experiment and what the paper says about it.

    ``key`` is the name the parameters use; ``model`` and ``width_option`` are what
    :func:`equiv.models.build` takes; ``usual_size`` is the size the network's dataset comes in;
    ``sweep`` names the parameter holding its size sweep; ``backends`` are the layer implementations it can
    be built with. The paper's exact sizes are ``N ≡ exact_residue (mod exact_modulus)``.
    """

    key: str
    label: str
    model: str
    width_option: str
    usual_size: int
    sweep: str
    backends: tuple[str, ...]
    exact_modulus: int
    exact_residue: int

    def expected_exact(self, n: int) -> bool:
        """Whether the paper expects the network to be exactly P4-equivariant at input size ``n``."""
        return int(n) % self.exact_modulus == self.exact_residue

    @property
    def expected(self) -> str:
        """The paper's exact sizes in words, e.g. ``"N ≡ 1 (mod 4)"``."""
        if (self.exact_modulus, self.exact_residue) == (2, 0):
            return "N even"
        return f"N ≡ {self.exact_residue} (mod {self.exact_modulus})"

    def build(self, width: int | None, seed: int, backend: str = "native") -> nn.Module:
        """The network over P4 with random weights drawn from ``seed`` (``width`` None: the model's default)."""
        torch.manual_seed(seed)
        options = {} if width is None else {self.width_option: width}
        return build(self.model, group=_GROUP, backend=backend, **options)


#: the networks the experiment checks, in the order the book shows them
ARCHITECTURES: tuple[Architecture, ...] = (
    Architecture("p4cnn", "P4CNN", "p4cnn", "channels", 28, "small_sizes", ("native", "e2cnn"), 2, 0),
    Architecture("resnet44", "ResNet-44", "resnet44", "width", 32, "small_sizes", ("native", "e2cnn"), 4, 1),
    Architecture("resnet18", "ResNet-18", "resnet18", "width", 32, "small_sizes", ("native",), 8, 1),
    Architecture("resnet18_imagenet", "ResNet-18 (torchvision)", "resnet18_imagenet", "width", 224,
                 "imagenet_sizes", ("native",), 32, 1),
)
_BY_KEY = {a.key: a for a in ARCHITECTURES}


def _sizes_ok(sizes: list[int]) -> bool:
    return all(1 <= n <= MAX_INPUT_SIZE for n in sizes)


SPEC = [
    Param("architectures", "list[str]", [a.key for a in ARCHITECTURES], "the networks to check (ARCHITECTURES)",
          choices=tuple(_BY_KEY)),
    Param("width", "int", per_profile(2, 4, None), "channels per rotation (P4CNN) / base width (ResNets); "
          "None: each model's own default", check=lambda v: v >= 1, requirement=">= 1"),
    Param("batch", "int", per_profile(1, 2, 2), "random images per layer-wise measurement",
          check=lambda v: v >= 1, requirement=">= 1"),
    Param("small_sizes", "list[int]", per_profile(list(range(26, 35)), list(range(20, 41)),
                                                          list(range(20, 41))),
          "size sweep of P4CNN and the CIFAR ResNets", check=_sizes_ok, requirement=f"sizes in 1..{MAX_INPUT_SIZE}"),
    Param("imagenet_sizes", "list[int]", per_profile(list(range(222, 227)), list(range(216, 233)),
                                                             list(range(216, 233))),
          "size sweep of the torchvision-style ResNet-18", check=_sizes_ok,
          requirement=f"sizes in 1..{MAX_INPUT_SIZE}"),
    Param("backends", "list[str]", list(BACKENDS), "layer implementations to measure (e2cnn only where the model "
          "has it)", choices=BACKENDS),
    Param("seed", "int", 0, "seeds the random weights and inputs", check=lambda v: v >= 0, requirement=">= 0"),
]


# ------------------------------------------------------------------------------------------- predictor
def _nearest_approximate(model: nn.Module, n: int) -> int:
    """The size closest to ``n`` (ties go up, as in :func:`equiv.exactness.nearest_exact_size`) at which the
    predictor finds ``model`` only approximately equivariant."""
    for dist in range(1, MAX_DISTANCE + 1):
        for m in (n + dist, n - dist):
            if m >= 1 and not check(model, m, _GROUP).exact:
                return m
    raise ValueError(f"no approximate input size within {MAX_DISTANCE} of {n}")


def _pair(model: nn.Module, usual: int) -> tuple[int, int]:
    """(approximate size, exact size): the usual size and the nearest size with the other verdict."""
    if check(model, usual, _GROUP).exact:
        return _nearest_approximate(model, usual), usual
    return usual, nearest_exact_size(model, usual, _GROUP, max_distance=MAX_DISTANCE)


def _verdict_row(arch: Architecture, model: nn.Module, n: int, report: ExactnessReport) -> dict[str, Any]:
    below, above = exact_neighbours(model, n, _GROUP, max_distance=MAX_DISTANCE)
    return {"architecture": arch.key, "label": arch.label, "model": arch.model, "input_size": n,
            "usual_size": arch.usual_size, "exact": report.exact, "expected_exact": arch.expected_exact(n),
            "exact_elements": " ".join(report.exact_elements), "subsampling_ops": len(report.subsampling),
            "breaking": " ".join(op.layer for op in report.breaking), "exact_below": below, "exact_above": above}


def _layer_rows(arch: Architecture, n: int, report: ExactnessReport) -> pd.DataFrame:
    frame = report.to_frame().rename(columns={"input_size": "layer_input", "output_size": "layer_output"})
    frame.insert(0, "input_size", n)
    frame.insert(0, "label", arch.label)
    frame.insert(0, "architecture", arch.key)
    return frame


# ----------------------------------------------------------------------------------------- measurement
def _per_layer(model: nn.Module, x: torch.Tensor) -> pd.DataFrame:
    """Worst error over P4 per layer, in call order, without containers and e2cnn's internal modules."""
    frame = layerwise_equivariance(model, x, _GROUP)
    frame = frame[~frame["layer"].str.contains(r"\.e2")]
    worst = worst_per_layer(frame, ["order", "layer", "module"])
    names = list(worst["layer"])
    inner = [n for n in names if n == "<output>" or not any(m.startswith(n + ".") for m in names)]
    worst = worst[worst["layer"].isin(inner)].reset_index(drop=True)
    worst.insert(0, "position", range(len(worst)))
    return worst


def _measure(arch: Architecture, backend: str, n: int, width: int | None, batch: int,
             seed: int) -> tuple[pd.DataFrame, dict[str, Any]]:
    model = arch.build(width, seed, backend).double().eval()
    report = check(model, n, _GROUP)
    flagged = [op.layer.removesuffix(".e2") for op in report.breaking]
    x = torch.randn(batch, model.in_channels, n, n, dtype=torch.float64, generator=torch.Generator().manual_seed(seed))
    layers = _per_layer(model, x)
    layers["flagged"] = layers["layer"].isin(flagged)
    layers.insert(0, "exact", report.exact)
    layers.insert(0, "input_size", n)
    layers.insert(0, "backend", backend)
    layers.insert(0, "label", arch.label)
    layers.insert(0, "architecture", arch.key)
    risen = layers[layers["error"] > BROKEN_MIN]
    first_rise = str(risen["layer"].iloc[0]) if len(risen) else ""
    first_flagged = flagged[0] if flagged else ""
    marks = layers.loc[layers["layer"] == first_flagged, "position"]
    before = layers[layers["position"] < marks.iloc[0]] if len(marks) else layers
    summary = {"architecture": arch.key, "label": arch.label, "backend": backend, "input_size": n,
               "exact": report.exact, "output_error": float(layers.loc[layers["layer"] == "<output>", "error"].max()),
               "max_error": float(layers["error"].max()),
               "max_before_flagged": float(before["error"].max()) if len(before) else float("nan"),
               "first_rise": first_rise, "first_flagged": first_flagged, "agrees": first_rise == first_flagged}
    return layers, summary


# ---------------------------------------------------------------------------------------------- runner
def architectures(params: Mapping[str, Any] | None = None) -> ExperimentResult:
    """Predictor verdicts over the sweeps and layer-wise measurements at the pair, per architecture.

    Returns tables ``networks``, ``verdicts``, ``layers``, ``errors`` and ``measured`` (module docstring).

    Raises:
        ValueError: a bad parameter, or a size too small for an architecture (one line, before any work).
    """
    p = resolve(SPEC, params, "architectures")
    chosen = [_BY_KEY[k] for k in dict.fromkeys(p["architectures"])]
    for arch in chosen:
        check_model_sizes(arch.sweep, [(f"{n} ({arch.label})", _GROUP, n) for n in p[arch.sweep]],
                          lambda _group, arch=arch: arch.build(p["width"], p["seed"]))
    t0 = time.perf_counter()
    networks, verdicts, layers, errors, measured = [], [], [], [], []
    for arch in chosen:
        model = arch.build(p["width"], p["seed"])
        approx_n, exact_n = _pair(model, arch.usual_size)
        sweep = list(dict.fromkeys(p[arch.sweep]))
        for n in sorted(set(sweep) | {approx_n, exact_n}):
            report = check(model, n, _GROUP)
            verdicts.append({**_verdict_row(arch, model, n, report), "in_sweep": n in sweep,
                             "pair": n in (approx_n, exact_n)})
            layers.append(_layer_rows(arch, n, report))
        backends = [b for b in p["backends"] if b in arch.backends]
        for backend in backends:
            for n in (approx_n, exact_n):
                frame, summary = _measure(arch, backend, n, p["width"], p["batch"], p["seed"])
                errors.append(frame)
                measured.append(summary)
        networks.append({"architecture": arch.key, "label": arch.label, "model": arch.model,
                         "summary": describe(arch.model), "parameters": sum(q.numel() for q in model.parameters()),
                         "usual_size": arch.usual_size, "usual_exact": arch.usual_size == exact_n,
                         "exact_size": exact_n, "approx_size": approx_n, "expected": arch.expected,
                         "measured_backends": " ".join(backends)})
    measured_frame = pd.DataFrame(measured, columns=["architecture", "label", "backend", "input_size", "exact",
                                                     "output_error", "max_error", "max_before_flagged", "first_rise",
                                                     "first_flagged", "agrees"])
    verdict_frame = pd.DataFrame(verdicts)
    spread = measured_frame.groupby(["architecture", "input_size"])["max_error"].agg(["min", "max"])
    keys = list(zip(verdict_frame["architecture"], verdict_frame["input_size"]))
    verdict_frame["worst_error_min"] = [spread["min"].get(k, float("nan")) for k in keys]
    verdict_frame["worst_error_max"] = [spread["max"].get(k, float("nan")) for k in keys]
    seconds = time.perf_counter() - t0
    tables = {"networks": pd.DataFrame(networks), "verdicts": verdict_frame,
              "layers": pd.concat(layers, ignore_index=True),
              "errors": pd.concat(errors, ignore_index=True) if errors else pd.DataFrame(columns=_ERROR_COLUMNS),
              "measured": measured_frame}
    return ExperimentResult({name: attach(frame, "architectures", p, seconds, "cpu")
                             for name, frame in tables.items()})


# ------------------------------------------------------------------------------------------- display
def side_by_side(layers: pd.DataFrame, architecture: str, sizes: Sequence[int]) -> pd.DataFrame:
    """The subsampling operations of one architecture at ``sizes`` side by side, from a ``layers`` table.

    One row per operation (forward order) with ``layer``, ``op``, ``kernel``, ``stride``, ``padding`` and,
    per size ``N``, ``input at N=…``, ``r at N=…`` and ``exact at N=…`` (``yes`` / ``no``). Raises
    ValueError if the table lacks the architecture or a size, or if the sizes meet different operations."""
    part = layers[layers["architecture"] == architecture]
    if part.empty:
        known = ", ".join(dict.fromkeys(layers["architecture"]))
        raise ValueError(f"architecture {architecture!r} is not in the layers table; it has: {known}")
    frames = []
    for n in sizes:
        frame = part[part["input_size"] == n].reset_index(drop=True)
        if frame.empty:
            raise ValueError(f"input size {n} of {architecture!r} is not in the layers table")
        frames.append(frame)
    if any(list(f["layer"]) != list(frames[0]["layer"]) for f in frames):
        raise ValueError(f"the sizes {list(sizes)} of {architecture!r} meet different subsampling operations")
    table = frames[0][["layer", "op", "kernel", "stride", "padding"]].copy()
    for n, frame in zip(sizes, frames):
        table[f"input at N={n}"] = frame["layer_input"].values
        table[f"r at N={n}"] = frame["r"].values
        table[f"exact at N={n}"] = ["yes" if bool(e) else "no" for e in frame["exact"]]
    return table


def sweep_verdicts(verdicts: pd.DataFrame) -> pd.DataFrame:
    """The rows of a ``verdicts`` table that belong to a size sweep, with a column ``sweep``: the parameter
    holding that sweep (``small_sizes``, ``imagenet_sizes``; :attr:`Architecture.sweep`)."""
    unknown = sorted(set(verdicts["architecture"]) - set(_BY_KEY))
    if unknown:
        raise ValueError(f"verdicts table has unknown architecture(s) {', '.join(unknown)}; "
                         f"known: {', '.join(_BY_KEY)}")
    rows = verdicts[verdicts["in_sweep"]]
    return rows.assign(sweep=[_BY_KEY[a].sweep for a in rows["architecture"]]).reset_index(drop=True)


def sweep_exact_sizes(verdicts: pd.DataFrame) -> pd.DataFrame:
    """One row per architecture of a ``verdicts`` table, in its order: ``architecture``, ``label``, ``model``,
    ``exact_sizes`` (the predicted-exact sizes of its sweep, ascending) and ``exact_text`` (them as text,
    ``"none"`` when there are none)."""
    sweeps = sweep_verdicts(verdicts)
    rows = []
    for key, label, model in verdicts[["architecture", "label", "model"]].drop_duplicates().itertuples(index=False):
        found = sweeps[(sweeps["architecture"] == key) & sweeps["exact"].astype(bool)]["input_size"]
        sizes = sorted(int(n) for n in found)
        rows.append({"architecture": key, "label": label, "model": model, "exact_sizes": sizes,
                     "exact_text": ", ".join(map(str, sizes)) or "none"})
    return pd.DataFrame(rows, columns=["architecture", "label", "model", "exact_sizes", "exact_text"])


def measured_numbers(measured: pd.DataFrame) -> dict[str, Any]:
    """The key numbers of a ``measured`` table, over its (network, backend) rows.

    At the approximate sizes: ``n_models`` (rows), ``first_rise_at_predicted`` (rows whose first layer above
    :data:`equiv.tolerances.BROKEN_MIN` is the predictor's first flagged layer), ``max_before_flagged_approx``,
    ``min_logit_error_approx`` / ``max_logit_error_approx`` (the logits' error) and ``max_error_approx_layers``
    (the worst layer); at the exact sizes: ``max_error_exact_layers``. NaN where there is no such row.
    """
    missing = [c for c in ("exact", "agrees", "max_error", "max_before_flagged", "output_error")
               if c not in measured.columns]
    if missing:
        raise ValueError(f"measured table lacks column(s) {', '.join(missing)}")
    exact = measured["exact"].astype(bool)
    approx, exact_rows = measured[~exact], measured[exact]
    return {"n_models": len(approx), "first_rise_at_predicted": int(approx["agrees"].astype(bool).sum()),
            "max_error_exact_layers": float(exact_rows["max_error"].max()),
            "max_before_flagged_approx": float(approx["max_before_flagged"].max()),
            "min_logit_error_approx": float(approx["output_error"].min()),
            "max_logit_error_approx": float(approx["output_error"].max()),
            "max_error_approx_layers": float(approx["max_error"].max())}

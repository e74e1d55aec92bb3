"""One runner per paper experiment: a plain dict of parameters in, tidy tables out.

=====================================  ==========================================================
``rotated_mnist``                      C3, C4: exact vs approximate P4CNN vs Z2, 36 test angles
``learning_unequivariance``            C5: a 14-parameter P4 layer tells an image from its rotation
``layerwise_equivariance``             C1, C5: per-layer equivariance error over training
``classification_benchmark``           C4: ResNet-44 P4/P4M at 32 vs 33, seen / unseen protocol
``architectures``                      C2: the paper's four networks, exact vs approximate sizes (no training)
=====================================  ==========================================================

Each runner validates its parameters before any work (:mod:`equiv.experiments.params`), takes a
``profile`` (``smoke``, ``book`` — the default —, ``paper``) that sets every default, and returns an
:class:`ExperimentResult` whose tables carry parameters and provenance. :func:`run_experiment` adds
result caching (:mod:`equiv.experiments.cache`), which is what the notebooks call.
"""

from __future__ import annotations

from typing import Any, Callable, Mapping

from equiv.experiments.architectures import SPEC as _ARCHITECTURES_SPEC
from equiv.experiments.architectures import architectures
from equiv.experiments.benchmark import SPEC as _BENCHMARK_SPEC
from equiv.experiments.benchmark import classification_benchmark
from equiv.experiments.cache import run_cached
from equiv.experiments.layerwise import SPEC as _LAYERWISE_SPEC
from equiv.experiments.layerwise import layerwise_equivariance_experiment
from equiv.experiments.params import PROFILES, Param, resolve, resolve_profile
from equiv.experiments.result import ExperimentResult
from equiv.experiments.rotated_mnist import SPEC as _ROTMNIST_SPEC
from equiv.experiments.rotated_mnist import rotated_mnist
from equiv.experiments.unequivariance import SPEC as _UNEQ_SPEC
from equiv.experiments.unequivariance import learning_unequivariance

__all__ = [
    "EXPERIMENTS",
    "PROFILES",
    "ExperimentResult",
    "rotated_mnist",
    "learning_unequivariance",
    "layerwise_equivariance",
    "classification_benchmark",
    "architectures",
    "run_experiment",
    "resolve_params",
    "resolve_profile",
]

layerwise_equivariance = layerwise_equivariance_experiment

#: name → (runner, parameter declarations)
EXPERIMENTS: dict[str, tuple[Callable[..., ExperimentResult], list[Param]]] = {
    "rotated_mnist": (rotated_mnist, _ROTMNIST_SPEC),
    "learning_unequivariance": (learning_unequivariance, _UNEQ_SPEC),
    "layerwise_equivariance": (layerwise_equivariance_experiment, _LAYERWISE_SPEC),
    "classification_benchmark": (classification_benchmark, _BENCHMARK_SPEC),
    "architectures": (architectures, _ARCHITECTURES_SPEC),
}


def resolve_params(name: str, params: Mapping[str, Any] | None = None) -> dict[str, Any]:
    """The complete, checked parameters of experiment ``name`` (profile defaults filled in)."""
    if name not in EXPERIMENTS:
        raise ValueError(f"unknown experiment {name!r}; allowed: {', '.join(EXPERIMENTS)}")
    return resolve(EXPERIMENTS[name][1], params, name)


def run_experiment(name: str, params: Mapping[str, Any] | None = None, *, cache: bool = True,
                   **kwargs: Any) -> ExperimentResult:
    """Validate ``params``, then run experiment ``name`` — or load its cached result (``cache=True``)."""
    resolved = resolve_params(name, params)
    runner = EXPERIMENTS[name][0]
    if not cache:
        return runner(resolved, **kwargs)
    return run_cached(name, runner, resolved, **kwargs)

"""Seeds and determinism, set in library code so that notebooks never have to.

:func:`seed_everything` seeds Python, NumPy and torch (CPU and CUDA) and switches torch to
deterministic algorithms. Same seed, same device, same library versions: identical numbers.
"""

from __future__ import annotations

import os
import random

import numpy as np
import torch

from equiv.validation import is_int

__all__ = ["seed_everything", "make_generator"]


def seed_everything(seed: int, *, deterministic: bool = True) -> torch.Generator:
    """Seed every RNG and (by default) force deterministic kernels; return a seeded CPU generator."""
    if not is_int(seed, numpy=False) or seed < 0:
        raise ValueError(f"seed must be a non-negative int, got {seed!r}")
    random.seed(seed)
    np.random.seed(seed % 2**32)
    torch.manual_seed(seed)
    if deterministic:
        os.environ.setdefault("CUBLAS_WORKSPACE_CONFIG", ":4096:8")
        torch.use_deterministic_algorithms(True, warn_only=True)
        torch.backends.cudnn.benchmark = False
        torch.backends.cudnn.deterministic = True
    return make_generator(seed)


def make_generator(seed: int, device: str | torch.device = "cpu") -> torch.Generator:
    """A torch generator seeded with ``seed`` (for samplers and data shuffles)."""
    gen = torch.Generator(device=device)
    gen.manual_seed(seed)
    return gen

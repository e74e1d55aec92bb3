"""Checkpoints as plain state dicts, written atomically and loaded with ``weights_only=True``.

A checkpoint file holds ``{"state_dict": ..., "meta": {...}}`` where ``meta`` is JSON-able (model name,
options, parameters, provenance). Loading never unpickles arbitrary objects.
"""

from __future__ import annotations

import io
import os
from pathlib import Path
from typing import Any

import torch
from torch import nn

from equiv.atomic_io import atomic_write_bytes

__all__ = ["save_checkpoint", "load_checkpoint"]


def save_checkpoint(model: nn.Module, path: str | os.PathLike, **meta: Any) -> Path:
    """Write ``model.state_dict()`` (moved to CPU) and ``meta`` to ``path`` atomically."""
    buf = io.BytesIO()
    state = {k: v.detach().cpu() for k, v in model.state_dict().items()}
    torch.save({"state_dict": state, "meta": meta}, buf)
    return atomic_write_bytes(path, buf.getvalue())


def load_checkpoint(path: str | os.PathLike, model: nn.Module | None = None, *, map_location: str = "cpu") -> dict[str, Any]:
    """Load a checkpoint safely (``weights_only=True``); if ``model`` is given, load its weights into it
    (strictly). Returns ``{"state_dict": ..., "meta": ...}``."""
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"no checkpoint at {path}")
    payload = torch.load(path, map_location=map_location, weights_only=True)
    if not isinstance(payload, dict) or "state_dict" not in payload:
        raise ValueError(f"{path} is not an equiv checkpoint (no 'state_dict' entry)")
    if model is not None:
        model.load_state_dict(payload["state_dict"])
    return payload

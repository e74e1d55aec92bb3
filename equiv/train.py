"""Training: one :func:`fit` for every experiment — in-memory tensors, seeded, deterministic on CPU.

``fit`` trains a classifier on :class:`equiv.data.ImageSplits` (or a plain ``(x, y)`` pair) with Adam or
SGD, a StepLR / one-cycle / constant schedule, an optional training-rotation regime
(:mod:`equiv.data.regimes`), and returns a :class:`History` with per-epoch loss and accuracy. Data stay
tensors on the device (no DataLoader, no per-image PIL work); batches are drawn with a seeded generator,
so the same seed on the same device and library versions gives identical numbers.
"""

from __future__ import annotations

import os
import time
from dataclasses import asdict, dataclass, field
from typing import Any, Callable, Mapping

import pandas as pd
import torch
import torch.nn.functional as F
from torch import nn
from tqdm.auto import tqdm

from equiv.allocator import keep_freed_memory
from equiv.reproducibility import make_generator, seed_everything
from equiv.settings import PROGRESS_ENV
from equiv.validation import is_finite_real, is_int, is_real

__all__ = ["History", "fit", "evaluate", "resolve_device", "OPTIMIZERS", "SCHEDULES"]

OPTIMIZERS = ("adam", "sgd")
SCHEDULES = ("step", "onecycle", "constant")


@dataclass
class History:
    """Per-epoch training record; ``to_frame()`` gives one tidy row per epoch."""

    epochs: list[dict[str, float]] = field(default_factory=list)
    settings: dict[str, Any] = field(default_factory=dict)
    seconds: float = 0.0

    def to_frame(self) -> pd.DataFrame:
        return pd.DataFrame(self.epochs)

    @property
    def last(self) -> dict[str, float]:
        return self.epochs[-1] if self.epochs else {}

    def as_dict(self) -> dict[str, Any]:
        return asdict(self)


def resolve_device(device: str | torch.device | None = "auto") -> torch.device:
    """``"auto"``/None → CUDA when available, else CPU; anything else is taken as given (and checked)."""
    if device is None or device == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    try:
        dev = torch.device(device)
    except (RuntimeError, TypeError):
        raise ValueError(f"device must be 'auto', 'cpu', 'cuda' or 'cuda:N', got {device!r}") from None
    if dev.type == "cuda" and not torch.cuda.is_available():
        raise ValueError(f"device {device!r} was asked for but CUDA is not available here; allowed: 'auto' or 'cpu'")
    return dev


def _check_positive(name: str, value: Any, kind: type = int) -> None:
    ok = is_real(value, numpy=False) if kind is float else is_int(value, numpy=False)
    if not ok or value <= 0:
        raise ValueError(f"{name} must be a positive {kind.__name__}, got {value!r}")


def _schedule(spec: str | Mapping[str, Any], optimizer: torch.optim.Optimizer, lr: float, epochs: int,
              steps_per_epoch: int) -> tuple[torch.optim.lr_scheduler.LRScheduler | None, bool]:
    """The scheduler and whether it steps per batch (one-cycle) or per epoch (StepLR)."""
    spec = {"name": spec} if isinstance(spec, str) else dict(spec)
    name = spec.pop("name", None)
    if name not in SCHEDULES:
        raise ValueError(f"unknown schedule {name!r}; allowed: {', '.join(SCHEDULES)}")
    allowed = {"step": {"step_size", "gamma"}, "onecycle": {"pct_start"}, "constant": set()}[name]
    if set(spec) - allowed:
        raise ValueError(f"unknown option(s) {sorted(set(spec) - allowed)} for schedule {name!r}; allowed: {sorted(allowed)}")
    if name == "step":  # the paper's rotated-MNIST setting: halve every 10 epochs
        return torch.optim.lr_scheduler.StepLR(optimizer, spec.get("step_size", 10), spec.get("gamma", 0.5)), False
    if name == "onecycle":
        return torch.optim.lr_scheduler.OneCycleLR(optimizer, max_lr=lr, epochs=epochs, steps_per_epoch=steps_per_epoch,
                                                   pct_start=spec.get("pct_start", 0.3)), True
    return None, False


@torch.no_grad()
def evaluate(model: nn.Module, x: torch.Tensor, y: torch.Tensor, *, batch_size: int = 1024) -> tuple[float, float]:
    """Mean cross-entropy and top-1 accuracy (percent) of ``model`` in eval mode on ``(x, y)``."""
    was_training = model.training
    model.eval()
    dev = next(model.parameters()).device
    loss = torch.zeros((), dtype=torch.float64, device=dev)  # on the device, as in fit: one synchronisation
    correct = torch.zeros((), dtype=torch.int64, device=dev)
    for i in range(0, y.shape[0], batch_size):
        xb, yb = x[i : i + batch_size].to(dev), y[i : i + batch_size].to(dev)
        out = model(xb)
        loss += F.cross_entropy(out, yb, reduction="sum").double()
        correct += (out.argmax(1) == yb).sum()
    model.train(was_training)
    n = max(int(y.shape[0]), 1)
    return loss.item() / n, 100.0 * correct.item() / n


def _progress_enabled(progress: bool | None) -> bool:
    if progress is not None:
        return progress
    return os.environ.get(PROGRESS_ENV, "1") not in ("0", "false", "no")


def fit(
    model: nn.Module,
    data: Any,
    *,
    epochs: int,
    lr: float = 1e-3,
    weight_decay: float = 0.0,
    schedule: str | Mapping[str, Any] = "constant",
    batch_size: int = 256,
    seed: int = 0,
    device: str | torch.device | None = "auto",
    optimizer: str = "adam",
    regime: Any = None,
    evaluate_on: str | None = "val",
    progress: bool | None = None,
    on_epoch_end: Callable[[int, nn.Module], None] | None = None,
) -> History:
    """Train ``model`` in place and return its :class:`History`.

    Args:
        model: a classifier taking ``(B, C, H, W)`` and returning logits.
        data: :class:`equiv.data.ImageSplits` (trains on ``train``, evaluates on ``evaluate_on``) or a pair
            ``(x, y)`` of training tensors (no evaluation split).
        epochs, lr, weight_decay, batch_size: the usual; all checked before any work.
        schedule: ``"step"`` (StepLR, step 10, γ 0.5 — the paper's rotated-MNIST setting; override with
            ``{"name": "step", "step_size": ..., "gamma": ...}``), ``"onecycle"`` (max lr = ``lr``) or ``"constant"``.
        seed: seeds Python/NumPy/torch and the batch order; deterministic algorithms are switched on.
        device: ``"auto"`` (CUDA when available), ``"cpu"``, ``"cuda"``, ``"cuda:N"``.
        optimizer: ``"adam"`` or ``"sgd"`` (momentum 0.9).
        regime: a training-rotation regime from :func:`equiv.data.regimes.make_regime` (or its name);
            each batch is rotated by it before the forward pass. None: upright.
        evaluate_on: the split evaluated after each epoch (``"val"``, ``"test"`` or None).
        progress: show a tqdm bar over epochs (default: on unless ``EQUIV_PROGRESS=0``).
        on_epoch_end: called as ``on_epoch_end(epoch, model)`` after each epoch (e.g. to measure equivariance).
    """
    _check_positive("epochs", epochs)
    _check_positive("batch_size", batch_size)
    _check_positive("lr", lr, float)
    if not is_finite_real(weight_decay) or weight_decay < 0:
        raise ValueError(f"weight_decay must be a number >= 0, got {weight_decay!r}")
    if optimizer not in OPTIMIZERS:
        raise ValueError(f"unknown optimizer {optimizer!r}; allowed: {', '.join(OPTIMIZERS)}")
    if isinstance(data, (tuple, list)) and len(data) == 2:
        train_x, train_y = data
        eval_split = None
        fill = None
    elif hasattr(data, "train") and hasattr(data, "split"):
        train_x, train_y = data.train
        if evaluate_on not in (None, "train", "val", "test"):
            raise ValueError(f"evaluate_on must be 'train', 'val', 'test' or None, got {evaluate_on!r}")
        eval_split = data.split(evaluate_on) if evaluate_on else None
        fill = data.fill if getattr(data, "background", None) is not None else None
    else:
        raise ValueError(f"data must be ImageSplits or a pair (x, y) of tensors, got {type(data).__name__}")
    if train_x.dim() != 4 or train_y.shape != (train_x.shape[0],):
        raise ValueError(f"training data must be x (N, C, H, W) and y (N,), got {tuple(train_x.shape)} and {tuple(train_y.shape)}")
    if regime is not None:
        from equiv.data.regimes import make_regime

        regime = make_regime(regime) if isinstance(regime, (str, dict)) else regime
    dev = resolve_device(device)
    keep_freed_memory()  # equiv.allocator: a step's activations are not page-faulted in again every step
    steps_per_epoch = -(-int(train_y.shape[0]) // batch_size)
    seed_everything(seed)
    model.to(dev)
    train_x, train_y = train_x.to(dev), train_y.to(dev)
    params = [p for p in model.parameters() if p.requires_grad]
    opt = (torch.optim.Adam(params, lr=lr, weight_decay=weight_decay) if optimizer == "adam"
           else torch.optim.SGD(params, lr=lr, momentum=0.9, weight_decay=weight_decay))
    scheduler, per_batch = _schedule(schedule, opt, lr, epochs, steps_per_epoch)
    gen = make_generator(seed)
    history = History(settings={"epochs": epochs, "lr": lr, "weight_decay": weight_decay,
                                "schedule": schedule if isinstance(schedule, str) else dict(schedule),
                                "batch_size": batch_size, "seed": seed, "device": str(dev), "optimizer": optimizer,
                                "regime": getattr(regime, "name", None) if regime is not None else "upright"})
    t_start = time.perf_counter()
    bar = tqdm(range(epochs), desc="epochs", unit="epoch", disable=not _progress_enabled(progress), leave=True,
               mininterval=1.0)
    for epoch in bar:
        model.train()
        t0 = time.perf_counter()
        order_cpu = torch.randperm(train_y.shape[0], generator=gen)
        order = order_cpu.to(dev)
        # running sums stay on the device: no host synchronisation per step (on a GPU it would stall the queue).
        # float64 sums of the same float32 values in the same order as Python floats: the same numbers
        loss_sum = torch.zeros((), dtype=torch.float64, device=dev)
        correct = torch.zeros((), dtype=torch.int64, device=dev)
        seen = 0
        for i in range(0, order.numel(), batch_size):
            idx = order[i : i + batch_size]
            xb, yb = train_x.index_select(0, idx), train_y.index_select(0, idx)
            if regime is not None:
                xb = _apply_regime(regime, xb, order_cpu[i : i + batch_size], epoch, gen, fill)
            out = model(xb)
            loss = F.cross_entropy(out, yb)
            opt.zero_grad(set_to_none=True)
            loss.backward()
            opt.step()
            if scheduler is not None and per_batch:
                scheduler.step()
            loss_sum += loss.detach().double() * yb.shape[0]
            correct += (out.argmax(1) == yb).sum()
            seen += yb.shape[0]
        lr_now = opt.param_groups[0]["lr"]
        if scheduler is not None and not per_batch:
            scheduler.step()
        row = {"epoch": epoch + 1, "train_loss": loss_sum.item() / seen, "train_accuracy": 100.0 * correct.item() / seen,
               "lr": lr_now}
        if eval_split is not None:
            row[f"{evaluate_on}_loss"], row[f"{evaluate_on}_accuracy"] = evaluate(model, *eval_split)
        row["seconds"] = time.perf_counter() - t0
        history.epochs.append(row)
        bar.set_postfix({k: f"{v:.3g}" for k, v in row.items() if k.endswith(("loss", "accuracy"))}, refresh=False)
        if on_epoch_end is not None:
            on_epoch_end(epoch + 1, model)
    bar.close()
    model.eval()
    history.seconds = time.perf_counter() - t_start
    return history


def _apply_regime(regime: Any, xb: torch.Tensor, idx: torch.Tensor, epoch: int, gen: torch.Generator, fill):
    """``xb`` rotated by ``regime``; ``idx`` (on the CPU) are the batch's rows of the training set."""
    out = regime(xb, idx, epoch=epoch, generator=gen, fill=fill)
    return out[0] if isinstance(out, tuple) else out

"""P4CNN on a GPU: training throughput in fp32, TF32 and bf16, the invariance each precision keeps, and the time
of one paper-scale training run (issue 10's device figures; prepared before any device was lent).

For each precision the script

- evaluates an exact P4CNN (28×28) and an approximate one (27×27), both first trained for ``--warm-epochs`` in
  fp32 on ``--warm-digits`` embedded digits, in that precision on the test digits: the relative invariance error
  of the logits (:func:`equiv.metrics.equivariance_error`, worst over the rotations) and how many test digits
  change their predicted class under a 90°, 180° or 270° rotation. A precision **keeps exactness** iff no
  prediction of the exact model changes: the study's requirement that an exact P4 run has identical accuracies
  at 0°, 90°, 180° and 270°. The approximate model is the contrast that shows the check can fail. This rule is
  fixed here, before any GPU run;
- times training steps (forward, cross-entropy, backward, Adam) of the exact P4CNN at ``--batch`` (256, the
  paper's), under the library's deterministic settings (:func:`equiv.reproducibility.seed_everything`, as
  :func:`equiv.train.fit` runs), median of ``--steps`` after warm-up: images per second.

``fp32`` turns TF32 off for matrix products and cuDNN convolutions, ``tf32`` turns it on for both, ``bf16`` runs
under ``torch.autocast(dtype=torch.bfloat16)`` with TF32 off. PyTorch's own defaults are recorded beside them
(its cuDNN default is TF32 *on*). On a CPU, ``tf32`` is skipped with the reason printed (the flags do nothing
there).

Then one paper-scale training run, timed: :func:`equiv.train.fit` of the exact P4CNN for ``--epochs`` (50)
epochs on ``--train`` (8,000) digits, batch 256, Adam lr 0.01 with StepLR (10, 0.5), in fp32 with PyTorch's
default flags (what ``fit`` does today), no per-epoch validation. The embedded data hold 4,000 training digits,
so the 8,000 are those digits repeated: the time depends on how many digits there are, not on which.

    python benchmarks/gpu.py [--device cuda] [--out FILE.json] [--steps 50] [--epochs 50] [--train 8000]

The test suite runs it on the CPU at tiny sizes. ``--out`` writes every figure, the parameters and
:func:`equiv.provenance.environment` to a JSON file (atomically).
"""

from __future__ import annotations

import argparse
import contextlib
import statistics
import time
from typing import Iterator

import torch
import torch.nn.functional as F

from equiv import data
from equiv.atomic_io import atomic_write_json
from equiv.metrics import equivariance_error
from equiv.models import build
from equiv.provenance import device_description, environment
from equiv.reproducibility import seed_everything
from equiv.train import fit, resolve_device

PRECISIONS = ("fp32", "tf32", "bf16")


def _sync(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize(device)


@contextlib.contextmanager
def precision(name: str, device: torch.device) -> Iterator[None]:
    """Run the block in precision ``name`` (see the module docstring); the TF32 flags are restored after."""
    if name not in PRECISIONS:
        raise ValueError(f"unknown precision {name!r}; allowed: {', '.join(PRECISIONS)}")
    saved = torch.backends.cuda.matmul.allow_tf32, torch.backends.cudnn.allow_tf32
    torch.backends.cuda.matmul.allow_tf32 = torch.backends.cudnn.allow_tf32 = name == "tf32"
    try:
        if name == "bf16":
            with torch.autocast(device.type, dtype=torch.bfloat16):
                yield
        else:
            yield
    finally:
        torch.backends.cuda.matmul.allow_tf32, torch.backends.cudnn.allow_tf32 = saved


def invariance(model: torch.nn.Module, x: torch.Tensor, name: str, device: torch.device) -> dict[str, float | int]:
    """Worst relative invariance error of the logits over the four rotations, and how many of the digits change
    their predicted class under some rotation, with ``model`` run in precision ``name``."""
    model.eval()
    with torch.no_grad(), precision(name, device):
        errors = equivariance_error(model, x, "p4")
        base = model(x).argmax(1)
        changed = torch.zeros_like(base, dtype=torch.bool)
        for k in (1, 2, 3):
            changed |= model(torch.rot90(x, k, (-2, -1))).argmax(1) != base
    return {"relative_error": float(errors["error"].max()), "changed_predictions": int(changed.sum())}


def step_throughput(x: torch.Tensor, y: torch.Tensor, name: str, device: torch.device, steps: int,
                    warmup: int) -> dict[str, float]:
    """Median training-step time of a fresh exact P4CNN on the batch ``(x, y)`` in precision ``name``."""
    seed_everything(0)
    model = build("p4cnn", group="p4").to(device)
    opt = torch.optim.Adam(model.parameters(), 1e-3)
    model.train()
    times = []
    for i in range(warmup + steps):
        _sync(device)
        t0 = time.perf_counter()
        with precision(name, device):
            loss = F.cross_entropy(model(x), y)
        opt.zero_grad(set_to_none=True)
        loss.backward()
        opt.step()
        _sync(device)
        if i >= warmup:
            times.append(time.perf_counter() - t0)
    step = statistics.median(times)
    return {"step_ms": 1e3 * step, "images_per_s": x.shape[0] / step}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--device", default="auto", help="auto, cpu, cuda or cuda:N")
    ap.add_argument("--batch", type=int, default=256)
    ap.add_argument("--steps", type=int, default=50, help="timed training steps per precision")
    ap.add_argument("--warmup", type=int, default=10)
    ap.add_argument("--warm-epochs", type=int, default=2, help="fp32 training before the invariance checks")
    ap.add_argument("--warm-digits", type=int, default=4000, help="training digits of that warm-up (at most 4,000)")
    ap.add_argument("--test", type=int, default=1000, help="test digits of the invariance checks")
    ap.add_argument("--epochs", type=int, default=50, help="epochs of the timed paper-scale run")
    ap.add_argument("--train", type=int, default=8000, help="digits of the timed paper-scale run")
    ap.add_argument("--out", default=None, help="JSON file for the figures")
    args = ap.parse_args()
    for name in ("batch", "steps", "warm_epochs", "warm_digits", "test", "epochs", "train"):
        if getattr(args, name) < 1:
            ap.error(f"--{name.replace('_', '-')} must be >= 1, got {getattr(args, name)}")
    if args.warmup < 0:
        ap.error(f"--warmup must be >= 0, got {args.warmup}")
    if args.test > 1000 or args.warm_digits > 4000:
        ap.error(f"need --test <= 1000 and --warm-digits <= 4000 (the embedded digits' test and training splits), "
                 f"got --test {args.test} --warm-digits {args.warm_digits}")
    device = resolve_device(args.device)
    print(f"machine: {device_description(device)}")
    defaults = {"matmul_allow_tf32": torch.backends.cuda.matmul.allow_tf32,
                "cudnn_allow_tf32": torch.backends.cudnn.allow_tf32}
    print(f"PyTorch defaults: {defaults}")

    splits = data.mnist("embedded", seed=0, train_size=4000, val_size=0, test_size=1000)
    models, prepared_at = {}, {}
    for size in (28, 27):
        prepared = prepared_at[size] = splits.prepared(size, device=device)
        seed_everything(1)
        model = build("p4cnn", group="p4")
        warm = prepared.train[0][: args.warm_digits], prepared.train[1][: args.warm_digits]
        fit(model, warm, epochs=args.warm_epochs, lr=3e-3, batch_size=64, seed=1, device=device, progress=False)
        models[size] = (model, prepared.test[0][: args.test])
    x28 = prepared_at[28].train
    gen = torch.Generator().manual_seed(0)
    pick = torch.randint(0, x28[1].shape[0], (args.batch,), generator=gen).to(device)
    batch = x28[0].index_select(0, pick), x28[1].index_select(0, pick)

    rows = []
    print(f"{'precision':<10}{'img/s':>10}{'step ms':>10}{'exact err':>12}{'changed':>9}{'approx err':>12}"
          f"{'changed':>9}  keeps exactness")
    for name in PRECISIONS:
        if name == "tf32" and device.type != "cuda":
            print(f"{name:<10}skipped: TF32 exists on CUDA devices only, this is {device}")
            continue
        exact = invariance(*models[28], name, device)
        approx = invariance(*models[27], name, device)
        speed = step_throughput(*batch, name, device, args.steps, args.warmup)
        keeps = exact["changed_predictions"] == 0
        rows.append({"precision": name, **speed, "exact_relative_error": exact["relative_error"],
                     "exact_changed_predictions": exact["changed_predictions"],
                     "approx_relative_error": approx["relative_error"],
                     "approx_changed_predictions": approx["changed_predictions"], "test_digits": args.test,
                     "keeps_exactness": keeps})
        print(f"{name:<10}{speed['images_per_s']:>10.0f}{speed['step_ms']:>10.2f}{exact['relative_error']:>12.2e}"
              f"{exact['changed_predictions']:>9}{approx['relative_error']:>12.2e}{approx['changed_predictions']:>9}  "
              f"{'yes' if keeps else 'no'}")

    reps = -(-args.train // 4000)
    train = tuple(t.repeat(reps, *([1] * (t.dim() - 1)))[: args.train] for t in x28)
    seed_everything(1)
    model = build("p4cnn", group="p4")
    _sync(device)
    t0 = time.perf_counter()
    history = fit(model, train, epochs=args.epochs, lr=0.01, weight_decay=1e-5, schedule="step", batch_size=256,
                  seed=1, device=device, progress=False)
    _sync(device)
    run = {"seconds": time.perf_counter() - t0, "fit_seconds": history.seconds, "epochs": args.epochs,
           "digits": args.train, "batch_size": 256, "final_train_accuracy": history.last["train_accuracy"]}
    print(f"paper-scale run ({args.epochs} epochs, {args.train} digits, batch 256, fp32): {run['seconds']:.1f} s "
          f"(final training accuracy {run['final_train_accuracy']:.2f} %)")
    if args.out:
        atomic_write_json(args.out, {"precisions": rows, "paper_run": run, "torch_defaults": defaults,
                                     "parameters": vars(args), "environment": environment(device)})
        print(f"wrote {args.out}")


if __name__ == "__main__":
    main()

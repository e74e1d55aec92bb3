"""Training and evaluation throughput of the rotated-MNIST P4CNN, measured side by side in one run.

1. ``equiv.train.fit`` on in-memory tensors vs a bare hand-written PyTorch loop over the same tensors
   (same model, batch size, optimizer): target ≥ 0.95× the bare loop's images/s.
2. The same training step fed by a DataLoader with a per-image PIL resize + rotate pipeline like the
   official code's: the speed-up of in-memory tensors over it.
3. A 36-angle rotation sweep over 2,000 test digits (``equiv.metrics.accuracy_vs_rotation``) as a
   multiple of 36 plain forward passes over the same digits: target ≤ 1.3×.

    python benchmarks/training.py [--epochs 2] [--threads 2]
"""

from __future__ import annotations

import argparse
import time

import numpy as np
import torch
import torch.nn.functional as F

from equiv.data import mnist
from equiv.evaluation import TEST_ANGLES
from equiv.metrics import accuracy_vs_rotation
from equiv.models import build
from equiv.reproducibility import seed_everything
from equiv.train import fit
from equiv.provenance import device_description

SIZE, BATCH = 27, 256


def bare_loop(model, x, y, epochs: int) -> None:
    opt = torch.optim.Adam(model.parameters(), lr=0.01, weight_decay=1e-5)
    gen = torch.Generator().manual_seed(0)
    model.train()
    for _ in range(epochs):
        order = torch.randperm(len(y), generator=gen)
        for i in range(0, len(y), BATCH):
            idx = order[i : i + BATCH]
            loss = F.cross_entropy(model(x[idx]), y[idx])
            opt.zero_grad()
            loss.backward()
            opt.step()


class PILDataset(torch.utils.data.Dataset):
    """Per-image PIL pipeline like the official code's: uint8 → PIL → resize → rotate → tensor → normalise."""

    def __init__(self, images: np.ndarray, labels: np.ndarray, mean: float, std: float) -> None:
        self.images, self.labels, self.mean, self.std = images, labels, mean, std

    def __len__(self) -> int:
        return len(self.labels)

    def __getitem__(self, i: int):
        from PIL import Image

        img = Image.fromarray(self.images[i]).resize((SIZE, SIZE), Image.BILINEAR)
        img = img.rotate(0.0, resample=Image.BILINEAR, fillcolor=0)  # upright training: rotation by 0, as the official loader
        t = torch.from_numpy(np.asarray(img, dtype=np.float32) / 255.0).unsqueeze(0)
        return (t - self.mean) / self.std, int(self.labels[i])


def pil_loop(model, dataset, epochs: int) -> None:
    loader = torch.utils.data.DataLoader(dataset, batch_size=BATCH, shuffle=True, num_workers=0)
    opt = torch.optim.Adam(model.parameters(), lr=0.01, weight_decay=1e-5)
    model.train()
    for _ in range(epochs):
        for xb, yb in loader:
            loss = F.cross_entropy(model(xb), yb)
            opt.zero_grad()
            loss.backward()
            opt.step()


def timed(fn) -> float:
    t0 = time.perf_counter()
    fn()
    return time.perf_counter() - t0


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--epochs", type=int, default=2)
    ap.add_argument("--threads", type=int, default=torch.get_num_threads())
    ap.add_argument("--repeats", type=int, default=2)
    args = ap.parse_args()
    torch.set_num_threads(args.threads)
    print(f"machine: {device_description('cpu')}")  # the CPU and its instruction set: timings depend on them
    raw = mnist(seed=0, train_size=3000, val_size=0, test_size=2000)
    data = raw.prepared(SIZE)
    x, y = data.train
    n_img = len(y) * args.epochs
    images_u8 = (raw.train[0][:, 0].numpy() * 255).round().astype(np.uint8)
    pil = PILDataset(images_u8, raw.train[1].numpy(), data.mean[0], data.std[0])

    def new_model():
        seed_everything(0)
        return build("p4cnn", group="p4", dropout=0.3)

    times = {"fit": [], "bare": [], "pil": []}
    timed(lambda: bare_loop(new_model(), x, y, 1))  # warm-up
    for _ in range(args.repeats):  # interleaved
        times["fit"].append(timed(lambda: fit(new_model(), (x, y), epochs=args.epochs, lr=0.01, weight_decay=1e-5,
                                              batch_size=BATCH, device="cpu", progress=False)))
        times["bare"].append(timed(lambda: bare_loop(new_model(), x, y, args.epochs)))
        times["pil"].append(timed(lambda: pil_loop(new_model(), pil, args.epochs)))
    best = {k: min(v) for k, v in times.items()}
    print(f"P4CNN at {SIZE}x{SIZE}, {len(y)} digits x {args.epochs} epochs, batch {BATCH}, {args.threads} threads "
          f"(best of {args.repeats}, interleaved)")
    for k, label in (("fit", "equiv.train.fit (tensors)"), ("bare", "bare PyTorch loop (tensors)"),
                     ("pil", "DataLoader + per-image PIL")):
        print(f"  {label:<32}{best[k]:8.2f} s {n_img / best[k]:9.0f} images/s")
    print(f"  fit / bare loop throughput ratio: {best['bare'] / best['fit']:.3f}  (target >= 0.95)")
    print(f"  speed-up of tensors over the PIL pipeline: {best['pil'] / best['fit']:.2f}x")

    model = new_model().eval()
    tx, ty = data.test
    with torch.no_grad():
        plain = min(timed(lambda: [model(tx[i : i + 2048]) for _ in TEST_ANGLES for i in range(0, len(ty), 2048)])
                    for _ in range(args.repeats))
    sweep = min(timed(lambda: accuracy_vs_rotation(model, tx, ty, TEST_ANGLES, fill=float(data.fill[0])))
                for _ in range(args.repeats))
    print(f"36-angle sweep over {len(ty)} digits: {sweep:.2f} s; 36 plain forward passes: {plain:.2f} s; "
          f"ratio {sweep / plain:.2f}  (target <= 1.3)")


if __name__ == "__main__":
    main()

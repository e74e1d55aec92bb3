"""Does ``torch.compile`` speed up the P4CNN training step on this CPU? Measured, side by side in one run.

The loss function (model forward + cross-entropy) is compiled with inductor (``dynamic=False``; the default
dynamic-shape tracing fails on this model with torch 2.13: ``InductorError: cannot determine truth value of
Relational``), then eager and compiled steps (forward, backward, Adam) are interleaved. Prints the compile
time and the median step times. equiv does not compile by default: on this machine the compiled step was
slower than eager (see the README's benchmark table), and the compile takes about a minute per model and
input size.

    python benchmarks/compile.py [--repeats 8] [--threads 2]
"""

from __future__ import annotations

import argparse
import statistics
import time

import torch
import torch.nn.functional as F

from equiv.models import build
from equiv.provenance import device_description


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--repeats", type=int, default=8)
    ap.add_argument("--threads", type=int, default=torch.get_num_threads())
    args = ap.parse_args()
    torch.set_num_threads(args.threads)
    print(f"machine: {device_description('cpu')}")  # the CPU and its instruction set: timings depend on them
    torch.manual_seed(0)
    model = build("p4cnn").train()
    x, y = torch.randn(128, 1, 28, 28), torch.randint(0, 10, (128,))
    opt = torch.optim.Adam(model.parameters(), 1e-3)

    def loss_fn(xb, yb):
        return F.cross_entropy(model(xb), yb)

    compiled = torch.compile(loss_fn, dynamic=False)

    def step(fn) -> None:
        opt.zero_grad(set_to_none=True)
        fn(x, y).backward()
        opt.step()

    t0 = time.perf_counter()
    step(compiled)
    print(f"compile + first step: {time.perf_counter() - t0:.1f} s", flush=True)
    for _ in range(2):
        step(compiled), step(loss_fn)
    times = {"eager": [], "compiled": []}
    for _ in range(args.repeats):
        for name, fn in (("eager", loss_fn), ("compiled", compiled)):
            t0 = time.perf_counter()
            step(fn)
            times[name].append(time.perf_counter() - t0)
    med = {k: statistics.median(v) * 1e3 for k, v in times.items()}
    print(f"P4CNN 28x28 batch 128, {args.threads} threads: eager {med['eager']:.1f} ms, compiled {med['compiled']:.1f} ms, "
          f"compiled/eager {med['compiled'] / med['eager']:.2f}")


if __name__ == "__main__":
    main()

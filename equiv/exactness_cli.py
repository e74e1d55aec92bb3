"""``equiv check``: the exactness predictor on the command line.

    equiv check p4cnn --input-size 27            # report + nearest exact sizes
    equiv check resnet44 --sizes 28-40 --group p4m
    equiv check resnet18 --input-size 224 -o head=flatten -o width=16
"""

from __future__ import annotations

import argparse
import ast

from equiv import exactness

__all__ = ["register", "parse_sizes", "parse_options"]


def parse_sizes(text: str) -> list[int]:
    """``"20-40"`` → 20..40, ``"27,28,29"`` → [27, 28, 29] (ranges and lists may be mixed)."""
    sizes: list[int] = []
    try:
        for part in text.split(","):
            part = part.strip()
            if "-" in part:
                lo, hi = (int(p) for p in part.split("-", 1))
                if lo > hi:
                    raise ValueError
                sizes.extend(range(lo, hi + 1))
            else:
                sizes.append(int(part))
    except ValueError:
        raise ValueError(f"--sizes must look like 20-40 or 27,28,29 with positive ints, got {text!r}") from None
    if not sizes or min(sizes) < 1:
        raise ValueError(f"--sizes must look like 20-40 or 27,28,29 with positive ints, got {text!r}")
    return sizes


def parse_options(items: list[str] | None) -> dict:
    """``["width=8", "head=flatten"]`` → ``{"width": 8, "head": "flatten"}`` (values as Python literals when they parse)."""
    options = {}
    for item in items or []:
        if "=" not in item:
            raise ValueError(f"-o/--option takes KEY=VALUE, got {item!r}")
        key, value = item.split("=", 1)
        try:
            options[key.strip()] = ast.literal_eval(value)
        except (ValueError, SyntaxError):
            options[key.strip()] = value
    return options


def _run(args: argparse.Namespace) -> int:
    from equiv.models import build

    if (args.input_size is None) == (args.sizes is None):
        raise ValueError("give exactly one of --input-size N or --sizes A-B")
    sizes = parse_sizes(args.sizes) if args.sizes else None
    model = build(args.model, group=args.group, **parse_options(args.option))
    if sizes is None:
        report = exactness.check(model, args.input_size, args.group)
        print(report.table())
        below = above = None
        try:
            below = exactness.nearest_exact_size(model, args.input_size, args.group, direction="down")
        except ValueError:
            pass
        try:
            above = exactness.nearest_exact_size(model, args.input_size, args.group, direction="up")
        except ValueError:
            pass
        print(f"nearest exact sizes: below {below if below is not None else '-'}, above {above if above is not None else '-'}")
        return 0
    frame = exactness.size_sweep(model, sizes, args.group)
    verdict = frame["exact"].map({True: "exact", False: "approximate"}).fillna("too small")
    out = frame.assign(verdict=verdict)[["size", "verdict", "breaking"]]
    print(f"{args.model} ({args.group}):")
    print(out.to_string(index=False))
    return 0


def register(subparsers) -> None:
    """Add ``equiv check`` to the ``equiv`` command line."""
    p = subparsers.add_parser("check", help="which input sizes keep a model exactly equivariant",
                              description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("model", help="a model name of equiv.models (e.g. p4cnn, resnet44, resnet18, resnet18_imagenet)")
    p.add_argument("--input-size", type=int, help="one input size N (square N×N)")
    p.add_argument("--sizes", help="a range A-B or a list a,b,c of sizes")
    p.add_argument("--group", default="p4", help="p4 (default), p4m or z2")
    p.add_argument("-o", "--option", action="append", metavar="KEY=VALUE", help="model option, repeatable")
    p.set_defaults(func=_run)

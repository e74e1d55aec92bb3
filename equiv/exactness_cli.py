"""``equiv check``: the exactness predictor on the command line, for our models and anyone's.

    equiv check p4cnn --input-size 27            # report, nearest exact sizes, verified fix hints
    equiv check resnet44 --sizes 28-40 --group p4m
    equiv check resnet18 --input-size 224 -o head=flatten -o width=16
    equiv check mypkg.models:make_net --input-size 64 -o width=32
    equiv check path/to/net.py:Net --input-size 33 --in-channels 3 --json

MODEL is a name of equiv.models, MODULE:CALLABLE or FILE.py:CALLABLE (CALLABLE is called with the -o options).
Exit status: 0 exact (every size of --sizes exact), 1 approximate (or some size approximate or too small),
2 bad usage (a one-line error), 3 the predictor cannot judge an operation of the model.
"""

from __future__ import annotations

import argparse
import ast
import json
import sys

from equiv import exactness
from equiv.exactness_fixes import fix_hints, fix_plan, unfixable_layers
from equiv.groups import get_group
from equiv.model_spec import ModelSpecError, is_external, load_model

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


def _nearest(model, n: int, group: str, in_channels: int | None) -> dict[str, int | None]:
    """The nearest exact sizes strictly below and strictly above ``n`` (None where there is none)."""
    below, above = exactness.exact_neighbours(model, n, group, in_channels=in_channels)
    return {"below": below, "above": above}


def _guarded(spec: str, external: bool, call, *args, **kwargs):
    """Run ``call``; a user model's forward pass that fails with anything but a size error is one line."""
    try:
        return call(*args, **kwargs)
    except (exactness.ExactnessError, ValueError):
        raise
    except Exception as err:
        if not external:
            raise
        first = str(err).strip().splitlines()[0] if str(err).strip() else ""
        raise ModelSpecError(f"model {spec!r}: its forward pass failed: {type(err).__name__}: {first}") from err


def _single(args: argparse.Namespace, model) -> int:
    n = args.input_size
    report = exactness.check(model, n, args.group, in_channels=args.in_channels)
    nearest = _nearest(model, n, args.group, args.in_channels) if report.input_size[0] == report.input_size[1] else {}
    hints = [] if report.exact else fix_hints(model, n, args.group, in_channels=args.in_channels, report=report)
    plan = None if report.exact else fix_plan(model, n, args.group, in_channels=args.in_channels)
    if args.json:
        print(json.dumps({
            "model": args.model, "group": report.group.name, "input_size": list(report.input_size),
            "exact": report.exact, "exact_elements": list(report.exact_elements),
            "breaking": [op.as_dict() for op in report.breaking],
            "subsampling": [op.as_dict() for op in report.subsampling],
            "nearest_exact": nearest, "hints": [h.as_dict() for h in hints],
            "plan": None if plan is None else [h.as_dict() for h in plan],
        }, indent=2, default=str))
    else:
        print(report.table())
        print(f"nearest exact sizes: below {nearest.get('below') or '-'}, above {nearest.get('above') or '-'}")
        if hints:
            print("fix hints (each applied to a copy of the model and re-checked at this size):")
            for h in hints:
                where = "the network" if h.kind == "input_size" else f"layer {h.layer}"
                then = "the whole network is exact" if h.network_exact else "the layer is exact, a later one still breaks"
                print(f"  {where}: {h.change} -> {then}")
        for op in unfixable_layers(report, hints):
            print(f"  layer {op.layer}: no padding or ceil-mode change makes it exact on its "
                  f"{op.input_size[0]}x{op.input_size[1]} input; change the input size")
        if plan and len(plan) > 1:
            steps = "; ".join(f"{h.layer}: {h.change}" for h in plan)
            print(f"  all together at {n}x{n} (re-checked exact): {steps}")
    return 0 if report.exact else 1


def _sweep(args: argparse.Namespace, model) -> int:
    sizes = parse_sizes(args.sizes)
    frame = exactness.size_sweep(model, sizes, args.group, in_channels=args.in_channels)
    verdict = frame["exact"].map({True: "exact", False: "approximate"}).fillna("too small")
    out = frame.assign(verdict=verdict)[["size", "verdict", "breaking"]]
    if args.json:
        print(json.dumps({"model": args.model, "group": args.group,
                          "sizes": [{"size": int(r.size), "verdict": r.verdict, "breaking": r.breaking.split()}
                                    for r in out.itertuples()]}, indent=2))
    else:
        print(f"{args.model} ({args.group}):")
        print(out.to_string(index=False))
    return 0 if (verdict == "exact").all() else 1


def _run(args: argparse.Namespace) -> int:
    if (args.input_size is None) == (args.sizes is None):
        raise ValueError("give exactly one of --input-size N or --sizes A-B")
    if args.input_size is not None and args.input_size < 1:
        raise ValueError(f"--input-size must be a positive int, got {args.input_size}")
    if args.in_channels is not None and args.in_channels < 1:
        raise ValueError(f"--in-channels must be a positive int, got {args.in_channels}")
    if args.sizes:
        parse_sizes(args.sizes)  # bad usage is refused before the model is built
    get_group(args.group)
    external = is_external(args.model)
    model = load_model(args.model, parse_options(args.option), group=args.group)
    try:
        return _guarded(args.model, external, _sweep if args.sizes else _single, args, model)
    except exactness.ExactnessError as err:
        print(f"equiv check: error: the predictor cannot judge this model: {err}", file=sys.stderr)
        return 3


def register(subparsers) -> None:
    """Add ``equiv check`` to the ``equiv`` command line."""
    p = subparsers.add_parser("check", help="which input sizes keep a model exactly equivariant",
                              description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("model", help="a model name of equiv.models (p4cnn, resnet44, ...), MODULE:CALLABLE or FILE.py:CALLABLE")
    p.add_argument("--input-size", type=int, help="one input size N (square N×N)")
    p.add_argument("--sizes", help="a range A-B or a list a,b,c of sizes")
    p.add_argument("--group", default="p4", help="p4 (default), p4m or z2")
    p.add_argument("-o", "--option", action="append", metavar="KEY=VALUE",
                   help="model option (keyword argument of CALLABLE), repeatable")
    p.add_argument("--in-channels", type=int, help="input channels, where the model does not say")
    p.add_argument("--json", action="store_true", help="machine-readable output")
    p.set_defaults(func=_run)

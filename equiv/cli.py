"""The ``equiv`` command line.

Each sub-command lives in the module that owns the concept and exposes ``register(subparsers)``,
which adds its parser and sets ``func`` (called with the parsed namespace, returning an exit code).
"""

from __future__ import annotations

import argparse
import importlib
import sys

__all__ = ["main", "build_parser"]

# sub-command modules, in the order `equiv --help` lists them
_COMMAND_MODULES = (
    "equiv.exactness_cli",  # equiv check
    "equiv.data.cli",  # equiv data download
    "equiv.batch.cli",  # equiv run / status / results
)


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="equiv", description=__doc__.splitlines()[0])
    sub = parser.add_subparsers(dest="command", metavar="COMMAND")
    sub.required = True
    for name in _COMMAND_MODULES:
        importlib.import_module(name).register(sub)
    return parser


def main(argv: list[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    try:
        return int(args.func(args) or 0)
    except (ValueError, FileNotFoundError, KeyError) as err:
        msg = err.args[0] if isinstance(err, KeyError) and err.args else err
        print(f"equiv {args.command}: error: {msg}", file=sys.stderr)
        return 2


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())

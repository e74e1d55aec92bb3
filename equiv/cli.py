"""The ``equiv`` command line.

Each sub-command lives in the module that owns the concept and exposes ``register(subparsers)``,
which adds its parser and sets ``func`` (called with the parsed namespace, returning an exit code).

The error policy, the same for every sub-command:

- a problem with the user's input — a value, a file or folder, a YAML file, a size, data on disk — is raised by
  the library as :class:`ValueError` (or :class:`KeyError`) or, for files and folders, as :class:`OSError`, and
  printed here as one line ``equiv COMMAND: error: MESSAGE`` with exit status 2, before any work starts;
  an allocation that does not fit in memory is one line too (exit 2);
- anything else is a bug in ``equiv``: its traceback is printed, then one line saying so, and the exit
  status is 70 (``EX_SOFTWARE``).
"""

from __future__ import annotations

import argparse
import importlib
import sys
import traceback

__all__ = ["main", "build_parser", "USAGE", "BUG"]

USAGE = 2  # exit status for bad input (argparse uses it too)
BUG = 70  # exit status for an internal error (sysexits.h EX_SOFTWARE)

# sub-command modules, in the order `equiv --help` lists them, with the commands each registers
_COMMAND_MODULES = {
    "equiv.exactness_cli": ("check",),
    "equiv.data.cli": ("data",),
    "equiv.batch.cli": ("run", "status", "results"),
    "equiv.book_build": ("book",),
}


def build_parser(command: str | None = None) -> argparse.ArgumentParser:
    """The ``equiv`` parser; with ``command``, only the module of that command is imported (``equiv book`` and
    ``equiv run`` then start without loading torch), otherwise every command's."""
    parser = argparse.ArgumentParser(prog="equiv", description=__doc__.splitlines()[0])
    sub = parser.add_subparsers(dest="command", metavar="COMMAND")
    sub.required = True
    for name, commands in _COMMAND_MODULES.items():
        if command is None or command in commands:
            importlib.import_module(name).register(sub)
    return parser


def _command_of(argv: list[str]) -> str | None:
    """The sub-command ``argv`` names, if it is a known one and comes first; else None (help, a typo...)."""
    known = {c for commands in _COMMAND_MODULES.values() for c in commands}
    return argv[0] if argv and argv[0] in known else None


def main(argv: list[str] | None = None) -> int:
    argv = sys.argv[1:] if argv is None else list(argv)
    parser = build_parser(_command_of(argv))
    args = parser.parse_args(argv)
    try:
        return int(args.func(args) or 0)
    except (ValueError, KeyError, OSError) as err:
        print(f"equiv {args.command}: error: {_one_line(err)}", file=sys.stderr)
        return USAGE
    except MemoryError as err:
        print(f"equiv {args.command}: error: out of memory{': ' + _one_line(err) if str(err) else ''}; "
              f"use smaller sizes", file=sys.stderr)
        return USAGE
    except Exception as err:  # a bug: keep the traceback, and say so
        traceback.print_exc()
        print(f"equiv {args.command}: internal error ({type(err).__name__}): this is a bug in equiv, not in your input; "
              f"please report it with the traceback above", file=sys.stderr)
        return BUG


def _one_line(err: BaseException) -> str:
    """The message of ``err`` on one line (a KeyError's key without quotes; an OSError's file name included)."""
    if isinstance(err, KeyError) and err.args:
        text = str(err.args[0])
    elif isinstance(err, OSError) and err.filename is not None and err.strerror:
        text = f"{err.filename}: {err.strerror}"
    else:
        text = str(err) or type(err).__name__
    lines = [line.strip() for line in text.strip().splitlines() if line.strip()]
    return " ".join(lines) if len(lines) <= 3 else lines[0]


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())

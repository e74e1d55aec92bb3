"""``equiv data ...``: the data sub-commands of the ``equiv`` command line.

``equiv data download {mnist,cifar10,cifar100,pcam} [--root DIR] [--mirror URL]`` fetches every file
of a dataset into ``DIR/<name>/`` (default root ``$EQUIV_DATA`` or ``~/.cache/equiv``) and verifies its
checksum (see :func:`equiv.data.download`); files already there that fail their check are removed and
fetched anew. Exit codes: 0 done, 1 network error, 2 bad argument or checksum mismatch (reported by
:func:`equiv.cli.main`).

``equiv data verify [{mnist,cifar10,cifar100,pcam,all}] [--root DIR]`` hashes every file of a dataset
(default ``all``) and prints one line per file: ``ok``, ``corrupt`` (checksum mismatch), ``missing`` or
``unknown`` (no recorded checksum, or not a file of the dataset), then a summary. It changes nothing.
Exit codes: 0 all ok, 1 some file not ok, 2 bad usage.
"""

from __future__ import annotations

import argparse
import sys

from equiv.data.download import download
from equiv.data.integrity import STATUSES, FileCheck, check_dataset
from equiv.data.registry import DATASET_NAMES, ENV_MIRROR, ENV_ROOT, REGISTRY, download_command

__all__ = ["register", "run_download", "run_verify", "verify_summary"]

_ROOT_HELP = f"data root; files are in DIR/<name>/ (default ${ENV_ROOT} or ~/.cache/equiv)"


def run_download(args: argparse.Namespace) -> int:
    """Handler of ``equiv data download``: download and verify, print one line per file."""
    try:
        paths = download(args.name, args.root, mirror=args.mirror, notify=lambda line: print(line, file=sys.stderr))
    except ConnectionError as err:
        print(f"equiv data: error: {err}", file=sys.stderr)
        return 1
    for path in paths:
        print(f"verified {path}")
    return 0


def verify_summary(checks: list[FileCheck], root: str | None) -> str:
    """The last line of ``equiv data verify``: counts per status and, if needed, the commands that fix it."""
    counts = ", ".join(f"{sum(c.status == s for c in checks)} {s}" for s in STATUSES if any(c.status == s for c in checks))
    bad = sorted({c.dataset for c in checks if not c.ok}, key=DATASET_NAMES.index)
    if not bad:
        return f"all {len(checks)} files ok"
    fixes = "; ".join(download_command(name, root) for name in bad)
    return f"{counts} of {len(checks)} files; not ok files are never used; fix with: {fixes}"


def run_verify(args: argparse.Namespace) -> int:
    """Handler of ``equiv data verify``: hash every file, print one line each and a summary; 0 only if all ok."""
    names = DATASET_NAMES if args.name == "all" else (args.name,)
    checks = [c for name in names for c in check_dataset(name, args.root, use_cache=False, extras=True)]
    for check in checks:
        print(check.line())
    print(verify_summary(checks, args.root))
    return 0 if all(c.ok for c in checks) else 1


def _add_download(actions: argparse._SubParsersAction) -> None:
    listing = "; ".join(f"{name}: {REGISTRY[name].description}" for name in DATASET_NAMES)
    dl = actions.add_parser(
        "download",
        help="download a dataset and verify its checksums",
        description=f"Download and verify a dataset. {listing}.",
    )
    dl.add_argument("name", choices=DATASET_NAMES, help="dataset to download")
    dl.add_argument("--root", default=None, metavar="DIR", help=_ROOT_HELP)
    dl.add_argument("--mirror", default=None, metavar="URL", help=f"base URL to fetch URL/<file> from (default ${ENV_MIRROR} or the canonical mirror)")
    dl.set_defaults(func=run_download)


def _add_verify(actions: argparse._SubParsersAction) -> None:
    vf = actions.add_parser(
        "verify",
        help="check the files on disk against their recorded checksums",
        description="Hash every file of a dataset and report it as ok, corrupt, missing or unknown; exit 0 only when all are ok (1 otherwise).",
    )
    vf.add_argument("name", nargs="?", default="all", choices=(*DATASET_NAMES, "all"), help="dataset to verify (default: all)")
    vf.add_argument("--root", default=None, metavar="DIR", help=_ROOT_HELP)
    vf.set_defaults(func=run_verify)


def register(subparsers: argparse._SubParsersAction) -> None:
    """Add the ``data`` command (with its ``download`` and ``verify`` actions) to the ``equiv`` parser."""
    data = subparsers.add_parser("data", help="download and verify the full datasets", description=__doc__.splitlines()[0])
    actions = data.add_subparsers(dest="data_command", metavar="ACTION")
    actions.required = True
    _add_download(actions)
    _add_verify(actions)

"""``equiv data ...``: the data sub-commands of the ``equiv`` command line.

``equiv data download {mnist,cifar10,cifar100,pcam} [--root DIR] [--mirror URL]`` fetches every file
of a dataset into ``DIR/<name>/`` (default root ``$EQUIV_DATA`` or ``~/.cache/equiv``) and verifies its
checksum (see :func:`equiv.data.download`). Exit codes: 0 done, 1 network error, 2 bad argument or
checksum mismatch (reported by :func:`equiv.cli.main`).
"""

from __future__ import annotations

import argparse
import sys

from equiv.data.download import download
from equiv.data.registry import DATASET_NAMES, ENV_MIRROR, ENV_ROOT, REGISTRY

__all__ = ["register", "run_download"]


def run_download(args: argparse.Namespace) -> int:
    """Handler of ``equiv data download``: download and verify, print one line per file."""
    try:
        paths = download(args.name, args.root, mirror=args.mirror)
    except ConnectionError as err:
        print(f"equiv data download: error: {err}", file=sys.stderr)
        return 1
    for path in paths:
        print(f"verified {path}")
    return 0


def register(subparsers: argparse._SubParsersAction) -> None:
    """Add the ``data`` command (with its ``download`` action) to the ``equiv`` parser."""
    data = subparsers.add_parser("data", help="download and verify the full datasets", description=__doc__.splitlines()[0])
    actions = data.add_subparsers(dest="data_command", metavar="ACTION")
    actions.required = True
    listing = "; ".join(f"{name}: {REGISTRY[name].description}" for name in DATASET_NAMES)
    dl = actions.add_parser(
        "download",
        help="download a dataset and verify its checksums",
        description=f"Download and verify a dataset. {listing}.",
    )
    dl.add_argument("name", choices=DATASET_NAMES, help="dataset to download")
    dl.add_argument("--root", default=None, metavar="DIR", help=f"data root; files go to DIR/<name>/ (default ${ENV_ROOT} or ~/.cache/equiv)")
    dl.add_argument("--mirror", default=None, metavar="URL", help=f"base URL to fetch URL/<file> from (default ${ENV_MIRROR} or the canonical mirror)")
    dl.set_defaults(func=run_download)

"""Store the book's notebooks without outputs — except the outputs nbval compares.

Notebooks are committed without outputs: the book and papermill re-create them, diffs stay readable, and no
stale figure or number can pose as a result. The one exception are cells marked ``# NBVAL_CHECK_OUTPUT``:
``pytest --nbval-lax`` compares what they print with what is stored, so their (deterministic) output is kept,
with an execution count of 1 (nbval refuses a cell that has outputs but looks unrun).

Usage::

    python tests/book_strip.py book/*.ipynb            # strip in place
    python tests/book_strip.py --execute book/x.ipynb  # run at the smoke profile first, keep the checked outputs
    python tests/book_strip.py --check book/*.ipynb    # exit 1 if a notebook is not stored stripped
"""

from __future__ import annotations

import argparse
import os
import sys
import tempfile
from pathlib import Path

import nbformat

CHECK_OUTPUT = "# NBVAL_CHECK_OUTPUT"
KEEP_CELL_METADATA = ("tags", "mystnb")
KEEP_NB_METADATA = ("kernelspec", "language_info", "mystnb", "equiv")  # equiv.reads: see equiv.book_build.chapter_reads

__all__ = ["CHECK_OUTPUT", "strip", "execute", "is_stripped"]


def _clean_output(output: nbformat.NotebookNode) -> nbformat.NotebookNode:
    output = nbformat.from_dict(dict(output))
    if "execution_count" in output:
        output["execution_count"] = None
    return output


def strip(nb: nbformat.NotebookNode, executed: nbformat.NotebookNode | None = None) -> nbformat.NotebookNode:
    """``nb`` without outputs, execution counts and run metadata; ``# NBVAL_CHECK_OUTPUT`` cells keep their
    outputs — taken from ``executed`` (matched by cell id) when given."""
    fresh = {c.get("id"): c for c in executed.cells} if executed is not None else {}
    for cell in nb.cells:
        cell.metadata = {k: v for k, v in cell.metadata.items() if k in KEEP_CELL_METADATA}
        if cell.cell_type != "code":
            cell.pop("outputs", None)
            cell.pop("execution_count", None)
            continue
        cell.execution_count = None
        if CHECK_OUTPUT in cell.source:
            source = fresh.get(cell.get("id"), cell)
            cell.outputs = [_clean_output(o) for o in source.get("outputs", [])]
            cell.execution_count = 1  # nbval skips (and fails) cells that look unrun
        else:
            cell.outputs = []
    nb.metadata = {k: v for k, v in nb.metadata.items() if k in KEEP_NB_METADATA}
    if "language_info" in nb.metadata:
        nb.metadata["language_info"] = {"name": nb.metadata["language_info"].get("name", "python")}
    return nb


def is_stripped(nb: nbformat.NotebookNode) -> bool:
    return all(
        (c.execution_count is not None and bool(c.outputs)) if CHECK_OUTPUT in c.source
        else (c.execution_count is None and not c.outputs)
        for c in nb.cells if c.cell_type == "code"
    )


def execute(path: Path, profile: str = "smoke", timeout: int = 900) -> nbformat.NotebookNode:
    """Run a notebook as the book does (kernel python3, a temporary working folder) at ``profile``."""
    from nbclient import NotebookClient

    nb = nbformat.read(path, as_version=4)
    saved = {k: os.environ.get(k) for k in ("EQUIV_PROFILE", "EQUIV_RUN_DIR")}
    with tempfile.TemporaryDirectory() as tmp:
        os.environ.update(EQUIV_PROFILE=profile, EQUIV_RUN_DIR=tmp)
        try:
            NotebookClient(nb, timeout=timeout, kernel_name="python3", resources={"metadata": {"path": tmp}}).execute()
        finally:
            for k, v in saved.items():
                os.environ.pop(k, None) if v is None else os.environ.__setitem__(k, v)
    return nb


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("notebooks", nargs="+", type=Path)
    parser.add_argument("--execute", action="store_true", help="run at the smoke profile first")
    parser.add_argument("--check", action="store_true", help="only check; exit 1 if not stripped")
    args = parser.parse_args(argv)
    bad = 0
    for path in args.notebooks:
        nb = nbformat.read(path, as_version=4)
        if args.check:
            if not is_stripped(nb):
                print(f"{path}: not stored stripped (run python tests/book_strip.py --execute {path})")
                bad += 1
            continue
        executed = execute(path) if args.execute else None
        nbformat.write(strip(nb, executed), path)
        print(f"{path}: stripped" + (" (checked outputs refreshed)" if executed is not None else ""))
    return 1 if bad else 0


if __name__ == "__main__":
    sys.exit(main())

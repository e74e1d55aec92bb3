"""The book's notebooks as stored: the conventions every chapter follows, and a clean run under nbval.

Which notebooks: every notebook of ``_toc.yml`` (in reading order) plus any other ``book/*.ipynb``. A notebook
that the table of contents lists but that does not exist is a *failure*, not a skip: the book cannot build
without it, and a skipped test would hide that.

The run: ``pytest --nbval-lax`` in a subprocess, one notebook at a time, with ``EQUIV_PROFILE=smoke``, so every
cell must run without error and the cells marked ``# NBVAL_CHECK_OUTPUT`` must print exactly what is stored.
The environment keeps the run honest and the checkout clean: ``EQUIV_RESULTS_CACHE`` points at a fresh folder
shared by the notebooks of this session (so experiments really run, and the claims ledger reuses what the
chapters computed, as in the book), and ``EQUIV_RUN_DIR`` at a per-notebook folder, where ``write_metrics``
must leave a ``metrics.json``.
"""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
import time
from pathlib import Path

import nbformat
import pytest
import yaml

ROOT = Path(__file__).resolve().parents[1]
BOOK = ROOT / "book"
CHECK_OUTPUT = "# NBVAL_CHECK_OUTPUT"
SMOKE_SECONDS = 300  # a notebook's whole smoke run, nbval's start-up included, must stay below this


def _notebooks() -> list[Path]:
    toc = yaml.safe_load((ROOT / "_toc.yml").read_text())
    entries = [toc["root"], *(c["file"] for c in toc.get("chapters", []))]
    entries += [c["file"] for part in toc.get("parts", []) for c in part.get("chapters", [])]
    listed = []
    for entry in entries:
        stem = entry.removesuffix(".ipynb").removesuffix(".md")
        if not (ROOT / f"{stem}.md").is_file():  # a Markdown page is not a notebook
            listed.append(ROOT / f"{stem}.ipynb")
    extra = sorted(p for p in BOOK.glob("*.ipynb") if p not in listed)
    return listed + extra


NOTEBOOKS = _notebooks()
IDS = [p.stem for p in NOTEBOOKS]


def _read(path: Path) -> nbformat.NotebookNode:
    if not path.is_file():
        pytest.fail(f"{path.relative_to(ROOT)} is listed in _toc.yml but does not exist")
    return nbformat.read(path, as_version=4)


@pytest.fixture(scope="module")
def results_cache(tmp_path_factory) -> Path:
    return tmp_path_factory.mktemp("equiv-results")


@pytest.mark.parametrize("path", NOTEBOOKS, ids=IDS)
def test_notebook_follows_the_book_conventions(path: Path) -> None:
    nb = _read(path)
    name = path.relative_to(ROOT).as_posix()
    assert nb.metadata.get("kernelspec", {}).get("name") == "python3", f"{name}: kernelspec must be python3"
    cells = nb.cells
    assert cells and cells[0].cell_type == "markdown", f"{name}: must open with a Markdown cell"
    opening = cells[0].source.lower()
    assert "what this page shows" in opening and "what it needs" in opening, \
        f"{name}: the first cell must say what the page shows and what it needs"
    assert cells[-1].cell_type == "markdown" and re.match(r"#+\s*summary", cells[-1].source.strip().lower()), \
        f"{name}: must end with a 'Summary' Markdown cell"

    tagged = [i for i, c in enumerate(cells) if "parameters" in c.metadata.get("tags", [])]
    assert len(tagged) == 1, f"{name}: exactly one cell must be tagged 'parameters', found {len(tagged)}"
    params = cells[tagged[0]]
    assert params.cell_type == "code" and re.search(r"^profile\s*=\s*None\b", params.source, re.M), \
        f"{name}: the parameters cell must set profile = None"
    later = "\n".join(c.source for c in cells[tagged[0] + 1:] if c.cell_type == "code")
    assert "resolve_profile(profile)" in later, f"{name}: must call resolve_profile(profile) after the parameters"
    assert "write_metrics(" in later, f"{name}: must write its key numbers with write_metrics"
    assert "glue(" in later, f"{name}: must glue its key numbers into the text"

    markdown = "\n".join(c.source for c in cells if c.cell_type == "markdown")
    assert "Re-run this page" in markdown and f"papermill {name}" in markdown, \
        f"{name}: needs a 'Re-run this page' box with the papermill command for {name}"

    # stored without outputs: only the cells nbval compares keep theirs (and need them)
    for i, cell in enumerate(cells):
        if cell.cell_type != "code":
            continue
        hint = f"(python tests/book_strip.py --execute {name})"
        if CHECK_OUTPUT in cell.source:
            assert cell.outputs and cell.execution_count is not None, \
                f"{name}, cell {i}: {CHECK_OUTPUT} needs its stored output and an execution count {hint}"
        else:
            assert not cell.outputs, f"{name}, cell {i}: outputs must be stripped before committing {hint}"
            assert cell.execution_count is None, f"{name}, cell {i}: execution counts must be stripped {hint}"


@pytest.mark.parametrize("path", NOTEBOOKS, ids=IDS)
def test_notebook_runs_under_nbval_at_the_smoke_profile(path: Path, results_cache: Path, tmp_path: Path) -> None:
    _read(path)
    run_dir = tmp_path / "run"
    run_dir.mkdir()
    # one torch thread: smoke-sized tensors gain nothing from more, and lose up to 60x on shared cores
    env = {**os.environ, "EQUIV_PROFILE": "smoke", "EQUIV_RESULTS_CACHE": str(results_cache),
           "EQUIV_RUN_DIR": str(run_dir), "MPLBACKEND": "Agg", "PYTHONWARNINGS": "ignore", "OMP_NUM_THREADS": "1"}
    command = [sys.executable, "-m", "pytest", "--nbval-lax", "--nbval-current-env", "--nbval-cell-timeout=600",
               "-p", "no:cacheprovider", "-q", "--no-header", str(path)]
    start = time.monotonic()
    done = subprocess.run(command, cwd=ROOT, env=env, capture_output=True, text=True, timeout=1200)
    seconds = time.monotonic() - start
    report = f"$ EQUIV_PROFILE=smoke {' '.join(command[2:])}\n{done.stdout[-8000:]}\n{done.stderr[-3000:]}"
    assert done.returncode == 0, f"nbval failed on {path.name} ({seconds:.0f} s):\n{report}"
    assert re.search(r"\d+ passed", done.stdout), f"nbval ran nothing on {path.name}:\n{report}"
    metrics = run_dir / "metrics.json"
    assert metrics.is_file(), f"{path.name} did not write metrics.json (write_metrics)"
    assert json.loads(metrics.read_text()), f"{path.name} wrote an empty metrics.json"
    assert seconds < SMOKE_SECONDS, f"{path.name} took {seconds:.0f} s at the smoke profile (limit {SMOKE_SECONDS} s)"
    print(f"{path.name}: {seconds:.1f} s")

"""The book's notebooks: the conventions every chapter follows, and nbval on the notebooks the book renders.

Which notebooks: every notebook of ``_toc.yml`` (in reading order, read by :func:`equiv.book_build.chapters`,
the one reader of the table of contents), and no other: a ``book/*.ipynb`` outside the table of contents is a
failure (the book would never execute or render it). A notebook that the table of contents lists but that does
not exist is a failure too, not a skip.

What nbval validates: the **executed** notebooks of stage 1 of the book build
(:func:`equiv.book_build.execute_book` at the smoke profile, ``_build/executed/smoke/CHAPTER/``), the very files
Jupyter Book renders. Chapters whose inputs are unchanged are reused, as ``make book`` would, so the browser test
renders what this module validated without executing anything again. Two checks per chapter:

- the outputs of the cells marked ``# NBVAL_CHECK_OUTPUT`` in the executed notebook are the ones stored in
  ``book/`` (the values that carry a claim are the ones the book shows);
- ``pytest --nbval-lax`` re-executes the executed notebook in a subprocess with ``EQUIV_PROFILE=smoke``: every
  cell must run without error and every marked cell must print exactly what stage 1 printed.
  ``EQUIV_RESULTS_CACHE`` points at a fresh folder shared by the chapters of this session, so the experiments
  really run again (not from stage 1's cache) and the claims ledger reuses what the chapters recomputed;
  ``EQUIV_RUN_DIR`` points at a per-chapter folder, where ``write_metrics`` must leave a ``metrics.json``.
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

from equiv.book_build import chapter_reads, chapters, executed_dir, execute_book

ROOT = Path(__file__).resolve().parents[1]
BOOK = ROOT / "book"
CHECK_OUTPUT = "# NBVAL_CHECK_OUTPUT"


def _notebooks() -> list[Path]:
    return [c.source for c in chapters(ROOT) if c.notebook]


def test_every_book_notebook_is_in_the_table_of_contents() -> None:
    outside = sorted(p.name for p in BOOK.glob("*.ipynb") if p not in NOTEBOOKS)
    assert not outside, f"book/ has notebooks that _toc.yml does not list (never executed or rendered): {outside}"


NOTEBOOKS = _notebooks()
IDS = [p.stem for p in NOTEBOOKS]


def _read(path: Path) -> nbformat.NotebookNode:
    if not path.is_file():
        pytest.fail(f"{path.relative_to(ROOT)} is listed in _toc.yml but does not exist")
    return nbformat.read(path, as_version=4)


@pytest.fixture(scope="module")
def results_cache(tmp_path_factory) -> Path:
    return tmp_path_factory.mktemp("equiv-results")


@pytest.fixture(scope="module")
def executed_book(book_build_lock) -> Path:
    """Stage 1 of the book build at the smoke profile; the folder of the chapters' run folders."""
    with book_build_lock():
        execute_book(ROOT, "smoke", jobs=2, threads=1, progress=False)
    return executed_dir(ROOT, "smoke")


def _executed(path: Path, executed_book: Path) -> Path:
    executed = executed_book / path.stem / f"{path.stem}.ipynb"
    assert executed.is_file(), f"stage 1 left no executed notebook for {path.name} at {executed}"
    return executed


def _output_text(cell: nbformat.NotebookNode) -> str:
    parts = []
    for out in cell.get("outputs", []):
        if out.output_type == "stream":
            parts.append(out.text)
        elif out.output_type in ("execute_result", "display_data"):
            parts.append(out.get("data", {}).get("text/plain", ""))
        elif out.output_type == "error":
            parts.append(f"{out.ename}: {out.evalue}")
    return "".join(parts)


@pytest.mark.parametrize("path", NOTEBOOKS, ids=IDS)
def test_executed_chapter_shows_the_stored_claim_outputs(path: Path, executed_book: Path) -> None:
    """Each ``# NBVAL_CHECK_OUTPUT`` cell of ``book/`` printed, in stage 1, exactly what is stored."""
    stored = [c for c in _read(path).cells if c.cell_type == "code" and CHECK_OUTPUT in c.source]
    executed = {c.source: c for c in nbformat.read(_executed(path, executed_book), as_version=4).cells
                if c.cell_type == "code"}
    for cell in stored:
        assert cell.source in executed, f"{path.name}: the executed notebook lacks the cell {cell.source[:60]!r}"
        assert _output_text(executed[cell.source]) == _output_text(cell), \
            f"{path.name}: stage 1 printed {_output_text(executed[cell.source])!r} where {_output_text(cell)!r} is stored"


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
def test_executed_chapter_passes_nbval(path: Path, executed_book: Path, results_cache: Path, tmp_path: Path) -> None:
    """nbval re-executes the notebook stage 1 executed and compares the marked cells with stage 1's outputs."""
    executed = _executed(path, executed_book)
    run_dir = tmp_path / "run"
    run_dir.mkdir()
    # one torch thread: smoke-sized tensors gain nothing from more, and lose up to 60x on shared cores
    env = {**os.environ, "EQUIV_PROFILE": "smoke", "EQUIV_RESULTS_CACHE": str(results_cache),
           "EQUIV_RUN_DIR": str(run_dir), "MPLBACKEND": "Agg", "PYTHONWARNINGS": "ignore", "OMP_NUM_THREADS": "1"}
    command = [sys.executable, "-m", "pytest", "--nbval-lax", "--nbval-current-env", "--nbval-cell-timeout=600",
               "-p", "no:cacheprovider", "-q", "--no-header", str(executed)]
    start = time.monotonic()
    done = subprocess.run(command, cwd=ROOT, env=env, capture_output=True, text=True, timeout=1800)
    seconds = time.monotonic() - start
    report = f"$ EQUIV_PROFILE=smoke {' '.join(command[2:])}\n{done.stdout[-8000:]}\n{done.stderr[-3000:]}"
    assert done.returncode == 0, f"nbval failed on {executed} ({seconds:.0f} s):\n{report}"
    assert re.search(r"\d+ passed", done.stdout), f"nbval ran nothing on {executed}:\n{report}"
    metrics = run_dir / "metrics.json"
    assert metrics.is_file(), f"{path.name} did not write metrics.json (write_metrics)"
    assert json.loads(metrics.read_text()), f"{path.name} wrote an empty metrics.json"
    print(f"{path.name}: nbval on the executed notebook in {seconds:.1f} s")  # reported, never asserted


#: library calls that read committed results under data/results/: a chapter making one must declare what it reads
RESULT_READERS = ("load_collected(", "load_study(", "load_pilot(", "load_long_arm(", "study_judgements(", "claims_ledger(", "load_committed(")


@pytest.mark.parametrize("path", NOTEBOOKS, ids=IDS)
def test_chapters_that_read_committed_results_declare_them(path: Path) -> None:
    """Otherwise a committed study run would not re-execute the chapter (equiv.book_build.chapter_reads)."""
    chapter = next(c for c in chapters(ROOT) if c.source == path)
    code = "\n".join(c.source for c in _read(path).cells if c.cell_type == "code")
    calls = [r for r in RESULT_READERS if r in code]
    if calls:
        assert chapter_reads(ROOT, chapter), f"{path.name} calls {calls} but declares no metadata equiv.reads"


MAX_CELL_LINES = 15  #: a chapter's code cell: parameters, one library call, one plot


@pytest.mark.parametrize("path", NOTEBOOKS, ids=IDS)
def test_code_cells_stay_short(path: Path) -> None:
    """Logic belongs in the library (equiv.experiments, equiv.figures, equiv.book_text); a cell only calls it."""
    long = [(i, len(c.source.splitlines())) for i, c in enumerate(_read(path).cells)
            if c.cell_type == "code" and len(c.source.splitlines()) > MAX_CELL_LINES]
    assert not long, f"{path.name}: code cells longer than {MAX_CELL_LINES} lines (cell, lines): {long}"

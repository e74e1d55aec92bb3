"""equiv.book_build: stage 1 executes chapters through the batch runner, resumably and in order; stage 2 assembles."""

from __future__ import annotations

import json
from pathlib import Path

import nbformat
import pytest
import yaml

from equiv.book_build import BookBuildError, assemble_site, chapters, execute_book, executed_dir, inputs_key


def _notebook(path: Path, *cells: str) -> None:
    nb = nbformat.v4.new_notebook()
    nb.metadata["kernelspec"] = {"name": "python3", "display_name": "Python 3", "language": "python"}
    nb.cells = [nbformat.v4.new_markdown_cell("# Page\n\n## Summary"),
                nbformat.v4.new_code_cell("profile = None", metadata={"tags": ["parameters"]}),
                *(nbformat.v4.new_code_cell(c) for c in cells)]
    nbformat.write(nb, path)


@pytest.fixture()
def book(tmp_path: Path) -> Path:
    """A tiny repository: an intro page, two chapters and a ledger that reads what the first chapter wrote."""
    (tmp_path / "book").mkdir()
    (tmp_path / "book" / "intro.md").write_text("# Intro\n")
    shared = tmp_path / "shared.txt"
    _notebook(tmp_path / "book" / "alpha.ipynb", "import time; time.sleep(1)",
              f"open({str(shared)!r}, 'w').write('alpha ran at ' + str(profile))")
    _notebook(tmp_path / "book" / "beta.ipynb", "x = 1 + 1", "print(x)")
    _notebook(tmp_path / "book" / "claims_ledger.ipynb", f"print(open({str(shared)!r}).read())")
    (tmp_path / "_toc.yml").write_text(yaml.safe_dump({"format": "jb-book", "root": "book/intro", "chapters": [
        {"file": "book/claims_ledger"}, {"file": "book/alpha"}, {"file": "book/beta"}]}))
    (tmp_path / "data").mkdir()
    (tmp_path / "data" / "x.csv").write_text("a\n1\n")
    (tmp_path / "pyproject.toml").write_text('[project]\nname = "tiny"\n')  # no repository URL: no repository links
    return tmp_path


def _output(book: Path, stem: str) -> str:
    nb = nbformat.read(executed_dir(book, "smoke") / stem / f"{stem}.ipynb", as_version=4)
    return "".join(o.get("text", "") for c in nb.cells if c.cell_type == "code" for o in c.outputs)


def test_chapters_read_the_toc(book: Path) -> None:
    pages = chapters(book)
    assert [p.stem for p in pages] == ["intro", "claims_ledger", "alpha", "beta"]
    assert [p.notebook for p in pages] == [False, True, True, True]


def test_stage_one_executes_in_order_then_reuses_and_reruns_only_what_changed(book: Path) -> None:
    first = execute_book(book, "smoke", jobs=2, threads=1, progress=False)
    assert sorted(first.executed) == ["alpha", "beta", "claims_ledger"] and first.executed[-1] == "claims_ledger"
    assert "alpha ran at smoke" in _output(book, "claims_ledger")  # the ledger ran after alpha, with the profile injected
    assert "2" in _output(book, "beta")
    manifest = json.loads((executed_dir(book, "smoke") / "beta" / "manifest.json").read_text())
    assert manifest["status"] == "done" and manifest["profile"] == "smoke" and manifest["libraries"]["papermill"]
    again = execute_book(book, "smoke", jobs=1, threads=1, progress=False)
    assert again.executed == [] and sorted(again.reused) == ["alpha", "beta", "claims_ledger"]
    _notebook(book / "book" / "beta.ipynb", "x = 2 + 2", "print(x)")
    third = execute_book(book, "smoke", jobs=1, threads=1, progress=False)
    assert third.executed == ["beta"] and "4" in _output(book, "beta")
    (book / "data" / "x.csv").write_text("a\n2\n")  # the data changed: every chapter depends on it
    assert sorted(execute_book(book, "smoke", jobs=2, threads=1, progress=False).executed) == ["alpha", "beta", "claims_ledger"]


def test_an_interrupted_chapter_runs_again(book: Path) -> None:
    execute_book(book, "smoke", jobs=1, threads=1, progress=False, only=["beta"])
    run = executed_dir(book, "smoke") / "beta"
    (run / "inputs.json").unlink()  # killed after the notebook finished but before it was stamped
    assert execute_book(book, "smoke", jobs=1, threads=1, progress=False, only=["beta"]).executed == ["beta"]


def test_a_failing_cell_fails_the_build_names_the_cell_and_keeps_the_partial_notebook(book: Path) -> None:
    _notebook(book / "book" / "beta.ipynb", "x = 1", "1 / 0", "print('never')")
    with pytest.raises(BookBuildError, match=r"chapter beta: cell \[4\] raised ZeroDivisionError: division by zero") as err:
        execute_book(book, "smoke", jobs=2, threads=1, progress=False)
    partial = executed_dir(book, "smoke") / "beta" / "beta.ipynb"
    assert str(partial) in str(err.value) and partial.is_file()
    assert (executed_dir(book, "smoke") / "alpha" / "inputs.json").is_file()  # the other chapter finished
    assert not (executed_dir(book, "smoke") / "claims_ledger").exists()  # the ledger never reads a partial book
    with pytest.raises(BookBuildError, match="chapters not executed at profile smoke: claims_ledger, beta; run"):
        assemble_site(book, "smoke")


def test_stage_two_assembles_executed_notebooks_with_execution_off(book: Path) -> None:
    (book / "_config.yml").write_text(yaml.safe_dump({"title": "t", "execute": {"execute_notebooks": "cache", "timeout": 900}}))
    (book / "_static").mkdir()
    (book / "_static" / "site.css").write_text("img { width: 100%; }\n")
    execute_book(book, "smoke", jobs=2, threads=1, progress=False)
    site = assemble_site(book, "smoke")
    config = yaml.safe_load((site / "_config.yml").read_text())
    assert config["execute"]["execute_notebooks"] == "off"
    assert (site / "book" / "intro.md").is_file() and (site / "_toc.yml").is_file() and (site / "_static" / "site.css").is_file()
    executed = nbformat.read(site / "book" / "beta.ipynb", as_version=4)
    assert any(c.get("outputs") for c in executed.cells if c.cell_type == "code")


def test_inputs_key_and_arguments(book: Path) -> None:
    page = chapters(book)[2]
    assert inputs_key(book, page, "smoke") != inputs_key(book, page, "book")
    with pytest.raises(ValueError, match="profile 'huge' is unknown; allowed: smoke, book, paper"):
        execute_book(book, "huge")
    with pytest.raises(ValueError, match="jobs=0 is not allowed"):
        execute_book(book, "smoke", jobs=0)
    (book / "_toc.yml").write_text(yaml.safe_dump({"root": "book/intro", "chapters": [{"file": "book/missing"}]}))
    with pytest.raises(FileNotFoundError, match="lists 'book/missing'"):
        chapters(book)

"""equiv.book_build: stage 1 executes chapters through the batch runner, resumably and in order; stage 2 assembles."""

from __future__ import annotations

import json
from pathlib import Path

import nbformat
import pytest
import yaml

from equiv.book_build import (BookBuildError, assemble_site, chapters, execute_book, executed_dir, expected_seconds,
                               inputs_key, stale_chapters, start_order)


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
    # the changed chapter, and the ledger, which reads every chapter's results; alpha is not executed again
    assert third.executed == ["beta", "claims_ledger"] and "4" in _output(book, "beta")
    (book / "data" / "x.csv").write_text("a\n2\n")  # the data changed: every chapter depends on it
    assert sorted(execute_book(book, "smoke", jobs=2, threads=1, progress=False).executed) == ["alpha", "beta", "claims_ledger"]


def _declare_reads(path: Path, reads) -> None:
    nb = nbformat.read(path, as_version=4)
    nb.metadata["equiv"] = {"reads": reads}
    nbformat.write(nb, path)


def test_committed_results_change_only_the_chapters_that_declare_them(book: Path) -> None:
    (book / "data" / "results" / "study").mkdir(parents=True)
    (book / "data" / "results" / "study" / "run1.json").write_text("{}")
    _declare_reads(book / "book" / "beta.ipynb", ["data/results/study"])
    _declare_reads(book / "book" / "claims_ledger.ipynb", ["data/results"])
    execute_book(book, "smoke", jobs=2, threads=1, progress=False)
    (book / "data" / "results" / "study" / "run2.json").write_text("{}")  # a study run finished and was committed
    again = execute_book(book, "smoke", jobs=2, threads=1, progress=False)
    assert again.executed == ["beta", "claims_ledger"] and again.reused == ["alpha"]
    (book / "data" / "results" / "other.csv").write_text("a\n")  # read by the ledger only
    assert execute_book(book, "smoke", jobs=1, threads=1, progress=False).executed == ["claims_ledger"]
    (book / "data" / "x.csv").write_text("a\n3\n")  # data outside data/results/: every chapter
    assert sorted(execute_book(book, "smoke", jobs=2, threads=1, progress=False).executed) == ["alpha", "beta", "claims_ledger"]


def _set_meta(path: Path, **entries) -> None:
    nb = nbformat.read(path, as_version=4)
    nb.metadata.setdefault("equiv", {}).update(entries)
    nbformat.write(nb, path)


def test_the_longest_expected_chapter_starts_first(book: Path) -> None:
    """Start order: the last measured duration, else the metadata's recorded seconds, else reading order."""
    log = book / "order.txt"
    for stem in ("alpha", "beta"):
        nb = nbformat.read(book / "book" / f"{stem}.ipynb", as_version=4)
        nb.cells.insert(2, nbformat.v4.new_code_cell(f"open({str(log)!r}, 'a').write({stem!r} + ' ')"))
        if stem == "alpha":  # alpha is clearly the longer one once measured (kernel start-up varies by ~1 s)
            nb.cells.insert(3, nbformat.v4.new_code_cell("import time; time.sleep(3)"))
        nbformat.write(nb, book / "book" / f"{stem}.ipynb")
    assert [c.stem for c in start_order(book, chapters(book)[1:], "smoke")] == ["claims_ledger", "alpha", "beta"]
    _set_meta(book / "book" / "beta.ipynb", seconds={"smoke": 50, "book": 1})  # recorded: beta is the long one
    assert expected_seconds(book, chapters(book)[3], "smoke") == 50
    execute_book(book, "smoke", jobs=1, threads=1, progress=False)
    assert log.read_text().split() == ["beta", "alpha"]
    # now both have measured durations (alpha sleeps 4 s, beta does not), which override the recorded seconds
    assert expected_seconds(book, chapters(book)[2], "smoke") > expected_seconds(book, chapters(book)[3], "smoke")
    log.write_text("")
    (book / "data" / "x.csv").write_text("a\n3\n")  # every chapter runs again
    execute_book(book, "smoke", jobs=1, threads=1, progress=False)
    assert log.read_text().split() == ["alpha", "beta"]


def test_without_jobs_the_chapters_are_packed_as_equiv_run_packs_a_grid(book: Path, capsys, monkeypatch) -> None:
    from equiv.batch import packing

    monkeypatch.setattr(packing, "cpu_count", lambda: 2)
    summary = execute_book(book, "smoke", jobs=None, threads=1, progress=False)
    assert sorted(summary.executed) == ["alpha", "beta", "claims_ledger"]
    assert "equiv book: packing: 2 runs at once x 1 thread each (--threads)" in capsys.readouterr().err
    # nothing to execute: nothing is measured or printed
    assert execute_book(book, "smoke", jobs=None, progress=False).executed == []
    assert "packing" not in capsys.readouterr().err


@pytest.mark.parametrize("kwargs", [{"jobs": 0}, {"jobs": True}, {"threads": 0}, {"threads": 1.5}])
def test_bad_jobs_or_threads_are_refused_before_any_work(book: Path, kwargs) -> None:
    name = next(iter(kwargs))
    with pytest.raises(ValueError, match=f"{name}=.* is not allowed; allowed: a whole number >= 1"):
        execute_book(book, "smoke", progress=False, **kwargs)
    assert not executed_dir(book, "smoke").exists()


@pytest.mark.parametrize("seconds", [{"smoke": -1}, {"smoke": "long"}, [5], {"smoke": True}])
def test_malformed_recorded_seconds_are_refused(book: Path, seconds) -> None:
    _set_meta(book / "book" / "beta.ipynb", seconds=seconds)
    with pytest.raises(ValueError, match="chapter beta: metadata equiv.seconds is .*allowed: a mapping of profile"):
        execute_book(book, "smoke", jobs=1, threads=1, progress=False)


@pytest.mark.parametrize("reads", [["data/elsewhere"], ["../outside"], "data/results", [3]])
def test_declared_reads_outside_the_results_are_refused(book: Path, reads) -> None:
    _declare_reads(book / "book" / "beta.ipynb", reads)
    with pytest.raises(ValueError, match=r"^chapter beta: metadata equiv\.reads (names|is) .*; allowed: (a path|a list of paths) under data/results/$"):
        execute_book(book, "smoke", jobs=1, threads=1, progress=False)


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


def _kill_kernels_of(folder: Path) -> None:
    """SIGKILL any process whose command line names ``folder``: kernels run in their own session, so killing
    the build's process group leaves them behind (idle, their cell released)."""
    import os
    import signal

    for proc in Path("/proc").iterdir():
        if not proc.name.isdigit():
            continue
        try:
            cmdline = (proc / "cmdline").read_bytes().replace(b"\0", b" ").decode(errors="replace")
        except OSError:
            continue
        if str(folder) in cmdline and int(proc.name) != os.getpid():
            try:
                os.kill(int(proc.name), signal.SIGKILL)
            except OSError:
                pass


def test_sigkill_mid_build_then_rebuild_reuses_the_finished_chapters(book: Path) -> None:
    """A real SIGKILL of the whole build (process group) while a chapter runs: the next build executes only the
    chapters that had not finished."""
    import os
    import signal
    import subprocess
    import sys
    import time

    hold, started = book / "hold", book / "gamma-started"
    hold.write_text("")
    _notebook(book / "book" / "gamma.ipynb", "import os, time",
              f"open({str(started)!r}, 'w').write('x')\nwhile os.path.exists({str(hold)!r}):\n    time.sleep(0.1)")
    toc = yaml.safe_load((book / "_toc.yml").read_text())
    toc["chapters"] = [{"file": "book/alpha"}, {"file": "book/beta"}, {"file": "book/gamma"}]
    (book / "_toc.yml").write_text(yaml.safe_dump(toc))
    code = ("from pathlib import Path; from equiv.book_build import execute_book; "
            f"execute_book(Path({str(book)!r}), 'smoke', jobs=1, threads=1, progress=False)")
    log = book / "build.log"
    with log.open("w") as out:
        build = subprocess.Popen([sys.executable, "-c", code], start_new_session=True, stdout=out, stderr=out)
    done_stamps = [executed_dir(book, "smoke") / s / "inputs.json" for s in ("alpha", "beta")]
    try:
        deadline = time.monotonic() + 300
        while not (started.is_file() and all(p.is_file() for p in done_stamps)):
            assert build.poll() is None, f"the build ended before it could be killed:\n{log.read_text()[-3000:]}"
            assert time.monotonic() < deadline, f"the build never reached the held chapter:\n{log.read_text()[-3000:]}"
            time.sleep(0.2)
        os.killpg(build.pid, signal.SIGKILL)
        build.wait(timeout=60)
    finally:
        hold.unlink(missing_ok=True)  # releases the held cell of any kernel that outlived its killed parent
        if build.poll() is None:
            os.killpg(build.pid, signal.SIGKILL)
        _kill_kernels_of(book)
    assert build.returncode == -signal.SIGKILL
    assert not (executed_dir(book, "smoke") / "gamma" / "inputs.json").exists()
    again = execute_book(book, "smoke", jobs=1, threads=1, progress=False)
    assert again.executed == ["gamma"] and sorted(again.reused) == ["alpha", "beta"]


def test_stage_one_runs_on_the_slurm_backend_then_resumes_locally(book: Path) -> None:
    """``equiv book --backend slurm`` (submitit's LocalExecutor in place of Slurm): the chapters run as a job
    array, are stamped, and a later local build reuses them — a book executed on a cluster renders here."""
    first = execute_book(book, "smoke", jobs=2, progress=False, backend="slurm", slurm={"cluster": "local", "time_limit_min": 10})
    assert sorted(first.executed) == ["alpha", "beta", "claims_ledger"]
    assert "alpha ran at smoke" in _output(book, "claims_ledger")
    assert (executed_dir(book, "smoke") / ".submitit").is_dir()
    again = execute_book(book, "smoke", jobs=1, threads=1, progress=False)
    assert again.executed == [] and sorted(again.reused) == ["alpha", "beta", "claims_ledger"]


@pytest.mark.parametrize("kwargs, message", [
    ({"backend": "ssh"}, r"^--backend 'ssh' is not allowed \(allowed: local, slurm, dask\)$"),
    ({"backend": "dask"}, r"^--backend dask needs --scheduler ADDRESS"),
    ({"scheduler": "tcp://127.0.0.1:1"}, r"^--scheduler 'tcp://127.0.0.1:1' only applies to --backend dask, not 'local'$"),
    ({"backend": "slurm", "slurm": {"cluster": "aws"}}, r"Slurm cluster 'aws' is not allowed"),
])
def test_bad_backend_options_are_refused_before_any_work(book: Path, kwargs, message) -> None:
    with pytest.raises(ValueError, match=message):
        execute_book(book, "smoke", progress=False, **kwargs)
    assert not executed_dir(book, "smoke").exists()


def test_stage_two_renders_only_when_what_it_renders_changed(book: Path, capsys) -> None:
    from equiv.book_build import render_site

    (book / "_config.yml").write_text(yaml.safe_dump({"title": "t", "execute": {"execute_notebooks": "force"}}))
    execute_book(book, "smoke", jobs=2, threads=1, progress=False)
    index = render_site(book, "smoke") / "index.html"
    assert index.is_file()
    first = index.stat().st_mtime_ns
    capsys.readouterr()
    render_site(book, "smoke")  # nothing changed: Jupyter Book does not run
    assert "nothing changed since the last render" in capsys.readouterr().err and index.stat().st_mtime_ns == first
    (book / "book" / "intro.md").write_text("# Intro\n\nA new sentence.\n")
    html = render_site(book, "smoke")
    assert "nothing changed" not in capsys.readouterr().err
    assert "A new sentence." in (html / "book" / "intro.html").read_text()


def test_equiv_book_and_run_start_without_torch() -> None:
    """Only the named command's module is imported, so an unchanged `make book` is not paid in torch imports."""
    import subprocess
    import sys

    code = ("import sys\nfrom equiv.cli import main, build_parser\n"
            "for argv in (['book', '--help'], ['run', '--help']):\n"
            "    try:\n        main(argv)\n    except SystemExit:\n        pass\n"
            "print('torch' in sys.modules)\n"
            "build_parser()\nprint('torch' in sys.modules)")  # the full parser (help, typos) loads every command
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout.split()
    assert out[-2:] == ["False", "True"], out[-2:]


def test_stale_chapters_names_what_stage_one_would_execute(book: Path) -> None:
    """The browser test picks its profile by it: a changed chapter and the ledger (which reads every chapter) are
    stale, the others are not; a profile never built is stale everywhere; an unknown profile is one line."""
    assert stale_chapters(book, "smoke") == ["claims_ledger", "alpha", "beta"]
    execute_book(book, "smoke", jobs=2, threads=1, progress=False)
    assert stale_chapters(book, "smoke") == []
    assert stale_chapters(book, "book") == ["claims_ledger", "alpha", "beta"]
    _notebook(book / "book" / "beta.ipynb", "x = 3 + 3", "print(x)")
    assert stale_chapters(book, "smoke") == ["claims_ledger", "beta"]
    assert execute_book(book, "smoke", jobs=2, threads=1, progress=False).executed == ["beta", "claims_ledger"]
    assert stale_chapters(book, "smoke") == []
    with pytest.raises(ValueError, match=r"^profile 'huge' is unknown; allowed: smoke, book, paper$"):
        stale_chapters(book, "huge")

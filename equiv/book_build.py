"""``make book`` in two stages: papermill executes every chapter through the batch runner, Jupyter Book renders.

Stage 1, :func:`execute_book` (``equiv book --execute-only``): every notebook of ``_toc.yml`` runs with
papermill at the chosen profile, through the batch runner's worker processes (:func:`equiv.batch.local.run_local`,
:func:`equiv.batch.execute.execute_task`): a progress bar, ``--jobs`` chapters at once, no wall-clock limit on a
cell, each chapter's run folder ``_build/executed/<profile>/<chapter>/`` holding the executed notebook, its
``manifest.json`` (provenance, and the failing cell's error) and its ``metrics.json``.

- **Resumable.** A chapter is executed again only when its inputs changed: the notebook's bytes, the profile,
  the library (every ``equiv/**/*.py``) and the data (every file of ``data/`` outside ``data/results/``, and the
  committed result folders the notebook declares in its metadata, :func:`chapter_reads`) — :func:`inputs_key`, stored in
  the run folder as ``inputs.json`` once the chapter is done. After a kill, the next build runs only the
  chapters that had not finished.
- **Start order.** Within a stage, the chapters expected to take longest start first (so ``--jobs 2`` does not
  leave the longest chapter for the end): expected = the chapter's last measured ``duration_s`` at this profile
  (its run folder's manifest, even when stale), else the seconds its notebook metadata records for the profile
  (``"equiv": {"seconds": {"book": 480}}``, a measurement that only orders the start), else 0; ties keep the
  reading order (:func:`start_order`).
- **Order.** The chapters in :data:`LAST` (the claims ledger, which reads the other chapters' results from the
  result cache) run after every other chapter has finished, and again whenever any other chapter's inputs changed.
- **Failures.** A failing cell fails the build after the other chapters of its stage have run: one line per
  failed chapter naming the cell (execution count) and its error, and the partial notebook is kept in its run
  folder.

Stage 2, :func:`render_site` (``equiv book --render-only``): the executed notebooks, ``_toc.yml``, the Markdown
pages and the bibliography are assembled in ``_build/site/<profile>/`` with a configuration that executes
nothing (:func:`equiv.book_site.write_site_config`), and ``jupyter-book build`` renders them to ``_build/html``
with warnings as errors. The same stage renders a paper-scale book from chapters executed elsewhere: copy their
run folders to ``_build/executed/paper/`` and run ``equiv book --profile paper --render-only``.
"""

from __future__ import annotations

import hashlib
import json
import os
import shutil
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path
from typing import Sequence

import yaml

from equiv.atomic_io import atomic_write_json
from equiv.settings import DEFAULT_PROFILE, PROFILE_ENV, PROFILES
from equiv.validation import is_int, is_real

__all__ = ["LAST", "BookBuildError", "Chapter", "chapters", "chapter_reads", "inputs_key", "executed_dir", "execute_book",
           "assemble_site", "render_key", "render_site", "BookSummary", "expected_seconds", "start_order",
           "stale_chapters"]

#: chapters that run only after every other chapter is done (they read the others' results)
LAST = ("claims_ledger",)
INPUTS_FILE = "inputs.json"


class BookBuildError(ValueError):
    """A chapter that failed (one line per chapter: the cell, its error, where the partial notebook is)."""


@dataclass(frozen=True)
class Chapter:
    """One page of ``_toc.yml``: its stem (``rotated_mnist``), source file and whether it is a notebook."""

    stem: str
    source: Path
    notebook: bool


def chapters(root: Path) -> list[Chapter]:
    """The pages of ``root/_toc.yml`` in reading order (root page first)."""
    toc = yaml.safe_load((root / "_toc.yml").read_text(encoding="utf-8"))
    entries = [toc["root"], *(c["file"] for c in toc.get("chapters", []))]
    entries += [c["file"] for part in toc.get("parts", []) for c in part.get("chapters", [])]
    out = []
    for entry in entries:
        base = entry.removesuffix(".ipynb").removesuffix(".md")
        nb, md = root / f"{base}.ipynb", root / f"{base}.md"
        if nb.is_file():
            out.append(Chapter(Path(base).name, nb, True))
        elif md.is_file():
            out.append(Chapter(Path(base).name, md, False))
        else:
            raise FileNotFoundError(f"_toc.yml lists {entry!r}, but neither {nb} nor {md} exists")
    return out


def _tree_hash(paths: Sequence[Path], root: Path) -> str:
    h = hashlib.sha256()
    for path in sorted(paths):
        h.update(path.relative_to(root).as_posix().encode() + b"\0" + path.read_bytes() + b"\0")
    return h.hexdigest()


#: results committed by long computations: a chapter depends on a folder of it only if it declares it
RESULTS = Path("data") / "results"


def _chapter_meta(chapter: Chapter):
    """The ``equiv`` entry of a notebook chapter's metadata (``{}`` when absent)."""
    return json.loads(chapter.source.read_text(encoding="utf-8")).get("metadata", {}).get("equiv", {})


def expected_seconds(root: Path, chapter: Chapter, profile: str) -> float:
    """How long ``chapter`` is expected to execute at ``profile``: its last measured ``duration_s`` there (the
    run folder's manifest, current or stale), else its notebook metadata's ``equiv.seconds[profile]``, else 0.

    Used only to start the longest chapters first; a malformed metadata entry is a one-line ValueError."""
    from equiv.batch.state import read_manifest

    measured = (read_manifest(executed_dir(root, profile) / chapter.stem) or {}).get("duration_s")
    if is_real(measured) and measured >= 0:
        return float(measured)
    meta = _chapter_meta(chapter)
    seconds = meta.get("seconds", {}) if isinstance(meta, dict) else None
    value = seconds.get(profile, 0) if isinstance(seconds, dict) else None
    if not is_real(value) or value < 0:
        raise ValueError(f"chapter {chapter.stem}: metadata equiv.seconds is {seconds!r}; allowed: a mapping of profile to seconds >= 0")
    return float(value)


def start_order(root: Path, pages: Sequence[Chapter], profile: str) -> list[Chapter]:
    """``pages`` with the longest expected first (:func:`expected_seconds`); ties keep the reading order."""
    expected = {c.stem: expected_seconds(root, c, profile) for c in pages}
    return sorted(pages, key=lambda c: -expected[c.stem])  # sorted() is stable


def chapter_reads(root: Path, chapter: Chapter) -> list[Path]:
    """The committed result folders (or files) under ``data/results/`` that a notebook chapter reads, as
    declared in its notebook metadata: ``"equiv": {"reads": ["data/results/rotmnist_study", ...]}``.

    Each must lie under ``data/results/`` (it need not exist yet: a collected table that appears later changes
    the chapter's inputs); anything else is a one-line ValueError naming the chapter."""
    meta = _chapter_meta(chapter)
    reads = meta.get("reads", []) if isinstance(meta, dict) else None
    if not isinstance(reads, list) or not all(isinstance(r, str) for r in reads):
        raise ValueError(f"chapter {chapter.stem}: metadata equiv.reads is {reads!r}; allowed: a list of paths under {RESULTS.as_posix()}/")
    out = []
    for item in reads:
        path = (root / item).resolve()
        if not path.is_relative_to((root / RESULTS).resolve()):
            raise ValueError(f"chapter {chapter.stem}: metadata equiv.reads names {item!r}; allowed: a path under {RESULTS.as_posix()}/")
        out.append(path)
    return out


def inputs_key(root: Path, chapter: Chapter, profile: str) -> str:
    """SHA-256 of what a chapter's execution depends on: its notebook, the profile, the library, the data.

    The data are every file of ``data/`` except the committed results under ``data/results/``, plus the result
    folders the chapter declares (:func:`chapter_reads`): a finished study run changes the chapters that read
    the study, not the others."""
    library = [p for p in (root / "equiv").rglob("*.py") if "__pycache__" not in p.parts]
    results = (root / RESULTS).resolve()
    data = [p for p in (root / "data").rglob("*") if p.is_file() and not p.resolve().is_relative_to(results)] \
        if (root / "data").is_dir() else []
    for read in chapter_reads(root, chapter):
        data += [read] if read.is_file() else [p for p in read.rglob("*") if p.is_file()]  # nothing if absent
    h = hashlib.sha256()
    for part in (chapter.source.read_bytes(), profile.encode(), _tree_hash(library, root).encode(), _tree_hash(data, root).encode()):
        h.update(hashlib.sha256(part).digest())
    return h.hexdigest()


def executed_dir(root: Path, profile: str) -> Path:
    """Where stage 1 puts each chapter's run folder."""
    return root / "_build" / "executed" / profile


@dataclass
class BookSummary:
    """What :func:`execute_book` did."""

    executed: list[str]
    reused: list[str]
    failed: list[str]


def _check_profile(profile: str) -> str:
    if profile not in PROFILES:
        raise ValueError(f"profile {profile!r} is unknown; allowed: {', '.join(PROFILES)}")
    return profile


def _up_to_date(run_dir: Path, key: str | None) -> bool:
    """Whether the chapter in ``run_dir`` finished (stamped) — from inputs ``key``, unless ``key`` is None."""
    from equiv.batch.state import read_json, read_manifest

    stamp = read_json(run_dir / INPUTS_FILE) or {}
    manifest = read_manifest(run_dir) or {}
    return (manifest.get("status") == "done" and "key" in stamp and (key is None or stamp["key"] == key)
            and (run_dir / f"{run_dir.name}.ipynb").is_file())


def _chapter_states(root: Path, profile: str, pages: Sequence[Chapter]) -> list[tuple[Chapter, str, bool]]:
    """``(chapter, inputs key, up to date)`` for each notebook of ``pages`` at ``profile``; a chapter of
    :data:`LAST` reads every other chapter's results, so its key covers theirs (it runs again when any does)."""
    keys = {c.stem: inputs_key(root, c, profile) for c in pages}
    others = hashlib.sha256("".join(k for s, k in sorted(keys.items()) if s not in LAST).encode()).hexdigest()
    states = []
    for chapter in pages:
        key = hashlib.sha256((keys[chapter.stem] + others).encode()).hexdigest() if chapter.stem in LAST else keys[chapter.stem]
        states.append((chapter, key, _up_to_date(executed_dir(root, profile) / chapter.stem, key)))
    return states


def stale_chapters(root: Path, profile: str) -> list[str]:
    """The notebook chapters that ``make book`` at ``profile`` would execute now (inputs changed, or never
    finished there), in reading order; ``[]``: stage 1 would execute nothing."""
    root = Path(root).resolve()
    _check_profile(profile)
    pages = [c for c in chapters(root) if c.notebook]
    return [c.stem for c, _, current in _chapter_states(root, profile, pages) if not current]


def _failure_line(stem: str, run_dir: Path) -> str:
    from equiv.batch.state import read_manifest

    err = (read_manifest(run_dir) or {}).get("error") or {}
    where = f"cell [{err.get('exec_count')}]" if err.get("exec_count") is not None else "the kernel"
    message = " ".join(str(err.get("message", "")).split())[:300]
    return f"chapter {stem}: {where} raised {err.get('type', 'an error')}: {message} (partial notebook: {run_dir / (stem + '.ipynb')})"


def execute_book(root: Path, profile: str, *, jobs: int | None = 1, threads: int | None = None, progress: bool = True,
                 only: Sequence[str] | None = None, backend: str = "local", scheduler: str | None = None,
                 slurm: dict | None = None) -> BookSummary:
    """Stage 1: execute every notebook chapter whose inputs changed (see the module docstring).

    ``backend`` is where the chapters execute, as for ``equiv run``: ``local`` (``jobs`` worker processes,
    ``threads`` CPU threads each), ``slurm`` (one submitit job array per phase; ``slurm`` holds
    :class:`equiv.batch.slurm.SlurmOptions` keys, e.g. ``partition`` and ``gpus_per_run``) or ``dask`` (the
    cluster at ``scheduler``). ``jobs=None`` on the local backend packs the chapters as ``equiv run`` packs a
    grid (:func:`equiv.batch.packing.choose_packing`: the measured best packing, printed), measured only when a
    chapter has to execute; on a cluster it means one at a time. A paper-scale book is executed on a cluster this way and rendered where the run
    folders are (``equiv book --profile paper --backend slurm``). ``only`` restricts the build to those
    chapter stems (for tests). Raises :class:`BookBuildError` naming every failed chapter after all chapters
    that could run have run."""
    from equiv.batch.execute import RunTask
    from equiv.batch.runner import check_backend, dispatch
    from equiv.batch.progress import GridProgress

    root = Path(root).resolve()
    _check_profile(profile)
    if jobs is not None and (not is_int(jobs, numpy=False) or jobs < 1):
        raise ValueError(f"jobs={jobs!r} is not allowed; allowed: a whole number >= 1, or None (the measured packing)")
    if threads is not None and (not is_int(threads, numpy=False) or threads < 1):
        raise ValueError(f"threads={threads!r} is not allowed; allowed: a whole number >= 1, or None")
    check_backend(backend, scheduler)
    slurm_options = None
    if backend == "slurm":
        from equiv.batch.slurm import SlurmOptions, check_available

        slurm_options = SlurmOptions.merged({}, {"array_parallelism": jobs or 1, **{k: v for k, v in (slurm or {}).items() if v is not None}})
        check_available(slurm_options)
    pages = [c for c in chapters(root) if c.notebook and (only is None or c.stem in only)]
    pages = start_order(root, pages, profile)
    base = executed_dir(root, profile)
    summary = BookSummary([], [], [])
    phases: list[list[tuple[Chapter, str]]] = [[], []]
    for chapter, key, current in _chapter_states(root, profile, pages):
        run_dir = base / chapter.stem
        if current:
            summary.reused.append(chapter.stem)
            continue
        (run_dir / "manifest.json").unlink(missing_ok=True)  # inputs changed, or never finished: run again
        (run_dir / INPUTS_FILE).unlink(missing_ok=True)
        phases[chapter.stem in LAST].append((chapter, key))
    if jobs is None and backend == "local" and any(phases):
        from equiv.batch.packing import choose_packing

        packing = choose_packing(None, threads)
        print(f"equiv book: {packing}", file=sys.stderr, flush=True)
        jobs, threads = packing.jobs, packing.threads
    bar = GridProgress(f"book ({profile})", sum(map(len, phases)), already_done=len(summary.reused),
                       enabled=progress and any(phases))
    failed_lines = []
    try:
        for phase in phases:
            if not phase:
                continue
            if failed_lines:  # the ledger reads the other chapters: do not run it on a partial book
                break
            tasks = [RunTask(grid=f"book-{profile}", run_id=c.stem, run_dir=str(base / c.stem), notebook=str(c.source),
                             notebook_key=c.source.relative_to(root).as_posix(), parameters={"profile": profile},
                             profile=profile, wait_for_lock=False) for c, _ in phase]
            keys = {c.stem: k for c, k in phase}

            def stamp(outcome, keys=keys) -> None:  # at once: a build killed later keeps this chapter
                if outcome.status in ("done", "skipped") and outcome.run_id in keys:
                    atomic_write_json(base / outcome.run_id / INPUTS_FILE, {"key": keys[outcome.run_id], "profile": profile})

            done_runs = dispatch(tasks, backend, progress=bar, jobs=jobs or 1, threads=threads, slurm_options=slurm_options,
                                 folder=base / ".submitit", name=f"equiv-book-{profile}", scheduler=scheduler, on_outcome=stamp)
            outcomes = {o.run_id: o for o in done_runs}
            for chapter, key in phase:
                outcome = outcomes.get(chapter.stem)
                if outcome is not None and outcome.status in ("done", "skipped"):
                    summary.executed.append(chapter.stem)
                else:
                    summary.failed.append(chapter.stem)
                    failed_lines.append(_failure_line(chapter.stem, base / chapter.stem))
    finally:
        bar.close()
    if failed_lines:
        raise BookBuildError("; ".join(failed_lines))
    return summary


def assemble_site(root: Path, profile: str) -> Path:
    """Stage 2a: ``_build/site/<profile>/`` with the executed notebooks (every one must be there and done), the
    Markdown pages, ``_toc.yml``, the bibliography and a configuration that executes nothing."""
    from equiv.book_site import write_site_config

    root = Path(root).resolve()
    _check_profile(profile)
    site = root / "_build" / "site" / profile
    if site.exists():
        shutil.rmtree(site)
    (site / "book").mkdir(parents=True)
    base = executed_dir(root, profile)
    missing = []
    for chapter in chapters(root):
        target = site / chapter.source.relative_to(root)
        target.parent.mkdir(parents=True, exist_ok=True)
        if not chapter.notebook:
            shutil.copy2(chapter.source, target)
            continue
        executed = base / chapter.stem / f"{chapter.stem}.ipynb"
        if not _up_to_date(base / chapter.stem, None):  # what stage 1 finished (run elsewhere, for PROFILE=paper)
            missing.append(chapter.stem)
            continue
        shutil.copy2(executed, target)
    if missing:
        raise BookBuildError(f"chapters not executed at profile {profile}: "
                             f"{', '.join(missing)}; run `equiv book --profile {profile}` (stage 1) first")
    for name in ("_toc.yml", "references.bib"):
        if (root / name).is_file():
            shutil.copy2(root / name, site / name)
    if (root / "_static").is_dir():  # the site's CSS (Jupyter Book adds every _static/*.css)
        shutil.copytree(root / "_static", site / "_static")
    write_site_config(root / "_config.yml", site / "_config.yml", root, execute=False)
    return site


RENDER_STAMP = ".book-render.json"


def render_key(root: Path, site: Path, profile: str) -> str:
    """SHA-256 of everything stage 2 renders from: the assembled site (executed notebooks, pages, table of
    contents, configuration, static files), the library (the API page's docstrings) and ``pyproject.toml``
    (the repository URL). Equal keys and an existing ``_build/html``: :func:`render_site` renders nothing."""
    files = [p for p in site.rglob("*") if p.is_file()]
    library = [p for p in (root / "equiv").rglob("*.py") if "__pycache__" not in p.parts]
    extra = [root / "pyproject.toml"] if (root / "pyproject.toml").is_file() else []
    h = hashlib.sha256(profile.encode())
    h.update(_tree_hash(files, site).encode())
    h.update(_tree_hash(library + extra, root).encode())
    return h.hexdigest()


def render_site(root: Path, profile: str, *, flags: Sequence[str] = ("-W", "--keep-going")) -> Path:
    """Stage 2: assemble the site and render it with Jupyter Book into ``_build/html``; returns that folder.
    Nothing is rendered when :func:`render_key` equals the last successful render's and ``_build/html`` exists,
    so an unchanged ``make book`` takes well under ten seconds. Raises :class:`BookBuildError` when Jupyter Book
    fails (its output has the warnings)."""
    root = Path(root).resolve()
    site = assemble_site(root, profile)
    html = root / "_build" / "html"
    key = render_key(root, site, profile)
    stamp_file = root / "_build" / RENDER_STAMP
    try:
        stamp = json.loads(stamp_file.read_text())
    except (OSError, ValueError):
        stamp = {}
    if stamp.get("key") == key and (html / "index.html").is_file():
        print(f"equiv book: stage 2 at profile {profile}: nothing changed since the last render", file=sys.stderr)
        return html  # what Jupyter Book would render is what it rendered last time
    stamp_file.unlink(missing_ok=True)
    jb = Path(sys.executable).with_name("jupyter-book")
    command = [str(jb) if jb.is_file() else "jupyter-book", "build", str(site), "--path-output", str(root),
               "--builder", "html", *flags]
    done = subprocess.run(command, cwd=root, env={**os.environ, PROFILE_ENV: profile})
    if done.returncode != 0:
        raise BookBuildError(f"jupyter-book build failed (exit {done.returncode}) on {site}; its output above has the warnings")
    (root / "_build" / ".book-profile").write_text(profile + "\n")
    atomic_write_json(stamp_file, {"key": key, "profile": profile})
    return html


def cmd_book(args) -> int:
    """``equiv book``: stage 1 then stage 2 (or one of them)."""
    root = Path(args.root).resolve()
    if not args.render_only:
        from equiv.batch.cli import slurm_overrides

        s = execute_book(root, args.profile, jobs=args.jobs, threads=args.threads, progress=not args.no_progress,
                         backend=args.backend, scheduler=args.scheduler, slurm=slurm_overrides(args))
        print(f"equiv book: stage 1 at profile {args.profile}: {len(s.executed)} chapter(s) executed, "
              f"{len(s.reused)} unchanged", file=sys.stderr)
    if not args.execute_only:
        html = render_site(root, args.profile)
        print(f"equiv book: the site is {html / 'index.html'}", file=sys.stderr)
    return 0


def register(subparsers) -> None:
    """Add ``book`` to the ``equiv`` command line."""
    from equiv.batch.cli import _positive_int, add_slurm_arguments
    from equiv.batch.runner import BACKENDS

    p = subparsers.add_parser("book", help="build the website: execute the chapters with papermill, then render them",
                              description=__doc__.splitlines()[0])
    p.add_argument("--profile", default=os.environ.get(PROFILE_ENV) or DEFAULT_PROFILE, choices=PROFILES,
                   help="the profile every chapter runs at (default: $EQUIV_PROFILE, else book)")
    p.add_argument("--jobs", "-j", type=_positive_int, default=None,
                   help="chapters executed at once (local backend; default: the measured best packing, as for equiv run)")
    p.add_argument("--threads", type=_positive_int, default=None,
                   help="CPU threads per chapter (default: cores // jobs, or the measured best packing)")
    p.add_argument("--root", default=".", help="the repository (default: .)")
    stage = p.add_mutually_exclusive_group()
    stage.add_argument("--execute-only", action="store_true", help="stage 1 only")
    stage.add_argument("--render-only", action="store_true", help="stage 2 only (the chapters must be executed)")
    p.add_argument("--no-progress", action="store_true", help="no progress bar")
    p.add_argument("--backend", choices=BACKENDS, default="local",
                   help="where the chapters execute (default: local; slurm or dask as for equiv run)")
    p.add_argument("--scheduler", default=None, metavar="ADDRESS", help="Dask scheduler address, for --backend dask")
    add_slurm_arguments(p, "Slurm (--backend slurm)")
    p.set_defaults(func=cmd_book)

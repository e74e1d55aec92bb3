"""Execute one run: take its lock, run the notebook (papermill, or the script executor), write its manifest.

:func:`execute_task` is what every backend ends up calling, inside a process of its own (the
worker, see :mod:`equiv.batch.worker`): it sets the kernel's environment (``EQUIV_RUN_DIR``,
``EQUIV_PROFILE``, and ``JUPYTER_RUNTIME_DIR``: the run's own ``.jupyter-runtime/`` folder) in
``os.environ`` for the duration of the run. The kernel's connection file, which holds its key, is
put in that folder too (``KernelManager.connection_file``; jupyter_client would otherwise make a
temporary file in ``$TMPDIR`` that a SIGKILLed run leaves behind).

Sequence, all under the run's lock (:mod:`equiv.batch.lock`), which creates the run folder:

1. read the manifest: ``done`` -> nothing to do; ``failed`` -> run again only with ``retry_failed``
   and if nobody ran it since the runner planned it (same attempt number); none or an interrupted
   ``running`` -> run it;
2. empty the run directory of what an earlier attempt left (partial notebook, stale
   ``metrics.json``, files the notebook wrote, temporaries, and the connection file of a kernel
   that was killed with its worker): every attempt starts clean, keeping only ``params.json``,
   ``manifest.json``, ``.lock`` and ``worker.log`` (appended to);
3. write ``params.json`` (first attempt; planning writes nothing) and the manifest with status
   ``running`` and the attempt number;
4. execute the notebook with the task's executor: papermill (parameters injected as data, never through a
   shell), or the ``script`` executor of :mod:`equiv.batch.script` (no Jupyter: its code cells in a fresh
   Python process, parameters assigned from JSON); papermill's kernel start-up races (``ZMQError: Address
   already in use``, "Kernel died before replying to kernel_info") are retried a few times;
5. copy the executed notebook atomically to ``<notebook-name>.ipynb`` and write the final manifest
   (``done`` or ``failed`` with the exception's name, message and traceback) atomically; remove
   the run's Jupyter runtime folder (whatever the kernel left there).
"""

from __future__ import annotations

import datetime as _dt
import json
import os
import random
import re
import shutil
import socket
import time
import traceback as _tb
import uuid
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any, Callable, Mapping

from equiv.atomic_io import atomic_write_bytes, atomic_write_json
from equiv.batch.layout import (
    EXECUTING_NOTEBOOK,
    KERNEL_RUNTIME_DIR,
    LOCK_FILE,
    MANIFEST_FILE,
    METRICS_FILE,
    PARAMS_FILE,
    WORKER_LOG,
)
from equiv.batch.lock import RunLock
from equiv.batch.metrics import PROFILE_ENV, RUN_DIR_ENV
from equiv.batch.state import file_sha256, read_json, read_manifest

__all__ = [
    "RunTask",
    "Outcome",
    "EXECUTORS",
    "check_executor",
    "execute_task",
    "is_kernel_startup_race",
    "error_info",
    "KERNEL_START_RETRIES",
    "RUNTIME_DIR_ENV",
    "utc_now",
    "params_record",
    "write_params",
    "remove_kernel_runtime",
]

KERNEL_START_RETRIES = 3  # extra tries after a kernel start-up race
RUNTIME_DIR_ENV = "JUPYTER_RUNTIME_DIR"  # where jupyter_client puts kernel connection files
_ANSI = re.compile(r"\x1b\[[0-9;]*[A-Za-z]")


def utc_now() -> str:
    """Current UTC time, ISO 8601 with microseconds."""
    return _dt.datetime.now(_dt.timezone.utc).isoformat(timespec="microseconds")


@dataclass
class RunTask:
    """Everything a worker needs to execute one run (JSON-able: it crosses process boundaries)."""

    grid: str
    run_id: str
    run_dir: str
    notebook: str  # absolute path
    notebook_key: str  # the notebook's path in the run id
    parameters: dict[str, Any]
    profile: str | None = None
    expected_attempt: int = 0  # the attempt number the runner saw when it planned the grid
    retry_failed: bool = False
    wait_for_lock: bool = True  # False: give up at once (outcome "busy") when another process runs it
    cell_timeout: int | None = None  # whole seconds per cell (papermill takes an int), None: no limit
    start_timeout: float = 60.0  # seconds for the kernel to start
    backend: str = "local"
    executor: str = "papermill"  # one of EXECUTORS: how the notebook is executed
    resources: dict[str, str] = field(default_factory=dict)  # env vars for the run (GPU, threads)
    environment: dict[str, Any] | None = None  # provenance computed by the launcher; None: here
    results_dir: str | None = None  # commit the run there when it is done (equiv.batch.committed)

    def to_dict(self) -> dict[str, Any]:
        """A JSON-able dict."""
        return asdict(self)

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> "RunTask":
        """Inverse of :meth:`to_dict`."""
        return cls(**dict(data))


@dataclass
class Outcome:
    """What happened to one task.

    ``status``: done | failed | skipped (done before) | busy (another process holds its lock) |
    interrupted (its worker was stopped by a signal; the run resumes on the next ``equiv run``).
    """

    run_id: str
    status: str
    detail: str = ""
    duration_s: float | None = None
    attempt: int = 0
    error: dict[str, Any] | None = None

    def to_dict(self) -> dict[str, Any]:
        """A JSON-able dict."""
        return asdict(self)

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> "Outcome":
        """Inverse of :meth:`to_dict`."""
        return cls(**dict(data))


def _chain(exc: BaseException):
    seen = set()
    while exc is not None and id(exc) not in seen:
        seen.add(id(exc))
        yield exc
        exc = exc.__cause__ or exc.__context__


def is_kernel_startup_race(exc: BaseException) -> bool:
    """Whether ``exc`` is a kernel start-up failure that a retry can fix (no cell has run)."""
    for e in _chain(exc):
        msg = str(e)
        if type(e).__name__ == "ZMQError" and "Address already in use" in msg:
            return True
        if isinstance(e, RuntimeError) and "Kernel died before replying to kernel_info" in msg:
            return True
        if "Kernel didn't respond in" in msg:  # start-up timeout under heavy load
            return True
    return False


def error_info(exc: BaseException) -> dict[str, Any]:
    """``{"type", "message", "traceback", ...}`` of a failed run (notebook errors keep the cell's traceback)."""
    from equiv.batch.script import ScriptCellError

    if isinstance(exc, ScriptCellError):
        return {"type": exc.ename, "message": exc.evalue, "traceback": exc.traceback_text, "cell_index": exc.cell,
                "exec_count": None, "where": "notebook"}
    try:
        from papermill.exceptions import PapermillExecutionError
    except ImportError:  # the script executor runs without Jupyter installed
        PapermillExecutionError = ()  # noqa: N806 - matches nothing
    if isinstance(exc, PapermillExecutionError):
        return {
            "type": exc.ename,
            "message": exc.evalue,
            "traceback": _ANSI.sub("", "\n".join(exc.traceback)),
            "cell_index": exc.cell_index,
            "exec_count": exc.exec_count,
            "where": "notebook",
        }
    return {
        "type": type(exc).__name__,
        "message": str(exc),
        "traceback": "".join(_tb.format_exception(type(exc), exc, exc.__traceback__)),
        "where": "runner",
    }


def _connection_file(task: RunTask) -> Path:
    """A fresh connection file path in the run's runtime folder (jupyter_client's default is a temp file in $TMPDIR)."""
    return Path(task.run_dir).resolve() / KERNEL_RUNTIME_DIR / f"kernel-{uuid.uuid4()}.json"


def _papermill_execute(task: RunTask, output: Path) -> None:
    import papermill
    from traitlets.config import Config

    papermill.execute_notebook(
        task.notebook,
        str(output),
        parameters=dict(task.parameters),
        cwd=str(Path(task.notebook).parent),
        progress_bar=False,
        log_output=False,
        start_timeout=task.start_timeout,
        execution_timeout=None if task.cell_timeout is None else int(task.cell_timeout),
        config=Config({"KernelManager": {"connection_file": str(_connection_file(task))}}),
    )


def _execute_with_retries(
    task: RunTask, output: Path, execute: Callable[[RunTask, Path], None], retries: int = KERNEL_START_RETRIES
) -> int:
    """Run ``execute``; retry kernel start-up races; return how many retries it took."""
    for tried in range(retries + 1):
        try:
            execute(task, output)
            return tried
        except Exception as err:
            if tried == retries or not is_kernel_startup_race(err):
                raise
            output.unlink(missing_ok=True)
            time.sleep(0.5 * 2**tried + random.uniform(0, 0.5))
    raise AssertionError("unreachable")  # pragma: no cover


_KEEP = frozenset({PARAMS_FILE, MANIFEST_FILE, LOCK_FILE, WORKER_LOG})


def params_record(task: RunTask) -> dict[str, Any]:
    """The content of the run's ``params.json``."""
    return {
        "run_id": task.run_id,
        "grid": task.grid,
        "notebook": task.notebook_key,
        "profile": task.profile,
        "parameters": dict(task.parameters),
    }


def write_params(task: RunTask) -> None:
    """Write the run's ``params.json`` unless it already holds the same record (call under the run's lock)."""
    path = Path(task.run_dir) / PARAMS_FILE
    record = params_record(task)
    if read_json(path) != record:  # written once; identical on every rerun
        atomic_write_json(path, record)


def remove_kernel_runtime(run_dir: Path) -> None:
    """Remove the run's Jupyter runtime folder: connection files (kernel keys) a killed kernel left."""
    shutil.rmtree(Path(run_dir) / KERNEL_RUNTIME_DIR, ignore_errors=True)


def _kernel_runtime(run_dir: Path) -> Path:
    """A fresh, private (0700) runtime folder for the run's kernel."""
    folder = run_dir / KERNEL_RUNTIME_DIR
    folder.mkdir(mode=0o700, exist_ok=True)
    os.chmod(folder, 0o700)
    return folder


def _clean_leftovers(run_dir: Path) -> None:
    """Start an attempt from a clean run directory: whatever an earlier, unfinished or failed
    attempt left (partial notebook, metrics, files the notebook wrote, temporaries) goes."""
    for entry in run_dir.iterdir():
        if entry.name in _KEEP:
            continue
        if entry.is_dir() and not entry.is_symlink():
            shutil.rmtree(entry, ignore_errors=True)
        else:
            entry.unlink(missing_ok=True)


def _cell_seconds(notebook: Path) -> float | None:
    try:
        nb = json.loads(notebook.read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return None
    total = 0.0
    for cell in nb.get("cells", []):
        meta = cell.get("metadata", {})  # papermill's record of the cell, or the script executor's
        d = meta.get("papermill", {}).get("duration", meta.get("equiv", {}).get("duration"))
        if isinstance(d, (int, float)):
            total += d
    return total


def _provenance(env_info: Mapping[str, Any]) -> dict[str, Any]:
    code = env_info.get("code", {})
    return {
        "git_commit": code.get("git_commit"),
        "git_dirty": code.get("git_dirty"),
        "equiv_version": code.get("equiv"),
        "libraries": env_info.get("libraries"),
        "device": env_info.get("device"),
        "cpu": env_info.get("cpu"),
        "platform": env_info.get("platform"),
    }


def _commit(task: RunTask, run_dir: Path, record: Mapping[str, Any]) -> None:
    """Publish the done run to its grid's results folder (:mod:`equiv.batch.committed`)."""
    from equiv.batch.committed import publish_run

    metrics = read_json(run_dir / METRICS_FILE) if (run_dir / METRICS_FILE).is_file() else {}
    publish_run(task.results_dir, manifest=record, parameters=task.parameters, metrics=metrics or {})


def _script_execute(task: RunTask, output: Path) -> None:
    from equiv.batch.script import script_execute

    script_execute(task, output)


#: how a run's notebook is executed: ``papermill`` (a Jupyter kernel) or ``script`` (its code cells in a plain
#: Python process, :mod:`equiv.batch.script`); the run, its id and its results are the same either way
EXECUTORS: dict[str, Callable[[RunTask, Path], None]] = {"papermill": _papermill_execute, "script": _script_execute}


def check_executor(executor: str) -> None:
    """One-line ``ValueError`` for an executor that does not exist."""
    if executor not in EXECUTORS:
        raise ValueError(f"--executor {executor!r} is not allowed (allowed: {', '.join(EXECUTORS)})")


def execute_task(task: RunTask, *, execute: Callable[[RunTask, Path], None] | None = None) -> Outcome:
    """Execute ``task`` (see the module docstring) with its executor (:data:`EXECUTORS`); ``execute`` replaces
    it in tests."""
    check_executor(task.executor)
    execute = execute or EXECUTORS[task.executor]
    run_dir = Path(task.run_dir)
    run_dir.mkdir(parents=True, exist_ok=True)
    lock = RunLock(run_dir / LOCK_FILE)
    if not lock.acquire(blocking=task.wait_for_lock):
        return Outcome(task.run_id, "busy", "another process is running it")
    saved_env = {k: os.environ.get(k) for k in (RUN_DIR_ENV, PROFILE_ENV, RUNTIME_DIR_ENV)}
    try:
        manifest = read_manifest(run_dir) or {}
        status, attempt = manifest.get("status"), int(manifest.get("attempt", 0))
        if status == "done":
            return Outcome(task.run_id, "skipped", "already done", manifest.get("duration_s"), attempt)
        if status == "failed" and not (task.retry_failed and attempt == task.expected_attempt):
            why = "failed earlier (use --retry-failed)" if attempt == task.expected_attempt else "failed in another runner"
            return Outcome(task.run_id, "failed", why, manifest.get("duration_s"), attempt, manifest.get("error"))

        output_name = Path(task.notebook).name
        _clean_leftovers(run_dir)  # also the runtime folder, with any connection file of a killed kernel
        write_params(task)
        if task.environment is None:
            from equiv.provenance import environment

            env_info = environment()
        else:
            env_info = task.environment
        attempt += 1
        record: dict[str, Any] = {
            "run_id": task.run_id,
            "grid": task.grid,
            "status": "running",
            "attempt": attempt,
            "notebook": task.notebook_key,
            "notebook_path": task.notebook,
            "notebook_sha256": file_sha256(Path(task.notebook)),
            "output_notebook": output_name,
            "profile": task.profile,
            "backend": task.backend,
            "executor": task.executor,
            "start_time": utc_now(),
            "end_time": None,
            "duration_s": None,
            "pid": os.getpid(),
            "host": socket.gethostname(),
            **_provenance(env_info),
            "resources": dict(task.resources),
            "error": None,
        }
        atomic_write_json(run_dir / MANIFEST_FILE, record)

        os.environ[RUN_DIR_ENV] = str(run_dir.resolve())
        os.environ[RUNTIME_DIR_ENV] = str(_kernel_runtime(run_dir).resolve())
        if task.profile is None:
            os.environ.pop(PROFILE_ENV, None)
        else:
            os.environ[PROFILE_ENV] = task.profile
        executing = run_dir / EXECUTING_NOTEBOOK
        started = time.monotonic()
        error: dict[str, Any] | None = None
        retries = 0
        try:
            retries = _execute_with_retries(task, executing, execute)
        except Exception as err:  # the notebook failed, or its kernel did
            error = error_info(err)
        finally:
            remove_kernel_runtime(run_dir)
        duration = time.monotonic() - started
        cell_seconds = None
        if executing.is_file():
            cell_seconds = _cell_seconds(executing)
            atomic_write_bytes(run_dir / output_name, executing.read_bytes())
            executing.unlink(missing_ok=True)
        record.update(
            status="failed" if error else "done",
            end_time=utc_now(),
            duration_s=round(duration, 3),
            cell_execution_s=None if cell_seconds is None else round(cell_seconds, 3),
            kernel_start_retries=retries,
            metrics_file=METRICS_FILE if (run_dir / METRICS_FILE).is_file() else None,
            error=error,
        )
        atomic_write_json(run_dir / MANIFEST_FILE, record)
        if task.results_dir is not None and not error:
            _commit(task, run_dir, record)
        return Outcome(task.run_id, record["status"], "", record["duration_s"], attempt, error)
    finally:
        for key, value in saved_env.items():
            if value is None:
                os.environ.pop(key, None)
            else:
                os.environ[key] = value
        lock.release()

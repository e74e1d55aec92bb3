"""Worker processes: they execute runs, one at a time, each notebook in a kernel process of its own.

``python -m equiv.batch.worker`` reads :class:`~equiv.batch.execute.RunTask` objects as JSON lines
on stdin until EOF, executes each (:func:`~equiv.batch.execute.execute_task`) and answers each with
one :class:`~equiv.batch.execute.Outcome` line (prefixed ``EQUIV-OUTCOME``) on a private copy of its
stdout. During a run its own stdout and stderr, which the notebook's kernel inherits, go to the
run's ``worker.log``. Tasks travel as data on a pipe: no shell is involved anywhere, so a parameter
such as ``"; rm -rf / #"`` reaches the notebook verbatim.

:class:`WorkerProcess` is the runner's handle on one such process. The local backend keeps one per
slot for the whole grid (so Python start-up and the papermill import are paid once per slot, not
once per run) and replaces it if it dies; :func:`run_task_in_subprocess` uses a fresh one for a
single run (Slurm array tasks, Dask tasks), so a crashing kernel can never take a runner, a Slurm
job or a Dask worker down with it.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
from pathlib import Path
from typing import Any, Mapping

from equiv.atomic_io import atomic_write_json
from equiv.batch.execute import Outcome, RunTask, execute_task, remove_kernel_runtime, utc_now, write_params
from equiv.batch.layout import LOCK_FILE, MANIFEST_FILE, WORKER_LOG
from equiv.batch.lock import RunLock
from equiv.batch.state import read_manifest
from equiv.settings import WORKER_PARENT_ENV

__all__ = ["OUTCOME_PREFIX", "WorkerProcess", "run_task_in_subprocess", "run_task_dict", "record_lost_worker", "die_with_parent", "main"]

OUTCOME_PREFIX = "EQUIV-OUTCOME "
#: the pid of the process that started the worker (set by :class:`WorkerProcess`; see :func:`_die_with_parent`)
PARENT_ENV = WORKER_PARENT_ENV
_INTERRUPTED = {130, 143, -signal.SIGINT, -signal.SIGTERM}  # exit statuses of a worker stopped on purpose


def _log_tail(path: Path, limit: int = 400) -> str:
    try:
        with open(path, "rb") as fh:
            fh.seek(0, os.SEEK_END)
            fh.seek(max(0, fh.tell() - limit))
            data = fh.read()
    except OSError:
        return ""
    return " ".join(data.decode("utf-8", "replace").split())


def record_lost_worker(task: RunTask, returncode: int | None, reason: str = "") -> Outcome:
    """A worker ended without reporting: record the run as failed (if nobody else owns it now).

    Also removes the connection file its kernel may have left in the run's Jupyter runtime folder.
    """
    run_dir = Path(task.run_dir)
    why = reason or f"worker process exited with status {returncode} before reporting"
    tail = _log_tail(run_dir / WORKER_LOG)
    error = {"type": "WorkerDied", "message": why + (f"; worker.log ends: {tail}" if tail else ""), "traceback": "", "where": "runner"}
    lock = RunLock(run_dir / LOCK_FILE)
    if not lock.acquire(blocking=False):
        return Outcome(task.run_id, "failed", why, error=error)
    try:
        manifest = read_manifest(run_dir) or {}
        status, attempt = manifest.get("status"), int(manifest.get("attempt", 0))
        if status in ("done", "failed") and attempt > task.expected_attempt:  # it did finish; only the report was lost
            return Outcome(task.run_id, status, "", manifest.get("duration_s"), attempt, manifest.get("error"))
        if attempt > task.expected_attempt + 1:  # somebody else started it since
            return Outcome(task.run_id, "failed", why, error=error)
        remove_kernel_runtime(run_dir)  # the connection file (and key) of a kernel killed with its worker
        write_params(task)  # the worker may have died before writing it: status lists only folders with one
        record = dict(manifest) if status == "running" else {"run_id": task.run_id, "grid": task.grid, "start_time": None}
        record.update(
            status="failed",
            attempt=task.expected_attempt + 1,
            notebook=task.notebook_key,
            profile=task.profile,
            backend=task.backend,
            end_time=utc_now(),
            error=error,
        )
        atomic_write_json(run_dir / MANIFEST_FILE, record)
        return Outcome(task.run_id, "failed", why, None, record["attempt"], error)
    finally:
        lock.release()


class WorkerProcess:
    """One ``python -m equiv.batch.worker`` process with a fixed environment; started on first use."""

    def __init__(self, env: Mapping[str, str] | None = None) -> None:
        self.env = dict(os.environ)
        self.env.update(env or {})
        self.env.setdefault("PYTHONUNBUFFERED", "1")
        self._proc: subprocess.Popen[bytes] | None = None

    def _spawn(self) -> subprocess.Popen[bytes]:
        return subprocess.Popen(
            [sys.executable, "-m", "equiv.batch.worker"],
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            env={**self.env, PARENT_ENV: str(os.getpid())},
        )

    def run(self, task: RunTask) -> Outcome:
        """Execute ``task`` in this worker (restarting it if it died); return the outcome."""
        Path(task.run_dir).mkdir(parents=True, exist_ok=True)
        if self._proc is None or self._proc.poll() is not None:
            self._proc = self._spawn()
        proc = self._proc
        assert proc.stdin is not None and proc.stdout is not None
        try:
            proc.stdin.write(json.dumps(task.to_dict()).encode("utf-8") + b"\n")
            proc.stdin.flush()
            for raw in proc.stdout:
                line = raw.decode("utf-8", "replace")
                if line.startswith(OUTCOME_PREFIX):
                    return Outcome.from_dict(json.loads(line[len(OUTCOME_PREFIX) :]))
        except BrokenPipeError:
            pass
        except BaseException:  # interrupted: do not leave the worker behind
            self.close(terminate=True)
            raise
        returncode = proc.wait()
        self._proc = None
        if returncode in _INTERRUPTED:  # Ctrl-C / SIGTERM: the run stays interrupted, rerun resumes it
            return Outcome(task.run_id, "interrupted", f"worker stopped by a signal ({returncode})")
        return record_lost_worker(task, returncode)

    def close(self, *, terminate: bool = False, timeout: float = 10.0) -> None:
        """Let the worker exit (EOF on its stdin), or terminate it; kill it if it does not go."""
        proc, self._proc = self._proc, None
        if proc is None:
            return
        try:
            if terminate:
                proc.terminate()
            elif proc.stdin is not None:
                proc.stdin.close()
            proc.wait(timeout=timeout)
        except (subprocess.TimeoutExpired, OSError):
            proc.kill()
            proc.wait()
        finally:
            for stream in (proc.stdin, proc.stdout):
                if stream is not None and not stream.closed:
                    try:
                        stream.close()
                    except OSError:
                        pass


def run_task_in_subprocess(task: RunTask, extra_env: Mapping[str, str] | None = None) -> Outcome:
    """Execute ``task`` in a fresh worker process with ``task.resources`` (and ``extra_env``) set."""
    env = dict(task.resources)
    env.update(extra_env or {})
    worker = WorkerProcess(env)
    try:
        return worker.run(task)
    finally:
        worker.close()


def run_task_dict(task: Mapping[str, Any]) -> dict[str, Any]:
    """Picklable entry point for remote backends: task dict in, outcome dict out."""
    return run_task_in_subprocess(RunTask.from_dict(task)).to_dict()


def _terminate(signum: int, frame: Any) -> None:
    raise SystemExit(128 + signum)  # unwinds papermill, which shuts its kernel down


def _redirect_output(path: Path | None, saved: tuple[int, int]) -> None:
    """Point fds 1 and 2 (inherited by the kernel) at ``path``, or back to ``saved`` when ``None``."""
    sys.stdout.flush()
    sys.stderr.flush()
    if path is None:
        os.dup2(saved[0], 1)
        os.dup2(saved[1], 2)
        return
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_APPEND | os.O_CLOEXEC, 0o644)
    try:
        os.dup2(fd, 1)
        os.dup2(fd, 2)
    finally:
        os.close(fd)


def die_with_parent(parent: int) -> None:
    """On Linux, have the kernel send this process SIGTERM when its parent (pid ``parent``) dies, even by SIGKILL
    (``prctl(PR_SET_PDEATHSIG)``); if that parent is already gone (it died before this call), stop at once. A
    worker calls it for itself, and the script executor's process for its own (:mod:`equiv.batch.script`).
    Elsewhere it does nothing."""
    if not sys.platform.startswith("linux"):
        return
    try:
        import ctypes

        libc = ctypes.CDLL(None, use_errno=True)
        if libc.prctl(1, int(signal.SIGTERM), 0, 0, 0) != 0:  # 1 = PR_SET_PDEATHSIG
            return
    except (OSError, AttributeError, ValueError):
        return
    if os.getppid() != parent:
        raise SystemExit(128 + int(signal.SIGTERM))


def _die_with_parent() -> None:
    """The worker stops when the process that started it dies (:func:`die_with_parent`): it then unwinds papermill,
    which shuts the run's kernel down, and the run stays *interrupted* for the next ``equiv run`` to resume,
    instead of training on for nobody. Elsewhere than Linux the worker ends at the next task, when it reads EOF on
    its stdin."""
    parent = os.environ.get(PARENT_ENV)
    if parent:
        die_with_parent(int(parent))


def main() -> int:
    """Worker entry point: task JSON lines on stdin, outcome lines on (a private copy of) stdout."""
    signal.signal(signal.SIGTERM, _terminate)
    _die_with_parent()
    protocol = os.fdopen(os.dup(sys.stdout.fileno()), "w", encoding="utf-8")  # not inherited by kernels
    saved = (os.dup(1), os.dup(2))
    os.set_inheritable(saved[0], False)
    os.set_inheritable(saved[1], False)
    for line in sys.stdin:
        if not line.strip():
            continue
        task = RunTask.from_dict(json.loads(line))
        os.environ.update(task.resources)
        _redirect_output(Path(task.run_dir) / WORKER_LOG, saved)
        try:
            outcome = execute_task(task)
        except KeyboardInterrupt:  # leave the run "running" with a free lock: interrupted, rerun resumes it
            return 130
        finally:
            _redirect_output(None, saved)
        protocol.write(OUTCOME_PREFIX + json.dumps(outcome.to_dict()) + "\n")
        protocol.flush()
    return 0


if __name__ == "__main__":
    sys.exit(main())

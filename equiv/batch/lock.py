"""One lock per run: ``fcntl.flock`` on ``<run-dir>/.lock``, held for the whole execution.

``flock`` locks belong to the open file description, so the kernel releases them when the holder
dies for any reason (SIGKILL included): a run whose manifest says ``running`` but whose lock is
free was interrupted and may be re-run. Lock files are never deleted (deleting them would let two
processes lock two different files of the same name).

On network file systems ``flock`` works where the NFS client maps it onto NFS locks (Linux does
by default since 2.6.12); on file systems without locking, two runners on the same grid directory
are not protected.
"""

from __future__ import annotations

import errno
import fcntl
import os
from pathlib import Path
from types import TracebackType

__all__ = ["RunLock", "is_locked"]


class RunLock:
    """An exclusive ``flock`` on one lock file; use :meth:`acquire` / :meth:`release` or ``with``."""

    def __init__(self, path: str | os.PathLike) -> None:
        self.path = Path(path)
        self._fd: int | None = None

    @property
    def held(self) -> bool:
        """Whether this object holds the lock."""
        return self._fd is not None

    def acquire(self, *, blocking: bool = True) -> bool:
        """Take the lock; with ``blocking=False`` return ``False`` at once when someone else holds it."""
        if self._fd is not None:
            raise RuntimeError(f"lock {self.path} is already held by this object")
        self.path.parent.mkdir(parents=True, exist_ok=True)
        fd = os.open(self.path, os.O_RDWR | os.O_CREAT | os.O_CLOEXEC, 0o644)
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | (0 if blocking else fcntl.LOCK_NB))
        except OSError as err:
            os.close(fd)
            if err.errno in (errno.EWOULDBLOCK, errno.EAGAIN, errno.EACCES):
                return False
            raise
        self._fd = fd
        return True

    def release(self) -> None:
        """Release the lock (closing the descriptor releases the ``flock``)."""
        if self._fd is not None:
            fd, self._fd = self._fd, None
            os.close(fd)

    def __enter__(self) -> "RunLock":
        self.acquire(blocking=True)
        return self

    def __exit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        self.release()


def is_locked(path: str | os.PathLike) -> bool:
    """Whether a live process holds the lock file ``path`` (probes with a momentary shared lock)."""
    try:
        fd = os.open(path, os.O_RDONLY | os.O_CLOEXEC)
    except FileNotFoundError:
        return False
    try:
        fcntl.flock(fd, fcntl.LOCK_SH | fcntl.LOCK_NB)
    except OSError as err:
        if err.errno in (errno.EWOULDBLOCK, errno.EAGAIN, errno.EACCES):
            return True
        raise
    finally:
        os.close(fd)  # also drops the shared lock when we got it
    return False

"""A tqdm progress bar over a grid: done / failed / running / left, with an estimate of the time left.

The bar counts the runs this invocation executes (runs already done are reported in its title);
tqdm's remaining-time estimate follows the rate at which runs finish. Safe to call from threads.
"""

from __future__ import annotations

import sys
import threading
from typing import TextIO

__all__ = ["GridProgress"]


class GridProgress:
    """Counts of a grid's runs, shown as a tqdm bar on stderr (or kept silently when disabled)."""

    def __init__(self, grid: str, total: int, *, already_done: int = 0, enabled: bool = True, file: TextIO | None = None) -> None:
        self.total = total
        self.done = 0
        self.failed = 0
        self.running = 0
        self._lock = threading.Lock()
        self._bar = None
        if enabled:
            from tqdm.auto import tqdm

            desc = f"{grid}" + (f" ({already_done} done before)" if already_done else "")
            self._bar = tqdm(total=total, desc=desc, unit="run", file=file or sys.stderr, dynamic_ncols=True, smoothing=0.1)
            self._refresh()

    @property
    def left(self) -> int:
        """Runs not started yet."""
        return max(0, self.total - self.done - self.failed - self.running)

    def _refresh(self) -> None:
        if self._bar is not None:
            self._bar.set_postfix_str(f"done={self.done} failed={self.failed} running={self.running} left={self.left}")

    def started(self, n: int = 1) -> None:
        """``n`` runs started."""
        with self._lock:
            self.running += n
            self._refresh()

    def finished(self, status: str, *, was_running: bool = True) -> None:
        """A run ended with ``status`` (done / failed / skipped: skipped counts as done)."""
        with self._lock:
            if was_running:
                self.running = max(0, self.running - 1)
            if status == "failed":
                self.failed += 1
            else:
                self.done += 1
            if self._bar is not None:
                self._bar.update(1)
            self._refresh()

    def set_running(self, n: int) -> None:
        """Set the number of running runs (backends that only know an estimate)."""
        with self._lock:
            self.running = max(0, n)
            self._refresh()

    def note(self, message: str) -> None:
        """Print a line above the bar."""
        with self._lock:
            if self._bar is not None:
                self._bar.write(message, file=sys.stderr)
            else:
                print(message, file=sys.stderr)

    def close(self) -> None:
        """Remove the bar (its last state stays on screen)."""
        with self._lock:
            if self._bar is not None:
                self._bar.close()
                self._bar = None

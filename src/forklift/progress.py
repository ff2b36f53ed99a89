"""Progress bars for long calls, drawn with rich on stderr.

The scheduler thread calls :meth:`ProgressHandle.advance` once per delivered
chunk (never per item), so a bar costs nothing measurable on tiny tasks.
rich redraws from its own thread at a fixed rate.
"""

from __future__ import annotations

import threading
from typing import Any

__all__ = ["ProgressHandle", "progress_bar"]


class ProgressHandle:
    """A live bar: done / total, failures, rate and ETA."""

    def __init__(self, total: int | None, description: str) -> None:
        from rich.console import Console
        from rich.progress import (
            BarColumn,
            MofNCompleteColumn,
            Progress,
            TextColumn,
            TimeElapsedColumn,
            TimeRemainingColumn,
        )

        self._lock = threading.Lock()
        self._closed = False
        self.failed = 0
        self._progress = Progress(
            TextColumn("[bold]{task.description}"),
            BarColumn(),
            MofNCompleteColumn(),
            TextColumn("{task.fields[rate]}"),
            TextColumn("[red]{task.fields[failed]}"),
            TimeElapsedColumn(),
            TextColumn("eta"),
            TimeRemainingColumn(),
            console=Console(stderr=True),
            refresh_per_second=8,
        )
        self._task = self._progress.add_task(description, total=total, failed="", rate="")
        self._progress.start()

    def advance(self, n: int, failed: int = 0) -> None:
        with self._lock:
            if self._closed:
                return
            self.failed += failed
            task = self._progress.tasks[0]
            speed = task.speed
            self._progress.update(
                self._task,
                advance=n,
                failed=f"{self.failed} failed" if self.failed else "",
                rate=f"{speed:,.0f}/s" if speed else "",
            )

    def close(self) -> None:
        with self._lock:
            if self._closed:
                return
            self._closed = True
            self._progress.stop()


def progress_bar(enabled: Any, total: int | None, description: str) -> ProgressHandle | None:
    """A bar when ``enabled`` is true, else None."""
    if not enabled:
        return None
    if isinstance(enabled, str):
        description = enabled
    return ProgressHandle(total, description)

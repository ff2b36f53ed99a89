"""The progress line of a copy (``progress=True``): files and bytes done, rate, ETA, errors."""

from __future__ import annotations

import time
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from .run import _Run


class _Display:
    """A rich progress line on stderr: files and bytes done / found, rate, ETA, errors."""

    INTERVAL = 0.1  # seconds between updates: the parent's time belongs to the walk

    def __init__(self) -> None:
        from rich.console import Console
        from rich.progress import (
            BarColumn,
            DownloadColumn,
            Progress,
            TextColumn,
            TimeRemainingColumn,
            TransferSpeedColumn,
        )

        self._progress = Progress(
            TextColumn("[bold]{task.description}"),
            BarColumn(),
            TextColumn("{task.fields[files]} files"),
            DownloadColumn(),
            TransferSpeedColumn(),
            TextColumn("eta"),
            TimeRemainingColumn(),
            TextColumn("[red]{task.fields[errors]}"),
            console=Console(stderr=True),
            refresh_per_second=8,
        )
        self._task = self._progress.add_task("copy (scanning)", total=None, files="", errors="")
        self._progress.start()
        self._last = 0.0

    def update(self, run: _Run, force: bool = False) -> None:
        now = time.monotonic()
        if not force and now - self._last < self.INTERVAL:
            return
        self._last = now
        nerr = len(run.report.errors)
        self._progress.update(
            self._task,
            description="copy" if run.walker.done else "copy (scanning)",
            completed=run.done_bytes,
            total=run.found_bytes if run.walker.done else max(run.found_bytes, 1),
            files=f"{run.done_files:,}/{run.found_files:,}",
            errors=f"{nerr:,} errors" if nerr else "",
        )

    def close(self, run: _Run) -> None:
        self.update(run, force=True)
        self._progress.stop()

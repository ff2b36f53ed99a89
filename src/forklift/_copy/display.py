"""The progress line of a copy (``progress=True``): files and bytes done, rate, ETA, errors.

The rate is the summary's (:func:`~forklift._copy.outcome.rate`): what was copied
over the time since the copy started, so the bar's last rate is the summary's.
rich's own speed column averaged the last updates only, and left out the first
one, so a copy whose bytes came in a few bursts read 28.6 MB/s on the bar and
368 MB/s in its summary (and ``?`` with one update). The ETA comes from the same
clock; while the walk is still finding files there is no total, so the line says
how fast it finds them instead. The walk redraws it after each directory, so a
tree already up to date (nothing to copy yet) shows its scan going on.
"""

from __future__ import annotations

import time
from typing import TYPE_CHECKING

from .outcome import rate

if TYPE_CHECKING:
    from .run import _Run


class _Display:
    """A rich progress line on stderr: files and bytes done / found, rate, ETA, errors."""

    INTERVAL = 0.1  # seconds between updates: the parent's time belongs to the walk

    def __init__(self, started: float) -> None:
        from rich.console import Console
        from rich.progress import BarColumn, DownloadColumn, Progress, TextColumn

        self._started = started  # time.perf_counter() at the start of the copy, as the summary's
        self._progress = Progress(
            TextColumn("[bold]{task.description}"),
            BarColumn(),
            TextColumn("{task.fields[files]} files"),
            DownloadColumn(),
            TextColumn("{task.fields[rate]}"),
            TextColumn("{task.fields[eta]}"),
            TextColumn("[red]{task.fields[errors]}"),
            console=Console(stderr=True),
            refresh_per_second=8,
        )
        self._task = self._progress.add_task(
            "copy (scanning)", total=None, files="0/0", rate="", eta="scanning", errors=""
        )
        self._progress.start()
        self._last = 0.0

    def update(self, run: _Run, force: bool = False) -> None:
        now = time.monotonic()
        if not force and now - self._last < self.INTERVAL:
            return
        self._last = now
        nerr = len(run.report.errors)
        seconds = time.perf_counter() - self._started
        self._progress.update(
            self._task,
            description="copy" if run.walker.done else "copy (scanning)",
            completed=run.done_bytes,
            total=run.found_bytes if run.walker.done else max(run.found_bytes, 1),
            files=f"{run.done_files:,}/{run.found_files:,}",
            rate=rate(run.report.files_copied, run.report.bytes_copied, seconds),
            eta=eta(run, seconds),
            errors=f"{nerr:,} errors" if nerr else "",
        )

    def close(self, run: _Run) -> None:
        self.update(run, force=True)
        self._progress.stop()


def eta(run: _Run, seconds: float) -> str:
    """The time left at the pace so far, once the walk has found everything; before, its pace."""
    if not run.walker.done:
        return f"scanning: {run.found_files / max(seconds, 1e-9):,.0f} files/s found"
    if run.found_bytes:
        done = run.done_bytes / run.found_bytes
    else:
        done = run.done_files / run.found_files if run.found_files else 1.0
    if done >= 1.0:
        return ""
    if done <= 0.0:
        return "eta ?"
    left = round(seconds * (1.0 - done) / done)
    return f"eta {left // 3600}:{left // 60 % 60:02d}:{left % 60:02d}"

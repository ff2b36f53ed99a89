"""Progress bars for long calls, drawn with rich on stderr.

The scheduler thread calls :meth:`ProgressHandle.advance` once per delivered
chunk (never per item), so a bar costs nothing measurable on tiny tasks.
rich redraws from its own thread at a fixed rate.

``progress="workers"`` adds a live table under the bar: each worker's state, the
items it runs and for how long, tasks done, CPU % and RSS. rich's refresh thread
builds it from :meth:`EngineAPI.worker_states` (a snapshot read without stopping the
scheduler) and psutil, so the scheduler does no extra work for it.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable, Iterable, Sequence
from typing import Any, Protocol

__all__ = ["ProgressHandle", "WorkersView", "progress_bar"]

WORKERS = "workers"  # the progress= value that asks for the workers table


class WorkerRow(Protocol):
    """What the workers table reads of one worker (the engine's ``WorkerState`` has it)."""

    @property
    def pid(self) -> int: ...
    @property
    def state(self) -> str: ...
    @property
    def call(self) -> str: ...
    @property
    def first(self) -> int: ...
    @property
    def last(self) -> int: ...
    @property
    def seq(self) -> int: ...
    @property
    def tasks_done(self) -> int: ...
    @property
    def since_ns(self) -> int: ...


class ProgressHandle:
    """A live bar: done / total, failures, rate and ETA."""

    refresh_per_second = 8

    def __init__(self, total: int | None, description: str) -> None:
        from rich.console import Console
        from rich.progress import (
            BarColumn,
            MofNCompleteColumn,
            TextColumn,
            TimeElapsedColumn,
            TimeRemainingColumn,
        )

        self._lock = threading.Lock()
        self._closed = False
        self.failed = 0
        self._progress = self._make_progress(
            TextColumn("[bold]{task.description}"),
            BarColumn(),
            MofNCompleteColumn(),
            TextColumn("{task.fields[rate]}"),
            TextColumn("[red]{task.fields[failed]}"),
            TimeElapsedColumn(),
            TextColumn("eta"),
            TimeRemainingColumn(),
            console=Console(stderr=True),
            refresh_per_second=self.refresh_per_second,
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

    def _make_progress(self, *columns: Any, **options: Any) -> Any:
        from rich.progress import Progress

        return Progress(*columns, **options)


class WorkersView(ProgressHandle):
    """The bar, and under it one row per worker, redrawn by rich's thread."""

    refresh_per_second = 4

    def __init__(
        self, total: int | None, description: str, states: Callable[[], Sequence[WorkerRow]]
    ) -> None:
        self._states = states
        self._procs: dict[int, Any] = {}  # pid -> psutil.Process, for CPU % between redraws
        self._since: dict[int, tuple[int, float]] = {}  # pid -> (chunk seq, first seen)
        super().__init__(total, description)

    def _make_progress(self, *columns: Any, **options: Any) -> Any:
        from rich.progress import Progress

        view = self

        class _Progress(Progress):
            def get_renderables(self) -> Iterable[Any]:
                yield self.make_tasks_table(self.tasks)
                yield view.table()

        return _Progress(*columns, **options)

    def table(self) -> Any:
        """The workers table as rich draws it; a failed read shows as a note, never an error."""
        from rich.table import Table

        table = Table(box=None, pad_edge=False, header_style="bold dim")
        for name in WORKER_COLUMNS:
            table.add_column(name, justify="left" if name in ("state", "items") else "right")
        try:
            rows = self.rows()
        except Exception as exc:  # a display must not break the pool it shows
            table.add_row("", f"[dim]workers unreadable: {exc}")
            return table
        for row in rows:
            table.add_row(*row)
        return table

    def rows(self) -> list[tuple[str, ...]]:
        """One row of text per worker: pid, state, items, for how long, done, CPU %, RSS."""
        now = time.monotonic()
        rows: list[tuple[str, ...]] = []
        live = set()
        for w in self._states():
            live.add(w.pid)
            cpu, rss = usage_text(*cpu_and_rss(self._procs, w.pid))
            if w.first < 0:
                items = since = ""
                self._since.pop(w.pid, None)
            else:
                items = f"{w.call} #{w.first}" + (f"-{w.last}" if w.last != w.first else "")
                if w.since_ns:  # the item's own start, stamped by the worker
                    seconds = time.monotonic_ns() / 1e9 - w.since_ns / 1e9
                else:  # the chunk's, as first seen here
                    seq, seen = self._since.get(w.pid, (None, now))
                    if seq != w.seq:
                        seen = now
                        self._since[w.pid] = (w.seq, now)
                    seconds = now - seen
                since = f"{max(seconds, 0.0):.1f} s"
            rows.append((str(w.pid), w.state, items, since, f"{w.tasks_done:,}", cpu, rss))
        for pid in set(self._procs) - live:  # replaced workers
            del self._procs[pid]
        for pid in set(self._since) - live:
            del self._since[pid]
        return rows


WORKER_COLUMNS = ("worker", "state", "items", "for", "done", "CPU %", "RSS")


def cpu_and_rss(procs: dict[int, Any], pid: int) -> tuple[float | None, int | None]:
    """CPU % of ``pid`` since the previous call, and its RSS; (None, None) once it is gone.

    ``procs`` caches psutil.Process objects between calls: CPU % is measured
    between two calls, so the first call for a process reports 0.
    """
    import psutil

    try:
        proc = procs.get(pid)
        if proc is None:
            proc = procs[pid] = psutil.Process(pid)
            proc.cpu_percent(None)  # starts the measurement; the next call reports
        with proc.oneshot():
            return proc.cpu_percent(None), proc.memory_info().rss
    except (psutil.Error, OSError):
        procs.pop(pid, None)
        return None, None


def usage_text(cpu: float | None, rss: int | None) -> tuple[str, str]:
    """CPU % and RSS as the workers tables show them ("-" when unknown)."""
    return ("-" if cpu is None else f"{cpu:.0f}", "-" if rss is None else f"{rss / 2**20:.1f} MiB")


def progress_bar(
    enabled: Any,
    total: int | None,
    description: str,
    workers: Callable[[], Sequence[WorkerRow]] | None = None,
) -> ProgressHandle | None:
    """A bar when ``enabled`` is true, else None; with ``"workers"``, the workers table too.

    Any other string names the bar. ``workers`` reads the pool's workers; where there
    is none to read (a cluster), ``"workers"`` gives the plain bar.
    """
    if not enabled:
        return None
    if enabled == WORKERS:
        if workers is not None:
            return WorkersView(total, description, workers)
    elif isinstance(enabled, str):
        description = enabled
    return ProgressHandle(total, description)

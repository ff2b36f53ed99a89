"""Reading one run of a journal: its ``Run`` row and its ``Segment`` bars, as a ``RunData``."""

from __future__ import annotations

import bisect
import functools
import os
import sqlite3
from collections.abc import Iterable
from dataclasses import dataclass
from typing import Any

from ..errors import JournalError
from ..journal import connect
from .columns import _CHUNK_COLUMNS, _RUN_COLUMNS, _TASK_COLUMNS, _query, _select
from .summary import RunSummary, summarize_run

#: A worker's lane: its pid (text only in an altered journal), or None for "no worker".
Lane = int | str | None


@dataclass(frozen=True)
class Run:
    run: int
    kind: str
    name: str
    pid: int | str  # text, like workers and total, only in an altered journal (see _Kind): shown
    host: str | None
    workers: int | str | None
    total: int | str | None
    started: float
    ended: float | None
    status: str


@dataclass(slots=True)  # not frozen: 200,000 of them are built, and frozen init is 3x slower
class Segment:
    """One bar: a task attempt, or ``n`` tasks a worker ran in one chunk."""

    worker: Lane
    began: float
    ended: float
    status: str  # done | failed | retried | timeout | lost
    first: int  # first task index it covers
    last: int  # last task index it covers
    n: int  # attempts it stands for (a chunk's failed items are their own segments)
    attempt: int = 1
    final: bool = True  # False: the task was attempted again later
    error: str | None = None
    command: str | None = None
    exit_code: int | str | None = None
    timed: bool = True  # False: a time is missing; not in durations or busy time
    placed: bool = True  # False: no time at all, so not drawn (True and not timed: estimated)

    @property
    def seconds(self) -> float:
        return self.ended - self.began


@dataclass(frozen=True)
class RunData:
    run: Run
    segments: list[Segment]

    @functools.cached_property
    def end(self) -> float:
        """When the run ended: its recorded end, else its last task's end."""
        last = max((s.ended for s in self.segments if s.placed), default=self.run.started)
        return max(last, self.run.ended or last)

    @functools.cached_property
    def wall(self) -> float:
        return max(0.0, self.end - self.run.started)

    @functools.cached_property
    def summary(self) -> RunSummary:
        """summarize_run(self), computed once (the page, the PNG and stdout all show it)."""
        return summarize_run(self)


def open_journal(path: str | os.PathLike[str]) -> sqlite3.Connection:
    """Open an existing journal for reading, or raise JournalError with a one-line reason."""
    if os.path.isdir(path):
        raise JournalError(f"{os.fspath(path)!r} is a directory, not a journal")
    return connect(path, create=False)


def run_ids(conn: sqlite3.Connection) -> list[int]:
    return [r[0] for r in _query(conn, "SELECT run FROM runs ORDER BY run")]


def load_run(conn: sqlite3.Connection, run: int) -> RunData:
    """Everything drawn or counted for one run; JournalError if there is no such run."""
    row = _select(conn, "runs", _RUN_COLUMNS, "run = ?", (run,))
    if not row:
        known = run_ids(conn)
        span = f"runs {known[0]}-{known[-1]}" if known else "no runs"
        raise JournalError(f"no run {run} in this journal ({span})")
    info = Run(*row[0])
    chunks = _select(conn, "chunks", _CHUNK_COLUMNS, "run = ?", (run,))
    tasks = _select(conn, "tasks", _TASK_COLUMNS, "run = ?", (run,), order="idx, attempt")
    latest = _latest_attempts(chunks, tasks)
    segments = [_chunk_segment(*c) for c in chunks]
    segments += [_task_segment(*t, latest=latest) for t in tasks]
    segments = [s for s in segments if s.n > 0]
    _place_untimed(segments, info.started)
    return RunData(info, segments)


def _latest_attempts(chunks: Iterable[tuple[Any, ...]], tasks: Iterable[tuple[Any, ...]]) -> dict[int, int]:
    """Highest attempt number of every task that has a row in ``tasks`` or a re-run chunk."""
    latest: dict[int, int] = {}
    for idx, attempt, *_ in tasks:
        latest[idx] = max(attempt, latest.get(idx, 0))
    for start, n, attempt, *_ in chunks:
        if attempt > 1:  # only re-runs can be later than an attempt in `tasks`
            for idx in range(start, start + n):
                latest[idx] = max(attempt, latest.get(idx, 0))
    return latest


def _chunk_segment(
    start: int, n: int, attempt: int, worker: Lane, began: float, ended: float, failed: str | None
) -> Segment:
    n_failed = len(failed.split(",")) if failed else 0
    return Segment(worker, began, ended, "done", start, start + n - 1, n - n_failed, attempt)


def _task_segment(
    idx: int,
    attempt: int,
    status: str,
    worker: Lane,
    began: float | None,
    ended: float | None,
    error: str | None,
    exit_code: int | str | None,
    command: str | None,
    *,
    latest: dict[int, int],
) -> Segment:
    timed = began is not None and ended is not None
    placed = began is not None or ended is not None
    began = began if began is not None else (ended or 0.0)  # see _place_untimed
    ended = ended if ended is not None else began
    final = status == "done" or latest.get(idx, attempt) <= attempt
    return Segment(
        worker, began, ended, status, idx, idx, 1, attempt, final, error, command, exit_code, timed, placed
    )


def _place_untimed(segments: list[Segment], started: float) -> None:
    """Give an attempt with an end but no start one: the end of its worker's previous bar.

    A worker that died or overran its timeout may leave no start time (the pool
    knows it only for timed tasks); it was on that task since its last one ended,
    as far as the journal can tell. Such bars are drawn but not counted in durations.
    """
    missing = [s for s in segments if s.placed and not s.timed and s.began == s.ended]
    if not missing:
        return
    ends: dict[Lane, list[float]] = {}
    for s in segments:
        if s.timed:
            ends.setdefault(s.worker, []).append(s.ended)
    for lane in ends.values():
        lane.sort()
    for seg in missing:
        lane = ends.get(seg.worker, [])
        i = bisect.bisect_right(lane, seg.ended)
        seg.began = lane[i - 1] if i else started

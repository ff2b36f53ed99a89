"""Read a journal back: per-run and per-worker summaries, a timeline (HTML or PNG), a live view.

``forklift report run.db -o timeline.html`` and ``forklift top run.db`` are thin
faces over this module (``forklift/cli/report.py``)::

    journal (SQLite, WAL) --load_run--> RunData: Run + Segments (one per bar)
                                          |-- summarize_run --> RunSummary (table rows)
                                          |-- render_html ----> one self-contained file
                                          `-- render_png -----> matplotlib (optional extra)
    workers table + psutil --take_snapshot--> Snapshot (what ``forklift top`` draws)

A *segment* is one bar on a worker's lane: either one task attempt (a row of the
``tasks`` table) or a chunk's tasks done in one go (a row of ``chunks``). Reading
chunks rather than the ``task_rows`` view keeps a 200,000-task run at a few
thousand rows; the statistics weight each chunk by its task count, so they equal
what one row per task would give. Nothing here writes to the journal.
"""

from __future__ import annotations

import bisect
import datetime
import functools
import math
import os
import re
import sqlite3
import time
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, field, replace
from html import escape as _escape
from typing import Any

from .errors import JournalError
from .journal import connect
from .progress import cpu_and_rss

__all__ = [
    "LiveWorker",
    "MissingMatplotlib",
    "Progress",
    "Run",
    "RunData",
    "RunSummary",
    "Segment",
    "Snapshot",
    "WorkerStats",
    "load_run",
    "open_journal",
    "render_html",
    "render_png",
    "run_ids",
    "run_name",
    "run_title",
    "summarize_run",
    "summary_text",
    "take_snapshot",
    "union_length",
    "weighted_summary",
]

# Status -> (colour, legend text). Okabe-Ito colours: told apart also with colour-blindness.
STATUS_STYLE = {
    "done": ("#009e73", "done"),
    "failed": ("#d55e00", "failed (raised)"),
    "timeout": ("#e69f00", "timed out"),
    "lost": ("#cc79a7", "lost (worker died)"),
    "retried": ("#f0e442", "lost or timed out, retried"),
}
ENDS_WORKER = ("lost", "timeout", "retried")  # the worker died, or was killed for a timeout: marked x
RERUN_STROKE = "#1f2937"  # outline of attempts >= 2, so a retry is seen where it ran
MAX_BARS = 4000  # above this many bars a run is drawn merged at pixel resolution
LIVE_SECONDS = 5.0  # a worker row older than this is not shown by `top`
ERROR_CHARS = 600  # hover text keeps the last this many characters of an error (the exception line)


# -- reading ------------------------------------------------------------------------------

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


def _query(conn: sqlite3.Connection, sql: str, args: tuple[Any, ...] = ()) -> list[tuple[Any, ...]]:
    try:
        return conn.execute(sql, args).fetchall()
    except sqlite3.DatabaseError as exc:
        raise JournalError(f"the journal cannot be read: {exc}") from None


# A journal is a file anyone can write, and SQLite keeps whatever it is given in any column:
# an INTEGER column holds text that does not look like a number, or a blob. So every value
# is checked as it is read. One that is only shown (names, statuses, pids, errors) becomes
# text if it is not what forklift writes, and is escaped wherever it is drawn; one the
# drawing computes with (times, task indexes, counts) must be a number, or the report says
# which column holds what, in one line.


@dataclass(frozen=True)
class _Kind:
    """What a column holds: ``sql`` is true of every value forklift writes; ``read`` takes any value."""

    sql: str  # a condition on the column, "{0}"
    read: Callable[[Any, str], Any]  # (value, "table.column") -> the value to use, or JournalError


def _integer(value: Any, column: str) -> int:
    if type(value) is int:
        return value
    raise JournalError(f"{column} holds {_excerpt(value)} where an integer belongs: the journal was altered")


def _chunk_size(value: Any, column: str) -> int:
    # forklift's chunks hold at most MAX_CHUNK * 50 items; a crafted size would make the
    # report walk its items for hours.
    if type(value) is int and 1 <= value <= _CHUNK_MAX:
        return value
    raise JournalError(
        f"{column} holds {_excerpt(value)} where a chunk size belongs: the journal was altered"
    )


def _time(value: Any, column: str) -> float:
    if type(value) in (int, float) and _TIME_LOW <= value < _TIME_HIGH:
        return float(value)
    raise JournalError(f"{column} holds {_excerpt(value)} where a time belongs: the journal was altered")


def _text(value: Any, column: str) -> str:
    if isinstance(value, bytes):
        return value.decode("utf-8", "replace")
    return value if isinstance(value, str) else "" if value is None else str(value)


def _shown_id(value: Any, column: str) -> int | str | None:
    """A pid, an exit code, a count: shown (and used only if an integer), so anything else is text."""
    return value if value is None or type(value) is int else _text(value, column)


def _or_null(read: Callable[[Any, str], Any]) -> Callable[[Any, str], Any]:
    return lambda value, column: None if value is None else read(value, column)


def _excerpt(value: Any) -> str:
    text = repr(value)  # one line, control characters escaped: it goes to a terminal
    return text if len(text) <= 40 else text[:37] + "..."


# Unix seconds: 1e11 is the year 5138, within what datetime (and the drawing's arithmetic) takes.
_TIME_LOW, _TIME_HIGH = 0.0, 1e11
_PID_MAX = 1 << 22  # the highest pid_max Linux allows; psutil raises OverflowError far above it
_INT = _Kind("typeof({0}) = 'integer'", _integer)
_CHUNK_MAX = 10_000_000
_CHUNK_N = _Kind(f"typeof({{0}}) = 'integer' AND {{0}} BETWEEN 1 AND {_CHUNK_MAX}", _chunk_size)
_TIME = _Kind(
    f"typeof({{0}}) IN ('integer', 'real') AND {{0}} >= {_TIME_LOW} AND {{0}} < {_TIME_HIGH}", _time
)
_TIME_OR_NULL = _Kind(f"({{0}} IS NULL OR ({_TIME.sql}))", _or_null(_time))
_TEXT = _Kind("typeof({0}) = 'text'", _text)
_TEXT_OR_NULL = _Kind("typeof({0}) IN ('text', 'null')", _or_null(_text))
_ID = _Kind("typeof({0}) IN ('integer', 'null')", _shown_id)
_PID = _Kind(f"typeof({{0}}) = 'integer' AND {{0}} > 0 AND {{0}} <= {_PID_MAX}", _integer)

_RUN_COLUMNS = (
    ("run", _INT), ("kind", _TEXT), ("name", _TEXT), ("pid", _ID), ("host", _TEXT_OR_NULL),
    ("workers", _ID), ("total", _ID), ("started", _TIME), ("ended", _TIME_OR_NULL),
    ("status", _TEXT),
)  # fmt: skip
_CHUNK_COLUMNS = (
    ("start", _INT), ("n", _CHUNK_N), ("attempt", _INT), ("worker", _ID), ("began", _TIME), ("ended", _TIME),
    ("failed", _TEXT_OR_NULL),
)  # fmt: skip
_TASK_COLUMNS = (
    ("idx", _INT), ("attempt", _INT), ("status", _TEXT), ("worker", _ID), ("began", _TIME_OR_NULL),
    ("ended", _TIME_OR_NULL), ("error", _TEXT_OR_NULL), ("exit_code", _ID), ("command", _TEXT_OR_NULL),
)  # fmt: skip
_WORKER_COLUMNS = (
    ("pid", _PID), ("parent", _PID), ("run", _ID), ("state", _TEXT), ("task", _ID), ("done", _ID),
    ("updated", _TIME),
)  # fmt: skip


def _select(
    conn: sqlite3.Connection,
    table: str,
    columns: Sequence[tuple[str, _Kind]],
    where: str,
    args: tuple[Any, ...] = (),
    *,
    order: str = "",
) -> list[tuple[Any, ...]]:
    """The rows of ``table`` matching ``where``, every value checked against its column's _Kind."""
    names = ", ".join(name for name, _ in columns)
    rows = _query(
        conn, f"SELECT {names} FROM {table} WHERE {where}" + (f" ORDER BY {order}" if order else ""), args
    )
    usual = " AND ".join(kind.sql.format(name) for name, kind in columns)
    if not _query(conn, f"SELECT 1 FROM {table} WHERE ({where}) AND NOT ({usual}) LIMIT 1", args):
        return rows  # as forklift wrote them: one pass in SQLite, not 200,000 rows of Python
    columns_named = [(f"{table}.{name}", kind.read) for name, kind in columns]
    return [tuple(read(v, column) for (column, read), v in zip(columns_named, row)) for row in rows]


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


# -- summaries ----------------------------------------------------------------------------


@dataclass(frozen=True)
class WorkerStats:
    """One row of the summary table (a worker, or ``all`` for the run)."""

    label: str
    tasks: int  # attempts run (for ``all``: distinct tasks)
    done: int
    failures: int  # attempts that were a task's last and did not succeed
    retries: int  # attempts that failed, timed out or were lost and ran again later
    mean: float
    p50: float
    p99: float
    busy: float  # seconds spent on tasks (overlaps counted once)
    utilisation: float  # busy / run wall time (for ``all``: / (wall * pool size))


@dataclass(frozen=True)
class RunSummary:
    run: Run
    wall: float
    workers: list[WorkerStats]
    total: WorkerStats
    lanes: list[Lane] = field(default_factory=list)  # worker pids in order of first activity


def summarize_run(data: RunData) -> RunSummary:
    """Per-worker and whole-run statistics (see WorkerStats for what each column counts)."""
    by_lane: dict[Lane, list[Segment]] = {}
    for seg in data.segments:
        by_lane.setdefault(seg.worker, []).append(seg)
    lanes = _lanes(data.segments)
    wall = data.wall
    rows = [_stats(_lane_label(pid), by_lane[pid], wall) for pid in lanes]
    slots = data.run.workers if type(data.run.workers) is int and data.run.workers > 0 else max(1, len(lanes))
    total = _stats("all", data.segments, wall * slots, busy=sum(w.busy for w in rows))
    # A task run twice is still one task.
    total = replace(total, tasks=total.tasks - total.retries)
    return RunSummary(data.run, wall, rows, total, lanes)


def _stats(
    label: str, segments: Sequence[Segment], capacity: float, busy: float | None = None
) -> WorkerStats:
    """Counts, durations and busy time of segments (``busy`` given: already known)."""
    attempts = done = failures = retries = 0
    durations: list[tuple[float, int]] = []
    for s in segments:
        attempts += s.n
        if s.status == "done":
            done += s.n
        elif s.final:
            failures += s.n
        else:
            retries += s.n
        if s.timed:
            durations.append((s.seconds / s.n, s.n))
    mean, p50, p99 = weighted_summary(durations)
    if busy is None:  # one worker: overlapping rows (a chunk and its failed item) count once
        busy = union_length((s.began, s.ended) for s in segments if s.timed)
    utilisation = busy / capacity if capacity > 0 else 0.0
    return WorkerStats(label, attempts, done, failures, retries, mean, p50, p99, busy, utilisation)


def weighted_summary(pairs: Sequence[tuple[float, int]]) -> tuple[float, float, float]:
    """Mean, p50, p99 of values given as (value, count): as if each value were listed count times.

    Nearest rank: the value at ``round(p * (count - 1))`` of the sorted list.
    """
    count = sum(c for _, c in pairs)
    if count == 0:
        return 0.0, 0.0, 0.0
    ordered = sorted(pairs)
    mean = sum(v * c for v, c in ordered) / count

    def pct(p: float) -> float:
        rank = min(count - 1, round(p * (count - 1)))
        seen = 0
        for value, c in ordered:
            seen += c
            if rank < seen:
                return value
        return ordered[-1][0]

    return mean, pct(0.5), pct(0.99)


def union_length(intervals: Iterable[tuple[float, float]]) -> float:
    """Total length covered by the intervals, overlaps counted once."""
    total = 0.0
    end = -math.inf
    for a, b in sorted(intervals):
        if b <= end:
            continue
        total += b - max(a, end)
        end = b
    return total


def _lanes(segments: Iterable[Segment]) -> list[Lane]:
    first: dict[Lane, float] = {}
    for s in segments:
        if s.worker not in first or s.began < first[s.worker]:
            first[s.worker] = s.began
    return sorted(first, key=lambda pid: (pid is None, first[pid]))


def _lane_label(pid: Lane) -> str:
    return "no worker" if pid is None else f"pid {one_line(str(pid))}"


HEADERS = ("worker", "tasks", "done", "failed", "retried", "mean", "p50", "p99", "busy", "util")


def table_rows(summary: RunSummary) -> list[tuple[str, ...]]:
    def row(w: WorkerStats) -> tuple[str, ...]:
        times = (fmt_seconds(w.mean), fmt_seconds(w.p50), fmt_seconds(w.p99), fmt_seconds(w.busy))
        return (w.label, str(w.tasks), str(w.done), str(w.failures), str(w.retries), *times,
                f"{w.utilisation:.0%}")  # fmt: skip

    return [row(w) for w in [*summary.workers, summary.total]]


def run_title(run: Run) -> str:
    started = datetime.datetime.fromtimestamp(run.started).strftime("%Y-%m-%d %H:%M:%S")
    pool = f"{_plural(run.workers, 'worker')}, " if run.workers else ""
    total = f"{_plural(run.total, 'task')}, " if run.total is not None else ""
    return f"{run_name(run)} ({pool}{total}started {started}, {one_line(run.status)})"


def run_name(run: Run) -> str:
    """``run 3: map(square)``: the run's number and what it ran (on one line, whatever it holds)."""
    name = run.name if run.name.startswith(run.kind) else f"{run.kind} {run.name}"
    return f"run {run.run}: {one_line(name)}"


# C0 and C1 controls (a newline, an escape sequence) and the Unicode line separators: a title
# or a table row is one line, and the terminal `forklift report` and `top` print it on must not
# take orders from a journal. As `forklift ps` shows process names.
_ONE_LINE = {c: repr(chr(c))[1:-1] for c in [*range(32), *range(127, 160)]} | {
    0x2028: "\\u2028",
    0x2029: "\\u2029",
}


def one_line(text: str) -> str:
    """``text`` with its control characters written as escapes (a run may be named "a\\nb")."""
    return text.translate(_ONE_LINE)


def _plural(n: int | str, word: str) -> str:
    return f"{n} {word}" if n == 1 else f"{one_line(str(n))} {word}s"


def summary_text(summary: RunSummary) -> str:
    """The summary table as aligned plain text, headed by the run's title."""
    rows = [HEADERS, *table_rows(summary)]
    widths = [max(len(r[i]) for r in rows) for i in range(len(HEADERS))]
    lines = [f"{run_title(summary.run)}, wall {fmt_seconds(summary.wall)}"]
    for r in rows:
        cells = [r[0].ljust(widths[0])] + [c.rjust(w) for c, w in zip(r[1:], widths[1:])]
        lines.append("  ".join(cells).rstrip())
    return "\n".join(lines)


def fmt_seconds(s: float) -> str:
    if s == 0:
        return "0"
    if s < 1e-3:
        return f"{s * 1e6:.0f} us"
    if s < 1:
        return f"{s * 1e3:.3g} ms"
    if s < 120:
        return f"{s:.3g} s"
    return f"{int(s // 60)}m{int(s % 60):02d}s"


# -- drawing: shared by HTML and PNG -------------------------------------------------------


def bars(data: RunData, width_px: float) -> list[Segment]:
    """The segments to draw: all of them, or for huge runs merged at ``width_px`` resolution.

    Merging joins, per worker and status, bars less than a pixel apart, so idle gaps
    of a pixel or more stay visible and the drawing stays small for any run size.
    """
    timed = [s for s in data.segments if s.placed]
    if len(timed) <= MAX_BARS:
        return timed
    pixel = max(data.wall, 1e-9) / max(width_px, 1.0)
    merged: list[Segment] = []
    groups: dict[tuple[Lane, str], list[Segment]] = {}
    for s in timed:
        groups.setdefault((s.worker, s.status), []).append(s)
    for group in groups.values():
        group.sort(key=lambda s: s.began)
        run, end = [group[0]], group[0].ended
        for s in group[1:]:
            if s.began - end >= pixel:
                merged.append(_join(run))
                run = []
            run.append(s)
            end = max(end, s.ended)
        merged.append(_join(run))
    return merged


def _join(run: Sequence[Segment]) -> Segment:
    """One bar standing for consecutive bars of one worker and status."""
    if len(run) == 1:
        return run[0]
    a = run[0]
    return Segment(
        a.worker, a.began, max(s.ended for s in run), a.status, min(s.first for s in run),
        max(s.last for s in run), sum(s.n for s in run), max(s.attempt for s in run),
        all(s.final for s in run), timed=True,
    )  # fmt: skip


def describe(seg: Segment, t0: float) -> str:
    """Hover text of one bar."""
    span = f"task {seg.first}" if seg.first == seg.last else f"tasks {seg.first}-{seg.last}"
    count = f" ({seg.n} {seg.status})" if seg.n > 1 or seg.first != seg.last else ""
    lines = [
        f"{span}{count}: {seg.status}" + (f", attempt {seg.attempt}" if seg.attempt > 1 else ""),
        f"{seg.began - t0:.3f} s -> {seg.ended - t0:.3f} s ({fmt_seconds(seg.seconds)})"
        if seg.timed
        else f"ended at {seg.ended - t0:.3f} s (start not recorded: drawn from the worker's previous task)",
        _lane_label(seg.worker),
    ]
    if seg.status != "done" and not seg.final:
        lines.append("run again later")
    if seg.command:
        lines.append(f"command: {seg.command}")
    if seg.exit_code is not None:
        lines.append(f"exit code {seg.exit_code}")
    if seg.error:
        error = seg.error.strip()
        lines.append(error if len(error) <= ERROR_CHARS else "..." + error[-ERROR_CHARS:])
    return "\n".join(lines)


def nice_ticks(span: float, target: int = 8) -> list[float]:
    """Round tick positions from 0 to span (1, 2 or 5 times a power of ten apart)."""
    if span <= 0:
        return [0.0]
    raw = span / target
    power = 10 ** math.floor(math.log10(raw))
    step = next(m * power for m in (1, 2, 5, 10) if m * power >= raw)
    return [i * step for i in range(int(span / step + 1e-9) + 1)]


def fmt_tick(t: float, span: float) -> str:
    if span < 0.5:
        return f"{t * 1e3:.4g} ms"
    return f"{t:.4g} s"


# -- HTML ---------------------------------------------------------------------------------

CSS = """
body { font: 14px/1.4 system-ui, -apple-system, "Segoe UI", Helvetica, Arial, sans-serif;
       margin: 24px; color: #1f2937; background: #fff; }
h1 { font-size: 20px; margin: 0 0 4px; }
h2 { font-size: 16px; margin: 28px 0 4px; }
p.meta { margin: 0 0 12px; color: #4b5563; }
svg { display: block; max-width: 100%; height: auto; }
svg text { font-size: 12px; fill: #374151; }
svg .lane { fill: #f3f4f6; }
svg .grid { stroke: #d1d5db; stroke-width: 1; }
svg rect.bar:hover { stroke: #111827; stroke-width: 1.5; }
table { border-collapse: collapse; margin-top: 12px; font-variant-numeric: tabular-nums; }
th, td { padding: 3px 10px; text-align: right; border-bottom: 1px solid #e5e7eb; }
th:first-child, td:first-child { text-align: left; }
th { background: #f9fafb; font-weight: 600; }
tr.total td { font-weight: 600; border-top: 2px solid #9ca3af; }
td.util { min-width: 110px; }
span.track { display: inline-block; width: 60px; height: 8px; background: #e5e7eb;
             margin-right: 8px; vertical-align: middle; text-align: left; }
span.fill { display: block; height: 8px; background: #009e73; }
svg text.death { font-weight: 700; fill: #9d174d; }
p.note { color: #6b7280; font-size: 12px; }
"""

WIDTH = 1200  # SVG user units; the SVG scales to the window
LEFT = 96  # room for lane labels
RIGHT = 16


# Characters XML does not allow (the page is XHTML-clean: its SVG parses as XML) but text may hold.
_NOT_XML = re.compile("[\x00-\x08\x0b\x0c\x0e-\x1f\ufffe\uffff]")


def escape(value: object) -> str:
    """Any value as HTML text or attribute: every journal value goes through here, numbers too."""
    return _NOT_XML.sub(_written_out, _escape(str(value)))


def _written_out(match: re.Match[str]) -> str:
    return repr(match[0])[1:-1]  # "\\x01", "\\ufffe"


def render_html(runs: Sequence[RunData], title: str) -> str:
    """One self-contained HTML page (inline SVG and CSS, nothing fetched) for these runs."""
    sections = [_html_run(data) for data in runs]
    return (
        '<!DOCTYPE html>\n<html lang="en">\n<head>\n<meta charset="utf-8"/>\n'
        '<meta name="viewport" content="width=device-width, initial-scale=1"/>\n'
        f"<title>{escape(title)}</title>\n<style>{CSS}</style>\n</head>\n<body>\n"
        f"<h1>{escape(title)}</h1>\n" + "\n".join(sections) + "\n</body>\n</html>\n"
    )


def _html_run(data: RunData) -> str:
    summary = data.summary
    drawn = bars(data, WIDTH - LEFT - RIGHT)
    merged = len(drawn) < len([s for s in data.segments if s.placed])
    note = (
        f'<p class="note">{len(data.segments)} bars merged to {len(drawn)} at pixel resolution;'
        " hover a bar for the tasks it covers.</p>"
        if merged
        else '<p class="note">Hover a bar for its tasks, times and error.</p>'
    )
    return (
        f'<section id="run-{escape(data.run.run)}">\n<h2>{escape(run_title(data.run))}</h2>\n'
        f'<p class="meta">wall time {fmt_seconds(summary.wall)}; pid {escape(data.run.pid)}'
        f"{' on ' + escape(data.run.host) if data.run.host else ''}</p>\n"
        f"{_svg(data, summary, drawn)}\n{note}\n{_html_table(summary)}\n</section>"
    )


def _svg(data: RunData, summary: RunSummary, drawn: Sequence[Segment]) -> str:
    lanes = summary.lanes or [None]
    lane_h = 22 if len(lanes) <= 32 else max(6, 700 // len(lanes))
    gap = 6 if lane_h >= 16 else 1
    top, plot_w = 44, WIDTH - LEFT - RIGHT
    height = top + len(lanes) * (lane_h + gap) + 28
    t0, span = data.run.started, max(data.wall, 1e-9)
    row_of = {pid: i for i, pid in enumerate(lanes)}

    def x(t: float) -> float:
        return LEFT + (t - t0) / span * plot_w

    out = [
        f'<svg xmlns="http://www.w3.org/2000/svg" viewBox="0 0 {WIDTH} {height}" width="{WIDTH}" '
        f'height="{height}" role="img" aria-label="timeline of run {escape(data.run.run)}">',
        _svg_legend(),
    ]
    for pid, i in row_of.items():
        y = top + i * (lane_h + gap)
        stats = next((w for w in summary.workers if w.label == _lane_label(pid)), None)
        hover = f"{_lane_label(pid)}: {stats.tasks} tasks, busy {stats.utilisation:.0%}" if stats else ""
        out.append(f'<rect class="lane" x="{LEFT}" y="{y}" width="{plot_w}" height="{lane_h}"/>')
        if lane_h >= 10:
            out.append(
                f'<text x="{LEFT - 8}" y="{y + lane_h / 2 + 4:.1f}" text-anchor="end">'
                f"{escape(_lane_label(pid))}<title>{escape(hover)}</title></text>"
            )
    bottom = top + len(lanes) * (lane_h + gap) - gap
    for t in nice_ticks(span):
        xt = x(t0 + t)
        out.append(f'<line class="grid" x1="{xt:.1f}" y1="{top - 4}" x2="{xt:.1f}" y2="{bottom + 4}"/>')
        out.append(f'<text x="{xt:.1f}" y="{bottom + 20}" text-anchor="middle">{fmt_tick(t, span)}</text>')
    order = sorted(drawn, key=lambda s: s.status != "done")  # problems drawn on top of chunks
    for s in order:
        y = top + row_of.get(s.worker, 0) * (lane_h + gap)
        w = max(x(s.ended) - x(s.began), 1.0 if s.status == "done" else 3.0)  # problems: always seen
        colour = STATUS_STYLE.get(s.status, ("#6b7280", ""))[0]
        stroke = f' stroke="{RERUN_STROKE}" stroke-width="1.5"' if s.attempt > 1 else ""
        pad = 2 if lane_h >= 16 else 0
        out.append(
            f'<rect class="bar" x="{x(s.began):.2f}" y="{y + pad}" width="{w:.2f}"'
            f' height="{lane_h - 2 * pad}" fill="{colour}"{stroke}>'
            f"<title>{escape(describe(s, t0))}</title></rect>"
        )
        if s.status in ENDS_WORKER and lane_h >= 10:
            out.append(
                f'<text class="death" x="{x(s.began) + w + 3:.2f}" y="{y + lane_h / 2 + 4:.1f}">'
                f"\u2715<title>{escape(_lane_label(s.worker))} ended here</title></text>"
            )
    out.append("</svg>")
    return "\n".join(out)


def _svg_legend() -> str:
    items = [(colour, text, False) for colour, text in STATUS_STYLE.values()]
    items.append(("#ffffff", "re-run (attempt 2+)", True))
    items.append(("#f3f4f6", "idle", False))
    parts, x = [], LEFT
    for colour, text, outlined in items:
        stroke = f' stroke="{RERUN_STROKE}" stroke-width="1.5"' if outlined else ' stroke="#9ca3af"'
        parts.append(f'<rect x="{x}" y="10" width="14" height="14" fill="{colour}"{stroke}/>')
        parts.append(f'<text x="{x + 20}" y="21">{escape(text)}</text>')
        x += 30 + round(6.6 * len(text))
    return '<g class="legend">' + "".join(parts) + "</g>"


def _html_table(summary: RunSummary) -> str:
    head = "".join(f"<th>{escape(h)}</th>" for h in HEADERS)
    body = []
    stats = [*summary.workers, summary.total]
    for w, cells in zip(stats, table_rows(summary)):
        tds = "".join(f"<td>{escape(c)}</td>" for c in cells[:-1])
        width = round(min(w.utilisation, 1.0) * 60)
        util = (
            f'<td class="util"><span class="track"><span class="fill" style="width:{width}px"></span></span>'
            f"{escape(cells[-1])}</td>"
        )
        cls = ' class="total"' if w is summary.total else ""
        body.append(f"<tr{cls}>{tds}{util}</tr>")
    return f"<table>\n<thead><tr>{head}</tr></thead>\n<tbody>\n" + "\n".join(body) + "\n</tbody>\n</table>"


# -- PNG ----------------------------------------------------------------------------------


class MissingMatplotlib(JournalError):
    """PNG output needs matplotlib, which is an optional extra."""


def render_png(runs: Sequence[RunData], path: str | os.PathLike[str], title: str) -> None:
    """Draw the runs' timelines and summary tables into a PNG file with matplotlib."""
    try:
        import matplotlib
    except ImportError:
        raise MissingMatplotlib(
            "PNG output needs matplotlib: pip install 'forklift[report]' (or write .html)"
        ) from None
    # No mathtext: a run named "echo $x $y" is text, and "$\\frac$" would raise while drawing.
    with matplotlib.rc_context({"text.parse_math": False}):
        _draw_png(runs, path, title)


def _draw_png(runs: Sequence[RunData], path: str | os.PathLike[str], title: str) -> None:
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure
    from matplotlib.patches import Patch

    summaries = [d.summary for d in runs]
    heights: list[float] = []
    for s in summaries:
        heights += [0.9 + 0.32 * max(1, len(s.lanes)), 0.35 + 0.24 * (len(s.workers) + 2)]
    fig = Figure(figsize=(13, sum(heights) + 0.6), dpi=100, layout="constrained")
    FigureCanvasAgg(fig)
    fig.suptitle(title, fontsize=13, x=0.01, ha="left")
    axes = fig.subplots(len(heights), 1, gridspec_kw={"height_ratios": heights}, squeeze=False)[:, 0]
    for i, (data, summary) in enumerate(zip(runs, summaries)):
        _png_timeline(axes[2 * i], data, summary)
        _png_table(axes[2 * i + 1], summary)
    handles = [Patch(facecolor=c, label=t) for c, t in STATUS_STYLE.values()]
    handles.append(
        Patch(facecolor="white", edgecolor=RERUN_STROKE, linewidth=1.5, label="re-run (attempt 2+)")
    )
    fig.legend(handles=handles, loc="outside upper right", ncols=len(handles), fontsize=9, frameon=False)
    fig.savefig(os.fspath(path), format="png")


def _png_timeline(ax: Any, data: RunData, summary: RunSummary) -> None:
    lanes = summary.lanes or [None]
    row_of = {pid: len(lanes) - 1 - i for i, pid in enumerate(lanes)}  # first lane on top
    t0 = data.run.started
    for y in row_of.values():
        ax.broken_barh([(0, data.wall)], (y - 0.4, 0.8), facecolors="#f3f4f6")
    drawn = sorted(bars(data, 1100), key=lambda s: s.status != "done")
    for s in drawn:
        colour = STATUS_STYLE.get(s.status, ("#6b7280", ""))[0]
        edge = RERUN_STROKE if s.attempt > 1 else "none"
        width = max(s.seconds, data.wall / (1100 if s.status == "done" else 400))
        ax.broken_barh([(s.began - t0, width)], (row_of.get(s.worker, 0) - 0.35, 0.7),
                       facecolors=colour, edgecolors=edge, linewidth=1.2)  # fmt: skip
    ax.set_yticks(list(row_of.values()), [_lane_label(pid) for pid in row_of])
    ax.set_xlim(0, max(data.wall, 1e-9))
    ax.set_ylim(-0.6, len(lanes) - 0.4)
    ax.set_xlabel("seconds since the run started")
    ax.set_title(f"{run_title(data.run)}, wall {fmt_seconds(summary.wall)}", fontsize=10, loc="left")
    for side in ("top", "right", "left"):
        ax.spines[side].set_visible(False)
    ax.tick_params(axis="y", length=0)


def _png_table(ax: Any, summary: RunSummary) -> None:
    ax.axis("off")
    table = ax.table(cellText=table_rows(summary), colLabels=HEADERS, loc="upper left", cellLoc="right")
    table.auto_set_font_size(False)
    table.set_fontsize(9)
    for (row, col), cell in table.get_celld().items():
        cell.set_edgecolor("#e5e7eb")
        if row == 0 or row == len(summary.workers) + 1:
            cell.set_text_props(weight="bold")
        if col == 0:
            cell.set_text_props(ha="left")


# -- live view (forklift top) -------------------------------------------------------------


@dataclass(frozen=True)
class LiveWorker:
    pid: int
    parent: int
    run: int | str | None  # text, like the others below, only in an altered journal: shown as it is
    state: str
    task: int | str | None
    done: int | str
    updated: float
    cpu: float | None  # percent of one core, None if the process is gone or not ours to read
    rss: int | None


@dataclass(frozen=True)
class Progress:
    run: Run
    done: int
    failed: int
    retried: int


@dataclass(frozen=True)
class Snapshot:
    workers: list[LiveWorker]
    runs: list[Progress]  # runs being recorded now
    last: Run | None  # the latest run in the journal, for "nothing live" messages


def take_snapshot(conn: sqlite3.Connection, procs: dict[int, Any], *, now: float | None = None) -> Snapshot:
    """Live workers and the progress of running runs.

    ``procs`` caches psutil.Process objects between calls: CPU % is measured
    between two calls, so the first call for a worker reports 0.
    """
    import psutil

    now = time.time() if now is None else now
    # A row whose pids or time are no such thing is no live worker: psutil could not even look.
    usable = " AND ".join(
        kind.sql.format(c) for c, kind in _WORKER_COLUMNS if c in ("pid", "parent", "updated")
    )
    rows = _select(
        conn,
        "workers",
        _WORKER_COLUMNS,
        f"{usable} AND updated >= ? AND state != 'gone'",
        (now - LIVE_SECONDS,),
        order="parent, pid",
    )
    workers = [
        LiveWorker(pid, parent, run, state, task, done, updated, *cpu_and_rss(procs, pid))
        for pid, parent, run, state, task, done, updated in rows
        if psutil.pid_exists(parent)
    ]
    for pid in set(procs) - {w.pid for w in workers}:
        del procs[pid]
    all_runs = [Run(*r) for r in _select(conn, "runs", _RUN_COLUMNS, "1", order="run")]
    wanted = {w.run for w in workers}
    live = [r for r in all_runs if r.run in wanted or (r.status == "running" and _alive_here(r, psutil))]
    return Snapshot(workers, [_progress(conn, r) for r in live], all_runs[-1] if all_runs else None)


def _alive_here(run: Run, psutil: Any) -> bool:
    import socket

    here = run.host in (None, socket.gethostname())
    return here and type(run.pid) is int and 0 < run.pid <= _PID_MAX and bool(psutil.pid_exists(run.pid))


def _progress(conn: sqlite3.Connection, run: Run) -> Progress:
    (chunk_done,) = _query(
        conn,
        "SELECT coalesce(sum(n - CASE WHEN failed IS NULL THEN 0"
        " ELSE length(failed) - length(replace(failed, ',', '')) + 1 END), 0) FROM chunks WHERE run = ?",
        (run.run,),
    )[0]
    counts = dict(
        _query(conn, "SELECT status, count(*) FROM tasks WHERE run = ? GROUP BY status", (run.run,))
    )
    retried = sum(counts.get(s, 0) for s in ("retried", "timeout", "lost"))
    return Progress(run, int(chunk_done) + counts.get("done", 0), counts.get("failed", 0), retried)

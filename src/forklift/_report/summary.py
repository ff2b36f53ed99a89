"""Summaries of a run: per-worker statistics, the table as text, run titles, times; text made one line."""

from __future__ import annotations

import datetime
import math
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field, replace
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from .read import Lane, Run, RunData, Segment


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
    rows = [_stats(lane_label(data.run, pid), by_lane[pid], wall) for pid in lanes]
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


def lane_label(run: Run | None, lane: Lane) -> str:
    """``pid 4242``, or ``slot 2`` for a local ``forklift run`` (see :func:`jobs_in_slots`)."""
    if lane is None:
        return "no worker"
    slots = run is not None and jobs_in_slots(run)
    return f"{'slot' if slots else 'pid'} {one_line(str(lane))}"


def jobs_in_slots(run: Run) -> bool:
    """A local ``forklift run``: it records each job's slot (1..jobs), not a pid, as its worker.

    Its run row has the number of slots as ``workers``; on a cluster it has none,
    and a job's worker is the pid of the process that ran it.
    """
    return run.kind == "run" and type(run.workers) is int


HEADERS = ("worker", "tasks", "done", "failed", "retried", "mean", "p50", "p99", "busy", "util")


def table_rows(summary: RunSummary) -> list[tuple[str, ...]]:
    def row(w: WorkerStats) -> tuple[str, ...]:
        times = (fmt_seconds(w.mean), fmt_seconds(w.p50), fmt_seconds(w.p99), fmt_seconds(w.busy))
        return (w.label, str(w.tasks), str(w.done), str(w.failures), str(w.retries), *times,
                f"{w.utilisation:.0%}")  # fmt: skip

    return [row(w) for w in [*summary.workers, summary.total]]


def run_title(run: Run, tasks: int | None = None) -> str:
    """The run's name, pool size, task count, start and status on one line.

    ``tasks``: how many tasks the journal holds, shown when the run did not record
    its total (``forklift run`` reading its input as it goes, ``imap`` of a generator).
    """
    started = datetime.datetime.fromtimestamp(run.started).strftime("%Y-%m-%d %H:%M:%S")
    parts = [_plural(run.workers, "slot" if jobs_in_slots(run) else "worker")] if run.workers else []
    if run.total is not None:
        parts.append(_plural(run.total, "task"))
    elif tasks is not None:
        parts.append(_plural(tasks, "task") + (" so far" if run.status == "running" else ""))
    parts += [f"started {started}", one_line(run.status)]
    return f"{run_name(run)} ({', '.join(parts)})"


def summary_title(summary: RunSummary) -> str:
    """The run's title, with the tasks the journal holds when the run did not record its total."""
    return run_title(summary.run, summary.total.tasks)


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
    lines = [f"{summary_title(summary)}, wall {fmt_seconds(summary.wall)}"]
    for r in rows:
        cells = [r[0].ljust(widths[0])] + [c.rjust(w) for c, w in zip(r[1:], widths[1:])]
        lines.append("  ".join(cells).rstrip())
    return "\n".join(lines)


def fmt_seconds(s: float) -> str:
    if s == 0:
        return "0"
    if s < 1e-6:  # a task of a few hundred ns: not "0 us"
        return f"{s * 1e9:.3g} ns"
    if s < 1e-3:
        return f"{s * 1e6:.3g} us"
    if s < 1:
        return f"{s * 1e3:.3g} ms"
    if s < 120:
        return f"{s:.3g} s"
    return f"{int(s // 60)}m{int(s % 60):02d}s"

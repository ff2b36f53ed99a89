"""The live view of ``forklift top``: the workers recording into a journal now, and their runs' progress."""

from __future__ import annotations

import sqlite3
import time
from dataclasses import dataclass
from typing import Any

from ..progress import cpu_and_rss
from .columns import _PID_MAX, _RUN_COLUMNS, _WORKER_COLUMNS, _query, _select
from .read import Run

LIVE_SECONDS = 5.0  # a worker row older than this is not shown by `top`


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

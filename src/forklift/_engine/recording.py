"""What the scheduler tells a job's journal (see forklift/journal.py), kept out of core.py.

Called on the scheduler thread only; each call queues rows for the journal's
writer thread and returns at once. Nothing here imports sqlite3: a pool that
does not journal pays nothing for it.
"""

from __future__ import annotations

import time
from typing import TYPE_CHECKING, Any, NamedTuple

from .. import _serialize
from .._digest import Digest
from .._serialize import describe
from ..errors import describe_exit

if TYPE_CHECKING:
    from ..journal import JournalRun
    from .jobs import Chunk, Job
    from .supervise import WorkerHandle

WORKERS_EVERY = 0.5  # seconds between refreshes of the journal's workers table


class _Timing(NamedTuple):
    """When a chunk's items ran, as far as the parent knows: evenly spread over its time."""

    pid: int
    began: float
    step: float  # seconds per item
    attempt: int

    def span(self, first: int, count: int) -> tuple[float, float]:
        return self.began + self.step * first, self.began + self.step * (first + count)


def record_chunk(
    job: Job,
    chunk: Chunk,
    pid: int,
    began: float,
    elapsed: float,
    values: list[Any],
    errors: dict[int, BaseException] | None,
    payload: bytes | None,
) -> None:
    """A chunk's results arrived: one chunk row (or one per run of journal indices), failures as tasks."""
    run = job.journal
    assert run is not None
    n = len(values)
    timing = _Timing(pid, began, elapsed / n if n else 0.0, chunk.attempts + 1)
    if job.journal_index is None:
        if not run.keep_results or chunk.inputs is None:
            # Inputs that went through shared memory (buffers of BULK_BYTES or more) have no
            # digest a resume could check, so their results are not kept: a resume runs them
            # again rather than trust results that may belong to other data.
            payload = None
        failed = sorted(errors or ())
        run.chunk(
            chunk.start, n, timing.attempt, pid, *timing.span(0, n), failed, Digest(chunk.inputs), payload
        )
    else:
        _record_resumed(run, job.journal_index, chunk, timing, values, errors)
    for i, exc in (errors or {}).items():
        first, last = timing.span(i, 1)
        index = _journal_index(job, chunk.start + i)
        error = describe(exc) + chunk.log_tail(i)
        run.task(index, "failed", attempt=timing.attempt, worker=pid, began=first, ended=last, error=error)


def _record_resumed(
    run: JournalRun,
    index: list[int],
    chunk: Chunk,
    timing: _Timing,
    values: list[Any],
    errors: dict[int, BaseException] | None,
) -> None:
    """A resumed map runs a subset: its rows must name the inputs' own indices, one row per
    stretch of consecutive ones."""
    mapped = [index[chunk.start + i] for i in range(len(values))]
    for first, last in _runs(mapped):
        part = range(first, last + 1)
        failed = [i - first for i in part if errors and i in errors]
        results = None if failed or chunk.shipped else _serialize.dumps(([values[i] for i in part], None))
        inputs = None if chunk.shipped else Digest(_serialize.dumps([chunk.items[i] for i in part]))
        span = timing.span(first, len(part))
        run.chunk(mapped[first], len(part), timing.attempt, timing.pid, *span, failed, inputs, results)


def record_task(
    job: Job,
    index: int,
    attempts: int,
    w: WorkerHandle,
    exitcode: int | None,
    *,
    final: bool,
    sent: float = 0.0,
    tail: str = "",
) -> None:
    """The task running when its worker died or overran its timeout.

    Its start is exact when the chunk was timed (the slot holds it); otherwise
    the chunk's send time stands in (when it was journaled).
    """
    run = job.journal
    assert run is not None
    _, _, start_ns = w.read_slot()
    now = time.time()
    began = now - (time.monotonic_ns() - start_ns) / 1e9 if start_ns > 0 else (sent or None)
    if w.kill_reason == "timeout":
        status, error = "timeout", f"ran longer than its timeout of {job.timeout:g} s"
    else:
        status, error = "lost", f"worker {w.pid} {describe_exit(exitcode)}"
    run.task(
        _journal_index(job, index),
        status if final else "retried",
        attempt=attempts,
        worker=w.pid,
        began=began,
        ended=now,
        error=(error if final else f"{error}; retried") + tail,
    )


def refresh_workers(journal: Any, workers: list[WorkerHandle], state: str | None = None) -> None:
    """One row per worker: what it runs now, how many tasks it has done."""
    from ..journal import WORKER_SQL, worker_row

    for w in workers:
        chunk = w.held[0] if w.held else None
        run = chunk.job.journal if chunk is not None else None  # the writer puts its id in
        task = None
        if chunk is not None:
            seq, idx, _ = w.read_slot()
            task = _journal_index(chunk.job, chunk.start + (idx if seq == chunk.seq and idx >= 0 else 0))
        now = state or ("busy" if chunk else "idle")
        journal.add(WORKER_SQL, worker_row(w.pid, run, now, task, w.tasks_done))


def _journal_index(job: Job, index: int) -> int:
    return job.journal_index[index] if job.journal_index is not None else index


def _runs(mapped: list[int]) -> list[tuple[int, int]]:
    """Offsets ``(first, last)`` of the stretches where ``mapped`` counts up by one."""
    out: list[tuple[int, int]] = []
    for offset, value in enumerate(mapped):
        if out and value == mapped[offset - 1] + 1:
            out[-1] = (out[-1][0], offset)
        else:
            out.append((offset, offset))
    return out

"""forklift's tunables, in one place, each with the trade-off it sets.

Every value can be overridden by the environment variable named beside it,
read once when forklift is imported; a value out of its range (nan, a negative
count) is refused then, naming the variable.
"""

from __future__ import annotations

import math
import os

from ._errors import SettingError


def _float(
    name: str, default: float, *, minimum: float = 0.0, zero: bool = True, endless: bool = False
) -> float:
    """The variable as a number >= ``minimum`` (> it unless ``zero``; inf only if ``endless``):
    a bad one is refused here, at import, rather than breaking a scheduler later (nan, -1)."""
    raw = os.environ.get(name)
    if raw is None:
        return default
    try:
        value = float(raw)
    except ValueError:
        raise SettingError(f"{name}={raw!r} is not a number") from None
    if math.isnan(value) or value < minimum or (value == minimum and not zero):
        bound = f">= {minimum:g}" if zero else f"> {minimum:g}"
        raise SettingError(f"{name}={raw!r}: it must be a number {bound}")
    if math.isinf(value) and not endless:
        raise SettingError(f"{name}={raw!r}: it must be a finite number")
    return value


def _int(name: str, default: int, *, minimum: int = 1) -> int:
    return int(_float(name, default, minimum=minimum))


#: FORKLIFT_CHUNK_SECONDS — how much work (in seconds of task time) the adaptive
#: chunker packs into one message. Larger: less per-message overhead for tiny
#: tasks; smaller: better balance at the end of a map and less work re-run when
#: a worker dies mid-chunk (its unfinished chunk mates run again).
CHUNK_SECONDS = _float("FORKLIFT_CHUNK_SECONDS", 0.02, zero=False)

#: FORKLIFT_CHUNK_BYTES — the most pickled argument bytes the chunker packs
#: into one chunk (large items go a few at a time; this also bounds how much
#: input a lazy call holds, since read-ahead is counted in chunks).
CHUNK_BYTES = _int("FORKLIFT_CHUNK_BYTES", 4 << 20)

#: FORKLIFT_PREFETCH_BYTES — the largest pickled chunk sent to a worker that is
#: still busy (prefetch). A bigger one waits until the worker is idle, so that
#: sending it never blocks the scheduler behind a task that holds the GIL (each
#: worker pipe's send buffer is raised to 4x this, as far as the kernel allows).
#: Smaller: big-item maps lose prefetch sooner; larger: needs a larger buffer.
PREFETCH_BYTES = _int("FORKLIFT_PREFETCH_BYTES", 1 << 20)

#: FORKLIFT_MAX_CHUNK — the most items in one chunk when the input's length is
#: unknown (with a known length, chunks also stay below remaining/(2*workers)).
MAX_CHUNK = _int("FORKLIFT_MAX_CHUNK", 20_000)

#: FORKLIFT_PREFETCH — chunks a worker holds at once (running + queued). Two
#: hide the round trip; more only delays the end of a map.
PREFETCH = _int("FORKLIFT_PREFETCH", 2)

#: FORKLIFT_MAX_READ_AHEAD — the most input items imap / imap_unordered /
#: Executor.map take from the iterable before their results are consumed.
#: Below it, the bound is 2 * PREFETCH * workers chunks (of the current chunk
#: size, itself capped by CHUNK_BYTES), enough to keep every worker busy; in an
#: ordered imap, results held back behind a slow (or retried) earlier item do
#: not count against that smaller bound, only against this one, so the other
#: workers go on meanwhile (and memory holds up to this many results).
MAX_READ_AHEAD = _int("FORKLIFT_MAX_READ_AHEAD", 200_000)

#: FORKLIFT_FUNC_CACHE — functions a worker keeps unpickled, so a map sends its
#: function once per worker rather than once per chunk.
FUNC_CACHE = _int("FORKLIFT_FUNC_CACHE", 32)

#: FORKLIFT_PREFETCH_BEHIND — a chunk is prefetched to a busy worker only when what
#: that worker holds is expected (from measured task times) to end within this many
#: seconds; behind longer or not yet measured work it would wait while others idle.
PREFETCH_BEHIND = _float("FORKLIFT_PREFETCH_BEHIND", 0.1, endless=True)

#: FORKLIFT_START_FAILURES — workers that may die in a row before reporting
#: ready (initializer crash, import error) before the pool is declared broken,
#: instead of respawning them forever as multiprocessing.Pool does.
START_FAILURES = _int("FORKLIFT_START_FAILURES", 3)

#: FORKLIFT_BULK_BYTES — buffers (numpy arrays, bytes, ...) at least this big
#: travel through shared memory instead of the pipe.
BULK_BYTES = _int("FORKLIFT_BULK_BYTES", 1 << 20)

#: FORKLIFT_BULK_CACHE — bytes of spare shared memory a pool keeps for the next
#: big arguments (writing into existing pages is ~10x faster than into new ones).
BULK_CACHE = _int("FORKLIFT_BULK_CACHE", 256 << 20, minimum=0)

#: FORKLIFT_START_METHOD — default start method: forkserver on Linux (safe with
#: threads, what Python 3.14 chose), else the platform default.
START_METHOD = os.environ.get("FORKLIFT_START_METHOD") or None

#: FORKLIFT_FLUSH_WARNING — a worker or Process that has finished but still waits,
#: this many seconds later, for a Queue's reader to take what it put says so on
#: stderr (it then keeps waiting: nothing put is dropped). 0 turns the warning off;
#: too short a wait warns about a reader that was merely slow.
FLUSH_WARNING = _float("FORKLIFT_FLUSH_WARNING", 10.0, endless=True)

#: FORKLIFT_ZOMBIE_LIMIT — a worker is a child subreaper, so a task's daemonized
#: processes stay in its tree (and die with it when the pool kills it). When such a
#: process exits, nobody waits for it: it stays a zombie child of the worker. A worker
#: with more zombie children than this retires after its chunk (init then reaps them).
#: Higher: fewer restarts for tasks that daemonize; each zombie holds a pid.
ZOMBIE_LIMIT = _int("FORKLIFT_ZOMBIE_LIMIT", 64)

#: FORKLIFT_INIT_TIMEOUT — seconds a worker may take to become ready (start and run
#: the pool's initializer) when the pool or an open call has a task timeout and no
#: ``init_timeout=`` was given. Past it the worker is killed and the pool fails with
#: a clear error, instead of every timed call waiting for ever on an initializer that
#: never returns. Long enough for a slow import of ``__main__`` under spawn.
INIT_TIMEOUT = _float("FORKLIFT_INIT_TIMEOUT", 60.0, zero=False, endless=True)

#: FORKLIFT_MAX_WORKERS — the most workers one pool may ask for: ``Pool(10**30)`` would
#: otherwise start processes until the machine runs out (a fork bomb), and never return.
MAX_WORKERS = _int("FORKLIFT_MAX_WORKERS", 4096)

#: FORKLIFT_COPY_IN_PROCESS_SECONDS — how long ``forklift copy`` copies in its own
#: process before it starts its worker pool. A tree copied within it never pays for
#: a pool (5-70 ms and the pool's imports); a bigger one loses at most this much of
#: its parallel time. 0: the pool from the first task.
COPY_IN_PROCESS_SECONDS = _float("FORKLIFT_COPY_IN_PROCESS_SECONDS", 0.02, endless=True)

#: FORKLIFT_FORWARD_LOGGING — a pool's workers send their ``logging`` records to the pool's
#: process, whose handlers write them (docs/guide.md, "Logging from workers"); 0: leave the
#: workers' logging alone (the default of Pool(forward_logging=...)).
FORWARD_LOGGING = _int("FORKLIFT_FORWARD_LOGGING", 1, minimum=0) != 0
#: FORKLIFT_LOG_LINES_KEPT — a journaled task's last log lines kept beside its error.
LOG_LINES_KEPT = _int("FORKLIFT_LOG_LINES_KEPT", 10)

#: FORKLIFT_COPY_SPLIT_BYTES — ``forklift copy`` cuts files of this size or more into
#: 64 MiB ranges that several workers write at once. 0 (the default): never. On ext4
#: and tmpfs that is slower (writes into one file serialize on its inode lock); set it
#: where the file system writes one file in parallel.
COPY_SPLIT_BYTES = _int("FORKLIFT_COPY_SPLIT_BYTES", 0, minimum=0)

"""The journal: a SQLite record of every task a pool or ``forklift run`` ran.

``Pool(journal="run.db")``, ``pool.map(..., journal="run.db", resume=True)`` and
``forklift run --journal run.db`` write here; ``forklift report`` draws it and
``forklift top`` watches it. The file is plain SQLite (WAL mode, so readers never
block the writer), recognised by its ``application_id``; anything else is
refused, never overwritten.

Tables (times are Unix seconds, as measured on the worker)::

    runs    one row per map / imap / submit batch / forklift run
            run, kind, name, signature, pid, workers, total, started, ended, status
    chunks  one row per batch of inputs a worker ran in one go (how the pool ships
            tiny tasks); a chunk's tasks share its time evenly
            run, start, n, attempt, worker, began, ended, failed, inputs, results
    tasks   one row per task that is not just "done inside a chunk": failed items,
            retried or timed-out attempts, tasks lost with a worker, submitted
            calls, and every shell job of forklift run
            run, idx, attempt, status, worker, began, ended, error,
            exit_code, output_bytes, command, result
    task_rows (view) one row per task attempt, from both tables
    workers one row per live worker, refreshed a few times a second while a
            pool records: pid, parent, run, state (idle | busy | gone), task
            (index it runs, if known), done (tasks finished), updated

Why chunks and not one row per task: a pool runs 200,000 tiny tasks in ~40 ms;
one SQLite row each would cost ten times that. A chunk row costs about what
one task row does, and per-task rows are written where there is something to
say about the task. ``chunks.results`` is the worker's own pickled answer,
stored as received, so keeping results for ``resume`` costs no extra pickling.

Writes go through a queue to a writer thread that commits in batches, so the
scheduler never waits for the disk.
"""

from __future__ import annotations

import os
import pickle
import socket
import sqlite3
import threading
import time
from collections.abc import Iterable
from dataclasses import dataclass
from typing import Any

from ._engine.recording import Digest
from .errors import JournalError

__all__ = ["Journal", "JournalError", "JournalRun"]

APPLICATION_ID = 0x466B6C74  # "Fklt"
VERSION = 1
FLUSH_SECONDS = 0.2  # the writer commits at least this often while rows arrive
FLUSH_ROWS = 5000  # ... or when this many rows wait

SCHEMA = """
CREATE TABLE IF NOT EXISTS runs (
    run       INTEGER PRIMARY KEY,
    kind      TEXT NOT NULL,
    name      TEXT NOT NULL,
    signature TEXT NOT NULL,
    pid       INTEGER NOT NULL,
    host      TEXT,
    workers   INTEGER,
    total     INTEGER,
    started   REAL NOT NULL,
    ended     REAL,
    status    TEXT NOT NULL DEFAULT 'running'
);
CREATE TABLE IF NOT EXISTS chunks (
    run     INTEGER NOT NULL,
    start   INTEGER NOT NULL,
    n       INTEGER NOT NULL,
    attempt INTEGER NOT NULL DEFAULT 1,
    worker  INTEGER,
    began   REAL NOT NULL,
    ended   REAL NOT NULL,
    failed  TEXT,
    inputs  BLOB,
    results BLOB
);
CREATE INDEX IF NOT EXISTS chunks_run ON chunks (run, start);
CREATE TABLE IF NOT EXISTS tasks (
    run          INTEGER NOT NULL,
    idx          INTEGER NOT NULL,
    attempt      INTEGER NOT NULL DEFAULT 1,
    status       TEXT NOT NULL,
    worker       INTEGER,
    began        REAL,
    ended        REAL,
    error        TEXT,
    exit_code    INTEGER,
    output_bytes INTEGER,
    command      TEXT,
    result       BLOB
);
CREATE INDEX IF NOT EXISTS tasks_run ON tasks (run, idx);
CREATE TABLE IF NOT EXISTS workers (
    pid     INTEGER PRIMARY KEY,
    parent  INTEGER NOT NULL,
    run     INTEGER,
    state   TEXT NOT NULL,
    task    INTEGER,
    done    INTEGER NOT NULL DEFAULT 0,
    updated REAL NOT NULL
);
CREATE VIEW IF NOT EXISTS task_rows AS
WITH RECURSIVE expand(run, idx, start, n, attempt, worker, began, ended, failed) AS (
    SELECT run, start, start, n, attempt, worker, began, ended, failed FROM chunks
    UNION ALL
    SELECT run, idx + 1, start, n, attempt, worker, began, ended, failed
    FROM expand WHERE idx + 1 < start + n
)
SELECT run, idx, attempt, 'done' AS status, worker,
       began + (ended - began) * (idx - start) / n AS began,
       began + (ended - began) * (idx - start + 1) / n AS ended,
       NULL AS error, NULL AS exit_code, NULL AS output_bytes, NULL AS command
FROM expand
WHERE failed IS NULL OR instr(',' || failed || ',', ',' || (idx - start) || ',') = 0
UNION ALL
SELECT run, idx, attempt, status, worker, began, ended, error, exit_code, output_bytes, command
FROM tasks;
"""

TASK_STATUSES = ("done", "failed", "retried", "timeout", "lost")


def connect(path: str | os.PathLike[str], *, create: bool) -> sqlite3.Connection:
    """Open ``path`` as a journal (creating it if ``create``), or raise JournalError."""
    path = os.fspath(path)
    exists = os.path.exists(path) and os.path.getsize(path) > 0
    if not exists and not create:
        raise JournalError(f"no journal at {path!r}")
    try:
        conn = sqlite3.connect(path, timeout=30, check_same_thread=False, isolation_level=None)
        app_id = conn.execute("PRAGMA application_id").fetchone()[0]
        if exists and app_id != APPLICATION_ID:
            conn.close()
            raise JournalError(f"{path!r} is not a forklift journal; refusing to touch it")
        version = conn.execute("PRAGMA user_version").fetchone()[0]
        if exists and version > VERSION:
            conn.close()
            raise JournalError(f"{path!r} was written by a newer forklift (journal version {version})")
        if not exists:
            conn.execute(f"PRAGMA application_id = {APPLICATION_ID}")
            conn.execute(f"PRAGMA user_version = {VERSION}")
        conn.execute("PRAGMA journal_mode = WAL")
        conn.execute("PRAGMA synchronous = NORMAL")
        if create:
            conn.executescript(SCHEMA)
        conn.execute("SELECT count(*) FROM runs").fetchone()
    except sqlite3.DatabaseError as exc:
        raise JournalError(f"{path!r} is not a usable journal: {exc}") from None
    return conn


class Journal:
    """An open journal file with its writer thread; shared by every run that records into it."""

    def __init__(self, path: str | os.PathLike[str]) -> None:
        self.path = os.fspath(path)
        self.conn = connect(self.path, create=True)
        self._rows: list[tuple[str, tuple[Any, ...]]] = []
        self._lock = threading.Lock()
        self._wake = threading.Event()
        self._closed = False
        self._error: BaseException | None = None
        self._thread = threading.Thread(target=self._write_loop, name="forklift-journal", daemon=True)
        self._thread.start()

    def begin(
        self,
        kind: str,
        name: str,
        signature: str,
        *,
        workers: int | None = None,
        total: int | None = None,
    ) -> JournalRun:
        """Start recording one run (its row is written at once: a watcher sees it)."""
        with self._lock:
            cur = self.conn.execute(
                "INSERT INTO runs (kind, name, signature, pid, host, workers, total, started)"
                " VALUES (?, ?, ?, ?, ?, ?, ?, ?)",
                (kind, name, signature, os.getpid(), socket.gethostname(), workers, total, time.time()),
            )
        assert cur.lastrowid is not None
        return JournalRun(self, cur.lastrowid)

    def add(self, sql: str, row: tuple[Any, ...]) -> None:
        """Queue one row; the writer thread commits it soon."""
        self._rows.append((sql, row))  # list.append is atomic under the GIL
        if len(self._rows) >= FLUSH_ROWS:
            self._wake.set()

    def flush(self) -> None:
        """Write every queued row now (from any thread)."""
        with self._lock:
            rows, self._rows = self._rows, []
            if not rows:
                return
            by_sql: dict[str, list[tuple[Any, ...]]] = {}
            for sql, row in rows:
                if sql is _CHUNK_SQL:  # digest the inputs here, not on the scheduler thread
                    row = tuple(x.value() if isinstance(x, Digest) else x for x in row)
                by_sql.setdefault(sql, []).append(row)
            try:
                self.conn.execute("BEGIN")
                for sql, batch in by_sql.items():
                    self.conn.executemany(sql, batch)
                self.conn.execute("COMMIT")
            except sqlite3.Error as exc:
                self._error = exc
                try:
                    self.conn.execute("ROLLBACK")
                except sqlite3.Error:
                    pass

    def _write_loop(self) -> None:
        while not self._closed:
            self._wake.wait(FLUSH_SECONDS)
            self._wake.clear()
            self.flush()

    def close_quietly(self) -> None:
        """close(), logging instead of raising (for a pool's shutdown)."""
        try:
            self.close()
        except JournalError as exc:
            import logging

            logging.getLogger("forklift").error("%s", exc)

    def close(self) -> None:
        if self._closed:
            return
        self._closed = True
        self._wake.set()
        self._thread.join()
        self.flush()
        self.conn.close()
        if self._error is not None:
            raise JournalError(f"writing the journal {self.path!r} failed: {self._error}")


WORKER_SQL = (
    "INSERT INTO workers (pid, parent, run, state, task, done, updated) VALUES (?, ?, ?, ?, ?, ?, ?)"
    " ON CONFLICT (pid) DO UPDATE SET parent = excluded.parent, run = excluded.run, state = excluded.state,"
    " task = excluded.task, done = excluded.done, updated = excluded.updated"
)


def worker_row(pid: int, run: int | None, state: str, task: int | None, done: int) -> tuple[Any, ...]:
    return (pid, os.getpid(), run, state, task, done, time.time())


_CHUNK_SQL = (
    "INSERT INTO chunks (run, start, n, attempt, worker, began, ended, failed, inputs, results)"
    " VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?)"
)
_TASK_SQL = (
    "INSERT INTO tasks (run, idx, attempt, status, worker, began, ended, error, exit_code, output_bytes,"
    " command, result) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)"
)


class JournalRun:
    """What one run records: chunks that completed, and tasks worth a row of their own."""

    def __init__(self, journal: Journal, run: int) -> None:
        self.journal = journal
        self.run = run
        self.failures = 0  # tasks that failed for good
        # Keep each chunk's pickled results and a digest of its inputs, for resume. Off
        # unless asked: on 200,000 tiny tasks that is ~1 MB of rows and ~10% of the time.
        self.keep_results = False

    def chunk(
        self,
        start: int,
        n: int,
        attempt: int,
        worker: int | None,
        began: float,
        ended: float,
        failed: Iterable[int] = (),
        inputs: bytes | Digest | None = None,
        results: bytes | None = None,
    ) -> None:
        failed_text = ",".join(map(str, failed)) or None
        self.journal.add(
            _CHUNK_SQL, (self.run, start, n, attempt, worker, began, ended, failed_text, inputs, results)
        )

    def task(
        self,
        idx: int,
        status: str,
        *,
        attempt: int = 1,
        worker: int | None = None,
        began: float | None = None,
        ended: float | None = None,
        error: str | None = None,
        exit_code: int | None = None,
        output_bytes: int | None = None,
        command: str | None = None,
        result: bytes | None = None,
    ) -> None:
        assert status in TASK_STATUSES, status
        if status in ("failed", "timeout", "lost"):
            self.failures += 1
        self.journal.add(
            _TASK_SQL,
            (
                self.run,
                idx,
                attempt,
                status,
                worker,
                began,
                ended,
                error,
                exit_code,
                output_bytes,
                command,
                result,
            ),
        )

    def finish(self, status: str) -> None:
        self.journal.add(
            "UPDATE runs SET ended = ?, status = ? WHERE run = ?", (time.time(), status, self.run)
        )
        # The writer commits now, while the caller gets its results: a synchronous flush
        # here cost a 200,000-task map ~5% (its results are ~1 MB of rows).
        self.journal._wake.set()


# -- reading ------------------------------------------------------------------------------


@dataclass(frozen=True)
class StoredChunk:
    start: int
    n: int
    inputs: bytes | None
    results: bytes


def stored_chunks(
    conn: sqlite3.Connection, signature: str, total: int
) -> tuple[list[int], list[StoredChunk]]:
    """Completed, result-bearing chunks of earlier runs with this signature and size.

    Returns the runs considered and their chunks, later runs first (a resumed
    run's chunks supersede an earlier run's for the same inputs).
    """
    runs = [
        r[0]
        for r in conn.execute(
            "SELECT run FROM runs WHERE signature = ? AND total = ? ORDER BY run DESC", (signature, total)
        )
    ]
    chunks: list[StoredChunk] = []
    for run in runs:
        rows = conn.execute(
            "SELECT start, n, inputs, results FROM chunks"
            " WHERE run = ? AND results IS NOT NULL AND failed IS NULL",
            (run,),
        )
        chunks.extend(StoredChunk(*row) for row in rows)
    return runs, chunks


def other_signatures(conn: sqlite3.Connection, kind: str) -> list[tuple[str, str, int | None]]:
    """(name, signature, total) of earlier runs of this kind, to explain a refused resume."""
    return list(
        conn.execute("SELECT name, signature, total FROM runs WHERE kind = ? ORDER BY run DESC", (kind,))
    )


def load_results(blob: bytes, n: int) -> list[Any]:
    values, errors = pickle.loads(blob)
    if errors or len(values) != n:
        raise JournalError("a stored chunk does not hold one result per input")
    return list(values)

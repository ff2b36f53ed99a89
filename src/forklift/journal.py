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
scheduler never waits for the disk -- nor for the file's lock, which another
process may hold: even a run's own row is inserted by the writer thread (rows
refer to their :class:`JournalRun`, whose id the writer fills in). A batch that
cannot be written (the lock held past ``BUSY_SECONDS``, a full disk) is kept
and tried again, up to ``KEEP_ROWS`` rows; the runs it held learn of the failure
(``JournalRun.error``), so a call that resumes can fail clearly, and ``close()``
reports it. The journal is a side record: it never stops or breaks a pool.
"""

from __future__ import annotations

import os
import pickle
import socket
import sqlite3
import threading
import time
from collections import deque
from collections.abc import Iterable
from dataclasses import dataclass
from typing import Any

from ._digest import Digest
from .errors import JournalError

__all__ = ["Journal", "JournalError", "JournalRun"]

APPLICATION_ID = 0x466B6C74  # "Fklt"
VERSION = 1
FLUSH_SECONDS = 0.2  # the writer commits at least this often while rows arrive
FLUSH_ROWS = 5000  # ... or when this many rows wait
BUSY_SECONDS = 5.0  # how long one write waits for another process's lock on the file
KEEP_ROWS = 1_000_000  # rows kept for a retry while the file cannot be written; older ones are dropped

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
        conn = sqlite3.connect(path, timeout=BUSY_SECONDS, check_same_thread=False, isolation_level=None)
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
        self._file = _identity(self.path)  # rows written after the file was deleted would be lost
        self._host = socket.gethostname()
        # Appended from any thread without a lock (deque.append is atomic); taken by flush().
        self._rows: deque[tuple[str, tuple[Any, ...]]] = deque()
        self._lock = threading.Lock()
        self._wake = threading.Event()
        self._closed = False
        self._error: BaseException | None = None
        self._dropped = 0  # rows given up while the file could not be written
        self._waiters: deque[threading.Event] = deque()  # flush() calls waiting for the writer
        self._conn_closed = False
        self._thread: threading.Thread | None = None  # started on first use: see _started()
        self._start_lock = threading.Lock()

    def _started(self) -> threading.Thread:
        """The writer thread, started by the first row, flush or close, not by the constructor:
        a Ctrl-C landing between the open and the caller holding the journal then leaves
        nothing running (the connection closes with the object; a running writer thread
        would have kept both for good)."""
        thread = self._thread
        if thread is None:
            with self._start_lock:
                thread = self._thread
                if thread is None:
                    thread = threading.Thread(target=self._write_loop, name="forklift-journal", daemon=True)
                    self._thread = thread
                    thread.start()
        return thread

    def begin(
        self,
        kind: str,
        name: str,
        signature: str,
        *,
        workers: int | None = None,
        total: int | None = None,
    ) -> JournalRun:
        """Start recording one run; returns at once (the writer inserts its row, now).

        Any thread may call it, the scheduler's too: nothing here waits for the file.
        """
        run = JournalRun(self)
        row = (run, kind, name, signature, os.getpid(), self._host, workers, total, time.time())
        self._rows.append((_RUN_SQL, row))
        self._started()
        self._wake.set()  # a watcher (forklift top) sees the run at once
        return run

    def add(self, sql: str, row: tuple[Any, ...]) -> None:
        """Queue one row; the writer thread commits it soon."""
        self._rows.append((sql, row))
        self._started()
        if len(self._rows) >= FLUSH_ROWS:
            self._wake.set()

    def flush(self) -> None:
        """Write every queued row now, and wait for it (from any thread but a scheduler's:
        it may wait up to BUSY_SECONDS for the file's lock). Rows that fail stay queued.

        The writing itself is always done by the writer thread: a Ctrl-C landing in the
        caller's thread between BEGIN and COMMIT left a transaction open (the file's lock
        held, the batch lost, the next write failing); now it only ends the wait.
        """
        thread = self._started()
        if threading.current_thread() is thread or not thread.is_alive():
            self._flush_now()
            return
        done = threading.Event()
        self._waiters.append(done)
        self._wake.set()
        while not done.wait(0.1):
            if not thread.is_alive():  # closed meanwhile: it wrote what it had
                return

    def _flush_now(self) -> None:
        waiters = [self._waiters.popleft() for _ in range(len(self._waiters))]
        try:
            with self._lock:
                self._write_queued()
        finally:
            for done in waiters:
                done.set()

    def _write_queued(self) -> None:
        rows = [self._rows.popleft() for _ in range(len(self._rows))]
        if not rows or self._conn_closed:
            return
        try:
            self._check_file()
            self._write(rows)
        except (sqlite3.Error, JournalError) as exc:
            self._failed(rows, exc)
            return
        self._written(rows)

    def _check_file(self) -> None:
        if _identity(self.path) != self._file:
            raise JournalError(
                f"the journal {self.path!r} was deleted or replaced while it was being written"
            )

    def _written(self, rows: list[tuple[str, tuple[Any, ...]]]) -> None:
        """A batch made it: runs whose rows had failed before have them all now, unless some
        were given up (KEEP_ROWS); the journal's error stands only while rows are missing."""
        for _, row in rows:
            run = row[0] if row else None
            if isinstance(run, JournalRun) and run.error is not None and not run.dropped:
                run.error = None
        if not self._dropped and not self._rows:
            self._error = None

    def _write(self, rows: list[tuple[str, tuple[Any, ...]]]) -> None:
        started: list[JournalRun] = []
        try:
            self.conn.execute("BEGIN IMMEDIATE")
            by_sql: dict[str, list[tuple[Any, ...]]] = {}
            for sql, row in rows:
                if sql is _RUN_SQL:  # a run's own row: its id is what later rows refer to
                    run = row[0]
                    run.run = self.conn.execute(sql, row[1:]).lastrowid
                    started.append(run)
                    continue
                row = tuple(_resolve(x) for x in row)
                if any(x is _UNKNOWN for x in row):
                    continue  # its run's row was never written: nothing to attach it to
                by_sql.setdefault(sql, []).append(row)
            for sql, batch in by_sql.items():
                self.conn.executemany(sql, batch)
            self.conn.execute("COMMIT")
        except sqlite3.Error:
            for run in started:  # rolled back with the rest
                run.run = None
            try:
                self.conn.execute("ROLLBACK")
            except sqlite3.Error:
                pass
            raise

    def _failed(self, rows: list[tuple[str, tuple[Any, ...]]], exc: Exception) -> None:
        """Keep the rows for the next try, and tell their runs (under self._lock)."""
        self._error = exc
        for _, row in rows:
            if row and isinstance(row[0], JournalRun) and row[0].error is None:
                row[0].error = exc
        self._rows.extendleft(reversed(rows))  # before what came meanwhile, in order
        while len(self._rows) > KEEP_ROWS:
            _, row = self._rows.popleft()
            self._dropped += 1
            if row and isinstance(row[0], JournalRun):
                row[0].dropped += 1

    def _write_loop(self) -> None:
        while not self._closed:
            self._wake.wait(FLUSH_SECONDS)
            self._wake.clear()
            self._flush_now()
        self._flush_now()  # the last rows, once closed
        with self._lock:
            self.conn.close()
            self._conn_closed = True
        for done in list(self._waiters):  # asked for a flush while it closed
            done.set()

    def close_soon(self) -> None:
        """Stop taking rows: the writer thread writes the rest and closes the file.

        Returns at once (a scheduler thread calls it); :meth:`wait_closed` waits.
        """
        self._closed = True
        self._started()  # (if no row came, it only closes the file)
        self._wake.set()

    def wait_closed(self) -> None:
        """Wait for the last write; JournalError if rows could not be written."""
        if self._thread is not None:
            self._thread.join()
        if self._error is not None:
            lost = len(self._rows) + self._dropped
            raise JournalError(
                f"writing the journal {self.path!r} failed: {self._error}"
                + (f"; {lost} rows were not recorded" if lost else "")
            )

    def close_quietly(self) -> None:
        """close(), logging instead of raising (for a pool's shutdown)."""
        try:
            self.close()
        except JournalError as exc:
            import logging

            logging.getLogger("forklift").error("%s", exc)

    def close(self) -> None:
        self.close_soon()
        self.wait_closed()


_UNKNOWN = object()


def _identity(path: str) -> tuple[int, int] | None:
    try:
        st = os.stat(path)
    except OSError:
        return None
    return st.st_dev, st.st_ino


def _resolve(value: Any) -> Any:
    """A row's value as written: a run's id for its JournalRun, a digest for its Digest."""
    if isinstance(value, JournalRun):
        return _UNKNOWN if value.run is None else value.run
    if isinstance(value, Digest):  # digested here, on the writer thread (hashlib drops the GIL)
        return value.value()
    return value


_RUN_SQL = (
    "INSERT INTO runs (kind, name, signature, pid, host, workers, total, started)"
    " VALUES (?, ?, ?, ?, ?, ?, ?, ?)"
)


WORKER_SQL = (
    "INSERT INTO workers (pid, parent, run, state, task, done, updated) VALUES (?, ?, ?, ?, ?, ?, ?)"
    " ON CONFLICT (pid) DO UPDATE SET parent = excluded.parent, run = excluded.run, state = excluded.state,"
    " task = excluded.task, done = excluded.done, updated = excluded.updated"
)


def worker_row(pid: int, run: JournalRun | None, state: str, task: int | None, done: int) -> tuple[Any, ...]:
    return (pid, os.getpid(), run, state, task, done, time.time())


# Plain ? placeholders: Python 3.12.0-3.12.x warned that numbered ones (?1) bound from a
# sequence would raise ProgrammingError from 3.14 (a warning later withdrawn; the rows are
# the same either way).
_FINISH_SQL = "UPDATE runs SET ended = ?, status = ? WHERE run = ?"
_CHUNK_SQL = (
    "INSERT INTO chunks (run, start, n, attempt, worker, began, ended, failed, inputs, results)"
    " VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?)"
)
_TASK_SQL = (
    "INSERT INTO tasks (run, idx, attempt, status, worker, began, ended, error, exit_code, output_bytes,"
    " command, result) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)"
)


class JournalRun:
    """What one run records: chunks that completed, and tasks worth a row of their own.

    ``run`` is the run's id in the file once the writer thread has inserted its row
    (None before); rows refer to this object and get the id as they are written.
    ``error``: why some of this run's rows could not be written (None: all were, so far).
    """

    def __init__(self, journal: Journal) -> None:
        self.journal = journal
        self.run: int | None = None
        self.error: BaseException | None = None
        self.dropped = 0  # rows given up (KEEP_ROWS) while the file could not be written
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
            _CHUNK_SQL, (self, start, n, attempt, worker, began, ended, failed_text, inputs, results)
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
                self,
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
        self.journal.add(_FINISH_SQL, (time.time(), status, self))
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

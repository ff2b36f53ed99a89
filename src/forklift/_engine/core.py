"""The local engine: one scheduler thread in the parent, N worker processes.

Data path::

    caller threads                    scheduler thread (this module)            worker i
    ──────────────                    ──────────────────────────────            ────────
    Pool / Executor face
      │ start_job(job) ─┐
      │ feed(job, slab) ├─► commands (deque) + wake pipe ──► _run_commands
      │ cancel(job)    ─┘                                        │
      │                                             _dispatch: cut a chunk from the
      │                                             oldest job, pickle its items,
      │                                             send TASK ─────── pipe i ──────► reader thread ─► inbox
      │                                                                                  main thread runs it,
      │                                             _on_readable ◄── RESULT ── pipe i ── writes slot i
      │                                               deliver to the job's sink          (seq, item, start)
      │ ◄── Future / Event / SimpleQueue ─────────────┘
      │                                             _on_death ◄── sentinel i (process ended)
      │                                             _check_timeouts ◄── reads slot i

The scheduler waits on every worker pipe, every worker's process sentinel and
the wake pipe at once (one selector), so a death is seen the moment it happens.

Invariants:

1. Only the scheduler thread touches jobs' scheduling state and the workers;
   callers talk to it only through commands and the sinks' thread-safe objects.
2. Every item of a job is at each moment in exactly one place: the job's
   pending slabs, one worker's ``held`` chunks, or delivered. A chunk leaves
   ``held`` once: by its RESULT, or by recovery when its worker died.
3. A worker runs its chunks in the order sent, so a RESULT always answers the
   first held chunk, and after a death only that chunk can have been running.
4. An item is blamed (``attempts`` += 1) only when the slot proves it was the
   one running when its worker died or overran its timeout. Chunk mates whose
   results were lost run again without blame; chunks are short (about
   CHUNK_SECONDS of work), which bounds that repeated work.
5. A result is delivered at most once (a cancelled or failed job drops late
   results), so nothing is ever delivered twice or into another call.
"""

from __future__ import annotations

import itertools
import logging
import multiprocessing.util as mp_util
import os
import selectors
import signal
import threading
import time
import weakref
from collections import OrderedDict, deque
from collections.abc import Callable
from typing import TYPE_CHECKING, Any

from .. import _config
from .._digest import signature as journal_signature
from .._options import PoolOptions
from .._platform import require_linux
from .._serialize import ErrorRecord, describe, dumps_callable, rebuild_exception, short_repr
from .._serialize import serialization_error as _ser_error
from .._start_methods import resolve_context
from ..errors import (
    BrokenPoolError,
    ResultSerializationError,
    SerializationError,
    SharingError,
    TaskTimeout,
    WorkerLostError,
    describe_exit,
)
from . import blame, bulk, forks, logs, protocol
from .api import WorkerState
from .forks import ends_within, has_ended
from .front import COUNTERS, SchedulerFront
from .futures import Outcomes
from .jobs import Chunk, Job, Slab, StreamJob, SubmitJob, annotate_serialization
from .recording import WORKERS_EVERY, record_chunk, record_task, refresh_workers
from .supervise import WorkerHandle, check_main_module, fork_server_pid, no_main_guard_error
from .watch import WATCH_AFTER, watcher
from .worker import is_dying

_STATES = {
    protocol.PHASE_FUNCTION: "loading",  # the function, new to this worker (its module imports)
    protocol.PHASE_UNPICKLE: "unpickling",
    protocol.PHASE_PICKLE: "pickling",
    protocol.PHASE_IDLE: "sending back",
}


if TYPE_CHECKING:
    from ..journal import Journal

_WAKE, _CONN, _SENTINEL = range(3)

_live_engines: weakref.WeakSet[Engine] = weakref.WeakSet()
_log = logging.getLogger("forklift")

# The longest the scheduler sleeps in one wait: a task timeout may be as long as
# threading.TIMEOUT_MAX, which selectors cannot take in one go.
_MAX_WAIT = 3600.0


class Engine(SchedulerFront):
    """The local engine (an :class:`~forklift._engine.api.EngineAPI`): runs jobs on a set of
    worker processes it supervises."""

    address: str | None = None  # this machine
    sees_workers = True

    def __init__(self, options: PoolOptions, journal: Journal | None = None) -> None:
        """Start the workers ``options`` ask for (checked by ``PoolOptions.build``)."""
        require_linux(
            "a local forklift pool (Pool, Executor, forklift.aio, forklift.joblib)",
            "memfd slots and results, pidfds, PR_SET_PDEATHSIG, /proc for process trees",
        )
        self.processes = options.processes or os.cpu_count() or 1
        self.init_timeout = options.init_timeout
        self.timed = options.calls.timeout is not None  # starts are bounded (see _init_limit)
        self._dead_servers: set[int] = set()  # fork servers that died under this pool
        self.journal = journal  # records every call of this pool (see journal.py)
        self._journal_next = 0.0  # when the workers table is due for a refresh
        self._journaled: set[Job] = set()  # open jobs with a journal of their own (per call)
        self.max_tasks_per_child = options.max_tasks_per_child
        self.max_memory = options.max_memory
        self._ctx = resolve_context(options.start_method)
        self.start_method = self._ctx.get_start_method()
        check_main_module(self._ctx)
        initializer = options.initializer
        self._init_blob = dumps_callable((initializer, options.initargs)) if initializer else None
        self._log_levels = logs.levels_now() if options.forward_logging else None
        self._commands: deque[Callable[[], None]] = deque()
        self._wake_r, self._wake_w = os.pipe()
        self._wake_lock = threading.Lock()
        os.set_blocking(self._wake_r, False)
        os.set_blocking(self._wake_w, False)
        self._selector = selectors.DefaultSelector()
        self._selector.register(self._wake_r, selectors.EVENT_READ, (_WAKE, None))
        self._workers: list[WorkerHandle] = []
        self._queue: deque[Job] = deque()  # jobs with pending items, oldest first
        self._open: set[Job] = set()
        self._streams: weakref.WeakSet[StreamJob] = weakref.WeakSet()  # for join()
        self._submits: dict[tuple[Any, ...], SubmitJob] = {}  # the open job per submitted function
        self._seq = itertools.count(1)
        self._func_ids: OrderedDict[bytes, int] = OrderedDict()
        self._learned: dict[int, tuple[float, float]] = {}  # func id -> chunker's measurements
        self._func_counter = itertools.count()
        self._segments = bulk.SegmentCache(_config.BULK_CACHE)  # scheduler thread only
        self._dropped: deque[tuple[WorkerHandle, Any]] = deque()  # result mappings the caller dropped
        self._accepting = True
        self._closing = False
        self._stop = False
        self._broken: BrokenPoolError | None = None
        self._start_failures = 0
        self._counts = dict.fromkeys(COUNTERS, 0)
        self._started = threading.Event()
        self.outcomes = Outcomes("forklift")
        self._thread = threading.Thread(target=self._run, name="forklift-scheduler", daemon=True)
        self.outcomes.scheduler = self._thread
        self._thread.start()
        _live_engines.add(self)
        self._started.wait()  # the first workers exist (as multiprocessing.Pool's do) or failed
        if self._broken is not None:
            self.check_running()

    # ------------------------------------------------------------------
    # Public API: any thread
    # ------------------------------------------------------------------
    def cancel(self, job: Job, *, kill_running: bool = False) -> None:
        """Drop what is left of ``job``; with kill_running, also kill the workers
        running its chunks (Ctrl-C: stop now, the pool replaces them)."""
        self._call(lambda: self._cancel(job, kill_running), required=False)

    def worker_pids(self) -> list[int]:
        return [w.pid for w in list(self._workers)]

    def worker_states(self) -> list[WorkerState]:
        """What each live worker is doing, read from any thread without stopping the scheduler.

        A racy snapshot (the scheduler may change a worker while it is read), good for a
        display: ``progress="workers"`` redraws it a few times a second.
        """
        states = []
        for w in list(self._workers):
            if w.gone:
                continue
            if not w.ready:
                states.append(WorkerState(w.pid, "starting", "", -1, -1, 0, w.tasks_done, 0))
                continue
            seq, idx, start = w.read_slot()
            held = list(w.held)  # the chunks sent to it and not answered yet
            if not held:
                states.append(WorkerState(w.pid, "idle", "", -1, -1, 0, w.tasks_done, 0))
                continue
            chunk = next((c for c in held if c.seq == seq), None)
            if chunk is None:  # the next chunk is on its way, or the worker is reading it
                chunk, state = held[0], "receiving"
            else:
                state = _STATES.get(idx, "running")
            first, last = chunk.start, chunk.start + len(chunk.items) - 1
            since = 0
            # A timed call's worker stamps each item's index and start in the slot; an
            # untimed one writes 0 for the whole chunk, so there the range is all we know.
            if state == "running" and chunk.job.timeout is not None:
                first = last = chunk.start + idx
                since = start
            states.append(WorkerState(w.pid, state, chunk.job.name, first, last, seq, w.tasks_done, since))
        return states

    def _workers_now(self) -> int:
        return len(self._workers)

    def _call(self, command: Callable[[], None], *, required: bool = True) -> None:
        """Hand ``command`` to the scheduler thread.

        Under the lock, a command is either queued before ``_shutdown`` closes
        the wake pipe (and then run, or refused, by the scheduler on its way
        out) or refused here: a call racing the pool's end gets an error at
        once, never a Future that no one will settle.
        """
        if self.outcomes.generation != forks.generation():  # a fork: no scheduler thread here
            if required:
                self.check_process()
            return
        with self._wake_lock:  # never write to the fd number after _shutdown closed it
            if self._wake_w < 0:
                if required:
                    self.check_running()
                    raise ValueError("Pool not running")
                return
            self._commands.append(command)
            try:
                os.write(self._wake_w, b"\0")
            except BlockingIOError:
                pass  # the pipe is full: the scheduler is awake anyway

    # ------------------------------------------------------------------
    # The scheduler thread
    # ------------------------------------------------------------------
    def _run(self) -> None:
        try:
            self._spawn_missing()
            self._started.set()
            while not self._stop:
                self._run_commands()
                self._send_frees()
                self._spawn_missing()
                self._dispatch()
                if self._closing and not self._open and self._retire_all():
                    break
                wait = _earliest(self._check_timeouts(), self.outcomes.retry())
                self._wait(self._journal_workers(_earliest(wait, self._check_watch())))
        except BaseException as exc:  # a bug in forklift: fail loudly, never hang
            err = BrokenPoolError(f"forklift's scheduler failed: {type(exc).__name__}: {exc}")
            err.__cause__ = exc
            self._abort_all(err)
        finally:
            self._started.set()
            self._shutdown()

    def _journal_workers(self, timeout: float | None) -> float | None:
        """Refresh the journal's workers table now and then; returns the wait to use."""
        journal = self.journal
        if journal is None:
            if not self._journaled:  # the common case costs one test per turn of the loop
                return timeout
            run = next(iter(self._journaled)).journal
            assert run is not None
            journal = run.journal
        now = time.monotonic()
        if now >= self._journal_next:
            self._journal_next = now + WORKERS_EVERY
            refresh_workers(journal, self._workers)
        wait = self._journal_next - now
        return wait if timeout is None else min(timeout, wait)

    def _wait(self, timeout: float | None) -> None:
        for key, _ in self._selector.select(timeout):
            kind, worker = key.data
            if kind == _WAKE:
                self._empty_wake_pipe()
            elif worker.gone:  # its death was handled earlier in this batch of events
                continue
            elif kind == _CONN:
                self._on_readable(worker)
            else:
                self._on_death(worker)

    def _empty_wake_pipe(self) -> None:
        try:
            while os.read(self._wake_r, 4096):
                pass
        except BlockingIOError:
            pass

    def _run_commands(self) -> None:
        while self._commands:
            self._commands.popleft()()

    # -- jobs ------------------------------------------------------------
    def _register(self, job: Job) -> None:
        if self._refused(job):
            return
        fid = self._func_ids.get(job.fn_blob)
        if fid is None:
            fid = self._func_ids[job.fn_blob] = next(self._func_counter)
            if len(self._func_ids) > 256:
                self._learned.pop(self._func_ids.popitem(last=False)[1], None)
        job.func_id = fid
        job.chunker.seed(self._learned.get(fid))  # a repeated call starts at full speed
        if job.journal is not None:
            self._journaled.add(job)
        elif self.journal is not None:
            job.journal = self.journal.begin(
                job.kind,
                job.name,
                journal_signature(job.fn_blob, job.mode, job.fn),
                workers=self.processes,
                total=job.total,
            )
        self._open.add(job)
        self._enqueue(job)
        self._finish_if_done(job)

    def _cancel(self, job: Job, kill_running: bool) -> None:
        job.cancel()
        if kill_running:
            for w in self._workers:
                if w.held and w.held[0].job is job:
                    w.kill("cancelled")
        self._finish_if_done(job)

    def _finish_if_done(self, job: Job) -> None:
        if job.done and job in self._open:
            self._open.discard(job)
            if job.journal is not None:  # first: finishing may close a per-call journal
                self._journaled.discard(job)
                refresh_workers(job.journal.journal, self._workers)
                status = "failed" if job.journal.failures else "cancelled" if job.cancelled else "done"
                job.journal.finish(status)
            job.finish()
            if job.memo is not None:
                self._segments.unmemo(job.memo)
            self._forget_submit(job)

    def _fail(self, job: Job, index: int, exc: BaseException) -> None:
        self._deliver(job, index, [None], {0: exc})

    # -- dispatch ----------------------------------------------------------
    def _dispatch(self) -> None:
        """Give every worker with room a chunk, idlest workers first."""
        for depth in range(_config.PREFETCH):
            for w in self._workers:
                if len(w.held) == depth and self._has_room(w) and (depth == 0 or self._ends_soon(w)):
                    self._send_one(w)

    def _ends_soon(self, w: WorkerHandle) -> bool:
        """Prefetch only behind work known to be short.

        Prefetching hides a round trip between short chunks; behind a long or not yet
        measured task, a prefetched chunk would wait while another worker may be idle
        (a small map queued behind a 3 s apply on the other worker took 3 s).
        """
        last = w.held[-1]
        if not last.job.prefetch_behind:
            return False
        seconds = last.job.chunker.expected(len(last.items))
        return seconds is not None and seconds <= _config.PREFETCH_BEHIND

    def _has_room(self, w: WorkerHandle) -> bool:
        if w.retiring or w.kill_reason is not None:
            return False
        return self.max_tasks_per_child is None or self._budget(w) > 0

    def _budget(self, w: WorkerHandle) -> int:
        assert self.max_tasks_per_child is not None
        return self.max_tasks_per_child - w.tasks_done - w.held_items

    def _next_job(self) -> Job | None:
        while self._queue:
            job = self._queue[0]
            if job.pending and not job.cancelled:
                return job
            self._queue.popleft()
        return None

    def _send_one(self, w: WorkerHandle) -> None:
        """Send ``w`` the next chunk of the oldest job that has one (if any)."""
        while (job := self._next_job()) is not None:
            size = job.chunker.next_size(job.remaining(), self.processes, job.pending_items())
            if self.max_tasks_per_child is not None:
                size = min(size, self._budget(w))
            piece = job.take(size)
            if not piece.items:  # a cancelled future: nothing to send
                self._finish_if_done(job)
                continue
            payload, shipped = piece.payload, piece.shipped
            if job.fixed_input and job.memo is None:
                job.memo = bulk.Memo(self._segments)
            if payload is None:
                try:
                    payload, shipped = bulk.dumps(piece.items, self._segments.take, job.memo)
                except BaseException as exc:  # SystemExit from a __reduce__ must not stop us
                    self._unpicklable_args(job, piece, exc)
                    continue
                nbytes = len(payload) + sum(n for _, n in shipped)  # chunks are sized by all they carry
                job.chunker.observe_payload(len(piece.items), nbytes)
            if w.held and len(payload) > _config.PREFETCH_BYTES:
                # A busy worker's reader thread may not get the GIL (a task in C code):
                # a big send could block this thread, and with it every timeout and
                # death check. Big chunks go to idle workers only.
                job.requeue(piece.start, piece.items, piece.attempts, payload, shipped)
                self._enqueue(job)
                return
            self._send_chunk(w, job, piece, payload, shipped)
            return

    def _send_chunk(
        self, w: WorkerHandle, job: Job, piece: Slab, payload: bytes, shipped: bulk.Shipped
    ) -> None:
        seq = next(self._seq)
        blob: bytes | None = None
        forget: tuple[int, ...] = ()
        if job.func_id not in w.funcs:
            blob = job.fn_blob
            w.funcs[job.func_id] = None
            if len(w.funcs) > _config.FUNC_CACHE:
                forget = (w.funcs.popitem(last=False)[0],)
        else:
            w.funcs.move_to_end(job.func_id)
        chunk = Chunk(seq, job, piece.start, piece.items, piece.attempts, shipped)
        if job.journal is not None:
            chunk.sent = time.time()
            if job.journal.keep_results and not shipped:
                chunk.inputs = payload  # digested by the journal's writer thread, off this one
        w.held.append(chunk)
        job.inflight += len(piece.items)
        fields = (seq, job.func_id, blob, forget, job.mode, job.timeout is not None, bulk.wire(shipped))
        try:
            protocol.send(w.conn, protocol.TASK, fields, payload)
        except OSError:
            pass  # the worker is dying; its sentinel will bring the chunk back

    def _unpicklable_args(self, job: Job, piece: Slab, exc: BaseException) -> None:
        if len(piece.items) > 1:
            self._requeue_one_by_one(job, piece.start, piece.items, piece.attempts)
            return
        item = piece.items[0]
        err = _ser_error("cannot pickle the arguments", item, exc, task=job.describe(piece.start))
        self._fail(job, piece.start, err)

    def _requeue_one_by_one(self, job: Job, start: int, items: list[Any], attempts: int) -> None:
        """Requeue items one per chunk, so a fault is pinned to its item."""
        for i in range(len(items) - 1, -1, -1):
            job.requeue(start + i, [items[i]], attempts)
        self._enqueue(job)

    # -- messages from workers ------------------------------------------------
    def _on_readable(self, w: WorkerHandle) -> None:
        try:
            while True:
                self._on_message(w, *protocol.recv(w.conn))
                if not w.more():
                    return
        except (EOFError, OSError):
            self._unregister(w.conn)  # the sentinel will report the death

    def _on_message(self, w: WorkerHandle, kind: int, fields: tuple[Any, ...], payload: bytes | None) -> None:
        if w.timeout_target is not None and kind in (protocol.RESULT, protocol.BADARGS):
            # It overran and is being killed: what it sends meanwhile (say, a child's exit
            # status after kill_tree reached the child first) is not the task's answer, and
            # its later chunks go back to the queue with the death (invariant 3 holds).
            return
        if kind == protocol.RESULT:
            self._on_result(w, fields, payload)
        elif kind == protocol.READY:
            w.ready = True
            self._start_failures = 0
        elif kind == protocol.BADARGS:
            self._on_badargs(w, *fields)
        elif kind == protocol.INITFAIL:
            self._on_initfail(w, fields[0])
        elif kind == protocol.LOG:
            self._on_log(w, *fields)

    def _on_log(self, w: WorkerHandle, seq: int, item: int, fields: dict[str, Any]) -> None:
        """A worker's logging record: tag it with its task, run the parent's handlers elsewhere."""
        task = call = None
        for chunk in w.held:
            if chunk.seq == seq:
                call = chunk.job.name
                if 0 <= item < len(chunk.items):
                    task = chunk.start + item
                    index = chunk.job.journal_index
                    if index is not None:  # a resumed map: the call's own numbering
                        task = index[task]
                    if chunk.job.journal is not None:  # kept beside the task's error, if it fails
                        chunk.logs = chunk.logs or {}
                        tail = chunk.logs.setdefault(item, deque(maxlen=_config.LOG_LINES_KEPT))
                        tail.append(logs.line(fields))
                break
        self.outcomes.callbacks.post_log(logs.dispatch, logs.rebuild(fields, task, call))

    def _take_held(self, w: WorkerHandle, seq: int) -> Chunk:
        chunk = w.held.popleft()
        if chunk.seq != seq:  # invariant 3
            raise AssertionError(f"worker {w.pid} answered chunk {seq}, expected {chunk.seq}")
        chunk.job.inflight -= len(chunk.items)
        return chunk

    def _on_result(self, w: WorkerHandle, fields: tuple[Any, ...], payload: bytes | None) -> None:
        seq, elapsed, rss, kept, result_bulk, began, zombies = fields
        chunk = self._take_held(w, seq)
        if zombies:  # too many exited daemons of its tasks wait on it: init reaps them after it
            w.retiring = True
        if chunk.shipped:  # the worker is done with the argument segments
            self._segments.done(chunk.shipped, kept)
        job, n = chunk.job, len(chunk.items)
        w.tasks_done += n
        job.chunker.observe(n, elapsed)
        learned = job.chunker.learned()
        if learned is not None:
            self._learned[job.func_id] = learned
        outcome: Any = None
        if not job.cancelled:
            try:  # before the worker may retire: it holds the result segments until RELEASE
                on_drop = self._on_result_dropped(w) if result_bulk else None
                outcome = bulk.loads(payload, result_bulk, private=False, on_drop=on_drop)[0]  # type: ignore[arg-type]
            except BaseException as exc:
                outcome = exc
        if result_bulk:
            mapped = outcome is not None and not isinstance(outcome, SharingError)
            try:  # not mapped: the worker may reuse the segments at once
                protocol.send(w.conn, protocol.RELEASE, (seq, mapped))
            except OSError:
                pass  # it is dying: its segments go with it
        self._retire_if_spent(w, rss)
        if job.cancelled:
            self._finish_if_done(job)
            return
        if isinstance(outcome, SharingError) and ends_within(w.pid):
            # The worker died before we mapped its results: run the chunk again. (A worker
            # that lives gave a result naming shared memory it no longer holds: its fault.)
            # Not w.process.is_alive(): under forkserver that learns of the death from the
            # fork server, later; a worker SIGKILLed just after it answered was taken for
            # a live one, and its chunk failed with a serialization error.
            job.requeue(chunk.start, chunk.items, chunk.attempts)
            self._enqueue(job)
            return
        if isinstance(outcome, BaseException):
            self._unloadable_result(job, chunk, outcome)
            return
        values, records = outcome
        errors = None
        if records:
            errors = {i: self._rebuild(job, chunk.start + i, r) for i, r in records.items()}
        if job.journal is not None:
            record_chunk(job, chunk, w.pid, began, elapsed, values, errors, None if result_bulk else payload)
        self._deliver(job, chunk.start, values, errors)

    def _on_result_dropped(self, w: WorkerHandle) -> Callable[[Any], None]:
        """A callback (any thread) for when the caller drops a result array of ``w``'s."""
        # No lock here: this may run inside a garbage collection that interrupted a thread
        # holding _wake_lock. deque.append is atomic; the scheduler sends the FREEs the next
        # time it wakes (reuse may wait, nothing else does).
        dropped = self._dropped

        def on_drop(token: Any) -> None:
            dropped.append((w, token))

        return on_drop

    def _send_frees(self) -> None:
        while self._dropped:
            w, token = self._dropped.popleft()
            if w.exit_sent or w not in self._workers:
                continue
            try:
                protocol.send(w.conn, protocol.FREE, (token,))
            except (OSError, ValueError):
                pass  # it is dying: its segments go with it

    def _rebuild(self, job: Job, index: int, record: ErrorRecord) -> BaseException:
        return annotate_serialization(job, index, rebuild_exception(record))

    def _unloadable_result(self, job: Job, chunk: Chunk, exc: BaseException) -> None:
        if len(chunk.items) > 1:  # find the culprit: run the chunk again, one item at a time
            self._requeue_one_by_one(job, chunk.start, chunk.items, chunk.attempts)
            return
        err = ResultSerializationError(
            f"cannot unpickle the result in the parent: {describe(exc)}", short_repr(exc), "<not unpickled>"
        )
        err.__cause__ = exc
        self._fail(job, chunk.start, err.for_task(job.describe(chunk.start)))

    def _on_badargs(self, w: WorkerHandle, seq: int, what: str, record: ErrorRecord) -> None:
        chunk = self._take_held(w, seq)
        job = chunk.job
        if what == "arguments" and len(chunk.items) > 1:
            self._requeue_one_by_one(job, chunk.start, chunk.items, chunk.attempts)
            return
        cause = rebuild_exception(record)
        for i in range(len(chunk.items)):
            err = SerializationError(
                f"{job.describe(chunk.start + i)}: cannot unpickle the {what} in the worker: "
                f"{record[1]}: {record[2]}"
            )
            err.__cause__ = cause
            self._fail(job, chunk.start + i, err)

    def _on_initfail(self, w: WorkerHandle, record: ErrorRecord) -> None:
        err = BrokenPoolError(f"the pool's initializer failed in worker {w.pid}: {record[1]}: {record[2]}")
        err.__cause__ = rebuild_exception(record)
        self._abort_all(err)

    # -- worker life cycle ------------------------------------------------------
    def _spawn_missing(self) -> None:
        if self._stop or (self._closing and not self._open):
            return
        while sum(not w.retiring for w in self._workers) < self.processes:
            try:
                w = WorkerHandle(self._ctx, self._init_blob, self.max_memory is not None, self._log_levels)
            except Exception as exc:
                if self._fork_server_restarts():
                    continue  # it died between our starts: the next start makes a new one
                err = BrokenPoolError(f"cannot start a worker process: {type(exc).__name__}: {exc}")
                err.__cause__ = exc
                self._abort_all(err)
                return
            self._workers.append(w)
            self._counts["started"] += 1
            if watcher.running:
                watcher.watch(w.pid, w.identity)
            self._selector.register(w.conn, selectors.EVENT_READ, (_CONN, w))
            self._selector.register(w.sentinel, selectors.EVENT_READ, (_SENTINEL, w))

    def _fork_server_restarts(self) -> bool:
        """A start failed: because the fork server has died (and not for the first time here)?"""
        if self.start_method != "forkserver":
            return False
        server = fork_server_pid()
        if server is None or server in self._dead_servers:
            return False
        if not ends_within(server):  # a killed server closes its socket before it becomes a zombie
            return False
        self._fork_server_died(server)
        return not self._stop

    def _retire_if_spent(self, w: WorkerHandle, rss: int) -> None:
        spent = self.max_tasks_per_child is not None and w.tasks_done >= self.max_tasks_per_child
        if spent or (self.max_memory is not None and rss > self.max_memory):
            w.retiring = True
        if w.retiring and not w.held:
            self._send_exit(w)

    def _send_exit(self, w: WorkerHandle) -> None:
        if w.exit_sent:
            return
        w.exit_sent = True
        w.retiring = True
        try:
            protocol.send(w.conn, protocol.EXIT)
        except OSError:
            pass

    def _retire_all(self) -> bool:
        """Ask idle workers to exit (close()); True once none is left."""
        for w in self._workers:
            if not w.held:
                self._send_exit(w)
        return not self._workers

    def _forget(self, w: WorkerHandle) -> None:
        if watcher.running:
            watcher.forget(w.pid)
        self._unregister(w.conn)
        self._unregister(w.sentinel)
        self._workers.remove(w)
        w.gone = True

    def _unregister(self, obj: Any) -> None:
        try:
            self._selector.unregister(obj)
        except (KeyError, ValueError, OSError):
            pass

    def _on_death(self, w: WorkerHandle) -> None:
        self._read_last_words(w)
        retired = w.exit_sent and not w.held
        if w.server is not None and self._server_gone(w):
            # Its exit status went with the server: it may live on, unseen. Its whole tree,
            # while it still holds it (it is a subreaper): no task's fault.
            w.kill("server")
            self._fork_server_died(w.server)
        elif not retired:
            # Lost: what its task started dies with it, as with a kill by us (its process
            # group; under fork and spawn before the reap, while its pid is no one else's).
            from ..trees import signal_group  # here: a pool that loses no worker does not import it

            signal_group(w.pid, signal.SIGKILL)
        exitcode = w.reap()
        self._forget(w)
        w.close()
        if retired:
            return  # retired as asked
        self._counts["lost"] += 1
        if w.kill_reason == "init-timeout":
            self._abort_all(self._init_timeout_error(w))
            return
        if not w.ready and w.kill_reason is None:
            self._start_failed(w, exitcode)
        self._recover(w, exitcode)

    def _server_gone(self, w: WorkerHandle) -> bool:
        """Did ``w``'s sentinel fire because its fork server died (killed from outside)?

        The server writes a worker's exit status only after reaping it, so a worker still
        running when its sentinel fires means the server is gone; so does the note the
        worker leaves when PDEATHSIG comes from the server, and the server's own exit.
        (The sentinel fires as the server's descriptors close, before it is a zombie.)
        """
        assert w.server is not None
        return (
            w.view[protocol.SLOT_NOTE] == protocol.NOTE_SERVER_GONE
            or has_ended(w.server)
            or not has_ended(w.pid)
        )

    def _fork_server_died(self, server: int) -> None:
        """Once per dead fork server: say so, and let it end so that the next worker start
        makes a new one (multiprocessing's ensure_running restarts it only once it can reap
        the old one). After START_FAILURES such deaths the pool fails."""
        if server in self._dead_servers:
            return
        self._dead_servers.add(server)
        if is_dying():
            return  # a pool inside a worker whose own pool died: its tree is being killed
        _log.warning(
            "forklift: the fork server (pid %d) died; its workers were replaced and the tasks they "
            "ran will run again",
            server,
        )
        ends_within(server)
        if len(self._dead_servers) >= _config.START_FAILURES:
            self._abort_all(
                BrokenPoolError(
                    f"the fork server died {len(self._dead_servers)} times (last pid {server}): "
                    "something kills it; the pool stopped instead of restarting it again"
                )
            )

    def _init_timeout_error(self, w: WorkerHandle) -> BrokenPoolError:
        what = "the pool's initializer" if self._init_blob is not None else "its start"
        return BrokenPoolError(
            f"worker {w.pid} was not ready {self._init_limit():g} s after it started: {what} did "
            "not return, so it was killed; every call of this pool fails. Give it longer with "
            "init_timeout= (seconds), or make the initializer return"
        )

    def _read_last_words(self, w: WorkerHandle) -> None:
        """Take in what a dead worker sent before it died."""
        try:
            while w.more():
                self._on_message(w, *protocol.recv(w.conn))
        except (EOFError, OSError):
            pass

    def _start_failed(self, w: WorkerHandle, exitcode: int | None) -> None:
        if exitcode == protocol.EXIT_NO_MAIN_GUARD:
            self._abort_all(no_main_guard_error(self.start_method))
            return
        self._start_failures += 1
        if self._start_failures >= _config.START_FAILURES:
            self._abort_all(
                BrokenPoolError(
                    f"{self._start_failures} workers in a row died before they were ready; "
                    f"the last, pid {w.pid}, {self._start_exit(exitcode)}"
                )
            )

    def _start_exit(self, exitcode: int | None) -> str:
        """How a worker that was not ready yet ended (no task of it ran: none is to blame)."""
        if exitcode is None or exitcode < 0:
            return describe_exit(exitcode)  # vanished, or killed by a signal
        how = f"exited with code {exitcode} as it started, before running any task"
        if self.start_method != "fork":
            how += f" ({self.start_method} workers import the main module again first: its error is above)"
        return how

    def _recover(self, w: WorkerHandle, exitcode: int | None) -> None:
        """Bring back the chunks a dead worker held (invariants 2-4)."""
        held = list(w.held)
        w.held.clear()
        for chunk in reversed(held[1:]):  # never started: no blame
            chunk.job.inflight -= len(chunk.items)
            chunk.job.requeue(chunk.start, chunk.items, chunk.attempts)
            self._enqueue(chunk.job)
        if held:
            self._recover_current(w, held[0], exitcode)
        for chunk in held:
            self._finish_if_done(chunk.job)

    def _recover_current(self, w: WorkerHandle, chunk: Chunk, exitcode: int | None) -> None:
        job = chunk.job
        job.inflight -= len(chunk.items)
        seq, idx, _ = w.read_slot()
        verdict = blame.judge(
            len(chunk.items),
            chunk.seq,
            (seq, idx),
            target=w.timeout_target,
            kill_reason=w.kill_reason,
            timed=job.timeout is not None,
            attempts=chunk.attempts,
            retries=job.retries,
        )
        for offset, count, attempts in reversed(verdict.back):
            job.requeue(chunk.start + offset, chunk.items[offset : offset + count], attempts)
        if verdict.blamed is not None:  # last: failing it may finish the job, its mates must be back
            tail = chunk.log_tail(verdict.blamed)
            self._blame(w, job, chunk.start + verdict.blamed, verdict, exitcode, chunk.sent, tail)
        self._enqueue(job)

    def _blame(
        self,
        w: WorkerHandle,
        job: Job,
        index: int,
        verdict: blame.Verdict,
        exitcode: int | None,
        sent: float,
        tail: str = "",
    ) -> None:
        """Count and record the death of the item that was running; fail it if the verdict says so."""
        if job.cancelled:
            return
        if job.journal is not None:
            final = verdict.fails is not None
            record_task(job, index, verdict.attempts, w, exitcode, final=final, sent=sent, tail=tail)
        if verdict.fails is None:
            self._counts["retries"] += 1  # judge() put it back with its attempts
            return
        if verdict.fails == "timeout":
            self._counts["timeouts"] += 1
            exc: BaseException = TaskTimeout(
                f"{job.describe(index)} ran longer than its timeout of {job.timeout:g} s; "
                f"worker {w.pid} and its child processes were killed and replaced"
            )
        else:
            how = describe_exit(exitcode)
            exc = WorkerLostError(
                f"worker {w.pid} running {job.describe(index)}{verdict.phase} {how}",
                pid=w.pid,
                exitcode=exitcode,
            )
        self._fail(job, index, exc)

    # -- timeouts -----------------------------------------------------------------
    def _check_timeouts(self) -> float | None:
        """Kill workers whose current item (or start) overran; return seconds until the next check."""
        nearest = self._check_starts()
        now = time.monotonic_ns()
        for w in self._workers:
            if not w.held or w.kill_reason is not None or w.held[0].job.timeout is None:
                continue
            chunk = w.held[0]
            timeout = chunk.job.timeout
            assert timeout is not None
            seq, idx, start = w.read_slot()
            if seq != chunk.seq or idx == protocol.PHASE_IDLE:
                wait = 0.01  # not started yet (or done, its result on the way): look again soon
            else:
                loading = idx == protocol.PHASE_FUNCTION
                if loading:
                    # Loading a function new to this worker imports its module: start-up,
                    # bounded like an initializer. Under the task's own timeout, a module
                    # slower to import than that failed every attempt in every new worker.
                    timeout = max(timeout, self._init_limit() or _config.INIT_TIMEOUT)
                deadline = start + int(timeout * 1e9)
                if now >= deadline:
                    w.timeout_target = (seq, idx)
                    w.kill("timeout")
                    continue
                wait = (deadline - now) / 1e9
                if loading:
                    wait = min(wait, 0.01)  # the task's clock starts any moment: look again soon
            nearest = wait if nearest is None else min(nearest, wait)
        return nearest if nearest is None else min(nearest, _MAX_WAIT)

    def _check_watch(self) -> float | None:
        """Start this process's watcher once a chunk has been out WATCH_AFTER s (watch.py);
        return seconds until the next look, if one is due."""
        if watcher.running:
            return None
        now = time.monotonic()
        ages = [now - w.held[0].out_since for w in self._workers if w.held]
        if not ages:
            return None
        if max(ages) < WATCH_AFTER:
            return WATCH_AFTER - max(ages)
        watcher.start([(w.pid, w.identity) for w in self._workers])
        return None

    def _check_starts(self) -> float | None:
        """Kill a worker not ready within the start limit; return seconds until the next check."""
        if all(w.ready for w in self._workers):
            return None
        limit = self._init_limit()
        if limit is None:
            return None
        nearest: float | None = None
        now = time.monotonic()
        for w in self._workers:
            if w.ready or w.kill_reason is not None:
                continue
            left = w.spawned + limit - now
            if left <= 0:
                w.kill("init-timeout")
                continue
            nearest = left if nearest is None else min(nearest, left)
        return nearest

    def _init_limit(self) -> float | None:
        """How long a worker may take to become ready (its initializer included).

        ``init_timeout`` when given; else, while a timed call is open or the pool
        has a task timeout, INIT_TIMEOUT: a call with a timeout must never wait for
        ever on an initializer that never returns. Otherwise no limit, as before.
        """
        if self.init_timeout is not None:
            return self.init_timeout
        if self.timed or any(job.timeout is not None for job in self._open):
            return _config.INIT_TIMEOUT
        return None

    # -- ending -------------------------------------------------------------------
    def _begin_close(self) -> None:
        self._closing = True

    def _stop_workers(self) -> None:
        for w in self._workers:
            w.kill("shutdown")

    def _shutdown(self) -> None:
        self._stop = True
        if self.journal is not None:
            refresh_workers(self.journal, self._workers, state="gone")
        for w in list(self._workers):
            if not w.exit_sent:
                w.kill("shutdown")
        for w in list(self._workers):
            w.reap()
            self._forget(w)
            w.close()
        self._selector.close()
        self._segments.clear()
        with self._wake_lock:
            os.close(self._wake_r)
            os.close(self._wake_w)
            self._wake_r = self._wake_w = -1
        _live_engines.discard(self)
        # Whatever was queued before the wake pipe closed is refused, not left hanging.
        self._run_commands_after_stop()
        if self.journal is not None:
            self.journal.close_soon()  # terminate() / join() wait for it, in the caller's thread
        self.outcomes.close()

    def _after_stop(self) -> None:
        if self.journal is not None:
            self.journal.close_quietly()

    def _run_commands_after_stop(self) -> None:
        while self._commands:
            try:
                self._commands.popleft()()
            except Exception:  # a bug: say so, and go on refusing the rest
                _log.exception("forklift: a command failed after the pool stopped")
        self._abort_open(self._stopped_error())


def _earliest(a: float | None, b: float | None) -> float | None:
    """The sooner of two waits (None: no limit)."""
    if a is None:
        return b
    return a if b is None else min(a, b)


def _terminate_all() -> None:
    for engine in list(_live_engines):
        try:
            engine.terminate()
        except Exception:
            pass


# Our workers are not daemonic, so multiprocessing's exit function joins them: the pools must
# end first. That function runs the finalizers with an exit priority before it joins any
# child, in the main process (where it is an atexit hook) and in a child process (where
# Process._bootstrap calls it directly, before any atexit hook: a pool left open there once
# died with "ValueError: process object is closed", exit code 1). One registration serves both.
mp_util.Finalize(None, _terminate_all, exitpriority=100)

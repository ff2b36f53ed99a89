"""The worker process: receive chunks, run them, send results back.

Two threads:

- the **reader** thread reads every message from the parent as soon as it
  arrives and queues it, so the parent's sends never block on a busy worker
  (no send/send deadlock with large payloads). When the pipe reaches EOF the
  parent is gone: the reader kills this worker's whole process tree at once.
- the **main** thread runs chunks one after another and sends each result.

The worker leads its own process group, so a terminal's Ctrl-C reaches only
the parent (which then decides), and killing the group also kills whatever the
task started. On Linux, PR_SET_PDEATHSIG delivers SIGTERM when the parent dies;
the handler kills the group. The pipe EOF is the portable guard and the one
that works under forkserver, where the worker's OS parent is the fork server.
"""

from __future__ import annotations

import ctypes
import itertools
import os
import queue
import signal
import sys
import threading
import time
from collections.abc import Callable, Sequence
from multiprocessing.connection import Connection
from typing import Any

from .. import _config
from .._serialize import ErrorRecord, capture_exception, fail_unpicklable, loads
from . import bulk
from . import protocol as P
from .slot import view_of

_PR_SET_PDEATHSIG = 1


def worker_main(
    conn: Connection,
    slot: Any,
    init_blob: bytes | None,
    close_fds: Sequence[int],
    report_rss: bool,
    parent_pid: int | None,
) -> None:
    """Entry point of a worker process (the ``target`` of its Process)."""
    _close_inherited(close_fds)
    _become_group_leader()
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    signal.signal(signal.SIGTERM, _on_sigterm)
    _arm_parent_death_signal()
    if parent_pid is not None and os.getppid() != parent_pid:
        die()  # the parent died before the signal was armed: nobody would send it
    inbox: queue.SimpleQueue[tuple[int, tuple[Any, ...], bytes | None]] = queue.SimpleQueue()
    outgoing = bulk.Outgoing(_config.BULK_CACHE)
    reader = threading.Thread(
        target=_read_loop, args=(conn, inbox, outgoing), name="forklift-reader", daemon=True
    )
    reader.start()
    if not _run_initializer(conn, init_blob):
        sys.exit(1)
    P.send(conn, P.READY, (os.getpid(),))
    _Worker(conn, slot, report_rss, outgoing).serve(inbox)
    if any(t.name == "QueueFeederThread" for t in threading.enumerate()):  # a task put into a Queue
        from .._queues import watch_exit

        watch_exit("pool worker", _config.FLUSH_WARNING)


def die() -> None:
    """Kill this worker's whole process tree, itself last. Never returns."""
    try:
        import psutil

        for child in psutil.Process().children(recursive=True):
            try:
                child.kill()
            except psutil.Error:
                pass
    except Exception:
        pass
    try:
        os.killpg(os.getpgid(0), signal.SIGKILL)
    finally:
        os._exit(1)


def _on_sigterm(signum: int, frame: object) -> None:
    die()


def _close_inherited(fds: Sequence[int]) -> None:
    # Under fork the child inherits the parent's ends of every worker's pipe,
    # its own included; while any copy stays open, the parent's death would not
    # show as EOF.
    for fd in fds:
        try:
            os.close(fd)
        except OSError:
            pass


def _become_group_leader() -> None:
    try:
        os.setpgid(0, 0)
    except OSError:
        pass


def _arm_parent_death_signal() -> None:
    if not sys.platform.startswith("linux"):
        return
    try:
        libc = ctypes.CDLL(None, use_errno=True)
        libc.prctl(_PR_SET_PDEATHSIG, signal.SIGTERM, 0, 0, 0)
    except (OSError, AttributeError):
        pass


def _read_loop(conn: Connection, inbox: queue.SimpleQueue[Any], outgoing: bulk.Outgoing) -> None:
    while True:
        try:
            msg = P.recv(conn)
        except (EOFError, OSError):
            die()
        if msg[0] == P.RELEASE:  # here, not in the inbox: the main thread may be busy for long
            outgoing.release(*msg[1])
            continue
        if msg[0] == P.FREE:
            outgoing.free(msg[1][0])
            continue
        inbox.put(msg)
        if msg[0] == P.EXIT:
            return


def _run_initializer(conn: Connection, init_blob: bytes | None) -> bool:
    if init_blob is None:
        return True
    try:
        initializer, initargs = loads(init_blob)
        initializer(*initargs)
        return True
    except BaseException as exc:
        tb = exc.__traceback__.tb_next if exc.__traceback__ else None
        P.send(conn, P.INITFAIL, (capture_exception(exc, tb),))
        return False


class _Worker:
    """The main thread's state: the pipe, the slot and the cached functions."""

    def __init__(self, conn: Connection, slot: Any, report_rss: bool, outgoing: bulk.Outgoing) -> None:
        self.conn = conn
        self.outgoing = outgoing
        self.slot = view_of(slot)
        self.funcs: dict[int, Callable[..., Any] | ErrorRecord] = {}
        self.report_rss = report_rss

    def serve(self, inbox: queue.SimpleQueue[tuple[int, tuple[Any, ...], bytes | None]]) -> None:
        while True:
            kind, fields, payload = inbox.get()
            if kind == P.EXIT:
                return
            assert payload is not None
            self.run_chunk(fields, payload)

    def run_chunk(self, fields: tuple[Any, ...], payload: bytes) -> None:
        seq, func_id, func_blob, forget, mode, timed, arg_bulk = fields
        slot = self.slot
        # SEQ last: a reader that sees this chunk's seq also sees its phase and start
        # (never the previous chunk's item and start time, which could look overdue).
        if timed:
            slot[P.SLOT_START] = time.monotonic_ns()
        slot[P.SLOT_IDX] = P.PHASE_UNPICKLE
        slot[P.SLOT_SEQ] = seq
        fn = self.function(func_id, func_blob, forget)
        if isinstance(fn, tuple):
            P.send(self.conn, P.BADARGS, (seq, "function", fn))
            return
        began = time.time()
        started = time.perf_counter()
        try:
            args, maps = bulk.loads(payload, arg_bulk, private=True)
        except BaseException as exc:
            P.send(self.conn, P.BADARGS, (seq, "arguments", capture_exception(exc, None)))
            return
        run = self.call_timed if timed else self.call_fast
        results, errors = run(fn, args, mode)
        elapsed = time.perf_counter() - started
        if timed:  # pickling the results is timed too
            slot[P.SLOT_START] = time.monotonic_ns()
        slot[P.SLOT_IDX] = P.PHASE_PICKLE
        blob, shipped = self.pack(results, errors)
        del args, results  # so that unmap() sees whether the task kept its arguments
        kept = bulk.unmap(maps)
        if shipped:
            self.outgoing.hold(seq, shipped)
        P.send(self.conn, P.RESULT, (seq, elapsed, self.rss(), kept, bulk.wire(shipped), began), blob)
        slot[P.SLOT_IDX] = P.PHASE_IDLE

    def function(
        self, func_id: int, blob: bytes | None, forget: Sequence[int]
    ) -> Callable[..., Any] | ErrorRecord:
        for old in forget:
            self.funcs.pop(old, None)
        if blob is not None:
            try:
                self.funcs[func_id] = loads(blob)
            except BaseException as exc:
                self.funcs[func_id] = capture_exception(exc, None)
        return self.funcs[func_id]

    def call_fast(
        self, fn: Callable[..., Any], args: list[Any], mode: int
    ) -> tuple[list[Any], dict[int, ErrorRecord] | None]:
        """Run every item; an exception is recorded at its index and the rest go on.

        ``list.extend`` keeps what the iterator produced before it raised, so
        ``len(out)`` is the index of the failing item and the fast path pays
        nothing per item for the bookkeeping.
        """
        self.slot[P.SLOT_IDX] = 0
        out: list[Any] = []
        errors: dict[int, ErrorRecord] | None = None
        n = len(args)
        while len(out) < n:
            rest = itertools.islice(args, len(out), None)
            try:
                out.extend(_calls(fn, rest, mode))
            except BaseException as exc:
                if errors is None:
                    errors = {}
                errors[len(out)] = _record(exc)
                out.append(None)
        return out, errors

    def call_timed(
        self, fn: Callable[..., Any], args: list[Any], mode: int
    ) -> tuple[list[Any], dict[int, ErrorRecord] | None]:
        """Like call_fast, but stamp each item's index and start time in the slot."""
        slot = self.slot
        out: list[Any] = []
        errors: dict[int, ErrorRecord] | None = None
        for i, item in enumerate(args):
            slot[P.SLOT_START] = time.monotonic_ns()
            slot[P.SLOT_IDX] = i  # written after START: a reader never sees a stale start
            try:
                out.extend(_calls(fn, (item,), mode))
            except BaseException as exc:
                if errors is None:
                    errors = {}
                errors[i] = _record(exc)
                out.append(None)
        return out, errors

    def pack(self, results: list[Any], errors: dict[int, ErrorRecord] | None) -> tuple[bytes, bulk.Shipped]:
        try:
            return bulk.dumps((results, errors), self.outgoing.take)
        except BaseException:
            pass
        errors = dict(errors or {})
        fail_unpicklable(results, errors)
        return bulk.dumps((results, errors), self.outgoing.take)

    def rss(self) -> int:
        if not self.report_rss:
            return 0
        import psutil

        return int(psutil.Process().memory_info().rss)


def _calls(fn: Callable[..., Any], items: Any, mode: int) -> Any:
    if mode == P.CALL_ONE:
        return map(fn, items)
    if mode == P.CALL_STAR:
        return itertools.starmap(fn, items)
    return (fn(*a, **k) for a, k in items)


def _record(exc: BaseException) -> ErrorRecord:
    # Drop the worker's own frames: the traceback starts in the user's function.
    tb = exc.__traceback__
    while tb is not None and tb.tb_frame.f_code.co_filename == __file__:
        tb = tb.tb_next
    return capture_exception(exc, tb)

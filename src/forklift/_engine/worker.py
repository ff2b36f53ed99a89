"""The worker process: receive chunks, run them, send results back.

Two threads:

- the **reader** thread reads every message from the parent as soon as it
  arrives and queues it, so the parent's sends never block on a busy worker
  (no send/send deadlock with large payloads). It also watches the parent.
- the **main** thread runs chunks one after another and sends each result.

The worker leads its own process group, so a terminal's Ctrl-C reaches only
the parent (which then decides), and killing the group also kills whatever the
task started. It is a child subreaper (PR_SET_CHILD_SUBREAPER): a task's
process that daemonizes (double fork, ``setsid``) is re-parented to the worker,
not to init, so the pool's kills (timeout, cancel, terminate, parent death),
which walk the worker's tree, still reach it.

Three guards end the worker, and everything it started, when the pool's
process dies, so that none depends on another (see forks.py for what broke
when one stood alone):

1. EOF on the pipe, seen by the reader thread;
2. a pidfd on the pool's process, polled with the pipe by the reader thread
   (under forkserver the worker's OS parent is the fork server, not the pool);
3. PR_SET_PDEATHSIG: SIGTERM when the OS parent dies (the pool under fork and
   spawn, the fork server under forkserver), handled by killing the tree.
   Under forkserver the worker closes its copy of the fork server's "alive" fd
   (forks.detach_fork_server), so the fork server ends with the pool.
"""

from __future__ import annotations

import ctypes
import functools
import itertools
import os
import queue
import select
import signal
import sys
import threading
import time
from collections.abc import Callable, Sequence
from multiprocessing.connection import Connection
from typing import Any

from .. import _config
from .._platform import adopt, has
from .._serialize import ErrorRecord, capture_exception, fail_unpicklable, loads
from . import bulk, protocol
from .forks import detach_fork_server, proc_stat, process_start
from .slot import view_of

_PR_SET_PDEATHSIG = 1
_PR_SET_CHILD_SUBREAPER = 36


def worker_main(
    conn: Connection,
    slot: Any,
    init_blob: bytes | None,
    report_rss: bool,
    parent: tuple[int, int],
    logging_setup: tuple[dict[str, int], bool] | None = None,
    switches: tuple[str, ...] = (),
) -> None:
    """Entry point of a worker process (the ``target`` of its Process).

    ``parent``: the pool's process as (pid, start time), see forks.identity().
    ``logging_setup``: (levels, forked): forward ``logging`` records to the pool, with the
    pool's levels, in place of inherited handlers if forked (see logs.py); None: leave
    logging alone. ``switches``: the pool's FORKLIFT_WITHOUT (this process's environment may
    differ: the fork server's, or changed after the pool read it), so that both sides agree.
    """
    adopt(frozenset(switches))
    detach_fork_server()
    _become_group_leader()
    _prctl(_PR_SET_CHILD_SUBREAPER, 1)
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    guard = _ParentGuard(parent, view_of(slot))
    signal.signal(signal.SIGTERM, guard.on_sigterm)
    _prctl(_PR_SET_PDEATHSIG, signal.SIGTERM)
    guard.check()  # after arming: a parent that died before would send no signal
    inbox: queue.SimpleQueue[tuple[int, tuple[Any, ...], bytes | None]] = queue.SimpleQueue()
    outgoing = bulk.Outgoing(_config.BULK_CACHE)
    reader = threading.Thread(
        target=_read_loop, args=(conn, inbox, outgoing, guard), name="forklift-reader", daemon=True
    )
    reader.start()
    if logging_setup is not None:
        from . import logs

        levels, forked = logging_setup
        logs.install(functools.partial(_send, conn, protocol.LOG), _where, levels, forked)
    try:
        if not _run_initializer(conn, init_blob):
            sys.exit(1)
        _send(conn, protocol.READY, (os.getpid(),))
        _Worker(conn, slot, report_rss, outgoing).serve(inbox)
    except (BrokenPipeError, ConnectionResetError):  # the pool is gone (or gave up on us)
        die()
        while True:  # another thread is killing the tree, this one with it
            time.sleep(3600)
    if any(t.name == "QueueFeederThread" for t in threading.enumerate()):  # a task put into a Queue
        from .._exit_watch import watch_exit

        watch_exit("pool worker", _config.FLUSH_WARNING)


_send_lock = threading.Lock()
_sending = threading.local()  # this thread is in the middle of a message
_held_back: list[tuple[Any, ...]] = []  # records logged while their thread was sending one


def _send(conn: Connection, kind: int, fields: tuple[Any, ...] = (), payload: bytes | None = None) -> None:
    """protocol.send from any thread: a task's own threads may log while the main thread answers.

    A record logged by a thread in the middle of sending a message (from a signal
    handler) waits until that message is out, so that frames never interleave.
    """
    if getattr(_sending, "now", False):
        _held_back.append(fields)  # only LOG can come here: nothing else sends re-entrantly
        return
    with _send_lock:
        _sending.now = True
        try:
            protocol.send(conn, kind, fields, payload)
            while _held_back:
                protocol.send(conn, protocol.LOG, _held_back.pop(0))
        finally:
            _sending.now = False


#: (seq of the chunk running, the list its results go to): which task a record came from.
_task: list[Any] = [-1, None]


def _where() -> tuple[int, int]:
    seq, out = _task
    return seq, (len(out) if out is not None else -1)


def die(slot: memoryview | None = None, note: int = 0) -> None:
    """Kill this worker's whole process tree, itself last. Never returns (but see below).

    ``note`` (written to the slot first) tells the parent why, when it can still read it.
    Two guards may fire at once (the reader thread and the SIGTERM handler): the first
    one kills, another thread waits to be killed with the rest. (When both killed at
    once, one could kill the worker while the other was still reaching its descendants.)
    The SIGTERM handler returns instead of waiting: it may have interrupted the main
    thread inside an import, holding the import lock that the killer needs for
    ``kill_tree`` (found as a worker left alive with both threads parked); and a second
    SIGTERM while the handler's own kill runs must let that kill go on.
    """
    global _killer
    if slot is not None and note:
        slot[protocol.SLOT_NOTE] = note
    if not _dying.acquire(blocking=False):
        if _killer == threading.get_ident() or threading.current_thread() is threading.main_thread():
            return  # (the main thread runs signal handlers; the killer will reach it)
        while True:
            time.sleep(3600)
    _killer = threading.get_ident()
    try:
        from ..trees import kill_tree

        # Frozen first, so a descendant forking meanwhile cannot escape; the worker is a
        # subreaper, so daemonized descendants are in its tree too. Never the worker itself.
        kill_tree(os.getpid(), sig=signal.SIGKILL, timeout=0, force=True)
    except BaseException:
        pass
    try:
        os.killpg(os.getpgid(0), signal.SIGKILL)
    finally:
        os._exit(1)


_dying = threading.Lock()
_killer: int | None = None  # the thread that is killing the tree


def is_dying() -> bool:
    """True in a worker that is killing its tree (a pool inside it sees its workers go)."""
    return _dying.locked()


class _ParentGuard:
    """Knows whether the pool's process lives: a pidfd on it, checked against its start time."""

    def __init__(self, parent: tuple[int, int], slot: memoryview) -> None:
        self.pid, self.start = parent
        self.slot = slot
        self.os_parent = os.getppid()  # the fork server, under forkserver
        self.pidfd = -1
        if not has("pidfd"):  # the other two guards remain
            return
        try:
            self.pidfd = os.pidfd_open(self.pid)
        except ProcessLookupError:
            self.parent_gone()
        except OSError:  # no pidfds (Linux < 5.3, a sandbox refusing it): the other two remain
            pass

    def alive(self) -> bool:
        if self.pidfd >= 0 and select.select([self.pidfd], [], [], 0)[0]:
            return False  # a pidfd turns readable when its process ends
        return process_start(self.pid) == self.start

    def check(self) -> None:
        if not self.alive():
            self.parent_gone()

    def parent_gone(self) -> None:
        die(self.slot, protocol.NOTE_PARENT_GONE)

    def on_sigterm(self, signum: int, frame: object) -> None:
        # PDEATHSIG, or a kill from outside. Under forkserver it means that the fork
        # server died while the pool lives: say so, the pool then blames no task.
        if not self.alive():
            self.parent_gone()
        gone = os.getppid() != self.os_parent
        die(self.slot, protocol.NOTE_SERVER_GONE if gone else 0)


def _become_group_leader() -> None:
    try:
        os.setpgid(0, 0)
    except OSError:
        pass


def _prctl(option: int, value: int) -> None:
    global _libc
    if not has("prctl"):
        return
    try:
        if _libc is None:
            _libc = ctypes.CDLL(None, use_errno=True)
        _libc.prctl(option, value, 0, 0, 0)
    except (OSError, AttributeError):
        pass


_libc: Any = None


def _read_loop(
    conn: Connection, inbox: queue.SimpleQueue[Any], outgoing: bulk.Outgoing, guard: _ParentGuard
) -> None:
    watch = select.poll()
    watch.register(conn.fileno(), select.POLLIN)
    if guard.pidfd >= 0:
        watch.register(guard.pidfd, select.POLLIN)
    while True:
        if guard.pidfd >= 0 and any(fd == guard.pidfd for fd, _ in watch.poll()):
            guard.parent_gone()
        try:
            msg = protocol.recv(conn)
        except (EOFError, OSError):  # the pool died, or dropped us: either way, end
            die()
        if msg[0] == protocol.RELEASE:  # here, not in the inbox: the main thread may be busy for long
            outgoing.release(*msg[1])
            continue
        if msg[0] == protocol.FREE:
            outgoing.free(msg[1][0])
            continue
        inbox.put(msg)
        if msg[0] == protocol.EXIT:
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
        _send(conn, protocol.INITFAIL, (capture_exception(exc, tb),))
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
            if kind == protocol.EXIT:
                return
            assert payload is not None
            self.run_chunk(fields, payload)

    def run_chunk(self, fields: tuple[Any, ...], payload: bytes) -> None:
        seq, func_id, func_blob, forget, mode, timed, arg_bulk = fields
        _task[0] = seq
        slot = self.slot
        # SEQ last: a reader that sees this chunk's seq also sees its phase and start
        # (never the previous chunk's item and start time, which could look overdue).
        if timed:
            slot[protocol.SLOT_START] = time.monotonic_ns()
        slot[protocol.SLOT_IDX] = protocol.PHASE_UNPICKLE if func_blob is None else protocol.PHASE_FUNCTION
        slot[protocol.SLOT_SEQ] = seq
        fn = self.function(func_id, func_blob, forget)
        if isinstance(fn, tuple):
            _send(self.conn, protocol.BADARGS, (seq, "function", fn))
            return
        if func_blob is not None:  # the arguments' unpickling is on the task's clock again
            if timed:
                slot[protocol.SLOT_START] = time.monotonic_ns()
            slot[protocol.SLOT_IDX] = protocol.PHASE_UNPICKLE
        began = time.time()
        started = time.perf_counter()
        try:
            args, maps = bulk.loads(payload, arg_bulk, private=True)
        except BaseException as exc:
            _send(self.conn, protocol.BADARGS, (seq, "arguments", capture_exception(exc, None)))
            return
        run = self.call_timed if timed else self.call_fast
        try:
            results, errors = run(fn, args, mode)
        finally:
            _task[1] = None
        elapsed = time.perf_counter() - started
        if timed:  # pickling the results is timed too
            slot[protocol.SLOT_START] = time.monotonic_ns()
        slot[protocol.SLOT_IDX] = protocol.PHASE_PICKLE
        blob, shipped = self.pack(results, errors)
        del args, results  # so that unmap() sees whether the task kept its arguments
        kept = bulk.unmap(maps)
        if shipped:
            self.outgoing.hold(seq, shipped)
        retire = zombie_children() > _config.ZOMBIE_LIMIT
        _send(
            self.conn,
            protocol.RESULT,
            (seq, elapsed, self.rss(), kept, bulk.wire(shipped), began, retire),
            blob,
        )
        slot[protocol.SLOT_IDX] = protocol.PHASE_IDLE

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
        self.slot[protocol.SLOT_IDX] = 0
        out: list[Any] = []
        _task[1] = out  # len(out): the item running, for a record it logs
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
        _task[1] = out
        errors: dict[int, ErrorRecord] | None = None
        for i, item in enumerate(args):
            slot[protocol.SLOT_START] = time.monotonic_ns()
            slot[protocol.SLOT_IDX] = i  # written after START: a reader never sees a stale start
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


def zombie_children() -> int:
    """How many daemons of this worker's tasks have exited and wait to be reaped by it.

    One system call when no child has exited (the usual case): ``waitid`` with WNOWAIT
    looks without reaping, since an exit status may belong to a task's own
    ``subprocess`` or ``os.fork`` child, which only its owner may collect. Only children
    in another session count: a daemon has called ``setsid``, while a task's own
    unwaited children (which a later task may still wait for) are in the worker's.
    """
    try:
        if os.waitid(os.P_ALL, 0, os.WEXITED | os.WNOHANG | os.WNOWAIT) is None:
            return 0
    except (ChildProcessError, OSError, AttributeError):
        return 0
    mine = os.getsid(0)
    count = 0
    for pid in _children():
        stat = proc_stat(pid)
        count += stat is not None and stat.state == "Z" and stat.session != mine
    return count


def _children() -> list[int]:
    """This process's children: from /proc, else through psutil (FORKLIFT_WITHOUT=proc)."""
    if not has("proc"):
        import psutil

        return [child.pid for child in psutil.Process().children()]
    pids: list[int] = []
    try:
        for tid in os.listdir("/proc/self/task"):
            with open(f"/proc/self/task/{tid}/children") as f:
                pids.extend(int(pid) for pid in f.read().split())
    except OSError:
        return []
    return pids


def _calls(fn: Callable[..., Any], items: Any, mode: int) -> Any:
    if mode == protocol.CALL_ONE:
        return map(fn, items)
    if mode == protocol.CALL_STAR:
        return itertools.starmap(fn, items)
    return (fn(*a, **k) for a, k in items)


def _record(exc: BaseException) -> ErrorRecord:
    # Drop the worker's own frames: the traceback starts in the user's function.
    tb = exc.__traceback__
    while tb is not None and tb.tb_frame.f_code.co_filename == __file__:
        tb = tb.tb_next
    return capture_exception(exc, tb)

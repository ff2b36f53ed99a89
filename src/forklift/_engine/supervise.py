"""Starting, watching and killing worker processes (parent side)."""

from __future__ import annotations

import multiprocessing
import multiprocessing.context
import os
import signal
import sys
import threading
import weakref
from collections import OrderedDict, deque
from multiprocessing.connection import Connection
from typing import TYPE_CHECKING, Any

from .. import _config
from ..trees import kill_tree
from . import protocol as P
from .slot import Slot
from .worker import worker_main

if TYPE_CHECKING:
    from .jobs import Chunk

# Parent ends of every worker pipe in this process: a worker started by fork
# closes its inherited copies (see worker._close_inherited). _fds_lock is held
# from making a pipe until its parent end is listed, around each start, and
# around each close: otherwise another pool's thread could close a listed fd and
# the number be reused (e.g. by the new worker's own sentinel pipe) before the
# child closes "its copy" of it.
_parent_ends: weakref.WeakSet[Connection] = weakref.WeakSet()
_fds_lock = threading.Lock()


def get_context(start_method: str | None) -> multiprocessing.context.BaseContext:
    """The multiprocessing context for a start method (None: forklift's default)."""
    method = start_method or _config.START_METHOD or default_start_method()
    if method not in multiprocessing.get_all_start_methods():
        raise ValueError(
            f"start_method must be one of {multiprocessing.get_all_start_methods()}, not {method!r}"
        )
    ctx = multiprocessing.get_context(method)
    if method == "forkserver":
        _preload_forkserver(ctx)
    return ctx


def default_start_method() -> str:
    if sys.platform.startswith("linux"):
        return "forkserver"
    return multiprocessing.get_start_method()


def _preload_forkserver(ctx: Any) -> None:
    # Import the worker code once in the fork server, not once per worker.
    # Effective only before the fork server starts; harmless after.
    ctx.set_forkserver_preload(["__main__", "forklift._engine.worker"])


class WorkerHandle:
    """The parent's view of one worker: its process, pipe, slot and held chunks."""

    def __init__(
        self,
        ctx: multiprocessing.context.BaseContext,
        init_blob: bytes | None,
        report_rss: bool,
    ) -> None:
        self.slot = Slot(ctx)
        with _fds_lock:
            parent_end, child_end = ctx.Pipe(duplex=True)
            _grow_send_buffer(parent_end)
            method = ctx.get_start_method()
            close_fds: list[int] = []
            if method == "fork":  # including its own pipe's parent end
                close_fds = [c.fileno() for c in [*_parent_ends, parent_end] if not c.closed]
            # Under forkserver the worker's OS parent is the fork server, not us.
            parent_pid = None if method == "forkserver" else os.getpid()
            self.process: Any = ctx.Process(  # type: ignore[attr-defined]
                target=worker_main,
                args=(child_end, self.slot, init_blob, close_fds, report_rss, parent_pid),
                name="forklift-worker",
            )
            self.process.start()
            child_end.close()
            _parent_ends.add(parent_end)
        self.slot.started()
        self.conn = parent_end
        self.pid: int = self.process.pid
        self.sentinel: int = self.process.sentinel
        self.view = self.slot.view
        self.held: deque[Chunk] = deque()
        self.funcs: OrderedDict[int, None] = OrderedDict()
        self.tasks_done = 0
        self.ready = False
        self.retiring = False
        self.kill_reason: str | None = None
        self.exit_sent = False
        self.gone = False  # forgotten by the scheduler after its death
        self.timeout_target: tuple[int, int] | None = None  # (seq, idx) it was killed for

    @property
    def held_items(self) -> int:
        return sum(len(c.items) for c in self.held)

    def read_slot(self) -> tuple[int, int, int]:
        """(seq, idx, start_ns) as the worker last wrote them, read consistently."""
        view = self.view
        while True:
            idx = view[P.SLOT_IDX]
            seq, start = view[P.SLOT_SEQ], view[P.SLOT_START]
            if view[P.SLOT_IDX] == idx:
                return seq, idx, start

    def kill(self, reason: str) -> None:
        """Kill the worker and every process it started; death is seen via the sentinel."""
        if self.kill_reason is None:
            self.kill_reason = reason
        kill_tree(self.pid, sig=signal.SIGKILL, timeout=0)  # freezes first; no wait: the sentinel says

    def reap(self) -> int | None:
        self.process.join(timeout=5)
        return self.process.exitcode  # type: ignore[no-any-return]

    def close(self) -> None:
        with _fds_lock:
            _parent_ends.discard(self.conn)
            try:
                self.conn.close()
            except OSError:
                pass
        try:
            self.process.close()
        except ValueError:
            pass

    def __repr__(self) -> str:
        return f"<worker pid={self.pid} held={len(self.held)} done={self.tasks_done}>"


def _grow_send_buffer(conn: Connection) -> None:
    """Let the pipe hold PREFETCH_BYTES and more while the worker is busy (best effort).

    The kernel caps the size at net.core.wmem_max (4 MiB here); a smaller cap
    only means chunks near PREFETCH_BYTES may wait for an idle worker sooner.
    """
    import socket

    try:
        sock = socket.fromfd(conn.fileno(), socket.AF_UNIX, socket.SOCK_STREAM)
    except OSError:
        return
    with sock:
        try:
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_SNDBUF, min(4 * _config.PREFETCH_BYTES, 1 << 30))
        except (OSError, OverflowError):
            pass

"""Starting, watching and killing worker processes (parent side)."""

from __future__ import annotations

import multiprocessing.context
import signal
import sys
import time
from collections import OrderedDict, deque
from multiprocessing.connection import Connection
from typing import TYPE_CHECKING, Any

from .. import _config
from ..trees import kill_tree
from . import forks, protocol
from .slot import Slot
from .worker import worker_main

if TYPE_CHECKING:
    from .jobs import Chunk


class WorkerHandle:
    """The parent's view of one worker: its process, pipe, slot and held chunks."""

    def __init__(
        self,
        ctx: multiprocessing.context.BaseContext,
        init_blob: bytes | None,
        report_rss: bool,
    ) -> None:
        self.slot = Slot(ctx)
        with forks.lock:
            parent_end, child_end = ctx.Pipe(duplex=True)
            _grow_send_buffer(parent_end)
            # Listed before the start: a fork-started worker closes it with every other
            # parent end it inherits (forks.py), so its pipe reaches EOF when we die.
            forks.parent_ends.add(parent_end)
            self.process: Any = ctx.Process(  # type: ignore[attr-defined]
                target=worker_main,
                args=(child_end, self.slot, init_blob, report_rss, forks.identity()),
                name="forklift-worker",
            )
            try:
                self.process.start()
            except BaseException:
                forks.parent_ends.discard(parent_end)
                parent_end.close()
                raise
            finally:
                child_end.close()
        self.slot.started()
        self.conn = parent_end
        self.pid: int = self.process.pid
        self.identity = forks.process_start(self.pid)  # with the pid: this process, not a reuse
        self.spawned = time.monotonic()
        # Under forkserver, the worker's OS parent: its death ends the worker (PDEATHSIG)
        # and the pool can no longer see the worker's exit, so it must be told apart.
        self.server = fork_server_pid() if ctx.get_start_method() == "forkserver" else None
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
            idx = view[protocol.SLOT_IDX]
            seq, start = view[protocol.SLOT_SEQ], view[protocol.SLOT_START]
            if view[protocol.SLOT_IDX] == idx:
                return seq, idx, start

    def kill(self, reason: str) -> None:
        """Kill the worker and every process it started; death is seen via the sentinel."""
        if self.kill_reason is None:
            self.kill_reason = reason
        if forks.process_start(self.pid) != self.identity:
            return  # it ended, and its pid may already be another process's
        kill_tree(self.pid, sig=signal.SIGKILL, timeout=0)  # freezes first; no wait: the sentinel says

    def reap(self) -> int | None:
        self.process.join(timeout=5)
        return self.process.exitcode  # type: ignore[no-any-return]

    def close(self) -> None:
        with forks.lock:
            forks.parent_ends.discard(self.conn)
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


def fork_server_pid() -> int | None:
    """The pid of multiprocessing's fork server in this process, if one was started."""
    module = sys.modules.get("multiprocessing.forkserver")
    return getattr(getattr(module, "_forkserver", None), "_forkserver_pid", None)


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

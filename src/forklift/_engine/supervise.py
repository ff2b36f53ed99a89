"""Starting, watching and killing worker processes (parent side).

Under spawn and forkserver a worker imports the main module again as it starts.
:func:`check_main_module` catches the two ways that fails before any worker
dies of it: a main module that is no file (``python - < script.py``) is refused
at once, and a worker asked to start a pool while it imports the main module
(no ``if __name__ == "__main__":`` guard) exits quietly with EXIT_NO_MAIN_GUARD,
for its pool to say what to do in one message instead of each worker printing
a traceback.
"""

from __future__ import annotations

import multiprocessing.context
import os
import select
import signal
import sys
import time
from collections import OrderedDict, deque
from multiprocessing.connection import Connection
from typing import TYPE_CHECKING, Any

from .. import _config
from .._platform import without
from ..errors import BrokenPoolError
from . import forks, protocol
from .slot import Slot
from .worker import worker_main

if TYPE_CHECKING:
    from .jobs import Chunk


WORKER_NAME = "forklift-worker"  # also what a worker is called while it imports the main module


class WorkerHandle:
    """The parent's view of one worker: its process, pipe, slot and held chunks."""

    def __init__(
        self,
        ctx: multiprocessing.context.BaseContext,
        init_blob: bytes | None,
        report_rss: bool,
        log_levels: dict[str, int] | None = None,
    ) -> None:
        self.slot = Slot()
        with forks.lock:
            parent_end, child_end = ctx.Pipe(duplex=True)
            _grow_send_buffer(parent_end)
            # Listed before the start: a fork-started worker closes it with every other
            # parent end it inherits (forks.py), so its pipe reaches EOF when we die.
            forks.parent_ends.add(parent_end)
            self.process: Any = ctx.Process(  # type: ignore[attr-defined]
                target=worker_main,
                args=(
                    child_end,
                    self.slot,
                    init_blob,
                    report_rss,
                    forks.identity(),
                    None if log_levels is None else (log_levels, ctx.get_start_method() == "fork"),
                    tuple(sorted(without())),
                ),
                name=WORKER_NAME,
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
        # "Another message waiting?" after each one: a kept poll object answers in ~0.3 µs,
        # Connection.poll(0) builds a selector per call (~2.7 µs), per message.
        self._poller = select.poll()
        self._poller.register(parent_end.fileno(), select.POLLIN)
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
        from ..trees import kill_tree  # here: a pool that never kills does not import it

        kill_tree(self.pid, sig=signal.SIGKILL, timeout=0)  # freezes first; no wait: the sentinel says

    def more(self) -> bool:
        """Whether the pipe has more to read now (a message, or EOF: recv says which)."""
        return bool(self._poller.poll(0))

    def reap(self) -> int | None:
        self.process.join(timeout=5)
        return self.process.exitcode  # type: ignore[no-any-return]

    def close(self) -> None:
        with forks.lock:
            forks.parent_ends.discard(self.conn)
            try:
                self._poller.unregister(self.conn.fileno())  # before the number can be reused
            except (OSError, KeyError, ValueError):
                pass
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


def check_main_module(ctx: multiprocessing.context.BaseContext) -> None:
    """Before a pool starts: can its workers import the main module again, as they will?"""
    me = multiprocessing.current_process()
    if getattr(me, "_inheriting", False) and me.name == WORKER_NAME:
        os._exit(protocol.EXIT_NO_MAIN_GUARD)  # the pool that started this worker says why
    method = ctx.get_start_method()
    path = _main_path()
    if method != "fork" and path is not None and not os.path.exists(path):
        raise BrokenPoolError(
            f"the main module is {os.path.basename(path)!r}, not a file, and {method} workers import "
            "it again as they start: save the script to a file and run that, or use "
            'start_method="fork"'
        )


def no_main_guard_error(method: str) -> BrokenPoolError:
    """Why a worker exited with EXIT_NO_MAIN_GUARD, and what to do."""
    main = sys.modules.get("__main__")
    path = _main_path() or getattr(getattr(main, "__spec__", None), "name", None)
    script = f" ({path})" if path else ""
    return BrokenPoolError(
        f"{method} workers import the main module{script} again as they start, and it started a pool "
        'again: put the code that starts the pool under `if __name__ == "__main__":`, or use '
        'start_method="fork"'
    )


def _main_path() -> str | None:
    """The file a spawn or forkserver worker runs as its main module, as multiprocessing finds it
    (``spawn.get_preparation_data``); None when it imports it by name or not at all."""
    main = sys.modules.get("__main__")
    if getattr(getattr(main, "__spec__", None), "name", None) is not None:
        return None  # python -m: imported by name
    path: str | None = getattr(main, "__file__", None)
    if path is None:
        return None  # python -c, an interactive session, a notebook
    origin = getattr(multiprocessing.process, "ORIGINAL_DIR", None)
    return os.path.normpath(path if os.path.isabs(path) or origin is None else os.path.join(origin, path))


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

"""What a process forked from a pool's process must not keep: run in every ``os.fork()`` child.

A worker notices its parent's death in three ways (see worker.py): EOF on its
pipe, PR_SET_PDEATHSIG from its OS parent, and a pidfd on the pool's process.
The first two fail silently when the parent forks anything else — ``os.fork()``,
a fork-context ``multiprocessing.Process``, a stdlib pool created later:

- the fork inherits the parent ends of every worker's pipe, so a worker's pipe
  does not reach EOF while the fork lives;
- under forkserver, the fork inherits the fork server's "alive" fd, so the fork
  server (the workers' OS parent) lives on, and PDEATHSIG never fires.

Measured before this module: 2 of 2 forkserver workers alive 3 s after their
parent's SIGKILL, whenever the parent had forked a child that was still running.
``os.register_at_fork`` runs :func:`_after_fork_in_child` in every such child
(not in exec'd ones: their descriptors are non-inheritable and close at exec).

The child also gets a new :func:`generation`, so a Pool used in a fork of its
process is told so instead of waiting for a scheduler thread that the fork does
not have.
"""

from __future__ import annotations

import os
import threading
import time
import weakref
from multiprocessing.connection import Connection
from typing import NamedTuple

from .._platform import has

# Parent ends of every worker pipe of this process. _lock is held from making a
# pipe until its parent end is listed, and around each close, and across every
# fork (the before/after handlers): otherwise another thread could close a
# listed descriptor and its number be reused (say, by a new worker's own pipe)
# just before a fork, and the child would close the wrong thing. Re-entrant:
# the scheduler thread forks (fork start method) while holding it.
parent_ends: weakref.WeakSet[Connection] = weakref.WeakSet()
lock = threading.RLock()

_generation = 0
_identity: tuple[int, int] | None = None


def generation() -> int:
    """A number that changes in every forked child: an object made in another generation
    belongs to an ancestor process."""
    return _generation


def identity() -> tuple[int, int]:
    """(pid, start time) of this process: a worker checks both before it trusts a pidfd."""
    global _identity
    pid = os.getpid()
    if _identity is None or _identity[0] != pid:
        _identity = (pid, process_start(pid))
    return _identity


class ProcStat(NamedTuple):
    """The fields of /proc/PID/stat forklift's engine reads."""

    state: str  # R, S, D, Z, T...
    session: int
    start: int  # clock ticks after boot: with the pid it names one process


def proc_stat(pid: int) -> ProcStat | None:
    """``pid``'s state, session and start time; None if it does not exist."""
    if not has("proc"):
        return _psutil_stat(pid)
    try:
        with open(f"/proc/{pid}/stat", "rb") as f:
            data = f.read()
    except OSError:
        return None
    fields = data[data.rfind(b")") + 2 :].split()  # the name (field 2) may hold spaces
    if len(fields) < 20:
        return None
    return ProcStat(fields[0].decode(), int(fields[3]), int(fields[19]))


_TICKS = os.sysconf("SC_CLK_TCK") if hasattr(os, "sysconf") else 100
_PSUTIL_STATES = {
    "running": "R", "sleeping": "S", "disk-sleep": "D", "stopped": "T", "zombie": "Z", "dead": "X",
}  # fmt: skip


def _psutil_stat(pid: int) -> ProcStat | None:
    """proc_stat without /proc (FORKLIFT_WITHOUT=proc, or not Linux): through psutil."""
    import psutil

    try:
        proc = psutil.Process(pid)
        with proc.oneshot():
            state = _PSUTIL_STATES.get(proc.status(), "S")
            # In /proc's unit, clock ticks after boot: psutil's create_time() is wall-clock
            # seconds (boot time + ticks), which moves when the clock is stepped (NTP, resume).
            start = round((proc.create_time() - psutil.boot_time()) * _TICKS)
    except psutil.ZombieProcess:  # macOS refuses a zombie's details (a NoSuchProcess: first)
        return ProcStat("Z", -1, -1)
    except (psutil.NoSuchProcess, psutil.AccessDenied):
        return None
    try:
        session = os.getsid(pid)
    except OSError:
        session = -1
    return ProcStat(state, session, start)


def process_start(pid: int) -> int:
    """When ``pid`` started (see proc_stat); -1 if it is gone (or there is no /proc)."""
    stat = proc_stat(pid)
    return -1 if stat is None else stat.start


def has_ended(pid: int) -> bool:
    """True once ``pid`` has exited (a zombie has), or does not exist."""
    stat = proc_stat(pid)
    return stat is None or stat.state in ("Z", "X")


def ends_within(pid: int, seconds: float = 1.0) -> bool:
    """Whether ``pid`` has ended, or does within ``seconds``: a killed process closes its
    descriptors (a fork server's socket, a worker's segments) before it becomes a zombie,
    so what its closed descriptors told us, /proc may confirm a moment later."""
    deadline = time.monotonic() + seconds
    while not has_ended(pid):
        if time.monotonic() >= deadline:
            return False
        time.sleep(0.001)
    return True


def _before_fork() -> None:
    lock.acquire()


def _after_fork_in_parent() -> None:
    lock.release()


def _after_fork_in_child() -> None:
    global _generation, lock
    _generation += 1
    lock = threading.RLock()  # the parent's may be held by a thread the child does not have
    for conn in list(parent_ends):
        try:
            conn.close()  # close(), not os.close(): the object forgets the number too
        except OSError:
            pass
    parent_ends.clear()
    detach_fork_server()
    _forget_parents_children()


def _forget_parents_children() -> None:
    """The parent's multiprocessing children are not this process's: at exit, multiprocessing
    would join them and fail ('can only join a child process', printed by a fork of a process
    with a pool). multiprocessing's own fork start does the same reset."""
    import sys

    module = sys.modules.get("multiprocessing.process")
    children = getattr(module, "_children", None)
    if children is not None:
        children.clear()


def detach_fork_server() -> None:
    """Drop this process's copy of the fork server's alive fd, and its claim on that server.

    The fork server exits when every copy of the fd is closed, and PDEATHSIG then
    ends its workers. The child starts a fork server of its own if it needs one
    (the stdlib's ``ensure_running`` would otherwise ``waitpid`` a process that is
    not its child, and fail). A worker started by the fork server calls this too:
    multiprocessing hands every such child a copy of the fd, so while any worker
    lived, the fork server could never see its pool die.
    """
    import sys

    module = sys.modules.get("multiprocessing.forkserver")
    server = getattr(module, "_forkserver", None)
    if server is None:
        return
    fd = getattr(server, "_forkserver_alive_fd", None)
    if fd is not None:
        try:
            os.close(fd)
        except OSError:
            pass
    server._forkserver_alive_fd = None
    server._forkserver_pid = None
    server._forkserver_address = None
    server._lock = threading.Lock()


os.register_at_fork(
    before=_before_fork,
    after_in_parent=_after_fork_in_parent,
    after_in_child=_after_fork_in_child,
)

"""Process trees: end a process and everything it started, with nothing escaping.

``kill_tree(pid)`` runs in four steps::

    freeze   SIGSTOP the tree top-down (the whole process group at once, with
             killpg, when the tree leads its own group), re-reading the process
             table until a pass finds no new member and every member is stopped
             -- a stopped process cannot fork, so the set is then closed
    signal   send ``sig`` to every member, then SIGCONT so each can act on it
    wait     up to ``timeout``; a zombie counts as ended (see below)
    escalate freeze the survivors again (with any children they made meanwhile),
             SIGKILL them, wait up to ``kill_wait``

Why each step is there (measured on an 11-process tree, see docs/kill.md):

- ``kill PID`` of the top leaves the other 10 running as orphans.
- A snapshot of the children, then signals, lets children forked in between
  escape (3-6 of ~110 per trial on a tree forking every 2 ms). Stopping first
  and re-reading until stable lets none escape.
- ``killpg`` alone misses a descendant that called ``setsid``; the walk finds it
  while its parent lives. The group scan finds members orphaned *before* the
  call (their parent died, they were re-parented to PID 1 but stay in the group).
- ``psutil.wait_procs`` waits until a pid disappears, i.e. until PID 1 reaps the
  zombie, which this VM's init does only every ~1.9 s. A zombie is dead.

Members are identified by (pid, start time), and a member is only signalled
while its parent is stopped or right after the scan that found it, so a pid
reused by an unrelated process is never signalled.

Every argument is checked before the first signal: ``kill_tree(True)`` is not
``kill_tree(1)``, ``sig=999`` is not sent to a frozen tree, ``timeout=nan``
does not poll for ever. Without ``force=True`` it refuses (:func:`refusal`) PID
1, kernel threads, the caller, its ancestors and a group holding one of them:
as root, ``kill_tree(1)`` would stop and signal every process on the machine.
A tree is never left frozen: if anything raises once the freeze has begun (a
bug, an unexpected ``OSError``, ``KeyboardInterrupt``), every member stopped so
far gets SIGCONT before the exception propagates.

The caller itself is never stopped or signalled. ``PR_SET_CHILD_SUBREAPER`` is
*not* set here: it would make every orphan of every descendant of the caller
(daemons started by any subprocess) the caller's child, forever, and an
unreaped one stays a zombie. If the caller set it itself, members re-parented
to it during the call are reaped here, by pid (never ``waitpid(-1)``, which
would steal exit statuses that subprocess and multiprocessing own).
"""

from __future__ import annotations

import errno
import os
import signal
import time
from collections.abc import Iterable
from typing import NamedTuple

from ._checks import flag, grace_seconds
from ._platform import has

__all__ = ["KillResult", "find_marked", "kill_tree", "refusal", "signal_group"]

# Tunables (module constants so tests can shrink them).
FREEZE_LIMIT = 0.25  # s: stop waiting for members to stop (one stuck in D state never does)
POLL_FIRST = 0.0005  # s: first pause between polls while waiting; doubles up to POLL_MAX
POLL_MAX = 0.02  # s

# Signals that do not end a process: asking kill_tree to "end" a tree with them is a mistake.
_NOT_ENDING = {0, signal.SIGSTOP, signal.SIGTSTP, signal.SIGTTIN, signal.SIGTTOU, signal.SIGCONT}
_STOPPED = frozenset("Tt")  # stopped by a signal, or stopped under a tracer
_ENDED = frozenset("ZXx")  # zombie or dead: it will never run again
_PID_T_MAX = 2**31 - 1  # pid_t is a C int: os.kill raises OverflowError above it
_PF_KTHREAD = 0x00200000  # /proc/PID/stat flags: a kernel thread (pid 2 is not one in a container)


class KillResult(NamedTuple):
    """Who ended how, as returned by :func:`kill_tree` (a NamedTuple: fields by name).

    ``ended`` ended on ``sig`` within ``timeout`` (or were already exiting);
    ``killed`` were still running after ``timeout`` and got SIGKILL (this
    includes children they made during the grace period); ``alive`` were still
    running when ``kill_tree`` returned (empty unless a process is stuck in the
    kernel, could not be signalled, or ``kill_wait`` was 0); ``denied`` could
    not be signalled at all (permission denied). Every tuple is sorted.
    """

    pid: int
    sig: int
    ended: tuple[int, ...] = ()
    killed: tuple[int, ...] = ()
    alive: tuple[int, ...] = ()
    denied: tuple[int, ...] = ()
    elapsed: float = 0.0

    @property
    def pids(self) -> tuple[int, ...]:
        """Every member of the tree that was found, sorted."""
        return tuple(sorted({*self.ended, *self.killed, *self.alive}))

    @property
    def ok(self) -> bool:
        """True when no member is left running."""
        return not self.alive

    def __str__(self) -> str:
        name = _signal_name(self.sig)
        text = f"{len(self.pids)} process(es): {len(self.ended)} ended on {name}"
        if self.sig != signal.SIGKILL:
            text += f", {len(self.killed)} needed SIGKILL"
        text += f", {len(self.alive)} still running"
        if self.denied:
            text += f" ({len(self.denied)} permission denied)"
        return f"{text}; {self.elapsed * 1000:.1f} ms"


def kill_tree(
    pid: int,
    *,
    sig: int = signal.SIGTERM,
    timeout: float = 3.0,
    include_parent: bool = True,
    kill_wait: float = 1.0,
    force: bool = False,
) -> KillResult:
    """End ``pid`` and every process it started; return who ended how.

    The tree is frozen first (SIGSTOP, top-down, until no new member appears),
    so nothing forked during the call escapes. Every member then gets ``sig``
    and SIGCONT, and has ``timeout`` seconds to end; the survivors, with any
    children they started meanwhile, get SIGKILL and ``kill_wait`` seconds more.
    A zombie counts as ended. With ``sig=SIGKILL`` there is no grace period:
    ``timeout`` is then only how long to wait for the members to end, and
    ``sig=SIGKILL, timeout=0`` returns as soon as the signals are sent.

    Members are the descendants of ``pid`` and, when ``pid`` leads its own
    process group (not the caller's), every process in that group, which
    catches descendants orphaned before the call. A descendant that both called
    ``setsid`` and lost its parent before the call is no longer findable from
    ``pid`` (see docs/kill.md). With ``include_parent=False`` ``pid`` itself is
    frozen while the tree is walked, then resumed and left running.

    A process that no longer exists (nor its group) is not an error: the result
    is empty. The caller is never signalled, even when ``pid`` is its ancestor.

    Unless ``force=True``, it refuses (``ValueError``, before any signal) PID 1
    (its tree is the whole system), a kernel thread, the caller's own pid, its
    ancestors and a process group holding one of them: see :func:`refusal`.
    With ``force=True`` the caller's own pid ends its descendants (the caller
    itself is still never signalled).

    Everything is checked before the first signal: ``TypeError`` for a ``pid``
    or ``sig`` that is not an int (a bool is not), a time that is not a number,
    an ``include_parent`` or ``force`` that is not a bool; ``ValueError`` for a
    pid below 1 or above the largest pid (``/proc/sys/kernel/pid_max``), a
    ``sig`` not in ``signal.valid_signals()`` or that does not end a process
    (SIGSTOP, SIGCONT, 0, ...), a time that is negative, nan or infinite.
    ``PermissionError`` when not one member may be signalled.

    The tree is never left frozen: if anything raises after the freeze began
    (including ``KeyboardInterrupt``), every member gets SIGCONT before the
    exception propagates.
    """
    timeout, kill_wait = _check_args(pid, sig, timeout, include_parent, kill_wait, force)
    if not force:
        reason = refusal(pid)
        if reason:
            raise ValueError(f"refusing to kill {pid}: {reason}; pass force=True to do it anyway")
    start = time.monotonic()
    tree = _Tree(pid, include_parent)
    try:
        tree.freeze(roots=[pid], group=tree.own_group)
        if tree.members and tree.denied >= tree.members.keys():
            raise PermissionError(errno.EPERM, f"not permitted to signal process {pid} or its descendants")
        targets = tree.targets()
        tree.send(targets, sig)
        if sig != signal.SIGKILL:
            tree.send(tree.members, signal.SIGCONT)
        elif not include_parent:
            tree.send([pid], signal.SIGCONT)
        ended = tree.wait(targets, timeout)
        killed: set[int] = set()
        survivors = [p for p in targets if p not in ended]
        if survivors and sig != signal.SIGKILL:
            killed = tree.escalate(survivors)
            ended |= tree.wait([p for p in tree.targets() if p not in killed and p not in ended], 0)
        gone = ended | tree.wait(killed, kill_wait)
        tree.reap_adopted(gone)
    except BaseException:
        tree.thaw()  # a frozen tree stays frozen for good: nobody else will SIGCONT it
        raise
    return KillResult(
        pid=pid,
        sig=sig,
        ended=tuple(sorted(ended)),
        killed=tuple(sorted(killed)),
        alive=tuple(sorted(set(tree.targets()) - gone)),
        denied=tuple(sorted(tree.denied)),
        elapsed=time.monotonic() - start,
    )


def find_marked(name: str, value: str, *, live_only: bool = True) -> list[int]:
    """Pids of the processes whose environment holds ``name=value`` (never the caller's own).

    An environment variable is inherited by every descendant, through re-parenting,
    ``setsid`` and daemonizing, so it finds a tree's members that no parent link
    leads to any more (forklift run's guardian, and the tests, mark their trees so).
    With ``live_only``, a zombie or dead process is left out.

    ``name`` and ``value`` must be non-empty strs without NUL, and ``name`` without
    ``=`` (TypeError / ValueError): callers kill what this returns, and an empty
    value would match every process that merely has the variable set empty.
    """
    _check_marker(name, value)
    needle = f"{name}={value}".encode()
    me = os.getpid()
    found = []
    if not has("proc"):
        return _find_marked_psutil(name, value, me, live_only)
    for entry in os.listdir("/proc"):
        if not entry.isdigit() or int(entry) == me:
            continue
        try:
            with open(f"/proc/{entry}/environ", "rb") as f:
                if needle not in f.read().split(b"\0"):
                    continue
        except OSError:
            continue
        if live_only:
            stat = _read_stat(int(entry))
            if stat is None or stat.state in _ENDED:
                continue
        found.append(int(entry))
    return found


def _find_marked_psutil(name: str, value: str, me: int, live_only: bool) -> list[int]:
    """find_marked without /proc (FORKLIFT_WITHOUT=proc, or not Linux): through psutil."""
    import psutil

    found = []
    for proc in psutil.process_iter():
        try:
            if proc.pid == me or proc.environ().get(name) != value:
                continue
            if live_only and proc.status() in (psutil.STATUS_ZOMBIE, psutil.STATUS_DEAD):
                continue
        except (psutil.Error, OSError):
            continue
        found.append(proc.pid)
    return found


def refusal(pid: int, *, caller: str = "the calling process") -> str | None:
    """Why ending ``pid``'s tree would be a mistake, or None; ``kill_tree(force=True)`` overrides it.

    PID 1 (its tree is the whole system), a kernel thread (signals do not end
    it), the caller itself, an ancestor of the caller (its shell, what runs it)
    and a process group that holds an ancestor (kill_tree stops the whole group
    of a group leader). Reads /proc only: it sends no signal. ``forklift kill``
    refuses the same, naming the caller "this forklift process".
    """
    if pid == 1:
        return "PID 1 is init; its tree is the whole system"
    if pid == os.getpid():
        return f"that is {caller}"
    stat = _identity_stat(pid)
    if stat is not None and stat.kernel:
        return "it is a kernel thread; signals do not end it"
    ancestors = _ancestors()
    if pid in ancestors:
        return f"it is an ancestor of {caller} (your shell or what runs it)"
    # The group of a leader is stopped whole (not the caller's own group, see _Tree).
    if pid != os.getpgrp() and any(st.pgid == pid for st in ancestors.values()):
        return f"its process group holds an ancestor of {caller}"
    return None


def _ancestors() -> dict[int, _Stat]:
    """The caller's parent, grandparent, ... up to the top of its pid namespace."""
    lookup = _read_stat if has("proc") else _scan_psutil().get
    found: dict[int, _Stat] = {}
    pid = os.getppid()
    while pid > 0 and pid not in found:
        stat = lookup(pid)
        if stat is None:
            break
        found[pid] = stat
        pid = stat.ppid
    return found


def _check_args(
    pid: int, sig: int, timeout: float, include_parent: bool, kill_wait: float, force: bool
) -> tuple[float, float]:
    """Everything kill_tree is given, before the first signal; returns the two times as floats."""
    _check_pid(pid)
    _check_signal(sig, ending=True)
    flag("include_parent", include_parent)
    flag("force", force)
    return grace_seconds("timeout", timeout), grace_seconds("kill_wait", kill_wait)


def _check_pid(pid: int) -> None:
    # A bool is an int: kill_tree(True) would be kill_tree(1).
    if isinstance(pid, bool) or not isinstance(pid, int):
        raise TypeError(f"pid must be an int, not {type(pid).__name__}")
    if pid < 1:
        raise ValueError(f"pid must be a positive int, not {pid}")
    # No process can have a pid at or above pid_max (unless pid_max was lowered after it started).
    limit = _pid_max()
    if pid >= limit and (pid > _PID_T_MAX or _identity_stat(pid) is None):
        raise ValueError(f"pid must be below {limit} (/proc/sys/kernel/pid_max), not {pid}")
    # A thread id is a valid kill() target that means its whole process: SIGSTOP to one of
    # the caller's own threads stopped the caller for good, and the tree walk from a thread
    # finds no children (another process's were left running).
    owner = _thread_group(pid)
    if owner and owner != pid:  # 0: a process in the middle of its exit (the kernel's Tgid then)
        raise ValueError(f"{pid} is a thread of process {owner}, not a process: pass {owner}")


def _thread_group(pid: int) -> int | None:
    """The process (thread group) that thread ``pid`` belongs to; None if unknown."""
    try:
        with open(f"/proc/{pid}/status", "rb") as f:
            for line in f:
                if line.startswith(b"Tgid:"):
                    return int(line.split()[1])
    except (OSError, ValueError, IndexError):
        pass
    return None


def _pid_max() -> int:
    """One more than the largest pid the kernel hands out."""
    try:
        with open("/proc/sys/kernel/pid_max", "rb") as f:
            return min(int(f.read()), _PID_T_MAX + 1)
    except (OSError, ValueError):
        return _PID_T_MAX + 1


def _check_signal(sig: int, *, ending: bool) -> None:
    """``sig`` must be a signal of this system (and, if ``ending``, one that ends a process)."""
    # os.kill with a bad signal fails only after the tree was frozen; a bool would be SIGHUP.
    if isinstance(sig, bool) or not isinstance(sig, int):
        raise TypeError(f"sig must be a signal number, not {type(sig).__name__}")
    if ending and sig in _NOT_ENDING:
        raise ValueError(f"kill_tree ends processes; {_signal_name(sig)} does not (use a terminating signal)")
    if sig not in signal.valid_signals():
        raise ValueError(f"sig must be a signal of this system (signal.valid_signals()), not {sig}")


def _check_group(pgid: int) -> None:
    if isinstance(pgid, bool) or not isinstance(pgid, int):
        raise TypeError(f"pgid must be an int, not {type(pgid).__name__}")
    # killpg(0) signals the caller's own group; killpg(1) is kill(-1): every process it may signal.
    if pgid < 2 or pgid > _PID_T_MAX:
        raise ValueError(f"pgid must be a process group id from 2 to {_PID_T_MAX}, not {pgid}")
    if pgid == os.getpgrp():
        raise ValueError(f"process group {pgid} is the caller's own")


def _check_marker(name: str, value: str) -> None:
    for what, text in (("name", name), ("value", value)):
        if not isinstance(text, str):
            raise TypeError(f"{what} must be a str, not {type(text).__name__}")
        if not text or "\0" in text:
            raise ValueError(f"{what} must be a non-empty str without NUL, not {text!r}")
    if "=" in name:  # name "A=B" with value "C" would match variable A with value "B=C"
        raise ValueError(f"name must not contain '=', not {name!r}")


# -- the process table ------------------------------------------------------------------------


class _Stat(NamedTuple):
    """The fields of /proc/PID/stat that kill_tree needs."""

    state: str
    ppid: int
    pgid: int
    start: int  # clock ticks since boot: with the pid, identifies the process
    kernel: bool = False  # a kernel thread


def _read_stat(pid: int) -> _Stat | None:
    """One process's stat line; None if it is gone."""
    try:
        fd = os.open(f"/proc/{pid}/stat", os.O_RDONLY)
    except OSError:
        return None
    try:
        data = os.read(fd, 4096)
    except OSError:
        return None
    finally:
        os.close(fd)
    # The command name (field 2) may hold spaces and parentheses: split after the last ')'.
    fields = data[data.rfind(b")") + 2 :].split(maxsplit=20)
    if len(fields) < 20:
        return None
    kernel = bool(int(fields[6]) & _PF_KTHREAD)
    return _Stat(fields[0].decode(), int(fields[1]), int(fields[2]), int(fields[19]), kernel)


def _scan() -> dict[int, _Stat]:
    """Every process's stat (about 1 ms per 100 processes)."""
    if not has("proc"):
        return _scan_psutil()
    table: dict[int, _Stat] = {}
    for name in os.listdir("/proc"):
        if name.isdigit():
            stat = _read_stat(int(name))
            if stat is not None:
                table[int(name)] = stat
    return table


def _scan_psutil() -> dict[int, _Stat]:
    import psutil

    table: dict[int, _Stat] = {}
    boot = psutil.boot_time()
    for proc in psutil.process_iter(["ppid", "status", "create_time"]):
        try:
            state = "Z" if proc.info["status"] == psutil.STATUS_ZOMBIE else "T"
            if proc.info["status"] != psutil.STATUS_STOPPED and state != "Z":
                state = "S"
            # Milliseconds after boot: create_time() alone is wall-clock, which a clock step moves.
            start = round((proc.info["create_time"] - boot) * 1000)
            table[proc.pid] = _Stat(state, proc.info["ppid"], os.getpgid(proc.pid), start)
        except (OSError, psutil.Error, TypeError):
            continue
    return table


def _identity_stat(pid: int) -> _Stat | None:
    if has("proc"):
        return _read_stat(pid)
    return _scan_psutil().get(pid)


# -- the tree -------------------------------------------------------------------------------


class _Tree:
    """The members found so far, keyed by pid, with the stat each was first seen with."""

    def __init__(self, pid: int, include_parent: bool) -> None:
        self.pid = pid
        self.include_parent = include_parent
        self.members: dict[int, _Stat] = {}
        self.denied: set[int] = set()
        self.me = os.getpid()
        self.own_group = False
        self.group_stopped = False  # killpg(SIGSTOP) was sent: thaw() must resume the group too
        # Never PID 1 (force=True): killpg(1) is kill(-1), every process, not group 1;
        # never the caller's own group, which holds the caller.
        if self.pid == 1 or self.pid == os.getpgrp():
            return
        root = _identity_stat(self.pid)
        if root is not None:
            self.own_group = root.pgid == self.pid
        else:  # the leader is gone, but its group may live on (a worker that crashed)
            self.own_group = _group_exists(self.pid)

    def targets(self) -> list[int]:
        """The members that get ``sig``: all but the caller, and the root only if asked."""
        return [p for p in self.members if self.include_parent or p != self.pid]

    def freeze(self, roots: Iterable[int], group: bool) -> None:
        """SIGSTOP ``roots``, their descendants and (``group``) the root's group, until closed."""
        roots = list(roots)
        if group:
            self.group_stopped = True  # first: an interrupt may land right after the killpg
            signal_group(self.pid, signal.SIGSTOP)
        else:
            for r in roots:
                self._stop_new(r, _identity_stat(r))
        deadline = time.monotonic() + FREEZE_LIMIT
        frozen: dict[int, None] = {}  # found by this call, parents first
        while True:
            table = _scan()
            found = self._reachable(table, [*roots, *frozen], group)
            fresh = [p for p in found if p not in self.members]
            for p in fresh:
                self._stop_new(p, table[p])
            frozen.update(dict.fromkeys(found))
            settled = all(table[p].state in _STOPPED | _ENDED or p in self.denied for p in found)
            if (not fresh and settled) or time.monotonic() > deadline:
                return
            # Wait until all are stopped, reading only their own stat files; then one more
            # scan finds any child whose fork was under way when its parent got SIGSTOP.
            self._await_stopped(found, deadline)

    def _await_stopped(self, pids: list[int], deadline: float) -> None:
        pause = POLL_FIRST
        while time.monotonic() < deadline:
            running = []
            for p in pids:
                stat = _identity_stat(p)
                if stat is not None and self._same(p, stat) and stat.state not in _STOPPED | _ENDED:
                    running.append(p)
            running = [p for p in running if p not in self.denied]
            if not running:
                return
            for p in running:  # not there yet; or resumed by an orphaned group's SIGCONT
                self._send(p, signal.SIGSTOP)
            time.sleep(pause)
            pause = min(pause * 2, POLL_MAX)

    def _reachable(self, table: dict[int, _Stat], starts: list[int], group: bool) -> list[int]:
        """Live processes reachable from ``starts`` (and the root's group): parents first.

        A start is followed only while it is the process first seen under its pid.
        """
        children: dict[int, list[int]] = {}
        for p, st in table.items():
            children.setdefault(st.ppid, []).append(p)
        queue = list(dict.fromkeys(p for p in starts if p in table and self._same(p, table[p])))
        seen = set(queue)
        if group:
            queue += [p for p, st in table.items() if st.pgid == self.pid and p not in seen]
            seen.update(queue)
        i = 0
        while i < len(queue):
            for child in children.get(queue[i], ()):
                if child not in seen:
                    seen.add(child)
                    queue.append(child)
            i += 1
        return [p for p in queue if p != self.me]

    def _same(self, pid: int, stat: _Stat) -> bool:
        first = self.members.get(pid)
        return first is None or first.start == stat.start

    def _stop_new(self, pid: int, stat: _Stat | None) -> None:
        if stat is None or pid == self.me:
            return
        self.members[pid] = stat
        if stat.state not in _ENDED:
            self._send(pid, signal.SIGSTOP)

    def send(self, pids: Iterable[int], sig: int) -> None:
        for p in pids:
            self._send(p, sig)

    def _send(self, pid: int, sig: int) -> None:
        if pid == self.me:
            return
        try:
            os.kill(pid, sig)
        except ProcessLookupError:
            pass
        except PermissionError:
            self.denied.add(pid)

    def wait(self, pids: Iterable[int], timeout: float) -> set[int]:
        """The ``pids`` that ended within ``timeout`` (a zombie has ended)."""
        pending = set(pids)
        ended: set[int] = set()
        deadline = time.monotonic() + timeout
        pause = POLL_FIRST
        while True:
            for p in list(pending):
                if self._has_ended(p):
                    pending.discard(p)
                    ended.add(p)
            if not pending or time.monotonic() >= deadline:
                return ended
            time.sleep(min(pause, max(0.0, deadline - time.monotonic())))
            pause = min(pause * 2, POLL_MAX)

    def _has_ended(self, pid: int) -> bool:
        stat = _identity_stat(pid)
        first = self.members.get(pid)
        if stat is None or (first is not None and stat.start != first.start):
            return True
        return stat.state in _ENDED

    def reap_adopted(self, pids: Iterable[int]) -> None:
        """Reap the ended ``pids`` that a subreaper caller adopted during the call, by pid.

        Not a child the caller started itself (first seen with the caller as
        parent): its status belongs to whoever started it (subprocess,
        multiprocessing). Called once all have ended, when re-parenting is over.
        """
        for pid in pids:
            first, now = self.members.get(pid), _identity_stat(pid)
            if first is None or now is None or now.start != first.start:
                continue
            if now.ppid == self.me and first.ppid != self.me and now.state in _ENDED:
                try:
                    os.waitpid(pid, os.WNOHANG)
                except ChildProcessError:
                    pass

    def thaw(self) -> None:
        """SIGCONT every member (and the group, if it was stopped whole): kill_tree failed midway."""
        if self.group_stopped:
            signal_group(self.pid, signal.SIGCONT)
        try:
            table: dict[int, _Stat] | None = _scan()
        except OSError:  # what failed may fail again (EMFILE): rather resume unchecked than not at all
            table = None
        for pid, first in self.members.items():
            now = table.get(pid) if table is not None else first
            if now is not None and now.start == first.start:  # not a process that took an ended member's pid
                self._send(pid, signal.SIGCONT)

    def escalate(self, survivors: list[int]) -> set[int]:
        """Freeze the survivors with the children they made meanwhile; SIGKILL them. Returns who got it."""
        before = set(self.members)
        self.freeze(roots=survivors, group=self.own_group and self.include_parent)
        born = {p for p in self.members if p not in before and self.members[p].state not in _ENDED}
        doomed = [p for p in self.targets() if p in born or p in survivors]
        self.send(doomed, signal.SIGKILL)
        return set(doomed)


def signal_group(pgid: int, sig: int) -> None:
    """Send ``sig`` to process group ``pgid``; a group that is gone (or not ours) is no error.

    Refused before any signal (TypeError / ValueError): a ``pgid`` that is not an
    int (a bool is not), below 2 (``killpg(0)`` is the caller's own group,
    ``killpg(1)`` is ``kill(-1)``: every process the caller may signal) or the
    caller's own group, and a ``sig`` not in ``signal.valid_signals()``.
    """
    _check_group(pgid)
    _check_signal(sig, ending=False)
    try:
        os.killpg(pgid, sig)
    except (ProcessLookupError, PermissionError):
        pass


def _group_exists(pgid: int) -> bool:
    try:
        os.killpg(pgid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


def _signal_name(sig: int) -> str:
    try:
        return signal.Signals(sig).name
    except ValueError:
        return f"signal {sig}"

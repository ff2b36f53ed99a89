"""The guardian: when ``forklift run`` dies without cleaning up, its jobs die too.

Each job runs in its own session (so a timeout can kill its whole process
group), which also means nothing kills it when forklift itself is SIGKILLed:
the kernel re-parents it to PID 1 and it runs on. So at start-up forklift forks
a small guardian holding the read end of a pipe. On a clean exit forklift writes
one byte and the guardian leaves. If the pipe reaches EOF without that byte,
forklift died: the guardian finds every process carrying this run's
``FORKLIFT_RUN_ID`` in its environment (jobs, their children, and anything that
called setsid or daemonized, since the environment is inherited), sends SIGTERM
to them and their process groups, and SIGKILLs what is left after a grace period.

The marker costs nothing per job (it is part of the job's environment anyway)
and, unlike a list of pids sent to the guardian, cannot miss a child forked
while forklift was being killed.
"""

from __future__ import annotations

import os
import re
import signal
import time
import warnings

__all__ = ["MARKER", "Guardian"]

MARKER = "FORKLIFT_RUN_ID"
GRACE = 1.0  # seconds between SIGTERM and SIGKILL, as in a polite shutdown
QUIET = 3.0  # seconds without a marked process before the guardian of a dead run leaves
SWEEP_FOR = 60.0  # the most seconds it keeps sweeping

# From Python 3.12 os.fork() in a process with threads warns that the child may deadlock on
# a lock another thread held (the caller may run threads: tests, a library use, forklift's
# own pool scheduler). The guardian child takes no such lock: it reads its pipe, scans /proc
# and sends signals, then os._exit()s. So this one fork's warning is silenced, by a filter
# that matches only warnings raised from this module; every other fork still warns.
warnings.filterwarnings(
    "ignore",
    message=r"This process \(pid=\d+\) is multi-threaded, use of fork\(\) may lead to deadlocks",
    category=DeprecationWarning,
    module=re.escape(__name__) + r"\Z",
)


class Guardian:
    """Fork the guardian process; ``release()`` on a clean exit."""

    def __init__(self, run_id: str) -> None:
        self.run_id = run_id
        read_end, self._write_end = os.pipe()  # both close-on-exec: jobs never hold them
        pid = os.fork()
        if pid == 0:  # pragma: no cover - runs in the forked child
            os.close(self._write_end)
            _guard(read_end, run_id)
        os.close(read_end)
        self.pid = pid

    def release(self) -> None:
        """Tell the guardian all jobs are accounted for, and let it go."""
        try:
            os.write(self._write_end, b"x")
        except OSError:
            pass
        os.close(self._write_end)
        try:
            os.waitpid(self.pid, 0)
        except ChildProcessError:
            pass


def _guard(read_end: int, run_id: str) -> None:  # pragma: no cover - runs in the forked child
    for sig in (signal.SIGINT, signal.SIGTERM, signal.SIGHUP, signal.SIGQUIT, signal.SIGPIPE):
        signal.signal(sig, signal.SIG_IGN)
    os.closerange(3, read_end)
    os.closerange(read_end + 1, 1 << 16)
    try:
        data = os.read(read_end, 1)
    except OSError:
        data = b""
    if not data:
        _sweep_until_quiet(run_id)
    os._exit(0)


def _sweep_until_quiet(run_id: str) -> None:  # pragma: no cover - runs in the forked child
    """Sweep, and again, until no marked process has shown up for QUIET seconds (at most SWEEP_FOR).

    One sweep was not enough with ``--cluster local``: the cluster's worker outlives forklift by
    a moment (its PDEATHSIG comes through its launcher) and started the next queued job after
    the sweep; that job then ran on, orphaned (seen once in a full test run on a loaded machine).
    """
    began = quiet_since = time.monotonic()
    while True:
        if sweep(run_id):
            quiet_since = time.monotonic()
        now = time.monotonic()
        if now - quiet_since >= QUIET or now - began >= SWEEP_FOR:
            return
        time.sleep(0.05)


def sweep(run_id: str, grace: float = GRACE) -> int:
    """TERM, then KILL, every process marked with ``run_id``; return how many were found."""
    marked = find_marked(run_id)
    if not marked:
        return 0
    for pid in marked:
        for kill in (os.kill, os.killpg):
            try:
                kill(pid, signal.SIGTERM)
            except OSError:
                pass
    deadline = time.monotonic() + grace
    while time.monotonic() < deadline and find_marked(run_id, live_only=True):
        time.sleep(0.02)
    for _ in range(50):  # re-scan: a process may fork while it is being killed
        left = find_marked(run_id, live_only=True)
        if not left:
            break
        for pid in left:
            try:
                os.kill(pid, signal.SIGKILL)
            except OSError:
                pass
        time.sleep(0.01)
    return len(marked)


def find_marked(run_id: str, *, live_only: bool = False) -> list[int]:
    """Pids whose environment holds ``FORKLIFT_RUN_ID=run_id`` (zombies left out if ``live_only``)."""
    from ..trees import find_marked  # here: forklift run's start-up does not load trees

    return find_marked(MARKER, run_id, live_only=live_only)

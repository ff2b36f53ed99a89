"""The watcher: a process that ends the workers of a pool whose process was killed.

The three guards in worker.py all run Python in the worker (a signal handler, the
reader thread), so none can act while the worker's main thread holds the GIL in C
code (``sum(range(10**10))``, a runaway regular expression): the worker, and what
its task started, then outlive a SIGKILLed parent for as long as that call runs --
possibly for ever (measured: 6 of 6 such runs left both workers alive).

So once a pool has had a task run for ``WATCH_AFTER`` seconds (short tasks never
pay for it), this module starts one small watcher process per forklift process,
shared by all its pools. The pool tells it each worker's pid and start time over
a pipe (``+ pid start`` / ``- pid``); when the pipe reaches EOF, the pool's
process is gone, and the watcher kills every worker it still knows with
``kill_tree`` (frozen first, daemons included: the workers are subreapers), then
exits. A pid is only killed if it still names the same process. The watcher runs
in its own session (a terminal's Ctrl-C is for the pool's process to handle) and
is exec'd (it holds none of the parent's descriptors).

Messages are written without blocking (a full pipe drops one: the other guards
remain); a fork of the pool's process closes its copy of the pipe and starts a
watcher of its own if it needs one.
"""

from __future__ import annotations

import os
import subprocess
import sys
import threading
from typing import IO

from .._platform import export, has

WATCH_AFTER = 0.25  # seconds a chunk has been out before the process gets a watcher


class _Watcher:
    """The parent's end: start once, then tell the watcher about workers."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._pipe: IO[bytes] | None = None
        self._proc: subprocess.Popen[bytes] | None = None
        self._failed = False

    @property
    def running(self) -> bool:
        return self._pipe is not None

    def start(self, workers: list[tuple[int, int]]) -> None:
        """Start the watcher (if this process has none yet) and tell it about ``workers``."""
        with self._lock:
            if self._pipe is None and not self._failed:
                self._spawn()
        for pid, start in workers:
            self.watch(pid, start)

    def watch(self, pid: int, start: int) -> None:
        self._send(f"+ {pid} {start}\n")

    def forget(self, pid: int) -> None:
        self._send(f"- {pid}\n")

    def _spawn(self) -> None:
        package_root = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
        env = dict(os.environ)
        paths = [package_root]
        export(env)  # the pool's switches (its environment may have changed since it read them)
        if not has("proc"):  # process state through psutil, which -S (no site-packages) hides
            import psutil

            paths.append(os.path.dirname(os.path.dirname(os.path.abspath(psutil.__file__))))
        env["PYTHONPATH"] = os.pathsep.join(p for p in (*paths, env.get("PYTHONPATH")) if p)
        try:
            self._proc = subprocess.Popen(
                [sys.executable, "-S", "-c", "from forklift._engine.watch import main; main()"],
                stdin=subprocess.PIPE,
                stdout=subprocess.DEVNULL,
                env=env,
                close_fds=True,
                start_new_session=True,
            )
        except (OSError, ValueError):
            self._failed = True  # no interpreter to run (embedded Python): the other guards remain
            return
        assert self._proc.stdin is not None
        os.set_blocking(self._proc.stdin.fileno(), False)
        self._pipe = self._proc.stdin

    def _send(self, line: str) -> None:
        pipe = self._pipe
        if pipe is None:
            return
        with self._lock:
            try:
                os.write(pipe.fileno(), line.encode())
            except (BlockingIOError, OSError, ValueError):
                pass  # full (never in practice) or gone: the other guards remain

    def forget_in_child(self) -> None:
        """In a fork of this process: drop the parent's watcher (without waiting for it)."""
        self._lock = threading.Lock()
        if self._pipe is not None:
            try:
                os.close(self._pipe.fileno())
            except OSError:
                pass
        self._pipe = None
        self._proc = None
        self._failed = False


watcher = _Watcher()
os.register_at_fork(after_in_child=watcher.forget_in_child)


def main() -> None:  # pragma: no cover - runs in the watcher process (tested through a pool)
    """The watcher process: read ``+``/``-`` lines until EOF, then kill who is left."""
    import signal

    for sig in (signal.SIGINT, signal.SIGHUP, signal.SIGPIPE, signal.SIGQUIT):
        signal.signal(sig, signal.SIG_IGN)
    workers: dict[int, int] = {}
    for line in sys.stdin.buffer:
        kind, pid, *rest = line.split()
        if kind == b"+":
            workers[int(pid)] = int(rest[0])
        else:
            workers.pop(int(pid), None)
    if workers:
        _end(workers)


def _end(workers: dict[int, int]) -> None:  # pragma: no cover - runs in the watcher process
    from ..trees import kill_tree
    from .forks import process_start

    for pid, start in workers.items():
        if process_start(pid) != start:
            continue  # it ended; the pid may be another process's now
        try:
            kill_tree(pid, sig=9, timeout=0)
        except (OSError, ValueError):
            pass

"""Task functions for ``benchmarks/reliability.py``.

They live in their own importable module so that workers started by spawn or
forkserver (and libraries that pickle functions by reference) can import them.
Every task takes one argument, because the libraries disagree on how to pass
several (mpire unpacks tuples, pebble and joblib do not).

Tasks that must be found later by the harness append their pid to the file
named by ``RELIABILITY_PIDFILE`` (one pid a line, appended atomically); the
daemons of scenario 9 and the fork of scenario 8 write to the same name with a
suffix, so that the harness tells them from the workers.
"""

from __future__ import annotations

import os
import signal
import threading
import time

PIDFILE_ENV = "RELIABILITY_PIDFILE"

FAULTY_ITEM = {"worker_killed": 7, "task_raises": 3, "unpicklable_result": 2}


DAEMONS = ".daemons"  # pid file suffix: the daemons started by tasks (scenario 9)
SURVIVOR = ".survivor"  # pid file suffix: the caller's fork that outlives it (scenario 8)


def record_pid(suffix: str = "") -> None:
    """Append this process's pid to the run's pid file (or to its ``suffix`` variant)."""
    path = os.environ.get(PIDFILE_ENV)
    if path:
        fd = os.open(path + suffix, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o644)
        try:
            os.write(fd, f"{os.getpid()}\n".encode())
        finally:
            os.close(fd)


def square(x: int) -> int:
    """What every task returns for an item that is not the faulty one."""
    return x * x


def square_and_pid(x: int) -> tuple[int, int]:
    """For the "is the pool still usable" check: which worker served it, too."""
    time.sleep(0.1)
    return x * x, os.getpid()


def die_on_7(x: int) -> int:
    """A 50 ms task whose worker is SIGKILLed on item 7 (as the OOM killer would)."""
    time.sleep(0.05)
    if x == FAULTY_ITEM["worker_killed"]:
        os.kill(os.getpid(), signal.SIGKILL)
    return x * x


def sleep_forever(x: int) -> int:
    record_pid()
    time.sleep(3600)
    return x


def fail_on_3(x: int) -> int:
    if x == FAULTY_ITEM["task_raises"]:
        raise ValueError(f"boom on item {x}")
    return x * x


def lock_on_2(x: int) -> object:
    """Returns an object that cannot be pickled for item 2."""
    if x == FAULTY_ITEM["unpicklable_result"]:
        return threading.Lock()
    return x * x


def sleep_recorded(seconds: float) -> float:
    record_pid()
    time.sleep(seconds)
    return seconds


def daemonize_and_sleep(seconds: float) -> float:
    """Start a daemon the classic way, then sleep: fork, setsid, fork; the middle process exits.

    The daemon records its pid (with the ``DAEMONS`` suffix) and sleeps an hour. It keeps
    the descriptors it inherited (it closes none, as a careless daemon does).
    """
    record_pid()
    middle = os.fork()
    if middle == 0:
        try:
            os.setsid()
            if os.fork() == 0:
                record_pid(DAEMONS)
                time.sleep(3600)
        finally:
            os._exit(0)
    os.waitpid(middle, 0)
    time.sleep(seconds)
    return seconds


def hang_in_initializer() -> None:
    """A worker initializer that never returns (scenario 11); records the worker's pid."""
    record_pid()
    time.sleep(3600)

"""The exit watch: a process that cannot exit because a Queue it put into is unread says so.

Process lifecycle support for pool workers (``_engine/worker.py``) and
``forklift.Process`` (``process.py``): it reads the stdlib queue feeder's private
arguments (see :func:`watch_exit`) and imports nothing of forklift's.
"""

from __future__ import annotations

import collections
import os
import select
import threading
import time
from typing import Any


def watch_exit(who: str, grace: float) -> None:
    """Call when this process has done its work: if ``grace`` s later a queue still holds
    items it could not write, say so on stderr.

    A process that put items into a Queue cannot exit before they are all in the
    pipe (the stdlib's rule, kept: dropping them would lose work), so with nobody
    reading, ``Pool.join()`` or ``Process.join()`` waits forever. A daemon thread
    checks (:func:`_watch`), prints one line naming the cause, and dies with the
    process; the exit still waits.
    """
    if not 0 < grace < 10**6:  # FORKLIFT_FLUSH_WARNING=0 (or inf) turns the warning off
        return
    threading.Thread(target=_watch, args=(who, grace), name="forklift-exit-watch", daemon=True).start()


def _watch(who: str, grace: float) -> None:
    """Stuck means no progress: the same feeders holding as many items, a pipe full, on two
    looks a while apart. A slow reader takes items meanwhile; an absent one does not. Looked
    at again and again: a queue the exit closes later (after threads the target left
    running) shows its stuck feeder only then."""
    began = time.monotonic()
    time.sleep(grace)
    pause = min(grace, 2.0)
    before = _stuck_feeders()
    while True:
        time.sleep(pause)
        now = _stuck_feeders()
        if now and now == before:
            break
        before = now
    try:
        os.write(
            2,
            f"forklift: {who} (pid {os.getpid()}) has finished but cannot exit: items it put "
            f"into a Queue are still unread after {time.monotonic() - began:.0f} s, and it waits "
            "until they are. Read the queue before join() (multiprocessing's rule).\n".encode(),
        )
    except OSError:  # no stderr to say it on
        pass


def _stuck_feeders() -> dict[int | None, int]:
    """``{thread id: items held}`` of the queue feeder threads blocked on a full pipe."""
    return {t.ident: n for t in threading.enumerate() if t.name == "QueueFeederThread" and (n := _held(t))}


def _held(thread: threading.Thread) -> int:
    """Items a feeder holds while its pipe is full (0: it is not stuck on a write).

    Each queue's feeder thread writes from a buffer (the first argument of the stdlib's
    ``Queue._feed``, kept by Thread as ``_args``) into the pipe (the third, its
    ``send_bytes``). An alive feeder with an empty buffer only waits for items, or for
    the exit to close its queue.
    """
    args: tuple[Any, ...] = getattr(thread, "_args", ())
    if len(args) < 3 or not thread.is_alive():
        return 0
    buffer, send_bytes = args[0], args[2]
    if not isinstance(buffer, collections.deque) or not buffer:
        return 0
    try:
        poll = select.poll()
        poll.register(send_bytes.__self__.fileno(), select.POLLOUT)
        return 0 if poll.poll(0) else len(buffer)
    except (AttributeError, OSError, ValueError):
        return 0  # not a stdlib feeder as we know it: say nothing rather than guess

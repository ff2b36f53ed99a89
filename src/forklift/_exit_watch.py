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
    reading, ``Pool.join()`` or ``Process.join()`` waits forever. Each queue's
    feeder thread writes from a buffer (the first argument of ``Queue._feed``) into
    the pipe (the third, its ``send_bytes``). A feeder with a full pipe and as many
    items in its buffer on two looks up to 2 s apart, ``grace`` s or more after the
    work ended, is blocked in a write nobody reads. (An alive feeder with an empty buffer is only
    waiting for more items until the exit closes its queue.) A daemon thread
    checks, prints one line naming the cause, and dies with the process; the exit
    still waits.
    """
    if not 0 < grace < 10**6:  # FORKLIFT_FLUSH_WARNING=0 (or inf) turns the warning off
        return

    def waiting(thread: threading.Thread) -> int:
        """Items a feeder holds while its pipe is full (0: it is not stuck on a write)."""
        args: tuple[Any, ...] = getattr(thread, "_args", ())  # Thread keeps _feed's arguments here
        if len(args) < 3 or not thread.is_alive():
            return 0
        buffer, send_bytes = args[0], args[2]
        if not isinstance(buffer, collections.deque) or not buffer:
            return 0  # empty: it only waits for items, or for the exit to close it
        try:
            poll = select.poll()
            poll.register(send_bytes.__self__.fileno(), select.POLLOUT)
            return 0 if poll.poll(0) else len(buffer)
        except (AttributeError, OSError, ValueError):
            return 0  # not a stdlib feeder as we know it: say nothing rather than guess

    def stuck() -> dict[int | None, int]:
        return {
            t.ident: n for t in threading.enumerate() if t.name == "QueueFeederThread" and (n := waiting(t))
        }

    def watch() -> None:
        began = time.monotonic()
        time.sleep(grace)
        # Stuck means no progress: the same feeders holding as many items, a pipe full, on
        # two looks a while apart. A slow reader takes items meanwhile; an absent one does
        # not. Looked at again and again: a queue the exit closes later (after threads the
        # target left running) shows its stuck feeder only then.
        pause = min(grace, 2.0)
        before = stuck()
        while True:
            time.sleep(pause)
            now = stuck()
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

    threading.Thread(target=watch, name="forklift-exit-watch", daemon=True).start()

"""Loaded by the worker processes of forklift's embedded LocalCluster (Dask's ``preload``).

Ctrl-C in a terminal sends SIGINT to the whole foreground process group, so the
local cluster's worker processes got it too and died with pages of tracebacks,
while the forklift process was still shutting them down in order (and asking
them to stop the jobs they run). They ignore it, as forklift's own pool workers
do; the process that made the cluster stops them.

Ignored with a handler that does nothing, not with SIG_IGN: an ignored signal
stays ignored across fork and exec, so every job and subprocess a task started
would ignore Ctrl-C too, while a caught one is reset to the default by exec.

Also, a heartbeat that was in flight when the worker began to close fails
("Failed to communicate with scheduler during heartbeat ... ConnectionPool
closing") and Dask logs it at ERROR with three chained tracebacks, on the
user's stderr, after a clean shutdown (seen in 1 of ~10 runs of
examples/distributed_master.py). That one message is dropped while the worker
is closing; at any other time it still shows.
"""

from __future__ import annotations

import logging
import signal
import threading
from typing import Any


def dask_setup(worker: Any) -> None:
    if threading.current_thread() is threading.main_thread():
        signal.signal(signal.SIGINT, _ignore)
    logging.getLogger("distributed.worker").addFilter(_HeartbeatWhileClosing(worker))


class _HeartbeatWhileClosing(logging.Filter):
    """Drop the heartbeat failure Dask logs when the heartbeat raced the worker's own close."""

    def __init__(self, worker: Any) -> None:
        super().__init__()
        self.worker = worker

    def filter(self, record: logging.LogRecord) -> bool:
        closing = getattr(getattr(self.worker, "status", None), "name", "") in _CLOSING
        return not (closing and record.getMessage().startswith("Failed to communicate with scheduler"))


_CLOSING = {"closing", "closing_gracefully", "closed", "failed"}


def _ignore(signum: int, frame: Any) -> None:
    """SIGINT in a local cluster's worker: nothing (see the module's docstring)."""

"""Loaded by the worker processes of forklift's embedded LocalCluster (Dask's ``preload``).

Ctrl-C in a terminal sends SIGINT to the whole foreground process group, so the
local cluster's worker processes got it too and died with pages of tracebacks,
while the forklift process was still shutting them down in order (and asking
them to stop the jobs they run). They ignore it, as forklift's own pool workers
do; the process that made the cluster stops them.

Ignored with a handler that does nothing, not with SIG_IGN: an ignored signal
stays ignored across fork and exec, so every job and subprocess a task started
would ignore Ctrl-C too, while a caught one is reset to the default by exec.
"""

from __future__ import annotations

import signal
import threading
from typing import Any


def dask_setup(worker: Any) -> None:
    if threading.current_thread() is threading.main_thread():
        signal.signal(signal.SIGINT, _ignore)


def _ignore(signum: int, frame: Any) -> None:
    """SIGINT in a local cluster's worker: nothing (see the module's docstring)."""

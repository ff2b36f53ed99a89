"""Loaded by the worker processes of forklift's embedded LocalCluster (Dask's ``preload``).

Ctrl-C in a terminal sends SIGINT to the whole foreground process group, so the
local cluster's worker processes got it too and died with pages of tracebacks,
while the forklift process was still shutting them down in order (and asking
them to stop the jobs they run). They ignore it, as forklift's own pool workers
do; the process that made the cluster stops them.
"""

from __future__ import annotations

import signal
import threading
from typing import Any


def dask_setup(worker: Any) -> None:
    if threading.current_thread() is threading.main_thread():
        signal.signal(signal.SIGINT, signal.SIG_IGN)

"""The slot: a few int64s shared by the parent and one worker (see protocol.py).

A memfd mapped on both sides: it costs microseconds to make, where
multiprocessing's RawArray costs ~14 ms the first time (ctypes, a heap arena
in a temporary file). Under fork the child inherits the mapping; under spawn
and forkserver the descriptor travels with the Process arguments
(``reduction.DupFd``) and the child maps it again. Without memfd, an unlinked
file serves the same way (``memfd.anonymous_fd``).
"""

from __future__ import annotations

import mmap
import os
from multiprocessing import reduction
from typing import Any

from .._primitives.memfd import anonymous_fd
from . import protocol

_NBYTES = 8 * protocol.SLOT_SIZE


class Slot:
    """Shared int64 cells; ``view`` is a memoryview of format 'q'."""

    def __init__(self) -> None:
        self._fd = anonymous_fd("forklift-slot", _NBYTES)
        self.view = memoryview(mmap.mmap(self._fd, _NBYTES)).cast("B").cast("q")

    def started(self) -> None:
        """The worker has its own copy of the descriptor now; drop ours (the mapping stays)."""
        if self._fd >= 0:
            os.close(self._fd)
            self._fd = -1

    def __reduce__(self) -> Any:
        return (_attach, (reduction.DupFd(self._fd),))


def _attach(dupfd: Any) -> memoryview:
    fd = dupfd.detach()
    try:
        return memoryview(mmap.mmap(fd, _NBYTES)).cast("B").cast("q")
    finally:
        os.close(fd)


def view_of(slot: Slot | memoryview) -> memoryview:
    """The worker's view: under fork it receives the Slot itself, else a view."""
    return slot.view if isinstance(slot, Slot) else slot

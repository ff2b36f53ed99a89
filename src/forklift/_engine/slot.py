"""The slot: a few int64s shared by the parent and one worker (see protocol.py).

A memfd mapped on both sides: it costs microseconds to make, where
multiprocessing's RawArray costs ~14 ms the first time (ctypes, a heap arena
in a temporary file). Under fork the child inherits the mapping; under spawn
and forkserver the descriptor travels with the Process arguments
(``reduction.DupFd``) and the child maps it again. Without memfd (not Linux)
a RawArray serves.
"""

from __future__ import annotations

import mmap
import os
from multiprocessing import reduction
from typing import Any

from . import protocol

_NBYTES = 8 * protocol.SLOT_SIZE


class Slot:
    """Shared int64 cells; ``view`` is a memoryview of format 'q'."""

    def __init__(self, ctx: Any) -> None:
        self._fd = -1
        if hasattr(os, "memfd_create"):
            self._fd = os.memfd_create("forklift-slot", os.MFD_CLOEXEC)
            os.ftruncate(self._fd, _NBYTES)
            self._buffer: Any = mmap.mmap(self._fd, _NBYTES)
        else:  # pragma: no cover - not Linux
            self._buffer = ctx.RawArray("q", protocol.SLOT_SIZE)
        self.view = memoryview(self._buffer).cast("B").cast("q")

    def started(self) -> None:
        """The worker has its own copy of the descriptor now; drop ours (the mapping stays)."""
        if self._fd >= 0:
            os.close(self._fd)
            self._fd = -1

    def __reduce__(self) -> Any:
        if self._fd < 0:
            return (_from_buffer, (self._buffer,))  # RawArray: multiprocessing passes it
        return (_attach, (reduction.DupFd(self._fd),))


def _attach(dupfd: Any) -> memoryview:
    fd = dupfd.detach()
    try:
        return memoryview(mmap.mmap(fd, _NBYTES)).cast("B").cast("q")
    finally:
        os.close(fd)


def _from_buffer(buffer: Any) -> memoryview:  # pragma: no cover - not Linux
    return memoryview(buffer).cast("B").cast("q")


def view_of(slot: Slot | memoryview) -> memoryview:
    """The worker's view: under fork it receives the Slot itself, else a view."""
    return slot.view if isinstance(slot, Slot) else slot

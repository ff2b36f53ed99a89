"""Pipe() whose Connection ends pickle at any time.

A duplex Pipe is a socketpair, which ``/proc`` cannot re-open, so a
Connection travels as multiprocessing's ForkingPickler sends one: its
descriptor duplicated for the receiver (``reduction.DupFd``). While a process
is being started that rides along with the start; otherwise the sender's
``resource_sharer`` thread hands it over a Unix socket. Plain ``pickle``
(which the pools use) copies a stdlib Connection's descriptor *number*
instead, silently wrong in the receiver; these Connections carry their own
``__reduce__``.

Limit: each pickled copy hands the end over once. The receiver then owns a
descriptor of its own; unpickling the same bytes twice fails, and a copy
never unpickled keeps its duplicate open in the sender until it exits.
"""

from __future__ import annotations

import os
import socket
from multiprocessing import connection, reduction
from typing import TYPE_CHECKING, Any

from ..errors import SharingError

if TYPE_CHECKING:
    _Connection = connection.Connection[Any, Any]
else:  # not subscriptable at run time
    _Connection = connection.Connection


class PipeConnection(_Connection):
    """A multiprocessing Connection that can also be passed to Pool and Executor tasks (once per pickle)."""

    def __reduce__(self) -> tuple[Any, ...]:
        return (_receive, (reduction.DupFd(self.fileno()), self.readable, self.writable))


def _receive(dup: Any, readable: bool, writable: bool) -> PipeConnection:
    try:
        fd = dup.detach()
    except (OSError, EOFError) as exc:
        raise SharingError(
            f"cannot receive a Connection: its sender exited, or these pickled bytes were already "
            f"received once ({type(exc).__name__}: {exc})"
        ) from exc
    return PipeConnection(fd, readable, writable)


def Pipe(duplex: bool = True) -> tuple[PipeConnection, PipeConnection]:
    """A pair of connected Connections, as multiprocessing.Pipe (Unix): a socketpair, or a pipe one way."""
    if duplex:
        s1, s2 = socket.socketpair()
        s1.setblocking(True)
        s2.setblocking(True)
        return PipeConnection(s1.detach()), PipeConnection(s2.detach())
    r, w = os.pipe()
    return PipeConnection(r, writable=False), PipeConnection(w, readable=False)

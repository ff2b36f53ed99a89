"""Share a pipe or memfd descriptor with any process of the same user, at any time.

multiprocessing passes descriptors only while it is starting a process
(``assert_spawning``), which is why the stdlib refuses a Queue or a Lock as a
Pool task's argument. forklift's shared objects instead pickle a *token*
``(pid, fd, inode)`` naming a descriptor their owner keeps open; the receiver
opens ``/proc/<pid>/fd/<fd>`` (which gives it the same pipe or memory file)
and checks the inode, so a descriptor number the owner closed and reused is
never mistaken for the original.

This needs the owner alive and the receiver allowed to read the owner's
``/proc`` entries (same user, the default on Linux). It works for pipes,
FIFOs and memfds, not for sockets (``/proc`` refuses them). A token can be
opened any number of times, by any number of processes, unlike the stdlib's
one-shot ``resource_sharer``.

Without ``/proc`` (``FORKLIFT_WITHOUT=proc``; not Linux) a token pickled while
a process starts (a Process's arguments under spawn or forkserver) carries the
descriptor itself, as the stdlib's queues do (``reduction.DupFd``): the child
receives it with its start and opens the token from it. At any other time the
receiver gets a SharingError saying why.
"""

from __future__ import annotations

import os
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from ..errors import SharingError


Token = tuple[int, int, int]  # (owner pid, descriptor, inode)


def token(fd: int) -> Token:
    """The token naming ``fd`` of this process."""
    return _Token((os.getpid(), fd, os.fstat(fd).st_ino))


class _Token(tuple):  # type: ignore[type-arg]
    """A token of this process: pickles as a plain tuple, or with its descriptor (see above)."""

    __slots__ = ()

    def __reduce__(self) -> tuple[Any, ...]:
        return _reduce(self, self[1] if self[0] == os.getpid() else -1)


def _reduce(tok: Token, fd: int) -> tuple[Any, ...]:
    """How a token pickles: with ``fd`` while a process starts without /proc, else as a tuple."""
    if fd >= 0:
        from multiprocessing import context, reduction

        from .._platform import has

        if context.get_spawning_popen() is not None and not has("proc"):
            return (_Received, (tuple(tok), reduction.DupFd(fd)))
    return (tuple, (tuple(tok),))


class _Received(tuple):  # type: ignore[type-arg]
    """A token that came with its descriptor (a process start without /proc); holds it open."""

    fd: int

    def __new__(cls, tok: Token, dupfd: Any) -> _Received:
        obj = super().__new__(cls, tok)
        obj.fd = dupfd.detach()
        return obj

    def __reduce__(self) -> tuple[Any, ...]:  # passed on to a process this one starts
        return _reduce(self, getattr(self, "fd", -1))

    def __del__(self) -> None:
        fd = getattr(self, "fd", -1)
        if fd >= 0:
            os.close(fd)


def open_token(tok: Token, flags: int = os.O_RDWR) -> int:
    """A new descriptor (close-on-exec) for what ``tok`` names; ``flags`` as for ``os.open``.

    Raises :class:`SharingError` with a plain reason when the owner has exited
    or no longer holds that descriptor.
    """
    pid, fd, inode = tok
    if isinstance(tok, _Received):
        new = os.dup(tok.fd)
    elif pid == os.getpid():
        try:
            new = os.dup(fd)
        except OSError:
            raise _error(f"shared object is gone: this process closed descriptor {fd}") from None
    else:
        from .._platform import has, switched_off

        if not has("proc"):
            raise _error(
                f"cannot open a shared object of pid {pid}: forklift shares it through "
                f"/proc/PID/fd, {switched_off('proc')}. Without it, forklift's Queue, Lock, Value "
                "and SharedArray cross only as a process starts (Process arguments); for a "
                "Pool's tasks or initargs (under forkserver or spawn) use a Manager's proxy instead"
            )
        path = f"/proc/{pid}/fd/{fd}"
        try:
            # O_NONBLOCK: opening one end of a pipe must not wait for the other end.
            new = os.open(path, flags | os.O_NONBLOCK | os.O_CLOEXEC)
        except FileNotFoundError:
            raise _error(f"shared object is gone: its owner (pid {pid}) exited or closed it") from None
        except OSError as exc:
            raise _error(f"cannot open shared object of pid {pid} ({path}): {exc}") from exc
        os.set_blocking(new, True)
    if os.fstat(new).st_ino != inode:
        os.close(new)
        raise _error(f"shared object is gone: pid {pid} closed it (descriptor {fd} was reused)")
    return new


def _error(message: str) -> SharingError:
    # Imported here: workers import this module, and forklift.errors pulls in
    # concurrent.futures and multiprocessing (~13 ms) that a worker rarely needs.
    from ..errors import SharingError

    return SharingError(message)

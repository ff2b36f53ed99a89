"""Shared memory segments: a memfd, mapped, named by a ``fd_tokens`` token.

Why memfd and not ``multiprocessing.shared_memory`` (files in /dev/shm):

- nothing to leak: the memory lives as long as someone holds the descriptor
  or a mapping, so a crash (even SIGKILL) frees it. There is no name in
  /dev/shm to unlink, hence no resource_tracker and none of its warnings
  (cpython #82300) or early unlinks;
- not bounded by the size of /dev/shm (64 MB by default in Docker);
- made in microseconds.

Other processes attach through ``/proc/<owner>/fd/<fd>`` (see ``fd_tokens``),
so a segment can be attached only while its owner holds it; after the owner
closes it, existing mappings stay valid and the memory goes with the last one.

Without memfd (a kernel before 3.17, a sandbox that refuses the call, or
``FORKLIFT_WITHOUT=memfd``) :func:`anonymous_fd` falls back to a file unlinked
as soon as it is made, in /dev/shm (memory) or else the temp directory: the
same lifetime (nothing to leak), a few tens of microseconds more to make, and
bounded by that file system's free space, which is reserved up front
(``posix_fallocate``) so that a full /dev/shm raises ENOSPC here instead of
SIGBUS at the first write into the mapping.
"""

from __future__ import annotations

import errno
import mmap
import os

from . import fd_tokens


def anonymous_fd(name: str, size: int) -> int:
    """A close-on-exec descriptor of ``size`` bytes of shared memory that no name refers to."""
    from .._platform import has

    if has("memfd"):
        try:
            fd = os.memfd_create(name, os.MFD_CLOEXEC)
        except OSError as exc:
            if exc.errno not in (errno.ENOSYS, errno.EPERM):  # no memfd here: the file below
                raise
        else:
            try:
                os.ftruncate(fd, size)
            except BaseException:
                os.close(fd)
                raise
            return fd
    shm = _fallback_dir()
    try:
        return _unlinked_file(name, size, shm)
    except OSError as exc:
        if shm is None or exc.errno not in (errno.ENOSPC, errno.EDQUOT, errno.EFBIG):
            raise
        return _unlinked_file(name, size, None)  # /dev/shm is full (64 MB in Docker): the temp dir


def _unlinked_file(name: str, size: int, directory: str | None) -> int:
    """An unlinked file of ``size`` bytes in ``directory`` (None: the temp dir)."""
    import tempfile  # here: ~2 ms of imports a worker with memfd never needs

    fd, path = tempfile.mkstemp(prefix=f"{name}-", dir=directory)
    try:
        os.unlink(path)
        try:
            os.posix_fallocate(fd, 0, size)  # ENOSPC now, not SIGBUS at the first write
        except AttributeError:  # no posix_fallocate (macOS)
            os.ftruncate(fd, size)
        except OSError as exc:
            if exc.errno not in (errno.EOPNOTSUPP, errno.EINVAL):  # size 0, or a file system without it
                raise
            os.ftruncate(fd, size)
    except BaseException:
        os.close(fd)
        raise
    return fd


def _fallback_dir() -> str | None:
    """/dev/shm if this process may write there (memory, as a memfd), else None (the temp dir)."""
    return "/dev/shm" if os.access("/dev/shm", os.W_OK | os.X_OK) else None


class Segment:
    """A block of shared memory owned by this process."""

    __slots__ = ("__weakref__", "fd", "kept", "map", "memo", "size", "token", "users")

    def __init__(self, size: int, name: str = "forklift") -> None:
        self.fd = -1  # until memfd_create succeeds: __del__ then has nothing to close
        self.size = size
        # For the engine's reuse of argument segments (see _engine/bulk.py):
        self.users = 0  # chunks that carry it and have not answered yet
        self.memo = False  # a job may send it again for the same array
        self.kept = False  # some task kept a view of it: never reuse
        from .._platform import require_linux

        # Shared with other processes by a /proc token (fd_tokens): Linux only.
        require_linux("forklift's shared memory", "/proc/PID/fd to share it")
        self.fd = anonymous_fd(name, max(size, 1))
        try:
            self.map = mmap.mmap(self.fd, max(size, 1))
        except BaseException:
            fd, self.fd = self.fd, -1  # so that __del__ does not close the number again
            os.close(fd)
            raise
        self.token = fd_tokens.token(self.fd)

    def close(self) -> None:
        """Give up ownership: no new process can attach; mappings stay valid."""
        fd, self.fd = self.fd, -1
        if fd >= 0:
            os.close(fd)
            try:
                self.map.close()
            except BufferError:
                pass  # views of it are alive; the mapping goes with the last of them

    def __del__(self) -> None:
        if self.fd >= 0:
            os.close(self.fd)


def attach(token: fd_tokens.Token, size: int, *, private: bool = False) -> mmap.mmap:
    """Map another process's segment; ``private``: writes stay in this process."""
    fd = fd_tokens.open_token(token, os.O_RDONLY if private else os.O_RDWR)
    try:
        return mmap.mmap(fd, max(size, 1), access=mmap.ACCESS_COPY if private else mmap.ACCESS_WRITE)
    finally:
        os.close(fd)

"""What both sides of a copy share: the options, the shapes of tasks and results, temp names."""

from __future__ import annotations

import errno
import os
import re
import stat
from typing import Any, NamedTuple

_FATAL = frozenset({errno.ENOSPC, errno.EDQUOT, errno.EROFS})
_STALE_TEMP = re.compile(r"\..+\.forklift-[0-9a-f]{8}\.tmp\Z", re.DOTALL)
_O_DIR = os.O_RDONLY | os.O_DIRECTORY | os.O_CLOEXEC
_O_CREATE = os.O_CREAT | os.O_EXCL | os.O_CLOEXEC
_FILE, _LINK = 0, 1

#: The most files in one batch task, and the most a directory task copies itself before
#: handing the rest of its directory out in batches. More: less per-task overhead
#: (pickling, a round trip); fewer: a finer tail, so the workers finish together.
BATCH_FILES = 256
#: The most bytes in one batch task; a file this big or bigger is a task of its own.
BATCH_BYTES = 8 << 20

# A batch entry: (source name, target name, kind, size, mode, atime_ns, mtime_ns, uid, gid, compare).
# Plain tuples, not NamedTuples: 20,000 of them are pickled per 20,000 small files.
_Entry = tuple[str, str, int, int, int, int, int, int, int, bool]
_Group = tuple[str, str, list[_Entry]]  # (source directory, target directory, entries)
# A task: ("batch", [group, ...]) or ("range", file id, source, temp path, offset, length, last).
_Task = tuple[Any, ...]
# A task's result: (files copied, bytes copied, files found identical, their bytes,
# [(path, message)], fatal message or None).
_Result = tuple[int, int, int, int, list[tuple[str, str]], str | None]


class _Options(NamedTuple):
    """A copy's options, as the side that copies needs them (a NamedTuple: no dataclasses import)."""

    token: str
    follow: bool
    verify: bool
    fsync: bool
    as_root: bool
    #: The umask files are created under: 0 in a worker (its initializer sets it), the
    #: caller's when the parent copies a small tree itself; bits it clears are set back.
    umask: int = 0
    #: Compare contents of same-size targets instead of trusting size and mtime.
    checksum: bool = False
    #: Files of this size or more are handed back to the parent to be cut into ranges.
    split_bytes: int | None = None


def temp_name(name: str, token: str) -> str:
    """The temp name a file is written under before its rename: ``.NAME.forklift-TOKEN.tmp``.

    A long NAME is replaced by a hash of it, so the temp name stays within NAME_MAX.
    """
    if len(name) > 55 and len(os.fsencode(name)) > 220:
        import hashlib

        name = hashlib.blake2b(os.fsencode(name), digest_size=16).hexdigest()
    return f".{name}.forklift-{token}.tmp"


def is_temp_name(name: str) -> bool:
    """Whether ``name`` has the shape of forklift's temp files (so a stale one may be deleted)."""
    return name.endswith(".tmp") and _STALE_TEMP.match(name) is not None


def _unlink_quietly(name: str, dir_fd: int | None = None) -> None:
    try:
        os.unlink(name, dir_fd=dir_fd)
    except OSError:
        pass


def quick_check(target: Any, st: os.stat_result, checksum: bool, as_root: bool) -> str:
    """Compare an existing target (a DirEntry or stat) with its source's stat: rsync's quick check.

    "same" (skip it), "compare" (``checksum``, same size: compare contents) or "copy".
    """
    try:
        tst = target if isinstance(target, os.stat_result) else target.stat(follow_symlinks=False)
    except OSError:
        return "copy"
    if stat.S_IFMT(tst.st_mode) != stat.S_IFMT(st.st_mode) or tst.st_size != st.st_size:
        return "copy"
    if checksum:
        return "compare"
    if (
        tst.st_mtime_ns == st.st_mtime_ns
        and stat.S_IMODE(tst.st_mode) == stat.S_IMODE(st.st_mode)
        and (not as_root or (tst.st_uid, tst.st_gid) == (st.st_uid, st.st_gid))
    ):
        return "same"
    return "copy"


def kind_name(mode: int) -> str:
    """Why a file of this type is not copied."""
    for test, name in (
        (stat.S_ISFIFO, "a FIFO"),
        (stat.S_ISSOCK, "a socket"),
        (stat.S_ISCHR, "a character device"),
        (stat.S_ISBLK, "a block device"),
    ):
        if test(mode):
            return f"{name} (only regular files, directories and symlinks are copied)"
    return "not a regular file, directory or symlink"

"""``forklift.copy_tree``: copy files and directory trees with a pool of worker processes.

Data path::

    parent, main thread                                     workers (forklift.Pool)
    -------------------                                     -----------------------
    _plan       SRC... DST -> [(source, target)], checks
    _Walker     os.scandir + lstat, depth first; mkdir;
                quick check against the target's entries;
                removes stale temp files of earlier runs
                small files + symlinks -> "batch" tasks  ---->  _copy_batch: per file open,
                  (<= BATCH_FILES files, <= BATCH_BYTES)         create temp, copy_file_range,
                big files -> "range" tasks; the parent   ---->   fchown/fchmod, futimens,
                  made their temp file                           rename (dir fds throughout)
    _Run        apply_async, <= IN_FLIGHT tasks per worker;     _copy_range: one slice of a
                results (a queue fed by the pool's callbacks)    big file into its temp
                -> counts, progress, errors;             <----  counts, errors, fatal errno
                finishes big files (times, mode, rename)
    end         directories' owner, mode, times (deepest first)

Invariants:

- No file ever carries its final name before it is complete: data goes to
  ``.NAME.forklift-TOKEN.tmp`` in the target directory (TOKEN: 8 hex digits,
  new per run) and is renamed into place after its data, owner, mode and times.
- The walk streams: a batch goes to the workers as soon as it is full, so
  scanning a large tree never delays the first copy.
- Batches are cut by bytes as well as files, and any file of BATCH_BYTES or
  more travels alone, so no worker is handed every big file.
- Every temp file is removed on every way out except SIGKILL of the parent:
  workers remove their own on errors; after Ctrl-C / SIGTERM the parent kills
  the workers, waits until they are gone, then removes the temp names of the
  tasks that were in flight. After a SIGKILL, the next run deletes names of the
  temp pattern in each target directory it scans.
- ENOSPC, EDQUOT and EROFS stop the whole copy (every further file would fail
  the same way); any other error fails one file, which is reported, and the
  copy goes on.
"""

from __future__ import annotations

import errno
import functools
import itertools
import os
import queue
import re
import stat
import sys
import threading
import time
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from .pool import Pool

__all__ = ["CopyReport", "CopyUsageError", "FileError", "copy_tree"]

# -- tunables ------------------------------------------------------------------------------------
#: The most files in one batch task. More: less per-task overhead (pickling,
#: a round trip); fewer: a finer tail, so both workers finish together.
BATCH_FILES = 256
#: The most bytes in one batch task; a file this big or bigger is a task of its own.
BATCH_BYTES = 8 << 20
#: Files of this size or more are cut into ranges that several workers copy at
#: once (only with 2 or more workers). On ext4 and tmpfs, parallel writes into
#: one file serialize on its inode lock, so this helps only a copy that would
#: otherwise end with one big file on one worker; see docs/copy.md.
SPLIT_BYTES = 256 << 20
#: The size of each range of a split file.
RANGE_BYTES = 64 << 20
#: Tasks handed to the pool per worker before the parent waits for a result.
#: Bounds the parent's run-ahead (memory, and the temp names to clean after Ctrl-C).
IN_FLIGHT_PER_WORKER = 4
#: Block size when comparing contents (``checksum`` and ``verify``).
COMPARE_BLOCK = 1 << 20

_FATAL = frozenset({errno.ENOSPC, errno.EDQUOT, errno.EROFS})
_NO_COPY_FILE_RANGE = frozenset({errno.EXDEV, errno.EINVAL, errno.ENOSYS, errno.EOPNOTSUPP, errno.EBADF})
_STALE_TEMP = re.compile(r"\..+\.forklift-[0-9a-f]{8}\.tmp\Z", re.DOTALL)
_O_DIR = os.O_RDONLY | os.O_DIRECTORY | os.O_CLOEXEC
_O_CREATE = os.O_CREAT | os.O_EXCL | os.O_CLOEXEC
_FILE, _LINK = 0, 1

# A batch entry: (source name, target name, kind, size, mode, atime_ns, mtime_ns, uid, gid, compare).
# Plain tuples, not NamedTuples: 20,000 of them are pickled per 20,000 small files.
_Entry = tuple[str, str, int, int, int, int, int, int, int, bool]
_Group = tuple[str, str, list[_Entry]]  # (source directory, target directory, entries)
# A task: ("batch", [group, ...]) or ("range", file id, source, temp path, offset, length, last).
_Task = tuple[Any, ...]
# A task's result: (files copied, bytes copied, files found identical, their bytes,
# [(path, message)], fatal message or None).
_Result = tuple[int, int, int, int, list[tuple[str, str]], str | None]


# -- public types ------------------------------------------------------------------------------
class CopyUsageError(ValueError):
    """The sources or the destination cannot be copied at all (missing SRC, DST inside SRC...).

    Raised before anything is written; the message is one line for the user.
    """


@dataclass(frozen=True)
class FileError:
    """One file or directory that was not copied, and why."""

    path: str
    message: str

    def __str__(self) -> str:
        return f"{self.path}: {self.message}"


@dataclass
class CopyReport:
    """What :func:`copy` did.

    ``files_copied`` counts regular files and symlinks written; ``files_skipped``
    those already up to date in the destination (same size and mtime, or same
    content with ``checksum``). ``errors`` lists what failed; ``stopped`` says
    why the copy stopped early (disk full), else None.
    """

    files_copied: int = 0
    bytes_copied: int = 0
    files_skipped: int = 0
    bytes_skipped: int = 0
    dirs: int = 0
    errors: list[FileError] = field(default_factory=list)
    stopped: str | None = None
    seconds: float = 0.0

    @property
    def ok(self) -> bool:
        """True when everything was copied (or already up to date)."""
        return not self.errors and self.stopped is None

    def summary(self) -> str:
        """One line for humans: counts, sizes, speed, errors."""
        secs = max(self.seconds, 1e-9)
        parts = [
            f"copied {_count(self.files_copied, 'file')} ({_human(self.bytes_copied)})",
            f"skipped {self.files_skipped:,} up to date ({_human(self.bytes_skipped)})",
            f"made {_count(self.dirs, 'directory', 'directories')}",
            _count(len(self.errors), "error"),
        ]
        rate = f"{self.files_copied / secs:,.0f} files/s, {_human(self.bytes_copied / secs)}/s"
        return f"{', '.join(parts)} in {self.seconds:.2f} s ({rate})"


def copy_tree(
    sources: str | os.PathLike[str] | Iterable[str | os.PathLike[str]],
    dst: str | os.PathLike[str],
    *,
    workers: int | None = None,
    follow_symlinks: bool = False,
    checksum: bool = False,
    verify: bool = False,
    fsync: bool = False,
    progress: bool = False,
) -> CopyReport:
    """Copy files and directory trees into ``dst`` with ``workers`` processes (default: CPUs).

    With one directory source, ``dst`` becomes its copy; if ``dst`` exists, it is
    completed or refreshed, never nested (rsync's ``SRC/ DST/``). With one file,
    ``dst`` is the new file, or an existing directory to put it in. With several
    sources, each lands in ``dst/<its name>``; ``dst`` is made if missing.

    Kept: contents, modes, atime/mtime (ns), owner and group when run as root,
    symlinks as symlinks (``follow_symlinks=True`` copies what they point to),
    empty directories. Files whose size and mtime already match are skipped
    (``checksum=True``: whose content matches). ``verify=True`` re-reads each
    new file and compares it with the source before renaming it into place;
    ``fsync=True`` flushes each file (and each directory) to disk first.
    ``progress=True`` draws a bar on stderr.

    Per-file failures are collected in ``CopyReport.errors`` and the copy goes
    on; a full disk stops it (``CopyReport.stopped``) with no temp files left.
    Raises :class:`CopyUsageError` for sources and destinations that cannot be
    copied at all; ``KeyboardInterrupt`` is re-raised after cleaning up.
    """
    started = time.perf_counter()
    srcs = [sources] if isinstance(sources, (str, os.PathLike)) else list(sources)
    pairs = _plan([os.fspath(s) for s in srcs], os.fspath(dst), follow_symlinks)
    nworkers = workers if workers is not None else (os.cpu_count() or 1)
    if nworkers < 1:
        raise CopyUsageError(f"workers must be at least 1, not {nworkers}")
    opts = _Options(
        token=os.urandom(4).hex(),
        follow=follow_symlinks,
        verify=verify,
        fsync=fsync,
        as_root=os.geteuid() == 0,
    )
    report = CopyReport()
    run = _Run(pairs, opts, nworkers, checksum, report, _Display() if progress else None)
    try:
        run.execute()
    finally:
        report.seconds = time.perf_counter() - started
    return report


# -- planning: what goes where, and what is refused --------------------------------------------
@dataclass(frozen=True)
class _Pair:
    source: str
    target: str
    is_dir: bool


def _plan(sources: list[str], dst: str, follow: bool) -> list[_Pair]:
    """Map each source to its target path; refuse what cannot be copied (CopyUsageError)."""
    if not sources:
        raise CopyUsageError("no source given")
    if not dst:
        raise CopyUsageError("no destination given")
    kinds = [_source_kind(s, follow) for s in sources]
    dst_is_dir = os.path.isdir(dst)
    if len(sources) == 1:
        src, is_dir = sources[0], kinds[0]
        if is_dir:
            if os.path.lexists(dst) and not dst_is_dir:
                raise CopyUsageError(f"cannot copy directory '{src}': '{dst}' exists and is not a directory")
            # A DST that is a symlink to a directory: fill the directory it points to (as rsync).
            target = os.path.realpath(dst) if os.path.islink(dst) else dst
        elif dst_is_dir or dst.endswith(os.sep):
            if os.path.lexists(dst.rstrip(os.sep) or os.sep) and not dst_is_dir:
                raise CopyUsageError(f"cannot copy '{src}' into '{dst}': it exists and is not a directory")
            target = os.path.join(dst, _base_name(src))
        else:
            target = dst
        pairs = [_Pair(src, target, is_dir)]
    else:
        if os.path.lexists(dst) and not dst_is_dir:
            raise CopyUsageError(f"'{dst}' is not a directory (needed for several sources)")
        pairs = [_Pair(s, os.path.join(dst, _base_name(s)), k) for s, k in zip(sources, kinds)]
        seen: dict[str, str] = {}
        for p in pairs:
            if p.target in seen:
                raise CopyUsageError(
                    f"'{seen[p.target]}' and '{p.source}' would both be copied to '{p.target}'"
                )
            seen[p.target] = p.source
    for p in pairs:
        _check_not_inside(p)
    _check_parent(dst)
    return pairs


def _source_kind(src: str, follow: bool) -> bool:
    """True for a directory source; CopyUsageError when it does not exist."""
    try:
        st = os.stat(src) if follow else os.lstat(src)
    except OSError as e:
        raise CopyUsageError(f"cannot copy '{src}': {e.strerror}") from None
    return stat.S_ISDIR(st.st_mode)


def _base_name(path: str) -> str:
    name = os.path.basename(os.path.normpath(path))
    if name in ("", ".", ".."):
        name = os.path.basename(os.path.abspath(path))
    return name or "root"


def _check_parent(path: str) -> None:
    parent = os.path.dirname(os.path.abspath(path.rstrip(os.sep) or os.sep))
    if not os.path.isdir(parent):
        raise CopyUsageError(f"cannot create '{path}': directory '{parent}' does not exist")


def _check_not_inside(pair: _Pair) -> None:
    src = os.path.realpath(pair.source)
    target = os.path.realpath(pair.target)
    if src == target:
        raise CopyUsageError(f"'{pair.source}' and '{pair.target}' are the same")
    if pair.is_dir and os.path.commonpath([src, target]) == src:
        raise CopyUsageError(f"cannot copy '{pair.source}' into itself: '{pair.target}' is inside it")


# -- worker side -------------------------------------------------------------------------------
@dataclass(frozen=True)
class _Options:
    token: str
    follow: bool
    verify: bool
    fsync: bool
    as_root: bool


_opts: _Options | None = None


def _init_worker(opts: _Options) -> None:
    """Pool initializer: remember the options; umask 0 so files are created with their exact mode."""
    global _opts
    _opts = opts
    os.umask(0)


def _run_task(task: _Task) -> _Result:
    """The pool's task function: a batch of small files, or one range of a big file."""
    opts = _opts
    assert opts is not None, "worker not initialised"
    if task[0] == "batch":
        return _copy_batch(task[1], opts)
    _, _, src, tmp, offset, length, last = task
    return _copy_range(src, tmp, offset, length, last, opts)


class _StepError(Exception):
    """An OSError with the side it happened on, for the message."""

    def __init__(self, what: str, err: OSError) -> None:
        super().__init__(what, err)
        self.what = what
        self.err = err

    @property
    def message(self) -> str:
        return f"{self.what}: {self.err.strerror or self.err}"


def _copy_batch(groups: list[_Group], opts: _Options) -> _Result:
    copied = nbytes = same = same_bytes = 0
    errors: list[tuple[str, str]] = []
    for src_dir, dst_dir, entries in groups:
        try:
            sfd = os.open(src_dir, _O_DIR)
        except OSError as e:
            errors.extend(
                (os.path.join(src_dir, ent[0]), f"cannot open directory: {e.strerror}") for ent in entries
            )
            continue
        try:
            dfd = os.open(dst_dir, _O_DIR)
        except OSError as e:
            os.close(sfd)
            errors.extend(
                (os.path.join(src_dir, ent[0]), f"cannot open target directory: {e.strerror}")
                for ent in entries
            )
            continue
        try:
            owner = _new_file_owner(dfd, opts)
            for ent in entries:
                try:
                    if ent[9] and _already_same(sfd, dfd, ent, opts):
                        same += 1
                        same_bytes += ent[3]
                    elif ent[2] == _FILE:
                        nbytes += _copy_file(sfd, dfd, ent, opts, owner)
                        copied += 1
                    else:
                        _copy_link(sfd, dfd, ent, opts)
                        copied += 1
                except _StepError as e:
                    if e.err.errno in _FATAL:
                        fatal = f"{e.err.strerror} ({os.path.join(dst_dir, ent[1])})"
                        return copied, nbytes, same, same_bytes, errors, fatal
                    errors.append((os.path.join(src_dir, ent[0]), e.message))
            if opts.fsync:
                try:
                    os.fsync(dfd)
                except OSError as e:  # the files are in place: say so once, do not lose the batch
                    if e.errno in _FATAL:
                        return copied, nbytes, same, same_bytes, errors, f"{e.strerror} ({dst_dir})"
                    errors.append((dst_dir, f"cannot flush the directory: {e.strerror}"))
        finally:
            os.close(sfd)
            os.close(dfd)
    return copied, nbytes, same, same_bytes, errors, None


def _new_file_owner(dfd: int, opts: _Options) -> tuple[int, int] | None:
    """As root, the (uid, gid) a new file in this directory gets, so chown is skipped when it matches."""
    if not opts.as_root or os.fstat(dfd).st_mode & stat.S_ISGID:  # set-group-ID dir: its group
        return None
    return os.geteuid(), os.getegid()


def _copy_file(sfd: int, dfd: int, ent: _Entry, opts: _Options, owner: tuple[int, int] | None) -> int:
    """Copy one regular file: data into a temp file, then owner, mode, times, rename; return its bytes."""
    name, dname, _, size, mode, atime, mtime, uid, gid, _ = ent
    try:
        fi = os.open(
            name,
            os.O_RDONLY | os.O_CLOEXEC | os.O_NONBLOCK | (0 if opts.follow else os.O_NOFOLLOW),
            dir_fd=sfd,
        )
    except OSError as e:
        raise _StepError("cannot open", e) from None
    try:
        tmp = temp_name(dname, opts.token)
        fo = _create(tmp, dfd, mode, opts.verify)
        try:
            done = _copy_data(fi, fo, size)
            if done != size:
                raise _StepError(
                    "changed while being copied",
                    OSError(errno.EIO, f"expected {size:,} bytes, read {done:,}"),
                )
            done += _copy_growth(fi, size, lambda extra: _copy_data(fi, fo, extra))
            # The walk's mtime even on a file that grew: older than the data, so the next run's
            # quick check sees the source's newer mtime and copies it again, never skips it.
            _set_file_meta(fo, mode, atime, mtime, uid, gid, opts.as_root and (uid, gid) != owner)
            if opts.verify:
                _verify(fi, fo, done, opts.fsync)
            elif opts.fsync:
                os.fsync(fo)
        except BaseException:
            os.close(fo)
            _unlink_quietly(tmp, dfd)
            raise
        os.close(fo)
        _rename(tmp, dname, dfd)
    finally:
        os.close(fi)
    return done


def _create(tmp: str, dfd: int, mode: int, readable: bool) -> int:
    flags = _O_CREATE | (os.O_RDWR if readable else os.O_WRONLY)
    try:
        try:
            return os.open(tmp, flags, stat.S_IMODE(mode), dir_fd=dfd)
        except FileExistsError:  # ours: a worker of this run died and its batch runs again
            os.unlink(tmp, dir_fd=dfd)
            return os.open(tmp, flags, stat.S_IMODE(mode), dir_fd=dfd)
    except OSError as e:
        raise _StepError("cannot create in target directory", e) from None


def _copy_data(fi: int, fo: int, size: int) -> int:
    """Copy ``size`` bytes from the current offsets; return how many were there to copy."""
    done = 0
    try:
        while done < size:
            try:
                n = os.copy_file_range(fi, fo, size - done)
            except OSError as e:
                if e.errno not in _NO_COPY_FILE_RANGE:
                    raise
                return done + _copy_data_slowly(fi, fo, size - done)
            if n == 0:
                break
            done += n
    except OSError as e:
        raise _StepError("cannot copy data", e) from None
    return done


def _copy_growth(fi: int, end: int, copy: Callable[[int], int]) -> int:
    """Copy what a file gained past ``end`` (its size at the walk) since: return how many bytes.

    A file still being written (a log) grows between the walk and its copy. Cut at
    its walk-time size, it would be renamed into place looking complete; like cp,
    which copies to end of file, the copy takes what the file holds once ``end``
    is reached. Only up to the size seen then, so a file that never stops growing
    cannot hold a worker forever. ``copy(n)`` copies the next n bytes, returns how many.
    """
    try:
        now = os.fstat(fi).st_size
    except OSError as e:
        raise _StepError("cannot copy data", e) from None
    if now <= end:
        return 0
    extra = copy(now - end)
    if extra != now - end:  # it grew, then shrank: no size of it was ever copied whole
        raise _StepError(
            "changed while being copied", OSError(errno.EIO, f"it grew to {now:,} bytes, then shrank")
        )
    return extra


def _copy_data_slowly(fi: int, fo: int, size: int) -> int:
    """sendfile, else read/write: for file systems without copy_file_range."""
    done = 0
    try:
        while done < size:
            n = os.sendfile(fo, fi, None, size - done)
            if n == 0:
                return done
            done += n
        return done
    except OSError as e:
        if e.errno not in (errno.EINVAL, errno.ENOSYS) or done:
            raise
    while done < size:
        data = os.read(fi, min(size - done, COMPARE_BLOCK))
        if not data:
            break
        view = memoryview(data)
        while view:
            view = view[os.write(fo, view) :]
        done += len(data)
    return done


def _set_file_meta(fd: int, mode: int, atime: int, mtime: int, uid: int, gid: int, chown: bool) -> None:
    try:
        if chown:
            os.fchown(fd, uid, gid)
            if mode & 0o7000:  # chown cleared set-user/group-ID; put them back
                os.fchmod(fd, stat.S_IMODE(mode))
        os.utime(fd, ns=(atime, mtime))
    except OSError as e:
        raise _StepError("cannot set owner, mode or times", e) from None


def _verify(fi: int, fo: int, size: int, from_disk: bool) -> None:
    """Compare the new file with the source. With fsync, drop its pages first, so it is read from disk."""
    try:
        if from_disk:
            os.fsync(fo)
            os.posix_fadvise(fo, 0, 0, os.POSIX_FADV_DONTNEED)
        ok = os.fstat(fo).st_size == size and _same_content(fi, fo, 0, size)
    except OSError as e:
        raise _StepError("cannot verify", e) from None
    if not ok:
        raise _StepError("verification failed", OSError(errno.EIO, "the copy differs from the source"))


def _same_content(fa: int, fb: int, offset: int, length: int) -> bool:
    """Byte comparison of two ranges: locally, 3-13x faster than hashing both (docs/copy.md)."""
    end = offset + length
    while offset < end:
        a = os.pread(fa, min(COMPARE_BLOCK, end - offset), offset)
        if not a or a != os.pread(fb, len(a), offset):
            return False
        offset += len(a)
    return True


def _rename(tmp: str, dname: str, dfd: int) -> None:
    try:
        os.rename(tmp, dname, src_dir_fd=dfd, dst_dir_fd=dfd)
    except OSError as e:
        _unlink_quietly(tmp, dfd)
        raise _StepError("cannot rename into place", e) from None


def _unlink_quietly(name: str, dir_fd: int | None = None) -> None:
    try:
        os.unlink(name, dir_fd=dir_fd)
    except OSError:
        pass


def _copy_link(sfd: int, dfd: int, ent: _Entry, opts: _Options) -> None:
    """Recreate a symlink under a temp name, set its times (and owner), rename it into place."""
    name, dname, _, _, _, atime, mtime, uid, gid, _ = ent
    try:
        target = os.readlink(name, dir_fd=sfd)
    except OSError as e:
        raise _StepError("cannot read symlink", e) from None
    tmp = temp_name(dname, opts.token)
    try:
        try:
            os.symlink(target, tmp, dir_fd=dfd)
        except FileExistsError:
            os.unlink(tmp, dir_fd=dfd)
            os.symlink(target, tmp, dir_fd=dfd)
    except OSError as e:
        raise _StepError("cannot create symlink", e) from None
    try:
        if opts.as_root:
            os.chown(tmp, uid, gid, dir_fd=dfd, follow_symlinks=False)
        os.utime(tmp, ns=(atime, mtime), dir_fd=dfd, follow_symlinks=False)
    except OSError as e:
        _unlink_quietly(tmp, dfd)
        raise _StepError("cannot set symlink owner or times", e) from None
    _rename(tmp, dname, dfd)


def _already_same(sfd: int, dfd: int, ent: _Entry, opts: _Options) -> bool:
    """``checksum``: is the existing target identical? If so, give it the source's metadata."""
    name, dname, kind, size, mode, atime, mtime, uid, gid, _ = ent
    try:
        if kind == _LINK:
            if os.readlink(name, dir_fd=sfd) != os.readlink(dname, dir_fd=dfd):
                return False
        else:
            fa = os.open(name, os.O_RDONLY | os.O_CLOEXEC | os.O_NONBLOCK, dir_fd=sfd)
            try:
                fb = os.open(dname, os.O_RDONLY | os.O_CLOEXEC | os.O_NOFOLLOW | os.O_NONBLOCK, dir_fd=dfd)
                try:
                    if os.fstat(fb).st_size != size or not _same_content(fa, fb, 0, size):
                        return False
                finally:
                    os.close(fb)
            finally:
                os.close(fa)
        if opts.as_root:
            os.chown(dname, uid, gid, dir_fd=dfd, follow_symlinks=False)
        if kind == _FILE:
            os.chmod(dname, stat.S_IMODE(mode), dir_fd=dfd)
        os.utime(dname, ns=(atime, mtime), dir_fd=dfd, follow_symlinks=False)
        return True
    except OSError:
        return False  # unreadable target or the like: copy it again, which reports real errors


def _copy_range(src: str, tmp: str, offset: int, length: int, last: bool, opts: _Options) -> _Result:
    """Copy ``length`` bytes at ``offset`` of a big file into its temp file (made by the parent).

    The ``last`` range also copies what the file gained since the walk (see _copy_growth).
    """
    try:
        try:
            fi = os.open(src, os.O_RDONLY | os.O_CLOEXEC | os.O_NONBLOCK)
        except OSError as e:
            raise _StepError("cannot open", e) from None
        try:
            try:
                fo = os.open(tmp, (os.O_RDWR if opts.verify else os.O_WRONLY) | os.O_CLOEXEC)
            except OSError as e:
                raise _StepError("cannot open temp file", e) from None
            try:
                done = _copy_range_data(fi, fo, offset, length)
                if done != length:
                    raise _StepError(
                        "changed while being copied", OSError(errno.EIO, "the source got shorter")
                    )
                if last:
                    end = offset + length
                    done += _copy_growth(fi, end, lambda extra: _copy_range_data(fi, fo, end, extra))
                if opts.verify and opts.fsync:  # read the range back from disk, as _verify does
                    try:
                        os.fdatasync(fo)
                        os.posix_fadvise(fo, offset, done, os.POSIX_FADV_DONTNEED)
                    except OSError as e:
                        raise _StepError("cannot verify", e) from None
                if opts.verify and not _same_content(fi, fo, offset, done):
                    raise _StepError(
                        "verification failed", OSError(errno.EIO, "the copy differs from the source")
                    )
            finally:
                os.close(fo)
        finally:
            os.close(fi)
    except _StepError as e:
        if e.err.errno in _FATAL:
            return 0, 0, 0, 0, [], f"{e.err.strerror} ({tmp})"
        return 0, 0, 0, 0, [(src, e.message)], None
    return 0, done, 0, 0, [], None


def _copy_range_data(fi: int, fo: int, offset: int, length: int) -> int:
    done = 0
    try:
        while done < length:
            pos = offset + done
            try:
                n = os.copy_file_range(fi, fo, length - done, pos, pos)
            except OSError as e:
                if e.errno not in _NO_COPY_FILE_RANGE:
                    raise
                data = os.pread(fi, min(COMPARE_BLOCK, length - done), pos)
                n = os.pwrite(fo, data, pos) if data else 0
            if n == 0:
                break
            done += n
    except OSError as e:
        raise _StepError("cannot copy data", e) from None
    return done


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


# -- parent side: the walk -----------------------------------------------------------------------
@dataclass
class _BigFile:
    """A file copied in ranges: its temp file is made by the parent, which also finishes it."""

    source: str
    target_dir: str
    name: str
    tmp: str
    st: os.stat_result
    ranges_left: int
    size: int  # its size when copied: the walk's, or more if it grew (the last range says)
    failed: bool = False


class _Walker:
    """Walks the sources depth first and yields tasks; makes directories; quick-checks targets."""

    def __init__(self, run: _Run) -> None:
        self.run = run
        self.opts = run.opts
        self.dirs: list[tuple[str, os.stat_result]] = []  # target dirs to finish, in creation order
        self.big: dict[int, _BigFile] = {}
        self._ids = itertools.count()
        self._groups: list[_Group] = []
        self._entries: list[_Entry] | None = None
        self._files = 0
        self._bytes = 0
        self.done = False

    def tasks(self) -> Iterator[_Task]:
        for pair in self.run.pairs:
            container = os.path.dirname(os.path.abspath(pair.target))
            if not os.path.isdir(container):  # DST itself, for several sources or "DST/"
                try:
                    os.mkdir(container)
                except OSError as e:
                    self.run.error(container, f"cannot create directory: {e.strerror}")
                    continue
            if pair.is_dir:
                yield from self._walk(pair.source, pair.target)
            else:
                yield from self._single(pair)
        if self._groups:
            yield self._flush()
        self.done = True

    # -- one source that is not a directory
    def _single(self, pair: _Pair) -> Iterator[_Task]:
        src_dir, name = os.path.split(os.path.abspath(pair.source))
        dst_dir, dname = os.path.split(os.path.abspath(pair.target))
        try:
            st = os.stat(pair.source) if self.opts.follow else os.lstat(pair.source)
        except OSError as e:
            self.run.error(pair.source, f"cannot stat: {e.strerror}")
            return
        try:
            existing: dict[str, Any] | None = {dname: os.lstat(pair.target)}
        except OSError:
            existing = None
        self._entries = None
        yield from self._add(src_dir, dst_dir, name, dname, st, existing) or ()

    # -- a tree
    def _walk(self, src_root: str, dst_root: str) -> Iterator[_Task]:
        stack: list[tuple[str, str, tuple[tuple[int, int], ...]]] = [(src_root, dst_root, ())]
        while stack:
            src_dir, dst_dir, ancestors = stack.pop()
            try:
                src_st = os.stat(src_dir) if self.opts.follow else os.lstat(src_dir)
                with os.scandir(src_dir) as it:
                    entries = list(it)
            except OSError as e:
                self.run.error(src_dir, f"cannot read directory: {e.strerror}")
                continue
            usable, existing = self._target_dir(dst_dir)
            if not usable:
                continue
            self.dirs.append((dst_dir, src_st))
            here = (*ancestors, (src_st.st_dev, src_st.st_ino))
            self._entries = None  # a new group starts with the next file
            for entry in entries:
                if is_temp_name(entry.name):
                    # Copied, it would be taken for a killed run's leftover and deleted on every
                    # rerun; these are forklift's own temp files (another copy in progress).
                    self.run.error(entry.path, "named like a forklift temp file; skipped")
                    continue
                try:
                    st = entry.stat(follow_symlinks=self.opts.follow)
                except OSError as e:
                    self.run.error(entry.path, f"cannot stat: {e.strerror}")
                    continue
                if stat.S_ISDIR(st.st_mode):
                    if (st.st_dev, st.st_ino) in here:
                        self.run.error(entry.path, "symlink loop: a directory containing itself; skipped")
                    else:
                        stack.append((entry.path, os.path.join(dst_dir, entry.name), here))
                else:
                    due = self._add(src_dir, dst_dir, entry.name, entry.name, st, existing)
                    if due:
                        yield from due

    def _target_dir(self, dst_dir: str) -> tuple[bool, dict[str, Any] | None]:
        """Make the target directory: (usable, None if new else its entries, to quick-check against)."""
        try:
            os.mkdir(dst_dir, 0o700)
            self.run.report.dirs += 1
            return True, None
        except FileExistsError:
            pass
        except OSError as e:
            self.run.error(dst_dir, f"cannot create directory: {e.strerror}")
            return False, None
        try:
            dst_st = os.lstat(dst_dir)
            if not stat.S_ISDIR(dst_st.st_mode):
                self.run.error(dst_dir, "exists and is not a directory; its source directory was skipped")
                return False, None
            if not self.opts.as_root and dst_st.st_mode & 0o700 != 0o700:
                os.chmod(dst_dir, stat.S_IMODE(dst_st.st_mode) | 0o700)  # its mode is set back at the end
            existing: dict[str, Any] = {}
            with os.scandir(dst_dir) as it:
                for entry in it:
                    if is_temp_name(entry.name):
                        if not entry.name.endswith(f".forklift-{self.opts.token}.tmp"):
                            _unlink_quietly(entry.path)  # left by an earlier run that was killed
                    else:
                        existing[entry.name] = entry
            return True, existing
        except OSError as e:
            self.run.error(dst_dir, f"cannot read target directory: {e.strerror}")
            return False, None

    # -- one file or symlink
    def _add(
        self,
        src_dir: str,
        dst_dir: str,
        name: str,
        dname: str,
        st: os.stat_result,
        existing: dict[str, Any] | None,
    ) -> list[_Task] | None:
        """Take one file or symlink: skip it, batch it, or return the tasks now due (if any).

        A plain function, not a generator: it runs once per file in the parent.
        """
        mode = st.st_mode
        if stat.S_ISREG(mode):
            kind, size = _FILE, st.st_size
        elif stat.S_ISLNK(mode):
            kind, size = _LINK, 0
        else:
            self.run.error(os.path.join(src_dir, name), f"not copied: {_kind_name(mode)}")
            return None
        run = self.run
        run.found_files += 1
        run.found_bytes += size
        compare = False
        if existing is not None and dname in existing:
            verdict = self._quick_check(existing[dname], st)
            if verdict == "same":
                run.skipped(size)
                return None
            compare = verdict == "compare"
        if kind == _FILE and size >= SPLIT_BYTES and not compare and run.workers > 1:
            return self._split(os.path.join(src_dir, name), dst_dir, dname, st)
        ent: _Entry = (
            name,
            dname,
            kind,
            size,
            mode,
            st.st_atime_ns,
            st.st_mtime_ns,
            st.st_uid,
            st.st_gid,
            compare,
        )
        if size >= BATCH_BYTES:
            return [("batch", [(src_dir, dst_dir, [ent])])]  # alone, so big files spread over workers
        entries = self._entries
        if entries is None:
            entries = self._entries = []
            self._groups.append((src_dir, dst_dir, entries))
        entries.append(ent)
        self._files += 1
        self._bytes += size
        if self._files >= BATCH_FILES or self._bytes >= BATCH_BYTES:
            return [self._flush()]
        return None

    def _quick_check(self, target: Any, st: os.stat_result) -> str:
        """ "same" (skip), "compare" (checksum mode, same size) or "copy"."""
        try:
            tst = target if isinstance(target, os.stat_result) else target.stat(follow_symlinks=False)
        except OSError:
            return "copy"
        if stat.S_IFMT(tst.st_mode) != stat.S_IFMT(st.st_mode) or tst.st_size != st.st_size:
            return "copy"
        if self.run.checksum:
            return "compare"
        if (
            tst.st_mtime_ns == st.st_mtime_ns
            and stat.S_IMODE(tst.st_mode) == stat.S_IMODE(st.st_mode)
            and (not self.opts.as_root or (tst.st_uid, tst.st_gid) == (st.st_uid, st.st_gid))
        ):
            return "same"
        return "copy"

    def _flush(self) -> _Task:
        batch = ("batch", self._groups)
        self._groups = []
        self._entries = None
        self._files = self._bytes = 0
        return batch

    def _split(self, src: str, dst_dir: str, dname: str, st: os.stat_result) -> list[_Task] | None:
        tmp = os.path.join(dst_dir, temp_name(dname, self.opts.token))
        try:
            try:
                fd = os.open(tmp, _O_CREATE | os.O_WRONLY, 0o600)
            except FileExistsError:
                os.unlink(tmp)
                fd = os.open(tmp, _O_CREATE | os.O_WRONLY, 0o600)
            os.close(fd)
        except OSError as e:
            if e.errno in _FATAL:
                self.run.stop(f"{e.strerror} ({tmp})")
            else:
                self.run.error(src, f"cannot create in target directory: {e.strerror}")
            return None
        size = st.st_size
        offsets = range(0, size, RANGE_BYTES)
        file_id = next(self._ids)
        self.big[file_id] = _BigFile(src, dst_dir, dname, tmp, st, len(offsets), size)
        return [
            ("range", file_id, src, tmp, offset, min(RANGE_BYTES, size - offset), offset == offsets[-1])
            for offset in offsets
        ]


def _kind_name(mode: int) -> str:
    for test, name in (
        (stat.S_ISFIFO, "a FIFO"),
        (stat.S_ISSOCK, "a socket"),
        (stat.S_ISCHR, "a character device"),
        (stat.S_ISBLK, "a block device"),
    ):
        if test(mode):
            return f"{name} (only regular files, directories and symlinks are copied)"
    return "not a regular file, directory or symlink"


# -- parent side: running the tasks ---------------------------------------------------------------
class _Run:
    """Feeds the walker's tasks to a pool, collects results, cleans up on every way out."""

    def __init__(
        self,
        pairs: list[_Pair],
        opts: _Options,
        workers: int,
        checksum: bool,
        report: CopyReport,
        display: _Display | None,
    ) -> None:
        self.pairs = pairs
        self.opts = opts
        self.workers = workers
        self.checksum = checksum
        self.report = report
        self.display = display
        self.walker = _Walker(self)
        self.in_flight: dict[int, _Task] = {}
        self.results: queue.SimpleQueue[tuple[int, Any]] = queue.SimpleQueue()
        self._ids = itertools.count()
        self.found_files = self.found_bytes = self.done_files = self.done_bytes = 0

    # counters the walker and the results feed
    def skipped(self, size: int) -> None:
        self.report.files_skipped += 1
        self.report.bytes_skipped += size
        self.done_files += 1
        self.done_bytes += size

    def error(self, path: str, message: str) -> None:
        self.report.errors.append(FileError(path, message))

    def stop(self, reason: str) -> None:
        if self.report.stopped is None:
            self.report.stopped = reason

    def execute(self) -> None:
        from .pool import Pool

        pool = Pool(
            self.workers, initializer=_init_worker, initargs=(self.opts,), start_method=_start_method()
        )
        try:
            self._feed(pool)
            while self.in_flight:
                self._collect(block=True)
            if self.report.stopped is not None:
                self._remove_big_temps()
            self._finish_dirs()  # also when stopped: no directory stays 0700 (a rerun fixes times)
        except BaseException:
            self._abort(pool)
            raise
        finally:
            pool.terminate()
            if self.display is not None:
                self.display.close(self)

    def _feed(self, pool: Pool) -> None:
        limit = IN_FLIGHT_PER_WORKER * self.workers
        for task in self.walker.tasks():
            task_id = next(self._ids)
            self.in_flight[task_id] = task
            put = functools.partial(_put, self.results, task_id)
            pool.apply_async(_run_task, (task,), callback=put, error_callback=put)
            self._collect(block=len(self.in_flight) >= limit)
            if self.report.stopped is not None:
                return

    def _collect(self, block: bool) -> None:
        """Handle every result that has arrived; with ``block``, wait for at least one."""
        if block:
            while True:
                try:
                    item = self.results.get(timeout=0.2)
                    break
                except queue.Empty:
                    continue
            self._handle(*item)
        while True:
            try:
                item = self.results.get_nowait()
            except queue.Empty:
                break
            self._handle(*item)
        if self.display is not None:
            self.display.update(self)

    def _handle(self, task_id: int, result: Any) -> None:
        task = self.in_flight.pop(task_id)
        if isinstance(result, BaseException):  # a worker died under this task
            self._lost(task, result)
            return
        copied, nbytes, same, same_bytes, errors, fatal = result
        report = self.report
        report.files_copied += copied
        report.bytes_copied += nbytes
        report.files_skipped += same
        report.bytes_skipped += same_bytes
        report.errors.extend(FileError(p, m) for p, m in errors)
        if fatal is not None:
            self.stop(fatal)
        if task[0] == "batch":
            self.done_files += copied + same + len(errors)
            self.done_bytes += nbytes + same_bytes
        else:
            self.done_bytes += nbytes
            big = self.walker.big[task[1]]
            big.failed = big.failed or bool(errors) or fatal is not None
            if task[6] and not big.failed:
                big.size = task[4] + nbytes  # the last range copied up to here
            big.ranges_left -= 1
            if big.ranges_left == 0:
                self._finish_big(task[1])

    def _lost(self, task: _Task, exc: BaseException) -> None:
        """A task failed as a whole: its worker died, or the pool broke (then stop)."""
        from .errors import BrokenPoolError

        broken = isinstance(exc, BrokenPoolError)
        why = f"{type(exc).__name__}: {exc}"
        if broken:
            self.stop(f"the worker pool broke: {why}")
        if task[0] == "batch":
            for src_dir, dst_dir, entries in task[1]:
                for ent in entries:
                    if not broken:
                        self.error(os.path.join(src_dir, ent[0]), f"not copied: {why}")
                    _unlink_quietly(os.path.join(dst_dir, temp_name(ent[1], self.opts.token)))
        else:
            big = self.walker.big[task[1]]
            big.failed = True
            big.ranges_left -= 1
            if big.ranges_left == 0:
                self._finish_big(task[1])

    def _finish_big(self, file_id: int) -> None:
        """The last range of a split file is in: set its metadata and rename it (or drop it)."""
        big = self.walker.big.pop(file_id)
        self.done_files += 1
        if big.failed:
            _unlink_quietly(big.tmp)
            if not any(e.path == big.source for e in self.report.errors):
                self.error(big.source, "not copied (a range failed)")
            return
        st = big.st
        try:
            fd = os.open(big.tmp, os.O_WRONLY | os.O_CLOEXEC)
            try:
                if os.fstat(fd).st_size != big.size:
                    raise OSError(errno.EIO, "the source changed while being copied")
                if self.opts.as_root:
                    os.fchown(fd, st.st_uid, st.st_gid)
                os.fchmod(fd, stat.S_IMODE(st.st_mode))
                os.utime(fd, ns=(st.st_atime_ns, st.st_mtime_ns))
                if self.opts.fsync:
                    os.fsync(fd)
            finally:
                os.close(fd)
            os.rename(big.tmp, os.path.join(big.target_dir, big.name))
        except OSError as e:
            _unlink_quietly(big.tmp)
            if e.errno in _FATAL:
                self.stop(f"{e.strerror} ({big.tmp})")
            else:
                self.error(big.source, f"cannot finish the copy: {e.strerror}")
            return
        self.report.files_copied += 1

    def _finish_dirs(self) -> None:
        """Give each target directory its source's owner, mode and times, after its contents."""
        for dst_dir, st in reversed(self.walker.dirs):
            try:
                if self.opts.as_root:
                    os.chown(dst_dir, st.st_uid, st.st_gid, follow_symlinks=False)
                os.chmod(dst_dir, stat.S_IMODE(st.st_mode))
                os.utime(dst_dir, ns=(st.st_atime_ns, st.st_mtime_ns), follow_symlinks=False)
                if self.opts.fsync:
                    fd = os.open(dst_dir, _O_DIR)
                    try:
                        os.fsync(fd)
                    finally:
                        os.close(fd)
            except OSError as e:
                self.error(dst_dir, f"cannot set directory owner, mode or times: {e.strerror}")

    def _remove_big_temps(self) -> None:
        for big in self.walker.big.values():
            _unlink_quietly(big.tmp)
        self.walker.big.clear()

    def _abort(self, pool: Pool) -> None:
        """Ctrl-C, SIGTERM or a bug: kill the workers, then remove every temp name in flight."""
        pool.terminate()  # returns once every worker is killed and reaped: none writes again
        for task in self.in_flight.values():
            if task[0] == "batch":
                for _, dst_dir, entries in task[1]:
                    for ent in entries:
                        _unlink_quietly(os.path.join(dst_dir, temp_name(ent[1], self.opts.token)))
        self._remove_big_temps()


def _start_method() -> str | None:
    """fork when this process runs no other thread (then it is safe), else forklift's default.

    Measured here: a 2-worker pool is ready ~60 ms sooner with fork than with
    forkserver, whose server is a fresh interpreter; that is 7% of copying
    20,000 small files.
    """
    if sys.platform.startswith("linux") and threading.active_count() == 1:
        return "fork"
    return None


def _put(results: queue.SimpleQueue[tuple[int, Any]], task_id: int, value: Any) -> None:
    results.put((task_id, value))


# -- progress ------------------------------------------------------------------------------------
class _Display:
    """A rich progress line on stderr: files and bytes done / found, rate, ETA, errors."""

    INTERVAL = 0.1  # seconds between updates: the parent's time belongs to the walk

    def __init__(self) -> None:
        from rich.console import Console
        from rich.progress import (
            BarColumn,
            DownloadColumn,
            Progress,
            TextColumn,
            TimeRemainingColumn,
            TransferSpeedColumn,
        )

        self._progress = Progress(
            TextColumn("[bold]{task.description}"),
            BarColumn(),
            TextColumn("{task.fields[files]} files"),
            DownloadColumn(),
            TransferSpeedColumn(),
            TextColumn("eta"),
            TimeRemainingColumn(),
            TextColumn("[red]{task.fields[errors]}"),
            console=Console(stderr=True),
            refresh_per_second=8,
        )
        self._task = self._progress.add_task("copy (scanning)", total=None, files="", errors="")
        self._progress.start()
        self._last = 0.0

    def update(self, run: _Run, force: bool = False) -> None:
        now = time.monotonic()
        if not force and now - self._last < self.INTERVAL:
            return
        self._last = now
        nerr = len(run.report.errors)
        self._progress.update(
            self._task,
            description="copy" if run.walker.done else "copy (scanning)",
            completed=run.done_bytes,
            total=run.found_bytes if run.walker.done else max(run.found_bytes, 1),
            files=f"{run.done_files:,}/{run.found_files:,}",
            errors=f"{nerr:,} errors" if nerr else "",
        )

    def close(self, run: _Run) -> None:
        self.update(run, force=True)
        self._progress.stop()


def _count(n: int, one: str, many: str = "") -> str:
    return f"{n:,} {one if n == 1 else many or one + 's'}"


def _human(n: float) -> str:
    for unit in ("B", "kB", "MB", "GB", "TB"):
        if abs(n) < 1000 or unit == "TB":
            return f"{n:,.0f} {unit}" if unit == "B" else f"{n:,.1f} {unit}"
        n /= 1000
    return f"{n:,.1f} TB"

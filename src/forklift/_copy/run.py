"""``copy_tree`` and the parent's loop: feeds the walk's tasks to a pool, collects, cleans up."""

from __future__ import annotations

import errno
import functools
import itertools
import os
import queue
import stat
import sys
import threading
import time
from collections.abc import Iterable
from typing import TYPE_CHECKING, Any

from .._config import COPY_IN_PROCESS_SECONDS
from .._errors import CopyUsageError
from .._platform import require_linux
from . import walk
from .common import _FATAL, _O_DIR, _Options, _Task, _unlink_quietly, temp_name
from .display import _Display
from .outcome import CopyReport, FileError
from .plan import _Pair, _plan
from .walk import _Walker
from .worker import _init_worker, _run_task

if TYPE_CHECKING:
    from ..pool import Pool

#: Tasks handed to the pool per worker before the parent waits for a result.
#: Bounds the parent's run-ahead (memory, and the temp names to clean after Ctrl-C).
IN_FLIGHT_PER_WORKER = 4
#: The parent copies the first tasks itself, for up to this many seconds, before it
#: starts the worker pool: a small tree is done before a pool would be ready (which
#: costs 5-70 ms and the pool's imports), a big one loses at most this much of its
#: parallel time (FORKLIFT_COPY_IN_PROCESS_SECONDS; docs/copy.md).
IN_PROCESS_SECONDS = COPY_IN_PROCESS_SECONDS


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
    require_linux("forklift copy", "copy_file_range, and a forklift pool for the workers")
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
        umask=_current_umask(),
        checksum=checksum,
        split_bytes=walk.SPLIT_BYTES if nworkers > 1 else None,
    )
    report = CopyReport()
    run = _Run(pairs, opts, nworkers, checksum, report, _Display(started) if progress else None)
    try:
        run.execute()
    finally:
        report.seconds = time.perf_counter() - started
    return report


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
        self.pending: list[_Task] = []  # tasks not handed out yet; popped from the end
        self.dirs_left = 0  # directory tasks pending or in flight
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
        self.pool: Pool | None = None
        try:
            self._feed()
            while self.in_flight:
                self._collect(block=True)
            if self.report.stopped is not None:
                self._remove_big_temps()
            self._finish_dirs()  # also when stopped: no directory stays 0700 (a rerun fixes times)
            if self.pool is not None:  # idle workers exit on their own: ~1 ms, against ~5 ms to kill
                self.pool.close()  # and walk the process trees of two workers that started none
                self.pool.join()
        except BaseException:
            self._abort()
            raise
        finally:
            if self.pool is not None:
                self.pool.terminate()
            if self.display is not None:
                self.display.close(self)

    def _feed(self) -> None:
        """Hand out tasks: the first to this process (IN_PROCESS_SECONDS), the rest to a pool.

        Directory tasks bring back their subdirectories' tasks and the batches of
        files they left, so the queue of pending tasks grows as the workers walk.
        """
        limit = IN_FLIGHT_PER_WORKER * self.workers
        local_until = time.perf_counter() + IN_PROCESS_SECONDS
        pending = self.pending

        self._add(reversed(list(self.walker.tasks())))  # popped from the end: in order
        self.walker.done = self.dirs_left == 0
        while pending or self.in_flight:
            if self.report.stopped is not None:
                return
            if not pending or len(self.in_flight) >= limit:
                self._collect(block=True)
                continue
            task = pending.pop()
            task_id = next(self._ids)
            self.in_flight[task_id] = task  # so that Ctrl-C in the middle of it removes its temp names
            pool = self.pool
            if pool is None and time.perf_counter() < local_until:
                try:
                    result: Any = _run_task(task, self.opts)
                except Exception as e:  # what would reach the pool's error_callback
                    result = e
                self._handle(task_id, result)
                self.show()
            else:
                if pool is None:
                    pool = self.pool = self._start_pool()
                put = functools.partial(_put, self.results, task_id)
                pool.apply_async(_run_task, (task,), callback=put, error_callback=put)
                self._collect(block=False)

    def _add(self, tasks: Iterable[_Task]) -> None:
        for task in tasks:
            if task[0] == "dir":
                self.dirs_left += 1
            self.pending.append(task)

    def _scanned(self) -> None:
        """A directory task is over: when none is left, the progress line's total is final."""
        self.dirs_left -= 1
        self.walker.done = self.dirs_left == 0

    def _start_pool(self) -> Pool:
        from ..pool import Pool

        return Pool(
            self.workers, initializer=_init_worker, initargs=(self.opts,), start_method=_start_method()
        )

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
        self.show()

    def show(self) -> None:
        """Redraw the progress line (it keeps to its own pace)."""
        if self.display is not None:
            self.display.update(self)

    def _handle(self, task_id: int, result: Any) -> None:
        task = self.in_flight.pop(task_id)
        if isinstance(result, BaseException):  # a worker died under this task
            self._lost(task, result)
            return
        copied, nbytes, same, same_bytes, errors, fatal = result[:6]
        report = self.report
        if task[0] == "dir":
            record, subdirs, deferred, splits, found, found_bytes, made = result[6]
            if record is not None:
                self.walker.dirs.append(record)
            report.dirs += made
            self.found_files += found
            self.found_bytes += found_bytes
            self._add(subdirs)
            for src, dst_dir, dname, st in splits:
                self._add(self.walker._split(src, dst_dir, dname, st) or ())
            self._add(deferred)  # popped first: files already found go before new scans
            self._scanned()
        report.files_copied += copied
        report.bytes_copied += nbytes
        report.files_skipped += same
        report.bytes_skipped += same_bytes
        report.errors.extend(FileError(p, m) for p, m in errors)
        if fatal is not None:
            self.stop(fatal)
        if task[0] != "range":
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
        from ..errors import BrokenPoolError

        broken = isinstance(exc, BrokenPoolError)
        why = f"{type(exc).__name__}: {exc}"
        if broken:
            self.stop(f"the worker pool broke: {why}")
        if task[0] == "dir":
            _, src_dir, dst_dir, ancestors, *tries = task
            _remove_my_temps(dst_dir, self.opts.token)
            if not broken and not tries:  # once more: what its worker copied is then found and skipped
                self._add([("dir", src_dir, dst_dir, ancestors, 1)])
            elif not broken:
                self.error(src_dir, f"directory not copied (its worker died twice): {why}")
            self._scanned()
        elif task[0] == "batch":
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

    def _abort(self) -> None:
        """Ctrl-C, SIGTERM or a bug: kill the workers, then remove every temp name in flight."""
        if self.pool is not None:
            self.pool.terminate()  # returns once every worker is killed and reaped: none writes again
        for task in self.in_flight.values():
            if task[0] == "dir":  # which files it was writing is not known here: any temp name of ours
                _remove_my_temps(task[2], self.opts.token)
            elif task[0] == "batch":
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


def _current_umask() -> int:
    """This process's umask, read without changing it (/proc), else by setting it back at once."""
    try:
        with open("/proc/self/status", "rb") as f:
            for line in f:
                if line.startswith(b"Umask:"):
                    return int(line.split()[1], 8)
    except (OSError, ValueError, IndexError):
        pass
    mask = os.umask(0o022)
    os.umask(mask)
    return mask


def _remove_my_temps(dst_dir: str, token: str) -> None:
    """Remove this run's temp files from ``dst_dir`` (a directory task died or was interrupted)."""
    mine = f".forklift-{token}.tmp"
    try:
        with os.scandir(dst_dir) as it:
            names = [e.name for e in it if e.name.endswith(mine)]
    except OSError:
        return
    for name in names:
        _unlink_quietly(os.path.join(dst_dir, name))


def _put(results: queue.SimpleQueue[tuple[int, Any]], task_id: int, value: Any) -> None:
    results.put((task_id, value))

"""The parent's walk: scans the sources, makes target directories, cuts the work into tasks."""

from __future__ import annotations

import itertools
import os
import stat
from collections.abc import Iterator
from typing import TYPE_CHECKING, Any

from .. import _config
from .common import (
    _FATAL,
    _FILE,
    _LINK,
    _O_CREATE,
    _Entry,
    _Group,
    _Task,
    _unlink_quietly,
    is_temp_name,
    temp_name,
)
from .plan import _Pair

if TYPE_CHECKING:
    from .run import _Run

#: The most files in one batch task. More: less per-task overhead (pickling,
#: a round trip); fewer: a finer tail, so both workers finish together.
BATCH_FILES = 256
#: The most bytes in one batch task; a file this big or bigger is a task of its own.
BATCH_BYTES = 8 << 20
#: Files of this size or more are cut into ranges that several workers copy at
#: once (only with 2 or more workers); None: never (the default). On ext4 and tmpfs,
#: parallel writes into one file serialize on its inode lock: a 300 MB file took
#: 0.154 s split against 0.116 s whole (cp -a 0.084 s), so splitting is for file
#: systems that write one file in parallel (FORKLIFT_COPY_SPLIT_BYTES); docs/copy.md.
SPLIT_BYTES: int | None = _config.COPY_SPLIT_BYTES or None
#: The size of each range of a split file.
RANGE_BYTES = 64 << 20


class _BigFile:
    """A file copied in ranges: its temp file is made by the parent, which also finishes it."""

    __slots__ = ("failed", "name", "ranges_left", "size", "source", "st", "target_dir", "tmp")

    def __init__(
        self,
        source: str,
        target_dir: str,
        name: str,
        tmp: str,
        st: os.stat_result,
        ranges_left: int,
        size: int,
    ) -> None:
        self.source = source
        self.target_dir = target_dir
        self.name = name
        self.tmp = tmp
        self.st = st
        self.ranges_left = ranges_left
        self.size = size  # its size when copied: the walk's, or more if it grew (the last range says)
        self.failed = False


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
            self.run.show()  # a tree already up to date yields no task for a long time

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
        split = SPLIT_BYTES
        if kind == _FILE and split is not None and size >= split and not compare and run.workers > 1:
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

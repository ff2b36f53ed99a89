"""The parent's side of the walk: the first tasks of each source, and big files cut into ranges.

The walk itself runs in the workers (``worker._copy_dir``): the parent hands out a
task per directory and gets back its subdirectories as new tasks.
"""

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
    BATCH_BYTES,
    BATCH_FILES,
    _Entry,
    _Group,
    _Task,
    kind_name,
    quick_check,
    temp_name,
)
from .plan import _Pair

if TYPE_CHECKING:
    from .run import _Run

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
    """The sources' first tasks: a directory task per directory, batches of single files; splits."""

    def __init__(self, run: _Run) -> None:
        self.run = run
        self.opts = run.opts
        self.dirs: list[tuple[str, os.stat_result]] = []  # target dirs to finish, as their tasks came back
        self.big: dict[int, _BigFile] = {}
        self._ids = itertools.count()
        self._groups: list[_Group] = []
        self._entries: list[_Entry] | None = None
        self._files = 0
        self._bytes = 0
        self.done = False  # every directory scanned (set by the run)

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
                yield ("dir", pair.source, pair.target, ())
            else:
                yield from self._single(pair)
        if self._groups:
            yield self._flush()

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
            self.run.error(os.path.join(src_dir, name), f"not copied: {kind_name(mode)}")
            return None
        run = self.run
        run.found_files += 1
        run.found_bytes += size
        compare = False
        if existing is not None and dname in existing:
            verdict = quick_check(existing[dname], st, run.checksum, self.opts.as_root)
            if verdict == "same":
                run.skipped(size)
                return None
            compare = verdict == "compare"
        split = self.opts.split_bytes
        if kind == _FILE and split is not None and size >= split and not compare:
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

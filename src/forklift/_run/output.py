"""Printing jobs' output: whole or line by line, each line after its job's tag with ``--tag``.

A job's output reaches the terminal one way: a :class:`Printer`. An ended
job's output waits in memory (a cluster job's), in two temp files (a local
job's) or was printed as it came (``--line-buffer``): an :class:`Output` of
each kind prints itself through the Printer and says how much it printed.
The Printer writes
whole lines only (a partial line longer than ``LINE_BOUND`` excepted), so the
output of jobs printed line by line (``--line-buffer``) never tears a line,
and copies a grouped job's temp file with ``sendfile`` when nothing needs to
see the bytes (no tag, no progress bar).
"""

from __future__ import annotations

import errno
import os
from collections.abc import Callable
from typing import Protocol

__all__ = [
    "LINE_BOUND",
    "READ_SIZE",
    "FileOutput",
    "HeldOutput",
    "Output",
    "Printed",
    "Printer",
    "StreamedOutput",
    "tag_lines",
    "tag_prefix",
    "write_all",
]

READ_SIZE = 1 << 16
LINE_BOUND = 1 << 16  # --line-buffer: a partial line longer than this is printed anyway


def write_all(fd: int, data: bytes) -> None:
    """Write all of ``data`` to ``fd``, however many ``write()`` calls it takes."""
    view = memoryview(data)
    while view:
        n = os.write(fd, view)
        view = view[n:]


def tag_prefix(args: tuple[str, ...]) -> bytes:
    """--tag: what goes before each output line of a job with these arguments."""
    return os.fsencode(" ".join(args) + "\t")


def tag_lines(prefix: bytes, data: bytes) -> bytes:
    """``data`` with ``prefix`` before every line (an unfinished last line too)."""
    parts = data.split(b"\n")
    tail = parts.pop()
    return b"".join(prefix + p + b"\n" for p in parts) + (prefix + tail if tail else b"")


class Printer:
    """Writes jobs' output to file descriptors 1 and 2 through ``write_out`` (default: ``write_all``)."""

    def __init__(self, write_out: Callable[[int, bytes], None] | None, *, tag: bool) -> None:
        self.write_out = write_out or write_all
        self.tag = tag
        self.direct = self.write_out is write_all and not tag  # the bytes may go by sendfile, unseen

    def prefix(self, args: tuple[str, ...]) -> bytes:
        """What goes before each line of the job with these arguments: its tag, or nothing."""
        return tag_prefix(args) if self.tag else b""

    def whole(self, dst: int, args: tuple[str, ...], data: bytes) -> None:
        """Print a job's whole stdout or stderr, held in memory."""
        if data:
            self.write_out(dst, tag_lines(self.prefix(args), data) if self.tag else data)

    def file(self, dst: int, args: tuple[str, ...], src: int) -> int:
        """Print a job's whole stdout or stderr from the file ``src``; return its size."""
        size = os.lseek(src, 0, os.SEEK_END)
        if size == 0:
            return 0
        if self.direct:
            _sendfile_all(dst, src, size)
            return size
        prefix = self.prefix(args)
        offset = 0
        rest = b""
        while offset < size:
            chunk = os.pread(src, min(READ_SIZE * 16, size - offset), offset)
            if not chunk:
                break
            offset += len(chunk)
            rest = self.lines(dst, prefix, rest + chunk, final=offset >= size)
        return size

    def lines(self, dst: int, prefix: bytes, data: bytes, *, final: bool) -> bytes:
        """Write the complete lines of ``data`` (each after ``prefix``); return the rest."""
        if final:
            lines, rest = data, b""
        else:
            cut = data.rfind(b"\n") + 1
            lines, rest = data[:cut], data[cut:]
            if len(rest) > LINE_BOUND:
                lines, rest = data, b""
        if lines:
            self.write_out(dst, tag_lines(prefix, lines) if prefix else lines)
        return rest


Printed = tuple[int, int | None]  # bytes of stdout (the joblog's Receive), of stderr (None: not counted)


class Output(Protocol):
    """An ended job's output, waiting to be printed whole."""

    def print(self, printer: Printer, args: tuple[str, ...]) -> Printed: ...


class HeldOutput:
    """Output held in memory: a cluster job's, sent back by its worker."""

    __slots__ = ("err", "out")

    def __init__(self, out: bytes, err: bytes) -> None:
        self.out = out
        self.err = err

    def print(self, printer: Printer, args: tuple[str, ...]) -> Printed:
        printer.whole(1, args, self.out)
        printer.whole(2, args, self.err)
        return len(self.out), len(self.err)


class FileOutput:
    """Output in two files (descriptors) the job wrote to: a local job's, grouped."""

    __slots__ = ("err", "out")

    def __init__(self, out: int, err: int) -> None:
        self.out = out
        self.err = err

    def print(self, printer: Printer, args: tuple[str, ...]) -> Printed:
        return printer.file(1, args, self.out), printer.file(2, args, self.err)


class StreamedOutput:
    """Output already printed line by line as it came (--line-buffer): nothing waits."""

    __slots__ = ("stdout",)

    def __init__(self, stdout: int) -> None:
        self.stdout = stdout

    def print(self, printer: Printer, args: tuple[str, ...]) -> Printed:
        return self.stdout, None


def _sendfile_all(dst: int, src: int, size: int) -> None:
    offset = 0
    try:
        while offset < size:
            sent = os.sendfile(dst, src, offset, size - offset)
            if sent == 0:
                break
            offset += sent
    except OSError as exc:
        if exc.errno not in (errno.EINVAL, errno.ENOSYS) or offset:
            raise
        while offset < size:  # an output sendfile cannot write to: copy by hand
            chunk = os.pread(src, min(READ_SIZE * 16, size - offset), offset)
            if not chunk:
                break
            write_all(dst, chunk)
            offset += len(chunk)

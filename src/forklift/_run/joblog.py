"""GNU parallel's ``--joblog``: one TSV line per finished job, and reading it back to resume.

The format is GNU parallel's, byte for byte, so existing tools that read joblogs
read ours: ``Seq Host Starttime JobRuntime Send Receive Exitval Signal Command``.
Each line is written with one ``write()`` on an ``O_APPEND`` descriptor as soon
as the job's output has been printed, so a run killed at any moment leaves a
log whose every line is a job that is really done (and printed).
"""

from __future__ import annotations

import os
from collections.abc import Callable

from .output import write_all

__all__ = ["HEADER", "STDOUT", "Joblog", "JoblogError", "read_done"]

HEADER = "Seq\tHost\tStarttime\tJobRuntime\tSend\tReceive\tExitval\tSignal\tCommand\n"


class JoblogError(ValueError):
    """The joblog file cannot be used (not a joblog, unreadable)."""


STDOUT = "-"  # --joblog -: the joblog goes to stdout, each line after its job's output (GNU parallel)


class Joblog:
    """An open joblog; ``write()`` appends one job's line.

    ``path`` ``-`` is stdout, written through ``write_out`` (the jobs' output goes
    that way too, so a progress bar stays whole); it always gets the header.
    """

    def __init__(
        self, path: str, *, append: bool, write_out: Callable[[int, bytes], None] | None = None
    ) -> None:
        self.write_out = write_out or write_all
        if path == STDOUT:
            self.fd = -1
            self.write_out(1, HEADER.encode())
            return
        flags = os.O_WRONLY | os.O_CREAT | os.O_APPEND | os.O_CLOEXEC
        if not append:
            flags |= os.O_TRUNC
        try:
            self.fd = os.open(path, flags, 0o644)
        except OSError as exc:
            raise JoblogError(f"cannot open joblog {path!r}: {exc.strerror}") from None
        if os.fstat(self.fd).st_size == 0:
            os.write(self.fd, HEADER.encode())

    def write(
        self,
        seq: int,
        start: float,
        runtime: float,
        receive: int,
        exitval: int,
        signal: int,
        command: str,
        host: str = ":",
    ) -> None:
        command = command.replace("\n", "\0")  # as GNU parallel: one line per job
        line = f"{seq}\t{host}\t{start:.3f}\t{runtime:10.3f}\t0\t{receive}\t{exitval}\t{signal}\t{command}\n"
        if self.fd < 0:
            self.write_out(1, os.fsencode(line))
        else:
            os.write(self.fd, os.fsencode(line))

    def close(self) -> None:
        if self.fd >= 0:
            os.close(self.fd)


def read_done(path: str, *, failed_too: bool) -> set[int]:
    """Sequence numbers a resumed run must skip.

    ``--resume`` skips every job in the log; ``--resume-failed`` (``failed_too=False``)
    skips only those that succeeded, so the failed ones run again. A missing log
    means nothing is done yet. A torn last line (the writer was killed mid-write)
    is ignored; a file that is not a joblog is an error, never overwritten.
    """
    try:
        with open(path, "rb") as f:
            data = f.read()
    except FileNotFoundError:
        return set()
    except OSError as exc:
        raise JoblogError(f"cannot read joblog {path!r}: {exc.strerror}") from None
    if not data:
        return set()
    lines = data.split(b"\n")
    if lines[0] + b"\n" != HEADER.encode():
        raise JoblogError(f"{path!r} is not a joblog (its first line is not GNU parallel's header)")
    done: set[int] = set()
    for line in lines[1:]:
        fields = line.split(b"\t", 8)
        if len(fields) < 9 or not fields[0].isdigit():
            continue  # a command holding a newline, or a torn last line
        try:
            exitval, signal = int(fields[6]), int(fields[7])
        except ValueError:
            continue
        if failed_too or (exitval == 0 and signal == 0):
            done.add(int(fields[0]))
    return done

"""The books of a ``forklift run``: one Recorder for a local run and a cluster run alike.

Each path hands the Recorder an :class:`Attempt` for every run of a job's
command, and, once the job is done, an output to print (``output.py``). The
Recorder counts the run's summary, prints the output, adds the job's journal
row (``--journal``) and writes its joblog line (``--joblog``), in that order:
a job in the joblog has been printed, and a job not in it runs again on
``--resume``. It also applies ``--halt``'s rule after each job and works out
the run's exit status. What differs between the paths is only where a job
ran (an attempt's ``worker`` and ``host``) and where its output waits.
"""

from __future__ import annotations

import math
import signal
import time
from collections.abc import Callable
from typing import TYPE_CHECKING, NamedTuple

from .joblog import Joblog

if TYPE_CHECKING:
    from types import TracebackType

    from ..journal import Journal, JournalRun
    from .output import Output, Printed, Printer
    from .runner import Halt, RunOptions
    from .template import Template

__all__ = ["Attempt", "Recorder", "RunSummary"]


class RunSummary:
    """What a run did: its jobs counted by outcome, how it ended and how long it took."""

    def __init__(self) -> None:
        self.started = 0
        self.succeeded = 0
        self.failed = 0
        self.skipped = 0
        self.timed_out = 0
        self.retried = 0
        self.exit_status = 0
        self.interrupted = 0  # the signal number that stopped the run, or 0
        self.aborted = False  # stopped by an error (a job that could not start): exit 255
        self.seconds = 0.0


class Attempt(NamedTuple):
    """One run of a job's command, as the summary, the joblog and the journal tell it."""

    seq: int
    args: tuple[str, ...]
    command: str
    number: int  # 1, then 2 for its first retry...
    worker: int  # where it ran: a local run's job slot; on a cluster, the worker process's pid
    start: float  # wall clock
    runtime: float
    exitval: int  # -1 for a job killed for its timeout, as GNU parallel
    signal: int
    timed_out: bool
    host: str = ":"  # the joblog's Host column: ":" is this machine

    @property
    def failed(self) -> bool:
        return self.exitval != 0 or self.signal != 0

    @property
    def error(self) -> str | None:
        """Why it failed, in the journal's words; None if it did not."""
        if self.timed_out:
            return "timed out"
        if self.signal:
            return f"killed by signal {self.signal}"
        return f"exit status {self.exitval}" if self.exitval else None

    @property
    def status(self) -> str:
        """Its journal status as a job's last attempt."""
        return "timeout" if self.timed_out else "failed" if self.failed else "done"


class Recorder:
    """The books of one run: its summary, and each job's output, journal row and joblog line."""

    def __init__(
        self,
        template: Template,
        options: RunOptions,
        printer: Printer,
        warn: Callable[[str], None],
        *,
        workers: int | None,
    ) -> None:
        self.opt = options
        self.printer = printer
        self.warn = warn
        self.summary = RunSummary()
        self.halted: int | None = None  # the exit status --halt stopped the run with
        self.joblog = (
            Joblog(options.joblog, append=options.joblog_append, write_out=printer.write_out)
            if options.joblog
            else None
        )
        self.journal, self.journal_run = _open_journal(template, options, workers)

    def skipped(self) -> None:
        """A job already in the joblog of the run resumed: it does not run again."""
        self.summary.skipped += 1

    def started(self) -> None:
        self.summary.started += 1

    def retried(self, attempt: Attempt) -> None:
        """The attempt failed and the job runs again: its output is dropped, its journal row kept."""
        self.summary.retried += 1
        if self.journal_run is not None:
            self._journal(self.journal_run, attempt, "retried", None)

    def ended(self, attempt: Attempt) -> None:
        """The job's last attempt ended: count it (with -k, its output may wait for earlier jobs')."""
        if attempt.failed:
            self.summary.failed += 1
            self.summary.timed_out += attempt.timed_out
        else:
            self.summary.succeeded += 1

    def emit(self, attempt: Attempt, output: Output) -> Printed:
        """Print the ended job's output, then journal and log it: the order a resume relies on."""
        stdout, stderr = output.print(self.printer, attempt.args)
        if self.journal_run is not None:
            self._journal(
                self.journal_run, attempt, attempt.status, None if stderr is None else stdout + stderr
            )
        if self.joblog is not None:
            self.joblog.write(
                attempt.seq, attempt.start, attempt.runtime, stdout, attempt.exitval, attempt.signal,
                attempt.command, host=attempt.host,
            )  # fmt: skip
        return stdout, stderr

    def halt(self, attempt: Attempt) -> int | None:
        """``--halt`` after the job ended: the run's exit status if it stops here, else None."""
        halt = self.opt.halt
        if halt is None or self.halted is not None:
            return None
        if attempt.failed and halt.what == "fail":
            self.warn(f"this job failed: {attempt.command}")
        self.halted = halt_status(halt, self.summary, self.opt.total, attempt)
        return self.halted

    def __enter__(self) -> Recorder:
        return self

    def __exit__(
        self, kind: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        """Close the books of a run: one an exception stopped is aborted (interrupted, for Ctrl-C)."""
        if isinstance(exc, KeyboardInterrupt):
            self.summary.interrupted = self.summary.interrupted or signal.SIGINT  # a signal noted first wins
        elif isinstance(exc, BrokenPipeError):  # the output's reader left (| head): SIGPIPE's way
            self.summary.interrupted = signal.SIGPIPE
        elif exc is not None:
            self.summary.aborted = True  # a job could not start (RunError), or a bug
        self._close()

    def _close(self) -> None:
        """Close the joblog; end the run in the journal (once it is known to be interrupted or aborted)."""
        if self.joblog is not None:
            self.joblog.close()
        if self.journal is not None and self.journal_run is not None:
            s = self.summary
            self.journal_run.finish(
                "interrupted" if s.interrupted else "failed" if s.failed or s.aborted else "done"
            )
            self.journal.close()

    def final(self, began: float) -> RunSummary:
        """The summary of the run that began at ``began`` (``time.monotonic()``), with its exit status."""
        self.summary.seconds = time.monotonic() - began
        self.summary.exit_status = exit_status(self.summary, self.opt.halt, self.halted)
        return self.summary

    def _journal(self, run: JournalRun, attempt: Attempt, status: str, output_bytes: int | None) -> None:
        run.task(
            attempt.seq,
            status,
            attempt=attempt.number,
            worker=attempt.worker,
            began=attempt.start,
            ended=attempt.start + attempt.runtime,
            error=attempt.error,
            exit_code=attempt.exitval,
            output_bytes=output_bytes,
            command=attempt.command,
        )


def halt_status(halt: Halt, s: RunSummary, total: int | None, last: Attempt) -> int | None:
    """GNU parallel's --halt rule, after a job ended: None to go on, else the exit status."""
    if halt.what == "fail":
        if not last.failed:
            return None
        reached = s.failed
    elif halt.what == "success":
        if last.failed:
            return None
        reached = s.succeeded
    else:
        reached = s.succeeded + s.failed
    limit: float = halt.count
    if halt.percent:
        limit = (total if total is not None else s.started) * halt.percent / 100
    if reached < limit:
        return None
    if halt.what == "success":
        status = 0
    elif halt.percent:
        status = math.ceil(s.failed * 100 / max(total or s.started, 1))
    elif halt.count == 1:
        status = last.exitval or (last.signal + 128 if last.signal else 0)
    else:
        status = min(s.failed, 101)
    return status & 0xFF if status >= 0 else 255


def exit_status(s: RunSummary, halt: Halt | None, halted: int | None) -> int:
    """GNU parallel's exit status: the halt's, else the failures counted (101 for more than 100)."""
    if s.interrupted:
        return 128 + s.interrupted
    if halted is not None:
        return halted
    if halt is not None and halt.percent and halt.what != "success":
        return math.ceil(s.failed * 100 / (s.started or 1))
    return min(s.failed, 101)


def _open_journal(
    template: Template, options: RunOptions, workers: int | None
) -> tuple[Journal | None, JournalRun | None]:
    """The journal the run records into (``--journal``), with the run begun in it."""
    if not options.journal:
        return None, None
    from .._digest import digest
    from ..journal import Journal

    journal = Journal(options.journal)
    text = " ".join(template.words) or "{}"
    run = journal.begin("run", text, digest(text.encode()).hex(), workers=workers, total=options.total)
    return journal, run

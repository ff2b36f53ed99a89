"""Run shell jobs in parallel: one event loop in the forklift process, no worker pool.

Data path::

    Inputs --args--> Template.build --command--> posix_spawn("sh -c", setsid)
                                                    | stdout, stderr -> temp files (grouped)
                                                    |                or pipes (--line-buffer)
    epoll <-- pidfd readable when the job exits ----+
      |
      +-> waitpid -> retry? -> Recorder: print output whole -> journal row -> joblog line -> halt?

Why not forklift's Pool: a shell job is already a process. A pool of Python
workers in between would add a process hop, a pickle round trip and a second
process per job for nothing the Pool is good at (isolating Python code). The
parent spawning directly costs ~0.1 ms per job (vfork + exec inside
posix_spawn) and reaps through pidfds, so one thread drives hundreds of jobs.

Invariants:

* a job's output is printed whole, stdout then stderr, after it ends; grouped
  output is never held in this process's memory (the job writes straight into
  an unlinked temp file, which is copied out with sendfile);
* a joblog line is written only after the job's output is printed, so a job
  in the log is done, and a job not in it runs again on ``--resume``;
* every job runs in its own session and carries this run's marker in its
  environment: a timeout kills its process group, and if forklift is killed the
  guardian (guardian.py) kills every marked process.
"""

from __future__ import annotations

import errno
import heapq
import os
import resource
import select
import signal
import time
from collections import deque
from collections.abc import Callable, Iterator
from typing import NamedTuple

from .guardian import MARKER, Guardian
from .output import READ_SIZE, FileOutput, Output, Printer, StreamedOutput, write_all
from .recorder import Attempt, Recorder, RunSummary
from .template import Template

__all__ = ["Halt", "RunError", "RunOptions", "Runner", "nul_problem"]


def signal_group(pgid: int, sig: int) -> None:
    """:func:`forklift.trees.signal_group`, imported by the first kill: not at start-up."""
    from ..trees import signal_group as send

    send(pgid, sig)


KILL_GRACE = 0.2  # seconds between SIGTERM and SIGKILL of a timed-out job (GNU parallel: ~0.2 s)


class Halt:
    """``--halt when,what=N|N%`` in GNU parallel's meaning."""

    __slots__ = ("count", "percent", "what", "when")

    def __init__(self, when: str, what: str, count: int = 0, percent: float = 0.0) -> None:
        self.when = when  # "now" or "soon"
        self.what = what  # "fail", "success" or "done"
        self.count = count
        self.percent = percent

    def __repr__(self) -> str:
        return f"Halt({self.when!r}, {self.what!r}, count={self.count}, percent={self.percent})"


class RunOptions(NamedTuple):
    """What ``forklift run`` was asked (NamedTuples here, not dataclasses: start-up)."""

    jobs: int
    shell: str = "/bin/sh"
    timeout: float | None = None
    timeout_percent: float | None = None  # --timeout 300%: of the median runtime so far
    retries: int = 1
    halt: Halt | None = None
    keep_order: bool = False
    line_buffer: bool = False
    tag: bool = False
    joblog: str | None = None
    joblog_append: bool = False
    journal: str | None = None  # SQLite journal (forklift.journal): one task row per job
    skip: frozenset[int] = frozenset()
    total: int | None = None  # known when the inputs were read up front (for the bar)
    tmpdir: str | None = None


class _Job:
    """One job and its current attempt (a plain class with slots: one per input line)."""

    __slots__ = (
        "args", "attempt", "command", "end", "err", "exitval", "out", "partial", "pid", "pidfd",
        "received", "result", "seq", "signal", "slot", "start", "start_wall", "timed_out",
    )  # fmt: skip

    def __init__(self, seq: int, args: tuple[str, ...]) -> None:
        self.seq = seq
        self.args = args
        self.command = ""
        self.attempt = 0
        self.slot = 0
        self.pid = 0
        self.pidfd = -1
        self.start_wall = 0.0
        self.start = 0.0
        self.end = 0.0
        self.out = -1
        self.err = -1
        self.timed_out = False
        self.result: Attempt | None = None  # set when finished for good (no retry left): -k may print it
        self.received = 0  # --line-buffer: stdout bytes seen
        self.exitval = 0
        self.signal = 0
        self.partial: dict[int, bytes] = {}  # --line-buffer: fd -> unfinished line

    @property
    def failed(self) -> bool:
        return self.exitval != 0 or self.signal != 0

    def attempt_made(self) -> Attempt:
        """The attempt that just ended, for the books."""
        return Attempt(
            seq=self.seq,
            args=self.args,
            command=self.command,
            number=self.attempt,
            worker=self.slot,  # the lane of a forklift run is its job slot
            start=self.start_wall,
            runtime=self.end - self.start,
            exitval=self.exitval,
            signal=self.signal,
            timed_out=self.timed_out,
        )


class Runner:
    """Runs the jobs of one ``forklift run``; ``run()`` returns its summary."""

    def __init__(
        self,
        template: Template,
        inputs: Iterator[tuple[str, ...]],
        options: RunOptions,
        *,
        on_progress: Callable[[RunSummary, int], None] | None = None,
        write_out: Callable[[int, bytes], None] | None = None,
        warn: Callable[[str], None] | None = None,
    ) -> None:
        self.template = template
        self.inputs = inputs
        self.opt = options
        self.on_progress = on_progress
        self.printer = Printer(write_out, tag=options.tag)
        self.warn = warn or (lambda text: write_all(2, f"forklift run: {text}\n".encode()))
        self.books = Recorder(template, options, self.printer, self.warn, workers=options.jobs)
        self.summary = self.books.summary
        self.run_id = f"{os.getpid()}-{time.time_ns()}"
        self.env = dict(os.environ)
        self.env[MARKER] = self.run_id
        self.ep = select.epoll()
        self.running: dict[int, _Job] = {}  # pidfd -> job
        self.pipes: dict[int, _Job] = {}  # --line-buffer: read end -> job
        self.free_slots = list(range(1, options.jobs + 1))
        self.free_files: list[int] = []
        self.retry_queue: deque[_Job] = deque()
        self.deadlines: list[tuple[float, int, int]] = []  # (when, seq, attempt)
        self.kills: list[tuple[float, int, int]] = []
        self.order: deque[_Job] = deque()  # -k: jobs in input order, printed from the left
        self.runtimes: list[float] = []  # successful runtimes, for --timeout N%
        self.seq = 0
        self.exhausted = False
        self.stopping = False  # start no new jobs (halt soon, or all done)
        self.caught: list[int] = []  # signals received (SIGINT, SIGTERM, SIGHUP): the run stops
        self.reading = False  # blocked reading the inputs: a signal must interrupt the read
        self.devnull = os.open(os.devnull, os.O_RDONLY | os.O_CLOEXEC)
        self.max_waiting = _fd_budget(options.jobs)

    # -- the loop ------------------------------------------------------------------------

    def run(self) -> RunSummary:
        from .._platform import require_call

        require_call("pidfd_open", "forklift run (one pidfd per job, in an epoll loop)", "5.3")
        t0 = time.monotonic()
        with self.books:
            self._loop()
        return self.books.final(t0)

    def _loop(self) -> None:
        """Run every job, with the run's guardian and signal handlers in place, then clean up."""
        guardian = Guardian(self.run_id)
        wake_r, wake_w = os.pipe2(os.O_NONBLOCK | os.O_CLOEXEC)
        old_wakeup = signal.set_wakeup_fd(wake_w, warn_on_full_buffer=False)
        handlers = {
            sig: signal.signal(sig, self._on_signal) for sig in (signal.SIGINT, signal.SIGTERM, signal.SIGHUP)
        }
        self.ep.register(wake_r, select.EPOLLIN)
        try:
            while self._step(wake_r):
                pass
        finally:
            try:
                self._kill_all()  # it prints the jobs -k held back: that fails if stdout is gone
            finally:
                signal.set_wakeup_fd(old_wakeup)
                for sig, handler in handlers.items():
                    signal.signal(sig, handler)
                os.close(wake_r)
                os.close(wake_w)
                self._close()
                guardian.release()

    def _on_signal(self, signum: int, frame: object) -> None:
        """SIGINT, SIGTERM or SIGHUP: the loop stops at its next turn, or now if it waits for input."""
        self.caught.append(signum)
        if self.reading:  # blocked in a read of stdin, which Python retries after this handler
            raise _Interrupted

    def _step(self, wake_r: int) -> bool:
        """One turn of the loop: start what may start, wait, handle what happened."""
        try:
            self._start_jobs()
        except _Interrupted:
            pass  # self.caught holds the signal: the jobs that ended are booked below, then the run stops
        if not self.caught and self._all_done():
            return False
        for fd, _ in self.ep.poll(0 if self.caught else self._wait_time()):
            if fd == wake_r:
                _drain(wake_r)
            elif fd in self.running:
                self._reaped(self.running.pop(fd))
            elif fd in self.pipes:
                self._read_pipe(fd, self.pipes[fd])
        self._expire(time.monotonic())
        if self.caught:
            self.summary.interrupted = self.caught[0]
            self.stopping = True
            self.retry_queue.clear()
            return False
        return True

    def _all_done(self) -> bool:
        """No job runs, and none will start: nothing waits to start or to run again."""
        return not self.running and (self.exhausted or self.stopping) and not self.retry_queue

    def _wait_time(self) -> float:
        """How long epoll may wait: until the nearest deadline or kill, or for good (-1) if none."""
        if not self.deadlines and not self.kills:
            return -1
        nearest = min(q[0][0] for q in (self.deadlines, self.kills) if q)
        return max(0.0, nearest - time.monotonic())

    # -- starting ------------------------------------------------------------------------

    def _start_jobs(self) -> None:
        while self.free_slots and not (self.stopping or self.caught) and len(self.order) < self.max_waiting:
            job = self._next_job()
            if job is None:
                return
            self._spawn(job)

    def _next_job(self) -> _Job | None:
        if self.retry_queue:
            return self.retry_queue.popleft()
        while not self.exhausted:
            args = self._next_input()
            if args is None:
                return None
            self.seq += 1
            if self.seq in self.opt.skip:
                self.books.skipped()
                continue
            return _Job(self.seq, args)
        return None

    def _next_input(self) -> tuple[str, ...] | None:
        """The next job's arguments; None when there are no more, or a signal came first.

        Reading may block (a pipe into stdin, a terminal): while it does, a signal
        interrupts it (``_on_signal`` raises ``_Interrupted`` through the read).
        """
        try:
            self.reading = True
            if self.caught:  # came before the read began: do not start waiting
                return None
            return next(self.inputs)
        except StopIteration:
            self.exhausted = True
            return None
        finally:
            self.reading = False

    def _spawn(self, job: _Job) -> None:
        job.slot = heapq.heappop(self.free_slots)
        job.attempt += 1
        job.command = self.template.build(job.args, job.seq, job.slot)
        problem = nul_problem(job.seq, job.command)
        if problem is not None:  # posix_spawn would raise ValueError: refuse it as it refuses E2BIG
            raise RunError(problem)
        env = self.env
        env["PARALLEL_SEQ"] = str(job.seq)
        env["PARALLEL_JOBSLOT"] = str(job.slot)
        if self.opt.line_buffer:
            out_r, out_w = os.pipe2(os.O_CLOEXEC | os.O_NONBLOCK)
            err_r, err_w = os.pipe2(os.O_CLOEXEC | os.O_NONBLOCK)
            os.set_blocking(out_w, True)
            os.set_blocking(err_w, True)
            child_out, child_err = out_w, err_w
        else:
            job.out, job.err = self._file(), self._file()
            child_out, child_err = job.out, job.err
        job.start_wall = time.time()
        job.start = time.monotonic()
        try:
            job.pid = os.posix_spawn(
                self.opt.shell,
                [self.opt.shell, "-c", job.command],
                env,
                file_actions=[
                    (os.POSIX_SPAWN_DUP2, self.devnull, 0),
                    (os.POSIX_SPAWN_DUP2, child_out, 1),
                    (os.POSIX_SPAWN_DUP2, child_err, 2),
                ],
                setsid=True,
            )
        except OSError as exc:
            raise RunError(f"cannot start {self.opt.shell!r}: {exc.strerror}") from None
        finally:
            if self.opt.line_buffer:
                os.close(out_w)
                os.close(err_w)
        if job.attempt == 1:
            self.books.started()
        job.pidfd = os.pidfd_open(job.pid)
        self.running[job.pidfd] = job
        self.ep.register(job.pidfd, select.EPOLLIN)
        if self.opt.line_buffer:
            job.out, job.err = out_r, err_r
            for fd in (out_r, err_r):
                self.pipes[fd] = job
                self.ep.register(fd, select.EPOLLIN)
        if self.opt.keep_order and job.attempt == 1:
            self.order.append(job)
        timeout = self._timeout()
        if timeout is not None:
            heapq.heappush(self.deadlines, (job.start + timeout, job.seq, job.attempt))
        if self.on_progress:
            self.on_progress(self.summary, len(self.running))

    def _timeout(self) -> float | None:
        if self.opt.timeout_percent is not None:
            if not self.runtimes:
                return None  # as GNU parallel: no limit until a job has succeeded
            median = self.runtimes[len(self.runtimes) // 2]
            return median * self.opt.timeout_percent / 100
        return self.opt.timeout

    def _file(self) -> int:
        if self.free_files:
            return self.free_files.pop()
        return _temp_file(self.opt.tmpdir)

    # -- timeouts ------------------------------------------------------------------------

    def _expire(self, now: float) -> None:
        due = (self.deadlines and self.deadlines[0][0] <= now) or (self.kills and self.kills[0][0] <= now)
        if not due:
            return
        by_seq = {job.seq: job for job in self.running.values()}
        while self.deadlines and self.deadlines[0][0] <= now:
            _, seq, attempt = heapq.heappop(self.deadlines)
            job = by_seq.get(seq)
            if job is not None and job.attempt == attempt and not job.timed_out:
                job.timed_out = True
                signal_group(job.pid, signal.SIGTERM)
                heapq.heappush(self.kills, (now + KILL_GRACE, seq, attempt))
                self.warn(f"job {seq} timed out after {now - job.start:.2f} s: {job.command}")
        while self.kills and self.kills[0][0] <= now:
            _, seq, attempt = heapq.heappop(self.kills)
            job = by_seq.get(seq)
            if job is not None and job.attempt == attempt:
                signal_group(job.pid, signal.SIGKILL)

    # -- a job ended -----------------------------------------------------------------------

    def _reaped(self, job: _Job) -> None:
        # Unregister before closing: a close alone leaves the epoll entry alive while any
        # other holder of the descriptor exists (a vfork child between spawn and exec, if a
        # thread ever spawned concurrently), and its stale events would name a reused fd.
        self.ep.unregister(job.pidfd)
        os.close(job.pidfd)
        _, status = os.waitpid(job.pid, 0)
        job.end = time.monotonic()
        if job.timed_out:
            # GNU parallel's convention for a job it killed: Exitval -1, Signal of the kill.
            job.exitval = -1
            job.signal = os.WTERMSIG(status) if os.WIFSIGNALED(status) else signal.SIGTERM
            signal_group(job.pid, signal.SIGKILL)  # what the shell left behind in its group
        elif os.WIFSIGNALED(status):
            job.exitval, job.signal = 0, os.WTERMSIG(status)
        else:
            job.exitval, job.signal = os.WEXITSTATUS(status), 0
        heapq.heappush(self.free_slots, job.slot)
        if self.opt.line_buffer:
            self._close_pipes(job)
        if job.failed and job.attempt < self.opt.retries and not self.stopping:
            self.books.retried(job.attempt_made())
            self._recycle(job)
            job.timed_out = False
            self.retry_queue.append(job)
            return
        self._finished(job)

    def _finished(self, job: _Job) -> None:
        job.result = result = job.attempt_made()
        self.books.ended(result)
        if self.opt.timeout_percent is not None and not result.failed:
            _insort(self.runtimes, result.runtime)
        if self.opt.keep_order:
            while self.order and self.order[0].result is not None:
                self._emit(self.order.popleft())
        else:
            self._emit(job)
        self._check_halt(result)
        if self.on_progress:
            self.on_progress(self.summary, len(self.running))

    def _emit(self, job: _Job) -> None:
        """Have the books print, journal and log the finished job; give its files back."""
        assert job.result is not None
        stdout, stderr = self.books.emit(job.result, self._output(job))
        self._recycle(job, empty=(stdout == 0, stderr == 0))

    def _output(self, job: _Job) -> Output:
        return StreamedOutput(job.received) if self.opt.line_buffer else FileOutput(job.out, job.err)

    def _recycle(self, job: _Job, *, empty: tuple[bool, bool] = (False, False)) -> None:
        """Give the job's output files back, emptied (quiet jobs' files already are)."""
        if self.opt.line_buffer:
            return
        for fd, is_empty in zip((job.out, job.err), empty):
            if not is_empty:
                os.ftruncate(fd, 0)
                os.lseek(fd, 0, os.SEEK_SET)
            self.free_files.append(fd)
        job.out = job.err = -1

    # -- --line-buffer -------------------------------------------------------------------

    def _read_pipe(self, fd: int, job: _Job) -> None:
        try:
            data = os.read(fd, READ_SIZE)
        except BlockingIOError:
            return
        if not data:
            self._flush_pipe(fd, job)
            return
        self._pipe_data(fd, job, data)

    def _pipe_data(self, fd: int, job: _Job, data: bytes) -> None:
        if fd == job.out:
            job.received += len(data)
        dst = 1 if fd == job.out else 2
        job.partial[fd] = self.printer.lines(
            dst, self.printer.prefix(job.args), job.partial.get(fd, b"") + data, final=False
        )

    def _flush_pipe(self, fd: int, job: _Job) -> None:
        rest = job.partial.pop(fd, b"")
        if rest:
            self.printer.lines(1 if fd == job.out else 2, self.printer.prefix(job.args), rest, final=True)
        self.ep.unregister(fd)
        del self.pipes[fd]
        os.close(fd)

    def _close_pipes(self, job: _Job) -> None:
        """The job exited: print what its pipes still hold, without waiting for EOF.

        A background process the job left behind may hold the pipe open forever.
        """
        for fd in (job.out, job.err):
            if fd not in self.pipes:
                continue
            while True:
                try:
                    data = os.read(fd, READ_SIZE)
                except BlockingIOError:
                    break
                if not data:
                    break
                self._pipe_data(fd, job, data)
            self._flush_pipe(fd, job)

    # -- halting -------------------------------------------------------------------------

    def _check_halt(self, result: Attempt) -> None:
        if self.books.halt(result) is None:
            return
        self.stopping = True
        self.retry_queue.clear()
        assert self.opt.halt is not None
        if self.opt.halt.when == "now":
            self._kill_all()
        elif self.running:
            self.warn(f"starting no more jobs; waiting for {len(self.running)} running job(s) to finish")

    # -- stopping ----------------------------------------------------------------------------

    def _kill_all(self) -> None:
        """Kill every running job's process group and reap it; its output is dropped, it is not logged."""
        if not self.running:
            return
        jobs = list(self.running.values())
        for job in jobs:
            signal_group(job.pid, signal.SIGTERM)
        deadline = time.monotonic() + KILL_GRACE
        pending = {job.pidfd: job for job in jobs}
        while pending:
            remaining = deadline - time.monotonic()
            if remaining <= 0:
                for job in pending.values():
                    signal_group(job.pid, signal.SIGKILL)
                remaining = 5.0
            ready, _, _ = select.select(list(pending), [], [], remaining)
            for fd in ready:
                job = pending.pop(fd)
                os.waitpid(job.pid, 0)
                signal_group(job.pid, signal.SIGKILL)
        for job in jobs:
            self.ep.unregister(job.pidfd)
            os.close(job.pidfd)
            del self.running[job.pidfd]
            if self.opt.line_buffer:
                for fd in (job.out, job.err):
                    if fd in self.pipes:
                        self.ep.unregister(fd)
                        del self.pipes[fd]
                        os.close(fd)
            else:
                self._recycle(job)
            if job in self.order:
                self.order.remove(job)
        while self.order and self.order[0].result is not None:
            self._emit(self.order.popleft())

    def _close(self) -> None:
        for fd in self.free_files:
            os.close(fd)
        self.free_files.clear()
        os.close(self.devnull)
        self.ep.close()


class _Interrupted(BaseException):
    """A signal came while the loop was blocked reading its inputs (BaseException: nothing catches it)."""


class RunError(RuntimeError):
    """The run cannot go on (the shell cannot be started, ...)."""


def nul_problem(seq: int, command: str) -> str | None:
    """Why job ``seq`` cannot start if its command holds a NUL byte, else None.

    exec's arguments are C strings, so no command line can carry a NUL. Such a
    job stops the run where a command over the kernel's argument limit does
    (one line, exit 255; the jobs already done are printed and logged), as GNU
    parallel stops at a command it cannot run. A NUL reaches a command from an
    input file or stdin read without ``-0``, whatever the source or column.
    """
    at = command.find("\0")
    if at < 0:
        return None
    start, end = max(0, at - 40), at + 40
    excerpt = ("..." if start else "") + repr(command[start:end]) + ("..." if end < len(command) else "")
    return (
        f"cannot start job {seq}: its command holds a NUL byte, which no command line can carry"
        f" (are the inputs NUL-separated? then use -0): {excerpt}"
    )


def _fd_budget(jobs: int) -> int:
    """How many jobs may be in flight or waiting to print (-k) before starting stalls.

    Each holds two descriptors; the soft limit is raised to the hard one first.
    """
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    if soft != hard and hard != resource.RLIM_INFINITY:
        try:
            resource.setrlimit(resource.RLIMIT_NOFILE, (hard, hard))
            soft = hard
        except (ValueError, OSError):
            pass
    return max(jobs, (soft - 64 - 3 * jobs) // 2)


def _temp_file(tmpdir: str | None) -> int:
    directory = tmpdir or os.environ.get("TMPDIR") or "/tmp"
    try:
        return os.open(directory, os.O_TMPFILE | os.O_RDWR | os.O_CLOEXEC, 0o600)
    except OSError as exc:
        if exc.errno not in (errno.EOPNOTSUPP, errno.EISDIR, errno.EINVAL):
            raise RunError(f"cannot make a temporary file in {directory!r}: {exc.strerror}") from None
    import tempfile

    fd, path = tempfile.mkstemp(dir=directory)
    os.unlink(path)
    return fd


def _drain(fd: int) -> None:
    try:
        while os.read(fd, 512):
            pass
    except BlockingIOError:
        pass


def _insort(values: list[float], value: float) -> None:
    import bisect

    bisect.insort(values, value)

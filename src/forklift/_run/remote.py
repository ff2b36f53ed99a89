"""``forklift run --cluster ADDRESS``: the same jobs, run by a Dask cluster's workers.

Each job becomes one task of a cluster ``Pool`` (``forklift.Pool(address=...)``),
which chunks short jobs and reschedules those of a worker that died. A task
runs the command with ``sh -c`` in its own session on the worker's machine,
enforces ``--timeout`` there (SIGTERM to the process group, SIGKILL 0.2 s later)
and ``--retries``, and returns its attempts and the last one's captured output;
this process keeps the books as a local run does, with the same Recorder
(recorder.py): it prints each job's output whole, writes the journal and the
joblog (the Host column is the worker's host name, the journal's worker the
worker process's pid), and applies ``--halt``.

Differences from a local run, all because the jobs are elsewhere: output is
held in the worker's memory until the job ends (no spill to disk); ``-j``
does not apply (the cluster's worker threads are the slots, ``{%}`` is 1); and
a job may run twice if its worker dies, so jobs should be idempotent.

Stopping: every job carries this run's ``FORKLIFT_RUN_ID`` in its environment,
as a local run's do. On Ctrl-C (or ``--halt now``) every worker process notes
the run as stopped (a job of it that would start later raises RunStopped
instead) and sweeps the processes marked with its id (``guardian.sweep``: TERM,
then KILL), so no job outlives the run. ``--halt soon`` only notes the run as
stopped: the jobs already running end and are printed and logged, as locally.
A guardian sweeps this machine if forklift itself is SIGKILLed, which covers
``--cluster local``; a remote worker's jobs then run to their end.
"""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import threading
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from typing import Any

from ..trees import signal_group
from .guardian import MARKER, Guardian, sweep
from .output import HeldOutput, Printer
from .recorder import Attempt, Recorder, RunSummary
from .runner import KILL_GRACE, RunError, RunOptions, nul_problem
from .template import Template


@dataclass(frozen=True)
class RemoteJob:
    seq: int
    args: tuple[str, ...]
    command: str
    shell: str
    timeout: float | None
    retries: int
    run_id: str


@dataclass(frozen=True)
class RemoteResult:
    """A job's last attempt with its output, and the failed attempts retried before it."""

    attempt: Attempt
    out: bytes
    err: bytes
    retried: tuple[Attempt, ...] = ()


# In each worker process: the runs stopped by their forklift (stop_run), and a lock
# that makes "not stopped, so start the job" one step against stop_run's "stopped".
_stopped_runs: set[str] = set()
_start_lock = threading.Lock()


class RunStopped(Exception):
    """The job's run was stopped before the job started; it never ran."""


def stop_run(run_id: str, grace: float, kill: bool = True) -> int:
    """Run on every worker by ``Client.run``: no new job of ``run_id``; with ``kill``, end
    the running ones (TERM, then KILL after ``grace``). Returns how many were found."""
    with _start_lock:
        _stopped_runs.add(run_id)
    return sweep(run_id, grace) if kill else 0


class JobStartError(Exception):
    """The worker could not start the job's shell (E2BIG, no such shell...): the run stops."""


def run_remote_job(job: RemoteJob) -> RemoteResult:
    """Run one job where this task runs (a cluster worker); retry it up to ``retries`` times."""
    last: RemoteResult | None = None  # the previous attempt's, when it failed
    for number in range(1, max(job.retries, 1) + 1):
        start = time.time()
        proc = _start(job, ran=last is not None)
        if proc is None:  # it ran and failed; no retry now: that is its result
            break
        out, err, timed_out = _communicate(proc, job.timeout)
        retried = () if last is None else (*last.retried, last.attempt)
        last = RemoteResult(_attempt(job, number, start, proc.returncode, timed_out), out, err, retried)
        if not last.attempt.failed:
            break
    assert last is not None
    return last


def _start(job: RemoteJob, *, ran: bool) -> subprocess.Popen[bytes] | None:
    """The job's shell, started; if the run was stopped, None when the job ran before, else RunStopped."""
    with _start_lock:
        if job.run_id in _stopped_runs:
            if ran:
                return None
            raise RunStopped(f"job {job.seq}: the run was stopped")
        problem = nul_problem(job.seq, job.command)
        if problem is not None:  # as a local run: refused where a command over ARG_MAX is
            raise JobStartError(problem)
        try:
            return subprocess.Popen(
                [job.shell, "-c", job.command],
                stdin=subprocess.DEVNULL,
                stdout=subprocess.PIPE,
                stderr=subprocess.PIPE,
                start_new_session=True,
                env={**os.environ, "PARALLEL_SEQ": str(job.seq), "PARALLEL_JOBSLOT": "1", MARKER: job.run_id},
            )
        except OSError as exc:
            where = socket.gethostname()
            raise JobStartError(f"cannot start {job.shell!r} on {where}: {exc.strerror or exc}") from None


def _communicate(proc: subprocess.Popen[bytes], timeout: float | None) -> tuple[bytes, bytes, bool]:
    """The job's stdout and stderr, and whether it was killed for its timeout (TERM, then KILL)."""
    timed_out = False
    try:
        out, err = proc.communicate(timeout=timeout)
    except subprocess.TimeoutExpired:
        timed_out = True
        signal_group(proc.pid, signal.SIGTERM)
        try:
            out, err = proc.communicate(timeout=KILL_GRACE)
        except subprocess.TimeoutExpired:
            signal_group(proc.pid, signal.SIGKILL)
            out, err = proc.communicate()
    signal_group(proc.pid, signal.SIGKILL)  # whatever the job left in its group
    return out, err, timed_out


def _attempt(job: RemoteJob, number: int, start: float, code: int, timed_out: bool) -> Attempt:
    """The attempt that ended with ``code`` (``Popen.returncode``), started at ``start``."""
    exitval, sig = (code, 0) if code >= 0 else (0, -code)
    if timed_out:
        exitval, sig = -1, sig or signal.SIGTERM
    return Attempt(
        seq=job.seq,
        args=job.args,
        command=job.command,
        number=number,
        worker=os.getpid(),
        start=start,
        runtime=time.time() - start,
        exitval=exitval,
        signal=sig,
        timed_out=timed_out,
        host=socket.gethostname(),
    )


def run_on_cluster(
    template: Template,
    items: Iterator[tuple[str, ...]],
    options: RunOptions,
    address: str,
    credentials: str | None,
    *,
    write_out: Callable[[int, bytes], None],
    warn: Callable[[str], None],
) -> RunSummary:
    """Run every job on the cluster at ``address``; print, log and summarize here."""
    began = time.monotonic()
    books = Recorder(template, options, Printer(write_out, tag=options.tag), warn, workers=None)
    run = _ClusterRun(options, books, warn)
    with books, run.stopped_by_signals():
        guardian, pool = _guarded_pool(run.run_id, address, credentials)
        try:
            run.drive(pool, run.jobs(template, items))
        finally:
            run.end(pool)
            guardian.release()
    return books.final(began)


def _guarded_pool(run_id: str, address: str, credentials: str | None) -> tuple[Guardian, Any]:
    """This machine's guardian of the run, then a pool on the cluster at ``address``."""
    from ..pool import Pool

    guardian = Guardian(run_id)  # forked before Dask starts its threads in this process
    try:
        return guardian, Pool(address=address, credentials=credentials)
    except BaseException:
        guardian.release()
        raise


class _ClusterRun:
    """One run's jobs sent to the cluster, their results booked here, the jobs stopped at the end."""

    def __init__(self, options: RunOptions, books: Recorder, warn: Callable[[str], None]) -> None:
        self.opt = options
        self.books = books
        self.warn = warn
        self.run_id = f"{os.getpid()}-{time.time_ns()}"
        self.stop_jobs = False  # end this run's jobs on every worker when it ends
        self.pool_up = False  # once it is, SIGTERM and SIGHUP stop the run at once

    @contextmanager
    def stopped_by_signals(self) -> Iterator[None]:
        """SIGTERM and SIGHUP stop the run as Ctrl-C does (a local run's way), through a wait
        for input too. One that comes while the pool starts stops the run once it is up: Dask's
        LocalCluster, broken off as it starts, is left half made (tracebacks at exit)."""
        previous = {sig: signal.signal(sig, self._on_signal) for sig in (signal.SIGTERM, signal.SIGHUP)}
        try:
            yield
        finally:
            for sig, handler in previous.items():
                signal.signal(sig, handler)

    def _on_signal(self, signum: int, frame: object) -> None:
        if self.books.summary.interrupted:
            return  # once: a second one must not break the stopping of the jobs
        self.books.summary.interrupted = signum
        if self.pool_up:
            raise KeyboardInterrupt

    def jobs(self, template: Template, items: Iterator[tuple[str, ...]]) -> Iterator[RemoteJob]:
        opt = self.opt
        for seq, args in enumerate(items, 1):
            if seq in opt.skip:
                self.books.skipped()
                continue
            command = template.build(args, seq, 1)
            yield RemoteJob(seq, args, command, opt.shell, opt.timeout, opt.retries, self.run_id)

    def drive(self, pool: Any, jobs: Iterator[RemoteJob]) -> None:
        """Book each job's result as it comes, until all are done or ``--halt`` or Ctrl-C stops the run."""
        try:
            self.pool_up = True
            if self.books.summary.interrupted:  # SIGTERM or SIGHUP came while the pool started
                raise KeyboardInterrupt
            imap = pool.imap if self.opt.keep_order else pool.imap_unordered
            for result in _ran(imap(run_remote_job, jobs)):
                self.record(result)
                if self.books.halt(result.attempt) is not None and self.halt(pool):
                    return
        except KeyboardInterrupt:
            summary = self.books.summary
            summary.interrupted = summary.interrupted or signal.SIGINT  # Ctrl-C's, unless TERM or HUP
            self.stop_jobs = True
        except BaseException:  # as a local run: an error stops every job
            self.stop_jobs = True
            raise

    def record(self, result: RemoteResult) -> None:
        """Count, print, journal and log one finished job."""
        self.books.started()
        for attempt in (*result.retried, result.attempt):
            if attempt.timed_out:
                self.warn(f"job {attempt.seq} timed out after {self.opt.timeout:g} s on {attempt.host}")
        for attempt in result.retried:
            self.books.retried(attempt)
        self.books.ended(result.attempt)
        self.books.emit(result.attempt, HeldOutput(result.out, result.err))

    def halt(self, pool: Any) -> bool:
        """``--halt`` stops the run: now (return True: read no more results), or soon."""
        assert self.opt.halt is not None
        if self.opt.halt.when == "now":
            self.stop_jobs = True
            return True
        # soon: no job starts from now on; those running end, and are printed and logged
        self.warn("starting no more jobs; waiting for the running jobs to finish")
        _stop_on_workers(pool, self.run_id, kill=False, warn=self.warn)
        return False

    def end(self, pool: Any) -> None:
        """Stop the jobs still running if the run must (Ctrl-C, --halt now, an error); close the pool."""
        if self.stop_jobs:
            _stop_on_workers(pool, self.run_id, kill=True, warn=self.warn)
            sweep(self.run_id, KILL_GRACE)  # this machine's, whatever happened to its workers
        pool.terminate() if self.stop_jobs or self.books.halted is not None else pool.close()
        pool.join()


def _ran(results: Iterator[RemoteResult]) -> Iterator[RemoteResult]:
    """The results of the jobs that ran; a job that could not start stops the run (RunError)."""
    while True:
        try:
            yield next(results)
        except StopIteration:
            return
        except RunStopped:
            continue  # after --halt soon: a job that was not started, as none may be now
        except JobStartError as exc:  # as a local run: one line, exit 255, jobs stopped
            raise RunError(str(exc)) from None


STOP_TIMEOUT = 10.0  # seconds to wait for every worker to take a stop; Client.run has no limit


def _stop_on_workers(pool: Any, run_id: str, *, kill: bool, warn: Callable[[str], None]) -> None:
    """Have every worker refuse this run's next jobs and, with ``kill``, end its running ones."""
    failures: list[BaseException] = []

    def call() -> None:
        try:
            pool.client.run(stop_run, run_id, KILL_GRACE, kill)
        except Exception as exc:  # a worker gone or the scheduler unreachable
            failures.append(exc)

    caller = threading.Thread(target=call, name="forklift-stop-run", daemon=True)
    caller.start()
    caller.join(STOP_TIMEOUT)
    if caller.is_alive():
        warn(f"not every worker answered the stop within {STOP_TIMEOUT:g} s: jobs may still run there")
    elif failures:
        warn(f"could not reach every worker to stop the jobs: {failures[0]}")


__all__ = [
    "JobStartError",
    "RemoteJob",
    "RemoteResult",
    "RunStopped",
    "run_on_cluster",
    "run_remote_job",
    "stop_run",
]

"""``forklift run --cluster ADDRESS``: the same jobs, run by a Dask cluster's workers.

Each job becomes one task of a cluster ``Pool`` (``forklift.Pool(address=...)``),
which chunks short jobs and reschedules those of a worker that died. A task
runs the command with ``sh -c`` in its own session on the worker's machine,
enforces ``--timeout`` there (SIGTERM to the process group, SIGKILL 0.2 s later)
and ``--retries``, and returns the exit status and the captured output; this
process prints each job's output whole, writes the joblog (the Host column is
the worker's host name) and the journal, and applies ``--halt``.

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
from dataclasses import dataclass
from typing import Any

from ..trees import signal_group
from .guardian import MARKER, Guardian, sweep
from .output import tag_lines, tag_prefix
from .runner import (
    KILL_GRACE,
    RunError,
    RunOptions,
    RunSummary,
    close_run_journal,
    exit_status,
    halt_status,
    nul_problem,
    open_run_journal,
)
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
    seq: int
    args: tuple[str, ...]
    command: str
    exitval: int
    signal: int
    out: bytes
    err: bytes
    start: float
    runtime: float
    host: str
    attempts: int
    timed_out: bool


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
    for attempt in range(1, max(job.retries, 1) + 1):
        start = time.time()
        with _start_lock:
            if job.run_id in _stopped_runs:
                if last is not None:  # it ran and failed; no retry now: that is its result
                    return last
                raise RunStopped(f"job {job.seq}: the run was stopped")
            problem = nul_problem(job.seq, job.command)
            if problem is not None:  # as a local run: refused where a command over ARG_MAX is
                raise JobStartError(problem)
            try:
                proc = subprocess.Popen(
                    [job.shell, "-c", job.command],
                    stdin=subprocess.DEVNULL,
                    stdout=subprocess.PIPE,
                    stderr=subprocess.PIPE,
                    start_new_session=True,
                    env={
                        **os.environ,
                        "PARALLEL_SEQ": str(job.seq),
                        "PARALLEL_JOBSLOT": "1",
                        MARKER: job.run_id,
                    },
                )
            except OSError as exc:
                where = socket.gethostname()
                raise JobStartError(f"cannot start {job.shell!r} on {where}: {exc.strerror or exc}") from None
        timed_out = False
        try:
            out, err = proc.communicate(timeout=job.timeout)
        except subprocess.TimeoutExpired:
            timed_out = True
            signal_group(proc.pid, signal.SIGTERM)
            try:
                out, err = proc.communicate(timeout=KILL_GRACE)
            except subprocess.TimeoutExpired:
                signal_group(proc.pid, signal.SIGKILL)
                out, err = proc.communicate()
        signal_group(proc.pid, signal.SIGKILL)  # whatever the job left in its group
        code = proc.returncode
        exitval, sig = (code, 0) if code >= 0 else (0, -code)
        if timed_out:
            exitval, sig = -1, sig or signal.SIGTERM
        last = RemoteResult(
            job.seq,
            job.args,
            job.command,
            exitval,
            sig,
            out,
            err,
            start,
            time.time() - start,
            socket.gethostname(),
            attempt,
            timed_out,
        )
        if exitval == 0 and sig == 0:
            break
    assert last is not None
    return last


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
    from ..pool import Pool
    from .joblog import Joblog

    summary = RunSummary()
    t0 = time.monotonic()
    run_id = f"{os.getpid()}-{time.time_ns()}"
    joblog = Joblog(options.joblog, append=options.joblog_append) if options.joblog else None
    journal, journal_run = open_run_journal(template, options, workers=None)

    def jobs() -> Iterator[RemoteJob]:
        for seq, args in enumerate(items, 1):
            if seq in options.skip:
                summary.skipped += 1
                continue
            command = template.build(args, seq, 1)
            yield RemoteJob(seq, args, command, options.shell, options.timeout, options.retries, run_id)

    def record(result: RemoteResult) -> bool:
        """Count, print and log one finished job; return whether it failed."""
        summary.started += 1
        summary.retried += result.attempts - 1
        failed = result.exitval != 0 or result.signal != 0
        if failed:
            summary.failed += 1
            summary.timed_out += result.timed_out
        else:
            summary.succeeded += 1
        if result.timed_out:
            warn(f"job {result.seq} timed out after {options.timeout:g} s on {result.host}")
        _print(result, options, write_out)
        if joblog is not None:
            joblog.write(
                result.seq, result.start, result.runtime, len(result.out), result.exitval,
                result.signal, result.command, host=result.host,
            )  # fmt: skip
        if journal_run is not None:
            journal_run.task(
                result.seq,
                "timeout" if result.timed_out else "failed" if failed else "done",
                attempt=result.attempts,
                began=result.start,
                ended=result.start + result.runtime,
                exit_code=result.exitval,
                output_bytes=len(result.out) + len(result.err),
            )
        return failed

    halted: int | None = None
    stop_jobs = False
    guardian = Guardian(run_id)  # forked before Dask starts its threads in this process
    try:
        pool = Pool(address=address, credentials=credentials)
    except BaseException:
        guardian.release()
        raise
    try:
        results = (pool.imap if options.keep_order else pool.imap_unordered)(run_remote_job, jobs())
        while True:
            try:
                result = next(results)
            except StopIteration:
                break
            except RunStopped:
                continue  # after --halt soon: a job that was not started, as none may be now
            except JobStartError as exc:  # as a local run: one line, exit 255, jobs stopped
                stop_jobs = summary.aborted = True
                raise RunError(str(exc)) from None
            failed = record(result)
            if options.halt is None or halted is not None:
                continue
            halted = halt_status(options.halt, summary, options.total, result.exitval, result.signal, failed)
            if halted is None:
                continue
            if failed:
                warn(f"this job failed: {result.command}")
            if options.halt.when == "now":
                stop_jobs = True
                break
            # soon: no job starts from now on; those running end, and are printed and logged
            warn("starting no more jobs; waiting for the running jobs to finish")
            _stop_on_workers(pool, run_id, kill=False, warn=warn)
    except KeyboardInterrupt:
        summary.interrupted = signal.SIGINT
        stop_jobs = True
    finally:
        if stop_jobs:
            _stop_on_workers(pool, run_id, kill=True, warn=warn)
            sweep(run_id, KILL_GRACE)  # this machine's, whatever happened to its workers
        pool.terminate() if stop_jobs or halted is not None else pool.close()
        pool.join()
        guardian.release()
        if joblog is not None:
            joblog.close()
        close_run_journal(journal, journal_run, summary)
    summary.seconds = time.monotonic() - t0
    summary.exit_status = exit_status(summary, options.halt, halted)
    return summary


STOP_TIMEOUT = 10.0  # seconds to wait for every worker to take a stop; Client.run has no limit


def _stop_on_workers(pool: Any, run_id: str, *, kill: bool, warn: Callable[[str], None]) -> None:
    """Have every worker refuse this run's next jobs and, with ``kill``, end its running ones."""
    failures: list[BaseException] = []

    def call() -> None:
        try:
            pool._place.client.run(stop_run, run_id, KILL_GRACE, kill)
        except Exception as exc:  # a worker gone or the scheduler unreachable
            failures.append(exc)

    caller = threading.Thread(target=call, name="forklift-stop-run", daemon=True)
    caller.start()
    caller.join(STOP_TIMEOUT)
    if caller.is_alive():
        warn(f"not every worker answered the stop within {STOP_TIMEOUT:g} s: jobs may still run there")
    elif failures:
        warn(f"could not reach every worker to stop the jobs: {failures[0]}")


def _print(result: RemoteResult, options: RunOptions, write_out: Callable[[int, bytes], None]) -> None:
    """The job's stdout, then its stderr, whole (each line tagged with --tag)."""
    for fd, data in ((1, result.out), (2, result.err)):
        if not data:
            continue
        write_out(fd, tag_lines(tag_prefix(result.args), data) if options.tag else data)


__all__ = [
    "JobStartError",
    "RemoteJob",
    "RemoteResult",
    "RunStopped",
    "run_on_cluster",
    "run_remote_job",
    "stop_run",
]

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
does not apply (the cluster's worker threads are the slots, ``{%}`` is 1);
``--halt soon`` does not wait for the running jobs' output; and a job may run
twice if its worker dies, so jobs should be idempotent.

Stopping: every job carries this run's ``FORKLIFT_RUN_ID`` in its environment,
as a local run's do. On Ctrl-C (or ``--halt now``) the jobs not yet started are
cancelled, and every worker process notes the run as stopped (a job of it
that starts later does not run) and sweeps the processes marked with its id
(``guardian.sweep``: TERM, then KILL), so no job outlives the run. A guardian
does the same on this machine if forklift itself is SIGKILLed, which covers
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

from .guardian import MARKER, Guardian, sweep
from .runner import (
    KILL_GRACE,
    RunOptions,
    RunSummary,
    close_run_journal,
    exit_status,
    halt_status,
    open_run_journal,
    tag_lines,
    tag_prefix,
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


def stop_run(run_id: str, grace: float) -> int:
    """Run on every worker by ``Client.run``: no new job of ``run_id``; end the running ones."""
    with _start_lock:
        _stopped_runs.add(run_id)
    return sweep(run_id, grace)


def run_remote_job(job: RemoteJob) -> RemoteResult:
    """Run one job where this task runs (a cluster worker); retry it up to ``retries`` times."""
    attempt = 0
    while True:
        attempt += 1
        start = time.time()
        with _start_lock:
            if job.run_id in _stopped_runs:
                raise RunStopped(f"job {job.seq}: the run was stopped")
            proc = subprocess.Popen(
                [job.shell, "-c", job.command],
                stdin=subprocess.DEVNULL,
                stdout=subprocess.PIPE,
                stderr=subprocess.PIPE,
                start_new_session=True,
                env={**os.environ, "PARALLEL_SEQ": str(job.seq), "PARALLEL_JOBSLOT": "1", MARKER: job.run_id},
            )
        timed_out = False
        try:
            out, err = proc.communicate(timeout=job.timeout)
        except subprocess.TimeoutExpired:
            timed_out = True
            _killpg(proc.pid, signal.SIGTERM)
            try:
                out, err = proc.communicate(timeout=KILL_GRACE)
            except subprocess.TimeoutExpired:
                _killpg(proc.pid, signal.SIGKILL)
                out, err = proc.communicate()
        _killpg(proc.pid, signal.SIGKILL)  # whatever the job left in its group
        code = proc.returncode
        exitval, sig = (code, 0) if code >= 0 else (0, -code)
        if timed_out:
            exitval, sig = -1, sig or signal.SIGTERM
        failed = exitval != 0 or sig != 0
        if not failed or attempt >= job.retries:
            runtime = time.time() - start
            host = socket.gethostname()
            return RemoteResult(
                job.seq,
                job.args,
                job.command,
                exitval,
                sig,
                out,
                err,
                start,
                runtime,
                host,
                attempt,
                timed_out,
            )


def _killpg(pgid: int, sig: int) -> None:
    try:
        os.killpg(pgid, sig)
    except OSError:
        pass


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

    halted: int | None = None
    pool = Pool(address=address, credentials=credentials)
    guardian = Guardian(run_id)
    stop_jobs = False
    try:
        results = (pool.imap if options.keep_order else pool.imap_unordered)(run_remote_job, jobs())
        for result in results:
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
            if options.halt is not None and halted is None:
                halted = halt_status(
                    options.halt, summary, options.total, result.exitval, result.signal, failed
                )
                if halted is not None:
                    if failed:
                        warn(f"this job failed: {result.command}")
                    break
    except KeyboardInterrupt:
        summary.interrupted = signal.SIGINT
        stop_jobs = True
    finally:
        stop_jobs = stop_jobs or (
            halted is not None and options.halt is not None and options.halt.when == "now"
        )
        if stop_jobs:
            _stop_running_jobs(pool, run_id, warn)
        pool.terminate() if stop_jobs or halted is not None else pool.close()
        pool.join()
        guardian.release()
        if joblog is not None:
            joblog.close()
        close_run_journal(journal, journal_run, summary)
    summary.seconds = time.monotonic() - t0
    summary.exit_status = exit_status(summary, options.halt, halted)
    return summary


def _stop_running_jobs(pool: Any, run_id: str, warn: Callable[[str], None]) -> None:
    """Have every worker refuse this run's next jobs and kill its running ones."""
    try:
        pool._place.client.run(stop_run, run_id, KILL_GRACE)
    except Exception as exc:  # a worker gone or the scheduler unreachable: say, go on
        warn(f"could not reach every worker to stop the running jobs: {exc}")
    sweep(run_id, KILL_GRACE)  # this machine's, whatever happened to its workers


def _print(result: RemoteResult, options: RunOptions, write_out: Callable[[int, bytes], None]) -> None:
    """The job's stdout, then its stderr, whole (each line tagged with --tag)."""
    for fd, data in ((1, result.out), (2, result.err)):
        if not data:
            continue
        write_out(fd, tag_lines(tag_prefix(result.args), data) if options.tag else data)


__all__ = ["RemoteJob", "RemoteResult", "RunStopped", "run_on_cluster", "run_remote_job", "stop_run"]

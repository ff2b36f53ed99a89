"""What the local Engine and the ClusterEngine share: their public calls, and job bookkeeping.

A scheduler owns one thread that alone touches its jobs; callers hand it
commands through ``_call``. This base class holds the calls themselves
(start a job, submit, feed, close, terminate, join) with their checks, and
the scheduler thread's handling of submitted calls and fed input, so the two
engines differ only in how their thread runs the work.
"""

from __future__ import annotations

import threading
import weakref
from collections import deque
from collections.abc import Callable
from typing import Any

from .._serialize import dumps_callable
from .._serialize import serialization_error as _ser_error
from ..errors import BrokenPoolError
from . import forks
from .api import Statistics
from .futures import Outcomes, TaskFuture
from .jobs import Job, Slab, StreamJob, SubmitJob

COUNTERS = ("done", "failed", "retries", "started", "lost", "timeouts")


class SchedulerFront:
    """The public calls of an engine; subclasses run the scheduler thread behind ``_call``."""

    _accepting: bool
    _broken: BrokenPoolError | None  # why the engine broke; None while it works (or was stopped)
    _stop: bool  # the engine's thread is ending: jobs registered now are refused
    _open: set[Job]  # registered, not finished
    _thread: threading.Thread
    _streams: weakref.WeakSet[StreamJob]
    _submits: dict[tuple[Any, ...], SubmitJob]  # the open job per submitted function
    _queue: deque[Job]  # jobs with pending items, oldest first
    _counts: dict[str, int]  # COUNTERS (and an engine's own), for statistics()
    outcomes: Outcomes  # settles futures without blocking; runs user callbacks off this thread

    def start_job(self, job: Job) -> None:
        """Accept a job; its function is pickled here so errors surface at the call."""
        self.check_running()
        job.fn_blob = pickle_function(job.fn, job.name)
        self._prepare(job)
        if isinstance(job, StreamJob):
            self._streams.add(job)
        self._call(lambda: self._register(job))

    def submit(
        self,
        fn: Callable[..., Any],
        mode: int,
        item: Any,
        future: TaskFuture,
        *,
        timeout: float | None,
        retries: int,
        name: str,
    ) -> None:
        """One call whose outcome goes to ``future``; calls of one function share a job."""
        self.check_running()
        blob = pickle_function(fn, name)
        key = (blob, mode, timeout, retries)
        self._call(lambda: self._add_submit(key, fn, item, future, name))

    def feed(self, job: Job, slab: Slab | None, *, last: bool) -> None:
        self._call(lambda: self._add_input(job, slab, last))

    def check_running(self) -> None:
        self.check_process()
        if self._broken is not None:
            raise BrokenPoolError(str(self._broken)) from self._broken.__cause__
        if not self._accepting:
            raise ValueError("Pool not running")

    def check_process(self) -> None:
        """A pool serves the process that made it; in a fork of it, say so instead of hanging.

        (The fork has no scheduler thread: a call would wait for ever.)
        """
        if self.outcomes.generation != forks.generation():
            raise RuntimeError(
                "this pool belongs to the process this one was forked from (os.fork()): it cannot "
                "run tasks here. Create a new Pool or Executor in the child"
            )

    def shut_down(self) -> bool:
        return self._broken is None and not self._accepting

    def close(self) -> None:
        """Accept no new jobs; workers exit once every accepted job is done."""
        self._accepting = False
        self._call(self._begin_close, required=False)

    def terminate(self) -> None:
        """Stop now: fail what is unfinished, and wait for the scheduler thread to end.

        Callbacks still queued run afterwards, on the callbacks thread (join() waits for them).
        """
        self._accepting = False
        if self.outcomes.generation != forks.generation():
            return  # a fork of the pool's process: nothing here to stop
        self._call(self._terminate_now, required=False)
        if threading.current_thread() is not self._thread:
            self._thread.join()
            self._after_stop()

    def stop_inputs(self) -> None:
        """Lazy calls take no more input; what they took still runs (Executor.shutdown)."""
        for job in list(self._streams):  # not the open jobs: they may lag behind start_job
            job.stop_input()

    def join(self, timeout: float | None = None) -> bool:
        """Wait for the scheduler (and its workers) to end; True if they did.

        Lazy calls still open first read the rest of their input, as
        multiprocessing.Pool's join does.
        """
        self.check_process()
        if self._accepting:
            raise ValueError("Pool is still running")
        if threading.current_thread() is self._thread:
            raise RuntimeError("cannot join the pool from its own scheduler thread")
        for job in list(self._streams):
            job.drain_input()
        self._thread.join(timeout)
        if self._thread.is_alive():
            return False
        self._after_stop()
        self.outcomes.callbacks.join()  # every callback has run, as after multiprocessing's join
        return True

    @property
    def alive(self) -> bool:
        return self._thread.is_alive()

    def statistics(self) -> Statistics:
        c = self._counts
        return Statistics(
            workers=self._workers_now(),
            tasks_done=c["done"],
            tasks_failed=c["failed"],
            retries=c["retries"],
            workers_started=c["started"],
            workers_lost=c["lost"],
            timeouts=c["timeouts"],
        )

    # -- the scheduler thread's bookkeeping, the same for both --------------------------
    def _refused(self, job: Job) -> bool:
        """A job registered after the engine stopped (queued just before): fail it, say True."""
        if self._broken is None and not self._stop:
            return False
        job.abort(self._stopped_error())
        job.finish()
        return True

    def _stopped_error(self) -> BrokenPoolError:
        if self._broken is None:
            return BrokenPoolError("the pool was shut down")
        err = BrokenPoolError(str(self._broken))
        err.__cause__ = self._broken.__cause__
        return err

    def _abort_all(self, exc: BrokenPoolError, *, broken: bool = True) -> None:
        """Fail every open job with ``exc``, stop the workers, end the engine's thread.

        ``broken``: the engine failed (later calls raise ``exc``), as opposed to being
        terminated on purpose (later calls raise "Pool not running").
        """
        if broken and self._broken is None:
            self._broken = exc
        self._accepting = False
        self._stop = True
        self._stop_workers()
        self._abort_open(exc)

    def _abort_open(self, exc: BaseException) -> None:
        """Fail every open job with ``exc`` and end it."""
        for job in list(self._open):
            job.abort(exc)
            self._open.discard(job)
            job.finish()

    def _add_submit(
        self, key: tuple[Any, ...], fn: Callable[..., Any], item: Any, future: TaskFuture, name: str
    ) -> None:
        """A submitted call joins the open job of its function (and options), or starts one."""
        job = self._submits.get(key)
        fresh = job is None or job.done
        if fresh:
            blob, mode, timeout, retries = key
            job = self._submits[key] = SubmitJob(
                fn, mode, self.outcomes, timeout=timeout, retries=retries, name=name
            )
            job.fn_blob = blob
            self._prepare(job)
        assert job is not None
        job.add(item, future)
        if fresh:
            self._register(job)
        else:
            self._enqueue(job)

    def _add_input(self, job: Job, slab: Slab | None, last: bool) -> None:
        if slab is not None and not job.cancelled:
            job.pending.append(slab)
            self._enqueue(job)
        if last:
            job.closed_input = True
        self._finish_if_done(job)

    def _enqueue(self, job: Job) -> None:
        if job.pending and job not in self._queue:
            self._queue.append(job)

    def _deliver(self, job: Job, start: int, values: list[Any], errors: dict[int, Any] | None) -> None:
        self._counts["done"] += len(values) - (len(errors) if errors else 0)
        if errors:
            self._counts["failed"] += len(errors)
        if not job.cancelled:
            job.deliver(start, values, errors)
        self._finish_if_done(job)

    def _forget_submit(self, job: Job) -> None:
        """A finished submit job stops being the one new calls of its function join."""
        if isinstance(job, SubmitJob):
            key = (job.fn_blob, job.mode, job.timeout, job.retries)
            if self._submits.get(key) is job:
                del self._submits[key]

    # -- what each engine supplies -----------------------------------------------------
    def _prepare(self, job: Job) -> None:
        """Adjust a job before it is registered (the cluster swaps its chunker)."""

    def _call(self, command: Callable[[], None], *, required: bool = True) -> None:
        raise NotImplementedError

    def _register(self, job: Job) -> None:
        raise NotImplementedError

    def _finish_if_done(self, job: Job) -> None:
        raise NotImplementedError

    def _begin_close(self) -> None:
        raise NotImplementedError

    def _stop_workers(self) -> None:
        raise NotImplementedError

    def _workers_now(self) -> int:
        raise NotImplementedError

    def _terminate_now(self) -> None:
        """Stop now, on the engine's thread: fail what is unfinished (not broken: terminated)."""
        self._abort_all(BrokenPoolError("the pool was terminated"), broken=False)

    def _after_stop(self) -> None:
        """In the caller's thread, once the scheduler thread has ended (the journal's last write)."""


def pickle_function(fn: Callable[..., Any], name: str) -> bytes:
    try:
        return dumps_callable(fn)
    except Exception as exc:
        raise _ser_error(f"cannot pickle the function of {name}", fn, exc) from exc

"""The cluster engine: forklift's jobs run as chunks on a Dask distributed cluster.

Data path::

    caller threads                 driver thread (this module)                 Dask
    ──────────────                 ───────────────────────────                 ────
    Pool / Executor face
      │ start_job / submit ─┐
      │ feed / cancel       ├─► events (SimpleQueue) ─► _run_command
      │                     │                              │
      │                     │                  _dispatch: cut a chunk off the oldest
      │                     │                  job (adaptive size), pickle it, and
      │                     │                  client.submit(run_chunk, ...) ─────────► scheduler ─► worker
      │                     └─◄ ("done", key) ◄── Dask's callback thread ◄── the task ends │
      │                                          _on_done: deliver values / errors,       │
      │ ◄── Future / Event / SimpleQueue ─────── requeue what was lost ◄──────────────────┘
      │                                          _check_health: workers present? scheduler back?

The jobs (``_engine.jobs``: SubmitJob, CollectJob, StreamJob) are the local
engine's own; only how chunks travel differs. So ``map``, ``imap``,
``apply_async``, ``submit``, progress bars and read-ahead behave as on one machine.

Invariants:

1. Only the driver thread touches jobs' scheduling state and Dask futures'
   bookkeeping (``_flights``); callers talk to it through the events queue.
2. Every item is at each moment in one place: its job's pending input, the
   solo queue (to run alone after its chunk failed as a whole), one flight
   (a Dask future), or delivered. A flight's result is delivered at most once;
   a chunk that Dask cancelled (scheduler restarted) goes back to pending, never
   silently away.
3. Every wait is bounded: no workers (or no scheduler) for ``wait`` seconds
   while work is waiting fails that work with :class:`ClusterError`.

Dask re-runs a chunk whose worker died (up to ``allowed-failures`` deaths, then
``KilledWorker``), so a task may run more than once: tasks must be idempotent.
"""

from __future__ import annotations

import itertools
import logging
import queue
import threading
import time
import uuid
import weakref
from collections import deque
from collections.abc import Callable
from typing import Any

from .._engine import forks
from .._engine.api import WorkerState
from .._engine.chunker import Chunker
from .._engine.front import COUNTERS, SchedulerFront
from .._engine.futures import Outcomes
from .._engine.jobs import Job, StreamJob, SubmitJob, annotate_serialization
from .._serialize import ErrorRecord, dumps, loads, rebuild_exception
from .._serialize import serialization_error as _ser_error
from ..errors import BrokenPoolError, ClusterError, SerializationError, TaskTimeout, WorkerLostError
from . import config
from .runner import name_task, run_chunk

_log = logging.getLogger("forklift")


class Flight:
    """One chunk in flight: a Dask future and the items it carries."""

    __slots__ = ("attempts", "future", "items", "job", "solo", "start")

    def __init__(self, job: Job, start: int, items: list[Any], attempts: int, solo: bool) -> None:
        self.job = job
        self.start = start
        self.items = items
        self.attempts = attempts
        self.solo = solo  # run alone after its chunk failed as a whole
        self.future: Any = None


class ClusterEngine(SchedulerFront):
    """Runs jobs on a Dask cluster through one ``distributed.Client``."""

    start_method = "cluster"
    sees_workers = False  # Dask's dashboard shows its workers

    def __init__(self, client: Any, *, address: str, wait: float, on_close: Callable[[], None]) -> None:
        self.client = client
        self.address = address
        self._starve_after = wait
        self._on_close = on_close
        self._events: queue.SimpleQueue[tuple[str, Any]] = queue.SimpleQueue()
        self._queue: deque[Job] = deque()  # jobs with pending items, oldest first
        self._open: set[Job] = set()
        self._streams: weakref.WeakSet[StreamJob] = weakref.WeakSet()
        self._submits: dict[tuple[Any, ...], SubmitJob] = {}
        self._flights: dict[str, Flight] = {}
        self._solo: deque[tuple[Job, int, Any, int]] = deque()  # (job, index, item, attempts)
        self._prefix = f"forklift-{uuid.uuid4().hex[:10]}"
        self._seq = itertools.count()
        self._accepting = True
        self._closing = False
        self._stop = False
        self._broken: BrokenPoolError | None = None
        self._counts = dict.fromkeys((*COUNTERS, "resubmitted"), 0)
        self._workers = self._poll_workers()
        self._counts["started"] = len(self._workers)
        self.processes = max(1, sum(self._workers.values()))
        self._last_health = time.monotonic()
        self._starved_since: float | None = None  # work waiting, but no worker / no scheduler
        self.outcomes = Outcomes("forklift-cluster")
        self._thread = threading.Thread(target=self._run, name="forklift-cluster", daemon=True)
        self.outcomes.scheduler = self._thread
        self._thread.start()

    # ------------------------------------------------------------------
    # Public API: any thread (the same as the local Engine's)
    # ------------------------------------------------------------------
    def _prepare(self, job: Job) -> None:
        job.chunker = Chunker(job.chunker.fixed, target_seconds=config.CHUNK_SECONDS)  # a Dask task: ~3 ms

    def cancel(self, job: Job, *, kill_running: bool = False) -> None:
        self._call(lambda: self._cancel(job), required=False)

    def worker_pids(self) -> list[int]:
        """Dask workers are on other machines: their addresses, not pids, say where they are."""
        return []

    def worker_states(self) -> list[WorkerState]:
        return []

    def worker_addresses(self) -> list[str]:
        return sorted(self._workers)

    def _workers_now(self) -> int:
        return len(self._workers)

    def _call(self, command: Callable[[], None], *, required: bool = True) -> None:
        if self.outcomes.generation != forks.generation():  # a fork: no driver thread here
            if required:
                self.check_process()
            return
        if self._stop and not self._thread.is_alive():
            if required:
                self.check_running()
                raise ValueError("Pool not running")
            return
        self._events.put(("cmd", command))

    # ------------------------------------------------------------------
    # The driver thread
    # ------------------------------------------------------------------
    def _run(self) -> None:
        try:
            while not self._stop:
                self._dispatch()
                if self._closing and not self._open and not self._flights:
                    break
                self._handle(self._next_event())
                self._handle_queued_events()
                self._check_health()
        except BaseException as exc:  # a bug in forklift: fail loudly, never hang
            err = BrokenPoolError(f"forklift's cluster driver failed: {type(exc).__name__}: {exc}")
            err.__cause__ = exc
            self._abort_all(err)
        finally:
            self._stop = True
            self._release_all()
            self._refuse_late_commands()
            self.outcomes.close()
            self._on_close()

    def _next_event(self) -> tuple[str, Any] | None:
        retry = self.outcomes.retry()  # futures whose lock a caller held: try them again soon
        try:
            return self._events.get(timeout=min(retry or config.HEALTH_INTERVAL, config.HEALTH_INTERVAL))
        except queue.Empty:
            return None

    def _handle_queued_events(self) -> None:
        while True:
            try:
                event = self._events.get_nowait()
            except queue.Empty:
                return
            self._handle(event)

    def _handle(self, event: tuple[str, Any] | None) -> None:
        if event is None:
            return
        kind, value = event
        if kind == "cmd":
            value()
        else:
            flight = self._flights.pop(value, None)
            if flight is not None:
                self._on_done(flight)

    def _refuse_late_commands(self) -> None:
        """Run what was queued before the driver ended (each refuses its job), then fail the rest."""
        while True:
            try:
                kind, value = self._events.get_nowait()
            except queue.Empty:
                break
            if kind == "cmd":
                try:
                    value()
                except Exception:  # a bug: say so, and go on refusing the rest
                    _log.exception("forklift: a command failed after the pool stopped")
        self._abort_open(self._stopped_error())

    # -- jobs ------------------------------------------------------------------
    def _register(self, job: Job) -> None:
        if self._refused(job):
            return
        self._open.add(job)
        self._enqueue(job)
        self._finish_if_done(job)

    def _cancel(self, job: Job) -> None:
        job.cancel()
        doomed = [key for key, f in self._flights.items() if f.job is job]
        for key in doomed:
            self._release(self._flights.pop(key))
        self._solo = deque(s for s in self._solo if s[0] is not job)
        self._finish_if_done(job)

    def _inflight(self, job: Job) -> int:
        return sum(len(f.items) for f in self._flights.values() if f.job is job) + sum(
            1 for s in self._solo if s[0] is job
        )

    def _finish_if_done(self, job: Job) -> None:
        job.inflight = self._inflight(job)
        if job.done and job in self._open:
            self._open.discard(job)
            job.finish()
            self._forget_submit(job)

    # -- dispatch ----------------------------------------------------------------
    def _dispatch(self) -> None:
        """Keep ``config.IN_FLIGHT`` chunks per worker thread at Dask, solo items first."""
        if self._starved_since is not None:
            return  # no workers or no scheduler: hold the work until they are back
        room = config.IN_FLIGHT * self.processes - len(self._flights)
        while room > 0 and self._solo:
            job, index, item, attempts = self._solo.popleft()
            self._send(job, index, [item], attempts, solo=True)
            room -= 1
        while room > 0 and self._queue:
            job = self._queue[0]
            if job.cancelled or not job.pending:
                self._queue.popleft()
                self._finish_if_done(job)
                continue
            size = job.chunker.next_size(job.remaining(), self.processes, job.pending_items())
            slab = job.take(size)
            if not job.pending:
                self._queue.popleft()
            else:
                self._queue.rotate(-1)  # round-robin between open jobs
            if slab.items:
                self._send(job, slab.start, slab.items, slab.attempts, solo=False)
                room -= 1
            self._finish_if_done(job)

    def _send(self, job: Job, start: int, items: list[Any], attempts: int, *, solo: bool) -> None:
        flight = Flight(job, start, items, attempts, solo)
        try:
            payload = dumps(items)
        except Exception as exc:
            self._fail_items(flight, exc, serialization=True)
            return
        job.chunker.observe_payload(len(items), len(payload))
        key = f"{self._prefix}-{next(self._seq)}"
        try:
            future = self.client.submit(
                run_chunk,
                job.fn_blob,
                job.mode,
                payload,
                job.timeout,
                job.retries,
                key=key,
                pure=False,
            )
        except Exception as exc:
            err = ClusterError(f"could not submit to the cluster at {self.address}: {exc}")
            self._fail_items(flight, err)
            return
        flight.future = future
        self._flights[key] = flight
        future.add_done_callback(lambda f, key=key: self._events.put(("done", key)))
        job.inflight = self._inflight(job)

    # -- results -------------------------------------------------------------------
    def _on_done(self, flight: Flight) -> None:
        future, job = flight.future, flight.job
        status = future.status
        if job.cancelled:
            self._release(flight)
            self._finish_if_done(job)
            return
        if status == "finished":
            try:
                blob = future.result(timeout=config.RESULT_TIMEOUT)
            except Exception:  # lost between "finished" and our fetch: run it again
                self._lost(flight)
            else:
                self._release(flight)
                self._finished(flight, loads(blob))
        elif status == "error":
            try:
                error = future.exception(timeout=config.RESULT_TIMEOUT)
            except Exception:
                self._lost(flight)
            else:
                self._release(flight)
                self._erred(flight, error)
        else:  # "cancelled" (scheduler restarted, connection lost) or "lost"
            self._lost(flight)
        self._finish_if_done(job)

    def _finished(self, flight: Flight, answer: tuple[Any, ...]) -> None:
        job = flight.job
        if answer[0] == "all":  # nothing ran: the arguments or the function would not unpickle
            self._fail_items(flight, rebuild_exception(answer[2]), serialization=True)
            return
        _, values, records, seconds = answer
        job.chunker.observe(len(values), seconds)
        errors = {i: self._rebuild(job, flight.start + i, rec) for i, rec in records.items()}
        self._deliver(job, flight.start, values, errors or None)

    def _rebuild(self, job: Job, index: int, record: ErrorRecord) -> BaseException:
        error = rebuild_exception(record)
        if isinstance(error, TaskTimeout):
            self._counts["timeouts"] += 1
        return annotate_serialization(job, index, name_task(error, job.describe(index)))

    def _erred(self, flight: Flight, exc: BaseException | None) -> None:
        """The Dask task itself failed (not an item: those come back as records)."""
        from distributed.scheduler import KilledWorker

        if isinstance(exc, KilledWorker):
            self._counts["lost"] += 1
            if not flight.solo and len(flight.items) > 1:
                self._isolate(flight)  # which item kills its workers? run each alone
                return
            if flight.attempts < flight.job.retries:
                self._counts["retries"] += 1
                self._solo.append((flight.job, flight.start, flight.items[0], flight.attempts + 1))
                return
            err = WorkerLostError(
                f"{flight.job.describe(flight.start)}: every Dask worker that ran it died "
                f"(Dask gave up after its allowed-failures; retries={flight.job.retries} used). "
                f"Out of memory, a crash in C code, or os._exit() in the task? ({exc})"
            )
            err.__cause__ = exc
            self._fail_items(flight, err)
            return
        if not flight.solo and len(flight.items) > 1:
            self._isolate(flight)
            return
        err2 = exc if exc is not None else ClusterError("the Dask task failed without an exception")
        self._fail_items(flight, err2)

    def _lost(self, flight: Flight) -> None:
        """Dask dropped the chunk (scheduler restarted): hold it and resubmit when workers are back."""
        self._release(flight)
        self._counts["resubmitted"] += len(flight.items)
        if flight.solo:
            self._solo.appendleft((flight.job, flight.start, flight.items[0], flight.attempts))
        else:
            flight.job.requeue(flight.start, flight.items, flight.attempts)
            self._enqueue(flight.job)
        if self._starved_since is None:
            self._starved_since = time.monotonic()
            self._last_health = 0.0  # check at once

    def _isolate(self, flight: Flight) -> None:
        for k, item in enumerate(flight.items):
            self._solo.append((flight.job, flight.start + k, item, flight.attempts))

    def _fail_items(self, flight: Flight, exc: BaseException, *, serialization: bool = False) -> None:
        if serialization and not isinstance(exc, ClusterError) and len(flight.items) > 1 and not flight.solo:
            self._isolate(flight)
            return
        for k in range(len(flight.items)):
            index = flight.start + k
            err: BaseException = exc
            if isinstance(exc, SerializationError):
                err = exc.for_task(flight.job.describe(index))
            elif serialization:
                err = _ser_error(
                    "cannot pickle the arguments", flight.items[k], exc, task=flight.job.describe(index)
                )
            self._deliver(flight.job, index, [None], {0: err})

    def _release(self, flight: Flight) -> None:
        # Dropping the last reference releases the key (a non-blocking message on the
        # client's stream); the scheduler then forgets the task, also a queued or running
        # one. Future.cancel() would be a blocking round trip, and hang while the
        # scheduler is unreachable.
        flight.future = None

    def _release_all(self) -> None:
        for key in list(self._flights):
            self._release(self._flights.pop(key))

    # -- health ----------------------------------------------------------------------
    def _poll_workers(self) -> dict[str, int]:
        """``{worker address: threads}`` as the scheduler sees it now; raises if unreachable."""
        found: dict[str, int] = self.client.nthreads(callback_timeout=config.HEALTH_TIMEOUT)
        return found

    def _check_health(self) -> None:
        """Track the cluster's workers; fail waiting work when none come for ``wait`` seconds."""
        waiting = bool(self._flights or self._solo or self._queue)
        now = time.monotonic()
        interval = config.HEALTH_INTERVAL if waiting else 5 * config.HEALTH_INTERVAL
        if now - self._last_health < interval:
            return
        self._last_health = now
        try:
            self._workers = self._poll_workers()
            reachable = self.client.status == "running"
        except Exception:
            self._workers, reachable = {}, False
        if self._workers:
            self.processes = max(1, sum(self._workers.values()))
            self._counts["started"] = max(self._counts["started"], len(self._workers))
        if reachable and self._workers:
            self._starved_since = None
            return
        if not waiting:
            self._starved_since = None
            return
        if self._starved_since is None:
            self._starved_since = now
        elif now - self._starved_since > self._starve_after:
            self._starve(reachable)

    def _starve(self, reachable: bool) -> None:
        exc = ClusterError(self._starved_message(reachable))
        self._starved_since = None
        self._release_all()
        self._solo.clear()
        self._abort_open(exc)
        self._queue.clear()
        self._submits.clear()

    def _starved_message(self, reachable: bool) -> str:
        """Why waiting work fails: no workers (start some), or no scheduler (is it running?)."""
        waited = f"for {self._starve_after:g} s while tasks were waiting"
        if reachable:
            return (
                f"the cluster at {self.address} has had no workers {waited}; start workers with "
                f"'forklift cluster worker {self.address} --credentials DIR' (or raise FORKLIFT_CLUSTER_WAIT)"
            )
        return (
            f"the scheduler at {self.address} has been unreachable {waited}; is "
            "'forklift cluster scheduler' still running there, and the port open? "
            "(FORKLIFT_CLUSTER_WAIT sets how long work waits)"
        )

    # -- ending -------------------------------------------------------------------
    def _begin_close(self) -> None:
        self._closing = True

    def _stop_workers(self) -> None:
        self._release_all()  # Dask's workers are not ours to stop: forget their chunks

"""``forklift.Pool``: the ``multiprocessing.Pool`` API on forklift's engine.

Same methods, same argument order, same results; in addition, keyword-only
options that the standard library lacks: ``retries``, ``timeout`` (per task),
``progress``, ``start_method``, ``max_memory``. The differences a user can see:

- a worker that dies fails only its task (``WorkerLostError``), never a hang;
- lambdas, closures and ``__main__`` functions work (cloudpickle);
- ``chunksize`` may be left out everywhere: chunks adapt to task duration;
- ``imap`` / ``imap_unordered`` read their input lazily, with a bound (an input
  that raises gives the results before it, then its error, as the stdlib's do);
- an unfinished ``AsyncResult`` of a terminated pool raises instead of hanging.
"""

from __future__ import annotations

import concurrent.futures
import logging
import multiprocessing
import os
import warnings
import weakref
from collections.abc import Callable, Iterable, Mapping
from typing import TYPE_CHECKING, Any, Generic, TypeVar

from ._checks import flag, wait_seconds
from ._engine.api import Statistics
from ._engine.futures import Outcomes
from ._engine.jobs import Job, ResultIterator
from ._options import (
    UNSET,
    CallKeywords,
    CallOptions,
    Journaling,
    MapKeywords,
    Maybe,
    PoolOptions,
    pool_tasks_per_child,
)
from ._places import make_place
from ._places.base import CALL_ONE, CALL_STAR, check_callable
from ._start_methods import start_method_of

if TYPE_CHECKING:
    from typing_extensions import Unpack

__all__ = ["ApplyResult", "AsyncResult", "IMapIterator", "MapResult", "Pool"]

T = TypeVar("T")

IMapIterator = ResultIterator


class AsyncResult(Generic[T]):
    """The result of ``apply_async`` / ``map_async``, as in multiprocessing.

    ``callback`` / ``error_callback`` run before the result counts as ready, as in
    the standard library, on the pool's callbacks thread (never on the scheduler's:
    a callback may block, even on this pool, without stalling it). Waiting, from a
    callback, for a result whose own callback has not run yet raises RuntimeError.
    """

    def __init__(
        self,
        outcomes: Outcomes,
        callback: Callable[[T], object] | None = None,
        error_callback: Callable[[BaseException], object] | None = None,
    ) -> None:
        for cb, name in ((callback, "callback"), (error_callback, "error_callback")):
            if cb is not None and not callable(cb):
                raise TypeError(f"{name} must be callable")
        self._callback = callback
        self._error_callback = error_callback
        hook = self._run_callback if callback is not None or error_callback is not None else None
        self._future = outcomes.future(hook)  # the outcome, and readiness
        self._outcomes = outcomes
        self._job: Job | None = None  # map_async's job
        self._confirm: Callable[[], None] | None = None  # run once in the caller's thread (journal)

    def _set(self, ok: bool, value: Any) -> None:
        """The outcome (from the scheduler thread, or the caller's)."""
        self._job = None  # the job refers back to us: free both (and big results) without gc
        self._outcomes.settle(self._future, ok, value)

    def _run_callback(self, ok: bool, value: Any) -> None:
        if ok and self._callback is not None:
            self._callback(value)
        elif not ok and self._error_callback is not None:
            self._error_callback(value)

    def ready(self) -> bool:
        return self._future.done()

    def successful(self) -> bool:
        if not self.ready():
            raise ValueError(f"{self!r} not ready")
        return not self._future.cancelled() and self._future.exception() is None

    def wait(self, timeout: float | None = None) -> None:
        timeout = wait_seconds("timeout", timeout)
        try:
            self._future.exception(timeout)
        except (concurrent.futures.TimeoutError, concurrent.futures.CancelledError):
            pass

    def get(self, timeout: float | None = None) -> T:
        timeout = wait_seconds("timeout", timeout)
        try:
            value = self._future.result(timeout)
        except concurrent.futures.TimeoutError:
            if not self._future.done():
                raise multiprocessing.TimeoutError from None
            self._confirmed(quiet=True)
            raise  # the task's own TimeoutError (TaskTimeout is one)
        except BaseException:
            self._confirmed(quiet=True)
            raise
        self._confirmed(quiet=False)
        return value  # type: ignore[no-any-return]

    def _confirmed(self, *, quiet: bool) -> None:
        """Once done: the call's journal has its rows (JournalError if it cannot, unless quiet)."""
        confirm, self._confirm = self._confirm, None
        if confirm is not None and self._future.done():
            confirm_journal(confirm, quiet=quiet)


def confirm_journal(confirm: Callable[[], None], *, quiet: bool) -> None:
    """Write a finished call's journal rows; a failure is a JournalError, or (quiet) a log line:
    the call's own error, already on its way to the caller, must not be replaced by it."""
    try:
        confirm()
    except Exception as exc:
        if not quiet:
            raise
        logging.getLogger("forklift").error("%s", exc)


ApplyResult = AsyncResult
MapResult = AsyncResult


class Pool:
    """A process pool with the ``multiprocessing.Pool`` API that survives its workers.

    ``Pool(processes=None, initializer=None, initargs=(), maxtasksperchild=None)``
    as in the standard library (``processes`` defaults to the number of CPUs),
    plus keyword-only options:

    - ``retries``: how many times a task whose worker died is run again (0).
    - ``timeout``: seconds a task may run; past it, its worker and the worker's
      children are killed and the task fails with ``TaskTimeout`` (or retries).
    - ``progress``: draw a progress bar for map / imap / starmap calls (True, or
      its description); ``"workers"`` adds a live table of what each worker does.
    - ``start_method``: "fork", "forkserver" (default on Linux) or "spawn".
    - ``max_tasks_per_child`` (same as ``maxtasksperchild``, counted in tasks,
      not chunks) and ``max_memory`` (bytes of RSS): replace a worker after it.
      A bad ``maxtasksperchild`` (either spelling) is a ValueError, as in the stdlib.
    - ``init_timeout``: seconds a worker may take to start and run ``initializer``;
      past it the pool fails with ``BrokenPoolError`` instead of every call waiting.
      Default: no limit, or ``FORKLIFT_INIT_TIMEOUT`` (60 s) once a task timeout is set.

    ``retries``, ``timeout`` and ``progress`` may also be given per call.

    ``journal="run.db"`` records every call in a SQLite journal (see
    :mod:`forklift.journal`; ``forklift report`` draws it); ``map`` and ``starmap``
    also take ``journal=`` for one call and ``resume=True`` to skip the inputs an
    earlier, interrupted run of the same call finished (``Pool(journal=...,
    resume=True)`` makes that every map's default; a map the journal has no run
    of then simply runs, where an explicit ``resume=True`` is refused). Results
    are stored, for a later resume, only by calls that resume.

    ``forward_logging`` (default True, or ``$FORKLIFT_FORWARD_LOGGING``): the workers'
    ``logging`` records are handled by this process's handlers, each tagged with its
    task (``record.forklift_task``, ``record.forklift_call``; ``record.process`` is the
    worker's pid); False leaves the workers' logging as they configure it.

    ``address`` (or ``$FORKLIFT_ADDRESS``) runs the pool on a Dask cluster
    instead: ``"tls://host:8786"`` with ``credentials`` (a directory made by
    ``forklift cluster credentials``, or ``$FORKLIFT_CREDENTIALS``), or
    ``"local"`` for an embedded local cluster. See docs/cluster.md.
    """

    def __init__(
        self,
        processes: int | None = None,
        initializer: Callable[..., object] | None = None,
        initargs: Iterable[Any] = (),
        maxtasksperchild: int | None = None,
        context: Any = None,
        *,
        retries: int = 0,
        timeout: float | None = None,
        progress: bool | str = False,
        start_method: str | None = None,
        max_tasks_per_child: int | None = None,
        max_memory: int | None = None,
        address: str | None = None,
        credentials: str | os.PathLike[str] | None = None,
        journal: str | os.PathLike[str] | None = None,
        resume: bool = False,
        init_timeout: float | None = None,
        forward_logging: bool | None = None,
    ) -> None:
        if flag("resume", resume) and journal is None:
            raise ValueError("resume=True needs a journal: Pool(journal='run.db', resume=True)")
        self._resume = resume
        if start_method is None:
            start_method = start_method_of(context, "context")
        options = PoolOptions.build(
            processes=processes,
            address=address,
            credentials=credentials,
            journal=journal,
            initializer=initializer,
            initargs=tuple(initargs),
            start_method=start_method,
            max_tasks_per_child=pool_tasks_per_child(maxtasksperchild, max_tasks_per_child),
            max_memory=max_memory,
            init_timeout=init_timeout,
            calls=CallOptions.build(timeout, retries, progress),
            forward_logging=forward_logging,
            local_only={
                "initializer": initializer,
                "maxtasksperchild": maxtasksperchild,
                "max_tasks_per_child": max_tasks_per_child,
                "max_memory": max_memory,
                "start_method": start_method,
                "init_timeout": init_timeout,
            },
        )
        self._place = make_place(options)
        self._engine = self._place.engine
        self._finalizer = weakref.finalize(self, self._engine.close)

    # -- one call -------------------------------------------------------------
    def apply(
        self,
        func: Callable[..., T],
        args: Iterable[Any] = (),
        kwds: Mapping[str, Any] | None = None,
        *,
        timeout: Maybe[float | None] = UNSET,
        retries: Maybe[int] = UNSET,
    ) -> T:
        """Run ``func(*args, **kwds)`` in a worker and return its result."""
        result = self.apply_async(func, args, kwds, timeout=timeout, retries=retries)
        return _wait(result, self)

    def apply_async(
        self,
        func: Callable[..., T],
        args: Iterable[Any] = (),
        kwds: Mapping[str, Any] | None = None,
        callback: Callable[[T], object] | None = None,
        error_callback: Callable[[BaseException], object] | None = None,
        *,
        timeout: Maybe[float | None] = UNSET,
        retries: Maybe[int] = UNSET,
    ) -> AsyncResult[T]:
        """Start ``func(*args, **kwds)``; return an AsyncResult at once."""
        call = self._place.defaults.given(timeout, retries)
        result: AsyncResult[T] = AsyncResult(self._engine.outcomes, callback, error_callback)
        self._place.submit(
            func, tuple(args), dict(kwds or {}), name="apply", call=call, future=result._future
        )
        return result

    # -- many calls, whole list -------------------------------------------------
    def map(
        self,
        func: Callable[[Any], T],
        iterable: Iterable[Any],
        chunksize: int | None = None,
        **options: Unpack[MapKeywords],
    ) -> list[T]:
        """``list(map(func, iterable))`` in parallel; the first failure is raised.

        Keywords: ``timeout``, ``retries``, ``progress`` for this call; ``journal`` records
        it (also without a pool journal); ``resume=True`` skips the inputs an earlier run
        of it finished, ``force=True`` then recomputes where the function's code has
        changed since (see the class docstring).
        """
        return _wait(self._map_async(func, iterable, chunksize, CALL_ONE, "map", None, None, options), self)

    def map_async(
        self,
        func: Callable[[Any], T],
        iterable: Iterable[Any],
        chunksize: int | None = None,
        callback: Callable[[list[T]], object] | None = None,
        error_callback: Callable[[BaseException], object] | None = None,
        **options: Unpack[MapKeywords],
    ) -> AsyncResult[list[T]]:
        return self._map_async(func, iterable, chunksize, CALL_ONE, "map", callback, error_callback, options)

    def starmap(
        self,
        func: Callable[..., T],
        iterable: Iterable[Iterable[Any]],
        chunksize: int | None = None,
        **options: Unpack[MapKeywords],
    ) -> list[T]:
        """Like ``map``, but each item is unpacked as the arguments: ``func(*item)``."""
        return _wait(
            self._map_async(func, iterable, chunksize, CALL_STAR, "starmap", None, None, options), self
        )

    def starmap_async(
        self,
        func: Callable[..., T],
        iterable: Iterable[Iterable[Any]],
        chunksize: int | None = None,
        callback: Callable[[list[T]], object] | None = None,
        error_callback: Callable[[BaseException], object] | None = None,
        **options: Unpack[MapKeywords],
    ) -> AsyncResult[list[T]]:
        return self._map_async(
            func, iterable, chunksize, CALL_STAR, "starmap", callback, error_callback, options
        )

    def _map_async(
        self,
        func: Callable[..., Any],
        iterable: Iterable[Any],
        chunksize: int | None,
        mode: int,
        name: str,
        callback: Callable[[Any], object] | None,
        error_callback: Callable[[BaseException], object] | None,
        options: MapKeywords,
    ) -> AsyncResult[Any]:
        call = self._place.defaults.of(options, journaling=True)
        journaling = Journaling.of(options, self._resume)
        check_callable(func)
        self._engine.check_running()
        items = iterable if isinstance(iterable, list) else list(iterable)
        result: AsyncResult[Any] = AsyncResult(self._engine.outcomes, callback, error_callback)
        result._job, result._confirm = self._place.collect(
            func, items, mode, result._set, name=name, call=call, chunksize=chunksize, journaling=journaling
        )
        return result

    # -- many calls, lazily ----------------------------------------------------------
    def imap(
        self,
        func: Callable[[Any], T],
        iterable: Iterable[Any],
        chunksize: int | None = None,
        *,
        buffersize: int | None = None,
        **options: Unpack[CallKeywords],
    ) -> IMapIterator:
        """Results in input order, as they become ready; input read lazily.

        ``buffersize``: at most that many items taken whose results have not been yielded
        yet, as ``Executor.map(buffersize=)`` (Python 3.14); None: forklift's own read-ahead.
        """
        call = self._place.defaults.of(options)
        return self._stream(func, iterable, chunksize, True, "imap", call, buffersize)

    def imap_unordered(
        self,
        func: Callable[[Any], T],
        iterable: Iterable[Any],
        chunksize: int | None = None,
        *,
        buffersize: int | None = None,
        **options: Unpack[CallKeywords],
    ) -> IMapIterator:
        """Results in completion order; input read lazily (``buffersize``: as ``imap``)."""
        call = self._place.defaults.of(options)
        return self._stream(func, iterable, chunksize, False, "imap_unordered", call, buffersize)

    def _stream(
        self,
        func: Callable[..., Any],
        iterable: Iterable[Any],
        chunksize: int | None,
        ordered: bool,
        name: str,
        call: CallOptions,
        buffersize: int | None = None,
    ) -> IMapIterator:
        return self._place.stream(
            func,
            iterable,
            CALL_ONE,
            ordered=ordered,
            name=name,
            timeout_error=multiprocessing.TimeoutError,
            call=call,
            chunksize=chunksize,
            buffersize=buffersize,
        )

    # -- life cycle -------------------------------------------------------------------
    def close(self) -> None:
        """Accept no more tasks; workers exit when the submitted ones are done."""
        self._engine.close()

    def terminate(self) -> None:
        """Stop now: kill the workers (and their children); unfinished results fail."""
        self._engine.terminate()

    def join(self) -> None:
        """Wait for the workers to exit; call close() or terminate() first."""
        self._engine.join()

    def __enter__(self) -> Pool:
        self._engine.check_running()
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.terminate()

    # -- introspection ------------------------------------------------------------------
    @property
    def processes(self) -> int:
        return self._place.processes

    @property
    def start_method(self) -> str:
        return self._engine.start_method

    @property
    def address(self) -> str | None:
        """The cluster's scheduler address (``tls://host:port``), or None on this machine."""
        return self._place.address

    @property
    def client(self) -> Any:
        """The ``distributed.Client`` of a pool on a cluster (Dask's own API, for what forklift
        does not cover); None on this machine."""
        return self._place.client

    def worker_pids(self) -> list[int]:
        """Process ids of the current workers."""
        return self._engine.worker_pids()

    def statistics(self) -> Statistics:
        """Counters: tasks done / failed, retries, workers started / lost, timeouts."""
        return self._place.statistics()

    def __repr__(self) -> str:
        state = "running" if self._engine.alive else "stopped"
        return f"<forklift.Pool {state} processes={self.processes} start_method={self.start_method}>"

    def __reduce__(self) -> Any:
        raise NotImplementedError("pool objects cannot be passed between processes or pickled")

    def __del__(self, _warn: Callable[..., None] = warnings.warn) -> None:
        """A pool dropped while running (never closed, terminated or left by ``with``) leaked
        its workers until now: say so, with the stdlib's ResourceWarning and text."""
        engine = getattr(self, "_engine", None)  # None: __init__ failed
        if engine is not None and engine.alive and not engine.shut_down():
            _warn(f"unclosed running multiprocessing pool {self!r}", ResourceWarning, source=self)


def _wait(result: AsyncResult[T], pool: Pool) -> T:
    """get() for the blocking calls: Ctrl-C cancels the call and stops its workers."""
    try:
        return result.get()
    except KeyboardInterrupt:
        if result._job is not None:
            pool._place.cancel(result._job, kill_running=True)
        result._future.cancel()  # if it has not started; the with block kills the rest
        raise

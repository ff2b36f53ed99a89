"""``forklift.Executor``: a ``concurrent.futures.Executor`` on forklift's engine.

Futures are plain ``concurrent.futures.Future`` objects, so ``as_completed``
and ``wait`` work. Unlike ``ProcessPoolExecutor``:

- a worker that dies fails only the future it was running (``WorkerLostError``);
  the executor is never "broken" by it and goes on;
- ``map`` is lazy, with bounded read-ahead, and chunks tiny tasks by itself; so
  an input that raises gives the results of the items before it, then its error
  (ProcessPoolExecutor reads the whole input at the ``map()`` call and raises there);
- leaving a ``with`` block by Ctrl-C kills the workers at once instead of
  waiting for every queued task.
"""

from __future__ import annotations

import concurrent.futures
import contextlib
import os
import weakref
from collections.abc import Callable, Iterable, Iterator
from typing import TYPE_CHECKING, Any, TypedDict, TypeVar

from ._checks import wait_seconds
from ._engine.api import Statistics
from ._options import UNSET, CallOptions, Maybe, PoolOptions, Progress, check_buffersize, check_keywords
from ._places import make_place
from ._places.base import CALL_ONE, CALL_STAR, deadline_after
from ._start_methods import start_method_of

if TYPE_CHECKING:
    from typing_extensions import Unpack

__all__ = ["Executor", "ExecutorOptions"]

T = TypeVar("T")


class Executor(concurrent.futures.Executor):
    """A process pool executor that survives its workers.

    ``Executor(max_workers=None, mp_context=None, initializer=None, initargs=())``
    as ``ProcessPoolExecutor``, plus keyword-only ``max_tasks_per_child``,
    ``retries``, ``timeout`` (per task, seconds), ``progress`` (for ``map``),
    ``start_method``, ``max_memory`` and ``init_timeout`` (see :class:`forklift.Pool`), and
    ``address`` / ``credentials`` to run on a Dask cluster (docs/cluster.md), and
    ``journal`` to record every call in a SQLite journal (forklift.journal).
    """

    def __init__(
        self,
        max_workers: int | None = None,
        mp_context: Any = None,
        initializer: Callable[..., object] | None = None,
        initargs: tuple[Any, ...] = (),
        *,
        max_tasks_per_child: int | None = None,
        retries: int = 0,
        timeout: float | None = None,
        progress: bool | str = False,
        start_method: str | None = None,
        max_memory: int | None = None,
        address: str | None = None,
        credentials: str | os.PathLike[str] | None = None,
        journal: str | os.PathLike[str] | None = None,
        init_timeout: float | None = None,
        forward_logging: bool | None = None,
    ) -> None:
        if start_method is None:
            start_method = start_method_of(mp_context, "mp_context")
        options = PoolOptions.build(
            processes=max_workers,
            address=address,
            credentials=credentials,
            journal=journal,
            initializer=initializer,
            initargs=tuple(initargs),
            start_method=start_method,
            max_tasks_per_child=max_tasks_per_child,
            max_memory=max_memory,
            init_timeout=init_timeout,
            calls=CallOptions.build(timeout, retries, progress),
            forward_logging=forward_logging,
            local_only={
                "initializer": initializer,
                "max_tasks_per_child": max_tasks_per_child,
                "max_memory": max_memory,
                "start_method": start_method,
                "init_timeout": init_timeout,
            },
        )
        self._place = make_place(options)
        self._engine = self._place.engine
        self._futures: weakref.WeakSet[concurrent.futures.Future[Any]] = weakref.WeakSet()
        self._finalizer = weakref.finalize(self, self._engine.close)

    def submit(self, fn: Callable[..., T], /, *args: Any, **kwargs: Any) -> concurrent.futures.Future[T]:
        """Schedule ``fn(*args, **kwargs)``; return its Future."""
        return self._submit(fn, args, kwargs, self._place.defaults)

    def options(
        self, *, timeout: Maybe[float | None] = UNSET, retries: Maybe[int] = UNSET
    ) -> ExecutorOptions:
        """This executor with other per-task ``timeout`` / ``retries`` for the calls made through it.

        ``submit`` passes every keyword to the task, so per-call options go here:
        ``ex.options(timeout=5, retries=2).submit(fn, x)``.
        """
        return ExecutorOptions(self, self._place.defaults.given(timeout, retries))

    def _submit(
        self,
        fn: Callable[..., T],
        args: tuple[Any, ...],
        kwargs: dict[str, Any],
        call: CallOptions,
    ) -> concurrent.futures.Future[T]:
        with self._refused_after_shutdown():
            future = self._place.submit(fn, args, kwargs, name="submit", call=call)
        self._futures.add(future)
        return future

    @contextlib.contextmanager
    def _refused_after_shutdown(self) -> Iterator[None]:
        """The place refuses a job of a pool that stopped (ValueError): after shutdown(), say so
        in the stdlib's words."""
        try:
            yield
        except ValueError:
            if self._engine.shut_down():
                raise RuntimeError("cannot schedule new futures after shutdown") from None
            raise

    def _submit_alone(self, fn: Callable[[Any], T], arg: Any) -> concurrent.futures.Future[T]:
        """``submit(fn, arg)`` as a job of its own, never sent in one chunk with other submits.

        For forklift.joblib: joblib's batches are already its unit of work, and one slow
        batch must not hold back others that the chunker would have sent along with it, or
        that were sent to its worker behind it (no prefetch behind these jobs).
        """
        outcomes = self._engine.outcomes
        future = outcomes.future()

        def on_done(ok: bool, value: Any) -> None:  # the scheduler thread: callbacks run elsewhere
            outcomes.settle(future, ok, value[0] if ok else value)

        place = self._place
        with self._refused_after_shutdown():
            place.collect(
                fn, [arg], CALL_ONE, on_done, name="submit", call=place.defaults, prefetch_behind=False
            )
        self._futures.add(future)
        return future

    def map(
        self,
        fn: Callable[..., T],
        *iterables: Iterable[Any],
        timeout: float | None = None,
        chunksize: int | None = None,
        buffersize: int | None = None,
        task_timeout: Maybe[float | None] = UNSET,
        retries: Maybe[int] = UNSET,
        progress: Maybe[Progress] = UNSET,
    ) -> Iterator[T]:
        """``map(fn, *iterables)`` in parallel, lazily, results in input order.

        ``timeout`` counts from this call: a result not ready by then raises
        ``TimeoutError`` (as in concurrent.futures). ``task_timeout`` bounds each
        task's run time instead (see the class). ``chunksize`` is chosen
        automatically when left out. The input is read as results are taken: an
        input that raises does so after the results of the items before it.

        ``buffersize`` (Python 3.14's keyword, on every Python): at most that many items
        submitted whose results have not been yielded yet. ``map()`` takes the first
        ``buffersize`` items at once; each ``next()`` takes one more before it waits, and
        input reading pauses while the buffer is full. None (the default): forklift's own
        bounded read-ahead, a few chunks per worker.
        """
        call = self._place.defaults.given(task_timeout, retries, progress)
        return self._map(fn, iterables, timeout, chunksize, call, buffersize)

    def _map(
        self,
        fn: Callable[..., T],
        iterables: tuple[Iterable[Any], ...],
        timeout: float | None,
        chunksize: int | None,
        call: CallOptions,
        buffersize: int | None = None,
    ) -> Iterator[T]:
        buffersize = check_buffersize(buffersize)  # checked first, as the stdlib does
        if not iterables:
            raise TypeError("map() must have at least two arguments.")
        if self._engine.shut_down():
            raise RuntimeError("cannot schedule new futures after shutdown")
        timeout = wait_seconds("timeout", timeout)  # 0 or less: results must be ready at once
        mode, source = (CALL_ONE, iterables[0]) if len(iterables) == 1 else (CALL_STAR, zip(*iterables))
        it = self._place.stream(
            fn,
            source,
            mode,
            ordered=True,
            name="map",
            timeout_error=concurrent.futures.TimeoutError,
            call=call,
            deadline=deadline_after(timeout),
            chunksize=chunksize,
            buffersize=buffersize,
        )
        return it

    def shutdown(self, wait: bool = True, *, cancel_futures: bool = False) -> None:
        """Accept no more work; with ``cancel_futures``, cancel what has not started.

        ``map`` is lazy, so with ``wait=True`` the maps still open first read the
        rest of their input and their results stay available after shutdown,
        as with ProcessPoolExecutor (whose map submits everything at once).
        With ``wait=False`` or ``cancel_futures`` they take no more input, and
        iterating one past what it took raises RuntimeError.
        """
        if cancel_futures:
            for future in list(self._futures):
                future.cancel()
        if cancel_futures or not wait:
            self._engine.stop_inputs()
        self._engine.close()
        if wait:
            self._engine.join()

    def terminate(self) -> None:
        """Kill the workers (and their children) now; unfinished futures fail."""
        self._engine.terminate()

    def terminate_workers(self) -> None:
        """Python 3.14's ``ProcessPoolExecutor.terminate_workers()``, on every Python.

        As the stdlib: ``shutdown(wait=False, cancel_futures=True)`` (futures not started are
        cancelled, no new ones accepted), and the workers end at once. The futures that were
        running fail with ``BrokenPoolError`` (a ``BrokenProcessPool``, as in the stdlib).
        forklift ends the workers as ``terminate()`` does, with their children, and fails the
        running futures first: signalling a worker before that let the scheduler see a death
        and blame its task (``WorkerLostError``, seen on 3.12). So a worker's own SIGTERM
        handler does not run. A no-op on a pool already ended.
        """
        self.shutdown(wait=False, cancel_futures=True)
        self._engine.terminate()

    def kill_workers(self) -> None:
        """Python 3.14's ``ProcessPoolExecutor.kill_workers()``: as :meth:`terminate_workers`
        (forklift's ``terminate()`` kills the workers' trees in both)."""
        self.terminate_workers()

    def __exit__(self, exc_type: Any, exc: Any, tb: Any) -> None:
        if exc_type is not None and not issubclass(exc_type, Exception):
            self.terminate()  # Ctrl-C / SystemExit: do not wait for queued work
            return
        if exc_type is not None:
            self._engine.stop_inputs()  # the block failed: nobody will read its maps further
        self.shutdown(wait=True)

    @property
    def max_workers(self) -> int:
        return self._place.processes

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
        return self._engine.worker_pids()

    def statistics(self) -> Statistics:
        return self._place.statistics()


class ExecutorOptions:
    """An Executor seen with other per-task options (made by :meth:`Executor.options`)."""

    def __init__(self, executor: Executor, call: CallOptions) -> None:
        self._executor = executor
        self._call = call

    def submit(self, fn: Callable[..., T], /, *args: Any, **kwargs: Any) -> concurrent.futures.Future[T]:
        """``Executor.submit`` with these options."""
        return self._executor._submit(fn, args, kwargs, self._call)

    def map(self, fn: Callable[..., T], *iterables: Iterable[Any], **kw: Unpack[MapKeywords]) -> Iterator[T]:
        """``Executor.map`` with these options (the keywords given here win)."""
        check_keywords(kw, MapKeywords.__optional_keys__)
        call = self._call.given(
            kw.get("task_timeout", UNSET), kw.get("retries", UNSET), kw.get("progress", UNSET)
        )
        return self._executor._map(
            fn, iterables, kw.get("timeout"), kw.get("chunksize"), call, kw.get("buffersize")
        )


class MapKeywords(TypedDict, total=False):
    """What ``Executor.map`` takes besides the function and the iterables."""

    timeout: float | None
    chunksize: int | None
    buffersize: int | None
    task_timeout: float | None
    retries: int
    progress: Progress

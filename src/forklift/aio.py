"""``forklift.aio``: forklift's pool for asyncio code.

::

    async with forklift.aio.Pool(4, timeout=30) as pool:
        one = await pool.apply(fetch, (url,))
        every = await pool.map(parse, pages)
        async for row in pool.imap_unordered(score, rows):
            ...
        future = pool.submit(render, doc)   # an asyncio.Future; await it later

The same pool as :class:`forklift.Pool` (the same options: ``timeout``, ``retries``,
``progress``, ``journal``/``resume``, ``address=`` for a Dask cluster, ...), with calls
that never block the event loop:

- **Results come through the loop, with no thread per call.** The pool's scheduler
  thread hands each outcome to the loop with ``call_soon_threadsafe`` (for ``imap``:
  once per batch of results, and only while the consumer waits); nothing else runs
  on the loop's thread but the cheap hand-over of results.
- **Cancellation is real.** Cancelling the task that awaits a call (``task.cancel()``,
  ``asyncio.timeout``, ``asyncio.wait_for``), cancelling a ``submit`` future, or
  closing an ``imap`` iterator (``aclose()``, or leaving ``async for`` by an
  exception) cancels the call: what has not started is dropped, and a task already
  running is killed with its process tree (its worker is replaced), not left to
  finish in the background.
- Starting the pool (forking its workers, or connecting to a cluster) and stopping
  it run on a thread, so ``async with`` does not stall the loop either.

Works under asyncio, and under anyio on its asyncio backend; not under trio (the
hand-over uses asyncio's loop). See docs/guide.md, "asyncio".
"""

from __future__ import annotations

import asyncio
import threading
from collections.abc import Callable, Iterable, Mapping
from typing import TYPE_CHECKING, Any, Generic, TypeVar

from ._options import UNSET, Journaling, Maybe
from ._places.base import CALL_ARGS_KWARGS, CALL_ONE, CALL_STAR
from .pool import Pool as _SyncPool
from .pool import confirm_journal

if TYPE_CHECKING:
    from typing_extensions import Unpack

    from ._engine.api import Statistics
    from ._engine.jobs import Job, ResultIterator
    from ._options import CallKeywords, CallOptions, MapKeywords
    from ._places.base import Place

__all__ = ["AsyncResultIterator", "Pool"]

T = TypeVar("T")

#: An ``async for`` over results that are already here suspends at least this often (s),
#: so that the loop's other tasks run while a fast stream is consumed.
YIELD_EVERY = 0.001


class Pool:
    """A forklift pool whose calls are awaited: ``async with forklift.aio.Pool(...) as pool:``.

    Takes the arguments of :class:`forklift.Pool`. The workers start in ``__aenter__``
    (or ``await pool.start()``); leaving the ``async with`` block terminates the pool,
    as leaving a ``with forklift.Pool()`` block does (a call still running is killed);
    ``await pool.close()`` instead lets what was submitted finish first.
    """

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        self._args = args
        self._kwargs = kwargs
        self._pool: _SyncPool | None = None
        self._loop: asyncio.AbstractEventLoop | None = None

    # -- life cycle ---------------------------------------------------------------------
    async def start(self) -> Pool:
        """Start the workers (on a thread: forking them, or a cluster's handshake, takes time)."""
        if self._pool is None:
            self._loop = asyncio.get_running_loop()
            self._pool = await asyncio.to_thread(_SyncPool, *self._args, **self._kwargs)
        return self

    async def __aenter__(self) -> Pool:
        return await self.start()

    async def __aexit__(self, *exc_info: object) -> None:
        await self.terminate()

    async def close(self) -> None:
        """Take no more calls, let the submitted ones finish, then stop the workers."""
        pool = self._running()
        pool.close()
        await asyncio.to_thread(pool.join)

    async def terminate(self) -> None:
        """Stop now: running tasks are killed (with their process trees), unfinished calls fail."""
        if self._pool is not None:
            await asyncio.to_thread(self._pool.terminate)

    @property
    def pool(self) -> _SyncPool:
        """The :class:`forklift.Pool` underneath (its blocking calls would block the loop)."""
        return self._running()

    @property
    def processes(self) -> int:
        return self._running().processes

    def statistics(self) -> Statistics:
        """Counters: tasks done / failed, retries, workers started / lost, timeouts."""
        return self._running().statistics()

    def __repr__(self) -> str:
        inner = "not started" if self._pool is None else repr(self._pool)
        return f"<forklift.aio.Pool {inner}>"

    # -- one call -----------------------------------------------------------------------
    async def apply(
        self,
        func: Callable[..., T],
        args: Iterable[Any] = (),
        kwds: Mapping[str, Any] | None = None,
        *,
        timeout: Maybe[float | None] = UNSET,
        retries: Maybe[int] = UNSET,
    ) -> T:
        """``func(*args, **kwds)`` in a worker; its result."""
        place = self._place()
        call = place.defaults.given(timeout, retries)
        future, _ = self._collect(func, [(tuple(args), dict(kwds or {}))], CALL_ARGS_KWARGS, "apply", call)
        values = await future
        return values[0]  # type: ignore[no-any-return]

    def submit(self, fn: Callable[..., T], /, *args: Any, **kwargs: Any) -> asyncio.Future[T]:
        """Start ``fn(*args, **kwargs)``; an ``asyncio.Future`` of its result, at once.

        Like ``Executor.submit``: gather many, await them later. Cancelling the future
        cancels the task, and kills it if it is running.
        """
        place = self._place()
        outer: asyncio.Future[T] = self._running_loop().create_future()
        inner, _ = self._collect(fn, [(args, kwargs)], CALL_ARGS_KWARGS, "submit", place.defaults)

        def first(done: asyncio.Future[list[Any]]) -> None:
            if outer.done():
                return
            if done.cancelled():
                outer.cancel()
            elif done.exception() is not None:
                outer.set_exception(done.exception())  # type: ignore[arg-type]
            else:
                outer.set_result(done.result()[0])

        inner.add_done_callback(first)
        outer.add_done_callback(lambda f: inner.cancel() if f.cancelled() else None)
        return outer

    # -- many calls, whole list ---------------------------------------------------------
    async def map(
        self,
        func: Callable[[Any], T],
        iterable: Iterable[Any],
        chunksize: int | None = None,
        **options: Unpack[MapKeywords],
    ) -> list[T]:
        """``list(map(func, iterable))`` in parallel; the first failure is raised.

        The keywords of :meth:`forklift.Pool.map`: ``timeout``, ``retries``, ``progress``,
        ``journal``, ``resume``, ``force``.
        """
        return await self._map(func, iterable, chunksize, CALL_ONE, "map", options)

    async def starmap(
        self,
        func: Callable[..., T],
        iterable: Iterable[Iterable[Any]],
        chunksize: int | None = None,
        **options: Unpack[MapKeywords],
    ) -> list[T]:
        """Like ``map``, each item unpacked as the arguments: ``func(*item)``."""
        return await self._map(func, iterable, chunksize, CALL_STAR, "starmap", options)

    async def _map(
        self,
        func: Callable[..., Any],
        iterable: Iterable[Any],
        chunksize: int | None,
        mode: int,
        name: str,
        options: MapKeywords,
    ) -> list[Any]:
        place = self._place()
        call = place.defaults.of(options, journaling=True)
        journaling = Journaling.of(options, self._running()._resume)
        items = iterable if isinstance(iterable, list) else list(iterable)
        future, confirm = self._collect(func, items, mode, name, call, chunksize, journaling)
        try:
            values = await future
        except BaseException:
            if confirm is not None and future.done() and not future.cancelled():
                confirm_journal(confirm, quiet=True)
            raise
        if confirm is not None:
            confirm_journal(confirm, quiet=False)  # the journal has its rows (JournalError if it cannot)
        return values

    # -- many calls, lazily -------------------------------------------------------------
    def imap(
        self,
        func: Callable[[Any], T],
        iterable: Iterable[Any],
        chunksize: int | None = None,
        *,
        buffersize: int | None = None,
        **options: Unpack[CallKeywords],
    ) -> AsyncResultIterator[T]:
        """``async for`` the results in input order; the input is read lazily, as by ``Pool.imap``."""
        return self._stream(func, iterable, chunksize, True, "imap", options, buffersize)

    def imap_unordered(
        self,
        func: Callable[[Any], T],
        iterable: Iterable[Any],
        chunksize: int | None = None,
        *,
        buffersize: int | None = None,
        **options: Unpack[CallKeywords],
    ) -> AsyncResultIterator[T]:
        """``async for`` the results as they complete; the input is read lazily."""
        return self._stream(func, iterable, chunksize, False, "imap_unordered", options, buffersize)

    def _stream(
        self,
        func: Callable[..., Any],
        iterable: Iterable[Any],
        chunksize: int | None,
        ordered: bool,
        name: str,
        options: CallKeywords,
        buffersize: int | None,
    ) -> AsyncResultIterator[Any]:
        place = self._place()
        loop = self._running_loop()
        call = place.defaults.of(options)
        it = place.stream(
            func,
            iterable,
            CALL_ONE,
            ordered=ordered,
            name=name,
            timeout_error=_NotYet,
            call=call,
            chunksize=chunksize,
            buffersize=buffersize,
        )
        return AsyncResultIterator(place, it, loop)

    # -- plumbing -----------------------------------------------------------------------
    def _running(self) -> _SyncPool:
        if self._pool is None:
            raise RuntimeError("the pool is not started: use 'async with forklift.aio.Pool(...) as pool:'")
        return self._pool

    def _place(self) -> Place:
        return self._running()._place

    def _running_loop(self) -> asyncio.AbstractEventLoop:
        loop = asyncio.get_running_loop()
        if loop is not self._loop:
            raise RuntimeError("a forklift.aio.Pool is used from the event loop that started it")
        return loop

    def _collect(
        self,
        fn: Callable[..., Any],
        items: list[Any],
        mode: int,
        name: str,
        call: CallOptions,
        chunksize: int | None = None,
        journaling: Journaling = Journaling(),
    ) -> tuple[asyncio.Future[list[Any]], Callable[[], None] | None]:
        """Start a whole-list job; its outcome arrives through the loop. Cancelling the
        returned future cancels the job and kills its running tasks."""
        place = self._place()
        loop = self._running_loop()
        future: asyncio.Future[list[Any]] = loop.create_future()

        def on_done(ok: bool, value: Any) -> None:  # the scheduler thread (or this one, at once)
            _hand_over(loop, _settle, future, ok, value)

        job, confirm = place.collect(
            fn, items, mode, on_done, name=name, call=call, chunksize=chunksize, journaling=journaling
        )
        if job is not None:
            future.add_done_callback(lambda f: _kill_if_cancelled(f, place, job))
        return future, confirm


class AsyncResultIterator(Generic[T]):
    """What ``imap`` / ``imap_unordered`` of :class:`forklift.aio.Pool` return: ``async for`` it.

    A failed task raises at its place, and iteration may go on after it, as with
    ``Pool.imap``. Cancelling the consuming task, ``aclose()``, or an exception that
    leaves the ``async for`` cancels the rest of the call and kills its running tasks.
    """

    def __init__(self, place: Place, it: ResultIterator, loop: asyncio.AbstractEventLoop) -> None:
        self._place = place
        self._it = it
        self._job: Job = it._job
        self._loop = loop
        self._ready = asyncio.Event()
        self._lock = threading.Lock()
        self._waiting = False  # the consumer sleeps on _ready: the next batch must wake it
        self._closed = False
        self._yield_at = 0.0  # loop time at which __anext__ next lets other tasks run
        it._job.notify = self._wake

    def _wake(self) -> None:
        """A batch of results (or the end) has been queued: scheduler thread, never blocks."""
        with self._lock:
            if not self._waiting:
                return  # the consumer is busy: it will find the batch on its next step
            self._waiting = False
        _hand_over(self._loop, self._ready.set)

    def __aiter__(self) -> AsyncResultIterator[T]:
        return self

    async def __anext__(self) -> T:
        it = self._it
        try:
            if self._loop.time() >= self._yield_at:
                # Results already here are returned without suspending: a consumer could then
                # run for as long as they keep coming, and starve the loop's other tasks.
                await asyncio.sleep(0)
                self._yield_at = self._loop.time() + YIELD_EVERY
            while True:
                try:
                    return it.next(0)  # type: ignore[no-any-return]
                except _NotYet:
                    pass
                except StopIteration:
                    raise StopAsyncIteration from None
                self._ready.clear()
                with self._lock:
                    self._waiting = True
                try:  # a batch queued since the first look has no wake-up coming: look again
                    value = it.next(0)
                except _NotYet:
                    await self._ready.wait()
                    self._yield_at = self._loop.time() + YIELD_EVERY
                    continue
                except StopIteration:
                    raise StopAsyncIteration from None
                finally:
                    with self._lock:
                        self._waiting = False
                return value  # type: ignore[no-any-return]
        except (asyncio.CancelledError, GeneratorExit):
            self._stop()
            raise

    async def aclose(self) -> None:
        """Stop: the rest of the call is cancelled, its running tasks killed."""
        self._stop()

    async def __aenter__(self) -> AsyncResultIterator[T]:
        return self

    async def __aexit__(self, *exc_info: object) -> None:
        self._stop()

    def _stop(self) -> None:
        if self._closed:
            return
        self._closed = True
        done = self._job.done
        self._it.close()  # takes no more input; cancels what has not started
        if not done:
            self._place.cancel(self._job, kill_running=True)

    def __del__(self) -> None:
        if not getattr(self, "_closed", True):
            self._stop()


class _NotYet(Exception):
    """``ResultIterator.next(0)`` found no result ready (internal: never reaches the caller)."""


def _hand_over(loop: asyncio.AbstractEventLoop, fn: Callable[..., object], *args: Any) -> None:
    """Run ``fn(*args)`` on the loop's thread; from the scheduler thread, never raises."""
    try:
        loop.call_soon_threadsafe(fn, *args)
    except RuntimeError:  # the loop is closed: nobody is waiting any more
        pass


def _settle(future: asyncio.Future[Any], ok: bool, value: Any) -> None:
    if future.done():
        return
    if ok:
        future.set_result(value)
    else:
        future.set_exception(value)


def _kill_if_cancelled(future: asyncio.Future[Any], place: Place, job: Job) -> None:
    if future.cancelled():
        place.cancel(job, kill_running=True)

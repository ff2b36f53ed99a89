"""Jobs: what one call (submit, map, imap, ...) asked for, and where its results go.

A job owns its input as *slabs* (contiguous runs of items, each item's index
known), its function (pickled once), its options, and a *sink* that receives
results. The scheduler cuts slabs into chunks, sends them, and hands results
back through :meth:`Job.deliver`; only the scheduler thread touches a job's
scheduling state. The sinks talk to the caller's thread without ever waiting on
it: futures through :class:`~forklift._engine.futures.Outcomes`, streams through
a SimpleQueue.

Sinks: :class:`SubmitJob` (submitted calls, each its own Future),
:class:`CollectJob` (``map`` / ``map_async``: a list in input order),
:class:`StreamJob` (``imap`` / ``imap_unordered`` / ``Executor.map``: a lazy
iterator with bounded read-ahead).
"""

from __future__ import annotations

import itertools
import operator
import queue
import threading
import time
from collections import deque
from collections.abc import Callable, Iterable, Iterator
from typing import TYPE_CHECKING, Any

from .. import _config
from .._checks import wait_seconds
from ..errors import SerializationError
from .chunker import Chunker

if TYPE_CHECKING:
    from ..journal import JournalRun
    from .api import EngineAPI, ProgressSink
    from .bulk import Memo, Shipped
    from .futures import Outcomes, TaskFuture

_NOTHING: Shipped = []  # no segments; shared, never mutated


class Slab:
    """Items ``start, start+1, ...`` not yet sent; ``attempts`` made so far.

    ``payload``: the items already pickled (a chunk held back for an idle
    worker), with the segments holding its big buffers (``shipped``); such a
    slab is always sent whole.
    """

    __slots__ = ("attempts", "items", "payload", "pos", "shipped", "start")

    def __init__(
        self,
        start: int,
        items: list[Any],
        attempts: int = 0,
        payload: bytes | None = None,
        shipped: Shipped = _NOTHING,
    ) -> None:
        self.start = start
        self.items = items
        self.pos = 0
        self.attempts = attempts
        self.payload = payload
        self.shipped = shipped


class Chunk:
    """Items in flight to one worker, as one message; ``shipped``: its argument segments."""

    __slots__ = ("attempts", "inputs", "items", "job", "logs", "out_since", "sent", "seq", "shipped", "start")

    def __init__(
        self, seq: int, job: Job, start: int, items: list[Any], attempts: int, shipped: Shipped
    ) -> None:
        self.out_since = time.monotonic()  # when it was sent (see watch.py)
        self.seq = seq
        self.job = job
        self.start = start
        self.items = items
        self.attempts = attempts
        self.shipped = shipped
        self.inputs: bytes | None = None  # journal: the pickled inputs, when all in-band
        self.sent = 0.0  # journal: time.time() when sent
        self.logs: dict[int, deque[str]] | None = None  # journal: each item's last log lines

    def log_tail(self, item: int) -> str:
        """What the journal keeps of item's last log lines, to go after its error (or "")."""
        lines = self.logs.get(item) if self.logs is not None else None
        return "" if not lines else "\n--- its last log lines ---\n" + "\n".join(lines)


class Job:
    """State common to every kind of call."""

    kind = "map"  # what a journal calls it: map, imap, submit

    fixed_input = False
    #: Whether another chunk may be sent to a worker behind one of this job's, when its time
    #: is known to be short. False for a job whose one task's time says nothing of the next
    #: call's (forklift.joblib's batches: a slow one must not hold back the one sent behind it).
    prefetch_behind = True

    def __init__(
        self,
        fn: Callable[..., Any],
        mode: int,
        *,
        timeout: float | None,
        retries: int,
        chunksize: int | None,
        total: int | None,
        name: str,
    ) -> None:
        self.fn = fn
        self.mode = mode
        self.timeout = timeout
        self.retries = retries
        self.total = total
        self.name = name
        self.chunker = Chunker(chunksize)
        self.func_id = -1
        self.fn_blob = b""
        self.pending: deque[Slab] = deque()
        self.inflight = 0
        self.dispatched = 0
        self.cancelled = False
        self.closed_input = True  # False while a stream may still feed items
        self.progress: ProgressSink | None = None
        self.memo: Memo | None = None  # set by the scheduler for jobs with a fixed input
        self.journal: JournalRun | None = None  # records this call's chunks and notable tasks
        self.journal_index: list[int] | None = None  # job index -> the journal's (resumed maps)
        self.cleanups: list[Callable[[], None]] = []  # run by finish(), once, however it ended

    # -- scheduler side -------------------------------------------------
    def take(self, limit: int) -> Slab:
        """Cut up to ``limit`` items off the front of the pending input."""
        slab = self.pending[0]
        left = len(slab.items) - slab.pos
        if (left <= limit or slab.payload is not None) and slab.pos == 0:
            self.pending.popleft()
            piece = slab
        else:
            n = min(left, limit)
            piece = Slab(slab.start + slab.pos, slab.items[slab.pos : slab.pos + n], slab.attempts)
            slab.pos += n
            if slab.pos >= len(slab.items):
                self.pending.popleft()
        self.dispatched += len(piece.items)
        return piece

    def requeue(
        self,
        start: int,
        items: list[Any],
        attempts: int,
        payload: bytes | None = None,
        shipped: Shipped = _NOTHING,
    ) -> None:
        """Put items back at the front, to run again (after a death or a split)."""
        if items and not self.cancelled:
            self.pending.appendleft(Slab(start, items, attempts, payload, shipped))
            self.dispatched -= len(items)

    def pending_items(self) -> int:
        """Items waiting to be sent now."""
        return sum(len(slab.items) - slab.pos for slab in self.pending)

    def remaining(self) -> int | None:
        if self.total is None:
            return None
        return max(0, self.total - self.dispatched)

    def describe(self, index: int) -> str:
        return f"task {index} of {self.name}"

    def deliver(self, start: int, values: list[Any], errors: dict[int, BaseException] | None) -> None:
        """Hand results for items ``start ..`` to the caller (scheduler thread)."""
        if self.progress is not None:
            self.progress.advance(len(values), len(errors) if errors else 0)
        self._deliver(start, values, errors)

    def cancel(self) -> None:
        self.cancelled = True
        self.pending.clear()

    @property
    def done(self) -> bool:
        return self.cancelled or (self.closed_input and not self.pending and self.inflight == 0)

    def finish(self) -> None:
        """Called once when the job is done (by the scheduler, or by a caller whose start failed)."""
        if self.progress is not None:
            self.progress.close()
        for cleanup in self.cleanups:
            cleanup()

    # -- for subclasses -------------------------------------------------
    def _deliver(self, start: int, values: list[Any], errors: dict[int, BaseException] | None) -> None:
        raise NotImplementedError

    def abort(self, exc: BaseException) -> None:
        """Fail everything not yet delivered with ``exc`` (pool broken or terminated)."""
        raise NotImplementedError


class SubmitJob(Job):
    """Consecutive ``submit`` / ``apply_async`` calls of one function, each item its own Future.

    Sharing one job lets the chunker batch tiny submitted tasks as it batches a
    map, while each Future still gets its own result. A cancelled Future is
    dropped when its turn comes; a sent one can no longer be cancelled.
    """

    kind = "submit"

    def __init__(self, fn: Callable[..., Any], mode: int, outcomes: Outcomes, **kw: Any) -> None:
        super().__init__(fn, mode, chunksize=None, total=None, **kw)
        self.outcomes = outcomes
        self.futures: dict[int, TaskFuture] = {}
        self.next_index = 0

    def add(self, item: Any, future: TaskFuture) -> None:
        """Append one call (scheduler thread)."""
        index = self.next_index
        self.next_index += 1
        self.futures[index] = future
        last = self.pending[-1] if self.pending else None
        if (
            last is not None
            and last.pos == 0
            and last.attempts == 0
            and last.start + len(last.items) == index
        ):
            last.items.append(item)
        else:
            self.pending.append(Slab(index, [item]))

    def take(self, limit: int) -> Slab:
        while self.pending:
            piece = super().take(limit)
            keep = self._start_running(piece)
            if keep == len(piece.items):
                return piece
            # item ``keep`` was cancelled: drop it, put back what follows it
            self.futures.pop(piece.start + keep, None)
            self.requeue(piece.start + keep + 1, piece.items[keep + 1 :], piece.attempts)
            if keep:
                return Slab(piece.start, piece.items[:keep], piece.attempts)
        return Slab(0, [])

    def _start_running(self, piece: Slab) -> int:
        """Mark the futures of ``piece`` running; return how many before a cancelled one."""
        for k in range(len(piece.items)):
            if not self.futures[piece.start + k].try_start():
                return k
        return len(piece.items)

    def _deliver(self, start: int, values: list[Any], errors: dict[int, BaseException] | None) -> None:
        settle = self.outcomes.settle
        for i, value in enumerate(values):
            future = self.futures.pop(start + i, None)
            if future is None:
                continue
            if errors and i in errors:
                settle(future, False, errors[i])
            else:
                settle(future, True, value)

    def abort(self, exc: BaseException) -> None:
        for future in self.futures.values():
            if future.try_start():  # False: it was cancelled (or is done)
                self.outcomes.settle(future, False, exc)
        self.futures.clear()
        self.cancel()


class CollectJob(Job):
    """``map``: every result into one list, in input order; the first error fails it."""

    fixed_input = True  # the whole input is given at once: the same array sent twice is one copy

    def __init__(
        self,
        fn: Callable[..., Any],
        mode: int,
        items: list[Any],
        on_done: Callable[[bool, Any], None],
        **kw: Any,
    ) -> None:
        super().__init__(fn, mode, total=len(items), **kw)
        self.results: list[Any] = [None] * len(items)
        self.missing = len(items)
        self.on_done = on_done
        self.failed = False
        if items:
            self.pending.append(Slab(0, items))

    def _deliver(self, start: int, values: list[Any], errors: dict[int, BaseException] | None) -> None:
        if self.failed:
            return
        if errors:
            first = min(errors)
            self.failed = True
            self.cancel()
            self.on_done(False, errors[first])
            return
        self.results[start : start + len(values)] = values
        self.missing -= len(values)
        if self.missing == 0:
            self.on_done(True, self.results)

    def abort(self, exc: BaseException) -> None:
        if not self.failed and self.missing:
            self.failed = True
            self.on_done(False, exc)
        self.cancel()


_END = object()


class StreamJob(Job):
    """``imap`` and friends: results as an iterator; input pulled lazily, read-ahead bounded.

    The consumer's thread pulls input (at most ``read_ahead()`` items taken but
    not yet handed out) and passes it to the scheduler; results come back
    through a SimpleQueue as ``(start, values, errors)`` batches.
    """

    kind = "imap"

    def __init__(
        self,
        engine: EngineAPI,
        fn: Callable[..., Any],
        mode: int,
        iterable: Iterable[Any],
        *,
        ordered: bool,
        timeout_error: type[BaseException],
        buffersize: int | None = None,
        **kw: Any,
    ) -> None:
        total = operator.length_hint(iterable, -1)
        super().__init__(fn, mode, total=None if total < 0 else total, **kw)
        self.engine = engine
        self.ordered = ordered
        self.timeout_error = timeout_error
        self.closed_input = False
        self.batches: queue.SimpleQueue[Any] = queue.SimpleQueue()
        self._source = iter(iterable)
        self._source_lock = threading.Lock()
        self._exhausted = False
        self.abandoned = False  # set by the consumer's thread when it drops the iterator
        self._cut_short = False  # stop_input() ended the input early
        self._input_error: Exception | None = None  # the input raised: after the results before it
        self._pulled = 0
        self._handed = 0
        self._head = 0
        self._waiting: dict[int, tuple[list[Any], dict[int, BaseException] | None]] = {}
        self._waiting_items = 0  # results held in _waiting behind a head that is not back yet
        self._ready: deque[Any] = deque()  # lists of values, or exceptions to raise
        # buffersize (Python 3.14's Executor.map): at most this many items taken from the input
        # and not yet handed to the caller; one more is taken as each next() starts, as the
        # stdlib submits one before it waits. Results are then handed one at a time, so that
        # "handed" counts exactly the results the caller got.
        self.buffersize = buffersize
        # Called on the scheduler thread after each batch (or the abort) is queued: forklift.aio
        # wakes its event loop with it instead of a thread waiting on ``batches``. It must not
        # block, nor raise.
        self.notify: Callable[[], None] | None = None

    # -- scheduler side -------------------------------------------------
    def _deliver(self, start: int, values: list[Any], errors: dict[int, BaseException] | None) -> None:
        self.batches.put((start, values, errors))
        if self.notify is not None:
            self.notify()

    def abort(self, exc: BaseException) -> None:
        self.cancel()
        self.batches.put(exc)
        if self.notify is not None:
            self.notify()

    # -- consumer side ----------------------------------------------------
    def read_ahead(self) -> int:
        if self.buffersize is not None:
            return self.buffersize
        slots = 2 * _config.PREFETCH * self.engine.processes
        return max(slots, min(_config.MAX_READ_AHEAD, slots * self.chunker.size))

    def pull(self, limit: int | None = None) -> None:
        """Take more input (up to the read-ahead bound) and pass it to the scheduler."""
        if self._exhausted:
            return
        if limit is None and self.buffersize is not None:
            room = self.buffersize - (self._pulled - self._handed)
        elif limit is None:
            # Results held back only because an earlier one is not in yet (ordered imap, a slow
            # or retried head) do not count against the read-ahead: the workers stay busy
            # behind the head, up to MAX_READ_AHEAD items taken in all.
            outstanding = self._pulled - self._handed
            room = self.read_ahead() - (outstanding - self._waiting_items)
            room = min(room, _config.MAX_READ_AHEAD - outstanding)
        else:
            room = limit
        if room <= 0:
            return
        with self._source_lock:
            if self._exhausted:
                return
            items: list[Any] = []
            try:  # list.extend keeps the items taken before the input raised
                items.extend(itertools.islice(self._source, room))
            except Exception as exc:  # raised in its place, after the results before it
                self._input_error = exc
            except BaseException:  # Ctrl-C: at once (the items taken still run)
                self._take(items, last=True)
                raise
            self._take(items, last=self._input_error is not None or len(items) < room)

    def _take(self, items: list[Any], *, last: bool) -> None:
        """Pass items just pulled to the scheduler (under the source lock)."""
        start = self._pulled
        self._pulled += len(items)
        self._exhausted = last
        self.engine.feed(self, Slab(start, items) if items else None, last=last)

    def stop_input(self) -> None:
        """Take no more input (Executor.shutdown without waiting): what was taken still runs.

        Iterating past what was taken then raises, never ends quietly short.
        """
        with self._source_lock:
            if not self._exhausted:
                self._exhausted = True
                self._cut_short = True
                self.engine.feed(self, None, last=True)

    def drain_input(self) -> None:
        """Pull all remaining input regardless of the bound (close() then join()).

        As with multiprocessing.Pool, joining a pool whose imap has an endless
        input that nobody consumes does not return; an abandoned iterator's
        input is not drained.
        """
        while not self._exhausted and not self.cancelled and not self.abandoned:
            self.pull(limit=max(self.read_ahead(), 1))

    def next_piece(self, deadline: float | None) -> Any:
        """The next run of values (a list) or exception, in delivery order; _END at the end."""
        if self.buffersize is not None:  # the stdlib submits one more item before it waits
            self.pull(limit=self.buffersize + 1 - (self._pulled - self._handed))
        while not self._ready:
            if self.buffersize is None:
                self.pull()
            if self._exhausted and self._handed >= self._pulled:
                return self._end()
            if self.ordered and self._head in self._waiting:
                values, errors = self._waiting.pop(self._head)
                self._waiting_items -= len(values)
                self._queue_results(values, errors)
                continue
            batch = self._get_batch(deadline)
            if isinstance(batch, BaseException):
                self._exhausted = True
                self._pulled = self._handed
                self._input_error = None
                raise batch
            start, values, errors = batch
            if self.ordered and start != self._head:
                self._waiting[start] = (values, errors)
                self._waiting_items += len(values)
            else:
                self._queue_results(values, errors)
        piece = self._ready.popleft()
        self._handed += len(piece) if isinstance(piece, list) else 1
        return piece

    def _end(self) -> Any:
        """Every result taken is handed out: the input's own error (once), else the end."""
        if self._cut_short:
            raise RuntimeError(
                f"{self.name}: the executor was shut down before this map read all of its "
                f"input; {self._pulled} results were produced. Consume the results before "
                "shutdown (inside the with block), or shut down with wait=True."
            )
        error, self._input_error = self._input_error, None
        return _END if error is None else error

    def _get_batch(self, deadline: float | None) -> Any:
        if deadline is None:
            return self.batches.get()
        left = deadline - time.monotonic()
        try:
            if left <= 0:
                return self.batches.get_nowait()
            return self.batches.get(timeout=left)
        except queue.Empty:
            raise self.timeout_error() from None

    def _queue_results(self, values: list[Any], errors: dict[int, BaseException] | None) -> None:
        self._head += len(values)
        if self.buffersize is not None:  # one result per piece: each next() takes one more input
            errors = errors or {}
            self._ready.extend(errors.get(k, [v]) for k, v in enumerate(values))
            return
        if not errors:
            self._ready.append(values)
            return
        prev = 0
        for k in sorted(errors):
            if k > prev:
                self._ready.append(values[prev:k])
            self._ready.append(errors[k])
            prev = k + 1
        if prev < len(values):
            self._ready.append(values[prev:])


class _Feed:
    """What a :class:`ResultIterator`'s C path and its ``next(timeout)`` share: the current run.

    It is also the chain's *source*: ``__next__`` hands the chain the current run while
    it has items, else the waiter (never blocking itself: CPython's chain must not be in
    its source from two threads at once).
    """

    __slots__ = ("deadline", "ended", "job", "lock", "run", "waiter")

    def __init__(self, job: StreamJob, deadline: float | None) -> None:
        self.job = job
        self.deadline = deadline
        self.run: Iterator[Any] = iter(())
        self.lock = threading.Lock()  # several threads may share one iterator
        self.ended = False
        self.waiter = _Waiter(self)

    def __iter__(self) -> _Feed:
        return self

    def __next__(self) -> Iterator[Any]:
        if self.ended:
            raise StopIteration
        return self.run if operator.length_hint(self.run) else self.waiter

    def refill(self, deadline: float | None) -> bool:
        """Wait until the current run has items (True) or the job is over (False).

        Raises a failed item's exception at its place (iteration may go on after it,
        as with ``multiprocessing.Pool.imap``), or the job's TimeoutError at ``deadline``.
        """
        wait = -1.0 if deadline is None else max(0.0, deadline - time.monotonic())
        if not self.lock.acquire(timeout=wait):
            raise self.job.timeout_error()
        try:
            if operator.length_hint(self.run):
                return True  # another thread refilled it meanwhile
            if self.ended:
                return False
            piece = self.job.next_piece(deadline)
            if piece is _END:
                self.ended = True
                return False
            if isinstance(piece, BaseException):
                raise piece
            self.run = iter(piece)
            return True
        finally:
            self.lock.release()


class _Waiter:
    """The chain's active iterator while no run is ready: waits for the next one, then ends
    (StopIteration), so that the chain asks its source again and steps the new run in C.
    A failed item's exception (or a timeout, Ctrl-C) is raised here, where the chain
    keeps going afterwards; raised by the source, it would end the chain for good."""

    __slots__ = ("feed",)

    def __init__(self, feed: _Feed) -> None:
        self.feed = feed

    def __iter__(self) -> _Waiter:
        return self

    def __next__(self) -> Any:
        self.feed.refill(self.feed.deadline)
        raise StopIteration


class ResultIterator(itertools.chain):  # type: ignore[type-arg]
    """The iterator a StreamJob's caller holds (``IMapIterator``).

    Results arrive in runs (one per chunk). The iterator is an ``itertools.chain``
    over them, so ``next(it)`` and ``for`` step a list iterator in C, with no Python
    frame per item (200,000 results: ~2 ms against ~18 ms through a Python
    ``__next__``); Python runs once per chunk, in the waiter. A failed item raises at
    its place and iteration may continue after it, as with
    ``multiprocessing.Pool.imap``; ``next(timeout)`` waits at most that long (it steps
    the same run, so the two may be mixed). Dropping the iterator cancels the rest of
    the job.
    """

    _feed: _Feed
    _job: StreamJob

    def __new__(cls, job: StreamJob, deadline: float | None = None) -> ResultIterator:
        feed = _Feed(job, deadline)
        self = cls.from_iterable(feed)
        assert isinstance(self, ResultIterator)
        self._feed = feed
        self._job = job
        return self

    def __init__(self, job: StreamJob, deadline: float | None = None) -> None:
        pass  # all done in __new__: chain's constructor takes only iterables

    def next(self, timeout: float | None = None) -> Any:
        """The next result, waiting at most ``timeout`` seconds (``IMapIterator.next``)."""
        feed = self._feed
        for value in feed.run:
            return value
        timeout = wait_seconds("timeout", timeout)
        deadline = feed.deadline
        if timeout is not None:
            mine = time.monotonic() + timeout
            deadline = mine if deadline is None else min(deadline, mine)
        while feed.refill(deadline):
            for value in feed.run:  # another thread may have taken it since
                return value
        raise StopIteration

    def close(self) -> None:
        """Stop: the rest of the job is cancelled and its input no longer read."""
        feed = self._feed
        feed.ended = True
        deque(feed.run, maxlen=0)  # drained: the chain steps this very iterator
        job = self._job
        if not job.done:
            job.abandoned = True
            job.engine.cancel(job)

    def __del__(self) -> None:
        if getattr(self, "_job", None) is not None:
            self.close()


def annotate_serialization(job: Job, index: int, exc: BaseException) -> BaseException:
    """A worker's SerializationError, naming the task it belongs to."""
    if isinstance(exc, SerializationError):
        return exc.for_task(job.describe(index))
    return exc

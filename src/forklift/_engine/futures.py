"""Outcomes: how a scheduler thread hands results to callers without ever waiting on them.

The scheduler thread is the one that sees deaths and enforces timeouts, so it must
never wait for a caller. Two rules make sure it does not:

1. **It runs no user callback.** ``add_done_callback`` functions and the
   callbacks of ``apply_async`` / ``map_async`` run on one *callbacks thread* per
   pool (started on first use), in the order their outcomes arrived. A callback
   may therefore block, even on the same pool (``pool.apply`` from a callback
   works), without stalling timeouts or deadlocking the pool. The one wait that
   could never end -- a callback waiting for a result whose own callback is queued
   behind it -- raises RuntimeError instead.
2. **It never waits for a lock a caller's thread can hold.** A Future's condition
   is such a lock, and a KeyboardInterrupt landing inside ``Condition.__enter__``
   in the caller's thread leaves it held for good (the stdlib executors then hang
   in ``set_result``; measured: every seed of a Ctrl-C fuzz hung). So the
   scheduler only *tries* the lock. A busy one is tried again on its next turns
   (waiting 2 ms while fresh, then mostly bare tries: a lock held for good must not
   slow every turn);
   one still busy after ``STUCK`` seconds (no Future method holds it that long:
   its holder is a thread that left it held) is bypassed: the outcome is written
   without it, callbacks run, and waiters are notified once the lock is free.

Interrupts at such moments also make CPython raise ``RuntimeError: release
unlocked lock`` (or "cannot release un-acquired lock") in the caller's thread,
with the KeyboardInterrupt as its context: :func:`raise_interrupt` turns that
back into the KeyboardInterrupt it was.
"""

from __future__ import annotations

import logging
import queue
import threading
import time
from collections import deque
from collections.abc import Callable
from concurrent.futures import Future
from concurrent.futures._base import (
    CANCELLED,
    CANCELLED_AND_NOTIFIED,
    FINISHED,
    PENDING,
    RUNNING,
)
from typing import Any, NamedTuple

from .._checks import wait_seconds
from . import forks

STUCK = 0.5  # seconds a Future's lock may stay busy before the scheduler writes without it
RETRY = 0.01  # seconds between tries of a busy lock
# A retry waits this long for the lock: a bare try never wins a lock other threads keep
# passing around (4 threads calling cancel() in a loop kept a cancelled future from being
# reported done for 10 s and more); a short wait queues up with them.
RETRY_WAIT = 0.002
# ...but waiting costs the scheduler's other work: a lock an interrupted caller left held for
# good made every turn of the loop wait 2 ms for up to GIVE_UP seconds (a Ctrl-C fuzz on 3.12
# stalled 10-25 s: each call took ~4 ms longer, so more calls were interrupted, leaking more
# locks). So an item waits on every turn only while FRESH; older ones share one waiting try per
# SHARED_EVERY seconds, in turn (at most 2% of the scheduler's time), and otherwise get a bare try.
FRESH = 0.05
SHARED_EVERY = 0.1
GIVE_UP = 60.0  # seconds after which a notification still waiting for its lock is dropped

_futures_log = logging.getLogger("concurrent.futures")  # where the stdlib logs failing callbacks
_log = logging.getLogger("forklift")
_DONE = (CANCELLED, CANCELLED_AND_NOTIFIED, FINISHED)


_Call = tuple[Callable[..., Any], tuple[Any, ...]]


class CallbackThread:
    """Runs user callbacks one after another, off the scheduler thread."""

    def __init__(self, name: str) -> None:
        self._name = name
        self._queue: queue.SimpleQueue[tuple[Callable[..., Any], tuple[Any, ...]] | None] = (
            queue.SimpleQueue()
        )
        self._thread: threading.Thread | None = None
        self._lock = threading.Lock()
        # Workers' logging records (logs.py) are handed out here too; a caller about to get a
        # result first waits for the records posted before it (flush_logs), so that a call's
        # log lines come before its result, as they would if it had run in this process.
        self._logs_posted = 0
        self._logs_done = 0
        self._logs_cond = threading.Condition()

    def post_log(self, fn: Callable[..., Any], *args: Any) -> None:
        """Post a worker's record (scheduler thread): counted, for flush_logs."""
        self._logs_posted += 1
        self.post(self._run_log, fn, args)

    def _run_log(self, fn: Callable[..., Any], args: tuple[Any, ...]) -> None:
        try:
            fn(*args)
        finally:
            with self._logs_cond:
                self._logs_done += 1
                self._logs_cond.notify_all()

    def flush_logs(self, timeout: float = 2.0) -> None:
        """Wait (at most ``timeout`` s: a handler may block) until the records posted so far ran."""
        target = self._logs_posted
        if self._logs_done >= target or self.is_current():
            return
        with self._logs_cond:
            self._logs_cond.wait_for(lambda: self._logs_done >= target, timeout)

    def post(self, fn: Callable[..., Any], *args: Any) -> None:
        if self._thread is None:
            with self._lock:
                if self._thread is None:
                    self._thread = threading.Thread(target=self._loop, name=self._name, daemon=True)
                    self._thread.start()
        self._queue.put((fn, args))

    def is_current(self) -> bool:
        return self._thread is not None and threading.current_thread() is self._thread

    def stop(self) -> None:
        """Run what is queued, then end (the pool has ended: nothing more will come)."""
        if self._thread is not None:
            self._queue.put(None)

    def join(self) -> None:
        """Wait until every callback queued so far has run (not from a callback itself)."""
        thread = self._thread
        if thread is not None and not self.is_current():
            thread.join()

    def _loop(self) -> None:
        while (item := self._queue.get()) is not None:
            fn, args = item
            try:
                fn(*args)
            except Exception:
                _log.exception("forklift: exception in a callback")


class TaskFuture(Future):  # type: ignore[type-arg]
    """A ``concurrent.futures.Future`` that a scheduler settles without ever blocking.

    ``before``: a function ``(ok, value)`` that runs on the callbacks thread
    before the outcome is set (``apply_async``'s callback: the result counts as
    ready only after it, as in multiprocessing).
    """

    def __init__(self, outcomes: Outcomes, before: Callable[[bool, Any], None] | None = None) -> None:
        super().__init__()
        self.outcomes = outcomes
        self.before = before

    # -- the caller's side: raise where waiting could never end -------------------------
    def result(self, timeout: float | None = None) -> Any:
        timeout = wait_seconds("timeout", timeout)  # inf waits for ever (the stdlib overflows)
        self.outcomes.check_wait(self, timeout)
        try:
            value = super().result(timeout)
        except RuntimeError as exc:
            raise_interrupt(exc)
            raise
        except BaseException:
            self.outcomes.callbacks.flush_logs()
            raise
        self.outcomes.callbacks.flush_logs()
        return value

    def exception(self, timeout: float | None = None) -> BaseException | None:
        timeout = wait_seconds("timeout", timeout)
        self.outcomes.check_wait(self, timeout)
        try:
            return super().exception(timeout)
        except RuntimeError as exc:
            raise_interrupt(exc)
            raise

    # -- the scheduler's side: never waits ------------------------------------------------
    def try_start(self) -> bool:
        """``set_running_or_notify_cancel`` without waiting: False if it was cancelled.

        With its lock busy, the state decides: a pending future becomes running
        (no one waits for that step), a cancelled one is dropped and its waiters
        are told later, when the lock frees.
        """
        if self._condition.acquire(blocking=False):
            try:
                if self._state == PENDING:  # what set_running_or_notify_cancel does, inline
                    self._state = RUNNING
                    return True
                if self._state == CANCELLED:
                    return super().set_running_or_notify_cancel()  # tells its waiters
                return self._state == RUNNING  # a retry of a call that already started
            finally:
                self._condition.release()
        if self._state == PENDING:
            self._state = RUNNING
            return True
        if self._state == CANCELLED:
            self.outcomes.later(self, _notify_cancel)
        return self._state == RUNNING

    def try_settle(self, ok: bool, value: Any, wait: float = 0.0) -> bool:
        """Set the outcome if the lock is free within ``wait`` s (0: at once); False if not."""
        if not _acquire(self._condition, wait):
            return False
        try:
            if self._state == CANCELLED:
                super().set_running_or_notify_cancel()  # its waiters hear of the cancel
            if self._state in _DONE:
                return True  # cancelled by its caller: the outcome goes nowhere
            self._write(ok, value)
            self._condition.notify_all()
        finally:
            self._condition.release()
        self._post_callbacks()
        return True

    def force_settle(self, ok: bool, value: Any) -> None:
        """Set the outcome without the lock (held for good by a thread that left it held)."""
        if self._state in _DONE:
            return
        self._write(ok, value)
        self._post_callbacks()
        self.outcomes.later(self, _notify)

    def _write(self, ok: bool, value: Any) -> None:
        if ok:
            self._result = value
        else:
            self._exception = value
        self._state = FINISHED
        for waiter in self._waiters:
            if ok:
                waiter.add_result(self)
            else:
                waiter.add_exception(self)

    def _post_callbacks(self) -> None:
        for callback in self._done_callbacks:  # type: ignore[attr-defined]
            self.outcomes.callbacks.post(_call_done_callback, callback, self)


def _acquire(condition: threading.Condition, wait: float) -> bool:
    return condition.acquire(timeout=wait) if wait > 0 else condition.acquire(blocking=False)


def _call_done_callback(callback: Callable[[Future[Any]], object], future: Future[Any]) -> None:
    try:
        callback(future)
    except Exception:
        _futures_log.exception("exception calling callback for %r", future)


def _notify(future: TaskFuture) -> None:
    future._condition.notify_all()


def _notify_cancel(future: TaskFuture) -> None:
    if future._state == CANCELLED:
        Future.set_running_or_notify_cancel(future)


class _Later(NamedTuple):
    """Work that waits for a busy Future lock: an outcome to set, or an action to do under it."""

    future: TaskFuture
    since: float
    outcome: tuple[bool, Any] | None
    action: Callable[[TaskFuture], None] | None


class Outcomes:
    """One pool's way of settling futures: non-blocking on the scheduler thread, callbacks elsewhere."""

    def __init__(self, name: str) -> None:
        self.callbacks = CallbackThread(f"{name}-callbacks")
        self.generation = forks.generation()
        self.scheduler: threading.Thread | None = None  # set by the engine when its thread starts
        self._later: deque[_Later] = deque()  # appended from any thread, taken by the scheduler
        self._shared_wait_at = 0.0  # when an old item may next wait for its lock (retry)

    def future(self, before: Callable[[bool, Any], None] | None = None) -> TaskFuture:
        return TaskFuture(self, before)

    def settle(self, future: TaskFuture, ok: bool, value: Any) -> None:
        """Give ``future`` its outcome (any thread; never blocks the scheduler thread)."""
        before = future.before
        if before is not None:
            self.callbacks.post(self._after, future, before, ok, value)
        elif threading.current_thread() is self.scheduler:
            if not future.try_settle(ok, value):
                self._later.append(_Later(future, time.monotonic(), (ok, value), None))
        else:
            self._settle_here(future, ok, value)

    def later(self, future: TaskFuture, action: Callable[[TaskFuture], None]) -> None:
        """Do ``action`` under the future's lock once it frees (by the scheduler thread)."""
        self._later.append(_Later(future, time.monotonic(), None, action))

    def retry(self) -> float | None:
        """Try the busy locks again (scheduler thread); seconds until the next try, if any."""
        now = time.monotonic()
        shared = now >= self._shared_wait_at
        if shared:
            self._shared_wait_at = now + SHARED_EVERY
        for _ in range(len(self._later)):
            item = self._later.popleft()
            wait = RETRY_WAIT
            if now - item.since >= FRESH:  # old: the one shared waiting try, or a bare one
                wait = RETRY_WAIT if shared else 0.0
                shared = False
            if item.outcome is not None:
                if item.future.try_settle(*item.outcome, wait=wait):
                    continue
                if now - item.since >= STUCK:
                    item.future.force_settle(*item.outcome)
                    continue
            elif now - item.since >= GIVE_UP:
                continue  # a lock held this long is held for good: nobody can be waiting on it
            elif _acquire(item.future._condition, wait):
                try:
                    assert item.action is not None
                    item.action(item.future)
                finally:
                    item.future._condition.release()
                continue
            self._later.append(item)
        self._later.rotate(-1)  # the next shared waiting try goes to the next old item
        return RETRY if self._later else None

    def close(self) -> None:
        """The scheduler ends: set what still waits for a lock, then stop the callbacks thread."""
        while self._later:
            item = self._later.popleft()
            if item.outcome is not None:
                item.future.force_settle(*item.outcome)
        self._later.clear()  # waiters of a lock held for good are not told: nobody can be waiting
        self.callbacks.stop()

    def check_wait(self, future: TaskFuture, timeout: float | None = None) -> None:
        """Raise instead of waiting for ever on ``future`` (a wait with a timeout just ends)."""
        if future._state in _DONE:
            return
        if self.generation != forks.generation():
            raise RuntimeError(
                "this result belongs to a pool of the process this one was forked from: it "
                "will never arrive here. Create a new Pool or Executor in the child"
            )
        if timeout is None and future.before is not None and self.callbacks.is_current():
            raise RuntimeError(
                "a callback is waiting for a result whose own callback must run first, on "
                "this same thread: it would wait for ever. Wait for it outside the callback, "
                "or use apply() / a call without a callback here"
            )

    def _after(self, future: TaskFuture, before: Callable[[bool, Any], None], ok: bool, value: Any) -> None:
        """On the callbacks thread: the result's own callback first, then the result is ready."""
        try:
            before(ok, value)
        except Exception:
            # A user's callback must not lose the result; logged as concurrent.futures
            # logs a failing done-callback.
            _log.exception("exception calling callback for %r", future)
        finally:
            self._settle_here(future, ok, value)

    def _settle_here(self, future: TaskFuture, ok: bool, value: Any) -> None:
        """Settle from a thread that may wait a little (not the scheduler's)."""
        deadline = time.monotonic() + STUCK
        while not future.try_settle(ok, value):
            if time.monotonic() >= deadline:
                future.force_settle(ok, value)
                return
            time.sleep(RETRY)


def raise_interrupt(exc: RuntimeError) -> None:
    """Re-raise a lock's RuntimeError that an interrupt caused as that interrupt."""
    context = exc.__context__
    if isinstance(context, KeyboardInterrupt) and "release" in str(exc):
        raise context from exc

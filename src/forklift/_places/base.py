"""The place base: turning the faces' calls into jobs on one engine.

``submit`` -> Future, ``collect`` -> a whole list (journaled and resumed maps
through :mod:`forklift._places.resume`), ``stream`` -> a lazy iterator. A
:class:`Place` holds one engine (an :class:`~forklift._engine.api.EngineAPI`)
and the pool's per-call defaults; the places differ only in the engine they
build.
"""

from __future__ import annotations

import operator
import time
from collections.abc import Callable, Iterable
from typing import TYPE_CHECKING, Any

from .._checks import callable_
from .._engine import protocol
from .._engine.api import EngineAPI, Statistics
from .._engine.futures import TaskFuture
from .._engine.jobs import CollectJob, Job, ResultIterator, StreamJob
from .._options import CallOptions, Journaling, check_buffersize, check_chunksize
from ..progress import progress_bar

if TYPE_CHECKING:
    from ..journal import Journal
    from .resume import Plan

CALL_ONE, CALL_STAR, CALL_ARGS_KWARGS = protocol.CALL_ONE, protocol.CALL_STAR, protocol.CALL_ARGS_KWARGS

check_callable = callable_

LOCAL_JOURNALS = "journal= records local pools only; a cluster has Dask's dashboard instead"


def fn_name(fn: Any) -> str:
    return getattr(fn, "__qualname__", None) or getattr(fn, "__name__", None) or type(fn).__name__


class Place:
    """Runs the faces' calls on one engine, with the pool's per-call defaults."""

    def __init__(self, engine: EngineAPI, defaults: CallOptions, journal: Journal | None = None) -> None:
        self.engine = engine
        self.defaults = defaults  # timeout, retries, progress when a call gives none
        self.journal = journal  # the pool's journal (local pools only)

    @property
    def processes(self) -> int:
        return self.engine.processes

    @property
    def address(self) -> str | None:
        """The cluster scheduler's address (``tls://host:port``); None on this machine."""
        return self.engine.address

    @property
    def client(self) -> Any:
        """The ``distributed.Client`` of a cluster place; None on this machine."""
        return None

    def _start(self, job: Job, call: CallOptions, total: int | None) -> None:
        workers = self.engine.worker_states if self.engine.sees_workers else None
        job.progress = progress_bar(call.progress, total, job.name, workers)
        try:
            self.engine.start_job(job)
        except BaseException:
            job.finish()  # the scheduler never saw it: its bar and its journal end here
            raise

    def submit(
        self,
        fn: Callable[..., Any],
        args: tuple[Any, ...],
        kwargs: dict[str, Any],
        *,
        name: str,
        call: CallOptions,
        future: TaskFuture | None = None,
    ) -> TaskFuture:
        """Run ``fn(*args, **kwargs)``; the Future (``future``, or a new one) gets the outcome."""
        check_callable(fn)
        if future is None:
            future = self.engine.outcomes.future()
        self.engine.submit(
            fn,
            CALL_ARGS_KWARGS,
            (args, kwargs),
            future,
            name=f"{name}({fn_name(fn)})",
            timeout=call.timeout,
            retries=call.retries,
        )
        return future

    def collect(
        self,
        fn: Callable[..., Any],
        items: list[Any],
        mode: int,
        on_done: Callable[[bool, Any], None],
        *,
        name: str,
        call: CallOptions,
        chunksize: int | None = None,
        journaling: Journaling = Journaling(),
        prefetch_behind: bool = True,
    ) -> tuple[Job | None, Callable[[], None] | None]:
        """Run ``fn`` over ``items``; ``on_done(ok, list_or_exception)`` once at the end.

        With a journal (this call's, or the pool's), the call is recorded there; with
        ``resume``, items whose results an earlier run of the same function over the
        same inputs stored are not run again (see :mod:`forklift._places.resume`). Returns the
        job (None when nothing runs) and what the caller's thread confirms at the end
        (the journal's rows: see ``plan_journaled``), or None.
        """
        check_callable(fn)
        self.engine.check_running()
        label = f"{name}({fn_name(fn)})"
        plan = None
        journal, resume, force = journaling
        if journal is not None or resume:
            if self.address is not None:
                raise ValueError(LOCAL_JOURNALS)
            from .resume import plan_journaled

            plan = plan_journaled(
                self, fn, items, mode, on_done, label=label, journal=journal, resume=resume, force=force
            )
            if plan is None:  # every result was in the journal
                return None, None
        try:
            return self._collect(fn, items, mode, on_done, label, call, chunksize, plan, prefetch_behind)
        except BaseException:  # (a Ctrl-C too) the job did not start: the call's own journal ends here
            if plan is not None:
                plan.release()
            raise

    def _collect(
        self,
        fn: Callable[..., Any],
        items: list[Any],
        mode: int,
        on_done: Callable[[bool, Any], None],
        label: str,
        call: CallOptions,
        chunksize: int | None,
        plan: Plan | None,
        prefetch_behind: bool = True,
    ) -> tuple[Job | None, Callable[[], None] | None]:
        if plan is not None:
            items, on_done = plan.items, plan.on_done
        if not items:
            on_done(True, [])
            if plan is not None:
                plan.release()
            return None, None if plan is None else plan.confirm
        job = CollectJob(
            fn,
            mode,
            items,
            on_done,
            name=label,
            chunksize=check_chunksize(chunksize),
            timeout=call.timeout,
            retries=call.retries,
        )
        job.prefetch_behind = prefetch_behind
        if plan is not None:
            plan.setup(job)
        self._start(job, call, len(items))
        return job, None if plan is None else plan.confirm

    def stream(
        self,
        fn: Callable[..., Any],
        iterable: Iterable[Any],
        mode: int,
        *,
        ordered: bool,
        name: str,
        timeout_error: type[BaseException],
        call: CallOptions,
        deadline: float | None = None,
        chunksize: int | None = None,
        buffersize: int | None = None,
    ) -> ResultIterator:
        """Run ``fn`` over ``iterable`` lazily; results in input order or as they come.

        ``buffersize``: at most that many items taken and not yet yielded (Python 3.14's
        ``Executor.map``); the first ``buffersize`` are taken now, as the stdlib submits them.
        """
        check_callable(fn)
        buffersize = check_buffersize(buffersize)
        self.engine.check_running()
        try:
            iter(iterable)
        except TypeError:
            raise TypeError(f"{type(iterable).__name__!r} object is not iterable") from None
        job = StreamJob(
            self.engine,
            fn,
            mode,
            iterable,
            ordered=ordered,
            timeout_error=timeout_error,
            name=f"{name}({fn_name(fn)})",
            chunksize=check_chunksize(chunksize),
            timeout=call.timeout,
            retries=call.retries,
            buffersize=buffersize,
        )
        hint = operator.length_hint(iterable, -1)
        self._start(job, call, hint if hint >= 0 else None)
        if buffersize is not None:
            job.pull()
        return ResultIterator(job, deadline)

    def cancel(self, job: Job | None, *, kill_running: bool = False) -> None:
        if job is not None:
            self.engine.cancel(job, kill_running=kill_running)

    def statistics(self) -> Statistics:
        return self.engine.statistics()


def deadline_after(timeout: float | None) -> float | None:
    return None if timeout is None else time.monotonic() + timeout

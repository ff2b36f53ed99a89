"""The local place: what the faces (Pool, Executor) ask of this machine's engine.

A place turns calls into jobs and hands back their results:
``submit`` -> Future, ``collect`` -> a whole list, ``stream`` -> a lazy
iterator. The faces hold a place and never reach into the engine.
"""

from __future__ import annotations

import operator
import os
import time
from collections.abc import Callable, Iterable
from typing import Any

from ._checks import callable_, seconds, whole
from ._engine import protocol as P
from ._engine.api import EngineAPI, Statistics
from ._engine.core import Engine
from ._engine.futures import TaskFuture
from ._engine.jobs import CollectJob, Job, ResultIterator, StreamJob
from .progress import progress_bar

CALL_ONE, CALL_STAR, CALL_ARGS_KWARGS = P.CALL_ONE, P.CALL_STAR, P.CALL_ARGS_KWARGS

_UNSET: Any = object()


def check_timeout(timeout: float | None, name: str = "timeout") -> float | None:
    return seconds(name, timeout)


def check_retries(retries: int) -> int:
    if retries is None:
        raise TypeError("retries must be an int, not None")
    checked = whole("retries", retries, minimum=0)
    assert checked is not None
    return checked


def check_progress(progress: Any) -> Any:
    """``progress=``: True / False / None, ``"workers"``, or the bar's description (any other str)."""
    if progress is None or isinstance(progress, (bool, str)):
        return progress
    raise TypeError(
        f'progress must be True, False, "workers" or a description (a str), not {type(progress).__name__}'
    )


def check_chunksize(chunksize: int | None) -> int | None:
    return whole("chunksize", chunksize, minimum=1, message=f"Chunksize must be 1+, not {chunksize}")


check_callable = callable_


def fn_name(fn: Any) -> str:
    return getattr(fn, "__qualname__", None) or getattr(fn, "__name__", None) or type(fn).__name__


class LocalPlace:
    """Runs the faces' calls on a local :class:`Engine` with shared defaults."""

    def __init__(
        self,
        processes: int | None,
        *,
        initializer: Callable[..., Any] | None,
        initargs: tuple[Any, ...],
        start_method: str | None,
        max_tasks_per_child: int | None,
        max_memory: int | None,
        retries: int,
        timeout: float | None,
        progress: Any,
        journal: str | os.PathLike[str] | None = None,
        init_timeout: float | None = None,
    ) -> None:
        self.retries = check_retries(retries)
        self.timeout = check_timeout(timeout)
        self.progress = check_progress(progress)
        self.journal = None
        if journal is not None:
            from .journal import Journal

            self.journal = Journal(journal)
        self.engine: EngineAPI = Engine(
            processes,
            initializer=initializer,
            initargs=initargs,
            start_method=start_method,
            max_tasks_per_child=max_tasks_per_child,
            max_memory=max_memory,
            journal=self.journal,
            init_timeout=init_timeout,
            timed=self.timeout is not None,
        )

    @property
    def processes(self) -> int:
        return self.engine.processes

    @property
    def address(self) -> str | None:
        """The cluster scheduler's address (``tls://host:port``); None on this machine."""
        return self.engine.address

    def _options(self, timeout: Any, retries: Any) -> dict[str, Any]:
        return {
            "timeout": self.timeout if timeout is _UNSET else check_timeout(timeout),
            "retries": self.retries if retries is _UNSET else check_retries(retries),
        }

    def _start(self, job: Job, progress: Any, total: int | None) -> None:
        enabled = self.progress if progress is _UNSET else check_progress(progress)
        workers = self.engine.worker_states if self.engine.sees_workers else None
        job.progress = progress_bar(enabled, total, job.name, workers)
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
        timeout: Any = _UNSET,
        retries: Any = _UNSET,
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
            **self._options(timeout, retries),
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
        chunksize: int | None = None,
        timeout: Any = _UNSET,
        retries: Any = _UNSET,
        progress: Any = _UNSET,
        journal: str | os.PathLike[str] | None = None,
        resume: bool = False,
        force: bool = False,
    ) -> tuple[Job | None, Callable[[], None] | None]:
        """Run ``fn`` over ``items``; ``on_done(ok, list_or_exception)`` once at the end.

        With a journal (this call's, or the pool's), the call is recorded there; with
        ``resume``, items whose results an earlier run of the same function over the
        same inputs stored are not run again (see :mod:`forklift._resume`). Returns the
        job (None when nothing runs) and what the caller's thread confirms at the end
        (the journal's rows: see ``plan_journaled``), or None.
        """
        check_callable(fn)
        self.engine.check_running()
        label = f"{name}({fn_name(fn)})"
        setup = confirm = release = None
        if journal is not None or resume:
            from ._resume import plan_journaled

            plan = plan_journaled(
                self, fn, items, mode, on_done, label=label, journal=journal, resume=resume, force=force
            )
            if plan is None:  # every result was in the journal
                return None, None
            items, on_done, setup, confirm, release = plan
        if not items:
            on_done(True, [])
            if release is not None:
                release()
            return None, confirm
        try:
            job = CollectJob(
                fn,
                mode,
                items,
                on_done,
                name=label,
                chunksize=check_chunksize(chunksize),
                **self._options(timeout, retries),
            )
        except BaseException:
            if release is not None:
                release()
            raise
        if setup is not None:
            setup(job)
        self._start(job, progress, len(items))
        return job, confirm

    def stream(
        self,
        fn: Callable[..., Any],
        iterable: Iterable[Any],
        mode: int,
        *,
        ordered: bool,
        name: str,
        timeout_error: type[BaseException],
        deadline: float | None = None,
        chunksize: int | None = None,
        timeout: Any = _UNSET,
        retries: Any = _UNSET,
        progress: Any = _UNSET,
    ) -> ResultIterator:
        """Run ``fn`` over ``iterable`` lazily; results in input order or as they come."""
        check_callable(fn)
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
            **self._options(timeout, retries),
        )
        hint = operator.length_hint(iterable, -1)
        self._start(job, progress, hint if hint >= 0 else None)
        return ResultIterator(job, deadline)

    def cancel(self, job: Job | None, *, kill_running: bool = False) -> None:
        if job is not None:
            self.engine.cancel(job, kill_running=kill_running)

    def statistics(self) -> Statistics:
        return self.engine.statistics()


def deadline_after(timeout: float | None) -> float | None:
    return None if timeout is None else time.monotonic() + timeout


def make_place(
    processes: int | None,
    *,
    address: str | None,
    credentials: str | os.PathLike[str] | None,
    journal: str | os.PathLike[str] | None,
    initializer: Callable[..., Any] | None,
    initargs: tuple[Any, ...],
    start_method: str | None,
    max_tasks_per_child: int | None,
    max_memory: int | None,
    retries: int,
    timeout: float | None,
    progress: Any,
    local_only: dict[str, Any],
    init_timeout: float | None = None,
) -> LocalPlace:
    """The place a face runs on: a Dask cluster for an ``address`` (or ``$FORKLIFT_ADDRESS``),
    else this machine. ``local_only`` holds the options a cluster cannot honour, under the
    names the face gave them, so an error names what the user wrote."""
    address = address or os.environ.get("FORKLIFT_ADDRESS") or None
    if address is None:
        return LocalPlace(
            processes,
            initializer=initializer,
            initargs=initargs,
            start_method=start_method,
            max_tasks_per_child=max_tasks_per_child,
            max_memory=max_memory,
            retries=retries,
            timeout=timeout,
            progress=progress,
            journal=journal,
            init_timeout=init_timeout,
        )
    if journal is not None:
        raise ValueError("journal= records local pools only; a cluster has Dask's dashboard instead")
    from ._cluster.place import cluster_place

    return cluster_place(
        address,
        credentials,
        processes=processes,
        local_only=local_only,
        retries=retries,
        timeout=timeout,
        progress=progress,
    )

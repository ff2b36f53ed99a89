"""What a place asks of an engine: the one interface the local and the cluster engine both satisfy.

:class:`EngineAPI` is a Protocol: the local :class:`~forklift._engine.core.Engine`
and :class:`~forklift._cluster.engine.ClusterEngine` implement it (both through
:class:`~forklift._engine.front.SchedulerFront`), and the places and faces hold
an engine only as an ``EngineAPI``. The two value types it hands out,
:class:`Statistics` and :class:`WorkerState`, live here too, so the faces and
``forklift.progress`` name them without importing an engine. At run time this
module imports nothing of forklift's.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import TYPE_CHECKING, Any, NamedTuple, Protocol

if TYPE_CHECKING:
    from .futures import Outcomes, TaskFuture
    from .jobs import Job, Slab


class Statistics(NamedTuple):
    """A snapshot of a pool's counters (``Pool.statistics()``).

    A NamedTuple (fields by name, ``_asdict()``), not a dataclass: the engine's import
    path stays free of ``dataclasses`` and ``inspect`` (~2.5 ms).
    """

    workers: int
    tasks_done: int
    tasks_failed: int
    retries: int
    workers_started: int
    workers_lost: int
    timeouts: int


class WorkerState(NamedTuple):
    """One worker as :meth:`EngineAPI.worker_states` saw it."""

    pid: int
    state: str  # starting, idle, receiving, loading, unpickling, running, pickling, sending back
    call: str  # the call its chunk belongs to, e.g. "map(square)"; "" when it holds none
    first: int  # index of the first and last item of that chunk (-1: none)
    last: int
    seq: int  # the chunk's number: a new one means new work
    tasks_done: int
    since_ns: int  # time.monotonic_ns() when the running item began (timed calls), else 0


class ProgressSink(Protocol):
    """Where a job reports its progress (``forklift.progress.ProgressHandle`` is one)."""

    def advance(self, n: int, failed: int = 0) -> None: ...

    def close(self) -> None: ...


class EngineAPI(Protocol):
    """Runs jobs on workers it owns. Every method may be called from any thread."""

    processes: int  # workers (a cluster: its worker threads, as last seen)
    outcomes: Outcomes  # settles the futures the engine hands out

    @property
    def start_method(self) -> str:
        """ "fork", "forkserver" or "spawn"; "cluster" on Dask."""
        ...

    @property
    def address(self) -> str | None:
        """The cluster scheduler's address; None on this machine."""
        ...

    @property
    def sees_workers(self) -> bool:
        """worker_states() shows what each worker runs (not on a cluster)."""
        ...

    def start_job(self, job: Job) -> None:
        """Accept a job (its function is pickled here, so errors surface at the call)."""

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
        """One call whose outcome goes to ``future``."""

    def feed(self, job: Job, slab: Slab | None, *, last: bool) -> None:
        """More input for a lazy job (``last``: there is no more)."""

    def cancel(self, job: Job, *, kill_running: bool = False) -> None:
        """Drop what is left of ``job``; with kill_running, stop its running tasks too."""

    def check_running(self) -> None:
        """Raise BrokenPoolError if broken, ValueError if closed, RuntimeError in a fork."""

    def shut_down(self) -> bool:
        """True once ``close()`` or ``terminate()`` was called (and the engine is not broken)."""
        ...

    def close(self) -> None:
        """Accept no new jobs; the workers end once every accepted job is done."""

    def terminate(self) -> None:
        """Stop now: fail what is unfinished; returns once the engine's thread has ended."""

    def join(self, timeout: float | None = None) -> bool:
        """Wait for the engine to end after close()/terminate(); True if it did."""
        ...

    def stop_inputs(self) -> None:
        """Lazy calls take no more input (``Executor.shutdown(cancel_futures=True)``)."""

    @property
    def alive(self) -> bool:
        """The engine's thread runs."""
        ...

    def statistics(self) -> Statistics: ...

    def worker_pids(self) -> list[int]: ...

    def worker_states(self) -> list[WorkerState]: ...

"""Objects shared across a cluster's machines: Queue, Lock, Event, Semaphore, Value.

Thin wrappers over Dask distributed's Queue / Lock / Event / Semaphore /
Variable, which live in the scheduler and are found by *name*, with the
standard library's method names and exceptions (``queue.Empty`` after a
``get`` timeout, ``acquire`` returning False), so the tutorial's code reads the same.

In the program that holds the pool, pass ``pool=`` (a cluster Pool or
Executor); inside a task running on the cluster, leave it out: the task's
worker connects for it. Objects pickle by name, so one can be a task's argument.
They live as long as the scheduler: a scheduler restart loses them.
"""

from __future__ import annotations

import asyncio
import importlib
import queue
from typing import Any

# Dask's timeouts are asyncio's TimeoutError, which is the builtin one only from Python 3.11.
_TIMEOUTS = (TimeoutError, asyncio.TimeoutError)

__all__ = ["ClusterEvent", "ClusterLock", "ClusterQueue", "ClusterSemaphore", "ClusterValue"]


def _distributed() -> Any:
    try:
        return importlib.import_module("distributed")
    except ImportError:
        raise ImportError("cluster objects need Dask distributed: pip install 'forklift[cluster]'") from None


def _client(pool: Any) -> Any:
    if pool is not None:
        client = getattr(pool, "client", None)  # Pool.client, Executor.client
        if client is None:
            raise TypeError(f"pool= must be a Pool or Executor on a cluster (address=...), not {pool!r}")
        return client
    try:
        return _distributed().get_client()  # inside a task: the worker's own client
    except ValueError:
        raise ValueError(
            "no cluster here: pass pool=<a Pool or Executor made with address=...> "
            "(inside a task running on the cluster it is found by itself)"
        ) from None


def _seconds(block: bool, timeout: float | None) -> float | None:
    if not block:
        return 0.001  # Dask has no non-blocking call: the shortest wait
    return timeout


class ClusterQueue:
    """A FIFO queue held by the scheduler; every process that names it shares it."""

    def __init__(self, name: str | None = None, *, maxsize: int = 0, pool: Any = None) -> None:
        self._q = _distributed().Queue(name, client=_client(pool), maxsize=maxsize)
        self.name: str = self._q.name
        self.maxsize = maxsize

    def put(self, obj: Any, block: bool = True, timeout: float | None = None) -> None:
        try:
            self._q.put(obj, timeout=_seconds(block, timeout))
        except _TIMEOUTS:
            raise queue.Full from None

    def get(self, block: bool = True, timeout: float | None = None) -> Any:
        try:
            return self._q.get(timeout=_seconds(block, timeout))
        except _TIMEOUTS:
            raise queue.Empty from None

    def put_nowait(self, obj: Any) -> None:
        self.put(obj, block=False)

    def get_nowait(self) -> Any:
        return self.get(block=False)

    def get_batch(self, n: int | None = None) -> list[Any]:
        """Up to ``n`` items at once (all there are when None), without waiting."""
        items: list[Any] = self._q.get(batch=True if n is None else n)
        return items

    def qsize(self) -> int:
        return int(self._q.qsize())

    def empty(self) -> bool:
        return self.qsize() == 0

    def __reduce__(self) -> tuple[Any, ...]:
        return (ClusterQueue, (self.name,), {"maxsize": self.maxsize})

    def __setstate__(self, state: dict[str, Any]) -> None:
        self.maxsize = state["maxsize"]

    def __repr__(self) -> str:
        return f"<ClusterQueue {self.name!r}>"


class ClusterSemaphore:
    """A semaphore held by the scheduler (leases of a worker that dies are freed)."""

    def __init__(self, value: int = 1, name: str | None = None, *, pool: Any = None) -> None:
        client = _client(pool)
        self._s = self._make(value, name, client)
        self.name: str = self._s.name
        self.value = value

    def _make(self, value: int, name: str | None, client: Any) -> Any:
        return _distributed().Semaphore(
            max_leases=value, name=name, scheduler_rpc=client.scheduler, loop=client.loop
        )

    def acquire(self, block: bool = True, timeout: float | None = None) -> bool:
        return bool(self._s.acquire(timeout=_seconds(block, timeout)))

    def release(self) -> None:
        self._s.release()

    def __enter__(self) -> ClusterSemaphore:
        self.acquire()
        return self

    def __exit__(self, *exc: object) -> None:
        self.release()

    def __reduce__(self) -> tuple[Any, ...]:
        return (type(self), (self.value, self.name))

    def __repr__(self) -> str:
        return f"<{type(self).__name__} {self.name!r}>"


class ClusterLock(ClusterSemaphore):
    """A lock held by the scheduler: one holder at a time across the cluster."""

    def __init__(self, name: str | None = None, *, pool: Any = None) -> None:
        super().__init__(1, name, pool=pool)

    def locked(self) -> bool:
        return bool(self._s.get_value() > 0)

    def __reduce__(self) -> tuple[Any, ...]:
        return (ClusterLock, (self.name,))


class ClusterEvent:
    """An event held by the scheduler: ``set`` in one process wakes ``wait`` in all."""

    def __init__(self, name: str | None = None, *, pool: Any = None) -> None:
        self._e = _distributed().Event(name, client=_client(pool))
        self.name: str = self._e.name

    def set(self) -> None:
        self._e.set()

    def clear(self) -> None:
        self._e.clear()

    def is_set(self) -> bool:
        return bool(self._e.is_set())

    def wait(self, timeout: float | None = None) -> bool:
        return bool(self._e.wait(timeout))

    def __reduce__(self) -> tuple[Any, ...]:
        return (ClusterEvent, (self.name,))

    def __repr__(self) -> str:
        return f"<ClusterEvent {self.name!r}>"


class ClusterValue:
    """A named value held by the scheduler (Dask's Variable): ``set`` it, ``get`` it anywhere."""

    def __init__(self, name: str | None = None, *, pool: Any = None) -> None:
        self._v = _distributed().Variable(name, client=_client(pool))
        self.name: str = self._v.name

    def set(self, value: Any) -> None:
        self._v.set(value)

    def get(self, timeout: float | None = None) -> Any:
        """The value; waits for a first ``set`` (``TimeoutError`` after ``timeout``)."""
        try:
            return self._v.get(timeout=timeout)
        except _TIMEOUTS as exc:
            raise TimeoutError(*exc.args) from None

    def delete(self) -> None:
        self._v.delete()

    def __reduce__(self) -> tuple[Any, ...]:
        return (ClusterValue, (self.name,))

    def __repr__(self) -> str:
        return f"<ClusterValue {self.name!r}>"

"""forklift: multiprocessing that does not fail you.

The public face; implementation lives in private modules (see docs/architecture.md).

- :class:`Pool` — the ``multiprocessing.Pool`` API;
- :class:`Executor` — the ``concurrent.futures.Executor`` API;
- :class:`Process`, ``multiprocessing.Process`` with ``result()`` and ``kill_tree()``;
- ``Queue``, ``Lock``, ``Event``, ``Value``... (the multiprocessing primitives, from
  :func:`get_context`), which can also be passed to Pool and Executor tasks;
- the errors of :mod:`forklift.errors`; :func:`kill_tree` for process trees;
- ``ClusterQueue``, ``ClusterLock``... shared objects of a Dask cluster (docs/cluster.md);
- :func:`copy_tree`, the parallel, resumable copier behind ``forklift copy``;
- :mod:`forklift.aio`, the pool for asyncio code (``async with forklift.aio.Pool() as pool``).

Names are imported on first use (as ``concurrent.futures`` does), so a worker
process that imports only forklift's engine does not pay for the whole package.
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

__version__ = "0.1.0"

_EXPORTS = {
    "Array": "context",
    "AsyncResult": "pool",
    "AuthenticationError": "errors",
    "Barrier": "context",
    "BoundedSemaphore": "context",
    "BrokenPoolError": "errors",
    "ClusterError": "errors",
    "JournalError": "errors",
    "ClusterEvent": "_cluster",
    "ClusterLock": "_cluster",
    "ClusterQueue": "_cluster",
    "ClusterSemaphore": "_cluster",
    "ClusterValue": "_cluster",
    "Condition": "context",
    "CopyReport": "copier",
    "Event": "context",
    "Executor": "executor",
    "ForkliftError": "errors",
    "IMapIterator": "pool",
    "JoinableQueue": "context",
    "KillResult": "trees",
    "Lock": "context",
    "Manager": "context",
    "Pipe": "context",
    "Pool": "pool",
    "Process": "process",
    "Queue": "context",
    "RLock": "context",
    "RemoteError": "errors",
    "RemoteTraceback": "errors",
    "Semaphore": "context",
    "SerializationError": "errors",
    "SharedArray": "shared",
    "SharingError": "errors",
    "SimpleQueue": "context",
    "Statistics": "_engine.api",
    "TaskTimeout": "errors",
    "Value": "context",
    "WorkerLostError": "errors",
    "active_children": "context",
    "copy_tree": "copier",
    "cpu_count": "context",
    "current_process": "context",
    "get_context": "context",
    "kill_tree": "trees",
    "parent_process": "context",
    "shared_array": "shared",
}

__all__ = [
    "Array",
    "AsyncResult",
    "AuthenticationError",
    "Barrier",
    "BoundedSemaphore",
    "BrokenPoolError",
    "ClusterError",
    "ClusterEvent",
    "ClusterLock",
    "ClusterQueue",
    "ClusterSemaphore",
    "ClusterValue",
    "Condition",
    "CopyReport",
    "Event",
    "Executor",
    "ForkliftError",
    "IMapIterator",
    "JoinableQueue",
    "JournalError",
    "KillResult",
    "Lock",
    "Manager",
    "Pipe",
    "Pool",
    "Process",
    "Queue",
    "RLock",
    "RemoteError",
    "RemoteTraceback",
    "Semaphore",
    "SerializationError",
    "SharedArray",
    "SharingError",
    "SimpleQueue",
    "Statistics",
    "TaskTimeout",
    "Value",
    "WorkerLostError",
    "__version__",
    "active_children",
    "copy_tree",
    "cpu_count",
    "current_process",
    "get_context",
    "kill_tree",
    "parent_process",
    "shared_array",
]


#: Public submodules, imported on first use too (``forklift.aio.Pool`` after ``import forklift``).
_SUBMODULES = frozenset({"aio", "copier", "errors", "journal", "progress", "report", "trees"})


def __getattr__(name: str) -> Any:
    if name in _SUBMODULES:
        return importlib.import_module(f".{name}", __name__)
    module = _EXPORTS.get(name)
    if module is None:
        raise AttributeError(f"module 'forklift' has no attribute {name!r}")
    value = getattr(importlib.import_module(f".{module}", __name__), name)
    globals()[name] = value
    return value


def __dir__() -> list[str]:
    return sorted([*globals(), *_EXPORTS])


if TYPE_CHECKING:
    from ._cluster import ClusterEvent, ClusterLock, ClusterQueue, ClusterSemaphore, ClusterValue
    from ._engine.api import Statistics
    from .context import (
        Array,
        Barrier,
        BoundedSemaphore,
        Condition,
        Event,
        JoinableQueue,
        Lock,
        Manager,
        Pipe,
        Queue,
        RLock,
        Semaphore,
        SimpleQueue,
        Value,
        active_children,
        cpu_count,
        current_process,
        get_context,
        parent_process,
    )
    from .copier import CopyReport, copy_tree
    from .errors import (
        AuthenticationError,
        BrokenPoolError,
        ClusterError,
        ForkliftError,
        RemoteError,
        RemoteTraceback,
        SerializationError,
        SharingError,
        TaskTimeout,
        WorkerLostError,
    )
    from .executor import Executor
    from .pool import AsyncResult, IMapIterator, Pool
    from .process import Process
    from .shared import SharedArray, shared_array
    from .trees import KillResult, kill_tree

"""forklift: multiprocessing that does not fail you.

The public face; implementation lives in private modules (see docs/architecture.md).

- :class:`Pool` — the ``multiprocessing.Pool`` API;
- :class:`Executor` — the ``concurrent.futures.Executor`` API;
- the errors of :mod:`forklift.errors`; :func:`kill_tree` for process trees.
"""

from __future__ import annotations

from ._engine.core import Statistics
from .errors import (
    BrokenPoolError,
    ForkliftError,
    RemoteError,
    RemoteTraceback,
    SerializationError,
    TaskTimeout,
    WorkerLostError,
)
from .executor import Executor
from .pool import AsyncResult, IMapIterator, Pool
from .trees import kill_tree

__version__ = "0.1.0"

__all__ = [
    "AsyncResult",
    "BrokenPoolError",
    "Executor",
    "ForkliftError",
    "IMapIterator",
    "Pool",
    "RemoteError",
    "RemoteTraceback",
    "SerializationError",
    "Statistics",
    "TaskTimeout",
    "WorkerLostError",
    "__version__",
    "kill_tree",
]

"""forklift: multiprocessing that does not fail you.

The public face; implementation lives in private modules (see docs/architecture.md).

- :class:`Pool` — the ``multiprocessing.Pool`` API;
- :class:`Executor` — the ``concurrent.futures.Executor`` API;
- the errors of :mod:`forklift.errors`; :func:`kill_tree` for process trees.

Names are imported on first use (as ``concurrent.futures`` does), so a worker
process that imports only forklift's engine does not pay for the whole package.
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

__version__ = "0.1.0"

_EXPORTS = {
    "AsyncResult": "pool",
    "BrokenPoolError": "errors",
    "Executor": "executor",
    "ForkliftError": "errors",
    "IMapIterator": "pool",
    "Pool": "pool",
    "RemoteError": "errors",
    "RemoteTraceback": "errors",
    "SerializationError": "errors",
    "Statistics": "_engine.core",
    "TaskTimeout": "errors",
    "WorkerLostError": "errors",
    "kill_tree": "trees",
}

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


def __getattr__(name: str) -> Any:
    module = _EXPORTS.get(name)
    if module is None:
        raise AttributeError(f"module 'forklift' has no attribute {name!r}")
    value = getattr(importlib.import_module(f".{module}", __name__), name)
    globals()[name] = value
    return value


def __dir__() -> list[str]:
    return sorted([*globals(), *_EXPORTS])


if TYPE_CHECKING:
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

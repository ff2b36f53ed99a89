"""forklift's contexts: multiprocessing's, making forklift's Process and primitives.

``get_context(method)`` returns a subclass of the stdlib's context for that
start method (``ForkContext``, ``SpawnContext``, ``ForkServerContext``), so it
works wherever a multiprocessing context does. What it makes differs in one
way: every primitive pickles at any time, so it can be an argument of a
``forklift.Pool`` / ``forklift.Executor`` task as well as of a Process, in
every start method, mixed freely. How each pickles:

    Lock RLock Semaphore BoundedSemaphore   the POSIX semaphore's name      _primitives/synchronize
    Condition Event Barrier                  their parts (+ a memfd)         _primitives/synchronize
    Queue JoinableQueue SimpleQueue          pipe ends as /proc tokens       _primitives/queues
    Value Array RawValue RawArray            a memfd token                   _primitives/sharedctypes
    Pipe() Connection                        the descriptor, handed once     _primitives/pipe

The primitives do not depend on the start method; only processes (and the
Manager's server process) do. The module-level names (``forklift.Queue``,
``forklift.Lock``, ...) are the methods of the default context, whose
processes use forklift's default start method (forkserver on Linux, or
``FORKLIFT_START_METHOD``).
"""

from __future__ import annotations

import multiprocessing.context as mp_context
from collections.abc import Callable, Sequence
from multiprocessing import process as mp_process
from multiprocessing import synchronize as mp_synchronize
from typing import TYPE_CHECKING, Any, ClassVar

from ._primitives import pipe, queues, sharedctypes, synchronize
from .process import ForkProcess, ForkServerProcess, Process, SpawnProcess

if TYPE_CHECKING:
    from .managers import SyncManager

__all__ = [
    "Array",
    "Barrier",
    "BoundedSemaphore",
    "Condition",
    "Event",
    "JoinableQueue",
    "Lock",
    "Manager",
    "Pipe",
    "Queue",
    "RLock",
    "RawArray",
    "RawValue",
    "Semaphore",
    "SimpleQueue",
    "Value",
    "active_children",
    "cpu_count",
    "current_process",
    "get_context",
    "parent_process",
]


class ForkliftContext(mp_context.BaseContext):
    """What every forklift context makes: primitives that can be passed to Pool and Executor tasks."""

    Process: ClassVar[type[Process]]

    def Lock(self) -> synchronize.Lock:
        """A non-recursive lock (multiprocessing.Lock) that can also be passed to Pool and Executor tasks."""
        return synchronize.Lock(ctx=self)

    def RLock(self) -> synchronize.RLock:
        """A recursive lock (multiprocessing.RLock) that can also be passed to Pool and Executor tasks."""
        return synchronize.RLock(ctx=self)

    def Semaphore(self, value: int = 1) -> synchronize.Semaphore:
        """A semaphore (multiprocessing.Semaphore) that can also be passed to Pool and Executor tasks."""
        return synchronize.Semaphore(value, ctx=self)

    def BoundedSemaphore(self, value: int = 1) -> synchronize.BoundedSemaphore:
        """A bounded semaphore that can also be passed to Pool and Executor tasks."""
        return synchronize.BoundedSemaphore(value, ctx=self)

    def Condition(self, lock: Any = None) -> synchronize.Condition:
        """A condition variable (on ``lock``, default a new RLock) that can also be passed to tasks."""
        return synchronize.Condition(lock, ctx=self)

    def Event(self) -> mp_synchronize.Event:
        """An event (multiprocessing.Event) that can also be passed to Pool and Executor tasks."""
        # The stdlib's Event is made of this context's Condition and Semaphore, and pickles through them.
        return mp_synchronize.Event(ctx=self)

    def Barrier(
        self, parties: int, action: Callable[[], object] | None = None, timeout: float | None = None
    ) -> synchronize.Barrier:
        """A barrier for ``parties`` processes that can also be passed to Pool and Executor tasks."""
        return synchronize.Barrier(parties, action, timeout, ctx=self)

    def Queue(self, maxsize: int = 0) -> queues.Queue:
        """A process-shared FIFO queue (multiprocessing.Queue) that can also be passed to tasks."""
        return queues.Queue(maxsize, ctx=self)

    def JoinableQueue(self, maxsize: int = 0) -> queues.JoinableQueue:
        """A Queue with task_done() and join() that can also be passed to Pool and Executor tasks."""
        return queues.JoinableQueue(maxsize, ctx=self)

    def SimpleQueue(self) -> queues.SimpleQueue:
        """A locked pipe with put/get/empty that can also be passed to Pool and Executor tasks."""
        return queues.SimpleQueue(ctx=self)

    def Pipe(self, duplex: bool = True) -> tuple[pipe.PipeConnection, pipe.PipeConnection]:
        """Two connected Connections; each pickled copy of an end can be received once, by any process."""
        return pipe.Pipe(duplex)

    def RawValue(self, typecode_or_type: Any, *args: Any) -> Any:
        """A ctypes object in shared memory, without a lock; it can also be passed to tasks."""
        return sharedctypes.RawValue(typecode_or_type, *args)

    def RawArray(self, typecode_or_type: Any, size_or_initializer: int | Sequence[Any]) -> Any:
        """A ctypes array in shared memory, without a lock; it can also be passed to tasks."""
        return sharedctypes.RawArray(typecode_or_type, size_or_initializer)

    def Value(self, typecode_or_type: Any, *args: Any, lock: Any = True) -> Any:
        """A shared ctypes value behind a lock (``.value``, ``get_lock()``) that can also be passed to tasks.

        ``typecode_or_type``: an array-module typecode (``'i'``, ``'d'``...) or a
        ctypes type; ``lock``: True (a new RLock), False (no lock: the raw
        object), or a lock to use.
        """
        return sharedctypes.Value(typecode_or_type, *args, lock=lock, ctx=self)

    def Array(
        self, typecode_or_type: Any, size_or_initializer: int | Sequence[Any], *, lock: Any = True
    ) -> Any:
        """A shared ctypes array behind a lock (indexing, slicing) that can also be passed to tasks.

        ``size_or_initializer``: a length (zeroed) or a sequence of initial
        items; ``lock`` as for :meth:`Value`.
        """
        return sharedctypes.Array(typecode_or_type, size_or_initializer, lock=lock, ctx=self)

    def Manager(self) -> SyncManager:
        """A started SyncManager (forklift.managers) whose server process uses this context's method."""
        from .managers import Manager as _Manager

        return _Manager(start_method=self.get_start_method())

    def get_context(self, method: str | None = None) -> ForkliftContext:  # type: ignore[override]
        """This context, or forklift's context for start method ``method``."""
        return self if method is None else get_context(method)


class ForkContext(ForkliftContext, mp_context.ForkContext):
    """forklift's context for the fork start method."""

    Process = ForkProcess


class SpawnContext(ForkliftContext, mp_context.SpawnContext):
    """forklift's context for the spawn start method."""

    Process = SpawnProcess


class ForkServerContext(ForkliftContext, mp_context.ForkServerContext):
    """forklift's context for the forkserver start method."""

    Process = ForkServerProcess


class DefaultContext(ForkliftContext):
    """The context behind ``forklift.Queue``, ``forklift.Lock``...; its processes use the default method."""

    Process = Process

    def get_context(self, method: str | None = None) -> ForkliftContext:  # type: ignore[override]
        return get_context(method)

    def get_start_method(self, allow_none: bool = False) -> str:
        return get_context().get_start_method()


_contexts: dict[str, ForkliftContext] = {
    "fork": ForkContext(),
    "spawn": SpawnContext(),
    "forkserver": ForkServerContext(),
}


def get_context(method: str | None = None) -> ForkliftContext:
    """forklift's context for start method ``method`` ("fork", "spawn", "forkserver").

    None: forklift's default (forkserver on Linux, or ``FORKLIFT_START_METHOD``).
    A subclass of multiprocessing's context for that method, whose ``Process``
    is :class:`forklift.Process` and whose primitives can also be passed to
    ``forklift.Pool`` / ``forklift.Executor`` tasks.
    """
    # The pools' resolver: the same default, the same check, and the fork server's
    # preload (the server is shared with them).
    from ._start_methods import resolve_context as resolve

    return _contexts[resolve(method).get_start_method()]


_default = DefaultContext()

Lock = _default.Lock
RLock = _default.RLock
Semaphore = _default.Semaphore
BoundedSemaphore = _default.BoundedSemaphore
Condition = _default.Condition
Event = _default.Event
Barrier = _default.Barrier
Queue = _default.Queue
JoinableQueue = _default.JoinableQueue
SimpleQueue = _default.SimpleQueue
Pipe = _default.Pipe
RawValue = _default.RawValue
RawArray = _default.RawArray
Value = _default.Value
Array = _default.Array
Manager = _default.Manager
cpu_count = _default.cpu_count
current_process = mp_process.current_process
active_children = mp_process.active_children
parent_process = mp_process.parent_process

"""Locks, semaphores, conditions and barriers that pickle at any time.

multiprocessing's synchronisation objects wrap a POSIX named semaphore. The
stdlib keeps the semaphore's name unless the context is fork, but pickles only
while it starts a process (``assert_spawning``): hence "Lock objects should only
be shared between processes through inheritance" from a Pool task's argument.
These subclasses always keep the name, whatever the start method, and pickle
it at any time; the receiver re-opens the semaphore by name
(``_multiprocessing.SemLock._rebuild``), once per process (``registry``).

Lifetime is the stdlib's: the creator unlinks the name when its object is
garbage collected or it exits. A process that already opened the semaphore
keeps using it; one that receives the name afterwards gets a SharingError.

Condition and Event are composites of these (made through a forklift
context), so they pickle through their parts; Barrier keeps its shared
counters in a memfd (``sharedctypes.SharedBlock``) instead of multiprocessing's
heap, which is passed only while spawning.
"""

from __future__ import annotations

import multiprocessing
import struct
from collections.abc import Callable
from multiprocessing import synchronize, util
from multiprocessing.context import BaseContext
from typing import Any

from ..errors import SharingError
from . import registry

# SemLock.__init__ asks its ctx only for the start method, to decide whether to
# keep the semaphore's name: any context but fork says keep it.
_KEEP_NAME = multiprocessing.get_context("spawn")


class _Named(synchronize.SemLock):
    """Mixin: a named SemLock that pickles by its name at any time."""

    _semlock: Any  # the stdlib's _multiprocessing.SemLock (untyped in typeshed)

    def __init__(self, *args: Any, ctx: BaseContext | None = None, **kwargs: Any) -> None:
        # The caller's ctx is not needed: the semaphore is named whatever its start method.
        super().__init__(*args, ctx=_KEEP_NAME, **kwargs)
        registry.remember(self._key(), self)

    def _key(self) -> tuple[str, str]:
        return ("semaphore", self._semlock.name)

    def __reduce__(self) -> tuple[Any, ...]:
        sl = self._semlock
        return (registry.rebuild, (type(self), self._key(), (sl.handle, sl.kind, sl.maxvalue, sl.name)))

    def __setstate__(self, state: tuple[int, int, int, str]) -> None:
        try:
            super().__setstate__(state)  # type: ignore[misc]
        except FileNotFoundError:
            raise SharingError(
                f"shared {type(self).__name__} is gone: its owner exited or dropped it "
                f"(semaphore {state[3]} was unlinked)"
            ) from None
        # As SemLock.__init__ does for the original: a forked child must not
        # inherit this thread's ownership count.
        util.register_after_fork(self, _Named._after_fork)

    @staticmethod
    def _after_fork(obj: _Named) -> None:
        obj._semlock._after_fork()


class Lock(_Named, synchronize.Lock):
    """A multiprocessing Lock that can also be passed to Pool and Executor tasks."""


class RLock(_Named, synchronize.RLock):
    """A multiprocessing RLock that can also be passed to Pool and Executor tasks."""


class Semaphore(_Named, synchronize.Semaphore):
    """A multiprocessing Semaphore that can also be passed to Pool and Executor tasks."""


class BoundedSemaphore(_Named, synchronize.BoundedSemaphore):
    """A multiprocessing BoundedSemaphore that can also be passed to Pool and Executor tasks."""


class Condition(synchronize.Condition):
    """A multiprocessing Condition that can also be passed to Pool and Executor tasks.

    Made by a forklift context, its lock and semaphores are forklift's, so it
    pickles through them.
    """

    _lock: Any
    _sleeping_count: Any
    _woken_count: Any
    _wait_semaphore: Any

    def __getstate__(self) -> tuple[Any, ...]:
        # The stdlib's state, without its assert_spawning.
        return (self._lock, self._sleeping_count, self._woken_count, self._wait_semaphore)


class Barrier(synchronize.Barrier):
    """A multiprocessing Barrier that can also be passed to Pool and Executor tasks."""

    def __init__(
        self,
        parties: int,
        action: Callable[[], object] | None = None,
        timeout: float | None = None,
        *,
        ctx: BaseContext,
    ) -> None:
        # synchronize.Barrier.__init__ with a memfd for the two shared counters
        # (state, count) in place of multiprocessing's heap.
        from .sharedctypes import SharedBlock

        counters = SharedBlock(2 * struct.calcsize("i"))
        self.__setstate__((parties, action, timeout, ctx.Condition(), counters))  # type: ignore[attr-defined]
        self._state = 0
        self._count = 0

"""One object per shared thing in each process.

forklift's primitives pickle by what names the shared thing (a semaphore's
name, a pipe's or a memfd's inode), at any time, so a Pool task can receive
them. Unpickling one in a process that already has an object for that name
returns the object it has. So sending one Queue to 10,000 tasks opens its pipe
once per worker (while a task holds it), not once per task, and an RLock keeps
one owner and count per process, however many times it arrives.

Objects are held weakly: when the last user in a process drops one, its
descriptors close and a later arrival opens them again.
"""

from __future__ import annotations

import os
import threading
import weakref
from collections.abc import Hashable
from typing import Any, Protocol, TypeVar

_objects: weakref.WeakValueDictionary[Hashable, Any] = weakref.WeakValueDictionary()
_lock = threading.Lock()
# A fork taken while another thread held the lock must not leave the child stuck.
os.register_at_fork(after_in_child=_lock._at_fork_reinit)  # type: ignore[attr-defined]


class Rebuildable(Protocol):
    def __setstate__(self, state: Any) -> None: ...


R = TypeVar("R", bound=Rebuildable)


def remember(key: Hashable, obj: object) -> None:
    """Record ``obj`` as this process's object for ``key`` (called by its creator)."""
    with _lock:
        _objects[key] = obj


def lookup(key: Hashable) -> Any:
    """This process's object for ``key``, or None."""
    with _lock:
        return _objects.get(key)


def rebuild(cls: type[R], key: Hashable, state: Any) -> R:
    """Unpickle a ``cls`` from ``state``, unless this process already has the one ``key`` names.

    The target of the shared primitives' ``__reduce__``.
    """
    with _lock:
        obj: R | None = _objects.get(key)
        if obj is None:
            obj = cls.__new__(cls)
            obj.__setstate__(state)
            _objects[key] = obj
        return obj

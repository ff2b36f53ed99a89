"""Value, Array, RawValue and RawArray in memory that pickles at any time.

multiprocessing allocates them from its heap, an arena passed by descriptor
only while a process starts, so they cannot be a Pool task's argument. Here
each lives in its own memfd (a :class:`SharedBlock`, see ``memfd``), pickled as
the memfd's ``fd_tokens`` token; the receiver maps the same memory once per
process (``registry``), so writes are seen everywhere. The API is the
stdlib's, and so are the synchronised wrappers (subclassed only to pickle
without ``assert_spawning``).

Raw objects are instances of a subclass of their ctypes type (made once per
type) whose ``__reduce__`` sends the memory, not a copy of the bytes.

Costs and limits: one descriptor held by the owner per Value or Array; a
receiver can attach only while the owner holds it (re-sending from a receiver
names the owner's memory too).
"""

from __future__ import annotations

import ctypes
import mmap
from collections.abc import Sequence
from multiprocessing import sharedctypes
from multiprocessing.context import BaseContext
from typing import TYPE_CHECKING, Any

from . import memfd, registry
from .fd_tokens import Token

if TYPE_CHECKING:
    _SynchronizedBase = sharedctypes.SynchronizedBase[Any]
    _Synchronized = sharedctypes.Synchronized[Any]
    _SynchronizedArray = sharedctypes.SynchronizedArray[Any]
else:  # not subscriptable at run time before Python 3.12
    _SynchronizedBase = sharedctypes.SynchronizedBase
    _Synchronized = sharedctypes.Synchronized
    _SynchronizedArray = sharedctypes.SynchronizedArray


class SharedBlock:
    """A block of shared memory that pickles as its memfd's token.

    Stands in for multiprocessing's ``heap.BufferWrapper`` (same
    ``create_memoryview``), so stdlib code that takes a wrapper accepts it.
    """

    def __init__(self, size: int) -> None:
        segment = memfd.Segment(size, "forklift-shared")
        self._owner: memfd.Segment | None = segment
        self._setup(segment.token, size, segment.map)
        registry.remember(self._key(), self)

    def _setup(self, token: Token, size: int, buffer: mmap.mmap) -> None:
        self.token = token
        self.size = size
        self.buffer = buffer

    def _key(self) -> tuple[str, int]:
        return ("memfd", self.token[2])

    @classmethod
    def attach(cls, token: Token, size: int) -> SharedBlock:
        """This process's object for the block ``token`` names (mapped on first use)."""
        return registry.rebuild(cls, ("memfd", token[2]), (token, size))

    @property
    def owned(self) -> bool:
        """True in the process that made the block (the one whose close() counts)."""
        return self._owner is not None

    def close(self) -> None:
        """Owner only: give the block up; no process can attach any more, mappings stay valid."""
        if self._owner is not None:
            self._owner.close()

    def create_memoryview(self) -> memoryview:
        return memoryview(self.buffer)[: self.size]

    def __reduce__(self) -> tuple[Any, ...]:
        return (SharedBlock.attach, (self.token, self.size))

    def __setstate__(self, state: tuple[Token, int]) -> None:
        token, size = state
        self._owner = None
        self._setup(token, size, memfd.attach(token, size))


_portable_types: dict[type[Any], type[Any]] = {}


def _portable(type_: type[Any]) -> type[Any]:
    """The subclass of ctypes ``type_`` whose instances pickle as their shared memory."""
    sub = _portable_types.get(type_)
    if sub is None:
        sub = type(type_.__name__, (type_,), {"__reduce__": _reduce_ctype, "__module__": __name__})
        _portable_types[type_] = sub
    return sub


def _reduce_ctype(obj: Any) -> tuple[Any, ...]:
    block = obj._wrapper
    if isinstance(obj, ctypes.Array):  # array types are made on the fly: send what makes them
        return (_rebuild_ctype, (obj._type_, obj._length_, block))
    return (_rebuild_ctype, (type(obj).__mro__[1], None, block))


def _rebuild_ctype(type_: type[Any], length: int | None, block: SharedBlock) -> Any:
    if length is not None:
        type_ = type_ * length
    obj = _portable(type_).from_buffer(block.create_memoryview())
    obj._wrapper = block  # keeps the mapping alive, and is what pickles
    return obj


def _new(type_: type[Any]) -> Any:
    return _rebuild_ctype(type_, None, SharedBlock(ctypes.sizeof(type_)))


def _ctype(typecode_or_type: str | type[Any]) -> type[Any]:
    return sharedctypes.typecode_to_type.get(typecode_or_type, typecode_or_type)  # type: ignore[attr-defined,no-any-return]


def RawValue(typecode_or_type: str | type[Any], *args: Any) -> Any:
    """A ctypes object in shared memory (zeroed, then initialised from ``args``)."""
    obj = _new(_ctype(typecode_or_type))
    obj.__init__(*args)
    return obj


def RawArray(typecode_or_type: str | type[Any], size_or_initializer: int | Sequence[Any]) -> Any:
    """A ctypes array in shared memory: zeroed of that size, or holding the initializer's items."""
    type_ = _ctype(typecode_or_type)
    if isinstance(size_or_initializer, int):
        return _new(type_ * size_or_initializer)
    obj = _new(type_ * len(size_or_initializer))
    obj.__init__(*size_or_initializer)
    return obj


def Value(typecode_or_type: str | type[Any], *args: Any, lock: Any = True, ctx: BaseContext) -> Any:
    """A RawValue behind a lock (``lock=True``: a new RLock; False: the raw object)."""
    return _guarded(RawValue(typecode_or_type, *args), lock, ctx)


def Array(
    typecode_or_type: str | type[Any],
    size_or_initializer: int | Sequence[Any],
    *,
    lock: Any = True,
    ctx: BaseContext,
) -> Any:
    """A RawArray behind a lock (``lock=True``: a new RLock; False: the raw array)."""
    return _guarded(RawArray(typecode_or_type, size_or_initializer), lock, ctx)


def _guarded(obj: Any, lock: Any, ctx: BaseContext) -> Any:
    # sharedctypes.Value / Array, from the raw object on
    if lock is False:
        return obj
    if lock is True or lock is None:
        lock = ctx.RLock()
    if not hasattr(lock, "acquire"):
        raise AttributeError(f"{lock!r} has no method 'acquire'")
    return synchronized(obj, lock)


class _Portable(_SynchronizedBase):
    """Mixin: a synchronised wrapper that pickles at any time (its object and lock do)."""

    def __reduce__(self) -> tuple[Any, ...]:
        return (synchronized, (self.get_obj(), self.get_lock()))


class Synchronized(_Portable, _Synchronized):
    """A shared ctypes value behind a lock: ``.value``, ``get_lock()``, ``get_obj()``."""


class SynchronizedArray(_Portable, _SynchronizedArray):
    """A shared ctypes array behind a lock: indexing, slicing, ``len``, ``get_lock()``."""


class SynchronizedString(_Portable, sharedctypes.SynchronizedString):
    """A shared ``c_char`` array behind a lock, with ``.value`` and ``.raw``."""


_struct_classes: dict[type[Any], type[_Portable]] = {}


def synchronized(obj: Any, lock: Any) -> _Portable:
    """Wrap a shared ctypes object with ``lock`` (sharedctypes.synchronized, portable)."""
    if isinstance(obj, ctypes._SimpleCData):
        return Synchronized(obj, lock)
    if isinstance(obj, ctypes.Array):
        return (SynchronizedString if obj._type_ is ctypes.c_char else SynchronizedArray)(obj, lock)
    return _struct_class(type(obj))(obj, lock)


def _struct_class(cls: type[Any]) -> type[_Portable]:
    # As sharedctypes does for a Structure: one locked property per field.
    scls = _struct_classes.get(cls)
    if scls is None:
        fields = {name: sharedctypes.make_property(name) for name, *_ in cls._fields_}  # type: ignore[attr-defined]
        scls = _struct_classes[cls] = type("Synchronized" + cls.__name__, (_Portable,), fields)
    return scls

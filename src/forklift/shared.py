"""Numpy arrays in shared memory that cross to other processes by name, without copying.

>>> a = forklift.SharedArray((1000, 1000))     # zeros, float64, in shared memory
>>> pool.map(fill_row, [(a, i) for i in range(1000)])   # workers write into a
>>> a.sum()

Pickling a :class:`SharedArray` (or any view of one: a slice, a transpose)
sends a token naming its memory, an offset, shape, strides and dtype: a few
dozen bytes, whatever the size. The receiver maps the same memory once per
process and every array it unpickles from it is a view of that mapping, so
writes are seen by every process at once (synchronise them as for threads).

Lifetime: the process that made the array owns the memory. Other processes
can attach while the owner holds it; :meth:`SharedArray.close` (or the end
of a ``with`` block, or the owner's exit, even by SIGKILL) ends that, and the
memory itself goes when the last process drops its last view. A process that
received SharedArrays keeps the last 8 blocks mapped (so a worker given the
same array task after task maps it once); it lets go of a closed block the
next time it receives a SharedArray, or when it exits. Workers forked after a
block was made (``start_method="fork"``) hold it until they exit, as forked
children hold any memory of their parent's. The memory is
a memfd (see ``memfd``): there is no file in /dev/shm to leak after a crash,
so no resource_tracker process and none of its warnings or early unlinks.

A result computed from a SharedArray (``a + 1``) lives in private memory and
pickles as an ordinary array (through forklift's pools it still travels via
shared memory when it is large, but as a copy).
"""

from __future__ import annotations

import math
import os
import sys
from collections import OrderedDict
from typing import Any, Literal

try:
    import numpy as np
except ImportError as exc:  # pragma: no cover - numpy is an optional extra
    raise ImportError("forklift.SharedArray needs numpy: pip install 'forklift[numpy]'") from exc
try:
    from numpy.lib.array_utils import byte_bounds  # numpy >= 2
except ImportError:  # pragma: no cover - numpy 1.x
    from numpy import byte_bounds  # type: ignore[attr-defined,no-redef]

from ._primitives import fd_tokens, registry
from ._primitives.fd_tokens import Token
from ._primitives.sharedctypes import SharedBlock
from .errors import SharingError

__all__ = ["SharedArray", "shared_array"]


class _Memory:
    """A shared block and the byte view arrays are made over: one per block in each process
    (kept by ``registry``, as the block itself is)."""

    def __init__(self, block: SharedBlock) -> None:
        self.__setstate__(block)

    def __setstate__(self, block: SharedBlock) -> None:  # what registry.rebuild calls
        self.block = block
        # Arrays are made over this frombuffer() view, never over the mmap itself: numpy keeps
        # no buffer export of an object given as ``buffer=``, so the mapping could be closed
        # under a live array; frombuffer's memoryview holds the export that forbids it.
        self.bytes = np.frombuffer(block.buffer, np.uint8)
        self.address = int(self.bytes.ctypes.data)

    def holds(self, array: np.ndarray[Any, Any]) -> bool:
        """Does ``array``'s data lie inside this block?"""
        low, high = byte_bounds(array)
        return self.address <= low and high <= self.address + max(self.block.size, 1)


def _key(token: Token) -> tuple[str, int]:
    return ("array", token[2])


# The last few blocks attached here stay mapped after their arrays are gone: a worker given
# the same SharedArray task after task maps it once (mapping 100 MB again costs ~10 ms of
# page faults). A block whose owner has closed it is let go at the next new attach.
_RECENT = 8
_recent: OrderedDict[Token, _Memory] = OrderedDict()


class SharedArray(np.ndarray):
    """A numpy array in shared memory; pickles by name, so it crosses to workers without copying.

    ``SharedArray(shape, dtype=float, order="C")`` makes a zero-filled array;
    :meth:`from_array` copies an existing one in. Use it as any ndarray. Close
    it (or use it as a context manager) to give up the memory before exit.
    """

    _memory: _Memory | None

    def __new__(cls, shape: Any, dtype: Any = float, order: Literal["C", "F"] = "C") -> SharedArray:
        dtype = np.dtype(dtype)
        if dtype.hasobject:  # object pointers mean nothing in another process
            raise TypeError(f"a SharedArray cannot hold Python objects (dtype {dtype})")
        dims = _dims(shape)
        if any(n < 0 for n in dims):  # numpy's own check, before any memory is made
            raise ValueError(f"negative dimensions are not allowed: {shape}")
        nbytes = math.prod(int(n) for n in dims) * dtype.itemsize  # Python ints: no overflow
        if nbytes > sys.maxsize:  # numpy's own words for np.empty of that size
            raise ValueError(
                "array is too big; `arr.size * arr.dtype.itemsize` is larger than the maximum possible size."
            )
        memory = _Memory(SharedBlock(nbytes))
        registry.remember(_key(memory.block.token), memory)
        array: SharedArray = super().__new__(cls, shape, dtype, buffer=memory.bytes, order=order)
        array._memory = memory
        return array

    @classmethod
    def from_array(cls, array: Any) -> SharedArray:
        """A SharedArray holding a copy of ``array``."""
        source = np.asarray(array)
        shared = cls(source.shape, source.dtype)
        np.copyto(shared, source)
        return shared

    def __array_finalize__(self, obj: Any) -> None:
        memory = getattr(obj, "_memory", None)
        # A view of a shared block stays shared; a result computed into new memory does not.
        self._memory = memory if memory is not None and memory.holds(self) else None

    def __array_wrap__(self, array: Any, context: Any = None, return_scalar: bool = False) -> Any:
        if return_scalar:  # numpy >= 2 asks for the scalar of a 0-d result
            return array[()]
        if isinstance(array, SharedArray) and array._memory is None:
            return array.view(np.ndarray)  # ufunc output in private memory: a plain array
        return array

    @property
    def is_shared(self) -> bool:
        """True when this array's data lives in shared memory (False for computed results)."""
        return self._memory is not None

    def close(self) -> None:
        """Give up this block: no process can attach to it any more.

        Arrays already unpickled elsewhere, and this one, stay usable; the
        memory goes with the last of them. Only the owner's close matters;
        elsewhere it does nothing.
        """
        if self._memory is not None:
            self._memory.block.close()

    def __enter__(self) -> SharedArray:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def __reduce_ex__(self, protocol: Any) -> Any:
        memory = self._memory
        if memory is None or not memory.holds(self):
            return np.asarray(self).__reduce_ex__(protocol)
        offset = int(self.__array_interface__["data"][0]) - memory.address
        block = memory.block
        return _rebuild, (block.token, block.size, offset, self.shape, self.strides, self.dtype)

    def __reduce__(self) -> Any:
        return self.__reduce_ex__(2)


def _dims(shape: Any) -> tuple[int, ...]:
    """``shape`` as ints: 3, np.int64(3), np.array(3), (2, 3); TypeError for anything else."""
    seq = (shape,) if np.ndim(shape) == 0 else tuple(shape)
    dims = []
    for n in seq:
        whole = isinstance(n, (int, np.integer)) and not isinstance(n, bool)
        if not (whole or (isinstance(n, np.ndarray) and n.ndim == 0 and n.dtype.kind in "iu")):
            raise TypeError(f"a shape holds integers, not {type(n).__name__} ({n!r})")
        dims.append(int(n))
    return tuple(dims)


def shared_array(shape: Any, dtype: Any = float, order: Literal["C", "F"] = "C") -> SharedArray:
    """Make a zero-filled :class:`SharedArray` (the same as ``SharedArray(shape, dtype, order)``)."""
    return SharedArray(shape, dtype, order)


def _rebuild(
    token: Token, nbytes: int, offset: int, shape: tuple[int, ...], strides: tuple[int, ...], dtype: Any
) -> SharedArray:
    if registry.lookup(_key(token)) is None:  # a new block here: first let go of closed ones
        _forget_closed()
    block = SharedBlock.attach(token, nbytes)
    memory = registry.rebuild(_Memory, _key(token), block)
    if not block.owned:
        _recent[token] = memory
        _recent.move_to_end(token)
        if len(_recent) > _RECENT:
            _recent.popitem(last=False)
    array = np.ndarray.__new__(SharedArray, shape, dtype, buffer=memory.bytes, offset=offset, strides=strides)
    array._memory = memory
    return array  # type: ignore[no-any-return]


def _forget_closed() -> None:
    for token in list(_recent):
        try:
            os.close(fd_tokens.open_token(token, os.O_RDONLY))
        except SharingError:
            del _recent[token]

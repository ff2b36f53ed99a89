"""Big buffers cross through shared memory, not the pipe.

Pickle protocol 5 hands every buffer that supports it (numpy arrays,
``pickle.PickleBuffer``) to a callback. Buffers of at least ``BULK_BYTES``
(1 MiB) are copied once into a shared memory segment (``memfd``) and only the
segment's token travels in the message; the receiver maps the segment and
unpickles the object around the mapping, without another copy. Large
``bytes`` / ``bytearray`` objects near the top of the arguments or results
(a task's argument, an element of its argument tuple, a result) go the same
way; deeper inside other containers they stay in-band.

Parent -> worker. The parent copies each big buffer into a segment it owns.
The worker maps it copy-on-write (``private``): a task may write to its
argument as to a pickled copy, and the parent's segment never changes. When
the chunk is done the worker unmaps; if the task kept a reference (a view
still exports the mapping) it says so, and the parent does not reuse that
segment. Otherwise the parent keeps the segment warm for the next big
argument (``SegmentCache``): writing into pages that already exist costs
~8 ms per 100 MB here, where fresh pages cost ~80 ms.

Worker -> parent. The worker copies a big result buffer into a segment and
holds it until the parent has mapped it (``RELEASE``); the array the caller
gets lives in that mapping. When the caller drops it, the parent says so
(``FREE``) and the worker reuses the segment for a later result, its pages
warm; the worker lends at most ``Outgoing.LENT`` segments at a time.
"""

from __future__ import annotations

import errno
import mmap
import pickle
import resource
import threading
import weakref
from collections import OrderedDict
from collections.abc import Callable
from typing import Any

from .. import _config, _serialize
from .._platform import has
from .._primitives import memfd
from .._primitives.fd_tokens import Token

# What travels in a message: (segment token, bytes used) per out-of-band buffer.
Wire = tuple[tuple[Token, int], ...]
# What the sender holds meanwhile: (segment, bytes used).
Shipped = list[tuple[memfd.Segment, int]]


def dumps(obj: Any, take: Callable[[int], memfd.Segment], memo: Memo | None = None) -> tuple[bytes, Shipped]:
    """Pickle ``obj``; each buffer of ``BULK_BYTES`` or more goes into a segment from ``take``.

    With a ``memo`` (a job whose input is fixed, as ``map``'s list), a buffer of
    the same array as one of the last few sent reuses that segment: ``map(f,
    [a, a])`` copies ``a`` once.
    """
    shipped: Shipped = []

    def divert(buf: pickle.PickleBuffer) -> bool:
        try:
            raw = buf.raw()
        except BufferError:  # not contiguous: pickle copies it in-band
            return True
        n = raw.nbytes
        if n < _config.BULK_BYTES or not has("proc"):
            return True
        key = (id(raw.obj), n)
        hit = memo.get(key) if memo is not None else None
        if hit is not None and hit[0] is raw.obj:
            segment = hit[1]
        else:
            try:
                segment = take(n)
            except OSError as exc:
                if exc.errno in _NO_ROOM:  # no descriptor or no space left: in-band, slower but sent
                    return True
                raise
            memoryview(segment.map)[:n] = raw
            if memo is not None:
                memo.put(key, raw.obj, segment)
        segment.users += 1
        shipped.append((segment, n))
        return False

    data = _serialize.dumps(obj, buffer_callback=divert)
    if len(data) >= _config.BULK_BYTES and has("proc"):
        wrapped = _wrap_big(obj)
        if wrapped is not obj:  # big bytes/bytearray went in-band: send them out of band too
            for segment, _ in shipped:
                segment.users -= 1
            del shipped[:]
            data = _serialize.dumps(wrapped, buffer_callback=divert)
    return data, shipped


#: A segment cannot be made for want of descriptors, or of room (a full /dev/shm, without
#: memfd): the buffer goes in the pickle stream. (Segments are attached through /proc, so
#: without it, has("proc") above, big buffers always go that way.)
_NO_ROOM = frozenset({errno.EMFILE, errno.ENFILE, errno.ENOSPC, errno.EDQUOT, errno.EFBIG})


def wire(shipped: Shipped) -> Wire:
    return tuple((segment.token, n) for segment, n in shipped)


def loads(
    data: bytes, bulk: Wire, *, private: bool, on_drop: Callable[[Token], None] | None = None
) -> tuple[Any, list[mmap.mmap]]:
    """Unpickle around the mapped segments; returns the object and the mappings.

    ``on_drop(token)`` is called when nothing refers to a mapping any more.
    """
    if not bulk:
        return _serialize.loads(data), []
    maps = [memfd.attach(token, n, private=private) for token, n in bulk]
    buffers: list[Any] = []
    for m, (token, n) in zip(maps, bulk):
        if on_drop is None:
            buffers.append(memoryview(m)[:n])
        elif _lend():
            weakref.finalize(m, _returned, on_drop, token).atexit = False
            buffers.append(memoryview(m)[:n])
        else:  # the caller keeps many: copy, so each kept result does not hold a descriptor
            buffers.append(bytearray(memoryview(m)[:n]))
            m.close()
            on_drop(token)
    return pickle.loads(data, buffers=buffers), maps


# Each result mapping the caller keeps holds a descriptor (the mmap's own): past a quarter
# of the descriptor limit, results are copied into private memory instead.
_live_lock = threading.Lock()
_live = 0
_LIVE_MAX = max(16, min(1024, resource.getrlimit(resource.RLIMIT_NOFILE)[0] // 4))


def _lend() -> bool:
    global _live
    with _live_lock:
        if _live >= _LIVE_MAX:
            return False
        _live += 1
        return True


def _returned(on_drop: Callable[[Token], None], token: Token) -> None:
    global _live
    with _live_lock:  # no allocation inside: a gc cannot start here and re-enter
        _live -= 1
    on_drop(token)


def unmap(maps: list[mmap.mmap]) -> bool:
    """Unmap what nothing refers to any more; True if something still does."""
    kept = False
    for m in maps:
        try:
            m.close()
        except BufferError:  # a view is alive: the mapping goes with it
            kept = True
    return kept


class SegmentCache:
    """The parent's spare segments, kept warm (their pages exist) for the next big argument.

    Used by the scheduler thread only. ``budget`` bounds the capacity kept spare,
    ``MAX_SPARE`` their number (each holds two descriptors: ours and the mmap's);
    the oldest spare goes first.
    """

    MAX_SPARE = 16

    def __init__(self, budget: int, name: str = "forklift-args") -> None:
        self.budget = budget
        self.name = name
        self._spare: list[memfd.Segment] = []
        self._spare_bytes = 0

    def take(self, n: int) -> memfd.Segment:
        best = None
        for segment in self._spare:  # the smallest that fits and wastes at most half
            if n <= segment.size <= 2 * n and (best is None or segment.size < best.size):
                best = segment
        if best is None:
            return memfd.Segment(1 << (n - 1).bit_length(), self.name)
        self._spare.remove(best)
        self._spare_bytes -= best.size
        return best

    def done(self, shipped: Shipped, kept: bool) -> None:
        """A chunk carrying these segments has answered; ``kept``: its task kept a view."""
        for segment, _ in shipped:
            segment.users -= 1
            segment.kept |= kept
            self._settle(segment)

    def unmemo(self, memo: Memo) -> None:
        """The job is over: its memo will not send these again."""
        for _, segment in memo.entries.values():
            segment.memo = False
            self._settle(segment)
        memo.entries.clear()

    def _settle(self, segment: memfd.Segment) -> None:
        if segment.users > 0 or segment.memo or segment.fd < 0:
            return
        if segment.kept or segment.size > self.budget:
            segment.close()
            return
        self._spare.append(segment)
        self._spare_bytes += segment.size
        while self._spare_bytes > self.budget or len(self._spare) > self.MAX_SPARE:
            old = self._spare.pop(0)
            self._spare_bytes -= old.size
            old.close()

    def clear(self) -> None:
        for segment in self._spare:
            segment.close()
        self._spare.clear()
        self._spare_bytes = 0


class Memo:
    """The last few big arrays a job sent, by identity, with their segments."""

    SIZE = 4

    def __init__(self, cache: SegmentCache) -> None:
        self.cache = cache
        self.entries: dict[tuple[int, int], tuple[Any, memfd.Segment]] = {}

    def get(self, key: tuple[int, int]) -> tuple[Any, memfd.Segment] | None:
        return self.entries.get(key)

    def put(self, key: tuple[int, int], obj: Any, segment: memfd.Segment) -> None:
        # Holding obj keeps its id from being reused by another array while it is here.
        segment.memo = True
        self.entries[key] = (obj, segment)
        if len(self.entries) > self.SIZE:
            old_key = next(iter(self.entries))
            _, old = self.entries.pop(old_key)
            old.memo = False
            self.cache._settle(old)


class Outgoing:
    """The worker's result segments: sent (until RELEASE), lent (until FREE), then spare.

    The main thread takes and holds; the reader thread releases and frees.
    """

    LENT = 16  # segments the parent may keep mapped while we keep their descriptors

    def __init__(self, budget: int) -> None:
        self._lock = threading.Lock()
        self._sent: dict[int, Shipped] = {}
        self._lent: OrderedDict[Token, memfd.Segment] = OrderedDict()
        self._cache = SegmentCache(budget, "forklift-result")

    def take(self, n: int) -> memfd.Segment:
        with self._lock:
            return self._cache.take(n)

    def hold(self, seq: int, shipped: Shipped) -> None:
        with self._lock:
            self._sent[seq] = shipped

    def release(self, seq: int, mapped: bool) -> None:
        """The parent is done with chunk ``seq``'s result segments; ``mapped``: it holds them."""
        with self._lock:
            for segment, _ in self._sent.pop(seq, []):
                segment.users = 0
                if mapped:
                    self._lent[segment.token] = segment
                else:  # a cancelled job's, or the parent could not map them: reuse at once
                    self._cache._settle(segment)
            while len(self._lent) > self.LENT:  # the caller keeps many: stop waiting for the oldest
                self._lent.popitem(last=False)[1].close()

    def free(self, token: Token) -> None:
        """The parent dropped its mapping of ``token``: reuse it."""
        with self._lock:
            segment = self._lent.pop(token, None)
            if segment is not None:
                self._cache._settle(segment)


class _Big:
    """A bytes or bytearray sent out of band (pickle keeps those in-band)."""

    __slots__ = ("data",)

    def __init__(self, data: bytes | bytearray) -> None:
        self.data = data

    def __reduce_ex__(self, protocol: Any) -> Any:
        return type(self.data), (pickle.PickleBuffer(self.data),)


def _wrap_big(obj: Any) -> Any:
    """``obj`` with big bytes/bytearray (3 levels deep at most) wrapped; ``obj`` if none.

    Containers on the way are rebuilt once each (a memo by identity), so objects that
    appear twice, or containers that refer to themselves, keep their shape.
    """
    memo: dict[int, Any] = {}
    found = False

    def walk(x: Any, depth: int) -> Any:
        nonlocal found
        key = id(x)
        if key in memo:
            return memo[key]
        kind = type(x)
        if kind is bytes or kind is bytearray:
            if len(x) < _config.BULK_BYTES:
                return x
            found = True
            new: Any = _Big(x)
        elif depth and kind is list:
            new = memo[key] = []
            new.extend(walk(v, depth - 1) for v in x)
        elif depth and kind is dict:
            new = memo[key] = {}
            new.update((k, walk(v, depth - 1)) for k, v in x.items())
        elif depth and kind is tuple:
            new = tuple(walk(v, depth - 1) for v in x)
        else:
            return x
        memo[key] = new
        return new

    wrapped = walk(obj, 3)
    return wrapped if found else obj

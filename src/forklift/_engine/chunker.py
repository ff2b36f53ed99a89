"""The adaptive chunker: how many items go into the next chunk of a call.

A job's scheduler asks :meth:`Chunker.next_size` before it cuts each chunk, and
tells the chunker what it measured: :meth:`Chunker.observe` the seconds a chunk
took in the worker, :meth:`Chunker.observe_payload` the bytes it pickled to.
Pure bookkeeping, no I/O and no threads: the local engine and the cluster engine
use it alike.
"""

from __future__ import annotations

import math

from .. import _config


class Chunker:
    """Chooses chunk sizes from measured per-item time (or the user's chunksize).

    Aims each chunk at ``CHUNK_SECONDS`` of work and at most ``CHUNK_BYTES`` of
    pickled arguments, and with a known total keeps chunks below
    ``remaining / (2 * workers)`` so the end of a map balances (guided
    self-scheduling). Before the first measurement a chunk is one item: one long
    task must not drag others into its chunk.

    ``target_seconds``: the work to aim a chunk at, when not ``CHUNK_SECONDS`` (the
    cluster engine's chunks are longer: a Dask task costs more to send).
    """

    __slots__ = ("_bytes", "_items", "_seconds", "_sent", "fixed", "size", "target_seconds")

    def __init__(self, chunksize: int | None, target_seconds: float | None = None) -> None:
        self.fixed = chunksize
        self.target_seconds = target_seconds
        self.size = chunksize or 1
        self._seconds = 0.0
        self._items = 0.0
        self._bytes = 0.0
        self._sent = 0.0

    def observe(self, items: int, seconds: float) -> None:
        """A chunk of ``items`` ran in ``seconds`` (measured in the worker)."""
        # Decaying sums: recent chunks weigh most, a single outlier fades.
        self._seconds = 0.7 * self._seconds + seconds
        self._items = 0.7 * self._items + items
        self._resize()

    def learned(self) -> tuple[float, float] | None:
        """What this chunker measured, to seed the next call of the same function."""
        return (self._seconds, self._items) if self._items else None

    def seed(self, learned: tuple[float, float] | None) -> None:
        if learned is not None:
            self._seconds, self._items = learned
            self._resize()

    def expected(self, items: int) -> float | None:
        """Seconds ``items`` items should take, from what was measured; None before that."""
        return self._seconds / self._items * items if self._items else None

    def observe_payload(self, items: int, nbytes: int) -> None:
        """A chunk of ``items`` pickled to ``nbytes``."""
        self._bytes = 0.7 * self._bytes + nbytes
        self._sent = 0.7 * self._sent + items
        self._resize()

    def _resize(self) -> None:
        if self.fixed is not None or not self._items:
            return  # one item per chunk until a task's duration is known
        per_item = max(self._seconds / self._items, 1e-7)
        target = _config.CHUNK_SECONDS if self.target_seconds is None else self.target_seconds
        size = min(_config.MAX_CHUNK * 50, int(target / per_item))
        if self._sent:
            size = min(size, int(_config.CHUNK_BYTES * self._sent / max(self._bytes, 1.0)))
        self.size = max(1, size)

    def next_size(self, remaining: int | None, workers: int, pending: int | None = None) -> int:
        """Items for the next chunk: ``remaining`` counts the whole call's, when known;
        ``pending`` those waiting now (submitted calls, a lazy map's read-ahead).

        Guided self-scheduling on whichever is known: at most a ``2 * workers``-th of
        it, so a few long calls of a function measured fast (two ``apply_async`` of
        1 s after a thousand of 0 s) go to different workers, not one chunk.
        """
        if self.fixed is not None:
            return self.fixed
        size = self.size
        if remaining is None:
            size = min(size, _config.MAX_CHUNK)
            remaining = pending
        if remaining is None:
            return size
        return max(1, min(size, math.ceil(remaining / (2 * workers))))

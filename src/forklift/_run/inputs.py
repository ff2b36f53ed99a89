"""Where ``forklift run`` gets its arguments: ``:::`` lists, ``::::`` files, stdin.

Several sources form their cartesian product, the last varying fastest (GNU
parallel's order); a source introduced by ``:::+`` or ``::::+`` is linked to the one
before it instead (zip). The first group of sources is read lazily, so jobs
start while a pipe into stdin is still being written; the others are read
whole, since the product walks them many times.
"""

from __future__ import annotations

import itertools
import os
import re
import sys
from collections.abc import Iterable, Iterator, Sequence

__all__ = ["InputError", "Inputs", "Source", "split_command_line"]

SEPARATORS = (":::", ":::+", "::::", "::::+")


class InputError(ValueError):
    """An input source cannot be read (a missing ``::::`` file, ...)."""


class Source:
    """One input source: literal arguments, or a file (``-`` is stdin) read item by item."""

    __slots__ = ("args", "linked", "path")

    def __init__(self, args: list[str] | None = None, path: str | None = None, linked: bool = False) -> None:
        self.args = args
        self.path = path
        self.linked = linked  # zip with the source before it, instead of the product

    def __repr__(self) -> str:
        return f"Source(args={self.args!r}, path={self.path!r}, linked={self.linked!r})"

    def items(self, sep: bytes) -> Iterator[str]:
        if self.args is not None:
            return iter(self.args)
        assert self.path is not None
        if self.path == "-":
            return _read_items(sys.stdin.buffer.fileno(), sep, close=False)
        try:
            fd = os.open(self.path, os.O_RDONLY | os.O_CLOEXEC)
        except OSError as exc:
            raise InputError(f"cannot read input file {self.path!r}: {exc.strerror}") from None
        return _read_items(fd, sep, close=True)


def split_command_line(tokens: Sequence[str]) -> tuple[list[str], list[Source]]:
    """Split ``cmd words ::: a b :::: file`` into the command's words and its sources."""
    words: list[str] = []
    sources: list[Source] = []
    current: Source | None = None
    for token in tokens:
        if token in SEPARATORS:
            linked = token.endswith("+")
            if token.startswith("::::"):
                current = None
                sources.append(Source(path=None, linked=linked))  # file names follow
            else:
                current = Source(args=[], linked=linked)
                sources.append(current)
            continue
        if not sources:
            words.append(token)
        elif current is not None:
            assert current.args is not None
            current.args.append(token)
        else:
            last = sources[-1]
            if last.path is None:
                last.path = token
            else:  # ':::: a b' is two file sources, as in GNU parallel
                sources.append(Source(path=token))
    for source in sources:
        if source.args is None and source.path is None:
            raise InputError(":::: needs a file name after it ('-' for stdin)")
    return words, sources


class Inputs:
    """The jobs' argument tuples, in order: product of the groups, columns split."""

    def __init__(
        self, sources: list[Source], null: bool = False, colsep: re.Pattern[str] | None = None
    ) -> None:
        self.sources = sources or [Source(path="-")]
        self.null = null
        self.colsep = colsep
        sep = b"\0" if self.null else b"\n"
        # Open every file now: a missing one is an error before any job runs.
        self._opened = [s.items(sep) for s in self.sources]

    def __iter__(self) -> Iterator[tuple[str, ...]]:
        groups: list[list[Iterator[str]]] = []
        for source, items in zip(self.sources, self._opened):
            if source.linked and groups:
                groups[-1].append(items)
            else:
                groups.append([items])
        first = self._group(groups[0])
        if len(groups) == 1:
            yield from first
            return
        rest = [list(self._group(g)) for g in groups[1:]]
        for head in first:
            for tail in itertools.product(*rest):
                yield head + tuple(itertools.chain.from_iterable(tail))

    def _group(self, members: list[Iterator[str]]) -> Iterator[tuple[str, ...]]:
        split = self._columns
        if len(members) == 1:
            return (split(item) for item in members[0])
        return (tuple(itertools.chain.from_iterable(map(split, items))) for items in zip(*members))

    def _columns(self, item: str) -> tuple[str, ...]:
        if self.colsep is None:
            return (item,)
        return tuple(c.strip(" \t") for c in self.colsep.split(item))


def _read_items(fd: int, sep: bytes, *, close: bool) -> Iterator[str]:
    """Items of ``fd`` separated by ``sep``, yielded as soon as each is complete."""
    try:
        pending = b""
        while True:
            chunk = os.read(fd, 1 << 16)
            if not chunk:
                break
            pending += chunk
            *done, pending = pending.split(sep)
            yield from _decode(done)
        if pending:
            yield os.fsdecode(pending)
    finally:
        if close:
            os.close(fd)


def _decode(items: Iterable[bytes]) -> Iterator[str]:
    return (os.fsdecode(b) for b in items)

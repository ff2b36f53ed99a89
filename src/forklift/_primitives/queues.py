"""Queue, JoinableQueue and SimpleQueue that pickle at any time.

The stdlib's queues are a pipe (``Pipe(duplex=False)``) plus locks; they
pickle only while a process starts (``assert_spawning``), hence "Queue objects
should only be shared between processes through inheritance" from a Pool
task's argument. These subclasses pickle the two pipe ends as ``fd_tokens``
tokens of the sender's descriptors, and their locks as forklift's named
semaphores (they are made by a forklift context). The receiver re-opens the
pipe through ``/proc`` once per process (``registry``): sending one queue to
10,000 tasks does not open 20,000 descriptors.

Everything else is the stdlib's: the feeder thread, and with it the rule that
a process which put items waits at exit until they are in the pipe (forklift's
workers and Processes say so on stderr when that wait lasts: _exit_watch.py).
"""

from __future__ import annotations

import os
from multiprocessing import queues, util
from multiprocessing.connection import Connection
from typing import TYPE_CHECKING, Any

from . import fd_tokens, registry

if TYPE_CHECKING:
    _Queue = queues.Queue[Any]
    _JoinableQueue = queues.JoinableQueue[Any]
    _SimpleQueue = queues.SimpleQueue[Any]
else:  # not subscriptable at run time before Python 3.12
    _Queue = queues.Queue
    _JoinableQueue = queues.JoinableQueue
    _SimpleQueue = queues.SimpleQueue

# The pipe ends as tokens: (reader, writer).
PipeTokens = tuple[fd_tokens.Token, fd_tokens.Token]


class _SharedPipe:
    """Mixin: a queue whose pipe travels as tokens, re-opened once per process."""

    _reader: Connection
    _writer: Connection

    def _remember(self) -> None:
        registry.remember(self._key(), self)

    def _key(self) -> tuple[str, int]:
        return ("pipe", os.fstat(self._reader.fileno()).st_ino)

    def _pipe_tokens(self) -> PipeTokens:
        return (fd_tokens.token(self._reader.fileno()), fd_tokens.token(self._writer.fileno()))

    def __reduce__(self) -> tuple[Any, ...]:
        return (registry.rebuild, (type(self), self._key(), self.__getstate__()))

    def __getstate__(self) -> Any:  # each queue class says what its state is
        raise NotImplementedError


def _reopen(tokens: PipeTokens) -> tuple[Connection, Connection]:
    reader, writer = tokens
    return (
        Connection(fd_tokens.open_token(reader, os.O_RDONLY), writable=False),
        Connection(fd_tokens.open_token(writer, os.O_WRONLY), readable=False),
    )


class Queue(_SharedPipe, _Queue):
    """A multiprocessing Queue that can also be passed to Pool and Executor tasks."""

    _ignore_epipe: bool
    _maxsize: int
    _rlock: Any
    _wlock: Any
    _sem: Any
    _opid: int

    def __init__(self, maxsize: int = 0, *, ctx: Any) -> None:
        super().__init__(maxsize, ctx=ctx)
        self._remember()

    def __getstate__(self) -> Any:
        # queues.Queue.__getstate__ without its assert_spawning, the pipe as tokens.
        return (
            self._ignore_epipe,
            self._maxsize,
            self._pipe_tokens(),
            self._rlock,
            self._wlock,
            self._sem,
            self._opid,
        )

    def __setstate__(self, state: Any) -> None:
        ignore_epipe, maxsize, tokens, *rest = state
        stdlib_state: Any = (ignore_epipe, maxsize, *_reopen(tokens), *rest)
        super().__setstate__(stdlib_state)
        # As Queue.__init__ does for the original: a forked child resets the feeder state.
        util.register_after_fork(self, queues.Queue._after_fork)  # type: ignore[attr-defined]


class JoinableQueue(Queue, _JoinableQueue):
    """A multiprocessing JoinableQueue that can also be passed to Pool and Executor tasks."""

    _cond: Any
    _unfinished_tasks: Any

    def __getstate__(self) -> Any:
        return (*super().__getstate__(), self._cond, self._unfinished_tasks)


class SimpleQueue(_SharedPipe, _SimpleQueue):
    """A multiprocessing SimpleQueue that can also be passed to Pool and Executor tasks."""

    _rlock: Any
    _wlock: Any

    def __init__(self, *, ctx: Any) -> None:
        super().__init__(ctx=ctx)
        self._remember()

    def __getstate__(self) -> Any:
        # queues.SimpleQueue.__getstate__ without its assert_spawning, the pipe as tokens.
        return (self._pipe_tokens(), self._rlock, self._wlock)

    def __setstate__(self, state: Any) -> None:
        tokens, rlock, wlock = state
        stdlib_state: Any = (*_reopen(tokens), rlock, wlock)
        super().__setstate__(stdlib_state)

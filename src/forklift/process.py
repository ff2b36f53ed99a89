"""``forklift.Process``: multiprocessing's Process, plus ``result()`` and ``kill_tree()``.

How the result comes back: before the child starts, the parent makes a memfd
(a :class:`_ResultFile`) that the child inherits (fork) or receives with the
start (spawn, forkserver: multiprocessing passes it like the process's other
descriptors). When ``run()`` returns or raises, the child writes the pickled
outcome into it; the parent reads it once the child has exited. Writing to a
file never blocks, so unlike a result sent through a Queue or a pipe, a large
value cannot make the child wait at exit for a reader, nor ``join()`` deadlock
when nobody asks for the result (the "joining processes that use queues"
trap). A child that dies without writing (killed, ``os._exit``, a crash) leaves
the file empty: ``WorkerLostError``.

The target is pickled as multiprocessing pickles a process (its
``ForkingPickler``, while the child starts), so the stdlib's Queue, Value or
Lock held by a bound method's instance reach the child as they would in
``args``; with cloudpickle (the same reducers added) when that refuses it, so
lambdas, closures and ``__main__`` functions work under spawn and forkserver.
"""

from __future__ import annotations

import contextlib
import functools
import mmap
import os
import pickle
import signal
import threading
from collections.abc import Callable, Iterator
from multiprocessing import context as mp_context
from multiprocessing import process, reduction
from typing import Any

from . import _config, _serialize
from ._platform import require_linux
from ._primitives.memfd import anonymous_fd

__all__ = ["ForkProcess", "ForkServerProcess", "Process", "SpawnProcess"]

_HEADER = 8  # bytes: the record's length, written last


class _ResultFile:
    """The memfd the child writes its outcome into; the parent reads it after the child's exit."""

    def __init__(self, fd: int) -> None:
        self.fd = fd

    @classmethod
    def new(cls) -> _ResultFile:
        return cls(anonymous_fd("forklift-result", 0))

    def __reduce__(self) -> tuple[Any, ...]:
        # Pickled only while multiprocessing starts the child: DupFd passes the
        # descriptor along with the start (spawn: kept open across exec;
        # forkserver: sent to the fork server with the process's other fds).
        return (_inherit, (reduction.DupFd(self.fd),))

    def write(self, record: bytes) -> None:
        """Store ``record``; its length goes in last, so a half-written record reads as none."""
        view, offset = memoryview(record), _HEADER
        while view:
            n = os.pwrite(self.fd, view, offset)
            view, offset = view[n:], offset + n
        os.pwrite(self.fd, len(record).to_bytes(_HEADER, "little"), 0)

    def read(self) -> bytes | None:
        """The record the child stored, or None if it stored none."""
        size = os.fstat(self.fd).st_size
        if size <= _HEADER:
            return None
        with mmap.mmap(self.fd, size, access=mmap.ACCESS_READ) as m:
            n = int.from_bytes(m[:_HEADER], "little")
            return m[_HEADER : _HEADER + n] if 0 < n <= size - _HEADER else None

    def close(self) -> None:
        fd, self.fd = self.fd, -1
        if fd >= 0:
            os.close(fd)

    def __del__(self) -> None:
        self.close()


def _inherit(dup: Any) -> _ResultFile:
    return _ResultFile(dup.detach())


# (True, value) or (False, exception)
Outcome = tuple[bool, Any]

_reading = threading.Lock()
os.register_at_fork(after_in_child=_reading._at_fork_reinit)  # type: ignore[attr-defined]


class Process(process.BaseProcess):
    """A process running ``target(*args, **kwargs)`` (or an overridden ``run()``).

    The ``multiprocessing.Process`` API (start, join, is_alive, terminate,
    kill, close, name, daemon, pid, exitcode, sentinel), started with
    forklift's default start method (forkserver on Linux; another through
    ``forklift.get_context(method).Process``), plus:

    - :meth:`result` — the target's return value, or its exception re-raised
      with the child's traceback as ``__cause__``;
    - :meth:`kill_tree` — kill the process and every process it started.

    Lambdas, closures and functions defined in ``__main__`` work as targets
    under every start method.
    """

    _start_method: str | None = None
    # BaseProcess's own state (untyped in typeshed)
    _popen: Any
    _closed: bool
    _target: Callable[..., Any] | None
    _args: tuple[Any, ...]
    _kwargs: dict[str, Any]

    _results: _ResultFile | None = None
    _outcome: Outcome | None = None
    _handover: _Handover | None = None  # while the child starts (spawn, forkserver)

    @staticmethod
    def _Popen(process_obj: process.BaseProcess) -> Any:
        # As multiprocessing.context.Process does for the stdlib's default.
        from .context import get_context

        return get_context().Process._Popen(process_obj)

    def run(self) -> Any:
        """The process's activity: call the target and return what it returns (override at will)."""
        # BaseProcess.run drops the target's return value.
        if self._target is not None:
            return self._target(*self._args, **self._kwargs)
        return None

    def start(self) -> None:
        """Start the process (as multiprocessing.Process.start)."""
        require_linux("forklift.Process", "a memfd for its result, /proc for its process tree")
        if self._target is not None and not callable(self._target):  # else a traceback in the child
            raise TypeError(f"target must be callable, not {type(self._target).__name__}")
        if self._popen is None and not self._closed:  # else the stdlib says why it cannot start
            self._results = _ResultFile.new()
        try:
            super().start()
        finally:  # the child has its descriptors now (or never will)
            handover, self._handover = self._handover, None
            if handover is not None:
                handover.close_copies()
            if self._popen is not None:
                _Handover.remove(self._popen)

    def result(self, timeout: float | None = None) -> Any:
        """Wait for the process to end; return what ``run()`` returned or raise what it raised.

        The exception is re-raised with its own type, the child's traceback
        chained as ``__cause__``. Raises ``WorkerLostError`` (with ``pid``,
        ``exitcode`` and the likely cause) if the process ended without a
        result (killed, ``os._exit``, ``sys.exit``, a crash), the builtin
        ``TimeoutError`` if it is still running after ``timeout`` seconds, and
        ``RuntimeError`` before :meth:`start`. The outcome is kept: later
        calls return or raise the same.
        """
        if self._outcome is None:
            self._wait(timeout)
            with _reading:  # threads sharing this Process read its outcome once
                if self._outcome is None:
                    self._outcome = self._read_outcome()
        ok, value = self._outcome
        if ok:
            return value
        raise value

    def interrupt(self) -> None:
        """Send SIGINT to the process (Python 3.14's ``Process.interrupt()``, on every Python).

        By default the child's Python raises ``KeyboardInterrupt`` in its main thread, so a
        target that does not catch it ends (exit code 1, a traceback on stderr); a child that
        set its own SIGINT handler decides for itself. Like ``terminate()``: nothing is sent
        once the process was seen to end; ValueError on a closed process object; an
        AttributeError before ``start()``.
        """
        stdlib = getattr(super(), "interrupt", None)  # Python 3.14+
        if stdlib is not None:
            stdlib()
            return
        if self._closed:
            raise ValueError("process object is closed")
        popen = self._popen
        if popen is None:
            raise AttributeError("'NoneType' object has no attribute 'interrupt'")
        if popen.returncode is None:
            try:
                os.kill(popen.pid, signal.SIGINT)
            except ProcessLookupError:
                pass
            except OSError:
                if popen.wait(timeout=0.1) is None:
                    raise

    def kill_tree(self, timeout: float | None = None) -> list[int]:
        """Kill (SIGKILL) this process and all its descendants; wait up to ``timeout`` for it to end.

        Returns the pids signalled. Descendants already orphaned (their parent
        exited) are no longer part of the tree and are not found.
        """
        self._require_started("kill_tree")
        from signal import SIGKILL

        from .trees import kill_tree

        pids = list(kill_tree(self._popen.pid, sig=SIGKILL, timeout=0).pids)
        self.join(timeout)
        return pids

    def close(self) -> None:
        """Release the process's resources (as multiprocessing.Process.close).

        A result already read stays available; otherwise result() raises ValueError.
        """
        super().close()
        if self._results is not None:
            self._results.close()

    def _require_started(self, what: str) -> None:
        if self._closed:
            raise ValueError("process object is closed")
        if self._popen is None:
            raise RuntimeError(f"{what}() of a process that was never started: call start() first")

    def _wait(self, timeout: float | None) -> None:
        self._require_started("result")
        self.join(timeout)
        if self.exitcode is None:
            raise TimeoutError(f"process {self.name} (pid {self.pid}) is still running after {timeout} s")

    def _read_outcome(self) -> Outcome:
        assert self._results is not None
        record = self._results.read()
        self._results.close()
        if record is None:
            return (False, self._lost())
        return _unpack(record, self.name)

    def _lost(self) -> BaseException:
        from .errors import WorkerLostError, describe_exit

        return WorkerLostError(
            f"process {self.name} (pid {self.pid}) {describe_exit(self.exitcode)}; it returned no result",
            pid=self.pid,
            exitcode=self.exitcode,
        )

    # -- the child's side -----------------------------------------------------
    def _bootstrap(self, parent_sentinel: int | None = None) -> int:
        # multiprocessing calls this in the child only, and it calls self.run():
        # the one place to catch whatever run() (the target's or an override) returns.
        self.run = functools.partial(self._run_and_record, self.run)  # type: ignore[method-assign]
        return super()._bootstrap(parent_sentinel)  # type: ignore[misc,no-any-return]

    def _run_and_record(self, run: Callable[[], Any]) -> None:
        assert self._results is not None
        try:
            value = run()
        except Exception as exc:
            self._results.write(_error_record(exc))
            raise  # multiprocessing prints it and exits with code 1, as ever
        else:
            record = _value_record(value, self.name)
            try:
                self._results.write(record)
            except OSError as exc:  # no room for it (a full /dev/shm or temp dir, without memfd)
                self._results.write(
                    _error_record(
                        OSError(exc.errno, f"its return value ({len(record)} bytes) could not be kept: {exc}")
                    )
                )
        finally:  # however run() ended (a raise, sys.exit), the exit may wait on a queue
            if any(t.name == "QueueFeederThread" for t in threading.enumerate()):  # it put into a Queue
                from ._exit_watch import watch_exit

                watch_exit(f"process {self.name}", _config.FLUSH_WARNING)

    # -- pickling (spawn and forkserver only) -----------------------------------
    def __getstate__(self) -> dict[str, Any]:
        state = self.__dict__.copy()
        state.pop("_handover", None)
        popen = mp_context.get_spawning_popen()
        if popen is None:  # pickled outside a start
            state["_target"] = _pack_target(self._target)
            return state
        self._handover = _Handover.of(popen)
        with self._handover.one_pickle():
            state["_target"] = _pack_target(self._target)
        return state

    def __setstate__(self, state: dict[str, Any]) -> None:
        self.__dict__.update(state)
        self._target = _unpack_target(state["_target"])


class _Handover:
    """Wraps a starting child's ``Popen.duplicate_for_child``: each pickle hands a descriptor once.

    The target is pickled apart from the rest of the process, a ``__main__`` one
    twice (by reference and by value), so one descriptor (a stdlib Queue's pipe)
    may be handed more than once. Within the target's pickles it is handed once:
    the child loads only one of them. Handed again (the same Queue in ``args``),
    it goes as a copy, closed once the child has started, as the stdlib's single
    pickle would have made one object of both: two objects in the child never own
    one descriptor (each would close it under the other), and spawn, which
    passes the number itself, is never given one number twice (it refuses).
    """

    def __init__(self, hand: Callable[[int], Any]) -> None:
        self._hand = hand
        self._handed: set[int] = set()
        self._pickle: dict[int, Any] | None = None  # fd -> what the current target pickle was given
        self._copies: list[int] = []

    @classmethod
    def of(cls, popen: Any) -> _Handover:
        """The popen's handover, installed on it at the first call."""
        if not isinstance(popen.duplicate_for_child, _Handover):
            popen.duplicate_for_child = cls(popen.duplicate_for_child)
        return popen.duplicate_for_child

    @staticmethod
    def remove(popen: Any) -> None:
        """Take the handover off the popen (it refers to the popen: a cycle, and its fds with it)."""
        if isinstance(vars(popen).get("duplicate_for_child"), _Handover):
            del popen.duplicate_for_child

    def __call__(self, fd: int) -> Any:
        if self._pickle is not None and fd in self._pickle:
            return self._pickle[fd]
        handed = fd
        if fd in self._handed:
            handed = os.dup(fd)
            self._copies.append(handed)
        self._handed.add(fd)
        given = self._hand(handed)
        if self._pickle is not None:
            self._pickle[fd] = given
        return given

    @contextlib.contextmanager
    def one_pickle(self) -> Iterator[None]:
        """The descriptors handed inside count as one pickle's."""
        outer, self._pickle = self._pickle, {}
        try:
            yield
        finally:
            self._pickle = outer

    def close_copies(self) -> None:
        copies, self._copies = self._copies, []
        for fd in copies:
            os.close(fd)


# The target, (by reference, by value): the child tries the first, then the second.
PackedTarget = tuple[bytes | None, bytes | None]


def _pack_target(target: Callable[..., Any] | None) -> PackedTarget:
    # Pickled while multiprocessing starts the child, with its reducers: the
    # stdlib's Queue, Value, Lock... held by a bound method's instance or a
    # closure pass their descriptors to the child as they would in args.
    try:
        by_reference = bytes(reduction.ForkingPickler.dumps(target, _serialize.PROTOCOL))
    except Exception:  # a lambda, a closure
        return (None, _serialize.dumps_by_value_spawning(target))
    if b"__main__" not in by_reference:
        return (by_reference, None)
    # A __main__ function. The child re-imports the parent's main script and
    # usually finds it there, as multiprocessing relies on, without importing
    # cloudpickle (~15 ms per child). One it cannot find (defined under
    # `if __name__ == "__main__":`, in a notebook) comes by value.
    return (by_reference, _serialize.dumps_by_value_spawning(target))


def _unpack_target(packed: PackedTarget) -> Any:
    by_reference, by_value = packed
    if by_reference is not None:
        try:
            return pickle.loads(by_reference)
        except Exception:
            if by_value is None:
                raise
    assert by_value is not None
    return pickle.loads(by_value)


def _value_record(value: Any, name: str) -> bytes:
    try:
        return _serialize.dumps((True, value))
    except Exception as exc:
        err = _serialize.serialization_error(f"cannot pickle the result of process {name}", value, exc)
        return _error_record(err)


def _error_record(exc: BaseException) -> bytes:
    tb = exc.__traceback__
    if tb is not None and tb.tb_frame.f_code is Process._run_and_record.__code__:
        tb = tb.tb_next  # start the traceback in run()
    return _serialize.dumps((False, _serialize.capture_exception(exc, tb)))


def _unpack(record: bytes, name: str) -> Outcome:
    try:
        ok, payload = _serialize.loads(record)
    except Exception as exc:
        from .errors import SerializationError

        err = SerializationError(
            f"cannot unpickle the result of process {name}: {_serialize.type_name(exc)}: {exc}"
        )
        err.__cause__ = exc
        return (False, err)
    return (True, payload) if ok else (False, _serialize.rebuild_exception(payload))


# The stdlib's class comes first: its _Popen starts the child with that method.
# (_start_method is the stdlib's too, restated for the type checker.)


class ForkProcess(mp_context.ForkProcess, Process):
    """A forklift Process started with fork."""

    _start_method = "fork"


class SpawnProcess(mp_context.SpawnProcess, Process):
    """A forklift Process started with spawn."""

    _start_method = "spawn"


class ForkServerProcess(mp_context.ForkServerProcess, Process):
    """A forklift Process started with forkserver."""

    _start_method = "forkserver"

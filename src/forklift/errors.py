"""Every exception forklift raises, in one place.

Each subclasses the standard library's closest exception, so code written for
``multiprocessing`` or ``concurrent.futures`` keeps catching what it caught:

    ForkliftError
    ├── WorkerLostError      (also OSError)        a worker died while running the task
    ├── TaskTimeout          (also TimeoutError)   the task ran longer than ``timeout``
    ├── SerializationError   (also pickle.PickleError) an argument or result would not pickle
    │   └── ResultSerializationError (also multiprocessing.pool.MaybeEncodingError) a result
    ├── RemoteError                                 a task's exception that could not be rebuilt
    ├── AuthenticationError  (also multiprocessing.AuthenticationError) a connection failed its handshake
    ├── SharingError         (also OSError)        a shared Queue, Lock, Value... whose owner is gone
    ├── ClusterError         (also ConnectionError) the cluster is unreachable or has no workers
    ├── JournalError         (also ValueError)     a journal not forklift's, corrupted, or another run's
    ├── CopyUsageError       (also ValueError)     copy_tree's sources or destination cannot be copied at all
    └── BrokenPoolError      (also BrokenProcessPool) the pool cannot run tasks any more

A task's own exception is re-raised with its own type; the worker's traceback
text hangs on it as ``__cause__`` (a :class:`RemoteTraceback`, which is also
``multiprocessing.pool.RemoteTraceback`` and concurrent.futures' own), as in the
standard library.

A missing optional dependency is an ImportError whose message says what to
install, not a ForkliftError: :class:`MissingMatplotlib` for PNG reports
(``pip install 'forklift[report]'``), a plain ImportError for Dask distributed
(``pip install 'forklift[cluster]'``).
"""

from __future__ import annotations

import multiprocessing
import pickle
import signal
from concurrent.futures.process import BrokenProcessPool, _RemoteTraceback
from multiprocessing.pool import MaybeEncodingError  # type: ignore[attr-defined]  # (not in typeshed)
from multiprocessing.pool import RemoteTraceback as _PoolRemoteTraceback  # type: ignore[attr-defined]

from ._errors import (
    ClusterError,
    CopyUsageError,
    ForkliftError,
    JournalError,
    MissingMatplotlib,
    PlatformError,
    SettingError,
    SharingError,
    TaskTimeout,
)

__all__ = [
    "AuthenticationError",
    "BrokenPoolError",
    "ClusterError",
    "CopyUsageError",
    "ForkliftError",
    "JournalError",
    "MissingMatplotlib",
    "PlatformError",
    "RemoteError",
    "RemoteTraceback",
    "ResultSerializationError",
    "SerializationError",
    "SettingError",
    "SharingError",
    "TaskTimeout",
    "WorkerLostError",
]


class RemoteTraceback(_PoolRemoteTraceback, _RemoteTraceback):  # type: ignore[misc]
    """The traceback of an exception raised in a worker, as text (``tb``).

    Set as ``__cause__`` of the re-raised exception so that a printed
    traceback shows where in the worker the error happened. Also the standard
    library's own (``multiprocessing.pool.RemoteTraceback`` and the one
    ``concurrent.futures`` chains), so code that checks for those keeps working.
    """

    def __init__(self, tb: str) -> None:
        Exception.__init__(self, tb)  # (the stdlib's two set ``tb`` alone)
        self.tb = tb

    def __str__(self) -> str:
        return self.tb


class WorkerLostError(ForkliftError, OSError):
    """The worker process running a task died before returning its result.

    ``pid`` is the worker's process id, ``exitcode`` its exit status as
    ``multiprocessing`` reports it (negative: killed by that signal).
    """

    def __init__(self, message: str, *, pid: int | None = None, exitcode: int | None = None):
        super().__init__(message)
        self.pid = pid
        self.exitcode = exitcode

    @property
    def signal(self) -> int | None:
        """The signal number that killed the worker, or None."""
        if self.exitcode is not None and self.exitcode < 0:
            return -self.exitcode
        return None

    def __str__(self) -> str:
        return str(self.args[0])

    def __reduce__(self) -> tuple[object, ...]:
        return (_rebuild_worker_lost, (self.args[0], self.pid, self.exitcode))


def _rebuild_worker_lost(message: str, pid: int | None, exitcode: int | None) -> WorkerLostError:
    return WorkerLostError(message, pid=pid, exitcode=exitcode)


class SerializationError(ForkliftError, pickle.PickleError):
    """An argument or a result could not be pickled or unpickled.

    The message names the task and the type that failed; the pool goes on.
    ``task`` names the task ("task 3 of map(square)") once it is known: a worker's
    error gets it in the parent.
    """

    task: str | None = None

    def for_task(self, task: str) -> SerializationError:
        """This error naming ``task`` (a new one of its class; itself when it already names its task)."""
        if self.task is not None:
            return self
        named = type(self)(f"{task}: {self}")
        named.__dict__.update(self.__dict__)
        named.task = task
        named.__cause__ = self.__cause__
        return named


class ResultSerializationError(SerializationError, MaybeEncodingError):  # type: ignore[misc]
    """A task's result would not pickle in the worker, or not unpickle here.

    Also ``multiprocessing.pool.MaybeEncodingError``, what the standard library raises
    for a result that will not pickle, so code written for it keeps catching it; as
    there, ``exc`` and ``value`` are the reprs of the error and of the result. The
    message is forklift's, naming the task and the type.
    """

    def __init__(self, message: str, exc: str = "", value: str = "") -> None:
        Exception.__init__(self, message)  # (MaybeEncodingError's takes the error and the value)
        self.exc = exc
        self.value = value

    def __str__(self) -> str:
        return str(self.args[0])

    def __repr__(self) -> str:
        return f"{type(self).__name__}({self.args[0]!r})"


class RemoteError(ForkliftError):
    """A task raised an exception that could not be sent back as itself.

    ``type_name`` is the qualified name of the original exception type and
    ``traceback`` the worker's traceback text.
    """

    def __init__(self, type_name: str, message: str, traceback: str = "") -> None:
        super().__init__(f"{type_name}: {message}")
        self.type_name = type_name
        self.message = message
        self.traceback = traceback


class AuthenticationError(ForkliftError, multiprocessing.AuthenticationError):
    """A connection's handshake failed: wrong key, failed TLS, or a peer that is not forklift.

    Raised by ``forklift.connection.Client`` and by a manager's ``connect()`` and
    proxies; the message names the peer and what went wrong, e.g. "authentication
    failed: the server at 127.0.0.1:5000 refused our key (...)". Servers do not raise
    it: they log the failed peer on the ``"forklift"`` logger and go on serving.
    """


class BrokenPoolError(ForkliftError, BrokenProcessPool):
    """The pool can no longer run tasks (its initializer failed, or it was terminated)."""


def describe_exit(exitcode: int | None) -> str:
    """Say in words how a worker ended and what probably caused it."""
    if exitcode is None:
        return "vanished (exit status unknown)"
    if exitcode < 0:
        signum = -exitcode
        try:
            name = signal.Signals(signum).name
        except ValueError:
            name = f"signal {signum}"
        return f"was killed by {name}" + _SIGNAL_CAUSES.get(signum, "")
    if exitcode == 0:
        return "exited with code 0 while running the task (sys.exit(0) or os._exit(0) in the task?)"
    return f"exited with code {exitcode} (os._exit() or a fatal error in the task?)"


_SIGNAL_CAUSES: dict[int, str] = {
    signal.SIGKILL: " (probably out of memory: the kernel's OOM killer sends SIGKILL; see dmesg)",
    signal.SIGSEGV: " (a segmentation fault: a crash in C code called by the task)",
    signal.SIGBUS: " (a bus error: bad memory access, e.g. a truncated memory-mapped file)",
    signal.SIGABRT: " (abort(): a failed assertion or fatal error in C code)",
    signal.SIGFPE: " (an arithmetic fault in C code)",
    signal.SIGTERM: " (terminated by another process)",
}

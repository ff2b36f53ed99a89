"""How callables, data and exceptions cross between processes.

- Callables go with cloudpickle, so lambdas, closures and functions defined in
  ``__main__`` or a notebook work (plain pickle refuses them).
- A Process target goes while multiprocessing starts the child, with
  multiprocessing's own reducers (``ForkingPickler``, then
  :func:`dumps_by_value_spawning`), so the stdlib's Queue, Lock, Value or
  Connection it holds travel as they would in ``args``.
- Data goes with pickle protocol 5 (fast, out-of-band buffer capable); only if
  that fails is cloudpickle tried, so data holding a lambda still travels.
- cloudpickle as forklift uses it (:func:`cloud_dumps`) differs from cloudpickle
  in two ways: it refuses an open text file as plain pickle does (cloudpickle
  sends a StringIO of its contents: a task's writes went nowhere and its reads saw
  a copy, silently; ``sys.stdout`` and ``sys.stderr`` still go by name), and code
  keeps its file name (cloudpickle writes ``<dynamic-code>``), so a traceback
  from a ``__main__`` function shows its file, line and source. Plain pickle and
  cloudpickle both refuse sockets, locks and binary files already.
- Exceptions go as an *error record*: the pickled exception when it pickles,
  plus its type name, message and traceback text, so that even an exception
  that cannot be pickled or rebuilt reaches the parent with its text.

Workers import this module, so it imports cloudpickle and forklift.errors only
when they are needed: a worker that never sees an exception or a by-value
function starts without them (pickle imports cloudpickle itself when a
by-value function arrives).
"""

from __future__ import annotations

import functools
import io
import pickle
import sys
import traceback
import types
from collections import ChainMap
from collections.abc import Callable
from multiprocessing.reduction import ForkingPickler
from types import TracebackType
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from .errors import SerializationError

PROTOCOL = 5

# (pickled exception or None, "module.QualName", str(exc), traceback text)
ErrorRecord = tuple[bytes | None, str, str, str]


def dumps(obj: Any, buffer_callback: Callable[[pickle.PickleBuffer], Any] | None = None) -> bytes:
    """Pickle data; fall back to cloudpickle for what plain pickle refuses.

    ``buffer_callback`` is pickle's: it sees every out-of-band capable buffer.
    """
    try:
        return pickle.dumps(obj, PROTOCOL, buffer_callback=buffer_callback)
    except Exception:  # not BaseException: a SystemExit from a __reduce__ is the caller's to catch
        return cloud_dumps(obj, buffer_callback)


def dumps_callable(fn: Any) -> bytes:
    """Pickle a callable: by reference when importable, else by value (cloudpickle).

    Plain pickle is tried first: it is what cloudpickle does for an importable
    function anyway, without importing cloudpickle. Anything that refers to
    ``__main__`` goes by value, so functions from a notebook or an interactive
    session work in workers that cannot import that ``__main__``.
    """
    try:
        blob = pickle.dumps(fn, PROTOCOL)
        if b"__main__" not in blob:
            return blob
    except Exception:
        pass
    return cloud_dumps(fn)


def cloud_dumps(obj: Any, buffer_callback: Callable[[pickle.PickleBuffer], Any] | None = None) -> bytes:
    """``cloudpickle.dumps``, refusing open text files and keeping code's file names."""
    with io.BytesIO() as file:
        _cloud_pickler()(file, PROTOCOL, buffer_callback=buffer_callback).dump(obj)
        return file.getvalue()


_pickler: Any = None  # made on first use: cloudpickle is imported only when needed


def _cloud_pickler() -> Any:
    global _pickler
    if _pickler is None:
        import cloudpickle

        table = cloudpickle.Pickler.dispatch_table
        mine: dict[type, Any] = {io.TextIOWrapper: _reduce_text_file}
        reduce_code = _code_keeping_file_names(table[types.CodeType])
        if reduce_code is not None:
            mine[types.CodeType] = reduce_code
        dispatch = ChainMap(mine, *getattr(table, "maps", [table]))  # one level: looked up per object
        _pickler = type("Pickler", (cloudpickle.Pickler,), {"dispatch_table": dispatch})
    return _pickler


def _code_keeping_file_names(
    by_value: Callable[[types.CodeType], Any],
) -> Callable[[types.CodeType], Any] | None:
    """cloudpickle's code reducer (``by_value``), with the code's own file name in place of
    its ``"<dynamic-code>"``; None for a cloudpickle that keeps file names."""
    args = by_value(_code_keeping_file_names.__code__)[1]
    at = next((i for i, arg in enumerate(args) if type(arg) is str and arg == "<dynamic-code>"), -1)
    if at < 0:
        return None

    def reduce_code(code: types.CodeType) -> Any:
        rebuild, args = by_value(code)
        return rebuild, (*args[:at], code.co_filename, *args[at + 1 :])

    return reduce_code


def _reduce_text_file(file: io.TextIOWrapper) -> Any:
    """sys.stdout and sys.stderr go by name (the worker's own); any other text file is refused."""
    for name in ("stdout", "stderr"):
        if file is getattr(sys, name):
            return getattr, (sys, name)
    return file.__reduce_ex__(PROTOCOL)  # TypeError: cannot pickle '_io.TextIOWrapper' object


def dumps_by_value_spawning(fn: Any) -> bytes:
    """Pickle a callable by value (cloudpickle) while multiprocessing starts a child.

    multiprocessing's reducers (``ForkingPickler``'s) are added, so the stdlib's
    Queue, Connection, Value... a closure or an instance holds pass their
    descriptors to the child being started: plain pickle would copy a
    Connection's bare descriptor number, and refuses a Value's mmap.
    """
    buf = io.BytesIO()
    _forking_cloudpickler()(buf, PROTOCOL).dump(fn)
    return buf.getvalue()


@functools.cache
def _forking_cloudpickler() -> type[pickle.Pickler]:
    base = _cloud_pickler()  # forklift's cloudpickle: file names kept, open text files refused

    class ForkingCloudPickler(base):  # type: ignore[misc,valid-type]
        # ForkingPickler's registry is read at each lookup: types register as their modules load.
        dispatch_table = ChainMap(ForkingPickler._extra_reducers, *base.dispatch_table.maps)  # type: ignore[attr-defined]

    return ForkingCloudPickler


loads = pickle.loads


def type_name(obj: object) -> str:
    cls = obj if isinstance(obj, type) else type(obj)
    module = getattr(cls, "__module__", "")
    qualname = getattr(cls, "__qualname__", cls.__name__)
    return qualname if module in ("builtins", "", None) else f"{module}.{qualname}"


def describe(exc: BaseException) -> str:
    """``"Type: message"`` for any exception, even one whose ``__str__`` raises."""
    name = type_name(exc)
    try:
        return f"{name}: {exc}"
    except BaseException:
        return f"{name}: <str() failed>"


def capture_exception(exc: BaseException, tb: TracebackType | None = None) -> ErrorRecord:
    """Turn an exception raised in a worker into an :data:`ErrorRecord`.

    ``tb`` is the part of the traceback to show (the worker's own frames cut off).
    Never raises: the exception's own ``__str__`` or ``__reduce__`` may raise anything,
    SystemExit included, and that must not kill the worker (the caller would get
    WorkerLostError instead of the task's error, and a retry would repeat the task).
    """
    name = type_name(exc)
    try:
        message = str(exc)
    except BaseException:
        message = f"<str() of {name} failed>"
    try:
        text = "".join(traceback.format_exception(type(exc), exc, tb))
    except BaseException:
        text = "".join(traceback.format_tb(tb)) + f"{name}: {message}\n"
    blob: bytes | None
    try:
        blob = dumps(exc)  # plain pickle first; cloudpickle for classes defined locally
    except BaseException:
        blob = None
    return (blob, name, message, text)


def rebuild_exception(record: ErrorRecord) -> BaseException:
    """Rebuild a worker's exception in the parent, its traceback chained as ``__cause__``."""
    from .errors import RemoteError, RemoteTraceback

    blob, name, message, text = record
    exc: BaseException | None = None
    if blob is not None:
        try:
            exc = loads(blob)
        except BaseException:  # a SystemExit from a __reduce__ must not stop the scheduler
            exc = None
    if not isinstance(exc, BaseException):
        exc = RemoteError(name, message, text)
    exc.__cause__ = RemoteTraceback(f'\n"""\n{text}"""')
    return exc


def serialization_error(
    what: str, obj: object, exc: BaseException, *, task: str | None = None, result: bool = False
) -> SerializationError:
    """A SerializationError naming what failed, the offending type and the reason (and its task).

    For a ``result``, a ResultSerializationError (also the stdlib's MaybeEncodingError).
    """
    from .errors import ResultSerializationError, SerializationError

    message = f"{what} (a {type_name(obj)}): {describe(exc)}"
    err: SerializationError = SerializationError(message)
    if result:
        err = ResultSerializationError(message, short_repr(exc), short_repr(obj))
    err.__cause__ = exc
    return err if task is None else err.for_task(task)


def short_repr(obj: object, limit: int = 200) -> str:
    """``repr(obj)``, cut to ``limit`` characters; never raises."""
    try:
        text = repr(obj)
    except BaseException:
        return f"<{type_name(obj)} object (repr() failed)>"
    return text if len(text) <= limit else f"{text[: limit - 3]}..."


def fail_unpicklable(results: list[Any], errors: dict[int, ErrorRecord]) -> None:
    """Turn each result that will not pickle into that item's error, in place.

    For when a chunk's results as a whole would not pickle: only the items at fault
    fail, the rest still go back (the local worker and the cluster runner both).
    """
    for i, value in enumerate(results):
        if i in errors:
            continue
        try:
            dumps(value)
        except BaseException as exc:  # SystemExit from a __reduce__ too: it is the item's fault
            err = serialization_error("cannot pickle the result", value, exc, result=True)
            errors[i] = capture_exception(err, None)
            results[i] = None

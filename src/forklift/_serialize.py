"""How callables, data and exceptions cross between processes.

- Callables go with cloudpickle, so lambdas, closures and functions defined in
  ``__main__`` or a notebook work (plain pickle refuses them).
- Data goes with pickle protocol 5 (fast, out-of-band buffer capable); only if
  that fails is cloudpickle tried, so data holding a lambda still travels.
- Exceptions go as an *error record*: the pickled exception when it pickles,
  plus its type name, message and traceback text, so that even an exception
  that cannot be pickled or rebuilt reaches the parent with its text.
"""

from __future__ import annotations

import pickle
import traceback
from types import TracebackType
from typing import Any

import cloudpickle

from .errors import RemoteError, RemoteTraceback, SerializationError

PROTOCOL = 5

# (pickled exception or None, "module.QualName", str(exc), traceback text)
ErrorRecord = tuple[bytes | None, str, str, str]


def dumps(obj: Any) -> bytes:
    """Pickle data; fall back to cloudpickle for what plain pickle refuses."""
    try:
        return pickle.dumps(obj, PROTOCOL)
    except Exception:
        return cloudpickle.dumps(obj, PROTOCOL)  # type: ignore[no-any-return]


def dumps_callable(fn: Any) -> bytes:
    """Pickle a callable with cloudpickle (by reference when importable, else by value)."""
    return cloudpickle.dumps(fn, PROTOCOL)  # type: ignore[no-any-return]


loads = pickle.loads


def type_name(obj: object) -> str:
    cls = obj if isinstance(obj, type) else type(obj)
    module = getattr(cls, "__module__", "")
    qualname = getattr(cls, "__qualname__", cls.__name__)
    return qualname if module in ("builtins", "", None) else f"{module}.{qualname}"


def capture_exception(exc: BaseException, tb: TracebackType | None = None) -> ErrorRecord:
    """Turn an exception raised in a worker into an :data:`ErrorRecord`.

    ``tb`` is the part of the traceback to show (the worker's own frames cut off).
    """
    text = "".join(traceback.format_exception(type(exc), exc, tb))
    try:
        message = str(exc)
    except Exception:
        message = f"<str() of {type_name(exc)} failed>"
    blob: bytes | None
    try:
        blob = cloudpickle.dumps(exc, PROTOCOL)
    except Exception:
        blob = None
    return (blob, type_name(exc), message, text)


def rebuild_exception(record: ErrorRecord) -> BaseException:
    """Rebuild a worker's exception in the parent, its traceback chained as ``__cause__``."""
    blob, name, message, text = record
    exc: BaseException | None = None
    if blob is not None:
        try:
            exc = loads(blob)
        except Exception:
            exc = None
    if not isinstance(exc, BaseException):
        exc = RemoteError(name, message, text)
    exc.__cause__ = RemoteTraceback(f'\n"""\n{text}"""')
    return exc


def serialization_error(what: str, obj: object, exc: BaseException) -> SerializationError:
    """A SerializationError naming what failed, the offending type and the reason."""
    err = SerializationError(f"{what} (a {type_name(obj)}): {type_name(exc)}: {exc}")
    err.__cause__ = exc
    return err

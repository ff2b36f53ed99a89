"""Digests: what names a call's inputs and its code the same way in every run.

A journal stores a digest of each chunk's inputs, and a resume compares a call's
signature (its function, its code, its mode) with the stored one before it trusts
stored results (see forklift/_places/resume.py). Support code: imports nothing of
forklift's but the serializer.
"""

from __future__ import annotations

import functools
import os
import sys
import types
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    import hashlib

from . import _serialize


def digest(data: bytes) -> bytes:
    return _blake2b()(data, digest_size=16).digest()


@functools.cache
def _blake2b() -> type[hashlib.blake2b]:
    """hashlib, imported on first use: it takes ~1.5 ms, and only a journal needs it (the
    engine imports this module for resume signatures; a pool without a journal pays nothing)."""
    import hashlib

    return hashlib.blake2b


class Digest:
    """Bytes to be digested later, by the journal's writer thread (hashlib drops the GIL)."""

    __slots__ = ("data",)

    def __init__(self, data: bytes | None) -> None:
        self.data = data

    def value(self) -> bytes | None:
        return None if self.data is None else digest(self.data)


def signature(fn_blob: bytes, mode: int, fn: Any = None) -> str:
    """What decides a call's results besides its inputs: the function and the call mode.

    An importable function pickles by reference (module and name), so its pickle
    does not change when its code does; with ``fn``, its code counts too (see
    :func:`code_fingerprint`). A resume must never hand back results of the code
    as it was before a fix (measured before: 44 of 100 results were the old ones).
    With ``fn``, a function pickled by value (``__main__``, a lambda) is named by
    :func:`stable_identity`, not by its pickle, which changes from run to run.
    """
    if fn is None:
        return f"{digest(fn_blob).hex()}:{mode}"
    return f"{digest(stable_identity(fn, fn_blob) + code_fingerprint(fn)).hex()}:{mode}"


def stable_identity(fn: Any, fn_blob: bytes) -> bytes:
    """What names ``fn`` the same way in every run: its pickle when that is by reference;
    else its module, name and the data it carries (closure cells, a bound object, partial
    arguments), pickled plainly where they can be. cloudpickle's pickle of a ``__main__``
    function holds its line numbers and, for a class, a random id: a resume was refused
    after a comment above the function, or with nothing changed at all."""
    if b"__main__" not in fn_blob and not _by_value(fn_blob):
        return fn_blob
    parts: list[Any] = []
    _identity_parts(fn, parts, set())
    return repr(parts).encode()


def _by_value(blob: bytes) -> bool:
    return b"cloudpickle" in blob


def _identity_parts(fn: Any, parts: list[Any], seen: set[int]) -> None:
    if id(fn) in seen:
        return
    seen.add(id(fn))
    if isinstance(fn, functools.partial):
        parts.append(("partial", _plain(fn.args), _plain(fn.keywords)))
        _identity_parts(fn.func, parts, seen)
    elif isinstance(fn, types.MethodType):
        parts.append(("bound to", _plain(fn.__self__)))
        _identity_parts(fn.__func__, parts, seen)
    elif isinstance(fn, types.FunctionType):
        cells = [_plain(c.cell_contents) for c in fn.__closure__ or () if _has_contents(c)]
        parts.append((fn.__module__, fn.__qualname__, cells))
    else:
        parts.append((type(fn).__module__, type(fn).__qualname__, _plain(fn)))


def _has_contents(cell: Any) -> bool:
    try:
        cell.cell_contents  # noqa: B018 - an empty cell raises
    except ValueError:
        return False
    return True


def _plain(value: Any) -> Any:
    """``value`` as plain pickle writes it (deterministic for data), else its type's name."""
    import pickle

    try:
        return pickle.dumps(value, 4)
    except Exception:
        return type(value).__qualname__


def code_fingerprint(fn: Any) -> bytes:
    """A digest of the code ``fn`` runs: its own, and that of the functions of its module it calls.

    Follows partials, bound methods and callable objects to their function, then its
    code object (bytecode, constants, nested code, names; not line numbers, so an
    edit elsewhere in the file changes nothing), its simple default values, and, by
    name, the functions of the same module it refers to, recursively. Code in other
    modules is not followed (a library's upgrade does not invalidate a journal).
    """
    h = _blake2b()(digest_size=16)
    _feed_callable(fn, h, set())
    return h.digest()


def _feed_callable(fn: Any, h: Any, seen: set[int]) -> None:
    if id(fn) in seen:
        return
    seen.add(id(fn))
    if isinstance(fn, functools.partial):
        _feed_callable(fn.func, h, seen)
    elif isinstance(fn, types.MethodType):
        _feed_callable(fn.__func__, h, seen)
        _feed_class(type(fn.__self__), h, seen)  # what it calls through self
    elif isinstance(fn, types.FunctionType):
        _feed_code(fn.__code__, h)
        h.update(_simple_repr(fn.__defaults__).encode())
        h.update(_simple_repr(fn.__kwdefaults__).encode())
        names = _global_names(fn.__code__)
        for name in sorted(names):
            callee = fn.__globals__.get(name)
            if isinstance(callee, types.ModuleType) and _is_users(callee):
                for attr in sorted(names):  # mod.helper(x): helper is among the names too
                    _feed_member(getattr(callee, attr, None), callee.__name__, h, seen)
            else:
                _feed_member(callee, fn.__module__, h, seen)
    elif not isinstance(fn, (types.BuiltinFunctionType, type)) and callable(fn):
        _feed_class(type(fn), h, seen)  # a callable object: its class's code


def _feed_member(obj: Any, module: str, h: Any, seen: set[int]) -> None:
    """A function or class of ``module``, followed; anything else is left out."""
    if isinstance(obj, types.FunctionType) and obj.__module__ == module:
        _feed_callable(obj, h, seen)
    elif isinstance(obj, type) and obj.__module__ == module:
        _feed_class(obj, h, seen)


def _is_users(module: types.ModuleType) -> bool:
    """A module of the user's own code: not the standard library's, not an installed package's
    (an upgrade of a library must not invalidate a journal)."""
    path = getattr(module, "__file__", None)
    if not path:
        return False
    return not os.path.abspath(path).startswith(_library_dirs())


@functools.cache
def _library_dirs() -> tuple[str, ...]:
    import sysconfig

    paths = sysconfig.get_paths()
    dirs = {paths[k] for k in ("stdlib", "platstdlib", "purelib", "platlib") if k in paths}
    dirs |= {p for p in sys.path if p.endswith(("site-packages", "dist-packages"))}
    return tuple(os.path.abspath(d) + os.sep for d in dirs)


def _feed_class(cls: type, h: Any, seen: set[int]) -> None:
    """Every method of ``cls`` and of its bases defined in the same module."""
    if id(cls) in seen:
        return
    seen.add(id(cls))
    for klass in cls.__mro__:
        if klass.__module__ != cls.__module__:
            continue
        for name, member in sorted(vars(klass).items()):
            if isinstance(member, (staticmethod, classmethod)):
                member = member.__func__
            elif isinstance(member, property):
                member = member.fget
            if isinstance(member, types.FunctionType):
                h.update(name.encode())
                _feed_callable(member, h, seen)


def _feed_code(code: types.CodeType, h: Any) -> None:
    h.update(code.co_code)
    h.update(repr((code.co_names, code.co_varnames, code.co_freevars, code.co_cellvars)).encode())
    h.update(
        repr((code.co_argcount, code.co_posonlyargcount, code.co_kwonlyargcount, code.co_flags)).encode()
    )
    for const in code.co_consts:
        if isinstance(const, types.CodeType):
            _feed_code(const, h)
        else:
            h.update(_simple_repr(const).encode())


def _global_names(code: types.CodeType) -> set[str]:
    names = set(code.co_names)
    for const in code.co_consts:
        if isinstance(const, types.CodeType):
            names |= _global_names(const)
    return names


_SIMPLE = (int, float, complex, str, bytes, bool, type(None), type(...))


def _simple_repr(value: Any) -> str:
    """repr() of plain constants (stable across runs); the type name of anything else."""
    if isinstance(value, _SIMPLE):
        return repr(value)
    if isinstance(value, (tuple, frozenset)):
        items = sorted(map(_simple_repr, value)) if isinstance(value, frozenset) else map(_simple_repr, value)
        return f"{type(value).__name__}({', '.join(items)})"
    if isinstance(value, dict):
        return f"dict({', '.join(f'{_simple_repr(k)}: {_simple_repr(v)}' for k, v in value.items())})"
    return type(value).__qualname__


def inputs_digest(items: list[Any]) -> bytes:
    """The digest a chunk of these items gets when sent in-band (resume compares them)."""
    return digest(_serialize.dumps(items))

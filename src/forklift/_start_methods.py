"""Start methods: which one a pool, a context or a manager uses, and the fork server's preload.

Support code shared by the faces (``context.py``, ``managers.py``, ``pool.py``,
``executor.py``) and the engine, so none of them imports another just to resolve
a name. Imports nothing of forklift's but its tunables.
"""

from __future__ import annotations

import multiprocessing
import multiprocessing.context
import sys
from typing import Any

from . import _config


def resolve_context(start_method: str | None) -> multiprocessing.context.BaseContext:
    """The multiprocessing context for a start method (None: forklift's default)."""
    if start_method is not None and not isinstance(start_method, str):
        raise TypeError(f"start_method must be a str or None, not {type(start_method).__name__}")
    method = _config.START_METHOD or default_start_method() if start_method is None else start_method
    if method not in multiprocessing.get_all_start_methods():
        raise ValueError(
            f"start_method must be one of {multiprocessing.get_all_start_methods()}, not {method!r}"
        )
    ctx = multiprocessing.get_context(method)
    if method == "forkserver":
        _preload_forkserver(ctx)
    return ctx


def start_method_of(context: Any, name: str) -> str | None:
    """The start method a ``context=`` / ``mp_context=`` argument names: a multiprocessing
    context (forklift's or the stdlib's), a start method's name, or None."""
    if context is None or isinstance(context, str):
        return context
    method = getattr(context, "get_start_method", None)
    if not callable(method):
        raise TypeError(
            f"{name} must be a multiprocessing context (multiprocessing.get_context('spawn')) "
            f"or a start method's name, not {type(context).__name__}"
        )
    return method()  # type: ignore[no-any-return]


def default_start_method() -> str:
    if sys.platform.startswith("linux"):
        return "forkserver"
    return multiprocessing.get_start_method()


def _preload_forkserver(ctx: Any) -> None:
    # Import the worker code once in the fork server, not once per worker. (Not
    # forklift.trees, which a worker imports only to kill its tree when its pool dies:
    # preloaded, its ~8 ms delayed every pool's first result.) Effective only before
    # the fork server starts.
    ctx.set_forkserver_preload(["__main__", "forklift._engine.worker"])

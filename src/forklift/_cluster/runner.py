"""What a Dask worker runs for forklift: one chunk of items per Dask task.

The client sends ``run_chunk(fn_blob, payload, timeout, retries)``: the function
pickled once (cloudpickle for ``__main__`` functions), the items pickled as one
blob, so Dask never walks a list of 5,000 items looking for its own objects.
The answer is one blob too: ``("ok", values, errors, seconds)`` (or ``("all", count, error)`` when
nothing could run), where ``errors`` maps
an item's position to an :data:`~forklift._serialize.ErrorRecord`, so one
failing item fails only itself, as on the local engine.

A chunk with a per-task ``timeout`` runs its items in a forklift Executor on
this worker's machine (one process per Dask worker thread, started on first
use): Dask cannot stop a running task, but forklift kills the process that
overran, and the Dask worker goes on. That needs the Dask worker to be
allowed children (``distributed.worker.daemon: False``, which ``forklift
cluster worker`` and the embedded local cluster set).

That Executor is killed when the Dask worker process exits: a nanny's worker
process ends through multiprocessing, which joins every non-daemonic child
before the interpreter's atexit hooks run, and the Executor's idle workers
would wait there for work until the nanny killed the lot 8 s later ("Worker
process still alive after 8.0 seconds, killing"). A multiprocessing
finalizer with an exit priority runs before that join.

That Executor names its tasks by its own calls ("task 0 of submit(sleep)"),
which mean nothing to the caller: its timeouts and deaths come back with
:data:`TASK` where the task's name goes (its serialization errors with no
task), and the client puts in the caller's ("task 0 of apply(sleep)") with
:func:`name_task`, so the cluster says what this machine's pool says.
"""

from __future__ import annotations

import multiprocessing.util
import pickle
import threading
import time
from collections import OrderedDict
from typing import Any

from .._engine.blame import PHASES
from .._engine.protocol import CALL_ONE, CALL_STAR
from .._serialize import ErrorRecord, capture_exception, dumps, fail_unpicklable, loads, serialization_error
from ..errors import SerializationError, TaskTimeout, WorkerLostError, describe_exit

_FUNCS: OrderedDict[bytes, Any] = OrderedDict()  # fn_blob -> function, a few per worker process
_FUNC_CACHE = 16
_lock = threading.Lock()
_executor: Any = None

#: Where the caller's name of a task goes in a timed task's TaskTimeout or WorkerLostError.
TASK = "{task}"


def run_chunk(fn_blob: bytes, mode: int, payload: bytes, timeout: float | None, retries: int) -> bytes:
    """Run every item of the chunk; never raises for an item's own failure."""
    try:
        items: list[Any] = loads(payload)
    except BaseException as exc:
        err = serialization_error("the chunk's arguments would not unpickle", payload, exc)
        return _all_failed(None, err)
    try:
        fn = _function(fn_blob)
    except BaseException as exc:
        err = serialization_error(
            "the function would not unpickle on the worker (is its module installed there?)", fn_blob, exc
        )
        return _all_failed(len(items), err)
    start = time.perf_counter()
    if timeout is None:
        values, errors = _run_here(fn, mode, items)
    else:
        values, errors = _run_timed(fn, mode, items, timeout, retries)
    seconds = time.perf_counter() - start
    return _answer(values, errors, seconds)


def _function(fn_blob: bytes) -> Any:
    with _lock:
        found = _FUNCS.get(fn_blob)
        if found is not None:
            _FUNCS.move_to_end(fn_blob)
            return found
    found = loads(fn_blob)
    with _lock:
        _FUNCS[fn_blob] = found
        while len(_FUNCS) > _FUNC_CACHE:
            _FUNCS.popitem(last=False)
    return found


def _call(fn: Any, mode: int, item: Any) -> Any:
    if mode == CALL_ONE:
        return fn(item)
    if mode == CALL_STAR:
        return fn(*item)
    args, kwargs = item
    return fn(*args, **kwargs)


def _run_here(fn: Any, mode: int, items: list[Any]) -> tuple[list[Any], dict[int, ErrorRecord]]:
    values: list[Any] = []
    errors: dict[int, ErrorRecord] = {}
    if mode == CALL_ONE:
        try:
            values.extend(map(fn, items))  # the fast path: no Python loop per item
            return values, errors
        except Exception as exc:
            errors[len(values)] = capture_exception(exc, exc.__traceback__)
            values.append(None)
    for item in items[len(values) :]:
        try:
            values.append(_call(fn, mode, item))
        except Exception as exc:
            errors[len(values)] = capture_exception(exc, exc.__traceback__)
            values.append(None)
    return values, errors


def _run_timed(
    fn: Any, mode: int, items: list[Any], timeout: float, retries: int
) -> tuple[list[Any], dict[int, ErrorRecord]]:
    executor = _local_executor().options(timeout=timeout, retries=retries)
    futures = []
    for item in items:
        if mode == CALL_ONE:
            futures.append(executor.submit(fn, item))
        elif mode == CALL_STAR:
            futures.append(executor.submit(fn, *item))
        else:
            futures.append(executor.submit(fn, *item[0], **item[1]))
    values: list[Any] = []
    errors: dict[int, ErrorRecord] = {}
    for future in futures:
        exc = future.exception()
        if exc is None:
            values.append(future.result())
        else:
            errors[len(values)] = capture_exception(_unnamed(exc, timeout), exc.__traceback__)
            values.append(None)
    return values, errors


def _unnamed(exc: BaseException, timeout: float) -> BaseException:
    """The local Executor's own error without its name of the task (the client gives the caller's).

    Its timeouts and deaths are made by its engine, with no ``__cause__``; a task's
    own TaskTimeout or WorkerLostError (from a pool of its own) has the worker's
    traceback as ``__cause__`` and goes back as it is.
    """
    if isinstance(exc, SerializationError) and exc.task is not None:
        plain = SerializationError(str(exc).removeprefix(f"{exc.task}: "))
        plain.__cause__ = exc.__cause__
        return plain
    if exc.__cause__ is not None:
        return exc
    if isinstance(exc, TaskTimeout):
        return TaskTimeout(
            f"{TASK} ran longer than its timeout of {timeout:g} s; its forklift worker on the Dask "
            f"worker {_worker_address()} and its child processes were killed and replaced"
        )
    if isinstance(exc, WorkerLostError):
        phase = next((words for words in PHASES.values() if words in str(exc)), "")
        return WorkerLostError(
            f"worker {exc.pid} on the Dask worker {_worker_address()} running {TASK}{phase} "
            f"{describe_exit(exc.exitcode)}",
            pid=exc.pid,
            exitcode=exc.exitcode,
        )
    return exc


def name_task(exc: BaseException, task: str) -> BaseException:
    """On the client: a timed task's TaskTimeout or WorkerLostError naming ``task`` for :data:`TASK`.

    Made anew, with no ``__cause__``, as this machine's engine makes them: the
    worker's traceback of an error its engine made says nothing more.
    """
    if not isinstance(exc, (TaskTimeout, WorkerLostError)) or TASK not in str(exc):
        return exc
    message = str(exc).replace(TASK, task, 1)
    if isinstance(exc, WorkerLostError):
        return WorkerLostError(message, pid=exc.pid, exitcode=exc.exitcode)
    return TaskTimeout(message)


def _worker_address() -> str:
    worker = _dask_worker()
    return "(unknown)" if worker is None else str(worker.address)


def _dask_worker() -> Any:
    """The Dask worker this runs in, or None (not in one: a test calling run_chunk)."""
    try:
        from distributed import get_worker

        return get_worker()
    except Exception:
        return None


def _local_executor() -> Any:
    """This worker process's forklift Executor for timed tasks (one process per Dask thread)."""
    global _executor
    with _lock:
        if _executor is None:
            from ..executor import Executor

            worker = _dask_worker()
            _executor = Executor(1 if worker is None else max(1, worker.state.nthreads))
            multiprocessing.util.Finalize(None, _kill_executor, exitpriority=_EXIT_PRIORITY)
        return _executor


_EXIT_PRIORITY = 10  # >= 0: run by multiprocessing's exit before it joins the children


def _kill_executor() -> None:
    """At the Dask worker process's exit: kill the timed tasks' Executor (module docstring)."""
    global _executor
    with _lock:
        executor, _executor = _executor, None
    if executor is not None:
        executor.terminate()


def _answer(values: list[Any], errors: dict[int, ErrorRecord], seconds: float) -> bytes:
    try:
        return dumps(("ok", values, errors, seconds))
    except Exception:
        pass
    fail_unpicklable(values, errors)
    return dumps(("ok", values, errors, seconds))


def _all_failed(count: int | None, exc: BaseException) -> bytes:
    """Every item failed with ``exc`` (``count`` None: as many as the client sent)."""
    record = capture_exception(exc, None)
    return pickle.dumps(("all", count, record), 5)

"""The adapter table: how each library opens a pool, runs one map with its defaults, and closes.

Every case calls the library the way its documentation shows first, with no
chunksize or batch size given: the figures compare defaults. Libraries are
imported inside the adapters, so a process pays only for the ones it uses (the
start-up benchmark times the import on its own).

- ``Library``: open a pool of N workers (optionally with a start method) and
  close it gracefully (let the workers finish and exit, never kill them).
- ``Case``: one call on an open pool that takes ``fn`` and a list and returns
  every result as a list (iterators are consumed fully).
"""

from __future__ import annotations

import importlib
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any

Run = Callable[[Any, Callable[[Any], Any], Sequence[Any]], list[Any]]


@dataclass(frozen=True)
class Library:
    key: str
    modules: tuple[str, ...]  # imported by ``load``; the start-up benchmark times this on its own
    open: Callable[[int, str | None], Any]
    close: Callable[[Any], None]

    def load(self) -> None:
        for name in self.modules:
            importlib.import_module(name)


@dataclass(frozen=True)
class Case:
    key: str
    label: str
    library: Library
    run: Run
    ordered: bool = True  # False: results come in completion order; compare them sorted

    @property
    def is_forklift(self) -> bool:
        return self.key.startswith("forklift")

    def same_results(self, got: list[Any], expected: list[Any]) -> bool:
        return got == expected if self.ordered else sorted(got) == sorted(expected)


# -- open and close, per library --------------------------------------------------------
def _context(start_method: str | None) -> Any:
    import multiprocessing

    return multiprocessing.get_context(start_method)


def _open_forklift_pool(workers: int, start_method: str | None) -> Any:
    import forklift

    return forklift.Pool(workers, start_method=start_method)


def _open_forklift_executor(workers: int, start_method: str | None) -> Any:
    import forklift

    return forklift.Executor(workers, start_method=start_method)


def _open_mp_pool(workers: int, start_method: str | None) -> Any:
    return _context(start_method).Pool(workers)


def _open_ppe(workers: int, start_method: str | None) -> Any:
    from concurrent.futures import ProcessPoolExecutor

    return ProcessPoolExecutor(workers, mp_context=_context(start_method))


def _open_loky(workers: int, start_method: str | None) -> Any:
    import loky

    return loky.get_reusable_executor(max_workers=workers)


def _open_mpire(workers: int, start_method: str | None) -> Any:
    import mpire

    # keep_alive=True: the workers outlive one map, so (as for every other pool)
    # worker start-up is not part of the timed call. mpire's default (False)
    # restarts the workers in every map.
    return mpire.WorkerPool(n_jobs=workers, keep_alive=True)


def _open_pebble(workers: int, start_method: str | None) -> Any:
    import pebble

    return pebble.ProcessPool(max_workers=workers)


def _open_joblib(workers: int, start_method: str | None) -> Any:
    import joblib

    return joblib.Parallel(n_jobs=workers)


def _close_and_join(pool: Any) -> None:
    pool.close()
    pool.join()


def _shutdown(executor: Any) -> None:
    executor.shutdown(wait=True)


def _close_joblib(parallel: Any) -> None:
    # Parallel keeps no pool of its own: its workers belong to the reusable
    # executor of joblib's vendored loky, a module global with no public getter.
    from joblib.externals.loky import reusable_executor

    executor = reusable_executor._executor
    if executor is not None:
        executor.shutdown(wait=True)


def _nothing(*_: Any) -> None:
    return None


SERIAL = Library("serial", (), _nothing, _nothing)
FORKLIFT_POOL = Library("forklift.Pool", ("forklift.pool",), _open_forklift_pool, _close_and_join)
FORKLIFT_EXECUTOR = Library("forklift.Executor", ("forklift.executor",), _open_forklift_executor, _shutdown)
MP_POOL = Library("mp.Pool", ("multiprocessing.pool",), _open_mp_pool, _close_and_join)
PPE = Library("PPE", ("concurrent.futures",), _open_ppe, _shutdown)
LOKY = Library("loky", ("loky",), _open_loky, _shutdown)
MPIRE = Library("mpire", ("mpire",), _open_mpire, lambda pool: pool.stop_and_join())
PEBBLE = Library("pebble", ("pebble",), _open_pebble, _close_and_join)
JOBLIB = Library("joblib", ("joblib",), _open_joblib, _close_joblib)


# -- one call with default chunking ----------------------------------------------------------
def _serial(_: Any, fn: Callable[[Any], Any], xs: Sequence[Any]) -> list[Any]:
    return [fn(x) for x in xs]


def _map_list(pool: Any, fn: Callable[[Any], Any], xs: Sequence[Any]) -> list[Any]:
    result = pool.map(fn, xs)  # a list (Pool, mpire) or a lazy iterator (executors)
    return result if isinstance(result, list) else list(result)


def _imap_unordered(pool: Any, fn: Callable[[Any], Any], xs: Sequence[Any]) -> list[Any]:
    return list(pool.imap_unordered(fn, xs))


def _pebble_map(pool: Any, fn: Callable[[Any], Any], xs: Sequence[Any]) -> list[Any]:
    return list(pool.map(fn, xs).result())


def _joblib(parallel: Any, fn: Callable[[Any], Any], xs: Sequence[Any]) -> list[Any]:
    from joblib import delayed

    return list(parallel(delayed(fn)(x) for x in xs))


def _submit_each(pool: Any, fn: Callable[[Any], Any], xs: Sequence[Any]) -> list[Any]:
    """One call per item through the library's single-task API, then every result."""
    if hasattr(pool, "apply_async"):  # multiprocessing.Pool, forklift.Pool, mpire
        handles = [pool.apply_async(fn, (x,)) for x in xs]
        return [h.get() for h in handles]
    if hasattr(pool, "schedule"):  # pebble
        handles = [pool.schedule(fn, args=(x,)) for x in xs]
    else:  # concurrent.futures executors
        handles = [pool.submit(fn, x) for x in xs]
    return [h.result() for h in handles]


SUBMIT_CASES = {
    case.key: case
    for case in (
        Case("forklift.Executor.submit", "**forklift Executor.submit**", FORKLIFT_EXECUTOR, _submit_each),
        Case("forklift.Pool.apply_async", "**forklift Pool.apply_async**", FORKLIFT_POOL, _submit_each),
        Case("mp.Pool.apply_async", "mp.Pool.apply_async", MP_POOL, _submit_each),
        Case("PPE.submit", "ProcessPoolExecutor.submit", PPE, _submit_each),
        Case("loky.submit", "loky get_reusable_executor().submit", LOKY, _submit_each),
        Case("mpire.apply_async", "mpire WorkerPool(keep_alive=True).apply_async", MPIRE, _submit_each),
        Case("pebble.schedule", "pebble ProcessPool.schedule", PEBBLE, _submit_each),
    )
}

CASES = {
    case.key: case
    for case in (
        Case("serial", "serial loop `[f(x) for x in xs]`", SERIAL, _serial),
        Case("forklift.Pool.map", "**forklift Pool.map**", FORKLIFT_POOL, _map_list),
        Case(
            "forklift.Pool.imap_unordered",
            "**forklift Pool.imap_unordered**",
            FORKLIFT_POOL,
            _imap_unordered,
            ordered=False,
        ),
        Case("forklift.Executor.map", "**forklift Executor.map**", FORKLIFT_EXECUTOR, _map_list),
        Case("mp.Pool.map", "mp.Pool.map (chunksize = n/(4·workers))", MP_POOL, _map_list),
        Case(
            "mp.Pool.imap_unordered",
            "mp.Pool.imap_unordered (chunksize=1)",
            MP_POOL,
            _imap_unordered,
            ordered=False,
        ),
        Case("PPE.map", "ProcessPoolExecutor.map (chunksize=1)", PPE, _map_list),
        Case("loky.map", "loky get_reusable_executor().map (chunksize=1)", LOKY, _map_list),
        Case("mpire.map", "mpire WorkerPool(keep_alive=True).map (auto chunks)", MPIRE, _map_list),
        Case("pebble.map", "pebble ProcessPool.map (chunksize=1)", PEBBLE, _pebble_map),
        Case("joblib", "joblib Parallel(n_jobs=2)(delayed(f)(x) …) (auto batch)", JOBLIB, _joblib),
    )
}


def measure(
    case: Case,
    fn: Callable[[Any], Any],
    xs: Sequence[Any],
    *,
    workers: int,
    warm: Sequence[Any],
    check: Callable[[list[Any]], Any],
    start_method: str | None = None,
) -> tuple[float, Any]:
    """Open the case's pool, warm it with one call on ``warm``, time one call on ``xs``, close.

    Pool creation, the warm-up call and the shutdown are not timed. The result
    goes through ``check`` at once, so big result lists are not kept; the
    return value is ``(seconds, check(result))``.
    """
    pool = case.library.open(workers, start_method)
    try:
        case.run(pool, fn, warm)
        start = time.perf_counter()
        result = case.run(pool, fn, xs)
        seconds = time.perf_counter() - start
        return seconds, check(result)
    finally:
        case.library.close(pool)


def chunks_sent(pool: Any) -> int | None:
    """How many chunks a forklift pool's scheduler has sent so far (its chunk counter, peeked:
    for the benchmarks only); None for other pools."""
    import itertools

    seq = getattr(getattr(pool, "_engine", None), "_seq", None)
    if not isinstance(seq, itertools.count):
        return None
    return int(repr(seq)[len("count(") : -1]) - 1

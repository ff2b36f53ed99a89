"""The same faults on process pools (the anchors and forklift), side by side: writes docs/reliability.md.

    .venv/bin/python benchmarks/reliability.py [--libs mp,forklift] [--scenarios 1,2] [--out PATH]

How a cell is measured:

- every (library, scenario) runs in a fresh interpreter (this file with ``--child``),
  under a hard time limit. The child prints one JSON line with its findings.
- inside the child, each blocking call is a *step* with its own limit. Past the limit
  the main thread gets SIGUSR1, whose handler raises ``StepTimeout``; the step counts
  as "hang" and the next step still runs on the same pool object. If even that cannot
  interrupt the library, an emergency timer prints what is known and exits. Past the
  hard limit the parent reports "hang" and kills the child's whole process tree.
- scenarios 5, 8, 9 (parent SIGKILLed) and 7 (Ctrl-C) are driven from the parent: the
  child is the victim and the parent watches its workers (and, in 8, its fork; in 9, the
  tasks' daemons), whose pids they write to files.
- every process of a run inherits a unique marker in its environment. After each run
  the parent kills whatever still carries the marker (pid, create time and marker
  checked), so no orphan outlives its run, even from a parent SIGKILLed on purpose or a
  daemon in a session of its own. /dev/shm entries named after the child's pid (joblib's
  folders, loky's semaphores) are removed too, and counted.
- scenario 12 stops its loop early if the child has more than FUZZ_PROCESS_CAP live
  descendants: the machine may be shared.

Task functions are in ``_reliability_tasks.py`` so that spawn / forkserver workers
can import them.
"""

from __future__ import annotations

import argparse
import datetime as dt
import json
import multiprocessing
import os
import platform
import random
import shlex
import shutil
import signal
import subprocess
import sys
import tempfile
import threading
import time
import traceback
import uuid
from collections import Counter
from collections.abc import Callable, Iterable
from concurrent.futures import ProcessPoolExecutor
from dataclasses import dataclass, field
from importlib import metadata
from pathlib import Path
from typing import Any

import psutil

import _reliability_tasks as tasks

HERE = Path(__file__).resolve().parent
REPO = HERE.parent
RUN_ENV = "RELIABILITY_RUN"
WORKERS = 2
TASK_TIMEOUT = 2.0
TIMEOUT_NAMES = ("TimeoutError", "TaskTimeout")
PARENT_WATCH = (2, 9)  # seconds after the parent's SIGKILL at which survivors are counted
CALLBACK_LIMIT = 10.0  # scenario 10: each of the outer+inner results, the later call, the close
INIT_TIMEOUT_ENV = {"FORKLIFT_INIT_TIMEOUT": "3"}  # scenario 11: read by forklift only
FUZZ_CALLS, FUZZ_SEED, FUZZ_LIMIT = 5000, 7, 60.0  # scenario 12
SQUARES = [x * x for x in range(100)]  # what scenario 12's 100-item map must return
FUZZ_PROCESS_CAP = 40  # scenario 12 stops early past this many live descendants (the machine is shared)

# Scenario 4's task: a lambda in the script the user runs (``__main__``), as in a notebook or script.
PLUS_ONE = lambda x: x + 1  # noqa: E731


# ---------------------------------------------------------------------------------------
# Adapters: each library behind the four calls the scenarios need.
# ---------------------------------------------------------------------------------------
class Adapter:
    """One library with two workers, its default start method and its idiomatic calls.

    ``results`` is the library's ordered result iterator, lazy where it has one, so that
    a library that can deliver the other results after a failed item gets to show it.
    """

    key = ""
    label = ""
    calls = ""  # how the calls are spelled, for the notes
    no_callback = ""  # scenario 10: why the library has no callback on a result, if it has none

    def open(self, timeout: float | None = None, initializer: Callable[[], None] | None = None) -> None:
        raise NotImplementedError

    def call(self, fn: Callable[[Any], Any], arg: Any) -> Any:
        """The library's simplest blocking call for one task."""
        raise NotImplementedError

    def submit_with_callback(
        self, fn: Callable[[Any], Any], arg: Any, callback: Callable[[Any], None]
    ) -> Callable[[], Any]:
        """Start ``fn(arg)``; the library calls ``callback(value)`` when it is done.

        Returns the blocking wait for that outer result.
        """
        raise NotImplementedError

    def results(self, fn: Callable[[Any], Any], items: Iterable[Any]) -> Iterable[Any]:
        raise NotImplementedError

    def map_list(self, fn: Callable[[Any], Any], items: Iterable[Any]) -> list[Any]:
        """The call that returns the whole list; a lazy map's list() unless the library has its own."""
        return list(self.results(fn, items))

    def call_with_timeout(self, fn: Callable[[Any], Any], arg: Any, timeout: float) -> Any:
        raise NotImplementedError

    def close(self) -> None:
        raise NotImplementedError

    def map_in_with_block(self, fn: Callable[[Any], Any], items: list[Any]) -> list[Any]:
        raise NotImplementedError

    def start_method(self) -> str:
        return multiprocessing.get_start_method()


def with_done_callback(future: Any, callback: Callable[[Any], None]) -> Callable[[], Any]:
    """``future.add_done_callback``, with the callback given the value; returns ``future.result``."""
    future.add_done_callback(lambda done: callback(done.result()))
    return future.result


class MpPool(Adapter):
    key, label = "mp", "mp.Pool"
    calls = (
        "iterator: `Pool(2).imap(f, xs)`; list: `map(f, xs)`; 2: `apply_async(f, (x,)).get(timeout=2)`; "
        "7: `with Pool(2) as p: p.map(f, xs)`; 10: `apply_async(f, (x,), callback=cb)`, cb calls "
        "`pool.apply(f, (y,))`; 11: `Pool(2, initializer=init)`, then the call of 2; 12: `apply(f, (x,))`; "
        "close: `terminate()`"
    )

    def open(self, timeout=None, initializer=None):
        self.pool = multiprocessing.Pool(WORKERS, initializer=initializer)

    def call(self, fn, arg):
        return self.pool.apply(fn, (arg,))

    def submit_with_callback(self, fn, arg, callback):
        return self.pool.apply_async(fn, (arg,), callback=callback).get

    def results(self, fn, items):
        return self.pool.imap(fn, items)

    def map_list(self, fn, items):
        return self.pool.map(fn, items)

    def call_with_timeout(self, fn, arg, timeout):
        return self.pool.apply_async(fn, (arg,)).get(timeout=timeout)

    def close(self):
        self.pool.terminate()

    def map_in_with_block(self, fn, items):
        with multiprocessing.Pool(WORKERS) as pool:
            return pool.map(fn, items)


class Ppe(Adapter):
    key, label = "ppe", "PPE"
    calls = (
        "iterator: `ProcessPoolExecutor(2).map(f, xs)`; list: `list(ex.map(f, xs))`; "
        "2: `submit(f, x).result(timeout=2)`; 7: `with ProcessPoolExecutor(2) as ex: list(ex.map(f, xs))`; "
        "10: `submit(f, x).add_done_callback(cb)`, cb calls `ex.submit(f, y).result()`; "
        "11: `ProcessPoolExecutor(2, initializer=init)`, then the call of 2; 12: `submit(f, x).result()`; "
        "close: `shutdown(wait=False, cancel_futures=True)` (3.11 has no way to kill the workers)"
    )

    def open(self, timeout=None, initializer=None):
        self.ex = ProcessPoolExecutor(WORKERS, initializer=initializer)

    def call(self, fn, arg):
        return self.ex.submit(fn, arg).result()

    def submit_with_callback(self, fn, arg, callback):
        return with_done_callback(self.ex.submit(fn, arg), callback)

    def results(self, fn, items):
        return self.ex.map(fn, items)

    def call_with_timeout(self, fn, arg, timeout):
        return self.ex.submit(fn, arg).result(timeout=timeout)

    def close(self):
        self.ex.shutdown(wait=False, cancel_futures=True)  # 3.11 has no way to kill the workers

    def map_in_with_block(self, fn, items):
        with ProcessPoolExecutor(WORKERS) as ex:
            return list(ex.map(fn, items))


class Loky(Adapter):
    key, label = "loky", "loky"
    calls = (
        "iterator: `get_reusable_executor(max_workers=2).map(f, xs)` (the same executor object is reused); "
        "list: `list(ex.map(f, xs))`; 2: `submit(f, x).result(timeout=2)`; "
        "7: `with get_reusable_executor(max_workers=2) as ex: list(ex.map(f, xs))`; "
        "10: `submit(f, x).add_done_callback(cb)`, cb calls `ex.submit(f, y).result()`; "
        "11: `get_reusable_executor(max_workers=2, initializer=init)`, then the call of 2; "
        "12: `submit(f, x).result()`; close: `shutdown(wait=True, kill_workers=True)`"
    )

    def open(self, timeout=None, initializer=None):
        from loky import get_reusable_executor

        self.ex = get_reusable_executor(max_workers=WORKERS, initializer=initializer)

    def call(self, fn, arg):
        return self.ex.submit(fn, arg).result()

    def submit_with_callback(self, fn, arg, callback):
        return with_done_callback(self.ex.submit(fn, arg), callback)

    def results(self, fn, items):
        return self.ex.map(fn, items)

    def call_with_timeout(self, fn, arg, timeout):
        return self.ex.submit(fn, arg).result(timeout=timeout)

    def close(self):
        self.ex.shutdown(wait=True, kill_workers=True)

    def map_in_with_block(self, fn, items):
        from loky import get_reusable_executor

        with get_reusable_executor(max_workers=WORKERS) as ex:
            return list(ex.map(fn, items))

    def start_method(self):
        return "loky"


class Mpire(Adapter):
    key, label = "mpire", "mpire"
    calls = (
        "iterator: `WorkerPool(n_jobs=2).imap(f, xs)`; list: `map(f, xs)`; 2: `map(f, [x], task_timeout=2)`; "
        "7: `with WorkerPool(n_jobs=2) as p: p.map(f, xs)`; 10: `apply_async(f, args=(x,), callback=cb)`, "
        "cb calls `pool.apply(f, args=(y,))`; 11: `map(f, [x], task_timeout=2, worker_init=init)` (mpire's "
        "initializer is an argument of each call, run by a worker when it gets its first task; its "
        "separate `worker_init_timeout` is not used); 12: `apply(f, args=(x,))`; close: `terminate()`"
    )

    def open(self, timeout=None, initializer=None):
        from mpire import WorkerPool

        self.pool = WorkerPool(n_jobs=WORKERS)
        self.initializer = initializer

    def call(self, fn, arg):
        return self.pool.apply(fn, args=(arg,))

    def submit_with_callback(self, fn, arg, callback):
        return self.pool.apply_async(fn, args=(arg,), callback=callback).get

    def results(self, fn, items):
        return self.pool.imap(fn, items)

    def map_list(self, fn, items):
        return self.pool.map(fn, items)

    def call_with_timeout(self, fn, arg, timeout):
        return self.pool.map(fn, [arg], task_timeout=timeout, worker_init=self.initializer)[0]

    def close(self):
        self.pool.terminate()

    def map_in_with_block(self, fn, items):
        from mpire import WorkerPool

        with WorkerPool(n_jobs=WORKERS) as pool:
            return pool.map(fn, items)

    def start_method(self):
        return self.pool.pool_params.start_method


class Pebble(Adapter):
    key, label = "pebble", "pebble"
    calls = (
        "iterator: `ProcessPool(2).map(f, xs).result()`; list: `list()` of it; "
        "2: `schedule(f, args=(x,), timeout=2).result()`; "
        "7: `with ProcessPool(2) as p: list(p.map(f, xs).result())`; "
        "10: `schedule(f, args=(x,)).add_done_callback(cb)`, cb calls "
        "`pool.schedule(f, args=(y,)).result()`; "
        "11: `ProcessPool(2, initializer=init)`, then the call of 2; 12: `schedule(f, args=(x,)).result()`; "
        "close: `stop()`, then `join()`"
    )

    def open(self, timeout=None, initializer=None):
        from pebble import ProcessPool

        self.pool = ProcessPool(max_workers=WORKERS, initializer=initializer)

    def call(self, fn, arg):
        return self.pool.schedule(fn, args=(arg,)).result()

    def submit_with_callback(self, fn, arg, callback):
        return with_done_callback(self.pool.schedule(fn, args=(arg,)), callback)

    def results(self, fn, items):
        return self.pool.map(fn, items).result()

    def call_with_timeout(self, fn, arg, timeout):
        return self.pool.schedule(fn, args=(arg,), timeout=timeout).result()

    def close(self):
        self.pool.stop()
        self.pool.join()

    def map_in_with_block(self, fn, items):
        from pebble import ProcessPool

        with ProcessPool(max_workers=WORKERS) as pool:
            return list(pool.map(fn, items).result())


class Joblib(Adapter):
    key, label = "joblib", "joblib"
    calls = (
        'iterator: `Parallel(n_jobs=2, return_as="generator")(delayed(f)(x) for x in xs)` (the same '
        "`Parallel` object is reused); list: `list()` of it; 2: `Parallel(n_jobs=2, timeout=2)`; "
        "7: `with Parallel(n_jobs=2) as par: par(...)`; 10: n/a; 11: `Parallel(n_jobs=2, timeout=2, "
        "initializer=init)` (passed through `**backend_kwargs` to loky's executor); "
        "12: `Parallel(n_jobs=2)(delayed(f)(x) for x in [x])` (a map over one item; a fresh `Parallel` "
        "per call, the same loky workers); close: `shutdown(wait=True, kill_workers=True)` of joblib's "
        "loky executor (joblib has no public way to stop its workers)"
    )
    no_callback = (
        "joblib has no callback on a result: `Parallel` returns a list or a generator, and its "
        "per-batch completion callback is internal"
    )

    def open(self, timeout=None, initializer=None):
        from joblib import Parallel

        extra = {"initializer": initializer} if initializer is not None else {}
        self.parallel = Parallel(n_jobs=WORKERS, return_as="generator", timeout=timeout, **extra)

    def call(self, fn, arg):
        from joblib import Parallel, delayed

        # A fresh Parallel per call, as is usual (the loky workers are reused): the reused one
        # above refuses new work while an interrupted generator of it is still referenced.
        [value] = Parallel(n_jobs=WORKERS)(delayed(fn)(x) for x in [arg])
        return value

    def results(self, fn, items):
        from joblib import delayed

        return self.parallel(delayed(fn)(x) for x in items)

    def call_with_timeout(self, fn, arg, timeout):
        return next(iter(self.results(fn, [arg])))  # the timeout was given to Parallel

    def close(self):
        from joblib.externals.loky import reusable_executor

        executor = reusable_executor._executor  # joblib has no public way to stop its workers
        if executor is not None:
            executor.shutdown(wait=True, kill_workers=True)

    def map_in_with_block(self, fn, items):
        from joblib import Parallel, delayed

        with Parallel(n_jobs=WORKERS) as parallel:
            return parallel(delayed(fn)(x) for x in items)

    def start_method(self):
        return "loky"


class ForkliftPool(Adapter):
    key, label = "forklift", "forklift.Pool"
    calls = (
        "iterator: `forklift.Pool(2).imap(f, xs)`; list: `map(f, xs)`; "
        "2: `forklift.Pool(2, timeout=2).apply_async(f, (x,)).get()`; "
        "7: `with forklift.Pool(2) as p: p.map(f, xs)`; 10: `apply_async(f, (x,), callback=cb)`, cb calls "
        "`pool.apply(f, (y,))`; 11: `forklift.Pool(2, timeout=2, initializer=init)`, then the call of 2; "
        "12: `apply(f, (x,))`; close: `terminate()`"
    )

    def open(self, timeout=None, initializer=None):
        import forklift

        self.pool = forklift.Pool(WORKERS, timeout=timeout, initializer=initializer)

    def call(self, fn, arg):
        return self.pool.apply(fn, (arg,))

    def submit_with_callback(self, fn, arg, callback):
        return self.pool.apply_async(fn, (arg,), callback=callback).get

    def results(self, fn, items):
        return self.pool.imap(fn, items)

    def map_list(self, fn, items):
        return self.pool.map(fn, items)

    def call_with_timeout(self, fn, arg, timeout):
        return self.pool.apply_async(fn, (arg,)).get()  # the timeout was given to the pool

    def close(self):
        self.pool.terminate()

    def map_in_with_block(self, fn, items):
        import forklift

        with forklift.Pool(WORKERS) as pool:
            return pool.map(fn, items)

    def start_method(self):
        return self.pool.start_method


class ForkliftExecutor(Adapter):
    key, label = "forklift-executor", "forklift.Executor"
    calls = (
        "iterator: `forklift.Executor(2).map(f, xs)`; list: `list(ex.map(f, xs))`; "
        "2: `forklift.Executor(2, timeout=2).submit(f, x).result()`; "
        "7: `with forklift.Executor(2) as ex: list(ex.map(f, xs))`; "
        "10: `submit(f, x).add_done_callback(cb)`, cb calls `ex.submit(f, y).result()`; "
        "11: `forklift.Executor(2, timeout=2, initializer=init)`, then the call of 2; "
        "12: `submit(f, x).result()`; close: `terminate()`"
    )

    def open(self, timeout=None, initializer=None):
        import forklift

        self.ex = forklift.Executor(WORKERS, timeout=timeout, initializer=initializer)

    def call(self, fn, arg):
        return self.ex.submit(fn, arg).result()

    def submit_with_callback(self, fn, arg, callback):
        return with_done_callback(self.ex.submit(fn, arg), callback)

    def results(self, fn, items):
        return self.ex.map(fn, items)

    def call_with_timeout(self, fn, arg, timeout):
        return self.ex.submit(fn, arg).result()  # the timeout was given to the executor

    def close(self):
        self.ex.terminate()

    def map_in_with_block(self, fn, items):
        import forklift

        with forklift.Executor(WORKERS) as ex:
            return list(ex.map(fn, items))

    def start_method(self):
        return self.ex._engine.start_method


ADAPTERS: dict[str, type[Adapter]] = {
    a.key: a for a in (MpPool, Ppe, Loky, Mpire, Pebble, Joblib, ForkliftPool, ForkliftExecutor)
}


# ---------------------------------------------------------------------------------------
# Child side: steps with a deadline, and one body per scenario.
# ---------------------------------------------------------------------------------------
class StepTimeout(BaseException):
    """Raised in the main thread when a step runs past its limit."""


_deadline_armed = False


def _on_deadline(signum: int, frame: Any) -> None:
    if _deadline_armed:
        raise StepTimeout


@dataclass
class Step:
    status: str  # "ok", "error" or "hang"
    seconds: float
    value: Any = None
    exc: BaseException | None = None

    def json(self) -> dict[str, Any]:
        return {"status": self.status, "seconds": round(self.seconds, 2), "error": describe(self.exc)}


def step(limit: float, call: Callable[[], Any]) -> Step:
    """Run ``call()`` in the main thread; interrupt it after ``limit`` seconds."""
    global _deadline_armed
    main = threading.main_thread().ident
    timer = threading.Timer(limit, signal.pthread_kill, (main, signal.SIGUSR1))
    timer.daemon = True
    t0 = time.monotonic()
    _deadline_armed = True
    timer.start()
    try:
        try:
            value = call()
        finally:
            _deadline_armed = False  # from here on, a late SIGUSR1 is ignored
            timer.cancel()
    except StepTimeout:
        return Step("hang", time.monotonic() - t0)
    except Exception as exc:
        return Step("error", time.monotonic() - t0, exc=exc)
    return Step("ok", time.monotonic() - t0, value)


def describe(exc: BaseException | None, func_name: str | None = None) -> dict[str, Any] | None:
    if exc is None:
        return None
    text = "".join(traceback.format_exception(exc))
    found = {"type": type(exc).__name__, "module": type(exc).__module__, "message": str(exc)[:160]}
    if func_name is not None:
        found["func_in_traceback"] = func_name in text
        found["ansi_in_traceback"] = "\x1b[" in text
    return found


def drain(start: Callable[[], Iterable[Any]], n: int, got: dict[int, tuple[bool, Any]]) -> None:
    """Read n ordered results into ``got`` (index -> (ok, value or exception)).

    Goes on after a failed item when the iterator allows it (a generator ends instead).
    ``got`` is filled in place so that a step interrupted by its deadline keeps what came.
    """
    try:
        results = start()
    except Exception as exc:
        got[0] = (False, exc)
        return
    # next() on the object the library returned, as a caller who goes on after an error does;
    # iter() of some result objects (forklift's imap) is a fresh generator that ends at an error.
    iterator = results if hasattr(results, "__next__") else iter(results)
    for i in range(n):
        try:
            got[i] = (True, next(iterator))
        except StopIteration:
            return
        except Exception as exc:
            got[i] = (False, exc)


def fault_run(
    lib: Adapter, fn: Callable[[Any], Any], n: int, faulty: int | None, limit: float, expect=tasks.square
) -> dict:
    """Read ``fn`` over range(n) from the result iterator; item ``faulty`` misbehaves."""
    got: dict[int, tuple[bool, Any]] = {}
    run = step(limit, lambda: drain(lambda: lib.results(fn, range(n)), n, got))
    errors = [(i, value) for i, (ok, value) in sorted(got.items()) if not ok]
    others = [i for i in range(n) if i != faulty]
    fault = got.get(faulty, (True, None))
    return {
        **run.json(),
        "others": len(others),
        "others_ok": sum(got.get(i) == (True, expect(i)) for i in others),
        "fault_error": None if fault[0] else describe(fault[1], fn.__name__),
        "first_error": describe(errors[0][1], fn.__name__) if errors else None,
        "first_error_at": errors[0][0] if errors else None,
        "n_errors": len(errors),
    }


def reuse_check(lib: Adapter, limit: float = 6.0) -> dict:
    """Can the same pool object still run 4 small tasks? On how many workers?"""
    got: dict[int, tuple[bool, Any]] = {}
    run = step(limit, lambda: drain(lambda: lib.results(tasks.square_and_pid, range(4)), 4, got))
    served = {i: value for i, (ok, value) in got.items() if ok and isinstance(value, (tuple, list))}
    ok = all(i in served and served[i][0] == i * i for i in range(4)) and len(got) == 4
    errors = [value for ok_, value in got.values() if not ok_]
    status = "ok" if ok else "hang" if run.status == "hang" else "error" if errors or run.exc else "wrong"
    return {
        "status": status,
        "seconds": round(run.seconds, 2),
        "error": describe(errors[0] if errors else run.exc),
        "values": [got[i][1][0] if i in served else got[i][1] for i in sorted(got) if got[i][0]],
        "workers": len({pid for _, pid in served.values()}),
    }


def process(pid: int) -> psutil.Process | None:
    try:
        return psutil.Process(pid)
    except psutil.Error:
        return None


def is_alive(proc: psutil.Process | None) -> bool:
    """Still running and not a zombie; psutil also checks that the pid was not reused."""
    try:
        return proc is not None and proc.is_running() and proc.status() != psutil.STATUS_ZOMBIE
    except psutil.Error:
        return False


def read_pids(path: str | None = None) -> list[int]:
    path = path or os.environ[tasks.PIDFILE_ENV]
    try:
        with open(path) as f:
            return list(dict.fromkeys(int(line) for line in f if line.strip()))
    except FileNotFoundError:
        return []


def fault_scenario(
    lib: Adapter, out: dict, fn: Callable[[Any], Any], n: int, fault: str, limit: float
) -> None:
    """The list-returning ``map`` on one pool; then, on a fresh pool, the iterator and a reuse check."""
    faulty = tasks.FAULTY_ITEM[fault]
    lib.open()
    out["start_method"] = lib.start_method()
    listed = step(limit, lambda: lib.map_list(fn, range(n)))
    out["map"] = {**listed.json(), "returned": len(listed.value) if listed.status == "ok" else None}
    out["map_close"] = step(3, lib.close).json()
    lib.open()
    out["run"] = fault_run(lib, fn, n, faulty, limit)
    out["reuse"] = reuse_check(lib)


def body_worker_killed(lib: Adapter, out: dict) -> None:
    fault_scenario(lib, out, tasks.die_on_7, 20, "worker_killed", limit=12)


def body_task_hangs(lib: Adapter, out: dict) -> None:
    lib.open(timeout=TASK_TIMEOUT)
    out["run"] = step(12, lambda: lib.call_with_timeout(tasks.sleep_forever, 0, TASK_TIMEOUT)).json()
    time.sleep(1.0)
    stuck = read_pids()
    out["stuck_workers"] = len(stuck)
    out["stuck_alive_after_1s"] = sum(is_alive(process(pid)) for pid in stuck)
    out["reuse"] = reuse_check(lib)


def body_task_raises(lib: Adapter, out: dict) -> None:
    fault_scenario(lib, out, tasks.fail_on_3, 6, "task_raises", limit=10)


def body_lambda(lib: Adapter, out: dict) -> None:
    lib.open()
    out["run"] = fault_run(lib, PLUS_ONE, 4, None, limit=10, expect=PLUS_ONE)


def body_unpicklable(lib: Adapter, out: dict) -> None:
    fault_scenario(lib, out, tasks.lock_on_2, 6, "unpicklable_result", limit=10)


def victim_parent_killed(lib: Adapter, out: dict) -> None:
    lib.open()
    list(lib.results(tasks.sleep_recorded, [8, 8]))


def victim_ctrl_c(lib: Adapter, out: dict) -> None:
    lib.map_in_with_block(tasks.sleep_recorded, [1] * 20)


def victim_parent_forks(lib: Adapter, out: dict) -> None:
    """Scenario 5's map, and a fork of this process once both tasks run."""
    lib.open()
    threading.Thread(target=fork_when_tasks_run, daemon=True).start()
    list(lib.results(tasks.sleep_recorded, [8, 8]))


def fork_when_tasks_run(limit: float = 20.0) -> None:
    """``os.fork()`` once both workers have recorded their pid; the fork records its own and sleeps 60 s."""
    deadline = time.monotonic() + limit
    while len(read_pids()) < WORKERS and time.monotonic() < deadline:
        time.sleep(0.02)
    if os.fork() == 0:
        try:
            tasks.record_pid(tasks.SURVIVOR)
            time.sleep(60)
        finally:
            os._exit(0)


def victim_task_daemonizes(lib: Adapter, out: dict) -> None:
    lib.open()
    list(lib.results(tasks.daemonize_and_sleep, [8, 8]))


def body_callback_reenters(lib: Adapter, out: dict) -> None:
    """Scenario 10: a callback on a result makes a blocking call on the same pool."""
    if lib.no_callback:
        out["not_applicable"] = lib.no_callback
        return
    lib.open()
    inner: dict[str, Any] = {}
    inner_done = threading.Event()

    def callback(value: Any) -> None:
        t0 = time.monotonic()
        inner["ran_in"] = threading.current_thread().name
        try:
            inner["value"] = lib.call(tasks.square, value)
        except Exception as exc:
            inner["error"] = describe(exc)
        inner["seconds"] = round(time.monotonic() - t0, 2)
        inner_done.set()

    t0 = time.monotonic()
    out["outer"] = checked(
        step(CALLBACK_LIMIT, lambda: lib.submit_with_callback(tasks.square, 3, callback)()), 9
    )
    inner_done.wait(max(0.0, t0 + CALLBACK_LIMIT - time.monotonic()))
    out["inner"] = {**inner, "status": inner_status(inner, inner_done.is_set(), expect=81)}
    out["later"] = checked(step(CALLBACK_LIMIT, lambda: lib.call(tasks.square, 5)), 25)
    out["close"] = step(CALLBACK_LIMIT, lib.close).json()


def checked(result: Step, expect: Any) -> dict[str, Any]:
    """A step's findings, its status "wrong" if it returned something else than ``expect``."""
    found = {**result.json(), "value": result.value}
    if result.status == "ok" and result.value != expect:
        found["status"] = "wrong"
    return found


def inner_status(inner: dict[str, Any], done: bool, expect: Any) -> str:
    if not done:
        return "hang" if "ran_in" in inner else "callback not run"
    if "error" in inner:
        return "error"
    return "ok" if inner.get("value") == expect else "wrong"


def body_init_hangs(lib: Adapter, out: dict) -> None:
    """Scenario 11: the workers' initializer never returns; one call with a 2 s timeout."""
    lib.open(timeout=TASK_TIMEOUT, initializer=tasks.hang_in_initializer)
    run = step(12, lambda: lib.call_with_timeout(tasks.square, 3, TASK_TIMEOUT))
    out["run"] = {**run.json(), "value": run.value}
    before = descendants()
    out["close"] = step(CALLBACK_LIMIT, lib.close).json()
    time.sleep(2.0)
    workers = read_pids()
    left = {p.pid: p for p in [*before, *descendants()] if is_alive(p)}
    out["workers"] = len(workers)
    out["workers_left"] = sum(is_alive(process(pid)) for pid in workers)
    others = [p for pid, p in left.items() if pid not in workers]
    out["others_left"] = len(others)
    out["others_what"] = sorted({what(p) for p in others})


def descendants() -> list[psutil.Process]:
    try:
        return psutil.Process().children(recursive=True)
    except psutil.Error:
        return []


class RandomInterrupts:
    """A SIGALRM every 0.2-10 ms (seeded); raises KeyboardInterrupt once per arming."""

    def __init__(self, seed: int) -> None:
        self.rng = random.Random(seed)
        self.armed = False

    def __call__(self, signum: int, frame: Any) -> None:
        signal.setitimer(signal.ITIMER_REAL, self.rng.uniform(0.0002, 0.010))
        if self.armed:
            self.armed = False
            raise KeyboardInterrupt

    def start(self) -> None:
        signal.signal(signal.SIGALRM, self)
        signal.setitimer(signal.ITIMER_REAL, 0.001)

    def stop(self) -> None:
        self.armed = False
        signal.setitimer(signal.ITIMER_REAL, 0)
        signal.signal(signal.SIGALRM, signal.SIG_IGN)


def calls_under_interrupts(lib: Adapter, alarm: RandomInterrupts, counts: Counter) -> None:
    """FUZZ_CALLS blocking calls, each armed for one KeyboardInterrupt; ``counts`` filled in place.

    An interrupt that lands after the call raised something else replaces it (it counts as
    interrupted); past the limit, the loop ends even if that replaced the step's StepTimeout.
    """
    deadline = time.monotonic() + FUZZ_LIMIT + 1
    for i in range(FUZZ_CALLS):
        if time.monotonic() > deadline:
            raise StepTimeout
        counts["started"] = i + 1
        try:
            try:
                alarm.armed = True
                value = lib.call(tasks.square, i)
            finally:
                alarm.armed = False
            counts["done" if value == i * i else "wrong"] += 1
        except KeyboardInterrupt:
            counts["interrupted"] += 1
        except StepTimeout:
            raise
        except Exception as exc:  # anything else is a finding: counted by type
            counts[f"other: {type(exc).__name__}: {exc}"[:120]] += 1
        counts["last_end"] = time.monotonic()
        if i % 50 == 49 and (alive := len(descendants())) > FUZZ_PROCESS_CAP:
            counts["stopped_at_processes"] = alive
            return


def call_then_map(lib: Adapter) -> dict[str, Any]:
    """Scenario 12's control, without interrupts: one call, then the 100-item map, then the close."""
    lib.open()
    first = checked(step(CALLBACK_LIMIT, lambda: lib.call(tasks.square, 3)), 9)
    listed = checked(step(CALLBACK_LIMIT, lambda: lib.map_list(tasks.square, range(100))), SQUARES)
    closed = step(CALLBACK_LIMIT, lib.close).json()
    return {"call": first, "map": {**listed, "value": None}, "close": closed}


def body_interrupt_fuzz(lib: Adapter, out: dict) -> None:
    """Scenario 12: Ctrl-C at random moments of FUZZ_CALLS calls; then a map and the close.

    First, on a pool of its own, the same call and map without interrupts (a control).
    """
    out["control"] = call_then_map(type(lib)())
    lib.open()
    alarm = RandomInterrupts(FUZZ_SEED)
    counts: Counter = Counter()
    alarm.start()
    try:
        run = step(FUZZ_LIMIT, lambda: calls_under_interrupts(lib, alarm, counts))
    finally:
        alarm.stop()
    stalled = time.monotonic() - counts.pop("last_end", time.monotonic() - run.seconds)
    out["run"] = {**run.json(), **counts, "stalled": round(stalled, 2)}
    listed = checked(step(CALLBACK_LIMIT, lambda: lib.map_list(tasks.square, range(100))), SQUARES)
    out["map"] = {**listed, "value": None}
    out["close"] = step(CALLBACK_LIMIT, lib.close).json()


def emit(out: dict) -> None:
    os.write(1, (json.dumps(out, default=repr) + "\n").encode())


def child_main(lib_key: str, scenario_key: str) -> None:
    scenario = SCENARIOS[scenario_key]
    lib = ADAPTERS[lib_key]()
    out: dict[str, Any] = {}
    if scenario.victim:
        scenario.body(lib, out)
        return
    signal.signal(signal.SIGUSR1, _on_deadline)
    # Last resort if a step cannot be interrupted: report what is known, before the parent's limit.
    emergency = threading.Timer(scenario.limit - 3, lambda: (emit({**out, "incomplete": True}), os._exit(3)))
    emergency.daemon = True
    emergency.start()
    try:
        scenario.body(lib, out)
    except Exception as exc:
        out["crash"] = describe(exc)
    if "close" not in out and "not_applicable" not in out:
        out["close"] = step(3, lib.close).json()
    emit(out)
    os._exit(0)  # do not wait for atexit handlers of a library left in a bad state


# ---------------------------------------------------------------------------------------
# Parent side: one fresh interpreter per cell, and no process left behind.
# ---------------------------------------------------------------------------------------
def _default_sigint() -> None:
    signal.signal(signal.SIGINT, signal.SIG_DFL)


class Child:
    """One run of ``--child`` in a fresh interpreter, and every process it leaves."""

    def __init__(
        self, lib_key: str, scenario_key: str, new_session: bool = False, env: dict[str, str] | None = None
    ) -> None:
        self.marker = uuid.uuid4().hex
        self.workdir = Path(tempfile.mkdtemp(prefix="reliability-"))
        self.pidfile = self.workdir / "pids"
        self.started = time.time()
        env = {**os.environ, **(env or {})}
        env.update({RUN_ENV: self.marker, tasks.PIDFILE_ENV: str(self.pidfile)})
        env["PYTHONPATH"] = os.pathsep.join(filter(None, [str(HERE), env.get("PYTHONPATH")]))
        cmd = [sys.executable, str(Path(__file__).resolve()), "--child", lib_key, scenario_key]
        with open(self.workdir / "out", "wb") as out, open(self.workdir / "err", "wb") as err:
            # Files, not pipes: an orphaned worker holding a pipe would block the read.
            self.proc = subprocess.Popen(
                cmd,
                stdout=out,
                stderr=err,
                env=env,
                cwd=REPO,
                start_new_session=new_session,
                preexec_fn=_default_sigint if new_session else None,
            )
        self.ps = psutil.Process(self.proc.pid)
        self.shm_removed = 0

    def __enter__(self) -> Child:
        return self

    def __exit__(self, *exc_info: object) -> None:
        if self.proc.poll() is None:
            self.kill_tree()
        self.sweep()
        shutil.rmtree(self.workdir, ignore_errors=True)

    def wait(self, limit: float) -> float | None:
        """Seconds until the child exited, or None if it is still running after ``limit``."""
        t0 = time.monotonic()
        try:
            self.proc.wait(limit)
        except subprocess.TimeoutExpired:
            return None
        return time.monotonic() - t0

    def wait_for_pids(self, n: int, limit: float, suffix: str = "") -> list[int]:
        """The pids recorded in the pid file (or its ``suffix`` variant), once there are ``n`` of them."""
        deadline = time.monotonic() + limit
        while len(pids := read_pids(f"{self.pidfile}{suffix}")) < n and time.monotonic() < deadline:
            if self.proc.poll() is not None:
                break
            time.sleep(0.02)
        return pids

    def findings(self) -> dict[str, Any]:
        lines = (self.workdir / "out").read_text(errors="replace").splitlines()
        for line in reversed(lines):
            if line.startswith("{"):
                return json.loads(line)
        err = (self.workdir / "err").read_text(errors="replace").strip().splitlines()
        said = " | ".join(err[-3:])[:300]
        return {"crash": {"type": "no JSON from child", "message": f"rc {self.proc.returncode}; {said}"}}

    def processes(self) -> list[psutil.Process]:
        """Live processes of this run: same marker in their environment, created since it started."""
        found = []
        for proc in psutil.process_iter(["create_time"]):
            if (proc.info["create_time"] or 0) < self.started - 1 or proc.pid == os.getpid():
                continue
            try:
                if proc.environ().get(RUN_ENV) == self.marker and proc.status() != psutil.STATUS_ZOMBIE:
                    found.append(proc)
            except psutil.Error:
                continue
        return found

    def kill_tree(self) -> None:
        procs = [self.ps]
        try:
            procs += self.ps.children(recursive=True)
        except psutil.Error:
            pass
        _kill(procs)
        self.proc.wait()

    def sweep(self, grace: float = 2.0) -> int:
        """Give leftovers ``grace`` seconds to exit on their own (trackers clean up), then kill them."""
        deadline = time.monotonic() + grace
        while (left := self.processes()) and time.monotonic() < deadline:
            time.sleep(0.1)
        _kill(left)
        self.shm_removed += self.remove_shm()
        return len(left)

    def remove_shm(self) -> int:
        """Remove the /dev/shm entries named after the child's pid (joblib folders, loky semaphores)."""
        tags = (f"_{self.proc.pid}_", f"-{self.proc.pid}-")
        removed = 0
        for name in shm_entries():
            path = Path("/dev/shm", name)
            try:
                if not any(tag in name for tag in tags) or path.lstat().st_mtime < self.started - 1:
                    continue
                if path.is_dir() and not path.is_symlink():
                    shutil.rmtree(path)
                else:
                    path.unlink()
                removed += 1
            except OSError:
                continue
        return removed


def what(proc: psutil.Process) -> str:
    """A few words of a process's command line, to say what a leftover is."""
    try:
        cmd = proc.cmdline()
    except psutil.Error:
        return "?"
    if "-c" in cmd[:-1]:
        return cmd[cmd.index("-c") + 1][:90]  # python -c "from ... import main; main(...)"
    return " ".join([os.path.basename(cmd[0]), *cmd[1:]])[:90] if cmd else "?"


def _kill(procs: list[psutil.Process]) -> None:
    for proc in procs:
        try:
            proc.kill()  # psutil checks pid + create time, so a reused pid is never hit
        except psutil.Error:
            pass
    psutil.wait_procs(procs, timeout=3)


def drive_in_child(lib_key: str, scenario: Scenario) -> dict[str, Any]:
    with Child(lib_key, scenario.key, env=scenario.env) as child:
        if child.wait(scenario.limit) is None:
            child.kill_tree()
            out = {"hang": True, "limit": scenario.limit}
        else:
            out = child.findings()
        out["swept"] = child.sweep()
        out["shm_left"] = child.shm_removed
    return out


def live(pids: list[int]) -> list[psutil.Process]:
    return [proc for proc in map(process, pids) if is_alive(proc)]


def drive_parent_killed(lib_key: str, scenario: Scenario) -> dict[str, Any]:
    """SIGKILL the child while its 2 workers sleep 8 s; count the survivors at +2 s and +9 s."""
    with Child(lib_key, scenario.key) as child:
        workers = live(child.wait_for_pids(WORKERS, limit=20))
        out: dict[str, Any] = {"workers": len(workers)}
        if child.proc.poll() is not None:
            return {**out, **child.findings(), "victim_exited_early": child.proc.returncode}
        out.update(kill_and_watch(child, {"alive": workers}))
    return out


def drive_parent_forks(lib_key: str, scenario: Scenario) -> dict[str, Any]:
    """As scenario 5, once the child has forked a process that outlives it."""
    with Child(lib_key, scenario.key) as child:
        workers = live(child.wait_for_pids(WORKERS, limit=20))
        fork = live(child.wait_for_pids(1, limit=10, suffix=tasks.SURVIVOR))
        out: dict[str, Any] = {"workers": len(workers), "forks": len(fork)}
        if child.proc.poll() is not None:
            return {**out, **child.findings(), "victim_exited_early": child.proc.returncode}
        if not fork:
            return {**out, "harness_error": "the fork did not record its pid within 10 s"}
        out.update(kill_and_watch(child, {"alive": workers, "fork": fork}))
    return out


def drive_task_daemonizes(lib_key: str, scenario: Scenario) -> dict[str, Any]:
    """SIGKILL the child once both tasks' daemons exist; count daemons and workers at +2 s and +9 s."""
    with Child(lib_key, scenario.key) as child:
        workers = live(child.wait_for_pids(WORKERS, limit=20))
        daemons = live(child.wait_for_pids(WORKERS, limit=10, suffix=tasks.DAEMONS))
        out: dict[str, Any] = {"workers": len(workers), "daemons": len(daemons)}
        if child.proc.poll() is not None:
            return {**out, **child.findings(), "victim_exited_early": child.proc.returncode}
        out.update(kill_and_watch(child, {"alive": workers, "daemons": daemons}))
    return out


def kill_and_watch(child: Child, watched: dict[str, list[psutil.Process]]) -> dict[str, Any]:
    """SIGKILL the child; at each of PARENT_WATCH, count the live processes of each watched group
    (key ``{group}_{at}s``) and of the rest of the run (``others_{at}s``); then kill them all."""
    child.proc.kill()
    child.proc.wait()
    killed = time.monotonic()
    known = {proc.pid for group in watched.values() for proc in group}
    out: dict[str, Any] = {}
    for at in PARENT_WATCH:
        time.sleep(max(0.0, killed + at - time.monotonic()))
        for name, group in watched.items():
            out[f"{name}_{at}s"] = sum(map(is_alive, group))
        others = [p for p in child.processes() if p.pid not in known]
        out[f"others_{at}s"] = len(others)
        out.setdefault("others_what", sorted({what(p) for p in others}))
    # Watched ones first: orphaned resource trackers then clean up /dev/shm and exit by themselves.
    _kill([proc for group in watched.values() for proc in group])
    out["swept"] = child.sweep(grace=3)
    out["shm_left"] = child.shm_removed
    return out


def drive_ctrl_c(lib_key: str, scenario: Scenario) -> dict[str, Any]:
    """Ctrl-C as a terminal sends it: SIGINT to the child's whole process group, mid-map."""
    with Child(lib_key, scenario.key, new_session=True) as child:
        pids = child.wait_for_pids(WORKERS, limit=20)
        out: dict[str, Any] = {"workers": len(pids)}
        if child.proc.poll() is not None:
            return {**out, **child.findings(), "victim_exited_early": child.proc.returncode}
        time.sleep(0.5)
        os.killpg(child.proc.pid, signal.SIGINT)  # its own group: start_new_session=True
        exited = child.wait(30)
        out.update(exit_seconds=exited, returncode=child.proc.returncode)
        if exited is None:
            child.kill_tree()
        time.sleep(1.0)
        out["left_after_1s"] = len(child.processes())
        out["swept"] = child.sweep(grace=0)
        out["shm_left"] = child.shm_removed
    return out


# ---------------------------------------------------------------------------------------
# Cells: what one run's findings say, in a few words.
# ---------------------------------------------------------------------------------------
def plural(n: int, one: str, many: str | None = None) -> str:
    return f"{n} {one if n == 1 else many or one + 's'}"


def secs(x: float | None) -> str:
    return "-" if x is None else f"{x:.2f} s"


def pool_after(reuse: dict[str, Any] | None, workers: bool = False) -> str:
    if reuse is None:
        return "pool not checked"
    if reuse["status"] == "ok":
        return f"pool OK ({reuse['workers']} worker{'s' * (reuse['workers'] != 1)})" if workers else "pool OK"
    if reuse["status"] == "hang":
        return "pool then hangs"
    if reuse["status"] == "wrong":
        return f"same pool then returned wrong results {reuse['values']} for [0, 1, 4, 9]"
    return f"pool broken ({(reuse['error'] or {}).get('type', '?')})"


def unfinished(out: dict[str, Any], needs: str = "run", last: str = "reuse") -> str | None:
    """The cell for a child that hung, crashed or never got to its main step (``needs``) or last one."""
    if out.get("hang"):
        return f"**hang** (child killed after {out['limit']:.0f} s)"
    if out.get("incomplete") and last not in out:
        return "**hang** (a step could not be interrupted; child exited by its emergency timer)"
    if needs not in out:
        crash = out.get("crash") or {}
        return f"harness: {crash.get('type', 'no result')} {crash.get('message', '')}".strip()
    return None


def render_fault(out: dict[str, Any]) -> str:
    """Scenarios 1, 3, 6: the result iterator, the pool afterwards, and the list-returning map."""
    cell = unfinished(out) or render_iterator(out["run"], out["reuse"])
    listed = out.get("map")
    if listed is None:
        return cell
    if listed["status"] == "hang":
        said = f"hang >{listed['seconds']:.0f} s"
    elif listed["status"] == "error":
        said = f"raises {listed['error']['type']} ({secs(listed['seconds'])})"
    else:
        said = f"returns {listed['returned']} results ({secs(listed['seconds'])})"
    return f"{cell}<br>list `map`: {said}"


def render_iterator(run: dict[str, Any], reuse: dict[str, Any]) -> str:
    delivered = f"{run['others_ok']}/{run['others']} others"
    after = pool_after(reuse)
    if run["status"] == "hang":
        return f"**hang** >{run['seconds']:.0f} s<br>{delivered} before; {after}"
    fault = run["fault_error"]
    if fault and run["others_ok"] == run["others"] and reuse["status"] == "ok":
        return f"**recovered** {secs(run['seconds'])}<br>{fault['type']}; {delivered}; {after}"
    if run["first_error"] is None:
        return f"no error {secs(run['seconds'])}<br>{delivered}; {after}"
    return f"error: {run['first_error']['type']} {secs(run['seconds'])}<br>{delivered}; {after}"


def render_raises(out: dict[str, Any]) -> str:
    cell = render_fault(out)
    run = out.get("run") or {}
    fault = run.get("fault_error") or run.get("first_error")
    if fault:
        kept = "yes" if fault["type"] == "ValueError" else f"no ({fault['type']})"
        in_tb = "yes" if fault["func_in_traceback"] else "no"
        ansi = " (ANSI colour codes)" if fault["ansi_in_traceback"] else ""
        cell += f"<br>ValueError kept: {kept}; function in traceback: {in_tb}{ansi}"
    return cell


def render_lambda(out: dict[str, Any]) -> str:
    if (early := unfinished(out)) is not None:
        return early
    run = out["run"]
    if run["status"] == "hang":
        return f"**hang** >{run['seconds']:.0f} s"
    if run["n_errors"] == 0 and run["others_ok"] == run["others"]:
        return f"works {secs(run['seconds'])}"
    return f"error: {run['first_error']['type']} {secs(run['seconds'])}"


def render_timeout(out: dict[str, Any]) -> str:
    if (early := unfinished(out)) is not None:
        return early
    run, reuse = out["run"], out["reuse"]
    worker = "stuck worker killed" if out["stuck_alive_after_1s"] == 0 else "stuck worker still running"
    tail = f"{worker}; 4 more tasks: {pool_after(reuse, workers=True)}"
    if run["status"] == "hang":
        return f"**hang** >{run['seconds']:.0f} s<br>{tail}"
    if run["status"] == "ok":
        return f"returned?! {secs(run['seconds'])}<br>{tail}"
    name = run["error"]["type"]
    recovered = name in TIMEOUT_NAMES and out["stuck_alive_after_1s"] == 0 and reuse["status"] == "ok"
    head = "**recovered**" if recovered else "error:"
    return f"{head} {name} at {secs(run['seconds'])}<br>{tail}"


def victim_trouble(out: dict[str, Any]) -> str | None:
    """The cell for a parent-driven run whose victim did not get to the kill."""
    if "victim_exited_early" in out:
        return f"harness: victim exited early (rc {out['victim_exited_early']})"
    if "harness_error" in out:
        return f"harness: {out['harness_error']}"
    return None


def render_parent_killed(out: dict[str, Any]) -> str:
    if (trouble := victim_trouble(out)) is not None:
        return trouble
    n = out["workers"]
    return (
        f"{out['alive_2s']}/{n} workers alive at +2 s<br>{out['alive_9s']}/{n} at +9 s; "
        f"other processes: {out['others_2s']} at +2 s, {out['others_9s']} at +9 s"
    )


def render_parent_forks(out: dict[str, Any]) -> str:
    cell = render_parent_killed(out)
    if victim_trouble(out) is None and out["fork_9s"] != out["forks"]:
        cell += f"<br>(the fork itself died: {out['fork_9s']}/{out['forks']} alive at +9 s)"
    return cell


def render_daemons(out: dict[str, Any]) -> str:
    if (trouble := victim_trouble(out)) is not None:
        return trouble
    d, w = out["daemons"], out["workers"]
    return (
        f"{out['daemons_2s']}/{d} daemons alive at +2 s<br>{out['daemons_9s']}/{d} at +9 s; "
        f"workers: {out['alive_2s']}/{w} at +2 s, {out['alive_9s']}/{w} at +9 s; "
        f"other processes: {out['others_2s']}, {out['others_9s']}"
    )


def said(result: dict[str, Any], limit: float = CALLBACK_LIMIT) -> str:
    """A step's outcome in a few words: "ok 0.01 s", "hang >10 s", "TypeError 0.2 s"."""
    status = result["status"]
    if status == "hang":
        return f"**hang** >{limit:.0f} s"
    if status == "error":
        return f"{result['error']['type']} {secs(result['seconds'])}"
    if status == "wrong":
        value = result.get("value")
        return "**wrong results**" if value is None else f"wrong value {value!r}"
    if status == "callback not run":
        return f"**callback not run** in {limit:.0f} s"
    return f"{status} {secs(result.get('seconds'))}"


def render_callback(out: dict[str, Any]) -> str:
    if out.get("not_applicable"):
        return "n/a (no callback on a result; see the notes)"
    if (early := unfinished(out, needs="outer", last="close")) is not None:
        return early
    parts = [out["outer"], out["inner"], out["later"], out["close"]]
    statuses = {part["status"] for part in parts}
    if statuses == {"ok"}:
        head = "**works**"
    else:
        head = "**hang**" if statuses & {"hang", "callback not run"} else "error"
    return (
        f"{head}<br>outer result: {said(out['outer'])}; inner: {said(out['inner'])}<br>"
        f"later call: {said(out['later'])}; close: {said(out['close'])}"
    )


def render_init_hangs(out: dict[str, Any]) -> str:
    if (early := unfinished(out, last="close")) is not None:
        return early
    run = out["run"]
    if run["status"] == "hang":
        head = "**hang** >12 s"
    elif run["status"] == "ok":
        head = f"returned {run['value']!r}?! {secs(run['seconds'])}"
    else:
        head = f"{run['error']['type']} at {secs(run['seconds'])}"
    return (
        f"{head}<br>close: {said(out['close'])}; 2 s later: {out['workers_left']}/{out['workers']} workers, "
        f"{out['others_left']} other processes"
    )


def render_interrupt_fuzz(out: dict[str, Any]) -> str:
    if (early := unfinished(out, last="close")) is not None:
        return early
    run = out["run"]
    counts = f"{run.get('done', 0)} done, {run.get('interrupted', 0)} interrupted"
    others = sum(n for key, n in run.items() if key.startswith("other: "))
    if others or run.get("wrong"):
        counts += f", {plural(others, 'other error')}, {run.get('wrong', 0)} wrong"
    if run.get("stopped_at_processes"):
        head = (
            f"**stopped** after {run['started']} calls: {run['stopped_at_processes']} processes alive "
            f"(cap {FUZZ_PROCESS_CAP})"
        )
    elif run["status"] == "hang":
        stuck = run["stalled"] >= 5
        head = (
            f"**hang** in call {run['started']} of {FUZZ_CALLS}"
            if stuck
            else f"**slow**: {run['started']} of {FUZZ_CALLS} calls in {FUZZ_LIMIT:.0f} s"
        )
    elif run["status"] == "error":
        head = f"error: {run['error']['type']} after {run['started']} calls"
    else:
        head = f"{FUZZ_CALLS:,} calls in {secs(run['seconds'])}"
    map_said = "right" if out["map"]["status"] == "ok" else said(out["map"])
    control = out["control"]["map"]
    if control["status"] != "ok":
        map_said += f" (without interrupts too: {said(control)})"
    return f"{head}<br>{counts}<br>then 100-item map: {map_said}; close: {said(out['close'])}"


def render_ctrl_c(out: dict[str, Any]) -> str:
    if "victim_exited_early" in out:
        return f"harness: victim exited early (rc {out['victim_exited_early']})"
    if out["exit_seconds"] is None:
        return "**hang** (no exit 30 s after SIGINT)"
    exited = f"exit after {secs(out['exit_seconds'])} (rc {out['returncode']})"
    return f"{exited}<br>{out['left_after_1s']} processes left at +1 s"


# ---------------------------------------------------------------------------------------
# Scenarios and the report.
# ---------------------------------------------------------------------------------------
@dataclass
class Scenario:
    key: str
    title: str
    body: Callable[[Adapter, dict], None]
    render: Callable[[dict], str]
    limit: float  # hard limit for the child, seconds
    drive: Callable[[str, Scenario], dict] = drive_in_child
    victim: bool = False
    method: str = ""
    env: dict[str, str] = field(default_factory=dict)  # more environment for the child


SCENARIO_LIST = [
    Scenario(
        "1",
        "1. worker SIGKILLed (item 7 of 20)",
        body_worker_killed,
        render_fault,
        50,
        method="20 tasks of 50 ms; the task for item 7 does `os.kill(os.getpid(), 9)`. Time = until the "
        "result iterator is drained (limit 12 s); then the same pool object runs 4 small tasks.",
    ),
    Scenario(
        "2",
        "2. task hangs (2 s timeout)",
        body_task_hangs,
        render_timeout,
        40,
        method="one task does `time.sleep(3600)`, with the library's per-task timeout of 2 s where it has "
        "one, else `get/result(timeout=2)`. Time = until the call raises (limit 12 s). The stuck "
        "worker's pid (written by the task) is checked 1 s later; then the pool runs 4 small tasks and "
        "we count the distinct worker pids that served them.",
    ),
    Scenario(
        "3",
        "3. task raises ValueError (item 3 of 6)",
        body_task_raises,
        render_raises,
        45,
        method="the task raises `ValueError` for item 3 of 6. Kept = the exception caught is a "
        "`ValueError`; function in traceback = `fail_on_3` appears in "
        "`traceback.format_exception(exc)` (the remote traceback is chained as `__cause__`).",
    ),
    Scenario(
        "4",
        "4. lambda as the task",
        body_lambda,
        render_lambda,
        30,
        method="`PLUS_ONE = lambda x: x + 1` at module level in the calling script (`__main__`), "
        "mapped over 4 items.",
    ),
    Scenario(
        "5",
        "5. parent SIGKILLed (2 x 8 s tasks)",
        victim_parent_killed,
        render_parent_killed,
        0,
        drive=drive_parent_killed,
        victim=True,
        method="the calling process maps 2 tasks of `time.sleep(8)`; once both tasks have written their "
        "pid, it is SIGKILLed. Counts: those 2 workers still alive 2 s and 9 s later (the tasks would "
        "end about 8 s after they started), and any other process of the run (forkserver, resource "
        "trackers).",
    ),
    Scenario(
        "6",
        "6. unpicklable result (item 2 of 6)",
        body_unpicklable,
        render_fault,
        50,
        method="the task returns `threading.Lock()` for item 2 of 6 (limit 10 s), then the pool runs "
        "4 small tasks.",
    ),
    Scenario(
        "7",
        "7. Ctrl-C in the `with` block (20 x 1 s)",
        victim_ctrl_c,
        render_ctrl_c,
        0,
        drive=drive_ctrl_c,
        victim=True,
        method="the calling process (own session, SIGINT at its default) maps 20 tasks of "
        "`time.sleep(1)` inside the library's `with` block; 0.5 s after both workers have started a "
        "task, SIGINT goes to its whole process group, as Ctrl-C in a terminal does. Time = until "
        "it exits (rc -2 = killed by SIGINT through an uncaught KeyboardInterrupt); then its "
        "processes still alive 1 s later.",
    ),
    Scenario(
        "8",
        "8. parent forks, then is SIGKILLed",
        victim_parent_forks,
        render_parent_forks,
        0,
        drive=drive_parent_forks,
        victim=True,
        method="as 5 (2 tasks of `time.sleep(8)`, the calling process SIGKILLed, survivors counted at "
        "+2 s and +9 s), but once both tasks run, a thread of the calling process does `os.fork()` and "
        "the fork sleeps 60 s: it outlives the parent, with every descriptor the parent held at the "
        "fork. The fork is not counted among the other processes (a line says so if it died). Among "
        "those descriptors is the write end of the pipe to the stdlib's resource tracker, where there is "
        "one: that tracker then lives as long as the fork, by design.",
    ),
    Scenario(
        "9",
        "9. task daemonizes, parent SIGKILLed",
        victim_task_daemonizes,
        render_daemons,
        0,
        drive=drive_task_daemonizes,
        victim=True,
        method="each of 2 tasks starts a daemon the classic way (`fork`, `setsid`, `fork`; the middle "
        "process exits; the daemon keeps the descriptors it inherited, records its pid and sleeps "
        "3600 s), then sleeps 8 s; the calling process is SIGKILLed once both daemons exist. Counts "
        "at +2 s and +9 s: the 2 daemons, the 2 workers, the run's other processes.",
    ),
    Scenario(
        "10",
        "10. callback calls the same pool",
        body_callback_reenters,
        render_callback,
        50,
        method="the library's callback on one result (`square(3)`) makes the library's blocking call "
        "on the same pool (`square(9)`) and stores it. The outer result (the caller's blocking wait "
        "for `square(3)`) and the inner one must both come within 10 s of the submit; then a later "
        "blocking call (`square(5)`) and the close each get 10 s. *works*: all four ok; *hang*: "
        "one of them did not finish in its 10 s.",
    ),
    Scenario(
        "11",
        "11. initializer never returns",
        body_init_hangs,
        render_init_hangs,
        45,
        method="the workers' initializer does `time.sleep(3600)`; one call with the per-task "
        "timeout of 2 s as in 2 (limit 12 s). Shown: what the caller got and when; then the close "
        "(limit 10 s) and, 2 s after it, the workers (pids written by the initializer) and the "
        "other processes of the child still alive. The cell runs with `FORKLIFT_INIT_TIMEOUT=3` in "
        "its environment (read by forklift only; its default is 60 s): forklift bounds a worker's "
        "start only when the pool or the call has a timeout, and then by that setting.",
        env=INIT_TIMEOUT_ENV,
    ),
    Scenario(
        "12",
        "12. Ctrl-C at random moments",
        body_interrupt_fuzz,
        render_interrupt_fuzz,
        FUZZ_LIMIT + 50,
        method=f"a SIGALRM handler fires every 0.2-10 ms (random, seed {FUZZ_SEED}) and raises "
        f"`KeyboardInterrupt` in the main thread while it is armed, at most once per call; the main "
        f"thread makes {FUZZ_CALLS:,} blocking calls `square(i)` (the library's simplest, see the "
        f"calls above), each armed, catching `KeyboardInterrupt` and going on (limit "
        f"{FUZZ_LIMIT:.0f} s). *hang*: no call ended in the last 5 s before the limit; *slow*: calls "
        f"still ended, but not all in time; *stopped*: every 50 calls the child counts its live "
        f"descendants and stops the loop past {FUZZ_PROCESS_CAP} (the machine is shared: a library "
        f"that leaves processes behind on every interrupted call would start hundreds). Then, timer "
        f"off, a 100-item list `map` must return the right results and the close must return (10 s "
        f"each). Before all this, on a pool of its own, the child makes one call and the same map "
        f"without interrupts, as a control. This is a race: a rerun gives other counts and, for some "
        f"libraries, another outcome.",
    ),
]
SCENARIOS = {s.key: s for s in SCENARIO_LIST}


def run_all(lib_keys: list[str], scenario_keys: list[str]) -> dict[str, dict[str, dict]]:
    results: dict[str, dict[str, dict]] = {}
    for key in lib_keys:
        for s in scenario_keys:
            t0 = time.monotonic()
            before = revision() if key in FORKLIFT_KEYS else None
            out = SCENARIOS[s].drive(key, SCENARIOS[s])
            out["wall"] = round(time.monotonic() - t0, 2)
            if before is not None:  # the checkout is shared: say which sources each cell ran
                after = revision()
                out["revision"] = before if after == before else f"{before}, then {after} (changed mid-cell)"
            results.setdefault(key, {})[s] = out
            cell = SCENARIOS[s].render(out).replace("<br>", "; ")
            print(
                f"[{time.monotonic() - T_START:6.1f} s] {ADAPTERS[key].label} x {s}: {cell}", file=sys.stderr
            )
    return results


def versions() -> str:
    found = [f"Python {platform.python_version()}"]
    for name in ("forklift", "loky", "mpire", "pebble", "joblib", "cloudpickle", "psutil"):
        try:
            found.append(f"{name} {metadata.version(name)}")
        except metadata.PackageNotFoundError:
            found.append(f"{name} (not installed)")
    return ", ".join(found)


def start_methods(results: dict[str, dict[str, dict]]) -> str:
    methods = []
    for key in results:
        method = results[key].get("1", {}).get("start_method") or "not recorded (scenario 1 records it)"
        methods.append(f"{ADAPTERS[key].label}: {method}")
    return "; ".join(methods)


TABLE_WIDTH = 7  # scenarios per table: 12 columns side by side would not read


def render_table(results: dict[str, dict[str, dict]], scenario_keys: list[str]) -> str:
    header = ["library", *(SCENARIOS[s].title for s in scenario_keys)]
    rows = [
        [f"**{ADAPTERS[key].label}**", *(SCENARIOS[s].render(results[key][s]) for s in scenario_keys)]
        for key in results
    ]
    return "\n".join("| " + " | ".join(cells) + " |" for cells in [header, ["---"] * len(header), *rows])


def render_report(results: dict[str, dict[str, dict]], scenario_keys: list[str], meta: dict[str, str]) -> str:
    groups = [scenario_keys[i : i + TABLE_WIDTH] for i in range(0, len(scenario_keys), TABLE_WIDTH)]
    tables = "\n\n".join(render_table(results, group) for group in groups)
    calls = "\n".join(f"  - {ADAPTERS[key].label}: {ADAPTERS[key].calls}" for key in results)
    methods = "\n".join(f"  - {SCENARIOS[s].title}: {SCENARIOS[s].method}" for s in scenario_keys)
    extras = observations(results)
    names = ", ".join(ADAPTERS[key].label for key in results)
    return f"""# Reliability: the same faults on {len(results)} process pools

The same faults (a worker killed, a task that never returns, a task that raises, a lambda, the
parent killed, a result that cannot be pickled, Ctrl-C; then the parent killed after it forked, a
task that starts a daemon, a callback that calls its own pool, an initializer that never returns,
Ctrl-C at random moments) thrown at {names}; PPE is `concurrent.futures.ProcessPoolExecutor`.
Each library runs two workers with its default start method. Every cell comes from a fresh
interpreter started by `benchmarks/reliability.py` under a hard time limit, and nothing in the
tables is copied from elsewhere. Each cell is one run; some of these faults are races, so a rerun
can differ.

- Date: {meta["date"]}
- Machine: {meta["machine"]}
- forklift cells: {meta["revision"]} (the last commit that changed it)
- Versions: {meta["versions"]}
- Start methods: {meta["start_methods"]}
- Command (from the repository root): `{meta["command"]}`
- Total run time: {meta["total"]}

{tables}

**Reading a cell.** Scenarios 1, 3 and 6 make two calls, each on a fresh pool. The first lines are
the ordered result iterator, read with `next()` until it ends, which is the most a caller can get
after one item failed. *recovered*: only the faulty item failed (its exception type is shown),
every other result came back correct ("others"), and the same pool object then ran 4 more tasks
("pool OK"). *error: T*: the first exception the caller saw, how many other results came, and the
state of the pool. *hang*: no answer within the step's limit. The "list `map`" line is the call
that returns the whole list, on its own fresh pool. In scenario 2, *recovered* means a timeout
error, the stuck worker gone 1 s later, and 4 more tasks run; "(n workers)" is how many distinct
workers served those 4. Times run from the call to its last result or exception.

Scenarios 5, 8 and 9 count processes still running (zombies do not count) 2 s and 9 s after the
calling process was SIGKILLed. The tasks would end by themselves about 8 s after they started, so
a worker alive at +9 s did not exit when its task ended; a daemon alive at +9 s lives on for its
hour. "Other processes" are the rest of the run's processes, such as a fork server or a resource
tracker (named in the details); in 8 the fork itself is left out.

Scenario 10: *works* means the outer and the inner results, a later call and the close all came
back right within 10 s each; *hang*: one of them did not (the parts say which). Scenario 11: what
the caller got and when, then the close, and what was still running 2 s after it ("other
processes" are helpers that live as long as the interpreter: fork server, resource trackers,
forklift's watcher).
Scenario 12: how many of the 5,000 calls returned the right value ("done") or raised
`KeyboardInterrupt` ("interrupted"); *hang*: the loop stopped making progress; *stopped*: more
processes than the cap were alive; then the 100-item list `map` on the same pool and the close.
"(without interrupts too: ...)" means the same map also failed after one uninterrupted call on a
fresh pool of its own, so that failure is not the interrupts' doing.

**Notes**

- The calls, per library:
{calls}
- How each scenario is run:
{methods}
- Harness: each cell is a fresh `python benchmarks/reliability.py --child LIB SCENARIO`. A hung
  step is interrupted by SIGUSR1 to the child's main thread, which may leave the library in an odd
  state for the steps after it. After every run, all processes that carry the run's environment
  marker are killed (pid and create time checked); `--json` keeps that count and the raw findings.
  Entries in /dev/shm named after the child's pid are removed too (the details count them).
{extras}"""


CLOSE_IN_CELL = ("10", "11", "12")  # scenarios whose cell shows the close itself


def new_details(s: str, out: dict[str, Any]) -> list[str]:
    """The details of scenarios 10-12 (and of the harness's /dev/shm clean-up) that cells leave out."""
    lines = []
    if out.get("not_applicable"):
        lines.append(f"n/a: {out['not_applicable']}")
    if (inner := out.get("inner")) and inner.get("ran_in"):
        error = inner.get("error")
        raised = f"; it raised `{error['type']}: {error['message'][:100]}`" if error else ""
        lines.append(f"the callback ran in thread `{inner['ran_in']}`{raised}")
    for key, n in (out.get("run") or {}).items():
        if key.startswith("other: "):
            lines.append(f"{plural(n, 'call')} raised `{key.removeprefix('other: ')}`")
    for name in ("map", "later"):
        error = (out.get(name) or {}).get("error") if s in ("10", "12") else None
        if error:
            lines.append(f"the {name} raised `{error['module']}.{error['type']}: {error['message'][:100]}`")
    control = (out.get("control") or {}).get("map") or {}
    if control.get("error"):
        error = control["error"]
        lines.append(
            f"without interrupts, the map after one call raised `{error['module']}.{error['type']}: "
            f"{error['message'][:100]}`"
        )
    if out.get("shm_left"):
        lines.append(
            f"{plural(out['shm_left'], 'entry', 'entries')} left in /dev/shm under the child's pid "
            "(removed by the harness)"
        )
    return lines


def observations(results: dict[str, dict[str, dict]]) -> str:
    """Short facts from the findings that the cells leave out."""
    lines = []
    for key, by_scenario in results.items():
        label = ADAPTERS[key].label
        for s, out in by_scenario.items():
            run = out.get("run") or {}
            err = run.get("fault_error") or run.get("first_error") or run.get("error")
            if err and s in ("1", "2", "6", "11"):
                lines.append(f"  - {label}, {s}: `{err['module']}.{err['type']}: {err['message'][:120]}`")
            lines += [f"  - {label}, {s}: {line}" for line in new_details(s, out)]
            close = out.get("close") or {}
            if close and close.get("status") != "ok" and s not in CLOSE_IN_CELL:
                detail = (close.get("error") or {}).get("type", "")
                lines.append(
                    f"  - {label}, {s}: closing the pool afterwards: {close['status']} {detail}".rstrip()
                )
            if out.get("others_what"):
                lines.append(f"  - {label}, {s}: the other processes: `{'`, `'.join(out['others_what'])}`")
            if out.get("incomplete"):
                lines.append(f"  - {label}, {s}: a step could not be interrupted; findings are partial")
    if not lines:
        return ""
    return "- Details, as measured:\n" + "\n".join(lines) + "\n"


FORKLIFT_KEYS = ("forklift", "forklift-executor")


def revision() -> str:
    """The last commit that changed forklift's sources (src/), and whether they differ from it now."""
    try:
        git = ["git", "-C", str(REPO)]
        last = subprocess.run(
            [*git, "log", "-1", "--format=%h", "--", "src"], capture_output=True, text=True, timeout=10
        )
        dirty = subprocess.run(
            [*git, "status", "--porcelain", "--", "src"], capture_output=True, text=True, timeout=10
        )
    except (OSError, subprocess.SubprocessError):
        return "unknown (no git)"
    if last.returncode != 0:
        return "unknown (not a git checkout)"
    return last.stdout.strip() + (" with uncommitted changes" if dirty.stdout.strip() else "")


def forklift_revisions(results: dict[str, dict[str, dict]]) -> str:
    """Which sources the forklift cells ran: one revision, or each one with its cells."""
    cells: dict[str, list[str]] = {}
    for key in FORKLIFT_KEYS:
        for s, out in results.get(key, {}).items():
            cells.setdefault(out.get("revision", "not recorded"), []).append(f"{ADAPTERS[key].label} {s}")
    if not cells:
        return "not run"
    if len(cells) == 1:
        return f"src/ at {next(iter(cells))}"
    listed = "; ".join(f"{rev}: {', '.join(where)}" for rev, where in cells.items())
    return f"src/ changed during the run: {listed}"


def machine() -> str:
    return (
        f"{os.cpu_count()} CPUs (nproc {len(os.sched_getaffinity(0))}), {platform.system()} "
        f"{platform.release()}, 1-min load average at start {os.getloadavg()[0]:.2f}"
    )


def shm_entries() -> set[str]:
    """Named semaphores and folders in /dev/shm: a killed library may leave its own behind."""
    try:
        return set(os.listdir("/dev/shm"))
    except OSError:
        return set()


def parse_args(argv: list[str]) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument(
        "--libs", default=",".join(ADAPTERS), help=f"comma-separated, from: {','.join(ADAPTERS)}"
    )
    parser.add_argument("--scenarios", default=",".join(SCENARIOS), help="comma-separated, from 1-12")
    parser.add_argument("--out", default="docs/reliability.md", help="markdown file to write")
    parser.add_argument("--json", help="also write the raw findings here")
    parser.add_argument("--child", nargs=2, metavar=("LIB", "SCENARIO"), help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    args.libs = args.libs.split(",")
    args.scenarios = args.scenarios.split(",")
    for name, known in (("libs", ADAPTERS), ("scenarios", SCENARIOS)):
        unknown = set(getattr(args, name)) - set(known)
        if unknown:
            parser.error(f"unknown {name}: {', '.join(sorted(unknown))}")
    return args


def command_line(argv: list[str]) -> str:
    python = os.path.relpath(sys.executable, REPO) if sys.executable.startswith(str(REPO)) else "python"
    return shlex.join([python, os.path.relpath(Path(__file__).resolve(), REPO), *argv])


T_START = time.monotonic()


def main(argv: list[str]) -> None:
    args = parse_args(argv)
    if args.child:
        child_main(*args.child)
        return
    meta = {
        "date": dt.datetime.now().astimezone().strftime("%Y-%m-%d %H:%M %Z"),
        "machine": machine(),
        "versions": versions(),
        "command": command_line(argv),
    }
    shm_before = shm_entries()
    results = run_all(args.libs, args.scenarios)
    if new := sorted(shm_entries() - shm_before):
        print(f"note: new in /dev/shm since the start (ours, or another user's): {new}", file=sys.stderr)
    total = time.monotonic() - T_START
    meta["total"] = f"{total:.0f} s"
    meta["machine"] += f", at end {os.getloadavg()[0]:.2f} (the machine is shared)"
    meta["revision"] = forklift_revisions(results)
    meta["start_methods"] = start_methods(results)
    out = REPO / args.out if not os.path.isabs(args.out) else Path(args.out)
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(render_report(results, args.scenarios, meta))
    if args.json:
        Path(args.json).write_text(json.dumps(results, indent=1))
    print(f"wrote {out} in {total:.0f} s", file=sys.stderr)


if __name__ == "__main__":
    main(sys.argv[1:])

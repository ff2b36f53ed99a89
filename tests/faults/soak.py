"""A randomized fault soak of forklift.Pool and forklift.Executor.

usage: soak.py [--seconds S] [--seed N] [--start-method M] [--journal] [--epoch-seconds E]
               [--kill-every S] [--cancel-every S] [--interrupt-rate P] [--lock-every S]
               [--hang-seconds S] [--max-procs N]

One process runs a seeded schedule of calls (map, map_async, imap, imap_unordered, apply,
apply_async, submit, Executor.map; some with ``timeout=`` and ``retries=``, some over a lazy
generator) against one ``Pool(2)`` and one ``Executor(2)`` per *epoch* (``--epoch-seconds``;
a short run is one epoch), while other threads attack them:

- the chaos thread SIGKILLs a random worker (one that has returned a result: a worker killed
  before it is ready counts towards "workers died before they were ready", a BrokenPoolError
  the contract promises) and cancels a random pending Executor future;
- Ctrl-C: about a third of the calls are armed with a timer (``setitimer``, SIGALRM) that
  fires at a random moment, from the first microseconds of the call (inside forklift's
  submission code) to tens of milliseconds in; its handler raises KeyboardInterrupt. A timer,
  not a thread sending SIGINT: a thread needs the GIL to send, so it could only land where
  the main thread lets the GIL go (every 5 ms at best);
- the lock thread (``--journal``) holds the journals' SQLite write lock from its own
  connection (BEGIN IMMEDIATE ... COMMIT) for random spans, all shorter than forklift's busy
  timeout; the pool, the executor and some maps (``journal=``, ``resume=True``) record there;
- at the end of each epoch the closer thread closes or terminates the pool and shuts down
  (wait, no wait, cancel_futures) or terminates the executor while the main thread goes on
  calling them.

Interrupts land only inside forklift calls: the SIGALRM handler (:class:`Gate`) raises
KeyboardInterrupt only while the main thread is inside :meth:`Soak.call`, between arming and
disarming around the forklift call; the bookkeeping never runs armed. Outcomes of futures and
AsyncResults are recorded by done-callbacks / callbacks (which run on forklift's callbacks
thread), so a wait cut short by an interrupt still has its future checked.

Every outcome must be allowed (anything else is a *finding*, printed with its traceback):

- the right value for its item (the task returns ``(key, hash(key), pid)``); a map or an
  ordered stream in input order, an unordered stream each item once; a stream that ends
  quietly short is a finding;
- ``SoakError(key)`` for the item that raises it (the task's own exception);
- ``TaskTimeout`` only in a call with a timeout, blamed on the item that sleeps past it;
- ``WorkerLostError`` only naming a worker the chaos thread SIGKILLed (exit code -9), in a
  call whose retries the kills since it started could exhaust; one killed worker is blamed
  for at most one item (and a timed-out worker for one);
- ``CancelledError`` only for a future the chaos thread cancelled, or after
  ``shutdown(cancel_futures=True)``;
- ``KeyboardInterrupt`` only where the gate raised one, and every raised one must come out of
  the call (unless Python swallowed it in a ``__del__``, which is counted apart);
- after the closer acted: "Pool not running" (ValueError) from a Pool call, "cannot schedule
  new futures after shutdown" (RuntimeError) from an Executor call, BrokenPoolError "the pool
  was terminated" / "shut down", and "shut down before this map read all of its input" from
  an Executor.map after a shutdown that stops inputs; none of these for a call whose handle
  came back before the closer acted on a close / waiting shutdown.

At the end: no child process is left (but multiprocessing's fork server and resource
tracker), no worker ever seen is alive, and the open fds and threads are back to their count
after a warm-up pool of the same kind. Prints one JSON line of counts.

So is anything forklift logs at WARNING or above (say, a journal it could not write).

What it found so far (each fixed, with a regression test in tests/test_journal.py): a
call's own journal left open by a Ctrl-C or by a close() racing it; a Ctrl-C during a flush
leaving a transaction open; a resumed map racing terminate() getting a raw sqlite3 error.

Exit status: 0 no finding, 1 findings, 2 a hang (a call, a wait or a shutdown stuck past
``--hang-seconds``, or more than ``--max-procs`` descendant processes: every thread's stack
and each engine's state go to stderr). As a last resort,
``faulthandler.dump_traceback_later(seconds + 30 + hang seconds)`` dumps the stacks and exits.
"""

from __future__ import annotations

import argparse
import collections
import concurrent.futures as cf
import faulthandler
import gc
import itertools
import json
import logging
import multiprocessing
import os
import random
import re
import shutil
import signal
import sqlite3
import sys
import tempfile
import threading
import time
import traceback
from concurrent.futures._base import CANCELLED, CANCELLED_AND_NOTIFIED
from dataclasses import dataclass, field
from typing import Any

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))  # tests/

import psutil

import forklift
from forklift import BrokenPoolError, TaskTimeout, WorkerLostError
from soak_tasks import FAIL, HANG, SoakError, expected, work

OK, INTERRUPTED, ERROR, CANCELLED_ = "ok", "interrupted", "error", "cancelled"
_TASK = re.compile(r"\btask (\d+) of ")
_WORKER = re.compile(r"\bworker (\d+)\b")
NOT_RUNNING = "Pool not running"
AFTER_SHUTDOWN = "cannot schedule new futures after shutdown"
CUT_SHORT = "shut down before this map read all of its input"
POOL_STOPS = ("close", "terminate")
EXECUTOR_STOPS = ("shutdown", "shutdown-nowait", "shutdown-cancel", "terminate")
STOPS_INPUT = ("shutdown-nowait", "shutdown-cancel")
ROUNDS = {  # kind of round: weight
    "map": 14,
    "map_async": 6,
    "imap": 10,
    "imap_unordered": 10,
    "apply": 5,
    "apply_async": 12,
    "submit": 16,
    "executor_map": 12,
}
ORDERED = ("map", "map_async", "imap", "executor_map")  # an error's "task N" is the input index


@dataclass
class Call:
    """One forklift call (or one batch of apply_async / submit calls) and what it was asked."""

    kind: str
    face: str  # "pool" or "executor"
    items: list[tuple[int, int]]
    timeout: float | None
    retries: int
    kills_before: int  # kills of this face's workers when the call was made
    epoch: int
    resume: bool = False  # a journaled map that resumes: "task N" counts the items it ran
    by_key: dict[int, tuple[int, int]] = field(default_factory=dict)

    def __post_init__(self) -> None:
        self.by_key = {item[0]: item for item in self.items}

    def describe(self) -> str:
        hang = sum(1 for _, ms in self.items if ms == HANG)
        fail = sum(1 for _, ms in self.items if ms == FAIL)
        return (
            f"{self.face}.{self.kind} epoch {self.epoch}: {len(self.items)} items "
            f"(hang {hang}, fail {fail}), timeout={self.timeout} retries={self.retries}"
            + (" resume" if self.resume else "")
        )


class Gate:
    """Turns the SIGALRM of a call's timer into a KeyboardInterrupt only inside that call.

    The handler runs in the main thread, so ``armed`` is exactly the main thread's view:
    True only between :meth:`Soak.call` arming and disarming around the forklift call.
    One interrupt per arming at most (the handler disarms before raising); a timer that
    fires after the call is ignored.
    """

    def __init__(self) -> None:
        self.armed = False
        self.fired = False
        self.raised = 0
        self.ignored = 0
        self.unraisable = 0
        self.unraisable_where: collections.Counter[str] = collections.Counter()

    def handler(self, signum: int, frame: Any) -> None:
        if self.armed:
            self.armed = False
            self.fired = True
            self.raised += 1
            raise KeyboardInterrupt
        self.ignored += 1

    def unraisable_hook(self, unraisable: Any) -> None:
        if isinstance(unraisable.exc_value, KeyboardInterrupt):
            self.unraisable += 1
            self.unraisable_where[repr(unraisable.object)[:120]] += 1
            return
        sys.__unraisablehook__(unraisable)


class Book:
    """Outcomes reported by callbacks (any thread), by call id; at most one each is allowed."""

    def __init__(self) -> None:
        self.cond = threading.Condition(threading.Lock())
        self.records: dict[int, list[tuple[str, Any]]] = {}

    def add(self, cid: int, kind: str, value: Any) -> None:
        with self.cond:
            self.records.setdefault(cid, []).append((kind, value))
            self.cond.notify_all()

    def ok(self, cid: int) -> Any:
        return lambda value: self.add(cid, OK, value)

    def error(self, cid: int) -> Any:
        return lambda exc: self.add(cid, ERROR, exc)

    def done(self, cid: int) -> Any:
        def callback(future: cf.Future[Any]) -> None:
            # Read the outcome without the Future's lock: an interrupt inside
            # Condition.__enter__ in the main thread can leave that lock held for good
            # (a CPython limit forklift works around by settling without it).
            state = future._state  # type: ignore[attr-defined]
            if state in (CANCELLED, CANCELLED_AND_NOTIFIED):
                self.add(cid, CANCELLED_, None)
            elif future._exception is not None:  # type: ignore[attr-defined]
                self.add(cid, ERROR, future._exception)  # type: ignore[attr-defined]
            else:
                self.add(cid, OK, future._result)  # type: ignore[attr-defined]

        return callback

    def wait(self, cids: list[int], seconds: float) -> list[int]:
        """Wait until every call id has an outcome; those still missing after ``seconds``."""
        deadline = time.monotonic() + seconds
        with self.cond:
            while True:
                missing = [c for c in cids if c not in self.records]
                left = deadline - time.monotonic()
                if not missing or left <= 0:
                    return missing
                self.cond.wait(min(left, 0.5))

    def take(self, cid: int) -> list[tuple[str, Any]]:
        with self.cond:
            return self.records.pop(cid, [])


class LogFindings(logging.Handler):
    """Whatever forklift logs at WARNING or above is a finding."""

    def __init__(self, soak: Soak) -> None:
        super().__init__(logging.WARNING)
        self.soak = soak

    def emit(self, record: logging.LogRecord) -> None:
        exc = record.exc_info[1] if record.exc_info else None
        self.soak.finding(f"forklift logged {record.levelname}", record.getMessage(), exc)


class Soak:
    def __init__(self, args: argparse.Namespace) -> None:
        self.args = args
        self.rng = random.Random(args.seed)
        self.crng = random.Random(args.seed * 7919 + 1)  # the chaos thread's own
        self.lrng = random.Random(args.seed * 104729 + 2)  # the lock thread's
        self.gate = Gate()
        self.book = Book()
        self.keys = itertools.count(1)
        self.cids = itertools.count(1)
        self.pool: forklift.Pool | None = None
        self.ex: forklift.Executor | None = None
        self.epoch = 0
        self.stop: dict[str, str | None] = {"pool": None, "executor": None}
        self.cancelable: list[tuple[int, cf.Future[Any]]] = []
        self.cancel_attempted: set[int] = set()
        self.cancel_succeeded: set[int] = set()
        self.future_outcome: dict[int, str] = {}  # executor futures: cid -> outcome kind
        self.killed: dict[str, set[int]] = {"pool": set(), "executor": set()}
        self.kill_count = {"pool": 0, "executor": 0}
        self.ready_pids: set[int] = set()  # workers that returned a result: safe to kill
        self.tracked: dict[int, float | None] = {}  # every worker pid seen -> its create time
        self.blamed: dict[int, str] = {}  # worker pid -> the failure its death was blamed for
        self.maybe: dict[int, tuple[Call, tuple[int, int]]] = {}  # submissions cut by an interrupt
        self.judged: set[int] = set()
        self.active: dict[str, tuple[str, float]] = {}  # what each thread waits on, since when
        self.journals: list[str] = []  # the pool's and executor's journal, and one for maps alone
        self.closing = False  # the closer thread may act
        self.reuse: list[tuple[list[tuple[int, int]], float | None, int]] = []
        self.findings: list[str] = []
        self.c: collections.Counter[str] = collections.Counter()
        self.errors: collections.Counter[str] = collections.Counter()
        self.stopping = threading.Event()
        self.hung = False

    # -- findings -------------------------------------------------------------------
    def finding(self, where: str, what: str, exc: BaseException | None = None) -> None:
        text = f"FINDING [{self.args.start_method} seed {self.args.seed} epoch {self.epoch}] {where}: {what}"
        self.findings.append(text[:300])
        lines = [text]
        if exc is not None:
            lines.append("".join(traceback.format_exception(exc)).rstrip())
        print("\n".join(lines), file=sys.stderr, flush=True)

    # -- the one place interrupts land ----------------------------------------------------
    def call(self, label: str, fn: Any, *args: Any, fire: float | None = None, **kw: Any) -> tuple[str, Any]:
        """``fn(*args, **kw)``; when ``fire`` is a time, a KeyboardInterrupt lands in it then.

        Only the lines between arming and disarming run armed, and they do no bookkeeping:
        an interrupt landing there (even right after ``fn`` returned) is just "interrupted".
        """
        gate = self.gate
        gate.fired = False
        unraisable = gate.unraisable
        self.active["main"] = (label, time.monotonic())
        delay = None if fire is None else max(fire - time.monotonic(), 1e-6)
        if delay is not None:
            self.c["interrupts_armed"] += 1
        try:
            if delay is not None:
                gate.armed = True
                signal.setitimer(signal.ITIMER_REAL, delay)
            value = fn(*args, **kw)
            gate.armed = False
            outcome: tuple[str, Any] = (OK, value)
        except KeyboardInterrupt:
            gate.armed = False
            outcome = (INTERRUPTED, None)
        except BaseException as exc:
            gate.armed = False
            outcome = (ERROR, exc)
        if delay is not None:
            signal.setitimer(signal.ITIMER_REAL, 0)
        del self.active["main"]
        self.c["calls"] += 1
        if outcome[0] == INTERRUPTED:
            self.c["interrupted"] += 1
            if not gate.fired:
                self.finding(label, "KeyboardInterrupt that the soak did not send")
        elif gate.fired:
            if gate.unraisable > unraisable:
                self.c["interrupts_swallowed_in_del"] += 1
            else:
                exc = outcome[1] if outcome[0] == ERROR else None
                self.finding(label, f"an interrupt was raised during the call but it ended {outcome[0]}", exc)
        return outcome

    def fire_time(self) -> float | None:
        """When to interrupt the next call (None: not this one)."""
        if self.rng.random() >= self.args.interrupt_rate:
            return None
        if self.rng.random() < 0.5:
            delay = self.rng.uniform(0.0, 0.003)  # in the submission code itself
        else:
            delay = self.rng.expovariate(1 / 0.04)
        return time.monotonic() + delay

    # -- the schedule ---------------------------------------------------------------------
    def options(self) -> tuple[float | None, int, bool]:
        rng = self.rng
        timed = rng.random() < 0.3
        timeout = rng.choice((0.3, 0.5)) if timed else None
        hang = timed and rng.random() < 0.4
        retries = rng.choice((0, 0, 1)) if hang else rng.choice((0, 0, 0, 1, 2, 3))
        return timeout, retries, hang

    def make_items(self, n: int, hang: bool, slow: float = 0.25) -> list[tuple[int, int]]:
        rng = self.rng
        items = [(next(self.keys), rng.randint(1, 8) if rng.random() < slow else 0) for _ in range(n)]
        if rng.random() < 0.12:
            i = rng.randrange(n)
            items[i] = (items[i][0], FAIL)
        if hang:
            i = rng.randrange(n)
            items[i] = (items[i][0], HANG)
        return items

    def size(self) -> tuple[int, float]:
        r = self.rng.random()
        if r < 0.3:
            return self.rng.randint(1, 4), 0.3
        if r < 0.7:
            return self.rng.randint(5, 40), 0.25
        if r < 0.92:
            return self.rng.randint(100, 600), 0.05
        return self.rng.randint(2000, 5000), 0.0

    def new_call(
        self, kind: str, face: str, items: list[tuple[int, int]], timeout: float | None, retries: int
    ) -> Call:
        self.c["items"] += len(items)
        self.c[f"calls_{kind}"] += 1
        return Call(kind, face, items, timeout, retries, self.kill_count[face], self.epoch)

    def round(self) -> None:
        kind = self.rng.choices(list(ROUNDS), list(ROUNDS.values()))[0]
        try:
            self.one_round(kind)
        except Exception as exc:  # outside the armed calls: forklift or this soak misbehaved
            self.finding(f"round {kind}", "raised outside the judged calls", exc)

    def one_round(self, kind: str) -> None:
        if kind in ("map", "map_async"):
            self.r_map(kind)
        elif kind in ("imap", "imap_unordered", "executor_map"):
            self.r_stream(kind)
        elif kind == "apply":
            self.r_apply()
        elif kind == "apply_async":
            self.r_apply_async()
        else:
            self.r_submit()

    # -- rounds -----------------------------------------------------------------------------
    def r_map(self, kind: str) -> None:
        assert self.pool is not None
        rng = self.rng
        timeout, retries, hang = self.options()
        n, slow = self.size()
        items = self.make_items(n, hang, slow)
        kw: dict[str, Any] = {}
        resume = False
        if self.journals and rng.random() < 0.3:
            resume = True
            if self.reuse and rng.random() < 0.5:  # the same inputs again: results come from the journal
                items, timeout, retries = rng.choice(self.reuse)
            else:
                self.reuse = [*self.reuse[-7:], (items, timeout, retries)]
            kw.update(journal=rng.choice(self.journals), resume=True, force=True)
        if timeout is not None:
            kw["timeout"] = timeout
        if retries:
            kw["retries"] = retries
        if rng.random() < 0.2:
            kw["chunksize"] = rng.choice((1, 3, 50))
        call = self.new_call(kind, "pool", items, timeout, retries)
        call.resume = resume
        fire = self.fire_time()
        if kind == "map":
            status, value = self.call("pool.map", self.pool.map, work, items, fire=fire, **kw)
            self.judge_map(call, status, value)
            return
        cid = next(self.cids)
        status, result = self.call(
            "pool.map_async",
            self.pool.map_async,
            work,
            items,
            callback=self.book.ok(cid),
            error_callback=self.book.error(cid),
            fire=fire,
            **kw,
        )
        if status != OK:
            self.judge_map(call, status, result)
            self.maybe_later(cid, call, None)
            return
        status, value = self.call("MapResult.get", result.get, fire=fire)
        records = self.wait_records(call, [cid])[cid]
        if records:
            kind_, got = records[0]
            self.judge_map(call, kind_, got)  # what the callback saw (get() may be interrupted)
            if status != INTERRUPTED and (status != kind_ or value is not got):
                self.finding(
                    call.describe(), f"get() gave {status} {value!r} but the callback {kind_} {got!r}"[:400]
                )

    def judge_map(self, call: Call, status: str, value: Any) -> None:
        if status == OK:
            if not isinstance(value, list) or len(value) != len(call.items):
                got = len(value) if isinstance(value, list) else type(value).__name__
                self.finding(call.describe(), f"map returned {got} results")
                return
            for item, v in zip(call.items, value):
                self.judge_value(call, item, v)
        elif status == ERROR:
            self.judge_error(call, value)

    def r_stream(self, kind: str) -> None:
        rng = self.rng
        face = "executor" if kind == "executor_map" else "pool"
        timeout, retries, hang = self.options()
        n, slow = self.size()
        items = self.make_items(n, hang, slow)
        call = self.new_call(kind, face, items, timeout, retries)
        source: Any = items if rng.random() < 0.6 else (item for item in items)  # lazy: pulled in our thread
        kw: dict[str, Any] = {}
        if rng.random() < 0.2:
            kw["chunksize"] = rng.choice((1, 3, 50))
        fire = self.fire_time()
        if kind == "executor_map":
            assert self.ex is not None
            if timeout is not None:
                kw["task_timeout"] = timeout
            if retries:
                kw["retries"] = retries
            status, it = self.call("Executor.map", self.ex.map, work, source, fire=fire, **kw)
        else:
            assert self.pool is not None
            if timeout is not None:
                kw["timeout"] = timeout
            if retries:
                kw["retries"] = retries
            method = self.pool.imap if kind == "imap" else self.pool.imap_unordered
            status, it = self.call(f"pool.{kind}", method, work, source, fire=fire, **kw)
        if status != OK:
            if status == ERROR:
                self.judge_error(call, it, before=False)
            return
        before = self.stop[face] is None
        ordered = kind != "imap_unordered"
        pos = 0
        seen: set[int] = set()
        failed: set[int] = set()  # positions (or keys, unordered) that raised
        complete = ended = False
        while True:
            status, value = self.call(f"next({kind})", next, it, fire=fire)
            if status == INTERRUPTED:
                break
            if status == OK:
                if ordered:
                    if pos < len(items):
                        self.judge_value(call, items[pos], value)
                    else:
                        self.finding(call.describe(), f"a result past the end: {value!r}")
                else:
                    key = value[0] if isinstance(value, tuple) and value else None
                    if key in seen:
                        self.finding(call.describe(), f"item {key} delivered twice")
                    elif key not in call.by_key:
                        self.finding(call.describe(), f"a result of no item of this call: {value!r}")
                    else:
                        seen.add(key)
                        self.judge_value(call, call.by_key[key], value)
                pos += 1
                continue
            if isinstance(value, StopIteration):
                complete = True
                break
            if self.stream_ended(value):
                self.judge_error(call, value, before=before)
                ended = True
                break
            item = items[pos] if ordered and pos < len(items) else None
            key = self.judge_error(call, value, item=item, position=pos if ordered else None, before=before)
            if not ordered and key is not None:
                if key in seen or key in failed:
                    self.finding(
                        call.describe(), f"item {key} delivered twice (once as {type(value).__name__})"
                    )
                failed.add(key)
            pos += 1
            if kind == "executor_map":
                ended = True  # as concurrent.futures' map: the first exception ends the iteration
                break
        if complete and pos != len(items):
            self.finding(call.describe(), f"the iteration ended quietly after {pos} of {len(items)} results")
        if complete and not ordered and len(seen) + len(failed) != len(items):
            self.finding(
                call.describe(),
                f"{len(seen)} results and {len(failed)} identified failures for {len(items)} items",
            )
        if ended or rng.random() < 0.5 or not complete:
            it.close()  # from our thread, unarmed; else dropped (its __del__ closes it)
        del it

    def stream_ended(self, exc: BaseException) -> bool:
        """Errors that end a whole stream (the pool stopped), not one item's."""
        if isinstance(exc, BrokenPoolError):
            return True
        if isinstance(exc, ValueError) and str(exc) == NOT_RUNNING:
            return True  # it pulls input first: after a terminate, that raises
        return isinstance(exc, RuntimeError) and CUT_SHORT in str(exc)

    def r_apply(self) -> None:
        assert self.pool is not None
        timeout, retries, hang = self.options()
        items = self.make_items(1, hang, 0.3)
        call = self.new_call("apply", "pool", items, timeout, retries)
        kw: dict[str, Any] = {}
        if timeout is not None:
            kw["timeout"] = timeout
        if retries:
            kw["retries"] = retries
        status, value = self.call(
            "pool.apply", self.pool.apply, work, (items[0],), fire=self.fire_time(), **kw
        )
        if status == OK:
            self.judge_value(call, items[0], value)
        elif status == ERROR:
            self.judge_error(call, value, item=items[0])

    def r_apply_async(self) -> None:
        assert self.pool is not None
        rng = self.rng
        timeout, retries, hang = self.options()
        items = self.make_items(rng.randint(1, 30), hang, 0.3)
        call = self.new_call("apply_async", "pool", items, timeout, retries)
        kw: dict[str, Any] = {}
        if timeout is not None:
            kw["timeout"] = timeout
        if retries:
            kw["retries"] = retries
        fire = self.fire_time()
        handles: list[tuple[int, tuple[int, int], Any, bool]] = []
        for item in items:
            cid = next(self.cids)
            status, result = self.call(
                "pool.apply_async",
                self.pool.apply_async,
                work,
                (item,),
                callback=self.book.ok(cid),
                error_callback=self.book.error(cid),
                fire=fire,
                **kw,
            )
            if status == OK:
                handles.append((cid, item, result, self.stop["pool"] is None))
            else:
                if status == ERROR:
                    self.judge_error(call, result, item=item, before=False)
                self.maybe_later(cid, call, item)
        gets: dict[int, tuple[str, Any]] = {}
        if rng.random() < 0.7:
            for cid, _, result, _ in handles:
                gets[cid] = self.call("AsyncResult.get", result.get, fire=fire)
        records = self.wait_records(call, [h[0] for h in handles])
        for cid, item, _, before in handles:
            rec = records.get(cid)
            if not rec:
                continue
            kind_, value = rec[0]
            self.judge_outcome(call, item, kind_, value, before)
            got = gets.get(cid)
            if got is not None and got[0] != INTERRUPTED and (got[0] != kind_ or got[1] is not value):
                self.finding(
                    call.describe(), f"get() gave {got[0]} {got[1]!r} but the callback {kind_} {value!r}"
                )

    def r_submit(self) -> None:
        assert self.ex is not None
        rng = self.rng
        timeout, retries, hang = self.options()
        n = rng.randint(1, 40) if rng.random() < 0.7 else rng.randint(50, 300)  # a backlog to cancel in
        items = self.make_items(n, hang, 0.3)
        call = self.new_call("submit", "executor", items, timeout, retries)
        target: Any = self.ex
        if timeout is not None or retries or rng.random() < 0.2:
            target = self.ex.options(timeout=timeout, retries=retries)
        fire = self.fire_time()
        handles: list[tuple[int, tuple[int, int], cf.Future[Any], bool]] = []
        self.cancelable = published = []
        for item in items:
            cid = next(self.cids)
            status, future = self.call("Executor.submit", target.submit, work, item, fire=fire)
            if status == OK:
                before = self.stop["executor"] is None
                future.add_done_callback(self.book.done(cid))
                handles.append((cid, item, future, before))
                published.append((cid, future))
            else:
                if status == ERROR:
                    self.judge_error(call, future, item=item, before=False)
                self.maybe_later(cid, call, item)
        futures = [h[2] for h in handles]
        how = rng.random()
        if how < 0.4:
            for future in futures:
                self.call("Future.result", _result_or_error, future, fire=fire)
        elif how < 0.6:
            self.call("futures.wait", cf.wait, futures, fire=fire)
        elif how < 0.8:
            self.call("futures.as_completed", _drain_completed, futures, fire=fire)
        records = self.wait_records(call, [h[0] for h in handles])
        self.cancelable = []
        for cid, item, _, before in handles:
            rec = records.get(cid)
            if not rec:
                continue
            kind_, value = rec[0]
            self.future_outcome[cid] = kind_
            self.judge_outcome(call, item, kind_, value, before, cid=cid)

    # -- judging ----------------------------------------------------------------------------
    def maybe_later(self, cid: int, call: Call, item: tuple[int, int] | None) -> None:
        """A submission that did not hand back its result: its callback may still come."""
        self.maybe[cid] = (call, item)  # type: ignore[assignment]

    def wait_records(self, call: Call, cids: list[int]) -> dict[int, list[tuple[str, Any]]]:
        self.active["main"] = (f"outcomes of {call.describe()}", time.monotonic())
        missing = self.book.wait(cids, self.args.hang_seconds)
        del self.active["main"]
        if missing:
            self.hang(f"{len(missing)} of {len(cids)} outcomes never came: {call.describe()}")
        records = {}
        for cid in cids:
            rec = self.book.take(cid)
            self.judged.add(cid)
            if len(rec) > 1:
                self.finding(call.describe(), f"call {cid} settled {len(rec)} times: {rec!r}"[:400])
            records[cid] = rec
        return records

    def judge_outcome(
        self, call: Call, item: tuple[int, int], kind: str, value: Any, before: bool, cid: int | None = None
    ) -> None:
        if kind == OK:
            self.judge_value(call, item, value)
        elif kind == CANCELLED_:
            self.c["cancelled"] += 1
            if not (cid in self.cancel_attempted or self.stop[call.face] == "shutdown-cancel"):
                self.finding(call.describe(), f"item {item} cancelled, but nobody cancelled it")
        else:
            self.judge_error(call, value, item=item, before=before)

    def judge_value(self, call: Call, item: tuple[int, int], value: Any) -> None:
        key, ms = item
        if not (isinstance(value, tuple) and len(value) == 3 and value[:2] == (key, expected(key))):
            self.finding(call.describe(), f"wrong result for item {item}: {value!r}")
            return
        if ms in (HANG, FAIL):
            self.finding(call.describe(), f"a result for item {item}, which cannot succeed: {value!r}")
            return
        pid = value[2]
        self.ready_pids.add(pid)
        self.track(pid)
        self.c["results_ok"] += 1

    def judge_error(
        self,
        call: Call,
        exc: BaseException,
        item: tuple[int, int] | None = None,
        position: int | None = None,
        before: bool = False,
    ) -> int | None:
        """Count ``exc`` and make it a finding unless it is allowed; returns the item's key if known."""
        self.errors[f"{call.face}.{type(exc).__name__}"] += 1
        why, key = self.why_not(call, exc, item, position, before)
        if why:
            self.finding(call.describe(), why, exc)
        return key

    def why_not(
        self, call: Call, exc: BaseException, item: tuple[int, int] | None, position: int | None, before: bool
    ) -> tuple[str | None, int | None]:
        text = str(exc)
        stop = self.stop[call.face]
        if isinstance(exc, SoakError):
            target = item if item is not None else call.by_key.get(exc.key)
            if target is None or target[0] != exc.key or target[1] != FAIL:
                return f"SoakError({exc.key}) for item {target}", exc.key
            return None, exc.key
        if isinstance(exc, (TaskTimeout, WorkerLostError)):
            m = _TASK.search(text)
            index = int(m.group(1)) if m else None
            if (
                item is None
                and index is not None
                and not call.resume
                and call.kind in (*ORDERED, "imap_unordered")
            ):
                if index >= len(call.items):
                    return f"an error for task {index} of {len(call.items)}", None
                item = call.items[index]
            if position is not None and index is not None and not call.resume and index != position:
                return f"the error of task {index} came at position {position}", None
            key = item[0] if item is not None else None
            if isinstance(exc, TaskTimeout):
                if call.timeout is None:
                    return "TaskTimeout in a call without a timeout", key
                if item is not None and item[1] != HANG:
                    return f"TaskTimeout blamed on item {item}, which sleeps {item[1]} ms", key
                if item is None and not any(ms == HANG for _, ms in call.items):
                    return "TaskTimeout in a call without a task that overruns", key
                m = _WORKER.search(text)
                return self.blame(int(m.group(1)) if m else None, "TaskTimeout"), key
            if exc.pid not in self.killed[call.face]:
                return f"WorkerLostError for worker {exc.pid}, which the soak did not kill", key
            if exc.exitcode != -signal.SIGKILL:
                return f"WorkerLostError with exit code {exc.exitcode}", key
            kills = self.kill_count[call.face] - call.kills_before + 1  # +1: a kill racing the call's start
            if kills < call.retries + 1:
                return (
                    f"WorkerLostError after {call.retries} retries, but only {kills} kills since the call",
                    key,
                )
            return self.blame(exc.pid, "WorkerLostError"), key
        if isinstance(exc, BrokenPoolError):
            if stop is None:
                return "BrokenPoolError, but the pool was not stopped", None
            if "terminated" in text:
                return (None if stop == "terminate" else f"'{text}' after {stop}"), None
            if "shut down" in text and not before:
                return None, None
            return f"BrokenPoolError after {stop} (handle {'before' if before else 'after'} the stop)", None
        if isinstance(exc, ValueError) and text == NOT_RUNNING:
            if call.face != "pool":
                return f"ValueError({text!r}) from an Executor (concurrent.futures raises RuntimeError)", None
            # (a stream made before a terminate may raise it too: it pulls input first)
            ok = stop is not None and (not before or stop == "terminate")
            return (None if ok else f"{text!r} but stop={stop}"), None
        if isinstance(exc, RuntimeError) and call.face == "executor":
            if AFTER_SHUTDOWN in text and stop is not None and not before:
                return None, None
            if CUT_SHORT in text and stop in STOPS_INPUT:
                return None, None
        if isinstance(exc, cf.CancelledError):
            return "CancelledError from a call without a future", None
        return f"unexpected {type(exc).__name__}: {exc}", None

    def blame(self, pid: int | None, what: str) -> str | None:
        if pid is None:
            return f"{what} names no worker"
        if pid in self.blamed:
            return f"{what}: worker {pid} was already blamed for a {self.blamed[pid]}"
        self.blamed[pid] = what
        return None

    def hang(self, what: str) -> None:
        self.hung = True
        self.finding("hang", what)
        faulthandler.dump_traceback(file=sys.stderr, all_threads=True)
        for name, face in (("pool", self.pool), ("executor", self.ex)):
            try:
                print(f"--- {name}: {engine_state(face)}", file=sys.stderr, flush=True)
            except Exception as exc:
                print(f"--- {name}: state unreadable: {exc!r}", file=sys.stderr, flush=True)
        try:
            print(f"--- processes: {process_table()}", file=sys.stderr, flush=True)
        except Exception as exc:
            print(f"--- processes: unreadable: {exc!r}", file=sys.stderr, flush=True)
        self.report(extra={"hang": what})
        os._exit(2)

    # -- threads ------------------------------------------------------------------------------
    def track(self, pid: int) -> None:
        if pid not in self.tracked:
            try:
                self.tracked[pid] = psutil.Process(pid).create_time()
            except psutil.Error:
                self.tracked[pid] = None

    def chaos(self) -> None:
        rng, args = self.crng, self.args
        now = time.monotonic()
        next_kill = now + (rng.expovariate(1 / args.kill_every) if args.kill_every else float("inf"))
        next_cancel = now + (rng.expovariate(1 / args.cancel_every) if args.cancel_every else float("inf"))
        next_look = now
        while not self.stopping.wait(0.005):
            now = time.monotonic()
            if now >= next_look:
                next_look = now + 0.05
                for face in (self.pool, self.ex):
                    if face is not None:
                        for pid in face.worker_pids():
                            self.track(pid)
            if now >= next_kill:
                next_kill = now + rng.expovariate(1 / args.kill_every)
                self.kill_one()
            if now >= next_cancel:
                next_cancel = now + rng.expovariate(1 / args.cancel_every)
                self.cancel_one()

    def kill_one(self) -> None:
        faces = [(n, f) for n, f in (("pool", self.pool), ("executor", self.ex)) if f is not None]
        if not faces:
            return
        name, face = self.crng.choice(faces)
        ready = [pid for pid in face.worker_pids() if pid in self.ready_pids]
        if not ready:
            self.c["kills_skipped"] += 1
            return
        pid = self.crng.choice(ready)
        self.killed[name].add(pid)  # before the kill: the judge may see its error at once
        self.kill_count[name] += 1
        self.c["kills"] += 1
        try:
            os.kill(pid, signal.SIGKILL)
        except ProcessLookupError:
            self.c["kills_missed"] += 1

    def cancel_one(self) -> None:
        published = self.cancelable
        if not published:
            return
        cid, future = self.crng.choice(published)
        if future._state != "PENDING":  # type: ignore[attr-defined]
            return
        # Never block on a Future's lock: one left held by an interrupt in the main thread
        # (a CPython limit) would stop this thread for good.
        lock = future._condition  # type: ignore[attr-defined]
        if not lock.acquire(timeout=0.05):
            self.c["cancels_lock_busy"] += 1
            return
        try:
            self.cancel_attempted.add(cid)
            self.c["cancels"] += 1
            if future.cancel():
                self.cancel_succeeded.add(cid)
        finally:
            lock.release()

    def lock_journal(self) -> None:
        """Hold the journals' write lock from another connection for random short spans."""
        rng = self.lrng
        conns: dict[str, sqlite3.Connection] = {}
        try:
            while not self.stopping.wait(rng.uniform(0.05, self.args.lock_every * 2)):
                path = rng.choice(self.journals)
                if not os.path.exists(path) or os.path.getsize(path) == 0:
                    continue  # not created by forklift yet
                conn = conns.get(path)
                if conn is None:
                    conn = conns[path] = sqlite3.connect(path, timeout=30, isolation_level=None)
                r = rng.random()
                span = (
                    rng.uniform(0.002, 0.05)
                    if r < 0.5
                    else rng.uniform(0.05, 0.4)
                    if r < 0.9
                    else rng.uniform(0.4, 1.5)
                )
                self.active["lock"] = ("BEGIN IMMEDIATE", time.monotonic())
                try:
                    conn.execute("BEGIN IMMEDIATE")
                finally:
                    self.active.pop("lock", None)
                time.sleep(span)
                conn.execute("COMMIT")
                self.c["lock_spans"] += 1
                self.c["lock_ms"] += int(span * 1000)
        except Exception as exc:
            self.finding("lock thread", "holding the journal's lock failed", exc)
        finally:
            for conn in conns.values():
                conn.close()

    def watchdog(self) -> None:
        """Hangs, and a guard for the machine: far more processes than 2 + 2 workers is a storm."""
        me = psutil.Process()
        most = 0
        while not self.stopping.wait(0.5):
            now = time.monotonic()
            for who, (what, since) in list(self.active.items()):
                if now - since > self.args.hang_seconds:
                    self.hang(f"{who} stuck {now - since:.0f} s in {what}")
            try:
                n = len(me.children(recursive=True))
            except psutil.Error:
                continue
            most = max(most, n)
            self.c["most_processes"] = most
            if n > self.args.max_procs:
                self.hang(f"{n} descendant processes (a pool of 2 and an executor of 2)")

    def closer(self, plan: list[tuple[str, str, float, bool]]) -> None:
        pool, ex = self.pool, self.ex
        assert pool is not None and ex is not None
        for face, action, delay, wait in plan:
            time.sleep(delay)
            self.stop[face] = action  # before acting: an error seen after it is judged by it
            self.active["closer"] = (f"{face} {action}", time.monotonic())
            try:
                if action == "close":
                    pool.close()
                elif action == "terminate":
                    (pool if face == "pool" else ex).terminate()
                elif action == "shutdown":
                    ex.shutdown(wait=True)
                elif action == "shutdown-nowait":
                    ex.shutdown(wait=False)
                else:
                    ex.shutdown(wait=wait, cancel_futures=True)
            except BaseException as exc:
                self.finding(f"closer: {face} {action}", "raised", exc)
            del self.active["closer"]

    # -- a run --------------------------------------------------------------------------------
    def make_faces(self) -> None:
        journal = self.journals[0] if self.journals else None
        method = self.args.start_method
        self.pool = forklift.Pool(2, start_method=method, journal=journal)
        self.ex = forklift.Executor(2, start_method=method, journal=journal)

    def teardown(self) -> None:
        pool, ex = self.pool, self.ex
        assert pool is not None and ex is not None
        self.active["main"] = ("close, join and shutdown", time.monotonic())
        try:
            pool.close()
            pool.join()
            ex.shutdown(wait=True)
        except BaseException as exc:
            self.finding("teardown", "close / join / shutdown raised", exc)
        del self.active["main"]
        self.pool = self.ex = None

    def warm_up(self) -> None:
        """A pool and an executor of the same kind, before the counts: the fork server,
        the resource tracker, forklift's watcher (started once a task has run 0.25 s) and
        lazily imported modules are there for good after it."""
        self.make_faces()
        assert self.pool is not None and self.ex is not None
        warm = [(0, 0), (1, 300)]
        assert [v[:2] for v in self.pool.map(work, warm)] == [(k, expected(k)) for k, _ in warm]
        assert self.ex.submit(work, (2, 0)).result()[:2] == (2, expected(2))
        self.teardown()

    def run(self) -> int:
        args = self.args
        for name in ("forklift", "concurrent.futures"):  # the latter: a failing done-callback
            logging.getLogger(name).addHandler(LogFindings(self))
        tmp = tempfile.mkdtemp(prefix="forklift-soak-")
        try:
            if args.journal:
                self.journals = [os.path.join(tmp, "soak.db"), os.path.join(tmp, "other.db")]
            self.warm_up()
            baseline = snapshot()
            threads = [
                threading.Thread(target=self.chaos, name="soak-chaos", daemon=True),
                threading.Thread(target=self.watchdog, name="soak-watchdog", daemon=True),
            ]
            if self.journals and args.lock_every:
                threads.append(threading.Thread(target=self.lock_journal, name="soak-lock", daemon=True))
            for t in threads:
                t.start()
            start = time.monotonic()
            epochs = max(1, round(args.seconds / args.epoch_seconds))
            for epoch in range(epochs):
                self.epoch = epoch
                self.run_epoch(start + args.seconds * (epoch + 1) / epochs)
            self.stopping.set()
            for t in threads:
                t.join()
            self.final_checks()
            leaks = check_leaks(baseline, self.tracked)
            for what in leaks:
                self.finding("leak", what)
            self.report(extra={"leaks": leaks, "wall": round(time.monotonic() - start, 1)})
        finally:
            shutil.rmtree(tmp, ignore_errors=True)
        return 1 if self.findings else 0

    def run_epoch(self, end: float) -> None:
        rng = self.rng
        self.stop = {"pool": None, "executor": None}
        self.closing = False
        self.make_faces()
        self.c["epochs"] += 1
        while time.monotonic() < end:
            self.round()
        # The end of the epoch: stop both from another thread while the main loop goes on.
        plan = [
            ("pool", rng.choice(POOL_STOPS), rng.uniform(0, 0.05), False),
            ("executor", rng.choice(EXECUTOR_STOPS), rng.uniform(0, 0.05), rng.random() < 0.5),
        ]
        rng.shuffle(plan)
        self.closing = True
        self.c.update(f"stop_{face}_{action}" for face, action, _, _ in plan)
        closer = threading.Thread(target=self.closer, args=(plan,), name="soak-closer")
        closer.start()
        while closer.is_alive():
            self.round()
            if all(self.stop.values()):
                time.sleep(0.005)  # every call fails at once now: do not starve a waiting shutdown
        closer.join()
        self.round()  # after both stops: every call fails at once, with an allowed error
        self.teardown()
        for cid, (call, item) in list(self.maybe.items()):  # submissions cut short by an interrupt
            for kind, value in self.book.take(cid):
                self.c["late_outcomes"] += 1
                if item is None:
                    self.judge_map(call, kind, value)
                else:
                    self.judge_outcome(call, item, kind, value, before=False, cid=cid)
            self.judged.add(cid)
        self.maybe.clear()

    def final_checks(self) -> None:
        with self.book.cond:
            extra = {cid: rec for cid, rec in self.book.records.items() if cid in self.judged}
        for cid, rec in extra.items():
            self.finding("bookkeeping", f"call {cid} settled again after it was checked: {rec!r}"[:400])
        for cid in self.cancel_succeeded:
            got = self.future_outcome.get(cid)
            if got is not None and got != CANCELLED_:
                self.finding("cancel", f"future {cid}: cancel() returned True but it ended {got}")

    def report(self, extra: dict[str, Any]) -> None:
        g = self.gate
        counts = dict(self.c)  # (another thread may add a key meanwhile: copy first)
        out = {
            "start_method": self.args.start_method,
            "seed": self.args.seed,
            "journal": bool(self.args.journal),
            "seconds": self.args.seconds,
            **dict(sorted(counts.items())),
            "interrupts_raised": g.raised,
            "interrupts_ignored": g.ignored,
            "swallowed_where": dict(g.unraisable_where),
            "errors": dict(sorted(self.errors.items())),
            "workers_seen": len(self.tracked),
            "findings": len(self.findings),
            "finding_list": self.findings[:20],
            **extra,
        }
        print(json.dumps(out), flush=True)


def engine_state(face: Any) -> str:
    """What a pool's scheduler holds, read from another thread (racy: for a hang report)."""
    if face is None:
        return "none"
    e = face._engine
    workers = []
    for w in list(e._workers):
        held = [(c.seq, c.job.name, c.start, len(c.items)) for c in list(w.held)]
        workers.append(
            f"pid {w.pid} ready={w.ready} retiring={w.retiring} exit_sent={w.exit_sent} "
            f"kill={w.kill_reason} alive={w.process.is_alive()} slot={w.read_slot()} held={held}"
        )
    jobs = []
    for job in list(e._open):
        extra = ""
        if hasattr(job, "_pulled"):
            extra = (
                f" pulled={job._pulled} handed={job._handed} exhausted={job._exhausted}"
                f" batches={job.batches.qsize()} waiting={sorted(job._waiting)[:5]} head={job._head}"
            )
        jobs.append(
            f"{job.name} pending={[(s.start, len(s.items) - s.pos) for s in job.pending]} "
            f"inflight={job.inflight} cancelled={job.cancelled} closed_input={job.closed_input}{extra}"
        )
    return (
        f"alive={e.alive} accepting={e._accepting} closing={e._closing} stop={e._stop} "
        f"counts={e._counts} queue={[j.name for j in list(e._queue)]}\n  workers: "
        + "\n    ".join(workers)
        + "\n  open jobs: "
        + "\n    ".join(jobs)
    )


def process_table() -> str:
    rows = []
    for p in psutil.Process().children(recursive=True)[:60]:
        try:
            rows.append(f"{p.pid} ppid={p.ppid()} {p.status()} {' '.join(p.cmdline())[:60]}")
        except psutil.Error:
            pass
    return f"{len(rows)} shown\n  " + "\n  ".join(rows)


def _result_or_error(future: cf.Future[Any]) -> Any:
    try:
        return future.result()
    except (Exception, cf.CancelledError):  # the outcome is judged from the done-callback
        return None


def _drain_completed(futures: list[cf.Future[Any]]) -> None:
    for future in cf.as_completed(futures):
        _result_or_error(future)


# -- leaks ------------------------------------------------------------------------------------
def helper_pids() -> set[int]:
    """multiprocessing's fork server and resource tracker, and forklift's watcher (if this
    version has one): each lives as long as this process, shared by all its pools."""
    pids = set()
    server = sys.modules.get("multiprocessing.forkserver")
    pid = getattr(getattr(server, "_forkserver", None), "_forkserver_pid", None)
    if pid:
        pids.add(pid)
    tracker = sys.modules.get("multiprocessing.resource_tracker")
    pid = getattr(getattr(tracker, "_resource_tracker", None), "_pid", None)
    if pid:
        pids.add(pid)
    watch = sys.modules.get("forklift._engine.watch")
    proc = getattr(getattr(watch, "watcher", None), "_proc", None)
    if proc is not None:
        pids.add(proc.pid)
    return pids


def snapshot() -> dict[str, Any]:
    fds = {}
    for fd in os.listdir("/proc/self/fd"):
        try:
            fds[fd] = os.readlink(f"/proc/self/fd/{fd}")
        except OSError:
            pass
    helpers = helper_pids()
    children = [_describe(p) for p in psutil.Process().children(recursive=True) if p.pid not in helpers]
    return {
        "fds": fds,
        "threads": sorted(t.name for t in threading.enumerate()),
        "tasks": len(os.listdir("/proc/self/task")),
        "children": children,
    }


def _describe(p: psutil.Process) -> str:
    try:
        return f"{p.pid} {p.status()} {' '.join(p.cmdline())[:100]}"
    except psutil.Error:
        return f"{p.pid} (gone)"


def check_leaks(
    baseline: dict[str, Any], tracked: dict[int, float | None], seconds: float = 10.0
) -> list[str]:
    """What is still here that was not before the run (waits up to ``seconds`` for it to go)."""
    deadline = time.monotonic() + seconds
    while True:
        gc.collect()  # a cycle is not a leak
        now = snapshot()
        leaks = []
        children = [c for c in now["children"] if not c.endswith("(gone)")]
        if children:
            leaks.append(f"child processes left: {children}")
        alive = []
        for pid, created in tracked.items():
            try:
                p = psutil.Process(pid)
                if created is not None and p.create_time() == created:
                    alive.append(f"{pid} ({p.status()})")
            except psutil.Error:
                pass
        if alive:
            leaks.append(f"workers still alive: {alive}")
        extra_fds = {fd: target for fd, target in now["fds"].items() if baseline["fds"].get(fd) != target}
        if len(now["fds"]) > len(baseline["fds"]) + 2:
            leaks.append(f"{len(now['fds'])} fds open, {len(baseline['fds'])} before: new ones {extra_fds}")
        new_threads = list(
            (collections.Counter(now["threads"]) - collections.Counter(baseline["threads"])).elements()
        )
        if new_threads or now["tasks"] > baseline["tasks"]:
            leaks.append(
                f"threads left: {new_threads} ({now['tasks']} OS threads, {baseline['tasks']} before)"
            )
        if not leaks or time.monotonic() >= deadline:
            return leaks
        time.sleep(0.2)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--seconds", type=float, default=10.0, help="how long to call the pools (10)")
    parser.add_argument("--seed", type=int, default=1)
    parser.add_argument(
        "--start-method", default="forkserver", choices=multiprocessing.get_all_start_methods()
    )
    parser.add_argument("--journal", action="store_true", help="record in journals whose lock is contended")
    parser.add_argument("--epoch-seconds", type=float, default=20.0, help="new pool and executor every (20)")
    parser.add_argument(
        "--kill-every", type=float, default=0.5, help="mean seconds between SIGKILLs (0: none)"
    )
    parser.add_argument(
        "--cancel-every", type=float, default=0.01, help="mean seconds between cancels (0: none)"
    )
    parser.add_argument("--interrupt-rate", type=float, default=0.3, help="share of calls interrupted (0.3)")
    parser.add_argument(
        "--lock-every", type=float, default=0.5, help="mean seconds between lock spans (0: none)"
    )
    parser.add_argument(
        "--hang-seconds", type=float, default=20.0, help="a call stuck this long is a hang (20)"
    )
    parser.add_argument(
        "--max-procs", type=int, default=40, help="more descendant processes than this: stop (40)"
    )
    args = parser.parse_args()
    faulthandler.enable()
    faulthandler.dump_traceback_later(args.seconds + 30 + args.hang_seconds, exit=True)
    soak = Soak(args)
    signal.signal(signal.SIGALRM, soak.gate.handler)
    sys.unraisablehook = soak.gate.unraisable_hook
    code = soak.run()
    faulthandler.cancel_dump_traceback_later()
    return code


if __name__ == "__main__":
    sys.exit(main())

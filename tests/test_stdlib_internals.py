"""Guards on the standard library's private internals that forklift reads or writes.

forklift falls back quietly where a private attribute is missing (a getattr default, a
``return 0``): at run time that is the right call, but a new Python that renames one would
then silently lose a guard (a fork server kept alive, a stuck Queue not reported). These
tests fail loudly instead, on every Python of the version matrix (``make test-versions``),
naming the attribute and the forklift code that relies on it.
"""

from __future__ import annotations

import argparse
import collections
import concurrent.futures
import concurrent.futures._base as futures_base
import inspect
import multiprocessing
import multiprocessing.connection
import multiprocessing.forkserver
import multiprocessing.process
import multiprocessing.queues
import multiprocessing.synchronize
import threading
import time

import pytest


def test_forkserver_state_that_detach_fork_server_resets():
    """_engine/forks.py detach_fork_server and supervise.fork_server_pid read and reset these."""
    server = multiprocessing.forkserver._forkserver
    assert isinstance(server, multiprocessing.forkserver.ForkServer)
    for name in ("_forkserver_alive_fd", "_forkserver_pid", "_forkserver_address", "_lock"):
        assert hasattr(server, name), f"ForkServer.{name} is gone (forklift._engine.forks)"
    ctx = multiprocessing.get_context("forkserver")
    p = ctx.Process(target=int)
    p.start()
    p.join(10)
    assert isinstance(server._forkserver_alive_fd, int), "ForkServer._forkserver_alive_fd"
    assert isinstance(server._forkserver_pid, int), "ForkServer._forkserver_pid"
    assert server._forkserver_address is not None
    # ensure_running reads exactly these names: resetting them makes it start a new server.
    source = inspect.getsource(multiprocessing.forkserver.ForkServer.ensure_running)
    for name in ("_forkserver_alive_fd", "_forkserver_pid", "_forkserver_address", "_lock"):
        assert f"self.{name}" in source, f"ForkServer.ensure_running no longer uses {name}"


def test_the_fork_reset_of_the_parents_children():
    """_engine/forks.py _forget_parents_children clears multiprocessing.process._children."""
    children = multiprocessing.process._children
    assert isinstance(children, set)
    p = multiprocessing.get_context("forkserver").Process(target=int)
    p.start()
    try:
        assert p in children, "Process.start no longer lists its child in _children"
    finally:
        p.join(10)


def test_forking_pickler_extra_reducers():
    """_serialize.py chains ForkingPickler._extra_reducers into cloudpickle's dispatch table."""
    from multiprocessing.reduction import ForkingPickler

    reducers = ForkingPickler._extra_reducers
    assert isinstance(reducers, dict)
    assert multiprocessing.connection.Connection in reducers, "ForkingPickler no longer registers Connection"

    class Mine:
        pass

    ForkingPickler.register(Mine, lambda obj: (Mine, ()))
    try:
        assert Mine in reducers, "ForkingPickler.register no longer writes _extra_reducers"
    finally:
        del reducers[Mine]


def test_queue_feeder_thread_args_as_exit_watch_reads_them():
    """_exit_watch._held reads a QueueFeederThread's _args: (buffer deque, ..., send_bytes, ...).

    A feeder stuck on a full pipe must be reported with the items it holds, not as 0.
    """
    from forklift._exit_watch import _held, _stuck_feeders

    others = {t for t in threading.enumerate() if t.name == "QueueFeederThread"}  # earlier tests'
    q = multiprocessing.get_context("spawn").Queue()
    try:
        q.put(b"x" * (1 << 20))  # more than a pipe holds: the feeder blocks on the write
        for _ in range(3):
            q.put(b"y")
        deadline = time.monotonic() + 10
        feeder = None
        while time.monotonic() < deadline:
            new = (t for t in threading.enumerate() if t.name == "QueueFeederThread" and t not in others)
            feeder = next(new, None)
            if feeder is not None and _held(feeder) == 3:
                break
            time.sleep(0.02)
        assert feeder is not None, "no thread named QueueFeederThread"
        args = feeder._args
        assert isinstance(args[0], collections.deque), "QueueFeederThread._args[0] is not the buffer"
        assert getattr(args[2], "__self__", None) is q._writer, "_args[2] is not the writer's send_bytes"
        assert _held(feeder) == 3
        assert _stuck_feeders().get(feeder.ident) == 3
    finally:
        q.cancel_join_thread()
        q.close()


def test_future_internals_the_scheduler_settles():
    """_engine/futures.py imports the state names and uses Future._condition / _state."""
    for name in ("CANCELLED", "CANCELLED_AND_NOTIFIED", "FINISHED", "PENDING", "RUNNING"):
        assert hasattr(futures_base, name), f"concurrent.futures._base.{name} is gone"
    f: concurrent.futures.Future[int] = concurrent.futures.Future()
    assert f._state == futures_base.PENDING
    assert isinstance(f._condition, threading.Condition)
    assert f.set_running_or_notify_cancel()
    assert f._state == futures_base.RUNNING
    f.set_result(1)
    assert f._state == futures_base.FINISHED


def test_at_fork_reinit_of_locks():
    """process.py and _primitives/registry.py register Lock._at_fork_reinit at fork."""
    lock = threading.Lock()
    lock.acquire()
    lock._at_fork_reinit()
    assert lock.acquire(blocking=False)


def test_after_fork_hooks_of_queues_and_semlocks():
    """_primitives/queues.py and synchronize.py call Queue._after_fork and SemLock._after_fork."""
    assert callable(multiprocessing.queues.Queue._after_fork)
    lock = multiprocessing.get_context("fork").Lock()
    assert callable(lock._semlock._after_fork)
    import _multiprocessing

    assert callable(_multiprocessing.SemLock._rebuild)


def test_process_internals_the_process_face_uses():
    """process.py overrides _bootstrap(parent_sentinel) and reads _popen/_target/_args/_kwargs."""
    params = list(inspect.signature(multiprocessing.process.BaseProcess._bootstrap).parameters)
    assert params[:2] == ["self", "parent_sentinel"], f"BaseProcess._bootstrap{params}"
    p = multiprocessing.Process(target=print, args=(1,), kwargs={"end": ""})
    assert p._popen is None
    assert (p._target, p._args, p._kwargs) == (print, (1,), {"end": ""})
    assert p._closed is False
    assert callable(multiprocessing.context.get_spawning_popen)


def test_connection_recv_the_handshake_reads():
    """connection.py reads a handshake message with the stdlib Connection._recv(size)."""
    a, b = multiprocessing.Pipe()
    try:
        a.send_bytes(b"hello")
        header = b._recv(4)
        assert isinstance(header.getvalue(), bytes) and len(header.getvalue()) == 4
        assert b._recv(5).getvalue() == b"hello"
    finally:
        a.close()
        b.close()


def test_manager_shutdown_timeout_is_read_by_the_stdlib():
    """managers.py sets _shutdown_timeout, which BaseManager reads from 3.11."""
    import sys
    from multiprocessing.managers import BaseManager

    if sys.version_info < (3, 11):
        pytest.skip("BaseManager has no shutdown_timeout before 3.11")
    assert "_shutdown_timeout" in inspect.getsource(BaseManager)


def test_argparse_internals_the_cli_reads():
    """cli/main.py reads _subparsers._group_actions; cli/run.py _option_string_actions."""
    parser = argparse.ArgumentParser()
    parser.add_argument("-j")
    sub = parser.add_subparsers()
    sub.add_parser("x")
    assert "-j" in parser._option_string_actions
    assert parser._subparsers is not None
    assert any(isinstance(a, argparse._SubParsersAction) for a in parser._subparsers._group_actions)

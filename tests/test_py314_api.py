"""Python 3.14's additions to the pool and process APIs, on every Python forklift supports.

Where the running Python has the stdlib's own version (3.14+), each test compares against it;
before that, against a transcription of CPython 3.14's ``Executor.map`` (``_map_314`` below).
"""

from __future__ import annotations

import concurrent.futures
import itertools
import multiprocessing
import signal
import sys
import time
from concurrent.futures.process import BrokenProcessPool

import pytest

import forklift

import tasks

HAS_314 = sys.version_info >= (3, 14)


def _map_314(executor, fn, *iterables, buffersize):
    """CPython 3.14's ``Executor.map`` with ``buffersize`` (Lib/concurrent/futures/_base.py),
    without timeout: the reference the stdlib itself is on 3.14."""
    import collections

    zipped = zip(*iterables)
    fs = collections.deque(executor.submit(fn, *args) for args in itertools.islice(zipped, buffersize))

    def result_iterator():
        try:
            fs.reverse()
            while fs:
                if args := next(zipped, None):
                    fs.appendleft(executor.submit(fn, *args))
                yield fs.pop().result()
        finally:
            for future in fs:
                future.cancel()

    return result_iterator()


def _trace(make_map, n, buffersize):
    """How many input items were taken: right after the map call, then after each result."""
    taken = []

    def source():
        for i in range(n):
            taken.append(i)
            yield i

    it = make_map(source(), buffersize)
    seen = [len(taken)]
    results = []
    for value in it:
        results.append(value)
        seen.append(len(taken))
    return seen, results


def _stdlib_trace(n, buffersize):
    with concurrent.futures.ThreadPoolExecutor(2) as ex:
        if HAS_314:
            return _trace(lambda src, b: ex.map(tasks.square, src, buffersize=b), n, buffersize)
        return _trace(lambda src, b: _map_314(ex, tasks.square, src, buffersize=b), n, buffersize)


@pytest.mark.parametrize(("n", "buffersize"), [(8, 3), (5, 1), (3, 10), (0, 2)])
def test_executor_map_buffersize_takes_input_as_the_stdlib_does(executor, n, buffersize):
    expected = _stdlib_trace(n, buffersize)
    assert _trace(lambda src, b: executor.map(tasks.square, src, buffersize=b), n, buffersize) == expected
    via_options = executor.options(retries=1)
    assert _trace(lambda src, b: via_options.map(tasks.square, src, buffersize=b), n, buffersize) == expected


@pytest.mark.parametrize("method", ["imap", "imap_unordered"])
def test_pool_imap_buffersize_bounds_the_input_taken(pool, method):
    seen, results = _trace(lambda src, b: getattr(pool, method)(tasks.square, src, buffersize=b), 8, 3)
    assert seen == _stdlib_trace(8, 3)[0]
    assert sorted(results) == [i * i for i in range(8)]


def test_buffersize_never_lets_more_than_n_wait_unyielded(executor):
    """At most buffersize + 1 taken but not yielded (the one more taken as next() starts)."""
    taken = []
    source = (i for i in range(40) if not taken.append(i))
    it = executor.map(tasks.sleep_return, itertools.repeat(0.01), source, buffersize=4)
    for k, value in enumerate(it):
        assert value == k
        assert len(taken) - (k + 1) <= 4


@pytest.mark.parametrize(
    ("value", "error", "message"),
    [
        (0, ValueError, "buffersize must be None or > 0"),
        (-1, ValueError, "buffersize must be None or > 0"),
        (2.0, TypeError, "buffersize must be an integer or None"),
        ("2", TypeError, "buffersize must be an integer or None"),
    ],
)
def test_buffersize_checks_as_the_stdlib(executor, pool, value, error, message):
    with pytest.raises(error, match=message):
        executor.map(tasks.square, [1], buffersize=value)
    with pytest.raises(error, match=message):
        pool.imap(tasks.square, [1], buffersize=value)
    if HAS_314:
        with concurrent.futures.ThreadPoolExecutor(1) as ex, pytest.raises(error, match=message):
            ex.map(tasks.square, [1], buffersize=value)


def test_buffersize_true_counts_as_one(executor):
    assert list(executor.map(tasks.square, range(4), buffersize=True)) == [0, 1, 4, 9]


def _running_then(executor, method):
    running = executor.submit(tasks.sleep_return, 30, "never")
    deadline = time.monotonic() + 10
    while not running.running() and time.monotonic() < deadline:
        time.sleep(0.01)
    queued = [executor.submit(tasks.sleep_return, 30, i) for i in range(6)]  # more than workers
    pids = executor.worker_pids()
    t0 = time.monotonic()
    getattr(executor, method)()
    assert time.monotonic() - t0 < 5
    return running, queued, pids


@pytest.mark.parametrize("method", ["terminate_workers", "kill_workers"])
def test_terminate_and_kill_workers_end_the_executor_as_the_stdlib(method):
    results = {}
    makers = [("forklift", lambda: forklift.Executor(2))]
    if HAS_314:
        makers.append(("stdlib", lambda: concurrent.futures.ProcessPoolExecutor(2)))
    for name, make in makers:
        executor = make()
        try:
            running, queued, pids = _running_then(executor, method)
            with pytest.raises(BrokenProcessPool):
                running.result(10)
            cancelled = sum(f.cancelled() for f in queued)
            with pytest.raises(RuntimeError, match="cannot schedule new futures after shutdown"):
                executor.submit(tasks.square, 2)
            getattr(executor, method)()  # again: nothing left to do, no error
            results[name] = (cancelled >= 4, all(f.done() for f in queued))
            for pid in pids:
                deadline = time.monotonic() + 5
                while time.monotonic() < deadline and _alive(pid):
                    time.sleep(0.02)
                assert not _alive(pid), f"{name}: worker {pid} alive after {method}()"
        finally:
            executor.shutdown(wait=True)
    assert results["forklift"] == (True, True)
    if HAS_314:
        assert results["forklift"] == results["stdlib"]


def _alive(pid):
    try:
        with open(f"/proc/{pid}/stat") as f:
            return f.read().rsplit(")", 1)[1].split()[0] not in ("Z", "X")
    except OSError:
        return False


def _sleep_forever():
    time.sleep(30)


def _catch_sigint(path):
    got = []
    signal.signal(signal.SIGINT, lambda *a: got.append(1))
    with open(path, "w") as f:
        f.write("ready")
    while not got:
        time.sleep(0.01)
    return "handled"


@pytest.mark.parametrize("start_method", ["fork", "forkserver", "spawn"])
def test_process_interrupt_raises_keyboard_interrupt_in_the_child(start_method):
    kinds = [forklift.get_context(start_method).Process]
    if HAS_314:
        kinds.append(multiprocessing.get_context(start_method).Process)
    for kind in kinds:
        p = kind(target=_sleep_forever)
        with pytest.raises(AttributeError):
            p.interrupt()  # not started
        p.start()
        time.sleep(0.5 if start_method == "fork" else 1.5)  # its main module imported
        p.interrupt()
        p.join(10)
        assert p.exitcode == 1, kind  # KeyboardInterrupt, printed and exit 1
        p.interrupt()  # ended: nothing to send, no error
        p.close()
        with pytest.raises(ValueError, match="process object is closed"):
            p.interrupt()


def test_process_interrupt_lets_a_handler_decide(tmp_path):
    ready = tmp_path / "ready"
    p = forklift.Process(target=_catch_sigint, args=(str(ready),))
    p.start()
    deadline = time.monotonic() + 10
    while not ready.exists() and time.monotonic() < deadline:
        time.sleep(0.01)
    p.interrupt()
    p.join(10)
    assert (p.exitcode, p.result()) == (0, "handled")


@pytest.mark.skipif(sys.version_info < (3, 12), reason="os.fork() warns in a threaded process from 3.12")
def test_the_default_start_method_forks_nothing_from_a_threaded_process(tmp_path):
    """forklift's scheduler is a thread, so its own fork of the pool's process would warn
    (3.12+: "This process is multi-threaded, use of fork() may lead to deadlocks"). Under
    the default start method (forkserver) the forks happen in the single-threaded fork
    server: no warning, even with warnings as errors. (start_method="fork" is the user's
    choice, and the stdlib's warning about it stands.)"""
    out = tasks.run_script(
        tmp_path / "threaded.py",
        "import threading, forklift, concurrent.futures as cf\n"
        "if __name__ == '__main__':\n"
        "    threading.Thread(target=threading.Event().wait, daemon=True).start()\n"
        "    with forklift.Pool(2) as pool:\n"
        "        assert pool.map(abs, range(-5, 5)) == [5, 4, 3, 2, 1, 0, 1, 2, 3, 4]\n"
        "    with forklift.Executor(2, max_tasks_per_child=1) as ex:\n"
        "        assert list(ex.map(abs, range(-5, 5))) == [5, 4, 3, 2, 1, 0, 1, 2, 3, 4]\n"
        "    p = forklift.Process(target=abs, args=(-1,)); p.start(); p.join()\n"
        "    assert p.result() == 1\n"
        "    print('ok')\n",
        "error::DeprecationWarning",
    )
    assert out.returncode == 0 and out.stdout == "ok\n", out.stderr[-3000:]
    assert "multi-threaded" not in out.stderr

"""forklift.Pool: the multiprocessing.Pool API, method by method."""

import multiprocessing
import multiprocessing.pool
import os
import pickle
import signal
import socket
import subprocess
import sys
import threading
import time
import traceback

import pytest

import forklift

import tasks


def test_apply_and_apply_async(pool):
    assert pool.apply(tasks.add, (2, 3)) == 5
    assert pool.apply(tasks.add, (), {"a": 1, "b": 2}) == 3
    res = pool.apply_async(tasks.square, (10,))
    assert res.get(timeout=5) == 100
    assert res.ready() and res.successful()


def test_apply_async_callbacks_run_before_ready(pool):
    seen = []
    res = pool.apply_async(tasks.square, (4,), callback=seen.append)
    assert res.get(timeout=5) == 16
    assert seen == [16]  # the callback has run by the time get() returns
    errors = []
    res = pool.apply_async(tasks.fail_on, (3,), error_callback=errors.append)
    with pytest.raises(ValueError):
        res.get(timeout=5)
    assert len(errors) == 1 and isinstance(errors[0], ValueError)
    assert not res.successful()


def test_async_result_get_timeout_raises_multiprocessing_timeout(pool):
    res = pool.apply_async(tasks.sleep_return, (1.0, "late"))
    with pytest.raises(multiprocessing.TimeoutError):
        res.get(timeout=0.05)
    with pytest.raises(ValueError):
        res.successful()  # not ready yet, as in the standard library
    res.wait(5)
    assert res.get() == "late"


def test_map_variants(pool):
    assert pool.map(tasks.square, range(100)) == [x * x for x in range(100)]
    assert pool.map(tasks.square, iter(range(10))) == [x * x for x in range(10)]
    assert pool.map(tasks.square, []) == []
    assert pool.map_async(tasks.square, range(5)).get(5) == [0, 1, 4, 9, 16]
    assert pool.starmap(tasks.add, [(1, 2), (3, 4)]) == [3, 7]
    assert pool.starmap_async(tasks.add, [(1, 1)]).get(5) == [2]


def test_map_async_callback_gets_the_list(pool):
    got = []
    pool.map_async(tasks.square, range(4), callback=got.append).wait(5)
    assert got == [[0, 1, 4, 9]]


def test_map_raises_first_error_and_pool_goes_on(pool):
    with pytest.raises(ValueError, match="bad input 3"):
        pool.map(tasks.fail_on, range(10))
    assert pool.map(tasks.square, range(3)) == [0, 1, 4]


def test_imap_in_order_and_next_timeout(pool):
    it = pool.imap(tasks.square, range(20))
    assert next(it) == 0
    assert it.next(timeout=5) == 1
    assert list(it) == [x * x for x in range(2, 20)]
    slow = pool.imap(tasks.sleep_return, [1.0])
    with pytest.raises(multiprocessing.TimeoutError):
        slow.next(timeout=0.05)
    assert slow.next(timeout=5) is None


def test_imap_error_raises_at_its_place_and_iteration_continues(pool):
    it = pool.imap(tasks.fail_on, range(6), chunksize=2)
    got = []
    while True:
        try:
            got.append(next(it))
        except ValueError:
            got.append("err")
        except StopIteration:
            break
    assert got == [0, 1, 2, "err", 4, 5]


def test_imap_unordered_gives_everything(pool):
    assert sorted(pool.imap_unordered(tasks.square, range(1000))) == [x * x for x in range(1000)]


@pytest.mark.parametrize("chunksize", [1, 3, 1000])
def test_chunksize_is_honoured(pool, chunksize):
    assert pool.map(tasks.square, range(50), chunksize) == [x * x for x in range(50)]
    assert list(pool.imap(tasks.square, range(50), chunksize)) == [x * x for x in range(50)]


def test_lambdas_closures_and_local_functions(pool):
    k = 7
    assert pool.map(lambda x: x + k, range(3)) == [7, 8, 9]

    def local(x):
        return x * k

    assert list(pool.imap_unordered(local, [1])) == [7]
    assert pool.apply(lambda: os.getpid()) in pool.worker_pids()
    assert pool.address is None and pool.client is None  # this machine


def test_data_holding_a_lambda_travels(pool):
    assert pool.apply(lambda f: f(2), (lambda x: x * 21,)) == 42


def test_exception_keeps_type_message_and_remote_traceback(pool):
    with pytest.raises(tasks.CustomError, match="custom 5") as info:
        pool.apply(tasks.raise_custom, (5,))
    cause = info.value.__cause__
    assert isinstance(cause, forklift.RemoteTraceback)
    assert isinstance(cause, multiprocessing.pool.RemoteTraceback)  # what stdlib code checks for
    assert "raise_custom" in cause.tb and "tasks.py" in cause.tb
    text = "".join(traceback.format_exception(info.value))
    assert "raise CustomError" in text


def test_exception_that_cannot_be_rebuilt_arrives_with_its_text(pool):
    with pytest.raises(forklift.RemoteError) as info:
        pool.apply(tasks.raise_unrebuildable, (1,))
    assert "UnpicklableError" in str(info.value) and "1-two" in str(info.value)
    with pytest.raises(forklift.RemoteError, match="cannot pickle me 4"):
        pool.apply(tasks.raise_unpicklable, (4,))


def test_unpicklable_result_fails_only_its_task(pool):
    it = pool.imap(tasks.return_lock, range(5))
    out = []
    for _ in range(5):
        try:
            out.append(next(it))
        except forklift.SerializationError as exc:
            assert "task 2 of imap(return_lock)" in str(exc)
            assert "lock" in str(exc)
            out.append("err")
    assert out == [0, 1, "err", 3, 4]
    assert pool.map(tasks.square, range(3)) == [0, 1, 4]


def test_traceback_of_a_main_function_shows_its_file_line_and_source(tmp_path):
    script = tmp_path / "main_task.py"
    script.write_text(
        "import forklift\n"
        "\n"
        "def task(x):\n"
        "    raise ValueError(f'boom {x}')\n"
        "\n"
        "if __name__ == '__main__':\n"
        "    with forklift.Pool(1) as pool:\n"
        "        try:\n"
        "            pool.apply(task, (1,))\n"
        "        except ValueError as exc:\n"
        "            print(exc.__cause__)\n"
    )
    done = subprocess.run(
        [sys.executable, str(script)], capture_output=True, text=True, timeout=60, env=_env_with_src()
    )
    assert done.returncode == 0, done.stderr
    assert f'File "{script}", line 4, in task' in done.stdout  # not "<dynamic-code>"
    assert "raise ValueError(f'boom {x}')" in done.stdout


def _env_with_src():
    """This environment, importing the forklift under test in a child process."""
    src = os.path.dirname(os.path.dirname(forklift.__file__))
    return {**os.environ, "PYTHONPATH": os.pathsep.join([src, os.environ.get("PYTHONPATH", "")])}


def test_open_files_are_refused_as_arguments_results_and_in_closures(pool):
    with open(__file__) as text, open(__file__, "rb") as binary, socket.socket() as sock:
        # cloudpickle sent an open text file as a StringIO of its contents. The stdlib's own
        # words differ by version: "cannot pickle '_io.TextIOWrapper' object" up to 3.11,
        # "cannot pickle 'TextIOWrapper' instances" from 3.12.
        for bad, name in ((text, "TextIOWrapper"), (binary, "BufferedReader"), (sock, "socket")):
            refused = rf"cannot pickle '(_io\.)?{name}' (object|instances)"
            with pytest.raises(forklift.SerializationError, match=refused):
                pool.map(tasks.identity, [bad])
        refused = r"cannot pickle '(_io\.)?TextIOWrapper' (object|instances)"
        with pytest.raises(forklift.SerializationError, match=refused):
            pool.apply(lambda: text.readline())
    with pytest.raises(forklift.SerializationError, match=r"the result .*TextIOWrapper"):
        pool.apply(open, (__file__,))
    assert pool.apply(lambda f: f(2), (lambda x: x * 21,)) == 42  # lambdas and closures still travel


def test_unpicklable_result_is_also_the_stdlibs_maybe_encoding_error(pool):
    with pytest.raises(multiprocessing.pool.MaybeEncodingError) as info:
        pool.map(tasks.return_lock, range(4))
    err = info.value
    assert isinstance(err, forklift.SerializationError)
    assert str(err) == (
        "task 2 of map(return_lock): cannot pickle the result (a _thread.lock): "
        "TypeError: cannot pickle '_thread.lock' object"
    )
    assert err.exc == "TypeError(\"cannot pickle '_thread.lock' object\")"  # reprs, as the stdlib's
    assert err.value.startswith("<unlocked _thread.lock object")
    back = pickle.loads(pickle.dumps(err))  # it crossed from the worker; it crosses again
    assert (type(back), str(back), back.exc, back.value, back.task) == (
        type(err),
        str(err),
        err.exc,
        err.value,
        "task 2 of map(return_lock)",
    )
    with pytest.raises(forklift.SerializationError) as info:  # an argument: not a result's error
        pool.map(tasks.identity, [threading.Lock()])
    assert not isinstance(info.value, multiprocessing.pool.MaybeEncodingError)


def test_unpicklable_argument_names_task_and_type(pool):
    with pytest.raises(forklift.SerializationError, match=r"task 1 of map\(identity\).*lock") as info:
        pool.map(tasks.identity, [1, threading.Lock(), 3], chunksize=3)
    # SerializationError only (docs/guide.md says why); pickle's own error is its cause
    assert not isinstance(info.value, TypeError)
    assert type(info.value.__cause__) is TypeError
    assert str(info.value.__cause__) == "cannot pickle '_thread.lock' object"
    assert pool.apply(tasks.square, (3,)) == 9


def test_bad_input_errors(pool):
    with pytest.raises(TypeError):
        pool.map(42, [1])
    with pytest.raises(TypeError):
        pool.apply_async("not callable")
    with pytest.raises(TypeError):
        pool.imap(tasks.square, 5)
    with pytest.raises(ValueError):
        pool.map(tasks.square, [1], chunksize=0)
    with pytest.raises(TypeError):
        pool.map(tasks.square, [1], bogus=1)
    with pytest.raises(ValueError):
        forklift.Pool(0)
    with pytest.raises(ValueError):
        forklift.Pool(1, start_method="teleport")
    with pytest.raises(ValueError):
        forklift.Pool(1, retries=-1)
    with pytest.raises(ValueError):
        forklift.Pool(1, timeout=0)


def test_use_after_close_or_terminate():
    p = forklift.Pool(1)
    p.close()
    with pytest.raises(ValueError, match="Pool not running"):
        p.apply(tasks.square, (1,))
    p.join()
    p = forklift.Pool(1)
    p.terminate()
    with pytest.raises(ValueError, match="Pool not running"):
        p.map(tasks.square, [1])
    p.join()


def test_join_before_close_is_an_error():
    with forklift.Pool(1) as p, pytest.raises(ValueError, match="still running"):
        p.join()


def test_close_join_waits_for_submitted_work():
    p = forklift.Pool(2)
    results = [p.apply_async(tasks.sleep_return, (0.2, i)) for i in range(4)]
    it = p.imap(tasks.square, range(10))
    p.close()
    p.join()
    assert [r.get(0) for r in results] == [0, 1, 2, 3]
    assert list(it) == [x * x for x in range(10)]
    assert not p.worker_pids()


def test_terminate_fails_unfinished_results_instead_of_hanging():
    p = forklift.Pool(1)
    res = p.apply_async(tasks.sleep_return, (30,))
    time.sleep(0.2)
    t0 = time.monotonic()
    p.terminate()
    assert time.monotonic() - t0 < 5
    with pytest.raises(forklift.BrokenPoolError, match="terminated"):
        res.get(timeout=5)


def test_context_manager_terminates_workers():
    with forklift.Pool(2) as p:
        pids = p.worker_pids()
        assert len(pids) == 2
    time.sleep(0.1)
    for pid in pids:
        assert not _alive(pid)


def test_initializer_runs_in_each_worker(tmp_path):
    with forklift.Pool(2, initializer=_touch, initargs=(str(tmp_path),)) as p:
        p.map(tasks.square, range(20))
        pids = set(p.worker_pids())
    marks = {int(name) for name in os.listdir(tmp_path)}
    assert pids <= marks


def test_initializer_failure_breaks_the_pool_clearly():
    with forklift.Pool(1, initializer=_fail_init) as p:
        with pytest.raises(forklift.BrokenPoolError, match=r"initializer failed.*init went wrong"):
            p.map(tasks.square, range(4))
        with pytest.raises(forklift.BrokenPoolError):
            p.apply(tasks.square, (1,))


def test_maxtasksperchild_replaces_workers():
    with forklift.Pool(1, maxtasksperchild=3) as p:
        pids = p.map(tasks.pid_of, range(9))
    assert len(set(pids)) == 3
    assert all(pids.count(pid) == 3 for pid in set(pids))


def test_statistics_counts(pool):
    pool.map(tasks.square, range(10))
    with pytest.raises(ValueError):
        pool.apply(tasks.fail_on, (3,))
    stats = pool.statistics()
    assert stats.tasks_done >= 10 and stats.tasks_failed == 1 and stats.workers == 2


def test_pool_cannot_be_pickled(pool):
    import pickle

    with pytest.raises(NotImplementedError):
        pickle.dumps(pool)


def _touch(path):
    open(os.path.join(path, str(os.getpid())), "w").close()


def _fail_init():
    raise RuntimeError("init went wrong")


def _alive(pid):
    import psutil

    try:
        return psutil.Process(pid).status() != psutil.STATUS_ZOMBIE
    except psutil.NoSuchProcess:
        return False


def test_close_after_terminate_writes_to_no_reused_descriptor():
    # Regression: close() after the scheduler ended wrote a byte to its old wake-pipe
    # fd number, which by then could belong to someone else's pipe.
    p = forklift.Pool(1)
    p.terminate()
    r, w = os.pipe()
    os.set_blocking(r, False)
    try:
        p.close()
        with pytest.raises(BlockingIOError):
            os.read(r, 1)
    finally:
        os.close(r)
        os.close(w)


@pytest.mark.parametrize(
    ("kwargs", "error"),
    [
        ({"retries": None}, TypeError),
        ({"retries": 1.5}, TypeError),
        ({"timeout": "soon"}, TypeError),
        ({"timeout": -2}, ValueError),
        ({"max_tasks_per_child": 0}, ValueError),
        ({"max_memory": True}, TypeError),
        ({"processes": 2.0}, TypeError),
        ({"start_method": ""}, ValueError),  # was silently the default
        ({"start_method": 5}, TypeError),
        ({"progress": object()}, TypeError),  # progress is a bool, "workers" or a description
        ({"progress": 5}, TypeError),
        ({"context": 5}, TypeError),
        ({"timeout": float("nan")}, ValueError),
        ({"init_timeout": -1}, ValueError),
        ({"processes": 10**30}, ValueError),  # was a fork bomb that never returned
        ({"resume": []}, TypeError),
    ],
)
def test_constructor_rejects_bad_options_early(kwargs, error):
    with pytest.raises(error):
        forklift.Pool(**kwargs)


def test_a_raising_callback_is_logged_and_the_pool_goes_on(pool, caplog):
    def bad_callback(_):
        raise ValueError("bug in my callback")

    res = pool.map_async(tasks.square, range(4), callback=bad_callback)
    assert res.get(10) == [0, 1, 4, 9]
    assert pool.apply(tasks.square, (5,)) == 25
    assert "bug in my callback" in caplog.text


def test_calls_racing_the_end_of_the_pool_fail_at_once_never_hang():
    p = forklift.Pool(1)
    p.terminate()
    p._engine._accepting = True  # pretend the call passed its check just before the end
    t0 = time.monotonic()
    with pytest.raises(ValueError, match="Pool not running"):
        p.apply_async(tasks.square, (1,))
    with pytest.raises(ValueError, match="Pool not running"):
        p.map_async(tasks.square, [1, 2])
    assert time.monotonic() - t0 < 1


def test_a_short_map_does_not_wait_behind_a_long_task():
    # Before: the map's second chunk was prefetched behind the sleep and the map took 3 s.
    with forklift.Pool(2) as p:
        p.apply_async(tasks.sleep_return, (3,))
        time.sleep(0.2)
        t0 = time.monotonic()
        assert p.map(tasks.square, range(5)) == [0, 1, 4, 9, 16]
        assert time.monotonic() - t0 < 1.5


def test_a_context_may_be_named_or_given(tmp_path):
    import multiprocessing

    for context in ("spawn", multiprocessing.get_context("spawn"), forklift.get_context("spawn")):
        with forklift.Pool(1, context=context) as p:
            assert p.start_method == "spawn"
    with forklift.Executor(1, mp_context="fork") as ex:
        assert ex.submit(tasks.square, 3).result() == 9


def test_progress_given_per_call_is_checked_too(pool):
    with pytest.raises(TypeError, match="progress must be"):
        pool.map(tasks.square, range(3), progress=object())
    assert pool.map(tasks.square, range(3), progress=False) == [0, 1, 4]


def test_ctrl_c_while_apply_waits_for_a_queued_task_logs_nothing(caplog):
    """The cancelled call's future used to log a CancelledError traceback from its callback."""
    import threading

    with forklift.Pool(1) as p:
        busy = p.apply_async(tasks.sleep_return, (1.0,))
        timer = threading.Timer(0.2, os.kill, (os.getpid(), signal.SIGINT))
        timer.start()
        with pytest.raises(KeyboardInterrupt):
            p.apply(tasks.square, (2,))  # queued behind the busy one
        timer.join()
        assert busy.get(10) is None
        assert p.apply(tasks.square, (3,)) == 9
    assert "CancelledError" not in caplog.text and "Traceback" not in caplog.text


def test_long_calls_of_a_function_measured_fast_still_spread_over_the_workers():
    """The chunker seeds a call with what it learned of its function: two apply_async of 1 s
    after a map of 0 s went into one chunk, on one worker (2 s instead of 1)."""
    with forklift.Pool(2) as p:
        p.map(tasks.busy_for, [0.0] * 100)
        t0 = time.monotonic()
        pending = [p.apply_async(tasks.busy_for, (1.0,)) for _ in range(2)]
        pids = {r.get(10) for r in pending}
        assert len(pids) == 2 and time.monotonic() - t0 < 1.8
    with forklift.Executor(2) as ex:
        list(ex.map(tasks.busy_for, [0.0] * 100))
        t0 = time.monotonic()
        pids = {f.result(10) for f in [ex.submit(tasks.busy_for, 1.0) for _ in range(2)]}
        assert len(pids) == 2 and time.monotonic() - t0 < 1.8


@pytest.mark.parametrize(
    ("name", "value"),
    [("FORKLIFT_INIT_TIMEOUT", "nan"), ("FORKLIFT_INIT_TIMEOUT", "-1"), ("FORKLIFT_PREFETCH", "0"),
     ("FORKLIFT_CHUNK_SECONDS", "inf"), ("FORKLIFT_ZOMBIE_LIMIT", "x")],
)  # fmt: skip
def test_a_bad_tunable_in_the_environment_is_refused_by_name(name, value):
    """FORKLIFT_INIT_TIMEOUT=nan broke every timed pool's scheduler; -1 broke every pool."""
    import subprocess
    import sys

    env = {**os.environ, name: value}
    out = subprocess.run(
        [sys.executable, "-c", "import forklift._config"], env=env, capture_output=True, text=True, timeout=30
    )
    assert out.returncode != 0 and f"{name}={value!r}" in out.stderr, out.stderr

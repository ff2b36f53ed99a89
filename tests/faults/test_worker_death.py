"""Worker death while it holds tasks: only that task fails (or is retried); never a hang.

Every test runs under each start method (the ``start_method`` fixture) and under
pytest-timeout, which fails a hung test with the stacks of every thread.
"""

import concurrent.futures as cf
import signal
import time

import pytest

import forklift

import tasks

DEATHS = {
    "sigkill": (tasks.kill_self_on, -signal.SIGKILL, "SIGKILL"),
    "os_exit": (tasks.exit_on, 7, "exited with code 7"),
    "segfault": (tasks.segfault_on, -signal.SIGSEGV, "SIGSEGV"),
}


@pytest.fixture(params=sorted(DEATHS))
def death(request):
    return DEATHS[request.param]


def test_map_raises_worker_lost_for_that_task(start_method, death):
    fn, exitcode, words = death
    with forklift.Pool(2, start_method=start_method) as pool:
        t0 = time.monotonic()
        with pytest.raises(forklift.WorkerLostError) as info:
            pool.map(fn, range(8))
        assert time.monotonic() - t0 < 5
        err = info.value
        assert err.exitcode == exitcode and err.pid > 0
        assert words in str(err) and "task 3 of map" in str(err)
        assert pool.map(tasks.square, range(5)) == [0, 1, 4, 9, 16]  # the same pool goes on


def test_imap_unordered_delivers_every_other_result_once(start_method, death):
    fn = death[0]
    with forklift.Pool(2, start_method=start_method) as pool:
        it = pool.imap_unordered(fn, range(40))
        got, errors = [], []
        while True:
            try:
                got.append(next(it))
            except forklift.WorkerLostError as exc:
                errors.append(exc)
            except StopIteration:
                break
        assert sorted(got) == [x for x in range(40) if x != 3]  # none lost, none twice
        assert len(errors) == 1


def test_executor_fails_only_that_future(start_method, death):
    fn = death[0]
    with forklift.Executor(2, start_method=start_method) as ex:
        futures = [ex.submit(fn, x) for x in range(10)]
        outcomes = []
        for f in cf.as_completed(futures, timeout=30):
            outcomes.append(type(f.exception()).__name__ if f.exception() else f.result())
        assert outcomes.count("WorkerLostError") == 1
        assert sorted(o for o in outcomes if isinstance(o, int)) == [x for x in range(10) if x != 3]
        assert ex.submit(tasks.square, 4).result(10) == 16


def test_retries_rerun_the_task_on_a_fresh_worker(start_method, tmp_path):
    with forklift.Pool(2, start_method=start_method, retries=1) as pool:
        fn = _partial(tasks.fail_first_attempt, str(tmp_path))
        assert pool.map(fn, range(6)) == [x * 10 for x in range(6)]
        stats = pool.statistics()
        assert stats.retries == 6 and stats.workers_lost == 6


def test_retries_exhausted_gives_worker_lost(start_method):
    with forklift.Pool(1, start_method=start_method, retries=2) as pool:
        with pytest.raises(forklift.WorkerLostError):
            pool.apply(tasks.kill_self_on, (3,))
        assert pool.statistics().workers_lost == 3


def test_chunk_mates_of_a_crash_are_not_lost(start_method):
    # One chunk holds many items; the crash must fail item 3 only.
    with forklift.Pool(1, start_method=start_method) as pool:
        it = pool.imap(tasks.kill_self_on, range(10), chunksize=10)
        out = []
        for _ in range(10):
            try:
                out.append(next(it))
            except forklift.WorkerLostError:
                out.append("lost")
        assert out == [0, 1, 2, "lost", 4, 5, 6, 7, 8, 9]


def test_results_never_leak_into_the_next_call(start_method):
    with forklift.Pool(2, start_method=start_method) as pool:
        with pytest.raises(forklift.WorkerLostError):
            pool.map(tasks.kill_self_on, range(20))
        for _ in range(3):
            assert pool.map(tasks.square, range(4)) == [0, 1, 4, 9]


def test_worker_killed_from_outside_while_idle_is_replaced(start_method):
    import os

    with forklift.Pool(2, start_method=start_method) as pool:
        victim = pool.worker_pids()[0]
        os.kill(victim, signal.SIGKILL)
        time.sleep(0.3)
        assert pool.map(tasks.square, range(10)) == [x * x for x in range(10)]
        assert victim not in pool.worker_pids() and len(pool.worker_pids()) == 2


def _partial(fn, *args):
    import functools

    return functools.partial(fn, *args)

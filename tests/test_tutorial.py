"""The tutorial's Pool and ProcessPoolExecutor examples, corrected, on forklift.

The tutorial (shared/seed) shows these with multiprocessing.Pool and
concurrent.futures; its example 2 has typos (``it - pool.imap``, ``pritn``) and
expects a TimeoutError from ``get(timeout=3)`` on a 10 s sleep.
"""

import multiprocessing
import os
import random
import time
from concurrent.futures import as_completed
from statistics import mean

import pytest

import forklift


def long_time_task(name):
    start = time.time()
    time.sleep(random.random() * 0.2)
    return name, os.getpid(), time.time() - start


def f(x):
    return x * x


def fib(n):
    return 1 if n <= 2 else fib(n - 1) + fib(n - 2)


def random_sleep(n):
    time.sleep(n)
    return n


def test_example1_apply_async_close_join():
    p = forklift.Pool(4)
    results = [p.apply_async(long_time_task, args=(i,)) for i in range(5)]
    p.close()
    p.join()
    assert sorted(r.get()[0] for r in results) == [0, 1, 2, 3, 4]


def test_example2_with_statement():
    with forklift.Pool(processes=4) as pool:
        result = pool.apply_async(f, (10,))
        assert result.get(timeout=1) == 100
        assert pool.map(f, range(10)) == [0, 1, 4, 9, 16, 25, 36, 49, 64, 81]
        it = pool.imap(f, range(10))
        assert next(it) == 0
        assert next(it) == 1
        assert it.next(timeout=1) == 4
        result = pool.apply_async(time.sleep, (10,))
        with pytest.raises(multiprocessing.TimeoutError):
            result.get(timeout=0.3)  # the tutorial waits 3 s; the point is the same


def test_row_means():
    x = [list(range(10)), list(range(20, 30)), list(range(50, 60)), list(range(80, 90))]
    with forklift.Pool(5) as p:
        assert p.map(mean, x) == [4.5, 24.5, 54.5, 84.5]


def test_executor_fib_as_completed():
    with forklift.Executor(3) as executor:
        all_task = [executor.submit(fib, num) for num in range(15, 22)]
        data = sorted(future.result() for future in as_completed(all_task))
    assert data == sorted(fib(n) for n in range(15, 22))


def test_executor_io_sleeps_overlap():
    with forklift.Executor(3) as executor:
        start = time.time()
        all_task = [executor.submit(random_sleep, num) for num in [0.2] * 6]
        assert [fut.result() for fut in as_completed(all_task)] == [0.2] * 6
        assert time.time() - start < 0.2 * 6  # ran in parallel, not one by one


def test_manager_queue_not_needed_for_results():
    """The tutorial passes a Manager().Queue to Pool tasks; results come back directly here."""
    with forklift.Pool(2) as po:
        assert sorted(po.imap_unordered(f, range(5))) == [0, 1, 4, 9, 16]

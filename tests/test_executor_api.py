"""forklift.Executor: the concurrent.futures API."""

import concurrent.futures as cf
import os
import time

import pytest

import forklift

import tasks


def test_submit_and_as_completed(executor):
    futures = [executor.submit(tasks.square, i) for i in range(20)]
    assert isinstance(futures[0], cf.Future)
    assert sorted(f.result() for f in cf.as_completed(futures, timeout=10)) == [i * i for i in range(20)]
    done, not_done = cf.wait(futures, timeout=10)
    assert len(done) == 20 and not not_done


def test_submit_kwargs_and_exceptions(executor):
    assert executor.submit(tasks.add, 1, b=2).result(5) == 3
    fut = executor.submit(tasks.raise_custom, 1)
    with pytest.raises(tasks.CustomError):
        fut.result(5)
    assert isinstance(fut.exception(), tasks.CustomError)
    assert isinstance(fut.exception().__cause__, forklift.RemoteTraceback)
    assert isinstance(fut.exception().__cause__, cf.process._RemoteTraceback)  # what the stdlib chains


def test_map_is_ordered_lazy_and_multi_iterable(executor):
    assert list(executor.map(tasks.square, range(50))) == [i * i for i in range(50)]
    assert list(executor.map(tasks.add, [1, 2, 3], [10, 20])) == [11, 22]
    assert list(executor.map(tasks.square, range(10), chunksize=3)) == [i * i for i in range(10)]


def test_map_timeout_counts_from_the_call(executor):
    results = executor.map(tasks.sleep_return, [0.0, 5.0], timeout=0.5)
    assert next(results) is None
    with pytest.raises(cf.TimeoutError):
        next(results)


def test_map_error_is_raised_at_its_item(executor):
    results = executor.map(tasks.fail_on, range(6))
    assert [next(results) for _ in range(3)] == [0, 1, 2]
    with pytest.raises(ValueError):
        next(results)


def test_cancel_a_pending_future():
    with forklift.Executor(1) as ex:
        blocker = ex.submit(tasks.sleep_return, 0.5, "done")
        queued = [ex.submit(tasks.square, i) for i in range(5)]
        assert queued[-1].cancel()
        assert queued[-1].cancelled()
        assert blocker.result(5) == "done"
        assert [f.result(5) for f in queued[:-1]] == [0, 1, 4, 9]


def test_shutdown_wait_and_cancel_futures():
    ex = forklift.Executor(1)
    first = ex.submit(tasks.sleep_return, 0.3, 1)
    rest = [ex.submit(tasks.sleep_return, 0.3, i) for i in range(5)]
    time.sleep(0.1)
    ex.shutdown(wait=True, cancel_futures=True)
    assert first.result(0) == 1
    assert sum(f.cancelled() for f in rest) >= 3
    with pytest.raises(RuntimeError):
        ex.submit(tasks.square, 1)


def test_shutdown_waits_for_all_futures():
    ex = forklift.Executor(2)
    futures = [ex.submit(tasks.sleep_return, 0.1, i) for i in range(6)]
    ex.shutdown(wait=True)
    assert [f.result(0) for f in futures] == list(range(6))
    assert not ex.worker_pids()


def test_with_block_waits_on_normal_exit():
    with forklift.Executor(2) as ex:
        fut = ex.submit(tasks.sleep_return, 0.2, "ok")
    assert fut.result(0) == "ok"


def test_bad_input(executor):
    with pytest.raises(TypeError):
        executor.submit(None)
    with pytest.raises(TypeError):
        executor.map(tasks.square)
    with pytest.raises(ValueError):
        forklift.Executor(0)


def test_unpicklable_argument_fails_that_future_only(executor):
    import threading

    bad = executor.submit(tasks.identity, threading.Lock())
    good = executor.submit(tasks.square, 3)
    with pytest.raises(forklift.SerializationError, match="lock"):
        bad.result(5)
    assert good.result(5) == 9


def test_many_tiny_submits_are_batched_and_each_future_gets_its_own_result(executor):
    t0 = time.monotonic()
    futures = [executor.submit(tasks.square, i) for i in range(5000)]
    assert [f.result(30) for f in futures] == [i * i for i in range(5000)]
    assert time.monotonic() - t0 < 10  # one message per task would be far slower here


def test_cancelled_futures_inside_a_batch_never_run(tmp_path):
    import functools

    with forklift.Executor(1) as ex:
        blocker = ex.submit(tasks.sleep_return, 0.5, "done")
        fn = functools.partial(tasks.count_calls, str(tmp_path))
        futures = [ex.submit(fn, i) for i in range(10)]
        assert futures[3].cancel() and futures[7].cancel()
        assert blocker.result(10) == "done"
        done = [f.result(10) for i, f in enumerate(futures) if i not in (3, 7)]
    assert done == [0, 1, 2, 4, 5, 6, 8, 9]
    ran = sorted(int(name.split("-")[1]) for name in os.listdir(tmp_path))
    assert ran == [0, 1, 2, 4, 5, 6, 8, 9]


def test_interleaved_functions_and_options(executor):
    futures = []
    for i in range(200):
        futures.append(executor.submit(tasks.square, i))
        futures.append(executor.submit(tasks.add, i, b=1))
    assert [f.result(10) for f in futures] == [v for i in range(200) for v in (i * i, i + 1)]


def test_per_call_options_through_options_view():
    with forklift.Executor(2) as ex:
        slow = ex.options(timeout=0.3).submit(tasks.sleep_return, 30)
        with pytest.raises(forklift.TaskTimeout):
            slow.result(10)
        assert ex.submit(tasks.sleep_return, 0.5, "no timeout here").result(10) == "no timeout here"
        assert list(ex.options(retries=1).map(tasks.square, range(3))) == [0, 1, 4]
        assert ex.options(retries=2).submit(tasks.add, 1, b=2).result(10) == 3
        with pytest.raises(ValueError):
            ex.options(timeout=-1)


@pytest.mark.parametrize("timeout", [0, -1])
def test_map_with_a_deadline_already_past_times_out_as_the_stdlib_does(executor, timeout):
    """concurrent.futures takes timeout=0 (an immediate deadline); it was refused here."""
    import concurrent.futures

    it = executor.map(tasks.sleep_return, [0.5], timeout=timeout)
    with pytest.raises(concurrent.futures.TimeoutError):
        next(it)


def test_mp_context_may_be_a_name_or_a_context_and_nothing_else():
    import multiprocessing

    with forklift.Executor(1, mp_context=multiprocessing.get_context("spawn")) as ex:
        assert ex.submit(tasks.square, 4).result() == 16
    with pytest.raises(TypeError, match="mp_context must be"):
        forklift.Executor(1, mp_context=5)

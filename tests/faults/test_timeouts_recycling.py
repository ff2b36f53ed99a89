"""Per-task timeouts (the worker and its children are killed) and worker recycling."""

import os
import time

import psutil
import pytest

import forklift

import tasks


def test_timeout_fails_only_the_overdue_task_in_time(start_method):
    with forklift.Pool(2, start_method=start_method, timeout=1.0) as pool:
        it = pool.imap(tasks.hang_on, range(8))
        t0 = time.monotonic()
        out = []
        for _ in range(8):
            try:
                out.append(next(it))
            except forklift.TaskTimeout as exc:
                out.append(("timeout", time.monotonic() - t0))
                assert isinstance(exc, TimeoutError) and "task 3 of imap(hang_on)" in str(exc)
        assert [o for o in out if not isinstance(o, tuple)] == [0, 1, 2, 4, 5, 6, 7]
        elapsed = next(o[1] for o in out if isinstance(o, tuple))
        assert 1.0 <= elapsed < 2.0 + 0.5  # delivered within timeout + 1 s (+ start-up)
        assert pool.statistics().timeouts == 1
        assert pool.map(tasks.square, range(4)) == [0, 1, 4, 9]


def test_timeout_kills_the_tasks_children(start_method, tmp_path):
    pidfile = tmp_path / "child.pid"
    with forklift.Pool(1, start_method=start_method) as pool:
        res = pool.apply_async(tasks.spawn_child_and_hang, (str(pidfile),), timeout=1.0)
        with pytest.raises(forklift.TaskTimeout):
            res.get(timeout=10)
        child = int(pidfile.read_text())
        assert _gone_within(child, 2.0)


def test_timeout_with_retries_then_success(start_method, tmp_path):
    # The first attempt of each item hangs past the timeout; the retry succeeds.
    with forklift.Pool(2, start_method=start_method, timeout=0.5, retries=1) as pool:
        fn = _partial(_hang_first_time, str(tmp_path))
        assert pool.map(fn, range(3)) == [0, 10, 20]


def test_per_call_timeout_overrides_pool_default(start_method):
    with forklift.Pool(1, start_method=start_method) as pool:
        with pytest.raises(forklift.TaskTimeout):
            pool.apply(tasks.sleep_return, (30,), timeout=0.3)
        assert pool.apply(tasks.sleep_return, (0.1, "ok")) == "ok"


def test_executor_timeout(start_method):
    with forklift.Executor(2, start_method=start_method, timeout=0.5) as ex:
        slow = ex.submit(tasks.sleep_return, 30)
        fast = ex.submit(tasks.square, 3)
        with pytest.raises(forklift.TaskTimeout):
            slow.result(10)
        assert fast.result(10) == 9


def test_max_tasks_per_child_counts_tasks_not_chunks(start_method):
    with forklift.Pool(2, start_method=start_method, max_tasks_per_child=5) as pool:
        pids = pool.map(tasks.pid_of, range(40))
    assert len(pids) == 40
    assert max(pids.count(p) for p in set(pids)) <= 5
    assert len(set(pids)) >= 8


def test_max_memory_replaces_a_worker_after_its_task(start_method):
    # Each task leaks 40 MB into the worker; past 150 MB RSS the worker is replaced.
    with forklift.Pool(1, start_method=start_method, max_memory=150 << 20) as pool:
        pids = pool.map(tasks.leak_memory, range(12), chunksize=1)
    assert len(pids) == 12
    assert len(set(pids)) >= 3
    assert max(pids.count(p) for p in set(pids)) <= 5


def _hang_first_time(marker_dir, x):
    marker = os.path.join(marker_dir, f"hang-{x}")
    if not os.path.exists(marker):
        open(marker, "w").close()
        time.sleep(3600)
    return x * 10


def _partial(fn, *args):
    import functools

    return functools.partial(fn, *args)


def _gone_within(pid, seconds):
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        try:
            if psutil.Process(pid).status() == psutil.STATUS_ZOMBIE:
                return True
        except psutil.NoSuchProcess:
            return True
        time.sleep(0.05)
    return False


def test_timeout_fires_while_the_task_holds_the_gil_and_a_big_call_waits(start_method):
    # Regression: a big argument prefetched to the busy worker blocked the scheduler's
    # send (the worker's reader thread could not run), and with it every timeout check.
    with forklift.Executor(1, start_method=start_method) as ex:
        assert ex.submit(tasks.nbytes, b"").result(10) == 0
        t0 = time.monotonic()
        hog = ex.options(timeout=1.0).submit(tasks.hog_gil, 10**10)
        time.sleep(0.3)
        big = ex.submit(tasks.nbytes, bytes(4 << 20))
        with pytest.raises(forklift.TaskTimeout):
            hog.result(30)
        assert time.monotonic() - t0 < 2.5
        assert big.result(30) == 4 << 20


@pytest.mark.parametrize("where", ["unpickling the arguments", "pickling the result"])
def test_timeout_covers_unpickling_and_pickling(start_method, where):
    with forklift.Pool(1, start_method=start_method, timeout=0.5) as pool:
        t0 = time.monotonic()
        if where == "unpickling the arguments":
            res = pool.apply_async(tasks.take, (tasks.SleepAtUnpickle(),))
        else:
            res = pool.apply_async(tasks.make, ("SleepAtPickle",))
        with pytest.raises(forklift.TaskTimeout):
            res.get(30)
        assert time.monotonic() - t0 < 2.5
        assert pool.apply(tasks.square, (4,)) == 16


def test_a_task_whose_child_is_killed_first_still_times_out(start_method):
    # The timeout kills the worker's children before the worker: the task may see its
    # child die (-9) and send that as its result before it is killed itself. It must not count.
    with forklift.Pool(2, start_method=start_method, timeout=0.5) as p:
        results = [p.apply_async(tasks.run_sleeping_child, (60,)) for _ in range(4)]
        for r in results:
            with pytest.raises(forklift.TaskTimeout):
                r.get(timeout=30)
        assert p.apply(tasks.square, (4,)) == 16


def test_a_timed_out_worker_answering_its_next_chunk_does_not_break_the_pool(start_method):
    # After the child dies first, the worker may answer its timed-out chunk and then its
    # prefetched next one before it is killed; neither answer counts (found by review).
    with forklift.Pool(2, start_method=start_method) as p:
        for _ in range(3):
            with pytest.raises(forklift.TaskTimeout):
                p.map(tasks.slow_child_or_echo, ["slow", 1, 2, 3, 4, 5], timeout=0.3)
        assert p.map(tasks.slow_child_or_echo, [1, 2, 3]) == [1, 2, 3]


def _hang_forever():
    time.sleep(3600)


@pytest.mark.parametrize("how", ["init_timeout", "pool timeout", "call timeout"])
def test_an_initializer_that_never_returns_fails_every_call_clearly(start_method, how, monkeypatch):
    """Every call hung for ever, even with timeout=; now the start is bounded too."""
    from forklift import _config

    monkeypatch.setattr(_config, "INIT_TIMEOUT", 1.0)  # the default when a task timeout is set
    options = {"init_timeout": 1.0} if how == "init_timeout" else {}
    if how == "pool timeout":
        options["timeout"] = 5.0
    with forklift.Pool(2, start_method=start_method, initializer=_hang_forever, **options) as pool:
        t0 = time.monotonic()
        with pytest.raises(forklift.BrokenPoolError) as info:
            pool.apply(tasks.square, (3,), **({"timeout": 5.0} if how == "call timeout" else {}))
        assert time.monotonic() - t0 < 4.0
        assert "was not ready 1 s after it started" in str(info.value)
        assert "initializer did not return" in str(info.value)


@pytest.mark.parametrize("timeout", [float("inf"), 1e300, 1e9])
def test_an_endless_timeout_is_no_timeout_and_breaks_nothing(timeout):
    """timeout=inf crashed the scheduler (int(inf * 1e9)) and failed every job of the pool."""
    with forklift.Pool(2) as pool:
        other = pool.apply_async(tasks.sleep_return, (0.5, "other"))
        assert pool.apply(tasks.sleep_return, (0.2, 7), timeout=timeout) == 7
        assert pool.map(tasks.square, range(5), timeout=timeout) == [0, 1, 4, 9, 16]
        assert other.get(10) == "other"


@pytest.mark.parametrize("bad", [float("nan"), -1, 0, "1", True])
def test_a_bad_timeout_is_refused_at_the_call_and_breaks_nothing(bad):
    with forklift.Pool(2) as pool:
        with pytest.raises((TypeError, ValueError)):
            pool.apply(tasks.square, (2,), timeout=bad)
        with pytest.raises((TypeError, ValueError)):
            forklift.Pool(1, timeout=bad)
        with pytest.raises((TypeError, ValueError)):
            forklift.Pool(1, init_timeout=bad)
        assert pool.apply(tasks.square, (3,)) == 9


@pytest.mark.needs("prctl")
def test_a_worker_collecting_its_tasks_dead_daemons_retires(monkeypatch, tmp_path):
    """Workers are subreapers: a task's daemon is re-parented to its worker, and stays a
    zombie there once it exits. Past ZOMBIE_LIMIT the worker retires (init reaps them)."""
    monkeypatch.setenv("FORKLIFT_ZOMBIE_LIMIT", "3")
    with forklift.Pool(1, start_method="spawn") as pool:  # spawn: the worker reads the limit
        first = pool.worker_pids()
        for i in range(6):
            pool.apply(tasks.daemon_that_exits, (str(tmp_path / f"d{i}"),))
        assert pool.worker_pids() != first
        assert pool.statistics().workers_lost == 0  # a retirement, not a loss


def test_a_worker_does_not_retire_for_its_tasks_own_unwaited_children(monkeypatch, tmp_path):
    """Unwaited children of the task itself (a later task may wait for them) are not a
    daemon's leftovers: with more than ZOMBIE_LIMIT of them the worker used to retire."""
    monkeypatch.setenv("FORKLIFT_ZOMBIE_LIMIT", "3")
    with forklift.Pool(1, start_method="spawn") as pool:
        first = pool.worker_pids()
        for _ in range(6):
            pool.apply(tasks.start_and_keep_child, ())
        assert pool.worker_pids() == first
        assert pool.apply(tasks.wait_kept_children, ()) == [0] * 6  # the statuses are still there


def test_a_timed_out_item_ends_its_call_only_after_its_chunk_mates_ran_again():
    # Items 0-2 ran before item 3 of the same chunk overran: their results died with the
    # worker, so they run again. Failing item 3 must not finish the call while they are out
    # of it: the closed pool then stopped without running them and the imap waited for ever.
    pool = forklift.Pool(1)
    try:
        it = pool.imap(tasks.hang_on, range(4), chunksize=4, timeout=0.3)
        pool.close()
        out = []
        for _ in range(4):
            try:
                out.append(it.next(timeout=10))
            except forklift.TaskTimeout:
                out.append("timeout")
        assert out == [0, 1, 2, "timeout"]
        pool.join()
    finally:
        pool.terminate()


def _slow_module(tmp_path, monkeypatch, name, seconds):
    """A module whose import takes ``seconds``; spawn workers find it through sys.path."""
    source = f"import time\ntime.sleep({seconds})\n\ndef double(x):\n    return 2 * x\n"
    (tmp_path / f"{name}.py").write_text(source)
    monkeypatch.syspath_prepend(str(tmp_path))
    import importlib

    return importlib.import_module(name)


def test_importing_the_tasks_module_does_not_count_against_the_task_timeout(tmp_path, monkeypatch):
    """A fresh spawn worker imports the function's module before the first item: start-up,
    bounded like an initializer (init_timeout), not by the per-task timeout. Charged to the
    task, a module slower to import than the timeout failed every attempt in every new worker."""
    mod = _slow_module(tmp_path, monkeypatch, "slow_import_for_timeout", 1.0)
    with forklift.Pool(1, start_method="spawn", timeout=0.3) as pool:
        assert pool.apply(mod.double, (21,)) == 42
        assert pool.statistics().timeouts == 0


def test_an_import_that_hangs_is_still_bounded_by_init_timeout(tmp_path, monkeypatch):
    mod = _slow_module(tmp_path, monkeypatch, "hanging_import_for_timeout", 0.0)
    (tmp_path / "hanging_import_for_timeout.py").write_text(
        "import os, time\nif os.environ.get('HANG_ON_IMPORT'):\n    time.sleep(3600)\n\n"
        "def double(x):\n    return 2 * x\n"
    )
    monkeypatch.setenv("HANG_ON_IMPORT", "1")
    start = time.monotonic()
    with (
        forklift.Pool(1, start_method="spawn", timeout=0.3, init_timeout=1.5) as pool,
        pytest.raises(forklift.TaskTimeout),
    ):
        pool.apply(mod.double, (21,))
    assert time.monotonic() - start < 20

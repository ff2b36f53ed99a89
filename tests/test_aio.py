"""``forklift.aio``: awaited calls, results through the loop, and cancellation that kills."""

import asyncio
import functools
import gc
import itertools
import os
import time

import psutil
import pytest

import forklift
import forklift.aio
from forklift.errors import TaskTimeout, WorkerLostError

import tasks

sleep_60 = functools.partial(tasks.spawn_child_and_sleep, seconds=60)


def run(coro):
    return asyncio.run(coro)


def gone(pid):
    """The process ended (a zombie counts: it runs no more)."""
    try:
        return psutil.Process(pid).status() == psutil.STATUS_ZOMBIE
    except psutil.NoSuchProcess:
        return True


async def wait_gone(pids, within=10.0):
    deadline = time.monotonic() + within
    while not all(gone(p) for p in pids):
        assert time.monotonic() < deadline, f"still running: {[p for p in pids if not gone(p)]}"
        await asyncio.sleep(0.02)


async def read_pids(pidfile, within=30.0):
    """The pids a task wrote (its worker's and its child's), once it has written them."""
    deadline = time.monotonic() + within
    while True:
        try:
            text = pidfile.read_text()
            if text.endswith("\n"):
                return [int(p) for p in text.split()]
        except FileNotFoundError:
            pass
        assert time.monotonic() < deadline, "the task never started"
        await asyncio.sleep(0.02)


# -- the calls ------------------------------------------------------------------------------
def test_every_call_returns_what_the_sync_pool_returns():
    async def main():
        async with forklift.aio.Pool(2) as pool:
            assert await pool.apply(tasks.add, (2, 3)) == 5
            assert await pool.apply(tasks.add, (1,), {"b": 2}) == 3
            assert await pool.map(tasks.square, range(50)) == [x * x for x in range(50)]
            assert await pool.starmap(tasks.add, [(1, 2), (3, 4)]) == [3, 7]
            assert await pool.submit(tasks.add, 1, b=2) == 3
            futures = [pool.submit(tasks.square, x) for x in range(20)]
            assert await asyncio.gather(*futures) == [x * x for x in range(20)]
            assert [r async for r in pool.imap(tasks.square, range(300))] == [x * x for x in range(300)]
            got = [r async for r in pool.imap_unordered(tasks.square, iter(range(300)), chunksize=7)]
            assert sorted(got) == [x * x for x in range(300)]
            assert [r async for r in pool.imap(tasks.square, [])] == []
            assert await pool.map(tasks.square, []) == []
            assert pool.processes == 2 and pool.statistics().workers == 2

    run(main())


def test_lambdas_and_a_long_stream_through_one_iterator():
    async def main():
        async with forklift.aio.Pool(2) as pool:
            assert await pool.apply(lambda x: x + 1, (1,)) == 2
            total = 0
            async for r in pool.imap_unordered(lambda x: x, range(20_000)):
                total += r
            assert total == sum(range(20_000))

    run(main())


def test_a_failed_task_raises_at_its_place_and_iteration_goes_on():
    async def main():
        async with forklift.aio.Pool(2) as pool:
            with pytest.raises(ValueError, match="bad input 3"):
                await pool.map(tasks.fail_on, range(6))
            with pytest.raises(ValueError):
                await pool.apply(tasks.fail_on, (3,))
            it = pool.imap(tasks.fail_on, range(6))
            got = []
            while True:
                try:
                    got.append(await it.__anext__())
                except ValueError:
                    got.append("error")
                except StopAsyncIteration:
                    break
            assert got == [0, 1, 2, "error", 4, 5]

    run(main())


def test_the_event_loop_keeps_running_while_calls_wait():
    """Nothing blocks the loop: a ticker runs on while a map, an apply and a stream wait."""

    async def main():
        ticks = 0

        async def ticker():
            nonlocal ticks
            while True:
                await asyncio.sleep(0.005)
                ticks += 1

        async with forklift.aio.Pool(2) as pool:
            t = asyncio.create_task(ticker())
            await pool.apply(tasks.sleep_return, (0.5,))
            after_apply = ticks
            await pool.map(tasks.sleep_return, [0.25] * 4)
            async for _ in pool.imap(tasks.sleep_return, [0.25] * 4):
                pass
            t.cancel()
        assert after_apply >= 20  # 0.5 s at 5 ms a tick, with room for a busy machine
        assert ticks >= 2 * after_apply

    run(main())


def test_consuming_results_already_here_still_lets_other_tasks_run():
    """An async for over ready results suspends now and then: the loop's other tasks are not
    starved while a fast stream is consumed (each step alone would never suspend)."""

    async def main():
        stamps = []

        async def ticker():
            loop = asyncio.get_running_loop()
            while True:
                stamps.append(loop.time())
                await asyncio.sleep(0)

        async with forklift.aio.Pool(2) as pool:
            it = pool.imap(tasks.square, range(300), buffersize=300)  # all 300 taken at once
            assert await it.__anext__() == 0
            await asyncio.sleep(0.5)  # every result is in
            t = asyncio.create_task(ticker())
            await asyncio.sleep(0)
            start = len(stamps)
            async for _ in it:
                end = time.monotonic() + 0.0005  # the consumer's own work: 0.5 ms an item
                while time.monotonic() < end:
                    pass
            t.cancel()
        during = stamps[start:]
        gaps = [b - a for a, b in itertools.pairwise(during)]
        assert len(during) > 10 and max(gaps) < 0.05

    run(main())


def test_options_of_the_sync_pool_apply():
    async def main():
        async with forklift.aio.Pool(2, timeout=0.5) as pool:
            with pytest.raises(TaskTimeout):
                await pool.apply(tasks.sleep_return, (30,))
            assert await pool.apply(tasks.sleep_return, (0, 7)) == 7
            with pytest.raises(TaskTimeout):
                await pool.map(tasks.sleep_return, [0, 30], timeout=0.5)
            assert await pool.map(tasks.sleep_return, [0.7], timeout=5) == [None]

    run(main())


def test_a_dead_worker_fails_its_call_or_is_retried(tmp_path):
    async def main():
        async with forklift.aio.Pool(2) as pool:
            with pytest.raises(WorkerLostError):
                await pool.apply(tasks.kill_self_on, (3,))
            items = [(str(tmp_path), x) for x in range(4)]
            assert await pool.starmap(tasks.fail_first_attempt, items, retries=1) == [0, 10, 20, 30]
            assert await pool.apply(tasks.add, (1, 1)) == 2  # the pool replaced its worker

    run(main())


def test_a_journaled_map_resumes(tmp_path):
    journal = tmp_path / "run.db"
    marks = tmp_path / "calls"
    marks.mkdir()

    async def main():
        async with forklift.aio.Pool(2) as pool:
            items = [(str(marks), x) for x in range(10)]
            assert await pool.starmap(tasks.count_calls, items, journal=journal, resume=True) == list(
                range(10)
            )
            calls = len(os.listdir(marks))
            assert await pool.starmap(tasks.count_calls, items, journal=journal, resume=True) == list(
                range(10)
            )
            assert len(os.listdir(marks)) == calls  # nothing ran again

    run(main())


# -- cancellation: what has not started is dropped, what runs is killed with its tree ---------
@pytest.mark.parametrize("how", ["timeout", "cancel", "wait_for"])
def test_cancelling_an_awaited_apply_kills_the_task_and_its_children(tmp_path, how):
    pidfile = tmp_path / "pids"

    async def main():
        async with forklift.aio.Pool(2) as pool:
            call = pool.apply(tasks.spawn_child_and_sleep, (str(pidfile), 60))
            if how == "timeout":
                with pytest.raises(asyncio.TimeoutError):
                    async with asyncio.timeout(1.0):
                        await call
            elif how == "wait_for":
                with pytest.raises(asyncio.TimeoutError):
                    await asyncio.wait_for(call, 1.0)
            else:
                task = asyncio.create_task(call)
                await read_pids(pidfile)
                task.cancel()
                with pytest.raises(asyncio.CancelledError):
                    await task
            worker, child = await read_pids(pidfile)
            await wait_gone([worker, child])
            deadline = time.monotonic() + 5  # the scheduler drops it once its kill_tree returns
            while worker in pool.pool.worker_pids():
                assert time.monotonic() < deadline, "the killed worker is still listed"
                await asyncio.sleep(0.02)
            assert await pool.apply(tasks.add, (2, 2)) == 4  # a new worker took its place

    if how == "timeout" and not hasattr(asyncio, "timeout"):
        pytest.skip("asyncio.timeout is Python 3.11+")
    run(main())


def test_cancelling_a_submitted_future_kills_it_and_leaves_the_others(tmp_path):
    pidfile = tmp_path / "pids"

    async def main():
        async with forklift.aio.Pool(2) as pool:
            doomed = pool.submit(tasks.spawn_child_and_sleep, str(pidfile), 60)
            kept = pool.submit(tasks.sleep_return, 1.0, "kept")
            worker, child = await read_pids(pidfile)
            assert doomed.cancel()
            await wait_gone([worker, child])
            assert await kept == "kept"
            assert doomed.cancelled()

    run(main())


def test_cancelling_the_consumer_of_an_imap_kills_its_running_tasks(tmp_path):
    async def main():
        async with forklift.aio.Pool(2) as pool:
            pidfiles = [tmp_path / f"pids{i}" for i in range(2)]
            got = []

            async def consume():
                async for r in pool.imap_unordered(sleep_60, [str(p) for p in pidfiles], 1):
                    got.append(r)

            with pytest.raises(asyncio.TimeoutError):
                await asyncio.wait_for(consume(), 2.0)
            pids = [p for f in pidfiles for p in await read_pids(f)]
            await wait_gone(pids)
            assert got == []
            assert await pool.map(tasks.square, range(4)) == [0, 1, 4, 9]

    run(main())


def test_aclose_stops_the_stream_and_kills_what_runs(tmp_path):
    pidfile = tmp_path / "pids"

    async def main():
        async with forklift.aio.Pool(2) as pool:
            it = pool.imap(sleep_60, [str(pidfile)], 1)
            waiting = asyncio.create_task(it.__anext__())
            pids = await read_pids(pidfile)
            waiting.cancel()
            with pytest.raises(asyncio.CancelledError):
                await waiting
            await it.aclose()
            await wait_gone(pids)

    run(main())


def test_leaving_the_block_terminates_and_close_lets_work_finish():
    async def main():
        pool = await forklift.aio.Pool(2).start()
        pending = pool.submit(tasks.sleep_return, 0.3, "done")
        await pool.close()
        assert pending.done() and pending.result() == "done"
        async with forklift.aio.Pool(1) as other:
            stuck = other.submit(tasks.sleep_return, 30)
            await asyncio.sleep(0.2)
        with pytest.raises(forklift.BrokenPoolError):
            await stuck

    run(main())


def test_clear_errors_for_a_pool_not_started_or_used_from_another_loop():
    pool = forklift.aio.Pool(1)
    with pytest.raises(RuntimeError, match="not started"):
        run(pool.apply(tasks.add, (1, 2)))

    async def start():
        return await pool.start()

    run(start())
    try:
        with pytest.raises(RuntimeError, match="event loop that started it"):
            run(pool.apply(tasks.add, (1, 2)))
    finally:
        pool.pool.terminate()


def test_it_runs_under_anyio_on_asyncio():
    anyio = pytest.importorskip("anyio")

    async def main():
        async with forklift.aio.Pool(2) as pool:
            assert await pool.map(tasks.square, range(5)) == [0, 1, 4, 9, 16]
            with anyio.move_on_after(0.5) as scope:
                await pool.apply(tasks.sleep_return, (30,))
            assert scope.cancelled_caught

    anyio.run(main, backend="asyncio")


def test_the_same_calls_on_a_local_dask_cluster():
    pytest.importorskip("distributed")

    async def main():
        async with forklift.aio.Pool(2, address="local") as pool:
            assert pool.pool.address is not None
            assert await pool.map(tasks.square, range(20)) == [x * x for x in range(20)]
            assert await pool.apply(tasks.add, (2, 5)) == 7
            assert sorted([r async for r in pool.imap_unordered(tasks.square, range(30))]) == [
                x * x for x in range(30)
            ]
            with pytest.raises(asyncio.TimeoutError):
                await asyncio.wait_for(pool.apply(tasks.sleep_return, (30,)), 0.5)
            assert await pool.submit(tasks.add, 1, 1) == 2

    run(main())
    gc.collect()  # the cluster's client and loop objects sit in cycles: close their sockets now

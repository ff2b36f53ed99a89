"""Bounded read-ahead, adaptive chunking and cancellation of lazy calls."""

import itertools
import time

import pytest

import forklift

import tasks


class CountingIterator:
    """An endless iterator that counts how many items were taken from it."""

    def __init__(self):
        self.taken = 0

    def __iter__(self):
        return self

    def __next__(self):
        self.taken += 1
        return self.taken


def test_endless_input_works_and_read_ahead_is_bounded(pool):
    source = CountingIterator()
    it = pool.imap(tasks.square, source)
    got = list(itertools.islice(it, 50_000))
    assert got == [x * x for x in range(1, 50_001)]
    time.sleep(0.3)
    # Not the endless input: only a bounded number of items beyond those consumed.
    assert source.taken - 50_000 <= 200_000 + 1
    taken = source.taken
    time.sleep(0.3)
    assert source.taken == taken  # nothing is read while nobody consumes


def test_endless_input_imap_unordered(pool):
    source = CountingIterator()
    got = list(itertools.islice(pool.imap_unordered(tasks.identity, source), 1000))
    assert len(set(got)) == 1000


def test_slow_tasks_read_ahead_stays_small(pool):
    source = CountingIterator()
    it = pool.imap(tasks.sleep_return, (0.01 for _ in source))
    for _ in range(20):
        next(it)
    assert source.taken <= 20 + 64 + 16


def test_executor_map_is_lazy_and_a_closed_map_is_not_drained():
    source = CountingIterator()
    with forklift.Executor(2) as ex:
        results = ex.map(tasks.sleep_return, (0.001 for _ in source))
        assert [next(results) for _ in range(10)] == [None] * 10
        taken = source.taken
        assert taken < 400  # 8 chunks of ~20 ms of work, not the endless input
        results.close()
    # shutdown (the with block) neither hung on the endless input nor read more of it
    assert source.taken == taken


def test_executor_map_consumed_after_the_with_block_is_complete():
    # The stdlib idiom: ProcessPoolExecutor.map submits everything at once.
    with forklift.Executor(2) as ex:
        untouched = ex.map(tasks.square, range(10))
        started = ex.map(tasks.square, range(100_000))
        first = next(started)
    assert list(untouched) == [x * x for x in range(10)]
    assert [first, *started] == [x * x for x in range(100_000)]


def test_executor_shutdown_without_wait_cuts_a_map_short_loudly():
    source = CountingIterator()
    ex = forklift.Executor(2)
    results = ex.map(tasks.sleep_return, (0.001 for _ in source))
    next(results)
    ex.shutdown(wait=False, cancel_futures=True)
    got = 1
    try:
        for _ in results:
            got += 1
    except RuntimeError as exc:
        assert "shut down before this map read all of its input" in str(exc)
    else:
        raise AssertionError("a map cut short ended quietly")
    assert got <= source.taken


def test_exception_in_the_with_block_does_not_drain_an_endless_map():
    source = CountingIterator()
    try:
        with forklift.Executor(2) as ex:
            results = ex.map(tasks.identity, source)
            next(results)
            raise LookupError("the block failed")
    except LookupError:
        pass
    assert source.taken <= 200_000 + 1


def test_threads_sharing_one_imap_iterator_get_every_item_once(pool):
    import threading

    it = pool.imap(tasks.identity, range(20_000), chunksize=50)
    got = [[] for _ in range(4)]

    def consume(out):
        for value in it:
            out.append(value)

    threads = [threading.Thread(target=consume, args=(g,)) for g in got]
    for t in threads:
        t.start()
    for t in threads:
        t.join(30)
    values = [v for g in got for v in g]
    assert sorted(values) == list(range(20_000))


def test_big_items_keep_read_ahead_small(pool):
    source = ((i, bytes(1 << 20)) for i in range(10_000))  # 1 MiB each
    it = pool.imap(tasks.identity, source)
    for _ in range(100):
        next(it)
    job = it._job
    assert job._pulled - job._handed <= 64  # MiBs held, not GiBs


def test_abandoned_iterator_cancels_the_rest(pool):
    it = pool.imap(tasks.sleep_return, [0.2] * 50, chunksize=1)
    next(it)
    del it
    time.sleep(0.5)
    t0 = time.monotonic()
    assert pool.apply(tasks.square, (3,)) == 9  # not stuck behind 48 leftover tasks
    assert time.monotonic() - t0 < 1.0


def test_input_iterator_error_reaches_the_consumer(pool):
    def broken():
        yield 1
        raise RuntimeError("input went wrong")

    it = pool.imap(tasks.square, broken())
    try:
        list(it)
    except RuntimeError as exc:
        assert "input went wrong" in str(exc)
    else:
        raise AssertionError("the input's error was swallowed")
    assert pool.map(tasks.square, [2]) == [4]


def test_tiny_tasks_are_chunked_without_a_chunksize(pool):
    # 100,000 tiny tasks one per message would take many seconds; chunked, well under one.
    t0 = time.monotonic()
    assert sum(pool.imap_unordered(tasks.identity, range(100_000))) == sum(range(100_000))
    assert time.monotonic() - t0 < 5.0


def test_long_tasks_are_not_chunked_together():
    with forklift.Pool(2) as pool:
        t0 = time.monotonic()
        pool.map(tasks.sleep_return, [0.3] * 4)
        assert time.monotonic() - t0 < 1.2  # 2 rounds of 2, not one worker doing 3


def test_iterator_protocol_and_no_items_lost_between_islice_and_next(pool):
    it = pool.imap(tasks.identity, range(10_000))
    assert iter(it) is it
    first = list(itertools.islice(it, 5))
    rest = list(it)
    assert first + rest == list(range(10_000))


def test_for_loop_can_resume_after_a_failed_item(pool):
    it = pool.imap(tasks.fail_on, range(6))
    got = []
    for _ in range(2):
        try:
            for x in it:
                got.append(x)
        except ValueError:
            got.append("err")
    assert got == [0, 1, 2, "err", 4, 5]


def test_executor_map_iterator_close_cancels():
    with forklift.Executor(1) as ex:
        results = ex.map(tasks.sleep_return, [0.2] * 20)
        next(results)
        results.close()
        t0 = time.monotonic()
        assert ex.submit(tasks.square, 2).result(5) == 4
        assert time.monotonic() - t0 < 1.0


def test_empty_inputs_end_at_once(pool):
    assert list(pool.imap_unordered(tasks.square, [])) == []
    assert list(pool.imap(tasks.square, iter([]))) == []
    with forklift.Executor(1) as ex:
        assert list(ex.map(tasks.square, [])) == []


def test_ordered_imap_keeps_workers_busy_behind_a_slow_head(pool):
    """Results held back for order do not count against the read-ahead: while item 0 runs
    1.5 s, the other worker goes on (it used to stop after a few chunks and idle)."""
    from tasks import finish_time

    done = list(pool.imap(finish_time, range(600)))
    behind = sum(1 for t in done[1:] if t < done[0])
    assert behind > 150, f"only {behind} tasks finished while the head ran"


def test_next_with_a_timeout_for_loops_and_close_share_one_position(pool):
    """The iterator steps its results in C (an itertools.chain over the chunks' runs); the
    Python next(timeout) steps the same run: mixed, no item is lost or seen twice."""
    n = 30_000
    it = pool.imap(tasks.identity, range(n))
    got = [next(it), it.next(timeout=10)]
    for x in it:
        got.append(x)
        if len(got) % 1000 == 0:
            got.append(it.next(10))
        if len(got) >= n // 2:
            break
    got += itertools.islice(it, 5)
    got += list(it)
    assert got == list(range(n))
    with pytest.raises(StopIteration):
        it.next(1)

    it = pool.imap(tasks.identity, range(100_000))
    assert next(it) == 0
    it.close()
    assert list(it) == []

"""Uses a demanding user will try: many threads at once, pools inside tasks, big payloads."""

import threading

import forklift

import tasks


def test_one_pool_used_from_many_threads_at_once(pool):
    errors, results = [], {}

    def work(k):
        try:
            got = pool.map(tasks.square, range(k * 100, k * 100 + 300))
            got2 = sorted(pool.starmap(tasks.add, [(k, i) for i in range(50)], chunksize=3))
            results[k] = (got, [pool.apply_async(tasks.square, (k,)).get(10) for _ in range(20)], got2)
        except BaseException as exc:
            errors.append(exc)

    threads = [threading.Thread(target=work, args=(k,)) for k in range(6)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(60)
    assert not errors
    for k in range(6):
        got, applied, _ = results[k]
        assert got == [x * x for x in range(k * 100, k * 100 + 300)]
        assert applied == [k * k] * 20


def test_a_task_may_start_its_own_pool():
    # multiprocessing.Pool workers are daemonic: "daemonic processes are not allowed to have children"
    with forklift.Pool(2) as pool:
        assert pool.map(tasks.nested_pool_sum, [10, 20]) == [285, 2470]


def test_big_arguments_and_results_travel(pool):
    size = 50 << 20
    assert pool.apply(tasks.nbytes, (bytes(size),)) == size
    assert len(pool.apply(tasks.make_bytes, (size,))) == size
    assert pool.map(tasks.nbytes, [bytes(8 << 20)] * 6) == [8 << 20] * 6

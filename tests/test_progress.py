"""progress="workers": the live table of what each worker does, and the snapshot behind it."""

from __future__ import annotations

import time

import pytest

import forklift
from forklift.progress import WORKER_COLUMNS, WorkersView, progress_bar

import tasks


def wait_for(predicate, timeout: float = 10.0):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        value = predicate()
        if value:
            return value
        time.sleep(0.02)
    raise AssertionError("condition not reached")


@pytest.fixture
def pool():
    with forklift.Pool(2) as p:
        p.map(tasks.square, range(4))  # both workers ready
        yield p


def test_worker_states_say_which_worker_runs_which_item(pool):
    engine = pool._engine
    states = engine.worker_states()
    assert sorted(s.pid for s in states) == sorted(pool.worker_pids())
    assert all(s.state == "idle" and s.first == -1 for s in states)
    done_before = sum(s.tasks_done for s in states)

    result = pool.starmap_async(tasks.sleep_return, [(1.0, "x")], chunksize=1)  # one item: index 0
    busy = wait_for(lambda: [s for s in engine.worker_states() if s.state == "running"])
    assert len(busy) == 1
    assert busy[0].call.startswith("starmap") and busy[0].first == busy[0].last == 0
    assert [s.state for s in engine.worker_states() if s.pid != busy[0].pid] == ["idle"]
    result.get(10)
    states = wait_for(lambda: [s for s in engine.worker_states() if s.state == "idle"] or None)
    assert sum(s.tasks_done for s in engine.worker_states()) == done_before + 1
    assert len(states) == 2


def test_timed_chunks_show_the_exact_item_and_its_start(pool):
    engine = pool._engine
    for items, index in (
        ([(1.5, "slow")] + [(0.0, i) for i in range(5)], 0),
        (
            [(0.0, i) for i in range(5)] + [(1.5, "slow")],
            5,
        ),
    ):
        result = pool.starmap_async(tasks.sleep_return, items, chunksize=6, timeout=30)
        busy = wait_for(
            lambda index=index: [
                s for s in engine.worker_states() if s.state == "running" and s.first == index
            ]
        )
        assert busy[0].last == index  # not the chunk's range 0-5: the item running now
        assert 0 < time.monotonic_ns() - busy[0].since_ns < 10**10
        assert "slow" in result.get(10)


def test_states_name_the_phase_a_worker_is_in(pool):
    engine = pool._engine
    for fn, arg, phase in [
        (tasks.identity, tasks.SlowToUnpickle(1), "unpickling"),
        (tasks.slow_to_pickle_result, 0.8, "pickling"),
    ]:
        result = pool.map_async(fn, [arg], chunksize=1)
        seen = wait_for(lambda phase=phase: {s.state for s in engine.worker_states()} & {phase})
        assert seen == {phase}
        result.get(10)


def test_workers_view_draws_one_row_per_worker(pool):
    view = progress_bar("workers", 1, "map(sleep_return)", pool._engine.worker_states)
    assert isinstance(view, WorkersView)
    try:
        result = pool.starmap_async(tasks.sleep_return, [(1.0, "x")], chunksize=1)
        rows = wait_for(lambda: [r for r in view.rows() if r[1] == "running"] and view.rows())
        assert len(rows) == 2 and all(len(r) == len(WORKER_COLUMNS) for r in rows)
        running = next(r for r in rows if r[1] == "running")
        assert running[2].startswith("starmap") and running[2].endswith("#0")
        assert running[3].endswith(" s") and running[6].endswith(" MiB") and float(running[5]) >= 0
        result.get(10)
    finally:
        view.close()


def test_progress_workers_on_a_call_gives_the_same_results(capsys):
    with forklift.Pool(2, progress="workers") as pool:
        assert pool.map(tasks.square, range(300)) == [x * x for x in range(300)]
        assert sorted(pool.imap_unordered(tasks.square, range(50))) == [x * x for x in range(50)]
    err = capsys.readouterr().err
    assert "300/300" in err and "50/50" in err
    assert "worker" in err and "done" in err  # the table's header


def test_progress_workers_on_a_cluster_is_the_plain_bar():
    bar = progress_bar("workers", 10, "map(f)", None)
    try:
        assert bar is not None and not isinstance(bar, WorkersView)
    finally:
        bar.close()

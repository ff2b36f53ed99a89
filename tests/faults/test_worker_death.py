"""Worker death while it holds tasks: only that task fails (or is retried); never a hang.

Every test runs under each start method (the ``start_method`` fixture) and under
pytest-timeout, which fails a hung test with the stacks of every thread.
"""

import concurrent.futures as cf
import json
import os
import signal
import subprocess
import sys
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


FORK_SERVER_KILL = r"""
import json, os, signal, sys, time
sys.path.insert(0, sys.argv[1])
import forklift, tasks
from forklift._engine.supervise import fork_server_pid

if __name__ == "__main__":
    with forklift.Pool(2, start_method="forkserver") as pool:
        out = {"deaths": []}
        for _ in range(int(sys.argv[2])):
            pending = [pool.apply_async(tasks.sleep_return, (0.5, i)) for i in range(4)]
            time.sleep(0.25)  # two run, two wait
            server = fork_server_pid()
            os.kill(server, signal.SIGKILL)
            try:
                out["results"] = [r.get(20) for r in pending]
            except Exception as exc:
                out["error"] = f"{type(exc).__name__}: {exc}"
                break
            out["deaths"].append(server)
            out["restarted"] = fork_server_pid() not in (None, server)
        out["stats"] = pool.statistics()._asdict()
    print(json.dumps(out))
"""


def _run_fork_server_kill(tmp_path, rounds):
    """Kill the fork server under a busy pool ``rounds`` times (in a child interpreter: the
    fork server belongs to the whole process)."""
    script = tmp_path / "kill_server.py"
    script.write_text(FORK_SERVER_KILL)
    tests_dir = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
    out = subprocess.run(
        [sys.executable, str(script), tests_dir, str(rounds)], capture_output=True, text=True, timeout=60
    )
    assert out.returncode == 0, out.stderr[-3000:]
    return json.loads(out.stdout.splitlines()[-1]), out.stderr


def test_the_fork_servers_death_blames_no_task_and_a_new_one_starts(tmp_path):
    """Killing the fork server kills every worker of the pool (PDEATHSIG): their tasks run
    again without spending a retry, a new fork server starts, and the log says why."""
    out, stderr = _run_fork_server_kill(tmp_path, rounds=1)
    assert out["results"] == [0, 1, 2, 3], out
    assert out["restarted"], out
    assert out["stats"]["tasks_failed"] == 0 and out["stats"]["workers_lost"] >= 2, out
    assert f"the fork server (pid {out['deaths'][0]}) died" in stderr
    assert "Traceback" not in stderr


IDLE_SERVER_KILL = r"""
import os, signal, sys, time
import forklift
from forklift._engine.supervise import fork_server_pid

if __name__ == "__main__":
    restarting = sys.argv[1] == "restarting"
    pool = forklift.Pool(2, start_method="forkserver", max_tasks_per_child=1 if restarting else None)
    pending = pool.map_async(abs, range(-150, 150), chunksize=1) if restarting else None
    if not restarting:
        pool.apply(abs, (-1,))
    os.kill(fork_server_pid(), signal.SIGKILL)
    time.sleep(0.5)
    assert pool.map(abs, range(-5, 5)) == [abs(x) for x in range(-5, 5)]
    if pending is not None:
        assert pending.get(20) == [abs(x) for x in range(-150, 150)]
    pool.terminate()
    print("ok")
"""


@pytest.mark.slow
@pytest.mark.parametrize("mode", ["idle", "restarting"])
def test_the_fork_servers_death_while_idle_or_restarting_workers_breaks_nothing(tmp_path, mode):
    """The sentinels fire as the server's descriptors close, before it is a zombie: the
    pool used to take its still running workers for lost, then start the next one on the
    dead server's socket (BrokenPoolError: EOFError), in 2 to 4 of 8 fresh interpreters."""
    script = tmp_path / "idle_kill.py"
    script.write_text(IDLE_SERVER_KILL)
    for _ in range(4):
        out = subprocess.run([sys.executable, str(script), mode], capture_output=True, text=True, timeout=60)
        assert out.returncode == 0 and out.stdout == "ok\n", out.stderr[-3000:]


def test_a_fork_server_that_keeps_dying_breaks_the_pool_clearly(tmp_path):
    out, _ = _run_fork_server_kill(tmp_path, rounds=3)
    assert out["error"].startswith("BrokenPoolError: the fork server died 3 times"), out


def test_a_worker_killed_from_outside_takes_its_tasks_children(start_method, tmp_path):
    """Not killed by the pool (the OOM killer, a kill -9): the task's children, which would
    be orphans now, die too (the worker's process group)."""
    import psutil

    pidfile = tmp_path / "child.pid"
    with forklift.Pool(1, start_method=start_method) as pool:
        pending = pool.apply_async(tasks.spawn_child_and_sleep, (str(pidfile), 60))
        deadline = time.monotonic() + 10
        while not (pidfile.exists() and pidfile.read_text().strip()) and time.monotonic() < deadline:
            time.sleep(0.02)
        worker, child = map(int, pidfile.read_text().split())
        os.kill(worker, signal.SIGKILL)
        with pytest.raises(forklift.WorkerLostError):
            pending.get(10)
        deadline = time.monotonic() + 2
        while psutil.pid_exists(child) and psutil.Process(child).status() != psutil.STATUS_ZOMBIE:
            assert time.monotonic() < deadline, "the task's child outlived its killed worker"
            time.sleep(0.02)


@pytest.mark.needs("proc")
def test_a_worker_killed_between_its_answer_and_the_parents_mapping_costs_a_rerun_not_an_error(
    monkeypatch,
):
    """A big result travels in memfd segments the worker holds until the parent maps them. A
    worker SIGKILLed right after it answered (the OOM killer, a kill_tree) takes them along:
    the parent's mapping fails with "shared object is gone". Under forkserver the death is
    reported later by the fork server, so the worker still looked alive and the chunk failed
    with ResultSerializationError; a random-kill stress hit that 3 times in 40 s. Now the
    parent waits for the death it can already see in /proc and runs the chunk again."""
    pytest.importorskip("numpy")
    import threading

    from forklift._engine import bulk, forks
    from forklift._engine.supervise import fork_server_pid

    import shm_tasks

    real_loads = bulk.loads
    killed = []

    def kill_then_load(payload, result_bulk, **kw):
        if result_bulk and not killed:
            # The fork server, stopped, cannot report the death yet (its usual lag, made
            # certain): the worker is a zombie in /proc, and "alive" to multiprocessing.
            server = fork_server_pid()
            os.kill(server, signal.SIGSTOP)
            threading.Timer(0.5, os.kill, (server, signal.SIGCONT)).start()
            for w in list(pool._engine._workers):
                os.kill(w.pid, signal.SIGKILL)
                killed.append(w.pid)
                while not forks.has_ended(w.pid):
                    time.sleep(0.001)
        return real_loads(payload, result_bulk, **kw)

    with forklift.Pool(1, start_method="forkserver") as pool:
        assert pool.apply(tasks.square, (3,)) == 9  # the worker is up
        monkeypatch.setattr(bulk, "loads", kill_then_load)
        result = pool.apply(shm_tasks.full_small, (7,))
        assert killed and float(result[0]) == 7.0 == float(result[-1])
        assert pool.statistics().tasks_failed == 0

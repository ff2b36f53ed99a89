"""forklift.Process: multiprocessing.Process plus result() and kill_tree(), in every start method."""

import multiprocessing
import os
import signal
import subprocess
import sys
import textwrap
import threading
import time

import psutil
import pytest

import forklift

import primitive_tasks as pt


class Doubler(forklift.Process):
    """A subclass overriding run(), as the tutorial's ChildProcess does."""

    def __init__(self, x):
        super().__init__()
        self.x = x

    def run(self):
        return self.x * 2


class SpawnDoubler(forklift.get_context("spawn").Process, Doubler):
    """The same, started with spawn."""


def started(ctx, target, *args):
    p = ctx.Process(target=target, args=args)
    p.start()
    return p


def test_result_is_the_targets_return_value_even_for_a_closure(start_method):
    ctx = forklift.get_context(start_method)
    offset = 40
    p = started(ctx, lambda n: n + offset, 2)  # a lambda: plain pickle refuses it
    assert p.result(timeout=30) == 42
    assert p.exitcode == 0 and not p.is_alive()
    assert p.result() == 42  # kept


@pytest.mark.parametrize("cls", [Doubler, SpawnDoubler])
def test_run_override_returns_its_value(cls):
    d = cls(21)
    d.start()
    assert d.result(timeout=30) == 42


def test_result_reraises_with_the_childs_traceback(start_method):
    p = started(forklift.get_context(start_method), pt.fail, "bad input")
    with pytest.raises(ValueError, match="bad input") as info:
        p.result(timeout=30)
    assert isinstance(info.value.__cause__, forklift.RemoteTraceback)
    assert "in fail" in str(info.value.__cause__)
    assert p.exitcode == 1  # multiprocessing's own handling is unchanged


@pytest.mark.parametrize(("how", "exitcode"), [("kill", -signal.SIGKILL), ("exit", 3)])
def test_a_process_that_dies_without_result_raises_worker_lost(start_method, how, exitcode):
    p = started(forklift.get_context(start_method), pt.die, how)
    with pytest.raises(forklift.WorkerLostError) as info:
        p.result(timeout=30)
    assert (info.value.pid, info.value.exitcode) == (p.pid, exitcode)
    assert p.name in str(info.value)


def test_result_times_out_then_arrives(start_method):
    event = forklift.Event()
    p = started(forklift.get_context(start_method), pt.wait_then_return, event, "late")
    with pytest.raises(TimeoutError, match="still running"):
        p.result(timeout=0.1)
    event.set()
    assert p.result(timeout=30) == "late"


def test_a_large_result_never_blocks_join(start_method):
    # A result sent through a pipe would keep the child waiting for a reader;
    # the memfd lets it exit, whether or not result() is ever called.
    size = 20 << 20
    p = started(forklift.get_context(start_method), pt.big, size)
    p.join(timeout=30)
    assert p.exitcode == 0
    assert len(p.result()) == size
    unread = started(forklift.get_context(start_method), pt.big, size)
    unread.join(timeout=30)
    assert unread.exitcode == 0
    unread.close()


def test_unpicklable_result_is_a_serialization_error():
    p = started(forklift.get_context("fork"), pt.unpicklable)
    with pytest.raises(forklift.SerializationError, match="result of process"):
        p.result(timeout=30)


def test_result_and_kill_tree_need_a_started_process():
    p = forklift.Process(target=pt.big, args=(1,))
    with pytest.raises(RuntimeError, match=r"start\(\)"):
        p.result()
    with pytest.raises(RuntimeError, match=r"start\(\)"):
        p.kill_tree()


class Holder:
    """An instance holding the stdlib's own Queue, Value and Lock: its bound method is the target."""

    def __init__(self, mp):
        self.q, self.v, self.lock = mp.Queue(), mp.Value("i", 41), mp.Lock()

    def run(self, *more_queues):
        with self.lock:
            self.v.value += 1
        for q in (self.q, *more_queues):
            q.put(("hi", self.v.value))
        return self.v.value


def test_a_bound_method_target_may_hold_stdlib_multiprocessing_objects(start_method):
    # As multiprocessing pickles it (spawn, forkserver): descriptors handed to the
    # child, not copied as bare numbers (the item was lost), a Value's mmap shared.
    h = Holder(multiprocessing.get_context(start_method))
    p = forklift.get_context(start_method).Process(target=h.run)
    p.start()
    assert h.q.get(timeout=30) == ("hi", 42)
    assert p.result(timeout=30) == 42 and h.v.value == 42


@pytest.fixture
def no_gc():
    """Descriptors counted: no collection midway (it would close earlier tests' garbage)."""
    import gc

    gc.collect()
    gc.disable()
    yield
    gc.enable()


def test_a_stdlib_queue_in_the_target_and_in_args_reaches_the_child_twice(start_method, no_gc):
    # Pickled apart, the target's Queue and args' own descriptors (spawn refuses
    # one number twice); the parent closes the copies it made once the child starts.
    h = Holder(multiprocessing.get_context(start_method))
    before = len(os.listdir("/proc/self/fd"))
    p = forklift.get_context(start_method).Process(target=h.run, args=(h.q,))
    p.start()
    assert [h.q.get(timeout=30), h.q.get(timeout=30)] == [("hi", 42)] * 2
    assert p.result(timeout=30) == 42
    p.close()
    assert len(os.listdir("/proc/self/fd")) == before


def test_a_process_dropped_without_close_frees_its_descriptors_at_once(start_method, no_gc):
    # Refcounting alone must free the popen (its sentinel): no cycle through the
    # handover that pickled the target's descriptors.
    h = Holder(multiprocessing.get_context(start_method))
    before = len(os.listdir("/proc/self/fd"))
    p = forklift.get_context(start_method).Process(target=h.run, args=(h.q,))
    p.start()
    assert p.result(timeout=30) == 42 and h.q.get(timeout=30) == h.q.get(timeout=30)
    del p
    assert len(os.listdir("/proc/self/fd")) == before


@pytest.mark.parametrize("method", ["forkserver", "spawn"])
def test_a_target_that_cannot_be_pickled_fails_at_start_saying_why(method):
    lock = threading.Lock()
    p = forklift.get_context(method).Process(target=lambda: lock)
    with pytest.raises(TypeError, match=r"cannot pickle '_thread\.lock' object"):
        p.start()


def test_a_closure_over_a_stdlib_queue_goes_by_value_with_its_descriptors(start_method):
    q = multiprocessing.get_context(start_method).Queue()
    p = forklift.get_context(start_method).Process(target=lambda: q.put("from a closure"))
    p.start()
    assert q.get(timeout=30) == "from a closure"
    assert p.result(timeout=30) is None


@pytest.mark.parametrize("method", ["fork", "forkserver", "spawn"])
def test_a_main_class_holding_stdlib_objects_works_by_reference_and_by_value(tmp_path, method):
    # The script's class: by reference (the child re-imports the script) and by
    # value (its copy under the __main__ guard), both pickled with the descriptors.
    script = tmp_path / "script.py"
    script.write_text(
        textwrap.dedent(f"""
        import multiprocessing
        import forklift

        class C:
            def run(self):
                with self.v.get_lock():
                    self.v.value += 1
                self.q.put(("top", self.v.value))

        if __name__ == "__main__":
            class Guarded(C):
                def run(self):
                    self.q.put("guarded")

            mp = multiprocessing.get_context("{method}")
            for c in (C(), Guarded()):
                c.q, c.v = mp.Queue(), mp.Value("i", 1)
                p = forklift.get_context("{method}").Process(target=c.run)
                p.start()
                print(c.q.get(timeout=30), p.result(timeout=30))
        """)
    )
    out = subprocess.run([sys.executable, str(script)], capture_output=True, text=True, timeout=50)
    assert out.stdout.splitlines() == ["('top', 2) None", "guarded None"], out.stderr


def test_a_target_that_is_not_callable_is_refused_at_start():
    p = forklift.Process(target=5)
    with pytest.raises(TypeError, match="target must be callable, not int"):
        p.start()
    assert p.pid is None  # nothing was started


def test_close_keeps_a_result_already_read():
    p = started(forklift.get_context("fork"), pt.big, 3)
    assert p.result(timeout=30) == b"xxx"
    p.close()
    assert p.result() == b"xxx"
    q = started(forklift.get_context("fork"), pt.big, 3)
    q.join(30)
    q.close()
    with pytest.raises(ValueError, match="closed"):
        q.result()


def test_kill_tree_kills_the_grandchildren(start_method):
    q = forklift.Queue()
    p = started(forklift.get_context(start_method), pt.start_grandchild, q)
    grandchild = psutil.Process(q.get(timeout=30))
    assert grandchild.pid in p.kill_tree(timeout=30)
    assert p.exitcode == -signal.SIGKILL
    deadline = time.monotonic() + 10
    while not dead(grandchild) and time.monotonic() < deadline:
        time.sleep(0.01)
    assert dead(grandchild)


def dead(proc):
    try:
        return proc.status() == psutil.STATUS_ZOMBIE  # an orphan waits for init to reap it
    except psutil.NoSuchProcess:
        return True


def test_the_process_api_of_multiprocessing():
    event = forklift.Event()
    p = forklift.get_context("fork").Process(
        target=pt.wait_then_return, args=(event, 1), name="worker-x", daemon=True
    )
    assert p.name == "worker-x" and p.daemon and p.exitcode is None
    p.start()
    assert p.is_alive() and p.pid > 0 and p.sentinel >= 0
    assert p in forklift.active_children()
    p.terminate()
    p.join(30)
    assert p.exitcode == -signal.SIGTERM


def test_default_start_method_is_forklifts():
    expected = os.environ.get("FORKLIFT_START_METHOD") or "forkserver"
    assert forklift.get_context().get_start_method() == expected
    p = forklift.Process(target=os.getppid)
    p.start()
    # Under forkserver the child's OS parent is the fork server, not us.
    assert (p.result(timeout=30) != os.getpid()) == (expected == "forkserver")


@pytest.mark.parametrize("method", ["forkserver", "spawn"])
def test_a_main_function_the_child_cannot_import_goes_by_value(tmp_path, method):
    # Defined under the __main__ guard, so the child's re-import of the script
    # lacks it: multiprocessing fails here; forklift falls back to cloudpickle.
    script = tmp_path / "script.py"
    script.write_text(
        textwrap.dedent(f"""
        import forklift
        if __name__ == "__main__":
            def triple(x):
                return 3 * x
            p = forklift.get_context("{method}").Process(target=triple, args=(14,))
            p.start()
            print(p.result(timeout=30))
        """)
    )
    out = subprocess.run([sys.executable, str(script)], capture_output=True, text=True, timeout=50)
    assert out.stdout.strip() == "42", out.stderr


def test_start_is_about_as_fast_as_multiprocessing():
    # A smoke check with a wide margin (the machine is shared); the careful
    # comparison is benchmarks-style, see the report.
    def per_start(ctx, n=10):
        t = time.perf_counter()
        for _ in range(n):
            p = ctx.Process(target=os.getpid)
            p.start()
            p.join()
        return time.perf_counter() - t

    import multiprocessing

    ours = min(per_start(forklift.get_context("fork")) for _ in range(3))
    theirs = min(per_start(multiprocessing.get_context("fork")) for _ in range(3))
    assert ours < 3 * theirs + 0.05


@pytest.mark.parametrize("method", ["fork", "forkserver", "spawn"])
def test_a_child_that_leaves_a_pool_open_still_exits_cleanly(method, tmp_path):
    """A stdlib Process whose target made a forklift Pool and returned without close():
    multiprocessing's exit function (run before atexit in a child) joined the workers while
    the scheduler closed them, and the child died with 'process object is closed', exit 1
    (about 1 run in 3 under spawn)."""
    script = tmp_path / "leave_open.py"
    script.write_text(
        textwrap.dedent(
            """
            import multiprocessing, sys
            import forklift

            def child():
                forklift.Pool(2).map(abs, [-1, -2])  # left open

            if __name__ == "__main__":
                ctx = multiprocessing.get_context(sys.argv[1])
                codes = []
                for _ in range(6):
                    p = ctx.Process(target=child)
                    p.start()
                    p.join(30)
                    codes.append(p.exitcode)
                print(codes)
            """
        )
    )
    out = subprocess.run(
        [sys.executable, str(script), method], capture_output=True, text=True, timeout=120, cwd=tmp_path
    )
    assert out.stdout.strip() == "[0, 0, 0, 0, 0, 0]", out
    assert "Traceback" not in out.stderr, out.stderr

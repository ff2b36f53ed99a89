"""Another platform, simulated on Linux: ``import forklift`` works, a Linux-only part says why it
cannot run, in one clear error (never a traceback from deep inside), and the CLI exits 2.

The simulation runs in a fresh interpreter whose ``sys.platform`` is "darwin" and whose ``os``
lacks ``memfd_create`` and ``pidfd_open``, as on macOS, before forklift is imported.
"""

import json
import os
import signal
import subprocess
import sys
import textwrap
import time

import pytest

import forklift
from forklift import _platform
from forklift.errors import ForkliftError, PlatformError, SettingError

PRELUDE = textwrap.dedent(
    """\
    import os, sys
    sys.platform = "darwin"
    for name in ("memfd_create", "pidfd_open"):
        delattr(os, name)
    """
)


def elsewhere(code, *args, timeout=60):
    return subprocess.run(
        [sys.executable, "-c", PRELUDE + textwrap.dedent(code), *args],
        capture_output=True,
        text=True,
        timeout=timeout,
    )


def test_the_error_is_a_forklift_error_and_an_os_error():
    assert issubclass(PlatformError, ForkliftError) and issubclass(PlatformError, OSError)
    assert PlatformError.__module__ == "forklift.errors"


@pytest.mark.parametrize(
    ("call", "what"),
    [
        ("forklift.Pool(2)", "a local forklift pool"),
        ("forklift.Executor(2)", "a local forklift pool"),
        ("forklift.Process(target=print).start()", "forklift.Process"),
        ("forklift.copy_tree('src', 'dst')", "forklift copy"),
        ("forklift.SharedArray((4,), 'float64')", "forklift's shared memory"),
    ],
)
def test_a_linux_only_part_raises_one_clear_error(call, what):
    out = elsewhere(
        f"""
        import forklift
        from forklift.errors import PlatformError
        if __name__ == "__main__":
            try:
                {call}
            except PlatformError as exc:
                print("PlatformError:", exc)
        """
    )
    assert out.returncode == 0, out.stderr
    message = out.stdout.strip()
    assert message.startswith(f"PlatformError: {what}") and "needs Linux" in message, message
    assert "this is darwin" in message and "Dask cluster" in message and "ProcessPoolExecutor" in message
    assert "Traceback" not in out.stderr


def test_import_and_the_parts_that_need_no_linux_still_work_there():
    out = elsewhere(
        """
        import forklift, forklift.errors, forklift.trees, forklift.journal, forklift.report
        print(forklift.__version__, forklift.kill_tree.__name__, forklift.cpu_count() >= 1)
        """
    )
    assert out.returncode == 0, out.stderr
    assert out.stdout.split() == [forklift.__version__, "kill_tree", "True"]


@pytest.mark.parametrize(
    "command", [["demo", "--tasks", "10"], ["run", "true", ":::", "a"], ["copy", ".", "x"]]
)
def test_the_cli_says_it_in_one_line_and_exits_2(command):
    out = elsewhere(
        """
        import sys
        from forklift.cli.main import main
        if __name__ == "__main__":
            sys.exit(main(sys.argv[1:]))
        """,
        *command,
    )
    assert out.returncode == 2, (out.stdout, out.stderr)
    lines = out.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith(f"forklift {command[0]}: ") and "needs Linux" in lines[0]


def test_a_kernel_without_pidfd_open_is_named_with_its_version(monkeypatch):
    import errno
    import os

    def no_pidfd(pid):
        raise OSError(errno.ENOSYS, "Function not implemented")

    monkeypatch.setattr(os, "pidfd_open", no_pidfd)
    with pytest.raises(PlatformError, match=r"needs pidfd_open \(Linux 5\.3 or newer\); this kernel is "):
        _platform.require_call("pidfd_open", "forklift run", "5.3")


def test_a_kernel_without_memfd_create_gets_the_unlinked_file(monkeypatch):
    """memfd_create refused (ENOSYS: Linux < 3.17; EPERM: a seccomp sandbox): the fallback."""
    import errno
    import os

    from forklift._primitives import memfd

    def no_memfd(name, flags=0):
        raise OSError(errno.ENOSYS, "Function not implemented")

    monkeypatch.setattr(os, "memfd_create", no_memfd)
    segment = memfd.Segment(4096)
    try:
        assert os.readlink(f"/proc/self/fd/{segment.fd}").startswith("/dev/shm/forklift-")
        assert os.fstat(segment.fd).st_nlink == 0  # unlinked: nothing to leak
        segment.map[:5] = b"hello"
        view = memfd.attach(segment.token, 4096)
        assert view[:5] == b"hello"
        view.close()
    finally:
        segment.close()


# -- FORKLIFT_WITHOUT: the fallbacks, run on Linux ----------------------------------------------


def without(features, code, timeout=60):
    """Run ``code`` in a fresh interpreter with FORKLIFT_WITHOUT=features; its stdout's last line."""
    env = {**os.environ, "FORKLIFT_WITHOUT": features}
    argv = [sys.executable, "-c", textwrap.dedent(code)]
    out = subprocess.run(argv, capture_output=True, text=True, timeout=timeout, env=env)
    assert out.returncode == 0, out.stderr[-3000:]
    return out.stdout.strip().splitlines()[-1]


def test_an_unknown_feature_is_refused_at_import_naming_the_variable():
    env = {**os.environ, "FORKLIFT_WITHOUT": "memfd,pidfds"}
    code = "import forklift; forklift.Pool(1)"  # read with the other FORKLIFT_* tunables, by the engine
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, env=env)
    assert out.returncode == 1
    assert "SettingError: FORKLIFT_WITHOUT='memfd,pidfds': unknown feature(s) pidfds" in out.stderr
    assert _platform._without("all") == frozenset(_platform.FEATURES)
    assert _platform._without(" Memfd , PROC ") == {"memfd", "proc"}
    assert _platform._without(" , ") == frozenset()
    with pytest.raises(SettingError, match=r"unknown feature.*bogus"):
        _platform._without("all,bogus")  # not hidden behind "all"


def test_the_cli_says_a_bad_setting_in_one_line_and_exits_2():
    for name, value in [("FORKLIFT_WITHOUT", "bogus"), ("FORKLIFT_CHUNK_SECONDS", "x")]:
        env = {**os.environ, name: value}
        argv = [sys.executable, "-m", "forklift", "demo", "--tasks", "10"]
        out = subprocess.run(argv, capture_output=True, text=True, timeout=60, env=env)
        assert out.returncode == 2, (name, out.stdout, out.stderr)
        lines = out.stderr.strip().splitlines()
        assert len(lines) == 1 and lines[0].startswith(f"forklift demo: {name}={value!r}"), out.stderr
        assert subprocess.run([*argv[:3], "--help"], capture_output=True, env=env).returncode == 0


def test_psutil_reads_the_same_start_as_proc():
    """Identities (pid, start) are compared across the two paths (a pool and its worker or
    watcher may read them differently): psutil's start is in /proc's unit, clock ticks after
    boot, not its wall-clock create_time(), which moves when the clock is stepped."""
    from forklift._engine import forks

    for pid in (os.getpid(), os.getppid(), 1):
        by_proc, by_psutil = forks.proc_stat(pid), forks._psutil_stat(pid)
        assert by_proc is not None and by_psutil is not None
        assert abs(by_proc.start - by_psutil.start) <= 1, (pid, by_proc, by_psutil)
        assert (by_proc.session, by_proc.state) == (by_psutil.session, by_psutil.state)


def test_a_full_dev_shm_falls_back_to_the_temp_dir(monkeypatch):
    import errno

    from forklift._primitives import memfd

    real = memfd._unlinked_file
    tried = []

    def unlinked_file(name, size, directory):
        tried.append(directory)
        if directory == "/dev/shm":
            raise OSError(errno.ENOSPC, "No space left on device")
        return real(name, size, directory)

    monkeypatch.setattr(memfd, "_unlinked_file", unlinked_file)
    monkeypatch.setattr(_platform, "has", lambda feature: feature != "memfd")
    fd = memfd.anonymous_fd("forklift-test", 1 << 20)
    try:
        assert tried[0] == "/dev/shm" and tried[1] != "/dev/shm", tried
        assert os.fstat(fd).st_size == 1 << 20 and os.fstat(fd).st_nlink == 0
    finally:
        os.close(fd)


def test_a_segment_with_no_room_sends_the_buffer_in_the_pickle_stream():
    import errno

    import numpy as np

    from forklift._engine import bulk

    def no_room(n):
        raise OSError(errno.ENOSPC, "No space left on device")

    big = np.arange(1 << 18, dtype="f8")  # 2 MiB
    data, shipped = bulk.dumps(big, no_room)
    assert shipped == [] and len(data) > big.nbytes
    back, maps = bulk.loads(data, bulk.wire(shipped), private=True)
    assert maps == [] and (back == big).all()


# What a worker maps and holds, read from the pool's side: run in the subprocess.
_WORKER_VIEW = """
import os, sys, numpy as np, forklift

def links(pid):
    out = []
    for fd in os.listdir(f"/proc/{pid}/fd"):
        try:
            out.append(os.readlink(f"/proc/{pid}/fd/{fd}"))
        except OSError:
            pass
    return out

def maps(pid):
    with open(f"/proc/{pid}/maps") as f:
        return f.read()

def base_kind(a):
    while getattr(a, "base", None) is not None:
        a = a.base
    return type(a.obj if isinstance(a, memoryview) else a).__name__

if __name__ == "__main__":
    with forklift.Pool(1) as pool:
        wpid = pool.apply(os.getpid)
        big = np.arange(1 << 19, dtype="f8")  # 4 MiB: the bulk path's size
        kind = pool.apply(base_kind, (big,))
        back = pool.apply(np.copy, (big,))
        print(json.dumps({
            "memfd": "memfd:" in maps(wpid),
            "shm_file": "/dev/shm/forklift-slot" in maps(wpid),
            "pidfd": any("pidfd" in link for link in links(wpid)),
            "arg_base": kind,
            "result_ok": bool((back == big).all()),
        }))
"""


def _worker_view(features):
    return json.loads(without(features, "import json\n" + _WORKER_VIEW))


def test_by_default_the_worker_uses_memfd_pidfd_and_shared_arguments():
    view = _worker_view("")
    assert view == {"memfd": True, "shm_file": False, "pidfd": True, "arg_base": "mmap", "result_ok": True}


def test_without_memfd_shared_memory_is_an_unlinked_file_in_dev_shm():
    view = _worker_view("memfd")
    assert view == {"memfd": False, "shm_file": True, "pidfd": True, "arg_base": "mmap", "result_ok": True}


def test_without_pidfd_the_worker_holds_none():
    view = _worker_view("pidfd")
    assert view["pidfd"] is False and view["memfd"] is True and view["result_ok"]


def test_without_proc_big_arguments_travel_in_the_pipe():
    view = _worker_view("proc")
    assert view["arg_base"] != "mmap" and view["result_ok"], view


@pytest.mark.parametrize("features", ["pidfd,prctl", "all"])
def test_workers_still_end_with_a_killed_pool(features):
    """The pipe-EOF guard alone (no pidfd, no PDEATHSIG) ends the workers of a SIGKILLed pool."""
    src = textwrap.dedent(
        """
        import os, signal, subprocess, sys, time, forklift
        from forklift._engine.forks import has_ended
        if __name__ == "__main__":
            with forklift.Pool(2) as pool:
                pool.map(abs, range(4))
                print(*pool._engine.worker_pids(), flush=True)
                time.sleep(60)
        """
    )
    env = {**os.environ, "FORKLIFT_WITHOUT": features}
    child = subprocess.Popen([sys.executable, "-c", src], stdout=subprocess.PIPE, text=True, env=env)
    try:
        pids = [int(p) for p in child.stdout.readline().split()]
        assert len(pids) == 2, pids
        os.kill(child.pid, signal.SIGKILL)
        child.wait(10)
        from forklift._engine.forks import has_ended

        deadline = time.monotonic() + 10
        while time.monotonic() < deadline and not all(has_ended(p) for p in pids):
            time.sleep(0.05)
        assert all(has_ended(p) for p in pids), pids
    finally:
        child.kill()
        child.wait()


_DAEMON = """
import os, time, forklift

def daemon_parent():
    # In a task: double-fork a daemon; its parent once the middle process has exited.
    r, w = os.pipe()
    middle = os.fork()
    if middle == 0:
        os.setsid()
        if os.fork() == 0:
            os.close(r)
            time.sleep(0.3)  # the middle process has exited: re-parented by now
            os.write(w, str(os.getppid()).encode())
            os._exit(0)
        os._exit(0)
    os.close(w)
    os.waitpid(middle, 0)
    with os.fdopen(r) as f:
        return int(f.read())

if __name__ == "__main__":
    with forklift.Pool(1) as pool:
        print(pool.apply(daemon_parent) == pool.apply(os.getpid))
"""


@pytest.mark.parametrize(("features", "to_worker"), [("", True), ("prctl", False)])
def test_without_prctl_a_tasks_daemon_is_not_reparented_to_the_worker(features, to_worker):
    """PR_SET_CHILD_SUBREAPER makes the worker the daemon's parent (so the pool's kills reach
    it); without prctl the daemon goes to init, out of the pool's reach (the documented cost)."""
    assert without(features, _DAEMON) == str(to_worker)


def test_without_proc_a_shared_queue_as_task_argument_says_why():
    last = without(
        "proc",
        """
        import forklift
        from forklift.errors import SerializationError
        if __name__ == "__main__":
            q = forklift.Queue()
            with forklift.Pool(1) as pool:
                try:
                    pool.apply(q.put, (1,))
                except SerializationError as exc:
                    print(exc)
        """,
    )
    assert "SharingError: cannot open a shared object of pid " in last, last
    assert "switched off by FORKLIFT_WITHOUT=proc" in last and "Manager" in last


def test_without_proc_kill_tree_and_find_marked_go_through_psutil(tmp_path):
    last = without(
        "proc",
        """
        import os, subprocess, sys, forklift, forklift.trees as trees
        env = {**os.environ, "FL_TEST_MARK": "x1"}
        top = subprocess.Popen(["sh", "-c", "sleep 60 & sleep 60 & wait"], env=env)
        import time
        deadline = time.monotonic() + 10
        while len(trees.find_marked("FL_TEST_MARK", "x1")) < 3 and time.monotonic() < deadline:
            time.sleep(0.02)
        found = len(trees.find_marked("FL_TEST_MARK", "x1"))
        report = forklift.kill_tree(top.pid)
        top.wait()
        print(found, len(report.killed) + len(report.ended), trees.find_marked("FL_TEST_MARK", "x1"))
        """,
    )
    assert last == "3 3 []", last


_AT_START = """
import sys, forklift, numpy as np

def grandchild(q, v):
    with v.get_lock():
        v.value += 1
    q.put("grandchild")

def child(q, v, a, method):
    a[:] = 7
    with v.get_lock():
        v.value += 1
    q.put("child")
    p = forklift.get_context(method).Process(target=grandchild, args=(q, v))  # passed on again
    p.start()
    p.join()

if __name__ == "__main__":
    method = sys.argv[1]
    ctx = forklift.get_context(method)
    q, v, a = ctx.Queue(), ctx.Value("i", 0), forklift.SharedArray((4,), "int64")
    p = ctx.Process(target=child, args=(q, v, a, method))
    p.start()
    got = sorted([q.get(timeout=20), q.get(timeout=20)])
    p.join(20)
    print(got, v.value, a.tolist(), p.exitcode)
"""


@pytest.mark.parametrize("method", ["forkserver", "spawn"])
def test_without_proc_shared_objects_still_cross_as_a_process_starts(method):
    """The tutorial's path: a Queue, a Value and a SharedArray given to a Process (and by it to
    its own child) travel with the descriptor, as the stdlib's do, instead of a /proc token."""
    argv = [sys.executable, "-c", _AT_START, method]
    env = {**os.environ, "FORKLIFT_WITHOUT": "proc"}
    out = subprocess.run(argv, capture_output=True, text=True, timeout=60, env=env)
    assert out.returncode == 0, out.stderr[-3000:]
    assert out.stdout.strip() == "['child', 'grandchild'] 2 [7, 7, 7, 7] 0", out.stdout + out.stderr[-2000:]


_HOLDS_THE_GIL = """
import os, sys, time, forklift

def spin():
    sum(range(10**11))  # one C call: the GIL is not released, no Python signal handler runs

if __name__ == "__main__":
    with forklift.Pool(1, start_method=sys.argv[1]) as pool:
        pool.apply_async(spin)
        time.sleep(0.5)
        print(*pool._engine.worker_pids(), flush=True)
        time.sleep(60)
"""


@pytest.mark.parametrize("method", ["fork", "forkserver"])
def test_without_proc_the_watcher_still_ends_a_worker_that_holds_the_gil(method):
    """The watcher runs with -S (no site-packages): without /proc it needs psutil all the same,
    and it must take the pool's switches, whatever its own environment says."""
    env = {**os.environ, "FORKLIFT_WITHOUT": "all"}
    child = subprocess.Popen(
        [sys.executable, "-c", _HOLDS_THE_GIL, method],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        env=env,
    )
    try:
        pids = [int(p) for p in child.stdout.readline().split()]
        assert len(pids) == 1, child.stderr.read()
        os.kill(child.pid, signal.SIGKILL)
        child.wait(10)
        from forklift._engine.forks import has_ended

        deadline = time.monotonic() + 10
        while time.monotonic() < deadline and not has_ended(pids[0]):
            time.sleep(0.05)
        assert has_ended(pids[0]), "the worker outlived its SIGKILLed pool"
        assert b"Traceback" not in child.stderr.read()
    finally:
        child.kill()
        child.wait()


_ENV_CHANGED = """
import os, sys, numpy as np, forklift
from forklift import _platform

if __name__ == "__main__":
    _platform.has("proc")  # the switches are read now: none
    os.environ["FORKLIFT_WITHOUT"] = "proc"  # then the environment says otherwise
    with forklift.Pool(1, start_method=sys.argv[1]) as pool:
        big = np.arange(1 << 19, dtype="f8")
        print(bool((pool.apply(np.copy, (big,)) == big).all()), pool.apply(_platform.has, ("proc",)))
"""


@pytest.mark.parametrize("method", ["forkserver", "spawn"])
def test_workers_take_the_pools_switches_not_their_environments(method):
    """Found by review: a worker reading another FORKLIFT_WITHOUT than its pool's judged its
    parent gone (the start times' units differed) and the pool broke, 3 workers in a row."""
    env = {k: v for k, v in os.environ.items() if k != "FORKLIFT_WITHOUT"}  # (make test-fallbacks sets it)
    argv = [sys.executable, "-c", _ENV_CHANGED, method]
    out = subprocess.run(argv, capture_output=True, text=True, timeout=60, env=env)
    assert out.returncode == 0, out.stderr[-3000:]
    assert out.stdout.split() == ["True", "True"], out.stdout

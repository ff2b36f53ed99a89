"""forklift on Dask distributed: credentials, the CLI, the cluster place, faults, network.

A real cluster runs for the session: ``forklift cluster scheduler`` and two
``forklift cluster worker`` processes on 127.0.0.1 with mutual TLS, started as
subprocesses (``python -m forklift.cli.cluster``) and stopped with Ctrl-C
(SIGINT) at the end. Tests that break a cluster (scheduler restart, all
workers gone) start their own. One test crosses a real network: scheduler and
worker in two network namespaces joined by a veth pair (root only).
"""

from __future__ import annotations

import concurrent.futures as cf
import os
import queue
import shutil
import signal
import socket
import subprocess
import sys
import threading
import time
from pathlib import Path
from types import SimpleNamespace

import psutil
import pytest

pytest.importorskip("distributed", reason="Dask distributed is not installed: pip install -e '.[cluster]'")
pytest.importorskip("cryptography", reason="cryptography is not installed: pip install -e '.[cluster]'")

import forklift
from forklift import Executor, Pool
from forklift._cluster import (
    ClusterEvent,
    ClusterLock,
    ClusterQueue,
    ClusterSemaphore,
    ClusterValue,
    load_credentials,
    make_credentials,
)
from forklift.errors import AuthenticationError, ClusterError, TaskTimeout, WorkerLostError

TESTS = Path(__file__).resolve().parent
SRC = TESTS.parent / "src"


# -- tasks (imported by name on the workers: tests/ is on their PYTHONPATH) ------------
def square(x):
    return x * x


def slow_square(x, seconds=0.2):
    time.sleep(seconds)
    return x * x


def fails_on_three(x):
    if x == 3:
        raise ValueError("three is not allowed")
    return x


def worker_pid(_=None):
    return os.getpid()


def dies(_=None):
    os._exit(3)


def drain(name, n):
    q = ClusterQueue(name)
    return [q.get(timeout=10) for _ in range(n)]


def add_one_locked(lock_name, value_name):
    with ClusterLock(lock_name):
        counter = ClusterValue(value_name)
        counter.set(counter.get(timeout=10) + 1)
    return True


def wait_for(event_name):
    return ClusterEvent(event_name).wait(timeout=20)


# -- processes ------------------------------------------------------------------------------
def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def child_env() -> dict[str, str]:
    env = dict(os.environ)
    env["PYTHONPATH"] = os.pathsep.join([str(SRC), str(TESTS), env.get("PYTHONPATH", "")])
    env.pop("FORKLIFT_ADDRESS", None)
    env.pop("FORKLIFT_CREDENTIALS", None)
    return env


class Cli:
    """One ``forklift cluster ...`` process in its own session, its output in a log file."""

    def __init__(self, log: Path, *args: str, prefix: tuple[str, ...] = ()) -> None:
        self.log = log
        self.out = open(log, "ab")  # noqa: SIM115 - closed in stop()
        self.proc = subprocess.Popen(
            [*prefix, sys.executable, "-m", "forklift.cli.cluster", *args],
            stdout=self.out,
            stderr=subprocess.STDOUT,
            env=child_env(),
            start_new_session=True,
        )

    def stop(self, sig: int = signal.SIGINT, timeout: float = 20) -> int | None:
        """Stop as Ctrl-C would; kill the whole group if it does not end in time."""
        code = None
        if self.proc.poll() is None:
            self.proc.send_signal(sig)
            try:
                code = self.proc.wait(timeout=timeout)
            except subprocess.TimeoutExpired:
                code = None
        else:
            code = self.proc.returncode
        try:
            os.killpg(self.proc.pid, signal.SIGKILL)
        except (ProcessLookupError, PermissionError):
            pass
        self.proc.wait()
        self.out.close()
        return code

    def text(self) -> str:
        return self.log.read_text(errors="replace")


def wait_port(host: str, port: int, timeout: float = 30, prefix: tuple[str, ...] = ()) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if not prefix:
            with socket.socket() as s:
                s.settimeout(0.5)
                if s.connect_ex((host, port)) == 0:
                    return
        else:
            probe = f"import socket; socket.create_connection(({host!r}, {port}), 0.5)"
            if subprocess.run([*prefix, sys.executable, "-c", probe], capture_output=True).returncode == 0:
                return
        time.sleep(0.1)
    raise TimeoutError(f"nothing listens on {host}:{port} after {timeout} s")


def wait_workers(address: str, creds: Path, n: int, timeout: float = 40) -> None:
    from distributed import Client

    with Client(address, security=load_credentials(creds).security(), timeout=10) as client:
        deadline = time.monotonic() + timeout
        while len(client.nthreads()) < n:
            if time.monotonic() > deadline:
                raise TimeoutError(f"{len(client.nthreads())} of {n} workers after {timeout} s")
            time.sleep(0.2)


def start_cluster(tmp: Path, creds: Path, workers: int, *, procs: int = 1) -> SimpleNamespace:
    port = free_port()
    address = f"tls://127.0.0.1:{port}"
    scheduler = Cli(
        tmp / f"scheduler-{port}.log", "scheduler", "--port", str(port), "--credentials", str(creds)
    )
    wait_port("127.0.0.1", port)
    cluster = SimpleNamespace(
        address=address, creds=creds, port=port, scheduler=scheduler, workers=[], tmp=tmp
    )
    for i in range(workers):
        cluster.workers.append(start_worker(cluster, f"w{i}-{port}", procs))
    if workers:
        wait_workers(address, creds, workers * procs)
    return cluster


def start_worker(cluster: SimpleNamespace, name: str, procs: int = 1) -> Cli:
    return Cli(
        cluster.tmp / f"worker-{name}.log",
        "worker",
        cluster.address,
        "--credentials",
        str(cluster.creds),
        "--procs",
        str(procs),
        "--name",
        name,
    )


def stop_cluster(cluster: SimpleNamespace) -> None:
    for w in cluster.workers:
        w.stop()
    cluster.scheduler.stop()


@pytest.fixture(scope="session")
def creds(tmp_path_factory) -> Path:
    return make_credentials(tmp_path_factory.mktemp("cluster") / "creds").directory


@pytest.fixture(scope="session")
def cluster(tmp_path_factory, creds):
    """A TLS scheduler and two one-process workers on 127.0.0.1, for the whole session."""
    c = start_cluster(tmp_path_factory.mktemp("logs"), creds, workers=2)
    yield c
    stop_cluster(c)


@pytest.fixture(scope="session")
def pool(cluster):
    with Pool(address=cluster.address, credentials=cluster.creds) as p:
        yield p


# -- credentials ------------------------------------------------------------------------------
def test_credentials_are_private_files(tmp_path):
    creds = make_credentials(tmp_path / "c")
    assert sorted(p.name for p in creds.directory.iterdir()) == sorted(
        ["ca.pem", "node.pem", "node.key", "client.pem", "client.key"]
    )
    assert creds.directory.stat().st_mode & 0o777 == 0o700
    for path in creds.directory.iterdir():
        assert path.stat().st_mode & 0o777 == 0o600, path
    with pytest.raises(FileExistsError, match="already holds credentials"):
        make_credentials(tmp_path / "c")
    make_credentials(tmp_path / "c", force=True)


def test_missing_or_incomplete_credentials_say_what_to_do(tmp_path):
    with pytest.raises(FileNotFoundError, match="forklift cluster credentials"):
        load_credentials(tmp_path / "nowhere")
    creds = make_credentials(tmp_path / "c")
    (creds.directory / "client.key").unlink()
    with pytest.raises(FileNotFoundError, match=r"missing client\.key"):
        load_credentials(creds.directory)
    with pytest.raises(FileNotFoundError, match=r"missing client\.key"):
        Pool(address="tls://127.0.0.1:1", credentials=creds.directory)


def test_cli_makes_credentials_and_refuses_to_start_without_them(tmp_path):
    run = [sys.executable, "-m", "forklift.cli.cluster"]
    done = subprocess.run(
        [*run, "credentials", str(tmp_path / "c")], capture_output=True, text=True, env=child_env()
    )
    assert done.returncode == 0, done.stderr
    assert (tmp_path / "c" / "node.key").stat().st_mode & 0o777 == 0o600
    for cmd in (["scheduler"], ["worker", "tls://127.0.0.1:1"]):
        done = subprocess.run([*run, *cmd], capture_output=True, text=True, env=child_env(), timeout=30)
        assert done.returncode == 2
        assert "--credentials DIR" in done.stderr and "--insecure" in done.stderr


# -- the API on the cluster ----------------------------------------------------------------
def test_pool_api_on_the_cluster(pool):
    assert pool.processes == 2
    assert pool.map(square, range(1000)) == [x * x for x in range(1000)]
    assert list(pool.imap(square, range(300))) == [x * x for x in range(300)]
    assert sorted(pool.imap_unordered(square, range(300))) == [x * x for x in range(300)]
    assert pool.starmap(pow, [(2, 3), (3, 2)]) == [8, 9]
    assert pool.apply_async(square, (7,)).get(timeout=30) == 49
    assert pool.apply(divmod, (7, 2)) == (3, 1)
    assert pool.map(lambda x: x + 1, [1, 2, 3]) == [2, 3, 4]  # cloudpickled by value
    assert pool.map(square, [], progress=True) == []
    assert pool.map(square, range(50), progress=True) == [x * x for x in range(50)]


def test_task_errors_keep_their_type_and_remote_traceback(pool):
    with pytest.raises(ValueError, match="three is not allowed") as info:
        pool.map(fails_on_three, range(10))
    assert isinstance(info.value.__cause__, forklift.RemoteTraceback)
    assert "fails_on_three" in str(info.value.__cause__)
    it = pool.imap(fails_on_three, range(6))
    results = []
    for _ in range(6):
        try:
            results.append(next(it))
        except ValueError:
            results.append("error")
    assert results == [0, 1, 2, "error", 4, 5]


def test_a_result_that_will_not_pickle_fails_alone(pool):
    it = pool.imap(lambda x: threading.Lock() if x == 2 else x, range(4), chunksize=4)
    results = []
    for _ in range(4):
        try:
            results.append(next(it))
        except forklift.SerializationError as exc:
            results.append(str(exc))
    assert results[:2] == [0, 1] and results[3] == 3
    assert "cannot pickle the result (a _thread.lock)" in results[2]


def test_tiny_tasks_are_chunked(pool):
    n = 20_000
    start = time.perf_counter()
    assert pool.map(square, range(n)) == [x * x for x in range(n)]
    seconds = time.perf_counter() - start
    # One Dask task per item runs at ~450-1,000 tasks/s here (20-45 s); chunks make it
    # a fraction of a second. 10 s leaves room for a loaded CI machine.
    assert seconds < 10, f"{n} tiny tasks took {seconds:.1f} s: not chunked?"


def test_executor_api_on_the_cluster(cluster):
    with Executor(address=cluster.address, credentials=cluster.creds) as ex:
        futures = [ex.submit(square, i) for i in range(100)]
        assert sorted(f.result() for f in cf.as_completed(futures, timeout=30)) == [i * i for i in range(100)]
        assert list(ex.map(square, range(10))) == [i * i for i in range(10)]
        assert list(ex.map(pow, [2, 3], [3, 2])) == [8, 9]
        assert ex.max_workers == 2


def test_timeout_kills_only_the_task(pool):
    start = time.perf_counter()
    with pytest.raises(TaskTimeout):
        pool.apply(time.sleep, (30,), timeout=1)
    assert time.perf_counter() - start < 15
    assert pool.map(square, range(10)) == [x * x for x in range(10)]
    assert pool.statistics().timeouts >= 1


def _error_of(call):
    try:
        call()
    except Exception as exc:
        return exc
    raise AssertionError("no error")


def test_timed_tasks_errors_name_the_call_as_on_this_machine(pool):
    """Timed tasks run in an Executor on the Dask worker, whose names ("task 0 of
    submit(sleep)") are not the caller's: the client names the call as a local pool does."""
    with Pool(1) as local:
        here = _error_of(lambda: local.apply(time.sleep, (30,), timeout=1))
    there = _error_of(lambda: pool.apply(time.sleep, (30,), timeout=1))
    assert isinstance(there, TaskTimeout) and there.__cause__ is None
    assert str(here).startswith("task 0 of apply(sleep) ran longer than its timeout of 1 s; ")
    assert str(there).startswith("task 0 of apply(sleep) ran longer than its timeout of 1 s; ")
    assert f"on the Dask worker {pool.address.rsplit(':', 1)[0]}" in str(there)
    it = pool.imap(time.sleep, [0, 0, 30], timeout=1, chunksize=3)
    assert [next(it), next(it)] == [None, None]
    with pytest.raises(TaskTimeout, match=r"^task 2 of imap\(sleep\) ran longer"):
        next(it)
    with pytest.raises(WorkerLostError, match=r"running task 0 of apply\(dies\) exited with code 3"):
        pool.apply(dies, timeout=20)
    unpicklable = pool.imap(lambda x: threading.Lock() if x == 2 else x, range(4), chunksize=4, timeout=20)
    assert [next(unpicklable), next(unpicklable)] == [0, 1]
    with pytest.raises(forklift.SerializationError, match=r"^task 2 of imap\(.*<lambda>\): cannot pickle"):
        next(unpicklable)


def test_env_vars_choose_the_cluster(cluster, monkeypatch):
    monkeypatch.setenv("FORKLIFT_ADDRESS", cluster.address)
    monkeypatch.setenv("FORKLIFT_CREDENTIALS", str(cluster.creds))
    with Pool() as p:
        assert p.start_method == "cluster"
        assert p.map(square, range(5)) == [0, 1, 4, 9, 16]


def test_local_only_options_are_refused_on_a_cluster(cluster, tmp_path):
    with pytest.raises(ValueError, match="max_memory"):
        Pool(address=cluster.address, credentials=cluster.creds, max_memory=1 << 30)
    with (  # was an AttributeError
        Pool(address=cluster.address, credentials=cluster.creds) as pool,
        pytest.raises(ValueError, match="records local pools only"),
    ):
        pool.map(abs, [1], journal=tmp_path / "run.db")


# -- security ------------------------------------------------------------------------------
def test_wrong_credentials_are_refused_fast(cluster, tmp_path):
    stranger = make_credentials(tmp_path / "stranger").directory
    start = time.perf_counter()
    with pytest.raises(AuthenticationError, match="refused our credentials"):
        Pool(address=cluster.address, credentials=stranger)
    assert time.perf_counter() - start < 5


def test_no_credentials_or_plain_tcp_are_refused(cluster):
    with pytest.raises(ValueError, match="give credentials"):
        Pool(address=cluster.address)
    with pytest.raises(ValueError, match="give credentials"):
        Pool(address=f"127.0.0.1:{cluster.port}")
    start = time.perf_counter()
    with pytest.raises(AuthenticationError, match="requires TLS"):
        Pool(address=f"tcp://127.0.0.1:{cluster.port}")
    assert time.perf_counter() - start < 5


def test_unreachable_scheduler_fails_within_the_connect_timeout(creds, monkeypatch):
    monkeypatch.setenv("FORKLIFT_CLUSTER_CONNECT_TIMEOUT", "2")
    start = time.perf_counter()
    with pytest.raises(ClusterError, match="cannot reach the scheduler"):
        Pool(address=f"tls://127.0.0.1:{free_port()}", credentials=creds)
    assert time.perf_counter() - start < 6


# -- shared objects --------------------------------------------------------------------------
def test_shared_queue_lock_value_event_semaphore(pool):
    q = ClusterQueue("test-q", pool=pool)
    for i in range(5):
        q.put(i)
    assert pool.apply(drain, ("test-q", 5)) == [0, 1, 2, 3, 4]
    with pytest.raises(queue.Empty):
        q.get(timeout=0.2)

    counter = ClusterValue("test-counter", pool=pool)
    with pytest.raises(TimeoutError):  # the builtin one, on 3.10 too (Dask raises asyncio's)
        counter.get(timeout=0.2)
    counter.set(0)
    assert pool.starmap(add_one_locked, [("test-lock", "test-counter")] * 20, chunksize=1) == [True] * 20
    assert counter.get(timeout=5) == 20

    event = ClusterEvent("test-event", pool=pool)
    waiting = pool.apply_async(wait_for, ("test-event",))
    time.sleep(0.5)
    assert not waiting.ready()
    event.set()
    assert waiting.get(timeout=20) is True

    sem = ClusterSemaphore(1, "test-sem", pool=pool)
    assert sem.acquire(timeout=5)
    assert not sem.acquire(timeout=0.2)
    sem.release()


# -- faults ----------------------------------------------------------------------------------
def test_worker_sigkilled_mid_map_loses_nothing(pool):
    pids = set(pool.client.run(worker_pid).values())
    assert len(pids) == 2
    result = pool.map_async(slow_square, range(30))
    time.sleep(1.0)
    os.kill(sorted(pids)[0], signal.SIGKILL)
    assert result.get(timeout=50) == [x * x for x in range(30)]
    assert pool.map(square, range(10)) == [x * x for x in range(10)]


def test_a_task_that_kills_every_worker_fails_alone(pool):
    start = time.perf_counter()
    with pytest.raises(WorkerLostError, match="every Dask worker that ran it died"):
        pool.apply(dies)
    assert time.perf_counter() - start < 40
    assert pool.map(square, range(10)) == [x * x for x in range(10)]


def test_scheduler_restart_resubmits_and_no_workers_fails_clearly(tmp_path, creds, monkeypatch):
    """The scheduler SIGKILLed under a running map, then started again on its port:
    Dask cancels every future and its workers exit; forklift's worker command starts
    them again and the map resubmits what was cancelled. Then, with every worker
    gone, a map fails with ClusterError after FORKLIFT_CLUSTER_WAIT, not a hang."""
    monkeypatch.setenv("FORKLIFT_CLUSTER_WAIT", "40")
    c = start_cluster(tmp_path, creds, workers=1, procs=2)
    try:
        with Pool(address=c.address, credentials=creds) as p:
            result = p.map_async(slow_square, [(x) for x in range(40)])
            time.sleep(1.5)
            dask_scheduler = psutil.Process(c.scheduler.proc.pid).children()[0]
            dask_scheduler.kill()  # the scheduler crashes; forklift's command then exits
            assert c.scheduler.proc.wait(timeout=10) != 0
            c.scheduler.stop()
            c.scheduler = Cli(
                tmp_path / "scheduler-again.log",
                "scheduler",
                "--port",
                str(c.port),
                "--credentials",
                str(creds),
            )
            assert result.get(timeout=50) == [x * x for x in range(40)]
            assert p._place.cluster_engine._counts["resubmitted"] > 0
        c.workers[0].stop()
        monkeypatch.setenv("FORKLIFT_CLUSTER_WAIT", "2")
        with Pool(address=c.address, credentials=creds) as p:
            start = time.perf_counter()
            with pytest.raises(ClusterError, match="no workers"):
                p.map(square, range(10))
            assert time.perf_counter() - start < 15
    finally:
        stop_cluster(c)


def test_a_scheduler_gone_is_named_not_taken_for_missing_workers(tmp_path, creds, monkeypatch):
    monkeypatch.setenv("FORKLIFT_CLUSTER_WAIT", "2")
    c = start_cluster(tmp_path, creds, workers=0)
    try:
        with Pool(address=c.address, credentials=creds) as p:
            c.scheduler.stop()
            start = time.perf_counter()
            with pytest.raises(ClusterError) as info:
                p.map(square, range(10))
            assert time.perf_counter() - start < 20
    finally:
        stop_cluster(c)
    message = str(info.value)
    assert f"the scheduler at {c.address} has been unreachable" in message
    assert "forklift cluster scheduler" in message and "forklift cluster worker" not in message


def test_ctrl_c_stops_scheduler_and_workers_cleanly(tmp_path, creds):
    c = start_cluster(tmp_path, creds, workers=1, procs=1)
    codes = [w.stop(signal.SIGINT, timeout=20) for w in c.workers] + [
        c.scheduler.stop(signal.SIGINT, timeout=20)
    ]
    assert codes == [0, 0], [w.text() for w in [*c.workers, c.scheduler]]
    assert "stopped" in c.scheduler.text()


def test_a_worker_that_ran_a_timed_task_stops_promptly(tmp_path, creds):
    """Timed tasks run in a forklift Executor inside the Dask worker; its idle workers kept
    the Dask worker process alive at exit until the nanny killed it after 8 s."""
    c = start_cluster(tmp_path, creds, workers=1, procs=1)
    try:
        with Pool(address=c.address, credentials=creds) as p:
            assert p.apply(square, (3,), timeout=20) == 9
        start = time.perf_counter()
        assert c.workers[0].stop(signal.SIGINT, timeout=30) == 0
        seconds = time.perf_counter() - start
        assert "still alive" not in c.workers[0].text()
        assert seconds < 5, f"the worker took {seconds:.1f} s to stop (0.5 s without a timed task)"
    finally:
        stop_cluster(c)


def test_local_cluster_address(monkeypatch):
    start = time.perf_counter()
    with Executor(2, address="local") as ex:
        assert ex.max_workers == 2
        assert list(ex.map(square, range(100))) == [x * x for x in range(100)]
        assert ex.address.startswith("tls://127.0.0.1:")
        assert ex.client is not None and ex.client.status == "running"
    assert time.perf_counter() - start < 30


# -- across a network ------------------------------------------------------------------------
def _ip(*args: str) -> None:
    subprocess.run(["ip", *args], check=True, capture_output=True, timeout=10)


@pytest.fixture
def netns():
    if os.geteuid() != 0:
        pytest.skip("network namespaces need root")
    if shutil.which("ip") is None:
        pytest.skip("the 'ip' command (iproute2) is not installed")
    tag = f"{os.getpid() % 100000}"
    ns = (f"flk-s{tag}", f"flk-w{tag}")
    veth = (f"flks{tag}", f"flkw{tag}")
    try:
        _ip("netns", "add", ns[0])
        _ip("netns", "add", ns[1])
        _ip("link", "add", veth[0], "type", "veth", "peer", "name", veth[1])
        for name, dev, addr in ((ns[0], veth[0], "10.77.0.1/24"), (ns[1], veth[1], "10.77.0.2/24")):
            _ip("link", "set", dev, "netns", name)
            _ip("-n", name, "addr", "add", addr, "dev", dev)
            _ip("-n", name, "link", "set", dev, "up")
            _ip("-n", name, "link", "set", "lo", "up")
    except subprocess.CalledProcessError as exc:
        for name in ns:
            subprocess.run(["ip", "netns", "del", name], capture_output=True)
        pytest.skip(f"cannot make network namespaces here: {exc.stderr.decode(errors='replace').strip()}")
    yield ns
    for name in ns:
        subprocess.run(["ip", "netns", "del", name], capture_output=True, timeout=10)


CLIENT = """
import sys
from forklift import Pool
import test_cluster as t
with Pool(address=sys.argv[1], credentials=sys.argv[2]) as p:
    print("results", p.map(t.square, range(100)) == [x * x for x in range(100)])
    print("workers", sorted(p.client.run(t.worker_pid)))
"""


def test_scheduler_and_worker_in_two_network_namespaces(netns, creds, tmp_path):
    ns_s, ns_w = netns
    in_s, in_w = ("ip", "netns", "exec", ns_s), ("ip", "netns", "exec", ns_w)
    port = free_port()
    address = f"tls://10.77.0.1:{port}"
    sched = Cli(
        tmp_path / "s.log",
        "scheduler",
        "--host",
        "10.77.0.1",
        "--port",
        str(port),
        "--credentials",
        str(creds),
        prefix=in_s,
    )
    worker = None
    try:
        wait_port("10.77.0.1", port, prefix=in_s)
        worker = Cli(
            tmp_path / "w.log", "worker", address, "--credentials", str(creds), "--procs", "1", prefix=in_w
        )
        done = subprocess.run(
            [*in_s, sys.executable, "-c", CLIENT, address, str(creds)],
            capture_output=True,
            text=True,
            env=child_env(),
            timeout=45,
        )
        assert done.returncode == 0, done.stderr + worker.text()
        assert "results True" in done.stdout
        assert "tls://10.77.0.2:" in done.stdout, done.stdout  # the worker is across the veth link
    finally:
        if worker is not None:
            worker.stop()
        sched.stop()


def test_local_workers_drop_only_the_heartbeat_error_of_their_own_close():
    """The embedded cluster's preload (see its docstring): a shutdown race, not an error."""
    import enum
    import logging

    from forklift._cluster.preload import _HeartbeatWhileClosing

    Status = enum.Enum("Status", "running closing")
    worker = SimpleNamespace(status=Status.running)
    keep = _HeartbeatWhileClosing(worker)

    def record(message: str) -> logging.LogRecord:
        return logging.LogRecord("distributed.worker", logging.ERROR, __file__, 1, message, None, None)

    heartbeat = record("Failed to communicate with scheduler during heartbeat.")
    assert keep.filter(heartbeat)  # while running: a real problem, shown
    worker.status = Status.closing
    assert not keep.filter(heartbeat)
    assert keep.filter(record("Unexpected exception during heartbeat. Closing worker."))

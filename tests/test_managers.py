"""forklift.managers: the tutorial's manager examples, secure by default.

The tutorial (shared/seed, "Manager" and "分布式进程") runs these on
multiprocessing.managers; here only the import changes (and the tutorial's typos:
``expose=`` for ``exposed=``, ``__exposed`` for ``_exposed_``, ``_exposes_``).
Network servers run in a subprocess, as the tutorial's server script does.
"""

import multiprocessing
import operator
import queue
import random
import socket
import stat
import struct
import subprocess
import sys
import time
from collections import namedtuple

import pytest

import forklift
import forklift.managers
from forklift.managers import BaseManager, BaseProxy, SharedMemoryManager, SyncManager
from test_connection import make_tls_contexts

KEY = b"abc"


# -- the tutorial's served QueueManager: a server script and two clients -------------

SERVER_SCRIPT = """
from queue import Queue
from forklift.managers import BaseManager

q = Queue()
class QueueManager(BaseManager):
    pass
QueueManager.register('get_queue', callable=lambda: q)
m = QueueManager(address=('', 0), authkey=b'leili')
s = m.get_server()
print(s.address[1], flush=True)
s.serve_forever()
"""


class QueueManager(BaseManager):
    pass


QueueManager.register("get_queue")

Served = namedtuple("Served", "address log")


@pytest.fixture(scope="module")
def served(tmp_path_factory):
    log = tmp_path_factory.mktemp("served") / "stderr.txt"
    with open(log, "w") as stderr:
        proc = subprocess.Popen(
            [sys.executable, "-c", SERVER_SCRIPT], stdout=subprocess.PIPE, stderr=stderr, text=True
        )
    try:
        yield Served(("127.0.0.1", int(proc.stdout.readline())), log)
    finally:
        proc.kill()
        proc.wait()
        proc.stdout.close()


def _connected(address, authkey=b"leili", **kwargs):
    m = QueueManager(address=address, authkey=authkey, **kwargs)
    m.connect()
    return m


def test_served_queue_manager_tutorial(served):
    q = _connected(served.address).get_queue()
    for i in range(3):
        q.put(i)
    other = _connected(served.address).get_queue()
    assert [other.get(timeout=5) for _ in range(3)] == [0, 1, 2]


def _logged(log, text, within=5.0):
    deadline = time.monotonic() + within
    while text not in log.read_text():
        if time.monotonic() > deadline:
            return False
        time.sleep(0.02)
    return True


def test_wrong_key_is_refused_clearly_and_the_server_goes_on(served):
    port = served.address[1]
    with pytest.raises(forklift.AuthenticationError) as info:
        _connected(served.address, authkey=b"wrong")
    assert str(info.value).startswith(
        f"authentication failed: the server at 127.0.0.1:{port} refused our key"
    )
    assert isinstance(info.value, multiprocessing.AuthenticationError)
    q = _connected(served.address).get_queue()
    q.put("still serving")
    assert q.get(timeout=5) == "still serving"
    assert _logged(served.log, "does not know the key")


def test_bad_peers_do_not_hold_up_the_manager(served):
    silent = socket.create_connection(served.address)
    half = socket.create_connection(served.address)
    half.sendall(struct.pack("!i", 56) + b"#FORK")
    garbage = socket.create_connection(served.address)
    garbage.sendall(b"\x16\x03\x01\x02\x00" + bytes(100))  # a TLS hello, to a plain server
    try:
        start = time.monotonic()
        q = _connected(served.address).get_queue()
        q.put(1)
        assert q.get(timeout=5) == 1
        assert time.monotonic() - start < 2  # not waiting out the bad peers' 5 s handshake timeout
    finally:
        for sock in (silent, half, garbage):
            sock.close()
    assert _logged(served.log, "does not speak forklift's protocol")


# -- the tutorial's master/worker (task_master.py, task_worker.py) --------------------


class WorkerQueueManager(BaseManager):
    pass


WorkerQueueManager.register("get_task_queue")
WorkerQueueManager.register("get_result_queue")


def task_worker(address):
    m = WorkerQueueManager(address=address, authkey=b"abc")
    m.connect()
    task = m.get_task_queue()
    result = m.get_result_queue()
    for _ in range(10):
        n = task.get(timeout=5)
        result.put(f"{n} * {n} = {n * n}")


def test_master_worker_tutorial():
    task_queue = queue.Queue()
    result_queue = queue.Queue()

    class QueueManager(BaseManager):
        pass

    QueueManager.register("get_task_queue", callable=lambda: task_queue)
    QueueManager.register("get_result_queue", callable=lambda: result_queue)
    manager = QueueManager(address=("", 0), authkey=b"abc")
    manager.start()
    try:
        assert manager.address[0] == "127.0.0.1"
        task = manager.get_task_queue()
        result = manager.get_result_queue()
        numbers = [random.randint(0, 10000) for _ in range(10)]
        for n in numbers:
            task.put(n)
        worker = multiprocessing.get_context("spawn").Process(target=task_worker, args=(manager.address,))
        worker.start()
        results = [result.get(timeout=10) for _ in range(10)]
        worker.join(10)
        assert worker.exitcode == 0
        assert sorted(results) == sorted(f"{n} * {n} = {n * n}" for n in numbers)
    finally:
        manager.shutdown()


# -- the tutorial's custom manager: exposed, a generator proxy, the operator module ---


class Foo:
    def f(self):
        return "you called Foo.f()"

    def g(self):
        return "you called Foo.g()"

    def _h(self):
        return "you called Foo._h()"


def baz():
    for i in range(10):
        yield i * i


class GeneratorProxy(BaseProxy):
    _exposed_ = ("__next__",)

    def __iter__(self):
        return self

    def __next__(self):
        return self._callmethod("__next__")


def get_operator_module():
    return operator


class MyManager(BaseManager):
    pass


MyManager.register("Foo1", Foo)
MyManager.register("Foo2", Foo, exposed=("g", "_h"))
MyManager.register("baz", baz, proxytype=GeneratorProxy)
MyManager.register("operator", get_operator_module)


def test_custom_manager_tutorial():
    manager = MyManager()
    manager.start()
    try:
        f1 = manager.Foo1()
        assert (f1.f(), f1.g()) == ("you called Foo.f()", "you called Foo.g()")
        assert not hasattr(f1, "_h")
        assert sorted(f1._exposed_) == ["f", "g"]
        f2 = manager.Foo2()
        assert (f2.g(), f2._h()) == ("you called Foo.g()", "you called Foo._h()")
        assert not hasattr(f2, "f")
        assert sorted(f2._exposed_) == ["_h", "g"]
        assert list(manager.baz()) == [i * i for i in range(10)]
        op = manager.operator()
        assert op.add(23, 45) == 68
        assert op.pow(2, 94) == 2**94
        assert "add" in op._exposed_
    finally:
        manager.shutdown()


# -- forklift.Manager(): local, no arguments, proxies travel to Pool tasks -------------


def update_shared(d, lst, value):
    d["name"] = "Li Lei"
    lst.reverse()
    value.value = 3


def test_manager_with_no_arguments_tutorial_example_1():
    with forklift.Manager() as manager:
        assert isinstance(manager, SyncManager)
        assert isinstance(manager.address, str)  # AF_UNIX, not a network port
        d = manager.dict()
        lst = manager.list(range(10))
        t = manager.Value("i", 0)
        p = multiprocessing.get_context("spawn").Process(target=update_shared, args=(d, lst, t))
        p.start()
        p.join(20)
        assert (d.copy(), lst[:], t.value) == ({"name": "Li Lei"}, list(range(9, -1, -1)), 3)


def put_item(args):
    q, i = args
    q.put(i)


def test_proxies_travel_as_pool_task_arguments(start_method):
    with forklift.Manager() as manager:
        q = manager.Queue()
        with forklift.Pool(2, start_method=start_method) as pool:
            pool.map(put_item, [(q, i) for i in range(6)])
        assert sorted(q.get(timeout=5) for _ in range(6)) == list(range(6))


def test_manager_server_in_each_start_method(start_method):
    with forklift.managers.Manager(start_method=start_method) as manager:
        ns = manager.Namespace(x=1)
        ns.y = 2
        assert (ns.x, ns.y) == (1, 2)


def test_shared_memory_manager():
    with SharedMemoryManager() as smm:
        shared = smm.ShareableList([1, 2, 3])
        block = smm.SharedMemory(16)
        assert list(shared) == [1, 2, 3]
        assert block.size >= 16


# -- defaults, TLS and arguments -------------------------------------------------------

queue_for_start = queue.Queue()


def get_queue():
    return queue_for_start


class ServingQueueManager(BaseManager):
    pass


ServingQueueManager.register("get_queue", callable=get_queue)


def test_tcp_manager_without_key_uses_a_private_key_file(tmp_path, monkeypatch):
    key_file = tmp_path / "authkey"
    monkeypatch.setenv("FORKLIFT_AUTHKEY_FILE", str(key_file))
    with ServingQueueManager(address=("127.0.0.1", 0)) as server:
        assert stat.S_IMODE(key_file.stat().st_mode) == 0o600
        client = QueueManager(address=server.address)  # no key: reads the same file
        client.connect()
        client.get_queue().put("keyed")
        assert server.get_queue().get(timeout=5) == "keyed"
        with pytest.raises(forklift.AuthenticationError):
            _connected(server.address, authkey=b"not the file's key")


@pytest.fixture(scope="module")
def tls(tmp_path_factory):
    return make_tls_contexts(tmp_path_factory.mktemp("tls"))


def test_tls_manager(tls):
    server = ServingQueueManager(
        address=("127.0.0.1", 0),
        authkey=KEY,
        ssl_context=tls.client,
        server_ssl_context=tls.server,
        ctx=multiprocessing.get_context("fork"),
    )
    with server:
        server.get_queue().put("over TLS")
        client = _connected(server.address, authkey=KEY, ssl_context=tls.client)
        assert client.get_queue().get(timeout=5) == "over TLS"
        with pytest.raises(forklift.AuthenticationError, match=r"closed the connection.*pass ssl_context="):
            _connected(server.address, authkey=KEY)
        server.get_queue().put("the server's own proxies still use TLS")


def test_tls_needs_both_sides_and_fork_to_start(tls):
    with pytest.raises(ValueError, match=r"both server_ssl_context= .* and ssl_context="):
        ServingQueueManager(address=("127.0.0.1", 0), authkey=KEY, server_ssl_context=tls.server).start()
    spawned = ServingQueueManager(
        authkey=KEY,
        ssl_context=tls.client,
        server_ssl_context=tls.server,
        ctx=multiprocessing.get_context("spawn"),
    )
    with pytest.raises(ValueError, match="cannot be pickled"):
        spawned.start()


def test_a_manager_used_before_start_says_so():
    # The standard library's ValueError; forklift's Client(None) used to dial a random path.
    with pytest.raises(ValueError, match=r"the manager has no address: start\(\) it"):
        SharedMemoryManager().SharedMemory(9)


def test_serializer_xmlrpclib_as_in_the_standard_library(start_method):
    with SyncManager(serializer="xmlrpclib") as manager:
        d, q = manager.dict(), manager.Queue()
        d["a"] = 1
        assert d.copy() == {"a": 1}
        with forklift.Pool(2, start_method=start_method) as pool:  # proxies keep their serializer
            pool.map(put_item, [(q, i) for i in range(3)])
        assert sorted(q.get(timeout=5) for _ in range(3)) == [0, 1, 2]
    with pytest.raises(ValueError, match="serializer must be 'pickle' or 'xmlrpclib', not 'json'"):
        BaseManager(serializer="json")


class _RunsWhenUnpickled:
    def __init__(self, path):
        self.path = str(path)

    def __reduce__(self):
        return (open, (self.path, "w"))


@pytest.mark.parametrize(("serializer", "runs"), [("pickle", True), ("xmlrpclib", False)])
def test_an_xmlrpclib_manager_unpickles_nothing_a_client_sends(tmp_path, serializer, runs):
    # A client with the key can make a pickle manager run code; an xmlrpclib one only
    # parses XML (the pickle one is the control: the payload does run there).
    from forklift.connection import Client

    marker = tmp_path / "ran"
    with SyncManager(serializer=serializer) as manager, Client(manager.address) as conn:
        conn.send(_RunsWhenUnpickled(marker))
        assert b"#TRACEBACK" in conn.recv_bytes()
    assert marker.exists() == runs

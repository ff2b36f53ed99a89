"""Importable task functions for tests/test_primitives.py and tests/test_process.py."""

import os
import pickle
import subprocess
import sys
import threading
import time


def put(q, item):
    q.put(item)
    return item


def get(q):
    return q.get()  # the items are in the queue already (SimpleQueue.get takes no timeout)


def get_and_mark_done(q):
    item = q.get(timeout=20)
    q.task_done()
    return item


def count_descriptors(q):
    return len(os.listdir("/proc/self/fd"))


def add_under_lock(lock, counter, times):
    """A read-modify-write that loses updates unless ``lock`` excludes."""
    for _ in range(times):
        with lock:
            value = counter.value
            time.sleep(0)  # let another process in, if the lock let it
            counter.value = value + 1


def add_under_value_lock(value, times):
    for _ in range(times):
        with value.get_lock():
            value.value += 1


def reenter(rlock):
    with rlock, rlock:
        return True


def occupy(sem, inside, most, guard):
    """Hold ``sem`` for a while; record the most holders at once in ``most``."""
    with sem:
        with guard:
            inside.value += 1
            most.value = max(most.value, inside.value)
        time.sleep(0.05)
        with guard:
            inside.value -= 1


def over_release(sem):
    try:
        sem.release()
    except ValueError:
        return "refused"
    return "allowed"


def wait_for_event(started, go):
    started.set()
    return go.wait(timeout=20)


def wait_for_condition(cond, started, flag):
    with cond:
        started.set()
        return cond.wait_for(lambda: flag.value == 1, timeout=20)


def cross_barrier(barrier):
    return barrier.wait(timeout=20)


def fill(array, value):
    for i in range(len(array)):
        array[i] = value * i
    return len(array)


def set_value(value, x):
    value.value = x


def send(conn, item):
    conn.send(item)
    return True


def echo_once(conn):
    conn.send(conn.recv() * 2)
    return True


def make_pickled(kind):
    """A primitive made here, pickled: its owner (this process) exits right after."""
    import forklift

    args = {"Barrier": (2,), "Value": ("i", 1), "Array": ("i", 3)}.get(kind, ())
    return pickle.dumps(getattr(forklift, kind)(*args))


def unpickle(blob):
    return pickle.loads(blob)


def use_all(q, lock, value, event, conn):
    """A Process using several primitives at once."""
    with lock:
        value.value += 1
    q.put("from child")
    conn.send("over the pipe")
    return event.wait(timeout=20)


# -- Process targets ---------------------------------------------------------
def fail(message):
    raise ValueError(message)


def die(how):
    if how == "exit":
        os._exit(3)
    os.kill(os.getpid(), 9)
    time.sleep(10)


def wait_then_return(event, value):
    event.wait(timeout=30)
    return value


def big(n):
    return b"x" * n


def unpicklable():
    return threading.Lock()  # refused by pickle and cloudpickle alike


def start_grandchild(q):
    """Start a grandchild, report its pid, then wait to be killed."""
    child = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(60)"])
    q.put(child.pid)
    time.sleep(60)

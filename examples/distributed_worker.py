"""Tutorial: 分布式进程 > task_worker.py (a worker takes tasks from the master's queue).

Connects to the QueueManager of distributed_master.py (address in
EXAMPLE_MASTER_ADDRESS "host:port", key in EXAMPLE_MASTER_AUTHKEY hex), squares
each task and puts the result back. Run alone, it starts
``distributed_master.py --serve-only`` itself, then works for it and prints the
master's output after its own.

forklift.managers.BaseManager: the stdlib client API.
"""

# Fixes to the tutorial's code:
# - "except Queue.Empty" -> "except queue.Empty" (Queue was never imported: the
#   first empty queue raised NameError);
# - the hard-coded server address and key come from the environment;
# - time.sleep(1) per task -> 0.02 s.

import os
import queue
import secrets
import subprocess
import sys
import time

from forklift.managers import BaseManager

AUTHKEY_ENV = "EXAMPLE_MASTER_AUTHKEY"
ADDRESS_ENV = "EXAMPLE_MASTER_ADDRESS"
MASTER = os.path.join(os.path.dirname(os.path.abspath(__file__)), "distributed_master.py")


class QueueManager(BaseManager):
    pass


# this side only connects, so only the names are registered
QueueManager.register("get_task_queue")
QueueManager.register("get_result_queue")


def work(address: tuple[str, int], authkey: bytes) -> None:
    print(f"Connect to server {address[0]}...")
    m = QueueManager(address=address, authkey=authkey)
    m.connect()
    task = m.get_task_queue()
    result = m.get_result_queue()
    for _ in range(10):
        try:
            n = task.get(timeout=1)
            print(f"run task {n} * {n}...")
            r = f"{n} * {n} = {n * n}"
            time.sleep(0.02)
            result.put(r)
        except queue.Empty:
            print("task queue is empty.")
    print("worker exit.")


def standalone() -> None:
    """Start a master that waits for an outside worker, then be that worker."""
    authkey = secrets.token_bytes(16)
    master = subprocess.Popen(
        [sys.executable, MASTER, "--serve-only"],
        env=dict(os.environ, **{AUTHKEY_ENV: authkey.hex()}),
        stdout=subprocess.PIPE,
        text=True,
    )
    try:
        _, host, port = master.stdout.readline().split()
        work((host, int(port)), authkey)
        out, _ = master.communicate(timeout=30)
        for line in out.splitlines():
            print(f"master| {line}")
    finally:
        if master.poll() is None:
            master.kill()
            master.wait()


def main() -> None:
    if ADDRESS_ENV not in os.environ:
        standalone()
        return
    host, port = os.environ[ADDRESS_ENV].rsplit(":", 1)
    work((host, int(port)), bytes.fromhex(os.environ[AUTHKEY_ENV]))


if __name__ == "__main__":
    main()

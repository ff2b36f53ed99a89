"""Tutorial: 分布式进程 > task_master.py (a master serves a task queue and a result queue).

The master puts ten numbers on a task queue served by a BaseManager and reads
ten results; distributed_worker.py squares them. Run alone, this script starts
distributed_worker.py itself as a subprocess and prints its output after its
own. ``--serve-only`` (used by distributed_worker.py when that runs alone)
prints ``ADDRESS host port`` first and waits for an outside worker; the key
comes from EXAMPLE_MASTER_AUTHKEY (hex).

forklift.managers.BaseManager is the stdlib API with safer defaults (127.0.0.1
unless told otherwise; every connection authenticated before anything is
unpickled, with a per-user key file when no authkey is given). The tutorial's design
stays a toy, though: a worker that dies loses its task, and a master that
restarts loses its queues. forklift plans a cluster place on Dask distributed
for work across machines; it is not built yet (see docs/guide.md).
"""

# Fixes to the tutorial's code:
# - register(..., callable=lambda: task_queue) -> module-level functions: the
#   manager's server runs in a child process, and under spawn or forkserver a
#   lambda cannot be pickled to it (the tutorial worked only with fork);
# - address ('', 5000) listened on every interface with the key b'abc': anyone
#   who reaches the port and guesses the key can run code in the master (managers
#   unpickle what they receive). 127.0.0.1, a free port, a random key here;
# - the tasks come from a seeded random.Random, so a run is repeatable;
# - the manager is shut down even when reading a result fails (with block).

import os
import queue
import random
import secrets
import subprocess
import sys

from forklift.managers import BaseManager

AUTHKEY_ENV = "EXAMPLE_MASTER_AUTHKEY"  # hex
ADDRESS_ENV = "EXAMPLE_MASTER_ADDRESS"  # "host:port", for the worker
WORKER = os.path.join(os.path.dirname(os.path.abspath(__file__)), "distributed_worker.py")
N_TASKS = 10

task_queue: queue.Queue = queue.Queue()  # tasks for the workers
result_queue: queue.Queue = queue.Queue()  # their results


def get_task_queue() -> queue.Queue:
    return task_queue


def get_result_queue() -> queue.Queue:
    return result_queue


class QueueManager(BaseManager):
    pass


QueueManager.register("get_task_queue", callable=get_task_queue)
QueueManager.register("get_result_queue", callable=get_result_queue)


def start_worker(address: tuple[str, int], authkey: bytes) -> subprocess.Popen:
    env = dict(os.environ, **{ADDRESS_ENV: f"{address[0]}:{address[1]}", AUTHKEY_ENV: authkey.hex()})
    return subprocess.Popen([sys.executable, WORKER], env=env, stdout=subprocess.PIPE, text=True)


def main() -> None:
    serve_only = "--serve-only" in sys.argv
    authkey = bytes.fromhex(os.environ[AUTHKEY_ENV]) if serve_only else secrets.token_bytes(16)
    with QueueManager(address=("127.0.0.1", 0), authkey=authkey) as manager:  # start()s the server
        host, port = manager.address
        if serve_only:
            print(f"ADDRESS {host} {port}", flush=True)
        # use the queues through the manager, never task_queue directly: the real
        # queues live in the manager's server process
        task = manager.get_task_queue()
        result = manager.get_result_queue()
        rng = random.Random(2024)
        for _ in range(N_TASKS):
            n = rng.randint(0, 10000)
            print(f"Put task {n}...")
            task.put(n)
        worker = None if serve_only else start_worker(manager.address, authkey)
        print("Try get results...")
        for _ in range(N_TASKS):
            r = result.get(timeout=10)
            print(f"Result: {r}")
    if worker is not None:
        out, _ = worker.communicate(timeout=30)
        for line in out.splitlines():
            print(f"worker| {line}")
    print("master exit.")


if __name__ == "__main__":
    main()

"""Tutorial: 分布式进程 > task_master.py (a master hands out tasks through a shared queue).

The master puts ten numbers on a queue named "tasks" and reads ten results from
"results"; distributed_worker.py squares them. The queues live in a Dask
distributed scheduler (forklift's cluster place), so the master and the worker
may be on different machines.

- Run alone, the master starts an embedded local cluster (TLS, on 127.0.0.1)
  and runs distributed_worker.py as a subprocess against it.
- With FORKLIFT_ADDRESS / FORKLIFT_CREDENTIALS set (a cluster started with
  ``forklift cluster scheduler`` / ``worker``), it uses that cluster instead.
- ``--serve-only`` (used by distributed_worker.py when that runs alone) prints
  ``ADDRESS ...`` and ``CREDENTIALS ...`` and waits for an outside worker.
"""

# Fixes to the tutorial's design (BaseManager queues in the master's memory):
# - a worker killed while holding a task lost it, and a master restart lost every
#   queued task: here the work itself runs through Pool.apply on the cluster, where
#   Dask re-runs a task whose worker died (so tasks must be idempotent);
# - address ('', 5000) with the key b'abc' let anyone who guessed the key run code
#   in the master: here every peer needs a certificate from the credentials
#   directory (mutual TLS), made fresh in a temporary directory;
# - the tasks come from a seeded random.Random, so a run is repeatable.

import os
import random
import subprocess
import sys
import tempfile

from forklift import ClusterQueue, Pool
from forklift._cluster import make_credentials

WORKER = os.path.join(os.path.dirname(os.path.abspath(__file__)), "distributed_worker.py")
N_TASKS = 10


def start_worker(address: str, credentials: str) -> subprocess.Popen:
    env = dict(os.environ, FORKLIFT_ADDRESS=address, FORKLIFT_CREDENTIALS=credentials)
    return subprocess.Popen([sys.executable, WORKER], env=env, stdout=subprocess.PIPE, text=True)


def serve(address: str, credentials: str, serve_only: bool) -> None:
    # processes=2 sizes the embedded cluster; an outside cluster has the workers it has
    processes = 2 if address == "local" else None
    with Pool(processes, address=address, credentials=credentials) as pool:
        task = ClusterQueue("tasks", pool=pool)  # found by name by every process of the cluster
        result = ClusterQueue("results", pool=pool)
        rng = random.Random(2024)
        for _ in range(N_TASKS):
            n = rng.randint(0, 10000)
            print(f"Put task {n}...")
            task.put(n)
        print(f"on the cluster at {pool.address}")
        if serve_only:
            print(f"ADDRESS {pool.address}")
            print(f"CREDENTIALS {credentials}", flush=True)
        worker = None if serve_only else start_worker(pool.address, credentials)
        print("Try get results...")
        for _ in range(N_TASKS):
            r = result.get(timeout=30)
            print(f"Result: {r}")
    if worker is not None:
        out, _ = worker.communicate(timeout=30)
        for line in out.splitlines():
            print(f"worker| {line}")
    print("master exit.")


def main() -> None:
    serve_only = "--serve-only" in sys.argv
    address = os.environ.get("FORKLIFT_ADDRESS") or "local"
    credentials = os.environ.get("FORKLIFT_CREDENTIALS")
    if credentials is not None:
        serve(address, credentials, serve_only)
        return
    with tempfile.TemporaryDirectory() as tmp:  # a private CA and certificates for this run
        serve(address, str(make_credentials(os.path.join(tmp, "creds")).directory), serve_only)


if __name__ == "__main__":  # the local cluster spawns its workers: the guard is required
    main()

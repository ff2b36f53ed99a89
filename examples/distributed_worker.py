"""Tutorial: 分布式进程 > task_worker.py (a worker takes tasks from the master's queue).

Connects to the cluster named by FORKLIFT_ADDRESS with the credentials in
FORKLIFT_CREDENTIALS (``Pool()`` reads both), takes numbers from the shared
queue "tasks", has the cluster square each one (``pool.apply``) and puts the
result on "results". Run alone, it starts ``distributed_master.py
--serve-only`` itself (which starts an embedded local cluster), works for it,
and prints the master's output after its own.
"""

# Fixes to the tutorial's code:
# - "except Queue.Empty" -> "except queue.Empty" (Queue was never imported: the
#   first empty queue raised NameError); ClusterQueue.get raises queue.Empty too;
# - the hard-coded server address and key come from the environment;
# - time.sleep(1) per task -> none: the square runs on the cluster.

import os
import queue
import subprocess
import sys

from forklift import ClusterQueue, Pool

MASTER = os.path.join(os.path.dirname(os.path.abspath(__file__)), "distributed_master.py")


def square(n: int) -> int:
    return n * n


def work() -> None:
    print(f"Connect to server {os.environ['FORKLIFT_ADDRESS']}...")
    with Pool() as pool:  # FORKLIFT_ADDRESS / FORKLIFT_CREDENTIALS choose the cluster
        task = ClusterQueue("tasks", pool=pool)
        result = ClusterQueue("results", pool=pool)
        for _ in range(10):
            try:
                n = task.get(timeout=1)
                print(f"run task {n} * {n}...")
                r = pool.apply(square, (n,))  # runs on one of the cluster's workers
                result.put(f"{n} * {n} = {r}")
            except queue.Empty:
                print("task queue is empty.")
    print("worker exit.")


def standalone() -> None:
    """Start a master that waits for an outside worker, then be that worker."""
    master = subprocess.Popen([sys.executable, MASTER, "--serve-only"], stdout=subprocess.PIPE, text=True)
    seen = []
    try:
        found = {}
        while len(found) < 2:
            line = master.stdout.readline()
            if not line:
                raise SystemExit("the master ended before printing its address")
            key, _, value = line.rstrip("\n").partition(" ")
            if key in ("ADDRESS", "CREDENTIALS"):
                found[key] = value
            else:
                seen.append(line.rstrip("\n"))
        os.environ["FORKLIFT_ADDRESS"] = found["ADDRESS"]
        os.environ["FORKLIFT_CREDENTIALS"] = found["CREDENTIALS"]
        work()
        out, _ = master.communicate(timeout=30)
        for line in [*seen, *out.splitlines()]:
            print(f"master| {line}")
    finally:
        if master.poll() is None:
            master.kill()
            master.wait()


def main() -> None:
    if "FORKLIFT_ADDRESS" not in os.environ:
        standalone()
        return
    work()


if __name__ == "__main__":
    main()

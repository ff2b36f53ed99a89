"""Tutorial: 进程池 > Pool, the part the tutorial does not show: what happens when a task fails.

With multiprocessing.Pool a worker that dies (os._exit, segfault, OOM kill) makes
``map`` hang forever, and a task that hangs holds its worker forever. forklift:

- a dead worker fails only its own task, with forklift.WorkerLostError (pid,
  exit code, likely cause); the pool replaces the worker and goes on;
- ``retries=N`` runs such a task again (here it succeeds on the second try);
- ``timeout=`` kills a task that runs too long: forklift.TaskTimeout;
- a task's own exception comes back with its type.
"""

import os
import tempfile
import time

import forklift


def risky(x: int) -> int:
    if x == 3:
        os._exit(1)  # the worker dies in the middle of the map
    return x * x


def dies_once(marker: str) -> str:
    if not os.path.exists(marker):
        open(marker, "w").close()
        os._exit(1)  # first attempt: the worker dies
    return "second attempt succeeded"


def slow(seconds: float) -> float:
    time.sleep(seconds)
    return seconds


def main() -> None:
    with forklift.Pool(2) as pool:
        results = []
        for r in [pool.apply_async(risky, (x,)) for x in range(5)]:
            try:
                results.append(r.get(timeout=30))
            except forklift.WorkerLostError:
                results.append("WorkerLostError")
        print(f"results: {results}")

        print(f"map after a worker died: {pool.map(risky, [0, 1, 2])}")

        with tempfile.TemporaryDirectory() as tmp:
            print(pool.apply(dies_once, (os.path.join(tmp, "marker"),), retries=1))

        try:
            pool.apply(slow, (10,), timeout=0.5)
        except forklift.TaskTimeout:
            print("slow task: TaskTimeout after 0.5 s")
        print(f"pool still works: {pool.map(slow, [0, 0])}")


if __name__ == "__main__":
    main()

"""Tutorial: 进程同步 > RLock (the tutorial explains RLock but gives no code).

A Lock acquired twice by the same process waits forever for itself; an RLock
counts its acquisitions and must be released as many times. forklift.RLock and
forklift.Lock as in multiprocessing.
"""

# Fixes to the tutorial's text: "lock.aquire()" -> "lock.acquire()". The deadlock
# it describes is shown with acquire(timeout=...) so the example cannot hang.

import forklift


def nested(rlock, depth: int) -> int:
    """Recursive code that takes the same lock at every level."""
    with rlock:
        return 0 if depth == 0 else 1 + nested(rlock, depth - 1)


def try_twice(lock) -> str:
    with lock:
        if lock.acquire(timeout=0.2):  # the same process, the same (non-reentrant) lock
            lock.release()
            return "second acquire succeeded"
        return "second acquire timed out: a plain Lock is not reentrant"


def main() -> None:
    rlock = forklift.RLock()
    p = forklift.Process(target=nested, args=(rlock, 3))
    p.start()
    print(f"RLock taken {p.result(timeout=10) + 1} times, nested, by one process")

    lock = forklift.Lock()
    p = forklift.Process(target=try_twice, args=(lock,))
    p.start()
    print(f"Lock: {p.result(timeout=10)}")


if __name__ == "__main__":
    main()

"""Tutorial: 进程同步 > Barrier (two processes meet at a barrier, two do not wait).

forklift.Barrier and forklift.Lock as in multiprocessing. Each process returns
when it passed (time.monotonic(), one clock for all processes on Linux), so the
main process can show what the barrier did: p1 arrives first and is held until
p2, which comes 0.3 s later, arrives.
"""

# Fixes to the tutorial's code:
# - it printed wall-clock timestamps, which show nothing unless read closely; the
#   times are returned and compared instead;
# - "create four processes": the four were started but never joined;
# - the processes without the barrier printed without the lock: their lines
#   could interleave. All printing happens under the lock now.

import time

import forklift


def test_with_barrier(synchronizer, serializer, delay: float) -> tuple[float, float]:
    name = forklift.current_process().name
    time.sleep(delay)
    arrived = time.monotonic()
    synchronizer.wait()
    passed = time.monotonic()
    with serializer:
        print(f"process {name} passed the barrier", flush=True)
    return arrived, passed


def test_without_barrier(serializer) -> float:
    name = forklift.current_process().name
    with serializer:
        print(f"process {name} did not wait", flush=True)
    return time.monotonic()


def main() -> None:
    synchronizer = forklift.Barrier(2)  # releases its waiters once 2 processes wait
    serializer = forklift.Lock()
    p1 = forklift.Process(
        name="p1 - test_with_barrier", target=test_with_barrier, args=(synchronizer, serializer, 0.0)
    )
    p2 = forklift.Process(
        name="p2 - test_with_barrier", target=test_with_barrier, args=(synchronizer, serializer, 0.3)
    )
    p3 = forklift.Process(name="p3 - test_without_barrier", target=test_without_barrier, args=(serializer,))
    p4 = forklift.Process(name="p4 - test_without_barrier", target=test_without_barrier, args=(serializer,))
    for p in (p1, p2, p3, p4):
        p.start()
    (arrived1, passed1), (arrived2, passed2) = p1.result(timeout=10), p2.result(timeout=10)
    p3.result(timeout=10)
    p4.result(timeout=10)
    print(f"p1 arrived first and waited for p2: {arrived1 < arrived2 <= passed1}")
    print(f"p1 and p2 passed together: {abs(passed1 - passed2) < 0.2}")


if __name__ == "__main__":
    main()

"""Tutorial: 进程池 > ProcessPoolExecutor (fib with as_completed; sleeps).

forklift.Executor is a concurrent.futures.Executor: submit, map, as_completed
and wait work unchanged. Unlike ProcessPoolExecutor a worker death fails only
its own future (the executor is never "broken"), and ``options(timeout=...,
retries=...)`` sets per-task options for the calls made through it.
"""

# Fixes to the tutorial's code:
# - the two halves were swapped: its text says processes suit CPU work and threads
#   suit I/O, but it ran fib() on a ThreadPoolExecutor (no speed-up: the GIL) and
#   the sleeps on a ProcessPoolExecutor. CPU work goes to forklift.Executor here,
#   the sleeps to a ThreadPoolExecutor;
# - two ``if __name__ == "__main__":`` blocks in one file -> one main();
# - fib(25..39) took minutes on 3 workers: fib(20..27) here; 30 sleeps of 2 s -> 6 of 0.2 s;
# - submit(fib, (num)): the parentheses made no tuple, it is submit(fib, num);
# - as_completed yields in completion order: results are sorted before printing.

import time
from concurrent.futures import ThreadPoolExecutor, as_completed

import forklift


def fib(n: int) -> int:
    if n <= 2:
        return 1
    return fib(n - 1) + fib(n - 2)


def random_sleep(n: float) -> float:
    time.sleep(n)
    return n


def main() -> None:
    # 1. CPU-bound work: processes (one GIL each).
    with forklift.Executor(3) as executor:
        all_task = [executor.submit(fib, num) for num in range(20, 28)]
        data = sorted(future.result() for future in as_completed(all_task))
        print(f"fib results: {data}")
        # per-task options for submit: timeout (seconds) and retries
        print(f"fib(20) with a 10 s task timeout: {executor.options(timeout=10).submit(fib, 20).result()}")

    # 2. I/O-bound work (sleeping, waiting on the network): threads are enough.
    with ThreadPoolExecutor(3) as executor:
        start_time = time.time()
        all_task = [executor.submit(random_sleep, num) for num in [0.2] * 6]
        data = [future.result() for future in as_completed(all_task)]
        print(f"sleep results: {data}")
        print(f"last time is: {time.time() - start_time:.2f} s")


if __name__ == "__main__":
    main()

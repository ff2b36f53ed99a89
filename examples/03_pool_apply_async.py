"""Tutorial: 进程池 > Pool > 示例1 (apply_async, close, join).

forklift.Pool is the multiprocessing.Pool API. What changes here: a task that
raises is not lost (the tutorial threw the AsyncResults away, so an exception
in a task vanished without a word), and ``apply_async`` takes forklift's
per-task options, e.g. ``timeout=`` (seconds the task may run before its worker
is killed and the call fails with forklift.TaskTimeout).
"""

# Fixes to the tutorial's code:
# - the AsyncResults are kept and read with get(): with the tutorial's code a
#   failing task was silently ignored;
# - sleeps of up to 3 s are up to 0.3 s; results are printed in task order.

import os
import random
import time

import forklift


def long_time_task(name: int) -> tuple[int, float]:
    print(f"Run task {name} ({os.getpid()})...", flush=True)
    start = time.time()
    time.sleep(random.random() * 0.3)
    return name, time.time() - start


def main() -> None:
    print(f"Parent process {os.getpid()}.")
    p = forklift.Pool(4)
    results = [p.apply_async(long_time_task, args=(i,), timeout=10) for i in range(5)]
    print("Waiting for all subprocesses done...")
    p.close()  # no new tasks; workers leave once these are done
    p.join()  # wait for them (close() or terminate() first, as in multiprocessing)
    for r in results:
        name, seconds = r.get()  # re-raises the task's exception, if it raised
        print(f"Task {name} done (ran {seconds:0.2f} seconds)")
    print("All subprocesses done.")


if __name__ == "__main__":
    main()

"""Tutorial: 进程池 > Pool > 示例2 (with, apply_async, map, imap, get(timeout)).

forklift.Pool, same calls. What forklift adds: a per-task ``timeout=`` that
really stops the task (``get(timeout=...)`` only stops *waiting*: the task keeps
its worker busy), and lambdas work as tasks (cloudpickle).
"""

# Fixes to the tutorial's code:
# - "it - pool.imap(...)" -> "it = pool.imap(...)" (a NameError);
# - "pritn" -> "print";
# - the last get(timeout=3) on a 10 s sleep raised multiprocessing.TimeoutError
#   uncaught, ending the script with a traceback; it is caught and explained, and
#   the wait is 0.3 s.
import multiprocessing
import time

import forklift


def f(x: int) -> int:
    return x * x


def main() -> None:
    with forklift.Pool(processes=4) as pool:
        result = pool.apply_async(f, (10,))
        print(result.get(timeout=1))  # 100
        print(pool.map(f, range(10)))  # [0, 1, 4, ..., 81]
        it = pool.imap(f, range(10))  # a lazy iterator
        print(next(it))  # 0
        print(next(it))  # 1
        print(it.next(timeout=1))  # 4

        # get(timeout) gives up waiting; the task itself goes on sleeping.
        result = pool.apply_async(time.sleep, (10,))
        try:
            result.get(timeout=0.3)
        except multiprocessing.TimeoutError:
            print("get(timeout=0.3) raised multiprocessing.TimeoutError")

        # The other workers go on serving while one sleeps.
        print(pool.map(lambda x: x + 1, range(5)))  # a lambda as the task: [1, 2, 3, 4, 5]

        # forklift's per-task timeout kills the task's worker and fails the call.
        result = pool.apply_async(time.sleep, (10,), timeout=0.3)
        try:
            result.get()
        except forklift.TaskTimeout:
            print("apply_async(..., timeout=0.3) raised forklift.TaskTimeout")
    # leaving the with block terminates the pool (and the 10 s sleep with it)


if __name__ == "__main__":
    main()

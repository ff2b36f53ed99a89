"""Tutorial: 进程间通信 > Queue > pool进程池中的Queue (a Queue shared by Pool tasks).

The tutorial had to use multiprocessing.Manager().Queue(): a multiprocessing.Queue
passed to a Pool task raises "RuntimeError: Queue objects should only be shared
between processes through inheritance". forklift.Queue (and Lock, Event,
Value, ...) can be passed to Pool tasks directly: no manager process, no proxy
round trips.
"""

# Fixes to the tutorial's code:
# - its explanation was wrong: multiprocessing.Queue is an inter-process queue too;
#   it only cannot be pickled outside of process start-up, which a Pool task needs;
# - time.sleep(1) "to let the writer go first" was a race: the main process now
#   waits for the writer's result before starting the reader;
# - the reader read q.qsize() items: qsize() is a snapshot (and raises on macOS);
#   it reads the known number of items, each with a timeout;
# - the AsyncResults are read, so an exception in a task is not lost;
# - Pool() -> Pool(2), two tasks need two workers.

import os

import forklift

WORD = "itcast"


def reader(q) -> str:
    print(f"reader started ({os.getpid()}), parent {os.getppid()}", flush=True)
    return "".join(q.get(True, 10) for _ in range(len(WORD)))


def writer(q) -> None:
    print(f"writer started ({os.getpid()}), parent {os.getppid()}", flush=True)
    for ch in WORD:
        q.put(ch)


def main() -> None:
    print(f"({os.getpid()}) start")
    q = forklift.Queue()  # not Manager().Queue()
    with forklift.Pool(2) as po:
        po.apply_async(writer, (q,)).get(timeout=10)
        got = po.apply_async(reader, (q,)).get(timeout=10)
    print(f"reader got from the Queue: {got}")
    print("End")


if __name__ == "__main__":
    main()

"""Tutorial: 进程间通信 > Queue > queue读写数据 (one process writes to a Queue, another reads).

forklift.Queue and forklift.Process, as in multiprocessing; the reader returns
what it read through Process.result().
"""

# Fixes to the tutorial's code:
# - the reader looped forever and was stopped by terminate(): a terminated process
#   loses whatever it had not flushed yet (with stdout a pipe, all of its prints),
#   and an item it was reading could be lost. The writer now ends with a None
#   sentinel and the reader leaves its loop on it;
# - random sleeps of up to 1 s are 0.05 s.

import os
import time

import forklift


def write(q) -> None:
    print(f"Process to write: {os.getpid()}", flush=True)
    for value in ["A", "B", "C"]:
        print(f"Put {value} to queue...", flush=True)
        q.put(value)
        time.sleep(0.05)
    q.put(None)  # no more items


def read(q) -> list[str]:
    print(f"Process to read: {os.getpid()}", flush=True)
    got = []
    while (value := q.get(True)) is not None:
        print(f"Get {value} from queue.", flush=True)
        got.append(value)
    return got


def main() -> None:
    q = forklift.Queue()
    pw = forklift.Process(target=write, args=(q,))
    pr = forklift.Process(target=read, args=(q,))
    pw.start()
    pr.start()
    pw.join()
    print(f"reader got: {pr.result(timeout=10)}")


if __name__ == "__main__":
    main()

"""Tutorial: 进程同步 > Lock (two processes append to one file under a Lock).

forklift.Lock as in multiprocessing; it can also be passed to Pool tasks (the
stdlib refuses: "Lock objects should only be shared between processes through
inheritance"), shown in the second half.
"""

# Fixes to the tutorial's code:
# - "tiems -= 1" -> "times -= 1": a NameError (inside the lock, so process2 died
#   holding the file open);
# - "// 解锁" is not a Python comment (a SyntaxError): "#";
# - files are opened with "with", the loop is a for loop, "import sys" was unused;
# - share.txt was written into the current directory and grew on every run: a
#   temporary directory here;
# - what the lock guarantees is checked: each writer's 10 lines are contiguous.

import itertools
import os
import tempfile

import forklift


def process1(lock, path: str) -> None:
    with lock, open(path, "a") as fs:
        for _ in range(10):
            fs.write("process1 write\n")


def process2(lock, path: str) -> None:
    lock.acquire()
    try:
        with open(path, "a") as fs:
            for _ in range(10):
                fs.write("process2 write\n")
    finally:
        lock.release()


def write_block(lock, path: str, name: str) -> None:
    with lock, open(path, "a") as fs:
        for _ in range(10):
            fs.write(f"{name} write\n")
            fs.flush()  # one write per line: without the lock, blocks would interleave


def blocks(path: str) -> list[tuple[str, int]]:
    """The file as runs of equal lines: [(line, count), ...]."""
    with open(path) as fs:
        return [(line.strip(), len(list(run))) for line, run in itertools.groupby(fs)]


def main() -> None:
    lock = forklift.Lock()
    with tempfile.TemporaryDirectory() as tmp:
        path = os.path.join(tmp, "share.txt")
        p1 = forklift.Process(target=process1, args=(lock, path))
        p2 = forklift.Process(target=process2, args=(lock, path))
        p1.start()
        p2.start()
        p1.join()
        p2.join()
        print(f"Process writers: {sorted(blocks(path))}")

        path = os.path.join(tmp, "pool.txt")
        with forklift.Pool(2) as pool:
            pool.starmap(write_block, [(lock, path, f"task{i}") for i in range(4)])
        print(f"Pool tasks: {sorted(blocks(path))}")


if __name__ == "__main__":
    main()

"""Builds process trees for tests/test_kill.py and benchmarks/bench_kill_tree.py.

    python tree_spawner.py SHAPE

builds the tree named SHAPE below this process, prints ``READY pid pid ...``
(the members it knows of, itself first) on stdout, then keeps doing what the
shape does. Every process it starts inherits the environment, so a marker
variable set by the caller (``FORKLIFT_TREE_MARK``) finds them all later, and
none of them lives longer than LIFETIME seconds, even if nobody kills it.

Shapes:
  eleven     3 x ``bash -c 'sleep & sleep & wait'`` below this python (10 processes;
             11 with the bash the benchmark puts on top)
  forking    3 levels that never stop growing: this process and 2 middle processes
             each fork a sleeping leaf every 2 ms (up to MAX_FORKS each)
  ignore     this process and 3 forked children ignore SIGTERM
  setsid     a child, and a grandchild that calls setsid() (own session and group)
  orphans    a middle process forks 2 leaves and exits: the leaves are orphans
             (re-parented to PID 1), still in this process's group; READY lists them
  zombie     one child that exits at once and is never reaped, plus 2 sleeping children
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from collections.abc import Callable

LIFETIME = 60.0  # s: the longest any process of a tree lives
FORK_EVERY = 0.002  # s
MAX_FORKS = 400  # per forking process: a bound, should a test forget to kill


def fork(body: Callable[[], object]) -> int:
    """Run ``body`` in a forked child that then exits; return the child's pid."""
    pid = os.fork()
    if pid == 0:
        try:
            body()
        finally:
            os._exit(0)
    return pid


def sleep() -> None:
    time.sleep(LIFETIME)


def keep_forking() -> None:
    for _ in range(MAX_FORKS):
        fork(sleep)
        time.sleep(FORK_EVERY)
    sleep()


def ready(*pids: int) -> None:
    print("READY", os.getpid(), *pids, flush=True)


def eleven() -> None:
    script = f"sleep {LIFETIME:.0f} & sleep {LIFETIME:.0f} & wait"
    kids = [subprocess.Popen(["bash", "-c", script]) for _ in range(3)]
    deadline = time.monotonic() + 10
    while time.monotonic() < deadline and sum(len(_children(k.pid)) for k in kids) < 6:
        time.sleep(0.002)  # until the 6 sleeps run
    ready(*[k.pid for k in kids])
    sleep()


def forking() -> None:
    middles = [fork(keep_forking) for _ in range(2)]
    ready(*middles)
    keep_forking()


def ignore() -> None:
    signal.signal(signal.SIGTERM, signal.SIG_IGN)  # inherited by the forked children
    kids = [fork(sleep) for _ in range(3)]
    ready(*kids)
    sleep()


def setsid() -> None:
    r, w = os.pipe()

    def grandchild() -> None:
        os.setsid()
        os.write(w, f"{os.getpid()}\n".encode())
        sleep()

    def middle() -> None:
        fork(grandchild)
        sleep()

    mid = fork(middle)
    grand = int(os.read(r, 64).decode())
    ready(mid, grand)
    sleep()


def orphans() -> None:
    r, w = os.pipe()

    def middle() -> None:
        leaves = [fork(sleep) for _ in range(2)]
        os.write(w, f"{leaves[0]} {leaves[1]}\n".encode())

    mid = fork(middle)
    os.waitpid(mid, 0)  # the middle is gone: its leaves are orphans now
    leaves = [int(x) for x in os.read(r, 64).decode().split()]
    deadline = time.monotonic() + 10
    while time.monotonic() < deadline and any(_ppid(p) not in (None, 1) for p in leaves):
        time.sleep(0.001)
    ready(*leaves)
    sleep()


def zombie() -> None:
    dead = fork(lambda: None)
    kids = [fork(sleep) for _ in range(2)]
    ready(dead, *kids)
    sleep()


def _children(parent: int) -> list[int]:
    return [p for p in map(int, filter(str.isdigit, os.listdir("/proc"))) if _ppid(p) == parent]


def _ppid(pid: int) -> int | None:
    try:
        with open(f"/proc/{pid}/stat", "rb") as f:
            return int(f.read().rsplit(b")", 1)[1].split()[1])
    except (OSError, IndexError, ValueError):
        return None


SHAPES = {f.__name__: f for f in (eleven, forking, ignore, setsid, orphans, zombie)}

if __name__ == "__main__":
    SHAPES[sys.argv[1]]()

"""Ctrl-C at random moments: KeyboardInterrupts fired into blocking calls of a pool.

usage: interrupt_fuzz.py START_METHOD FACE ITERATIONS SEED
  FACE = pool      pool.apply(square, (i,)) in a loop
  FACE = executor  ex.submit(square, i).result() in a loop

A SIGALRM handler fires every 0.2-10 ms (random) and, while a call runs, raises
KeyboardInterrupt wherever the main thread is: inside Condition.__enter__,
Future.result, forklift's own code.
The loop catches the interrupts and goes on; at the end the pool must still
compute a map right and terminate must return. Prints one JSON line:
{"done": n, "interrupted": n, "other": {"TypeName": n}, "map_ok": bool}.
The test runs it under a deadline: the stdlib hangs on every seed tried.
"""

import collections
import json
import os
import random
import signal
import sys

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

import forklift

import tasks


class _Alarm:
    """Re-arms itself at random; raises KeyboardInterrupt while ``armed``."""

    def __init__(self, rng):
        self.rng = rng
        self.armed = False

    def __call__(self, signum, frame):
        signal.setitimer(signal.ITIMER_REAL, self.rng.uniform(0.0002, 0.010))
        if self.armed:
            self.armed = False
            raise KeyboardInterrupt


def main():
    method, face, iterations, seed = sys.argv[1], sys.argv[2], int(sys.argv[3]), int(sys.argv[4])
    rng = random.Random(seed)
    counts = collections.Counter()
    other = collections.Counter()
    maker = forklift.Pool if face == "pool" else forklift.Executor
    pool = maker(2, start_method=method)
    call = (
        (lambda i: pool.apply(tasks.square, (i,)))
        if face == "pool"
        else (lambda i: pool.submit(tasks.square, i).result())
    )
    alarm = _Alarm(rng)
    signal.signal(signal.SIGALRM, alarm)
    signal.setitimer(signal.ITIMER_REAL, 0.001)
    for i in range(iterations):
        try:
            alarm.armed = True
            value = call(i)
            alarm.armed = False
            assert value == i * i, (i, value)
            counts["done"] += 1
        except KeyboardInterrupt:
            alarm.armed = False
            counts["interrupted"] += 1
        except BaseException as exc:  # anything else is a finding: count it by type
            alarm.armed = False
            other[f"{type(exc).__name__}: {exc}"[:120]] += 1
    signal.setitimer(signal.ITIMER_REAL, 0)
    signal.signal(signal.SIGALRM, signal.SIG_IGN)
    results = list(pool.map(tasks.square, range(100)))
    pool.terminate()
    stats = {**counts, "other": other, "map_ok": results == [x * x for x in range(100)]}
    print(json.dumps(stats), flush=True)


if __name__ == "__main__":
    main()

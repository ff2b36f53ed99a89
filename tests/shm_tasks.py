"""Task functions for tests/test_shared_memory.py (importable under spawn)."""

import os
import signal

import numpy as np

KEPT = []


def total(a):
    return float(np.asarray(a).sum())


def add_one_in_place(a):
    a += 1
    return float(a.sum())


def full(n, value=2.0):
    return np.full(n, value)


def length_and_head(b):
    return type(b).__name__, len(b), bytes(b[:3])


def make_bytes(n):
    return b"r" * n


def keep(a):
    KEPT.append(a)
    return float(a[0])


def first_kept():
    return [float(a[0]) for a in KEPT], [float(a[-1]) for a in KEPT]


def fail_with(a):
    raise ValueError(f"bad array of {a.size}")


def die_once(a, marker):
    if not os.path.exists(marker):
        open(marker, "w").close()
        os.kill(os.getpid(), signal.SIGKILL)
    return float(a.sum())


def write_cell(a, i, value):
    a[i] = value
    return bool(a.is_shared)


def head(a):
    return a[:3]


def open_fds(_=None):
    return len(os.listdir("/proc/self/fd"))


def make_shared_array(_):
    import forklift

    return forklift.SharedArray.from_array(np.arange(10.0))  # dropped by the worker once sent


def same_object(a, b):
    return a is b, len(a)


def full_small(i):
    return np.full(1 << 17, float(i))  # 1 MiB

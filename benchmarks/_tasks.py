"""Task functions of the throughput and start-up benchmarks.

They live in an importable module, not in ``__main__``, so that workers started
by forkserver or spawn (and loky's fresh interpreters) import them by name and
every library sends the same thing: a reference to the function.
"""

from __future__ import annotations

import time


def square(x: int) -> int:
    """The tiny task: almost no work, so the figure is the pool's per-task cost."""
    return x * x


def identity(x: object) -> object:
    """The trivial task of the start-up benchmark."""
    return x


def burn(n: int) -> int:
    """Pure-Python CPU work, about linear in ``n`` (no sleeping, no C calls)."""
    acc = 0
    for i in range(n):
        acc = (acc + i * i) % 1_000_003
    return acc


def timed_burn(n: int) -> tuple[float, int]:
    """``burn(n)`` and the seconds it took inside the worker (for effective parallelism)."""
    start = time.perf_counter()
    value = burn(n)
    return time.perf_counter() - start, value


def nap(seconds: float, x: int) -> int:
    """Sleep ``seconds`` and return ``x``: a task that needs no CPU, so with many workers on
    few cores the pool's scheduling, not the CPU, is what limits throughput. Used as
    ``functools.partial(nap, 0.005)``."""
    time.sleep(seconds)
    return x


async def async_square(x: int) -> int:
    """The tiny task as a coroutine: aiomultiprocess runs coroutines in its workers."""
    return x * x


async def async_nap(seconds: float, x: int) -> int:
    """``nap`` as a coroutine (aiomultiprocess)."""
    import asyncio

    await asyncio.sleep(seconds)
    return x


def log_one(x: int) -> int:
    """Log one INFO record (logger "bench"), return x: the logging benchmark's task."""
    import logging

    logging.getLogger("bench").info("task %d", x)
    return x

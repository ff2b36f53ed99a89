"""Task functions of the fault soak (tests/faults/soak.py), importable by workers under every start method.

An item is ``(key, ms)``: ``key`` is unique in a soak run, so a result names the item it
belongs to (a result delivered twice, or into another call, is seen); ``ms`` is how long the
task sleeps, or one of the two special values below.
"""

from __future__ import annotations

import os
import time

HANG = -1  # sleep far past any timeout the soak gives (only ever in a call with a timeout)
FAIL = -2  # raise SoakError(key)
HANG_SECONDS = 60.0


class SoakError(Exception):
    """What a FAIL item raises; the key travels as its only argument."""

    def __init__(self, key: int) -> None:
        super().__init__(key)
        self.key = key


def expected(key: int) -> int:
    """The value a task returns for ``key`` (a hash, so a swapped or stale value is seen)."""
    return (key * 2654435761 + 97) % 4294967296


def work(item: tuple[int, int]) -> tuple[int, int, int]:
    """``(key, expected(key), pid of the worker)``, after sleeping ``ms`` milliseconds."""
    key, ms = item
    if ms == HANG:
        time.sleep(HANG_SECONDS)
    elif ms == FAIL:
        raise SoakError(key)
    elif ms > 0:
        time.sleep(ms / 1000)
    return key, expected(key), os.getpid()

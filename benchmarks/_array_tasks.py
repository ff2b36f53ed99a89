"""Task functions for bench_big_arrays.py (workers import them by name)."""

from __future__ import annotations

from multiprocessing import resource_tracker, shared_memory
from typing import Any

import numpy as np

_attached: dict[str, Any] = {}  # the hand-written reference: each worker attaches once per block


def total(a: Any) -> float:
    return float(a.sum())


def make(value: float, n: int) -> Any:
    return np.full(n, value)


def fill(out: Any, value: float) -> None:
    out[:] = value


def _view(name: str, n: int) -> Any:
    if name not in _attached:
        if len(_attached) > 8:
            _attached.clear()
        shm = shared_memory.SharedMemory(name=name)
        # 3.11 registers an attached block with the resource tracker as if we owned it
        # (cpython #82300): without this it would unlink the parent's block and warn.
        resource_tracker.unregister(shm._name, "shared_memory")  # type: ignore[attr-defined]
        _attached[name] = (shm, np.ndarray((n,), np.float64, buffer=shm.buf))
    return _attached[name][1]


def shm_total(name: str, n: int) -> float:
    return float(_view(name, n).sum())


def shm_fill(name: str, n: int, value: float) -> None:
    _view(name, n)[:] = value

"""Argument checks shared by the faces and the engine: early, precise errors.

Messages follow the standard library's where it has one (``Pool(0)``,
``chunksize=0``), so code that matched on them keeps working.
"""

from __future__ import annotations

from numbers import Real
from typing import Any


def whole(name: str, value: int | None, *, minimum: int, message: str = "") -> int | None:
    """``value`` if it is None or an int >= ``minimum``; else TypeError / ValueError."""
    if value is None:
        return None
    if isinstance(value, bool) or not isinstance(value, int):
        raise TypeError(f"{name} must be an int, not {type(value).__name__}")
    if value < minimum:
        raise ValueError(message or f"{name} must be at least {minimum}, not {value}")
    return value


def seconds(name: str, value: float | None) -> float | None:
    """``value`` as a float if it is None or a number > 0."""
    if value is None:
        return None
    if isinstance(value, bool) or not isinstance(value, Real):
        raise TypeError(f"{name} must be a number of seconds, not {type(value).__name__}")
    if value <= 0:
        raise ValueError(f"{name} must be > 0, not {value}")
    return float(value)


def callable_(fn: Any) -> None:
    if not callable(fn):
        raise TypeError(f"{type(fn).__name__!r} object is not callable")

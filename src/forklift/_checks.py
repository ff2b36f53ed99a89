"""Argument checks shared by the faces and the engine: early, precise errors.

Messages follow the standard library's where it has one (``Pool(0)``,
``chunksize=0``, ``maxtasksperchild``: see ``_options.pool_tasks_per_child``), so
code that matched on them keeps working.

Three kinds of seconds, because the standard library's own conventions differ by use:

- :func:`seconds`: how long a task may run (``timeout=``). ``None`` or ``inf``
  means no limit (the stdlib's convention); it must be > 0.
- :func:`wait_seconds`: how long a caller waits (``get(timeout)``,
  ``Executor.map(timeout=)``). ``None`` or ``inf`` waits for ever; 0 or less
  does not wait (as ``Event.wait`` and ``Future.result`` do).
- :func:`grace_seconds`: a finite grace period >= 0 (``kill_tree``): a process
  that ignores its signal must not make the call wait for ever.

``nan`` is refused by all three, and so is a bool or any non-number: one call's
options must never reach the scheduler in a form that breaks it (``int(inf * 1e9)``).
Values at or above ``threading.TIMEOUT_MAX`` (about 292 years here) mean "no limit":
no deadline that far away can be waited for, and the C-level waits overflow on them.
"""

from __future__ import annotations

import math
import threading
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


def _number(name: str, value: Any) -> float:
    if isinstance(value, bool) or not isinstance(value, Real):
        raise TypeError(f"{name} must be a number of seconds, not {type(value).__name__}")
    number = float(value)
    if math.isnan(number):
        raise ValueError(f"{name} must be a number of seconds, not nan")
    return number


def seconds(name: str, value: float | None) -> float | None:
    """A task's time limit: None (no limit, also for inf) or a float > 0."""
    if value is None:
        return None
    number = _number(name, value)
    if number <= 0:
        raise ValueError(f"{name} must be > 0, not {value}")
    return None if number >= threading.TIMEOUT_MAX else number


def wait_seconds(name: str, value: float | None) -> float | None:
    """How long a caller waits: None (for ever, also for inf) or a float >= 0 (less is 0)."""
    if value is None:
        return None
    number = _number(name, value)
    return None if number >= threading.TIMEOUT_MAX else max(number, 0.0)


def grace_seconds(name: str, value: float) -> float:
    """A finite number of seconds >= 0."""
    number = _number(name, value)
    if number < 0 or math.isinf(number):
        raise ValueError(f"{name} must be a finite number of seconds >= 0, not {value}")
    return number


def flag(name: str, value: Any) -> bool:
    """A true bool: ``1`` or ``"yes"`` is refused, as a typo more likely than a choice."""
    if not isinstance(value, bool):
        raise TypeError(f"{name} must be a bool, not {type(value).__name__}")
    return value


def callable_(fn: Any) -> None:
    if not callable(fn):
        raise TypeError(f"{type(fn).__name__!r} object is not callable")

"""What each journal column may hold, checked as it is read: every SELECT of the report goes through here."""

from __future__ import annotations

import sqlite3
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any

from ..errors import JournalError


def _query(conn: sqlite3.Connection, sql: str, args: tuple[Any, ...] = ()) -> list[tuple[Any, ...]]:
    try:
        return conn.execute(sql, args).fetchall()
    except sqlite3.DatabaseError as exc:
        raise JournalError(f"the journal cannot be read: {exc}") from None


# A journal is a file anyone can write, and SQLite keeps whatever it is given in any column:
# an INTEGER column holds text that does not look like a number, or a blob. So every value
# is checked as it is read. One that is only shown (names, statuses, pids, errors) becomes
# text if it is not what forklift writes, and is escaped wherever it is drawn; one the
# drawing computes with (times, task indexes, counts) must be a number, or the report says
# which column holds what, in one line.


@dataclass(frozen=True)
class _Kind:
    """What a column holds: ``sql`` is true of every value forklift writes; ``read`` takes any value."""

    sql: str  # a condition on the column, "{0}"
    read: Callable[[Any, str], Any]  # (value, "table.column") -> the value to use, or JournalError


def _integer(value: Any, column: str) -> int:
    if type(value) is int:
        return value
    raise JournalError(f"{column} holds {_excerpt(value)} where an integer belongs: the journal was altered")


def _chunk_size(value: Any, column: str) -> int:
    # forklift's chunks hold at most MAX_CHUNK * 50 items; a crafted size would make the
    # report walk its items for hours.
    if type(value) is int and 1 <= value <= _CHUNK_MAX:
        return value
    raise JournalError(
        f"{column} holds {_excerpt(value)} where a chunk size belongs: the journal was altered"
    )


def _time(value: Any, column: str) -> float:
    if type(value) in (int, float) and _TIME_LOW <= value < _TIME_HIGH:
        return float(value)
    raise JournalError(f"{column} holds {_excerpt(value)} where a time belongs: the journal was altered")


def _text(value: Any, column: str) -> str:
    if isinstance(value, bytes):
        return value.decode("utf-8", "replace")
    return value if isinstance(value, str) else "" if value is None else str(value)


def _shown_id(value: Any, column: str) -> int | str | None:
    """A pid, an exit code, a count: shown (and used only if an integer), so anything else is text."""
    return value if value is None or type(value) is int else _text(value, column)


def _or_null(read: Callable[[Any, str], Any]) -> Callable[[Any, str], Any]:
    return lambda value, column: None if value is None else read(value, column)


def _excerpt(value: Any) -> str:
    text = repr(value)  # one line, control characters escaped: it goes to a terminal
    return text if len(text) <= 40 else text[:37] + "..."


# Unix seconds: 1e11 is the year 5138, within what datetime (and the drawing's arithmetic) takes.
_TIME_LOW, _TIME_HIGH = 0.0, 1e11
_PID_MAX = 1 << 22  # the highest pid_max Linux allows; psutil raises OverflowError far above it
_INT = _Kind("typeof({0}) = 'integer'", _integer)
_CHUNK_MAX = 10_000_000
_CHUNK_N = _Kind(f"typeof({{0}}) = 'integer' AND {{0}} BETWEEN 1 AND {_CHUNK_MAX}", _chunk_size)
_TIME = _Kind(
    f"typeof({{0}}) IN ('integer', 'real') AND {{0}} >= {_TIME_LOW} AND {{0}} < {_TIME_HIGH}", _time
)
_TIME_OR_NULL = _Kind(f"({{0}} IS NULL OR ({_TIME.sql}))", _or_null(_time))
_TEXT = _Kind("typeof({0}) = 'text'", _text)
_TEXT_OR_NULL = _Kind("typeof({0}) IN ('text', 'null')", _or_null(_text))
_ID = _Kind("typeof({0}) IN ('integer', 'null')", _shown_id)
_PID = _Kind(f"typeof({{0}}) = 'integer' AND {{0}} > 0 AND {{0}} <= {_PID_MAX}", _integer)

_RUN_COLUMNS = (
    ("run", _INT), ("kind", _TEXT), ("name", _TEXT), ("pid", _ID), ("host", _TEXT_OR_NULL),
    ("workers", _ID), ("total", _ID), ("started", _TIME), ("ended", _TIME_OR_NULL),
    ("status", _TEXT),
)  # fmt: skip
_CHUNK_COLUMNS = (
    ("start", _INT), ("n", _CHUNK_N), ("attempt", _INT), ("worker", _ID), ("began", _TIME), ("ended", _TIME),
    ("failed", _TEXT_OR_NULL),
)  # fmt: skip
_TASK_COLUMNS = (
    ("idx", _INT), ("attempt", _INT), ("status", _TEXT), ("worker", _ID), ("began", _TIME_OR_NULL),
    ("ended", _TIME_OR_NULL), ("error", _TEXT_OR_NULL), ("exit_code", _ID), ("command", _TEXT_OR_NULL),
)  # fmt: skip
_WORKER_COLUMNS = (
    ("pid", _PID), ("parent", _PID), ("run", _ID), ("state", _TEXT), ("task", _ID), ("done", _ID),
    ("updated", _TIME),
)  # fmt: skip


def _select(
    conn: sqlite3.Connection,
    table: str,
    columns: Sequence[tuple[str, _Kind]],
    where: str,
    args: tuple[Any, ...] = (),
    *,
    order: str = "",
) -> list[tuple[Any, ...]]:
    """The rows of ``table`` matching ``where``, every value checked against its column's _Kind."""
    names = ", ".join(name for name, _ in columns)
    rows = _query(
        conn, f"SELECT {names} FROM {table} WHERE {where}" + (f" ORDER BY {order}" if order else ""), args
    )
    usual = " AND ".join(kind.sql.format(name) for name, kind in columns)
    if not _query(conn, f"SELECT 1 FROM {table} WHERE ({where}) AND NOT ({usual}) LIMIT 1", args):
        return rows  # as forklift wrote them: one pass in SQLite, not 200,000 rows of Python
    columns_named = [(f"{table}.{name}", kind.read) for name, kind in columns]
    return [tuple(read(v, column) for (column, read), v in zip(columns_named, row)) for row in rows]

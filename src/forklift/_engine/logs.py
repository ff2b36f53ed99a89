"""Logging from workers: records go to the parent's handlers, tagged with their task.

Under forkserver and spawn a worker's ``logging`` is unconfigured (a fresh
interpreter), so its records went nowhere the user configured. Now:

- **in the worker**, :func:`install` puts a :class:`ForwardHandler` on the root
  logger (under fork, in place of the handlers inherited from the parent, which
  would otherwise write a second copy) and sets the levels the parent's loggers had
  when the pool started, so a record the parent would drop is not even sent. Each
  record is sent at once, as a LOG message on the worker's pipe, its message
  formatted and its traceback turned into text there (what ``QueueHandler.prepare``
  does), with the chunk and item it came from. Sent at once: a worker killed right
  after a logging call has already written the record, and the parent reads a dead
  worker's pipe to the end before it handles the death.
- **in the parent**, the scheduler thread turns a LOG message back into a
  ``LogRecord`` with ``forklift_task`` (the task's index in its call, None outside a
  task: the initializer) and ``forklift_call`` (the call's name), and hands it to the
  pool's callbacks thread, which runs the parent's handlers (:func:`dispatch`): never
  the scheduler, since a handler may block. The parent's logger levels and filters
  apply there as for its own records.

``forward_logging=False`` (or ``FORKLIFT_FORWARD_LOGGING=0``) leaves a worker's
logging alone, for programs that configure their workers themselves.
"""

from __future__ import annotations

import logging
import pickle
import sys
from collections.abc import Callable
from typing import Any

#: LogRecord attributes rebuilt in the parent from the worker's; the rest (a record's
#: ``extra=`` fields) travel too when they pickle.
_DROP = frozenset({"args", "exc_info", "msg", "message"})


def levels_now() -> dict[str, int]:
    """The parent's levels to give the workers: the root's, and every logger set explicitly."""
    levels = {"": logging.getLogger().getEffectiveLevel()}
    for name, logger in list(logging.Logger.manager.loggerDict.items()):
        if isinstance(logger, logging.Logger) and logger.level != logging.NOTSET:
            levels[name] = logger.level
    return levels


# -- the worker's side ----------------------------------------------------------------------
class ForwardHandler(logging.Handler):
    """Sends each record to the pool's process (``send(fields)``), tagged by ``where()``."""

    def __init__(self, send: Callable[[tuple[Any, ...]], None], where: Callable[[], tuple[int, int]]) -> None:
        super().__init__()
        self._send = send
        self._where = where

    def emit(self, record: logging.LogRecord) -> None:
        try:
            seq, offset = self._where()
            fields = _portable(record)
            try:
                self._send((seq, offset, fields))
            except (pickle.PicklingError, TypeError, AttributeError):  # before anything was written
                self._send((seq, offset, {k: v if _pickles(v) else repr(v) for k, v in fields.items()}))
        except (BrokenPipeError, ConnectionResetError, OSError):
            pass  # the pool is gone: the worker is ending
        except Exception:
            self.handleError(record)

    def handleError(self, record: logging.LogRecord) -> None:
        pass  # never a traceback on the worker's stderr for a record that would not travel


def _portable(record: logging.LogRecord) -> dict[str, Any]:
    """The record as a dict that pickles: message formatted, traceback as text."""
    fields = {k: v for k, v in record.__dict__.items() if k not in _DROP}
    fields["msg"] = record.getMessage()
    if record.exc_info and not record.exc_text:
        fields["exc_text"] = logging.Formatter().formatException(record.exc_info)
    fields["args"] = None
    fields["exc_info"] = None
    return fields  # an extra= field that does not pickle is sent as its repr (emit)


def _pickles(value: Any) -> bool:
    try:
        pickle.dumps(value)
    except Exception:
        return False
    return True


def install(
    send: Callable[[tuple[Any, ...]], None],
    where: Callable[[], tuple[int, int]],
    levels: dict[str, int],
    inherited: bool,
) -> None:
    """Forward this worker's records to the pool's process (see the module docstring).

    ``inherited``: the worker was forked, so its loggers hold the parent's handlers;
    they are removed (the parent writes each record once, with its own handlers).
    """
    manager = logging.Logger.manager
    if inherited:
        for logger in [logging.getLogger(), *manager.loggerDict.values()]:
            if isinstance(logger, logging.Logger) and logger.handlers:
                for handler in list(logger.handlers):
                    logger.removeHandler(handler)
                if logger.name != "root":
                    logger.propagate = True  # what the parent's own logger does decides, there
    for name, level in levels.items():
        logging.getLogger(name or None).setLevel(level)
    logging.getLogger().addHandler(ForwardHandler(send, where))


# -- the parent's side ----------------------------------------------------------------------
def rebuild(fields: dict[str, Any], task: int | None, call: str | None) -> logging.LogRecord:
    record = logging.makeLogRecord(fields)
    record.forklift_task = task
    record.forklift_call = call
    return record


def line(fields: dict[str, Any]) -> str:
    """One record as the journal keeps it beside a failed task's error."""
    text = f"{fields.get('levelname', '?')} {fields.get('name', '?')}: {fields.get('msg', '')}"
    return text if len(text) <= 500 else text[:497] + "..."


def dispatch(record: logging.LogRecord) -> None:
    """Run the parent's handlers for a worker's record (on the pool's callbacks thread).

    While a progress bar draws (rich replaces sys.stderr with a proxy that prints above
    the bar), a handler that writes to the real stderr writes through the proxy, so
    its lines never cut through the bar.
    """
    logger = logging.getLogger(record.name)
    if not logger.isEnabledFor(record.levelno):
        return
    proxy = sys.stderr
    real = getattr(proxy, "rich_proxied_file", None)
    if real is None:
        logger.handle(record)
        return
    moved = []
    for handler in _handlers_of(logger):
        if isinstance(handler, logging.StreamHandler) and handler.stream is real:
            moved.append(handler)
            handler.stream = proxy
    try:
        logger.handle(record)
    finally:
        for handler in moved:
            handler.stream = real


def _handlers_of(logger: logging.Logger) -> list[logging.Handler]:
    found: list[logging.Handler] = []
    current: logging.Logger | None = logger
    while current is not None:
        found.extend(current.handlers)
        current = current.parent if current.propagate else None
    return found

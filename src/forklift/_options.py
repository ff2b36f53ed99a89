"""A pool's options: given once to a face, checked once here, handed down as one object.

Pool and Executor spell a few options differently (``processes`` /
``max_workers``, ``maxtasksperchild`` / ``max_tasks_per_child``, ``context`` /
``mp_context``); each face maps its names onto :class:`PoolOptions`, whose
:meth:`PoolOptions.build` checks every value before anything starts. The places
and the engines read the checked fields and check nothing again.

Per-call options (``timeout``, ``retries``, ``progress``) are a
:class:`CallOptions`: the pool's defaults, with what a call gave in their place
(:meth:`CallOptions.given`). :data:`UNSET` marks an option the call did not give.
Support code: imports nothing of forklift's but the argument checks and tunables.
"""

from __future__ import annotations

import enum
import os
from collections.abc import Callable, Mapping
from typing import Any, Final, Literal, NamedTuple, TypedDict, TypeVar, Union

from . import _config
from ._checks import flag, seconds, whole

__all__ = [
    "UNSET",
    "CallKeywords",
    "CallOptions",
    "Journaling",
    "MapKeywords",
    "Maybe",
    "PoolOptions",
    "Progress",
    "Unset",
]

ADDRESS_ENV = "FORKLIFT_ADDRESS"


class Unset(enum.Enum):
    """The type of :data:`UNSET`."""

    UNSET = "UNSET"

    def __repr__(self) -> str:
        return "UNSET"


UNSET: Final = Unset.UNSET  # an option the caller did not give: the pool's default applies

T = TypeVar("T")
Maybe = Union[T, Literal[Unset.UNSET]]  # noqa: UP007 - a generic alias; `|` cannot take a TypeVar here
Progress = Union[bool, str, None]  # noqa: UP007 - True / False / None, "workers", or the bar's title


def check_timeout(timeout: float | None, name: str = "timeout") -> float | None:
    return seconds(name, timeout)


def check_retries(retries: int) -> int:
    if retries is None:
        raise TypeError("retries must be an int, not None")
    checked = whole("retries", retries, minimum=0)
    assert checked is not None
    return checked


def check_progress(progress: Any) -> Progress:
    """``progress=``: True / False / None, ``"workers"``, or the bar's description (any other str)."""
    if progress is None or isinstance(progress, (bool, str)):
        return progress
    raise TypeError(
        f'progress must be True, False, "workers" or a description (a str), not {type(progress).__name__}'
    )


def check_chunksize(chunksize: int | None) -> int | None:
    return whole("chunksize", chunksize, minimum=1, message=f"Chunksize must be 1+, not {chunksize}")


def check_buffersize(buffersize: int | None) -> int | None:
    """Python 3.14's checks and messages for ``Executor.map(buffersize=)``: an int (a bool is
    one) of 1 or more, or None."""
    if buffersize is not None and not isinstance(buffersize, int):
        raise TypeError("buffersize must be an integer or None")
    if buffersize is not None and buffersize < 1:
        raise ValueError("buffersize must be None or > 0")
    return None if buffersize is None else int(buffersize)


def check_processes(processes: int | None) -> int | None:
    if processes is None:
        return None
    checked = whole("processes", processes, minimum=1, message="Number of processes must be at least 1")
    assert checked is not None
    if checked > _config.MAX_WORKERS:  # Pool(10**30) started processes until the machine gave out
        raise ValueError(
            f"processes={checked} is more workers than forklift starts ({_config.MAX_WORKERS}; "
            "set FORKLIFT_MAX_WORKERS to allow more)"
        )
    return checked


def pool_tasks_per_child(maxtasksperchild: Any, max_tasks_per_child: Any) -> int | None:
    """Pool's ``maxtasksperchild`` (or forklift's spelling, not both), checked as the stdlib does.

    multiprocessing.Pool raises ValueError for any bad value (0, -1, 0.5, "12"), where
    ProcessPoolExecutor (and so Executor's ``max_tasks_per_child``) raises TypeError for a
    wrong type. A bool, which the stdlib takes for 0 or 1, is refused as a mistake.
    """
    if maxtasksperchild is not None and max_tasks_per_child is not None:
        raise TypeError("give maxtasksperchild or max_tasks_per_child, not both (they are one option)")
    name = "maxtasksperchild" if max_tasks_per_child is None else "max_tasks_per_child"
    value = maxtasksperchild if max_tasks_per_child is None else max_tasks_per_child
    if value is not None and (isinstance(value, bool) or not isinstance(value, int) or value < 1):
        raise ValueError(f"{name} must be a positive int or None, not {value!r}")
    return value


def check_keywords(given: Mapping[str, Any], allowed: frozenset[str]) -> None:
    """``**kwargs`` typed with a TypedDict are checked by mypy; this checks them at run time."""
    unknown = set(given) - allowed
    if unknown:
        raise TypeError(f"unexpected keyword argument(s): {', '.join(sorted(unknown))}")


class CallKeywords(TypedDict, total=False):
    """The per-call options of ``Pool.imap`` and ``imap_unordered`` (and of map, below)."""

    timeout: float | None  # seconds a task may run
    retries: int
    progress: Progress


class MapKeywords(CallKeywords, total=False):
    """``Pool.map``, ``starmap`` and their ``_async``: also a journal for the call, and resuming."""

    journal: str | os.PathLike[str] | None
    resume: bool
    force: bool


class Journaling(NamedTuple):
    """A map's record: its own journal (else the pool's), whether it resumes, and with ``force``
    whether results of changed code are recomputed rather than refused."""

    journal: str | os.PathLike[str] | None = None
    resume: bool = False
    force: bool = False

    @classmethod
    def of(cls, given: MapKeywords, pool_resumes: bool) -> Journaling:
        """What a map does. With ``Pool(journal=..., resume=True)`` a map that names no journal
        and says nothing of resuming resumes what the journal holds; one it has no run of (other
        inputs, other code) simply runs, where an explicit ``resume=True`` is refused."""
        force = flag("force", given["force"]) if "force" in given else None
        if pool_resumes and given.get("journal") is None and "resume" not in given:
            return cls(None, True, True if force is None else force)
        return cls(given.get("journal"), flag("resume", given.get("resume", False)), bool(force))


class CallOptions(NamedTuple):
    """What each task of a call gets: a run-time limit, retries, and the call's progress bar.

    (NamedTuples, not dataclasses: a frozen dataclass costs ~0.4 ms to define, paid by every
    interpreter that makes a pool.)
    """

    timeout: float | None = None  # seconds a task may run (None: no limit)
    retries: int = 0  # runs again of a task whose worker died or that timed out
    progress: Progress = False

    @classmethod
    def build(cls, timeout: float | None, retries: int, progress: Any) -> CallOptions:
        return cls(check_timeout(timeout), check_retries(retries), check_progress(progress))

    def of(self, given: CallKeywords | MapKeywords, *, journaling: bool = False) -> CallOptions:
        """These options with a call's keywords in place of the defaults; a keyword the call
        does not take is a TypeError (the keywords are typed for mypy, checked here at run time)."""
        check_keywords(given, _MAP_KEYWORDS if journaling else _CALL_KEYWORDS)
        return self.given(
            given.get("timeout", UNSET), given.get("retries", UNSET), given.get("progress", UNSET)
        )

    def given(
        self,
        timeout: Maybe[float | None] = UNSET,
        retries: Maybe[int] = UNSET,
        progress: Maybe[Progress] = UNSET,
    ) -> CallOptions:
        """These options, with what a call gave (checked) in place of the defaults."""
        if timeout is UNSET and retries is UNSET and progress is UNSET:
            return self
        return CallOptions(
            self.timeout if timeout is UNSET else check_timeout(timeout),
            self.retries if retries is UNSET else check_retries(retries),
            self.progress if progress is UNSET else check_progress(progress),
        )


_CALL_KEYWORDS = CallKeywords.__optional_keys__
_MAP_KEYWORDS = MapKeywords.__optional_keys__


class PoolOptions(NamedTuple):
    """Everything a Pool or an Executor was created with, checked (see :meth:`build`)."""

    processes: int | None = None  # None: the CPUs here, or a cluster's workers
    initializer: Callable[..., Any] | None = None
    initargs: tuple[Any, ...] = ()
    start_method: str | None = None  # None: forklift's default (see _start_methods)
    max_tasks_per_child: int | None = None
    max_memory: int | None = None  # bytes of RSS
    init_timeout: float | None = None
    journal: str | os.PathLike[str] | None = None
    address: str | None = None  # a Dask cluster; None: this machine
    credentials: str | os.PathLike[str] | None = None
    calls: CallOptions = CallOptions()  # the per-call defaults
    local_only: tuple[str, ...] = ()  # options given that only a local pool honours, as the user named them
    forward_logging: bool = True  # workers' logging records go to this process's handlers

    @classmethod
    def build(
        cls,
        *,
        processes: int | None,
        initializer: Callable[..., Any] | None,
        initargs: tuple[Any, ...],
        start_method: str | None,
        max_tasks_per_child: int | None,
        max_memory: int | None,
        init_timeout: float | None,
        journal: str | os.PathLike[str] | None,
        address: str | None,
        credentials: str | os.PathLike[str] | None,
        calls: CallOptions,
        local_only: Mapping[str, Any],
        forward_logging: bool | None = None,
    ) -> PoolOptions:
        """Checked options; ``address`` falls back to ``$FORKLIFT_ADDRESS``. ``local_only``:
        the options only a local pool honours, under the names the face gave them, so an
        error on a cluster names what the user wrote."""
        if start_method is not None and not isinstance(start_method, str):
            raise TypeError(f"start_method must be a str or None, not {type(start_method).__name__}")
        if initializer is not None and not callable(initializer):
            raise TypeError(f"initializer must be callable, not {type(initializer).__name__}")
        return cls(
            processes=check_processes(processes),
            initializer=initializer,
            initargs=tuple(initargs),
            start_method=start_method,
            max_tasks_per_child=whole("max_tasks_per_child", max_tasks_per_child, minimum=1),
            max_memory=whole("max_memory", max_memory, minimum=1),
            init_timeout=seconds("init_timeout", init_timeout),
            journal=journal,
            address=address or os.environ.get(ADDRESS_ENV) or None,
            credentials=credentials,
            calls=calls,
            local_only=tuple(sorted(k for k, v in local_only.items() if v not in (None, (), False))),
            forward_logging=_config.FORWARD_LOGGING
            if forward_logging is None
            else flag("forward_logging", forward_logging),
        )

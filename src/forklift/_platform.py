"""Where forklift runs (Linux, kernel 5.3 or newer), and one clear error everywhere else.

The local engine and the primitives use Linux features (docs/architecture.md,
"Platforms": what each buys, and which has a fallback): memfd, pidfds,
``PR_SET_PDEATHSIG``, ``/proc``. On another platform ``import forklift`` works, and
so do the parts that need none of them; the first use of a part that does raises
:class:`~forklift.errors.PlatformError` saying so, instead of failing deep inside.
``sys.platform`` and ``os`` are read at the call, not at import, so the tests can
simulate another platform.

``FORKLIFT_WITHOUT`` switches Linux features off, so that the fallbacks forklift
keeps for a platform or kernel without them run on Linux too (CI runs part of the
suite so: ``make test-fallbacks``), and so that a sandbox which forbids a call (a
seccomp profile refusing ``pidfd_open``) can be told to do without it:

- ``memfd``: anonymous shared memory is an unlinked file in /dev/shm (or the temp
  directory) instead of a memfd (:func:`forklift._primitives.memfd.anonymous_fd`);
- ``pidfd``: a worker watches the pool by its pipe and PDEATHSIG alone;
- ``prctl``: no ``PR_SET_PDEATHSIG`` and no ``PR_SET_CHILD_SUBREAPER`` (a task's
  daemons are then not re-parented to its worker, so the pool's kills miss them);
- ``proc``: process state comes from psutil instead of ``/proc``; big arguments and
  results travel in the pipe, not by descriptor; shared objects (Queue, Lock, Value,
  SharedArray) cross with their descriptor as a Process starts, and as Pool task
  arguments raise SharingError naming this switch;
- ``all``: every one of them.
"""

from __future__ import annotations

import errno
import os
import sys
from collections.abc import MutableMapping

from ._errors import PlatformError, SettingError

#: What works without Linux, and what to use instead of a local pool.
ELSEWHERE = (
    "Here, forklift's Pool and Executor can still run on a Dask cluster of Linux machines "
    "(address=...), and journals and `forklift report` work; for a local process pool use "
    "multiprocessing or concurrent.futures.ProcessPoolExecutor"
)


#: The Linux features FORKLIFT_WITHOUT may switch off (see the module's docstring).
FEATURES = ("memfd", "pidfd", "prctl", "proc")
_VARIABLE = "FORKLIFT_WITHOUT"


def _without(raw: str) -> frozenset[str]:
    names = {name.strip().lower() for name in raw.split(",")} - {""}
    unknown = names.difference(FEATURES, {"all"})
    if unknown:
        raise SettingError(
            f"{_VARIABLE}={raw!r}: unknown feature(s) {', '.join(sorted(unknown))}; "
            f"known: {', '.join(FEATURES)}, all"
        )
    return frozenset(FEATURES) if "all" in names else frozenset(names)


_switched: frozenset[str] | None = None  # FORKLIFT_WITHOUT, parsed at the first has()
_PROC = os.path.isdir("/proc/self")


def without() -> frozenset[str]:
    """The features switched off in this process (FORKLIFT_WITHOUT, read once, at first use)."""
    global _switched
    if _switched is None:
        _switched = _without(os.environ.get(_VARIABLE, ""))
    return _switched


def adopt(features: frozenset[str]) -> None:
    """Take the pool's switches (a worker or the watcher, which may have another environment),
    and hand them on to the processes this one starts."""
    global _switched
    _switched = frozenset(features)
    export(os.environ)


def export(env: MutableMapping[str, str]) -> None:
    """Write this process's switches into ``env`` (an environment for a process it starts)."""
    if without():
        env[_VARIABLE] = _spelled()
    else:
        env.pop(_VARIABLE, None)


def _spelled() -> str:
    return ",".join(sorted(without()))


def has(feature: str) -> bool:
    """Whether to use a Linux feature: present here and not switched off by FORKLIFT_WITHOUT."""
    if feature in without() or not is_linux():
        return False
    if feature == "memfd":
        return hasattr(os, "memfd_create")
    if feature == "pidfd":
        return hasattr(os, "pidfd_open")
    if feature == "proc":
        return _PROC
    return True


def switched_off(feature: str) -> str:
    """A clause for an error message: why ``feature`` is not used here."""
    if feature in without():
        return f"switched off by {_VARIABLE}={_spelled()}"
    return f"not available on {sys.platform}" if not is_linux() else "not available here"


def is_linux() -> bool:
    return sys.platform.startswith("linux")


def require_linux(what: str, uses: str) -> None:
    """Raise PlatformError unless this is Linux: ``what`` needs it for ``uses``.

    Reads FORKLIFT_WITHOUT too, so that a bad value is refused here, in the caller's thread.
    """
    without()
    if not is_linux():
        raise PlatformError(f"{what} needs Linux ({uses}); this is {sys.platform}. {ELSEWHERE}.")


def require_call(name: str, what: str, since: str) -> None:
    """Raise PlatformError unless ``os.<name>`` exists and the kernel has it (a probe for pidfd_open)."""
    require_linux(what, f"os.{name}")
    if not hasattr(os, name):
        raise PlatformError(
            f"{what} needs os.{name} (Linux {since} or newer, Python 3.9+), which this Python lacks"
        )
    if name == "pidfd_open":
        try:
            os.close(os.pidfd_open(os.getpid()))
        except OSError as exc:
            if exc.errno == errno.ENOSYS:
                raise too_old(name, what, since) from None


def too_old(name: str, what: str, since: str) -> PlatformError:
    """The error for a kernel without ``name`` (ENOSYS)."""
    return PlatformError(f"{what} needs {name} (Linux {since} or newer); this kernel is {os.uname().release}")

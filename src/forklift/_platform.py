"""Where forklift runs (Linux, kernel 5.3 or newer), and one clear error everywhere else.

The local engine and the primitives use Linux features (docs/architecture.md,
"Platforms": what each buys, and which has a fallback): memfd, pidfds,
``PR_SET_PDEATHSIG``, ``/proc``. On another platform ``import forklift`` works, and
so do the parts that need none of them; the first use of a part that does raises
:class:`~forklift.errors.PlatformError` saying so, instead of failing deep inside.
``sys.platform`` and ``os`` are read at the call, not at import, so the tests can
simulate another platform.
"""

from __future__ import annotations

import errno
import os
import sys

from ._errors import PlatformError

#: What works without Linux, and what to use instead of a local pool.
ELSEWHERE = (
    "Here, forklift's Pool and Executor can still run on a Dask cluster of Linux machines "
    "(address=...), and journals and `forklift report` work; for a local process pool use "
    "multiprocessing or concurrent.futures.ProcessPoolExecutor"
)


def is_linux() -> bool:
    return sys.platform.startswith("linux")


def require_linux(what: str, uses: str) -> None:
    """Raise PlatformError unless this is Linux: ``what`` needs it for ``uses``."""
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

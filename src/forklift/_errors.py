"""The errors whose bases are builtins: importable without multiprocessing or concurrent.futures.

Users import them from :mod:`forklift.errors` (their ``__module__``); the tools that
need nothing else (``forklift copy`` of a small tree, ``forklift kill``) import them
from here and so do not pay for ``concurrent.futures`` at start-up.
"""

from __future__ import annotations

__all__ = [
    "ClusterError",
    "CopyUsageError",
    "ForkliftError",
    "JournalError",
    "MissingMatplotlib",
    "PlatformError",
    "SettingError",
    "SharingError",
    "TaskTimeout",
]


class ForkliftError(Exception):
    """Base class of forklift's own errors."""

    __module__ = "forklift.errors"


class TaskTimeout(ForkliftError, TimeoutError):
    """A task ran longer than its ``timeout``; its worker was killed and replaced."""

    __module__ = "forklift.errors"


class SharingError(ForkliftError, OSError):
    """A shared object could not be opened in this process: its owner exited or dropped it.

    forklift's Queue, Lock, Value... pickle by naming what their owner (the
    process that made them) holds; the owner must keep the object alive until
    the receivers have unpickled it. The message says what is gone.
    """

    __module__ = "forklift.errors"


class ClusterError(ForkliftError, ConnectionError):
    """A cluster Pool or Executor cannot run its tasks: the scheduler cannot be
    reached, or no workers came for ``FORKLIFT_CLUSTER_WAIT`` seconds while tasks
    waited (all of them died, or the scheduler restarted and none came back).

    The message names the address and what to start. Wrong credentials raise
    :class:`AuthenticationError` instead.
    """

    __module__ = "forklift.errors"


class JournalError(ForkliftError, ValueError):
    """The journal file cannot be used: not a forklift journal, corrupted, or another run's."""

    __module__ = "forklift.errors"


class CopyUsageError(ForkliftError, ValueError):
    """The sources or the destination cannot be copied at all (missing SRC, DST inside SRC...).

    Raised by :func:`forklift.copy_tree` before anything is written; the message is
    one line for the user. Also a ValueError, as it was before it joined ForkliftError.
    """

    __module__ = "forklift.errors"


class PlatformError(ForkliftError, OSError):
    """This part of forklift needs Linux, or a newer kernel, than the one it runs on.

    The message names the platform (or kernel), what is missing, what works here and
    what to use instead (see the README's "Platforms" and docs/architecture.md).
    """

    __module__ = "forklift.errors"


class SettingError(ForkliftError, ValueError):
    """A ``FORKLIFT_*`` environment variable holds a value forklift refuses; the message names it.

    Raised where the variable is first read (the engine's tunables when a pool first starts,
    for instance); the CLI prints it on one line and exits 2.
    """

    __module__ = "forklift.errors"


class MissingMatplotlib(ImportError):
    """PNG output (``forklift report -o run.png``) needs matplotlib, an optional extra.

    The message says what to install: ``pip install 'forklift[report]'``. An
    ImportError, as a missing Dask distributed is: a package is missing, nothing is
    wrong with the journal.
    """

    __module__ = "forklift.errors"

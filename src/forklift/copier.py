"""``forklift.copy_tree``: copy files and directory trees with a pool of worker processes.

The public face of the copier behind ``forklift copy``. The implementation is the
private package :mod:`forklift._copy`, whose docstring draws the data path and
states the invariants (no file carries its final name before it is complete, the
walk streams, every temp file is removed on every way out but SIGKILL).

The tunables below are the values the copier uses; they are read where they are
used, in ``forklift._copy.walk``, ``.run`` and ``.worker``.
"""

from __future__ import annotations

from ._copy.common import BATCH_BYTES as BATCH_BYTES
from ._copy.common import BATCH_FILES as BATCH_FILES
from ._copy.common import is_temp_name as is_temp_name
from ._copy.common import temp_name as temp_name
from ._copy.outcome import CopyReport, FileError
from ._copy.run import IN_FLIGHT_PER_WORKER as IN_FLIGHT_PER_WORKER
from ._copy.run import copy_tree
from ._copy.walk import RANGE_BYTES as RANGE_BYTES
from ._copy.walk import SPLIT_BYTES as SPLIT_BYTES
from ._copy.worker import COMPARE_BLOCK as COMPARE_BLOCK
from ._errors import CopyUsageError

__all__ = ["CopyReport", "CopyUsageError", "FileError", "copy_tree"]

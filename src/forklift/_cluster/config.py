"""The cluster place's tunables, each with its trade-off and a ``FORKLIFT_*`` override.

Read when a cluster Pool or Executor is made (not at import), so a test or a
program may set the environment variable first.
"""

from __future__ import annotations

import os

from .._errors import SettingError


def _float(name: str, default: float) -> float:
    raw = os.environ.get(name)
    if raw is None or raw == "":
        return default
    try:
        return float(raw)
    except ValueError:
        raise SettingError(f"{name}={raw!r} is not a number") from None


#: FORKLIFT_CLUSTER_CHUNK_SECONDS — work (seconds of task time) packed into one
#: Dask task. A Dask task costs ~3 ms of CPU across client, scheduler and worker
#: (measured on 2 cores), so chunks are ten times longer than the local
#: engine's; smaller balances the end of a map better, larger costs less.
CHUNK_SECONDS = _float("FORKLIFT_CLUSTER_CHUNK_SECONDS", 0.2)

#: FORKLIFT_CLUSTER_IN_FLIGHT — chunks submitted to Dask per worker thread. Two
#: hide the round trip through the scheduler; more only queue there.
IN_FLIGHT = int(_float("FORKLIFT_CLUSTER_IN_FLIGHT", 2))

#: How often (seconds) the driver asks the scheduler which workers it has while
#: work is waiting (five times less often when idle).
HEALTH_INTERVAL = 0.5

#: The longest a health question to the scheduler may take before it counts as unreachable.
HEALTH_TIMEOUT = 2.0

#: The longest fetching a finished chunk's result may take.
RESULT_TIMEOUT = 60.0


def wait_seconds() -> float:
    """FORKLIFT_CLUSTER_WAIT — how long work waits for workers (none left, or the
    scheduler restarting) before it fails with ClusterError. Longer rides out a
    slow restart; shorter reports a dead cluster sooner."""
    return _float("FORKLIFT_CLUSTER_WAIT", 60.0)


def connect_timeout() -> float:
    """FORKLIFT_CLUSTER_CONNECT_TIMEOUT — seconds to reach the scheduler before giving up."""
    return _float("FORKLIFT_CLUSTER_CONNECT_TIMEOUT", 10.0)

"""The cluster place: forklift's Pool and Executor on Dask distributed.

Layout:

- ``place.py``       ClusterPlace (what the faces hold) and how to connect / start a local cluster
- ``engine.py``      ClusterEngine: the driver thread that cuts jobs into chunks and submits them
- ``runner.py``      run_chunk: what a Dask worker runs (one chunk per Dask task)
- ``credentials.py`` the CA and certificates for mutual TLS
- ``shared.py``      Queue, Lock, Event, Semaphore, Value across machines
- ``config.py``      tunables (FORKLIFT_CLUSTER_*)

Nothing here imports Dask until a cluster is used.
"""

from __future__ import annotations

from .credentials import Credentials, load_credentials, make_credentials
from .shared import ClusterEvent, ClusterLock, ClusterQueue, ClusterSemaphore, ClusterValue

__all__ = [
    "ClusterEvent",
    "ClusterLock",
    "ClusterQueue",
    "ClusterSemaphore",
    "ClusterValue",
    "Credentials",
    "load_credentials",
    "make_credentials",
]

"""The cluster place: the faces' calls on a Dask distributed cluster.

``Pool(address=..., credentials=...)`` and ``Executor(address=...)`` hold a
:class:`ClusterPlace`: a :class:`~forklift._places.base.Place` over a
:class:`~forklift._cluster.engine.ClusterEngine`, which satisfies the same
:class:`~forklift._engine.api.EngineAPI` as the local engine, so the faces never
know which place they hold.

Addresses: ``tls://host:port`` (the default scheme when credentials are given),
``tcp://host:port`` only for a cluster started with ``--insecure``, and
``"local"``: an embedded Dask LocalCluster on 127.0.0.1 (TLS with the given
credentials, or with a throw-away in-memory certificate).
"""

from __future__ import annotations

import importlib
import logging
import os
from collections.abc import Callable
from typing import Any

from .._options import PoolOptions
from .._places.base import Place
from ..errors import AuthenticationError, ClusterError
from . import config
from .credentials import load_credentials
from .engine import ClusterEngine

CREDENTIALS_ENV = "FORKLIFT_CREDENTIALS"
DEFAULT_PORT = 8786

_log = logging.getLogger("forklift")


class ClusterPlace(Place):
    """Runs the faces' calls on a Dask cluster (see the module docstring).

    ``address`` is the scheduler's (``tls://host:port``), also for ``address="local"``.
    """

    def __init__(self, options: PoolOptions) -> None:
        assert options.address is not None
        if options.local_only:
            raise ValueError(
                f"{', '.join(options.local_only)}: only for a pool on this machine, not on a cluster "
                f"(address={options.address!r}); a cluster's workers are started by 'forklift cluster worker'"
            )
        client, shown, on_close = connect(options.address, options.credentials, options.processes)
        if options.forward_logging:
            _forward_logging(client)
        self.cluster_engine = ClusterEngine(
            client, address=shown, wait=config.wait_seconds(), on_close=on_close
        )
        super().__init__(self.cluster_engine, options.calls)

    @property
    def client(self) -> Any:
        """The ``distributed.Client``: Dask's own API, for what forklift does not cover."""
        return self.cluster_engine.client


def _forward_logging(client: Any) -> None:
    """Dask's own forwarding: the workers' records, at this process's root level and above, are
    handled here (without forklift's task tags: Dask sends them as events, not with the task)."""
    import logging

    try:
        client.forward_logging(level=logging.getLogger().getEffectiveLevel())
    except Exception as exc:  # a distributed without it (< 2023.3), or a scheduler that refuses
        logging.getLogger("forklift").warning("forklift: cannot forward the cluster's logging: %s", exc)


def connect(
    address: str, credentials: str | os.PathLike[str] | None, processes: int | None
) -> tuple[Any, str, Callable[[], None]]:
    """A connected ``distributed.Client``, the scheduler's address, and how to close both."""
    try:
        distributed: Any = importlib.import_module("distributed")  # untyped: keep it Any
    except ImportError:
        raise ImportError(
            "Pool(address=...) runs on Dask distributed, which is not installed: "
            "pip install 'forklift[cluster]'"
        ) from None
    creds = credentials if credentials is not None else os.environ.get(CREDENTIALS_ENV) or None
    security = load_credentials(creds).security() if creds is not None else None
    timeout = config.connect_timeout()
    if address == "local":
        return _local(distributed, security, processes, timeout)
    if processes is not None:
        raise ValueError(
            "processes / max_workers apply only to address='local': a cluster has the workers it has"
        )
    url = _url(address, security is not None)
    try:
        client = distributed.Client(url, security=security, timeout=timeout, set_as_default=False)
    except Exception as exc:
        raise _connect_error(url, exc, timeout, security is not None) from exc
    return client, url, lambda: _close_client(client)


def _url(address: str, tls: bool) -> str:
    scheme, sep, rest = address.partition("://")
    if not sep:
        scheme, rest = ("tls" if tls else ""), address
    if scheme not in ("tls", "tcp"):
        if not tls and not scheme:
            raise ValueError(
                f"address {address!r}: give credentials=DIR (or FORKLIFT_CREDENTIALS) for a TLS "
                "cluster, or write tcp://... for a cluster started with --insecure"
            )
        raise ValueError(f"address {address!r}: the scheme must be tls:// or tcp://")
    if scheme == "tls" and not tls:
        raise ValueError(
            f"address {address!r} is TLS: give credentials=DIR (or set FORKLIFT_CREDENTIALS) "
            "with the directory made by 'forklift cluster credentials DIR'"
        )
    if scheme == "tcp" and tls:
        raise ValueError(
            f"address {address!r} is plain TCP but credentials were given: write tls://... "
            "(a cluster started with --credentials speaks TLS)"
        )
    if ":" not in rest.rsplit("]", 1)[-1]:
        rest = f"{rest}:{DEFAULT_PORT}"
    return f"{scheme}://{rest}"


def _connect_error(url: str, exc: BaseException, timeout: float, tls: bool) -> Exception:
    text = f"{type(exc).__name__}: {exc}"
    lowered = text.replace(url, "").lower()  # the URL's "tls://" says nothing about the failure
    tls_words = ("certificate", "ssl", "tls", "alert", "handshake", "wrong_version", "ssl_context")
    if "timed out" in lowered or "connection refused" in lowered:
        return ClusterError(
            f"cannot reach the scheduler at {url} within {timeout:g} s ({text}); is "
            "'forklift cluster scheduler' running there, and the port open? "
            "(FORKLIFT_CLUSTER_CONNECT_TIMEOUT sets the wait)"
        )
    if tls and any(w in lowered for w in tls_words):
        return AuthenticationError(
            f"the scheduler at {url} refused our credentials or is not the cluster they were made "
            f"for (TLS failed: {text}); use the directory that 'forklift cluster credentials' made "
            "for this cluster"
        )
    if not tls and ("reset by peer" in lowered or "stream is closed" in lowered):
        return AuthenticationError(
            f"the scheduler at {url} closed the connection: it probably requires TLS; connect with "
            f"tls://... and credentials=DIR ({text})"
        )
    return ClusterError(f"cannot connect to the scheduler at {url}: {text}")


def _local(
    distributed: Any, security: Any, processes: int | None, timeout: float
) -> tuple[Any, str, Callable[[], None]]:
    """An embedded LocalCluster on 127.0.0.1 with TLS, one thread per worker process."""
    import dask

    # Tasks may start processes (timed tasks run in a forklift process): the
    # nanny must not make its workers daemonic. Set for this process's nannies,
    # which read it at every (re)start of a worker.
    dask.config.set({"distributed.worker.daemon": False})
    if security is None:
        security = distributed.Security.temporary()  # in memory: nobody else can connect
    n = processes if processes is not None else (os.cpu_count() or 1)
    if n < 1:
        raise ValueError("Number of processes must be at least 1")
    cluster = distributed.LocalCluster(
        n_workers=n,
        threads_per_worker=1,
        processes=True,
        host="127.0.0.1",
        protocol="tls://",
        security=security,
        dashboard_address="127.0.0.1:0",  # Dask always serves HTTP (health); keep it local
        silence_logs=logging.ERROR,
        preload=["forklift._cluster.preload"],  # workers ignore Ctrl-C: this process stops them
    )
    try:
        client = distributed.Client(cluster, timeout=timeout, set_as_default=False)
    except BaseException:
        cluster.close()
        raise

    def close() -> None:
        _close_client(client)
        try:
            cluster.close(timeout=10)
        except Exception as exc:  # at interpreter exit Dask may already be shutting down
            _log.debug("closing the local cluster: %s", exc)

    return client, str(cluster.scheduler_address), close


def _close_client(client: Any) -> None:
    try:
        client.close(timeout=5)
    except Exception as exc:
        _log.debug("closing the Dask client: %s", exc)

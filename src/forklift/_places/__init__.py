"""The places: what the faces (Pool, Executor) hold, between them and an engine.

- ``base.py``: :class:`~forklift._places.base.Place`, the calls (``submit``,
  ``collect``, ``stream``) turned into jobs, on any engine;
- ``local.py``: :class:`~forklift._places.local.LocalPlace`, this machine's engine;
- ``resume.py``: a map recorded in a journal, and resumed from it;
- the cluster's place is ``forklift._cluster.place.ClusterPlace``.

:func:`make_place` chooses one from a face's checked options.
"""

from __future__ import annotations

from .._options import PoolOptions
from .base import LOCAL_JOURNALS, Place
from .local import (
    LocalPlace,
)  # what every local pool needs, loaded with the face (as multiprocessing.pool is)


def make_place(options: PoolOptions) -> Place:
    """The place a face runs on: a Dask cluster for an ``address``, else this machine."""
    if options.address is None:
        return LocalPlace(options)
    if options.journal is not None:
        raise ValueError(LOCAL_JOURNALS)
    from .._cluster.place import ClusterPlace

    return ClusterPlace(options)

"""The local place: a Place on this machine's engine (and the pool's journal)."""

from __future__ import annotations

from .._engine.core import Engine
from .._options import PoolOptions
from .base import Place


class LocalPlace(Place):
    """This machine: a local :class:`~forklift._engine.core.Engine` (and the pool's journal)."""

    def __init__(self, options: PoolOptions) -> None:
        journal = None
        if options.journal is not None:
            from ..journal import Journal

            journal = Journal(options.journal)
        super().__init__(Engine(options, journal), options.calls, journal)

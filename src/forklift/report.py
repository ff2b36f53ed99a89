"""Read a journal back: per-run and per-worker summaries, a timeline (HTML or PNG), a live view.

``forklift report run.db -o timeline.html`` and ``forklift top run.db`` are thin
faces over this module (``forklift/cli/report.py``)::

    journal (SQLite, WAL) --load_run--> RunData: Run + Segments (one per bar)
                                          |-- summarize_run --> RunSummary (table rows)
                                          |-- render_html ----> one self-contained file
                                          `-- render_png -----> matplotlib (optional extra)
    workers table + psutil --take_snapshot--> Snapshot (what ``forklift top`` draws)

The public face; the implementation is the private package :mod:`forklift._report`
(one module per stage above). Nothing here writes to the journal.
"""

from __future__ import annotations

from ._report.draw import ENDS_WORKER as ENDS_WORKER
from ._report.draw import ERROR_CHARS as ERROR_CHARS
from ._report.draw import MAX_BARS as MAX_BARS
from ._report.draw import RERUN_STROKE as RERUN_STROKE
from ._report.draw import STATUS_STYLE as STATUS_STYLE
from ._report.draw import bars as bars
from ._report.draw import describe as describe
from ._report.draw import fmt_tick as fmt_tick
from ._report.draw import nice_ticks as nice_ticks
from ._report.html import CSS as CSS
from ._report.html import LEFT as LEFT
from ._report.html import RIGHT as RIGHT
from ._report.html import WIDTH as WIDTH
from ._report.html import escape as escape
from ._report.html import render_html
from ._report.live import LIVE_SECONDS as LIVE_SECONDS
from ._report.live import LiveWorker, Progress, Snapshot, take_snapshot
from ._report.png import render_png
from ._report.read import Lane as Lane
from ._report.read import Run, RunData, Segment, load_run, open_journal, run_ids
from ._report.summary import HEADERS as HEADERS
from ._report.summary import (
    RunSummary,
    WorkerStats,
    run_name,
    run_title,
    summarize_run,
    summary_text,
    union_length,
    weighted_summary,
)
from ._report.summary import fmt_seconds as fmt_seconds
from ._report.summary import one_line as one_line
from ._report.summary import table_rows as table_rows
from .errors import MissingMatplotlib

__all__ = [
    "LiveWorker",
    "MissingMatplotlib",
    "Progress",
    "Run",
    "RunData",
    "RunSummary",
    "Segment",
    "Snapshot",
    "WorkerStats",
    "load_run",
    "open_journal",
    "render_html",
    "render_png",
    "run_ids",
    "run_name",
    "run_title",
    "summarize_run",
    "summary_text",
    "take_snapshot",
    "union_length",
    "weighted_summary",
]

"""The journal reader behind ``forklift report`` and ``forklift top``.

Its public face, :mod:`forklift.report`, draws how data flows between the public functions.

A *segment* is one bar on a worker's lane: either one task attempt (a row of the
``tasks`` table) or a chunk's tasks done in one go (a row of ``chunks``). Reading
chunks rather than the ``task_rows`` view keeps a 200,000-task run at a few
thousand rows; the statistics weight each chunk by its task count, so they equal
what one row per task would give. Nothing here writes to the journal.

Modules:

- ``columns``: what each journal column may hold, and the checked ``SELECT`` every read goes through;
- ``read``: a run's rows as a ``RunData`` (``Run`` + ``Segment`` bars);
- ``summary``: per-worker statistics, the summary table as text, titles and times;
- ``draw``: what the HTML page and the PNG share: colours, merged bars, hover text, ticks;
- ``html``: the self-contained HTML page (inline SVG);
- ``png``: the PNG, with matplotlib (an optional extra);
- ``live``: what ``forklift top`` shows (live workers, running runs).
"""

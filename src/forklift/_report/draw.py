"""What the HTML page and the PNG share: status colours, bars merged for huge runs, hover text, ticks."""

from __future__ import annotations

import math
from collections.abc import Sequence

from .read import Lane, Run, RunData, Segment
from .summary import fmt_seconds, lane_label

# Status -> (colour, legend text). Okabe-Ito colours: told apart also with colour-blindness.
STATUS_STYLE = {
    "done": ("#009e73", "done"),
    "failed": ("#d55e00", "failed (raised)"),
    "timeout": ("#e69f00", "timed out"),
    "lost": ("#cc79a7", "lost (worker died)"),
    "retried": ("#f0e442", "lost or timed out, retried"),
}
# A `forklift run` job is a shell command: it fails with an exit status, not an exception.
JOB_WORDS = {
    "failed": "failed (exit status not 0)",
    "timeout": "timed out (killed)",
    "retried": "failed, run again",
}
ENDS_WORKER = ("lost", "timeout", "retried")  # the worker died, or was killed for a timeout: marked x
END_MARK = "#9d174d"  # the colour of that mark
RERUN_STROKE = "#1f2937"  # outline of attempts >= 2, so a retry is seen where it ran
MAX_BARS = 4000  # above this many bars a run is drawn merged at pixel resolution
ERROR_CHARS = 600  # hover text keeps the last this many characters of an error (the exception line)


def status_style(run: Run) -> dict[str, tuple[str, str]]:
    """Status -> (colour, legend text) for this run: a `forklift run`'s jobs in their own words."""
    if run.kind != "run":
        return STATUS_STYLE
    return {
        status: (colour, JOB_WORDS.get(status, words)) for status, (colour, words) in STATUS_STYLE.items()
    }


def legend(runs: Sequence[Run]) -> list[tuple[str, str]]:
    """(colour, text) per status for a drawing of these runs: the words of each kind of run shown."""
    styles = [status_style(run) for run in runs] or [STATUS_STYLE]
    return [
        (colour, " / ".join(dict.fromkeys(style[status][1] for style in styles)))
        for status, (colour, _) in STATUS_STYLE.items()
    ]


def end_mark(run: Run, seg: Segment) -> str | None:
    """What the mark after a bar says, or None for no mark: the worker died or was killed there.

    A `forklift run` slot never dies: there the mark is a job killed for its timeout.
    """
    if run.kind != "run":
        return f"{lane_label(run, seg.worker)} ended here" if seg.status in ENDS_WORKER else None
    if seg.status == "timeout" or (seg.status == "retried" and seg.error == "timed out"):
        return "the job was killed here: it timed out"
    return None


def end_mark_words(runs: Sequence[Run]) -> str:
    """The legend's text for the mark, for these runs."""
    kinds = dict.fromkeys(
        "job killed (timed out)" if r.kind == "run" else "worker died or killed" for r in runs
    )
    return " / ".join(kinds) or "worker died or killed"


def bars(data: RunData, width_px: float) -> list[Segment]:
    """The segments to draw: all of them, or for huge runs merged at ``width_px`` resolution.

    Merging joins, per worker and status, bars less than a pixel apart, so idle gaps
    of a pixel or more stay visible and the drawing stays small for any run size.
    """
    timed = [s for s in data.segments if s.placed]
    if len(timed) <= MAX_BARS:
        return timed
    pixel = max(data.wall, 1e-9) / max(width_px, 1.0)
    merged: list[Segment] = []
    groups: dict[tuple[Lane, str], list[Segment]] = {}
    for s in timed:
        groups.setdefault((s.worker, s.status), []).append(s)
    for group in groups.values():
        group.sort(key=lambda s: s.began)
        run, end = [group[0]], group[0].ended
        for s in group[1:]:
            if s.began - end >= pixel:
                merged.append(_join(run))
                run = []
            run.append(s)
            end = max(end, s.ended)
        merged.append(_join(run))
    return merged


def _join(run: Sequence[Segment]) -> Segment:
    """One bar standing for consecutive bars of one worker and status."""
    if len(run) == 1:
        return run[0]
    a = run[0]
    return Segment(
        a.worker, a.began, max(s.ended for s in run), a.status, min(s.first for s in run),
        max(s.last for s in run), sum(s.n for s in run), max(s.attempt for s in run),
        all(s.final for s in run), timed=True,
    )  # fmt: skip


def describe(seg: Segment, t0: float, run: Run | None = None) -> str:
    """Hover text of one bar (``run``: whose lanes it names, pids by default)."""
    span = f"task {seg.first}" if seg.first == seg.last else f"tasks {seg.first}-{seg.last}"
    count = f" ({seg.n} {seg.status})" if seg.n > 1 or seg.first != seg.last else ""
    lines = [
        f"{span}{count}: {seg.status}" + (f", attempt {seg.attempt}" if seg.attempt > 1 else ""),
        f"{seg.began - t0:.3f} s -> {seg.ended - t0:.3f} s ({fmt_seconds(seg.seconds)})"
        if seg.timed
        else f"ended at {seg.ended - t0:.3f} s (start not recorded: drawn from the worker's previous task)",
        lane_label(run, seg.worker),
    ]
    if seg.status != "done" and not seg.final:
        lines.append("run again later")
    if seg.command:
        lines.append(f"command: {seg.command}")
    if seg.exit_code is not None:
        lines.append(f"exit code {seg.exit_code}")
    if seg.error:
        error = seg.error.strip()
        lines.append(error if len(error) <= ERROR_CHARS else "..." + error[-ERROR_CHARS:])
    return "\n".join(lines)


def nice_ticks(span: float, target: int = 8) -> list[float]:
    """Round tick positions from 0 to span (1, 2 or 5 times a power of ten apart)."""
    if span <= 0:
        return [0.0]
    raw = span / target
    power = 10 ** math.floor(math.log10(raw))
    step = next(m * power for m in (1, 2, 5, 10) if m * power >= raw)
    return [i * step for i in range(int(span / step + 1e-9) + 1)]


def fmt_tick(t: float, span: float) -> str:
    if span < 0.5:
        return f"{t * 1e3:.4g} ms"
    return f"{t:.4g} s"

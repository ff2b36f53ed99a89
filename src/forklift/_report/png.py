"""The PNG timeline, drawn with matplotlib (the optional ``report`` extra)."""

from __future__ import annotations

import os
from collections.abc import Sequence
from typing import Any

from ..errors import MissingMatplotlib
from .draw import END_MARK, RERUN_STROKE, bars, end_mark, end_mark_words, legend, status_style
from .read import RunData
from .summary import HEADERS, RunSummary, fmt_seconds, lane_label, summary_title, table_rows


def render_png(runs: Sequence[RunData], path: str | os.PathLike[str], title: str) -> None:
    """Draw the runs' timelines and summary tables into a PNG file with matplotlib."""
    try:
        import matplotlib
    except ImportError:
        raise MissingMatplotlib(
            "PNG output needs matplotlib: pip install 'forklift[report]' (or write .html)", name="matplotlib"
        ) from None
    # No mathtext: a run named "echo $x $y" is text, and "$\\frac$" would raise while drawing.
    with matplotlib.rc_context({"text.parse_math": False}):
        _draw_png(runs, path, title)


def _draw_png(runs: Sequence[RunData], path: str | os.PathLike[str], title: str) -> None:
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure
    from matplotlib.lines import Line2D
    from matplotlib.patches import Patch

    summaries = [d.summary for d in runs]
    heights: list[float] = []
    for s in summaries:
        heights += [0.9 + 0.32 * max(1, len(s.lanes)), 0.35 + 0.24 * (len(s.workers) + 2)]
    fig = Figure(figsize=(13, sum(heights) + 0.6), dpi=100, layout="constrained")
    FigureCanvasAgg(fig)
    fig.suptitle(title, fontsize=13, x=0.01, ha="left")
    axes = fig.subplots(len(heights), 1, gridspec_kw={"height_ratios": heights}, squeeze=False)[:, 0]
    for i, (data, summary) in enumerate(zip(runs, summaries)):
        _png_timeline(axes[2 * i], data, summary)
        _png_table(axes[2 * i + 1], summary)
    handles: list[Any] = [Patch(facecolor=c, label=t) for c, t in legend([d.run for d in runs])]
    handles.append(
        Patch(facecolor="white", edgecolor=RERUN_STROKE, linewidth=1.5, label="re-run (attempt 2+)")
    )
    handles.append(Line2D([], [], color=END_MARK, **_MARK, label=end_mark_words([d.run for d in runs])))
    columns = (len(handles) + 1) // 2  # two rows: one is wider than the page with the longer words
    fig.legend(handles=handles, loc="outside upper right", ncols=columns, fontsize=9, frameon=False)
    fig.savefig(os.fspath(path), format="png")


_MARK: dict[str, Any] = {"marker": "x", "markersize": 7, "markeredgewidth": 2, "linestyle": "none"}


def _png_timeline(ax: Any, data: RunData, summary: RunSummary) -> None:
    lanes = summary.lanes or [None]
    row_of = {pid: len(lanes) - 1 - i for i, pid in enumerate(lanes)}  # first lane on top
    t0 = data.run.started
    for y in row_of.values():
        ax.broken_barh([(0, data.wall)], (y - 0.4, 0.8), facecolors="#f3f4f6")
    drawn = sorted(bars(data, 1100), key=lambda s: s.status != "done")
    style = status_style(data.run)
    marks: list[tuple[float, int]] = []  # where a worker died or was killed (a job, for forklift run)
    for s in drawn:
        colour = style.get(s.status, ("#6b7280", ""))[0]
        edge = RERUN_STROKE if s.attempt > 1 else "none"
        width = max(s.seconds, data.wall / (1100 if s.status == "done" else 400))
        ax.broken_barh([(s.began - t0, width)], (row_of.get(s.worker, 0) - 0.35, 0.7),
                       facecolors=colour, edgecolors=edge, linewidth=1.2)  # fmt: skip
        if end_mark(data.run, s) is not None:
            marks.append((s.began - t0 + width, row_of.get(s.worker, 0)))
    if marks:
        xs, ys = zip(*marks)
        ax.plot(xs, ys, color=END_MARK, **_MARK, clip_on=False, zorder=3)
    ax.set_yticks(list(row_of.values()), [lane_label(data.run, pid) for pid in row_of])
    ax.set_xlim(0, max(data.wall, 1e-9))
    ax.set_ylim(-0.6, len(lanes) - 0.4)
    ax.set_xlabel("seconds since the run started")
    ax.set_title(f"{summary_title(summary)}, wall {fmt_seconds(summary.wall)}", fontsize=10, loc="left")
    for side in ("top", "right", "left"):
        ax.spines[side].set_visible(False)
    ax.tick_params(axis="y", length=0)


def _png_table(ax: Any, summary: RunSummary) -> None:
    ax.axis("off")
    table = ax.table(cellText=table_rows(summary), colLabels=HEADERS, loc="upper left", cellLoc="right")
    table.auto_set_font_size(False)
    table.set_fontsize(9)
    for (row, col), cell in table.get_celld().items():
        cell.set_edgecolor("#e5e7eb")
        if row == 0 or row == len(summary.workers) + 1:
            cell.set_text_props(weight="bold")
        if col == 0:
            cell.set_text_props(ha="left")

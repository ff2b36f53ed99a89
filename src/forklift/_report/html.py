"""The HTML timeline: one self-contained page (inline SVG and CSS, nothing fetched) per set of runs."""

from __future__ import annotations

import re
from collections.abc import Sequence
from html import escape as _escape

from .draw import RERUN_STROKE, bars, describe, end_mark, end_mark_words, fmt_tick, nice_ticks, status_style
from .read import Run, RunData, Segment
from .summary import HEADERS, RunSummary, fmt_seconds, lane_label, summary_title, table_rows

CSS = """
body { font: 14px/1.4 system-ui, -apple-system, "Segoe UI", Helvetica, Arial, sans-serif;
       margin: 24px; color: #1f2937; background: #fff; }
h1 { font-size: 20px; margin: 0 0 4px; }
h2 { font-size: 16px; margin: 28px 0 4px; }
p.meta { margin: 0 0 12px; color: #4b5563; }
svg { display: block; max-width: 100%; height: auto; }
svg text { font-size: 12px; fill: #374151; }
svg .lane { fill: #f3f4f6; }
svg .grid { stroke: #d1d5db; stroke-width: 1; }
svg rect.bar:hover { stroke: #111827; stroke-width: 1.5; }
table { border-collapse: collapse; margin-top: 12px; font-variant-numeric: tabular-nums; }
th, td { padding: 3px 10px; text-align: right; border-bottom: 1px solid #e5e7eb; }
th:first-child, td:first-child { text-align: left; }
th { background: #f9fafb; font-weight: 600; }
tr.total td { font-weight: 600; border-top: 2px solid #9ca3af; }
td.util { min-width: 110px; }
span.track { display: inline-block; width: 60px; height: 8px; background: #e5e7eb;
             margin-right: 8px; vertical-align: middle; text-align: left; }
span.fill { display: block; height: 8px; background: #009e73; }
svg text.death { font-weight: 700; fill: #9d174d; }
p.note { color: #6b7280; font-size: 12px; }
"""

WIDTH = 1200  # SVG user units; the SVG scales to the window
LEFT = 96  # room for lane labels
RIGHT = 16


# Characters XML does not allow (the page is XHTML-clean: its SVG parses as XML) but text may hold.
_NOT_XML = re.compile("[\x00-\x08\x0b\x0c\x0e-\x1f\ufffe\uffff]")


def escape(value: object) -> str:
    """Any value as HTML text or attribute: every journal value goes through here, numbers too."""
    return _NOT_XML.sub(_written_out, _escape(str(value)))


def _written_out(match: re.Match[str]) -> str:
    return repr(match[0])[1:-1]  # "\\x01", "\\ufffe"


def render_html(runs: Sequence[RunData], title: str) -> str:
    """One self-contained HTML page (inline SVG and CSS, nothing fetched) for these runs."""
    sections = [_html_run(data) for data in runs]
    return (
        '<!DOCTYPE html>\n<html lang="en">\n<head>\n<meta charset="utf-8"/>\n'
        '<meta name="viewport" content="width=device-width, initial-scale=1"/>\n'
        f"<title>{escape(title)}</title>\n<style>{CSS}</style>\n</head>\n<body>\n"
        f"<h1>{escape(title)}</h1>\n" + "\n".join(sections) + "\n</body>\n</html>\n"
    )


def _html_run(data: RunData) -> str:
    summary = data.summary
    drawn = bars(data, WIDTH - LEFT - RIGHT)
    merged = len(drawn) < len([s for s in data.segments if s.placed])
    note = (
        f'<p class="note">{len(data.segments)} bars merged to {len(drawn)} at pixel resolution;'
        " hover a bar for the tasks it covers.</p>"
        if merged
        else '<p class="note">Hover a bar for its tasks, times and error.</p>'
    )
    return (
        f'<section id="run-{escape(data.run.run)}">\n<h2>{escape(summary_title(summary))}</h2>\n'
        f'<p class="meta">wall time {fmt_seconds(summary.wall)}; pid {escape(data.run.pid)}'
        f"{' on ' + escape(data.run.host) if data.run.host else ''}</p>\n"
        f"{_svg(data, summary, drawn)}\n{note}\n{_html_table(summary)}\n</section>"
    )


def _svg(data: RunData, summary: RunSummary, drawn: Sequence[Segment]) -> str:
    lanes = summary.lanes or [None]
    lane_h = 22 if len(lanes) <= 32 else max(6, 700 // len(lanes))
    gap = 6 if lane_h >= 16 else 1
    top, plot_w = 44, WIDTH - LEFT - RIGHT
    height = top + len(lanes) * (lane_h + gap) + 28
    t0, span = data.run.started, max(data.wall, 1e-9)
    row_of = {pid: i for i, pid in enumerate(lanes)}

    def x(t: float) -> float:
        return LEFT + (t - t0) / span * plot_w

    out = [
        f'<svg xmlns="http://www.w3.org/2000/svg" viewBox="0 0 {WIDTH} {height}" width="{WIDTH}" '
        f'height="{height}" role="img" aria-label="timeline of run {escape(data.run.run)}">',
        _svg_legend(data.run),
    ]
    for pid, i in row_of.items():
        y = top + i * (lane_h + gap)
        label = lane_label(data.run, pid)
        stats = next((w for w in summary.workers if w.label == label), None)
        hover = f"{label}: {stats.tasks} tasks, busy {stats.utilisation:.0%}" if stats else ""
        out.append(f'<rect class="lane" x="{LEFT}" y="{y}" width="{plot_w}" height="{lane_h}"/>')
        if lane_h >= 10:
            out.append(
                f'<text x="{LEFT - 8}" y="{y + lane_h / 2 + 4:.1f}" text-anchor="end">'
                f"{escape(label)}<title>{escape(hover)}</title></text>"
            )
    bottom = top + len(lanes) * (lane_h + gap) - gap
    for t in nice_ticks(span):
        xt = x(t0 + t)
        out.append(f'<line class="grid" x1="{xt:.1f}" y1="{top - 4}" x2="{xt:.1f}" y2="{bottom + 4}"/>')
        out.append(f'<text x="{xt:.1f}" y="{bottom + 20}" text-anchor="middle">{fmt_tick(t, span)}</text>')
    order = sorted(drawn, key=lambda s: s.status != "done")  # problems drawn on top of chunks
    style = status_style(data.run)
    for s in order:
        y = top + row_of.get(s.worker, 0) * (lane_h + gap)
        w = max(x(s.ended) - x(s.began), 1.0 if s.status == "done" else 3.0)  # problems: always seen
        colour = style.get(s.status, ("#6b7280", ""))[0]
        stroke = f' stroke="{RERUN_STROKE}" stroke-width="1.5"' if s.attempt > 1 else ""
        pad = 2 if lane_h >= 16 else 0
        out.append(
            f'<rect class="bar" x="{x(s.began):.2f}" y="{y + pad}" width="{w:.2f}"'
            f' height="{lane_h - 2 * pad}" fill="{colour}"{stroke}>'
            f"<title>{escape(describe(s, t0, data.run))}</title></rect>"
        )
        mark = end_mark(data.run, s)
        if mark is not None and lane_h >= 10:
            out.append(
                f'<text class="death" x="{x(s.began) + w + 3:.2f}" y="{y + lane_h / 2 + 4:.1f}">'
                f"\u2715<title>{escape(mark)}</title></text>"
            )
    out.append("</svg>")
    return "\n".join(out)


def _svg_legend(run: Run) -> str:
    items = [(colour, text, False) for colour, text in status_style(run).values()]
    items.append(("#ffffff", "re-run (attempt 2+)", True))
    items.append(("#f3f4f6", "idle", False))
    parts, x = [], LEFT
    for colour, text, outlined in items:
        stroke = f' stroke="{RERUN_STROKE}" stroke-width="1.5"' if outlined else ' stroke="#9ca3af"'
        parts.append(f'<rect x="{x}" y="10" width="14" height="14" fill="{colour}"{stroke}/>')
        parts.append(f'<text x="{x + 20}" y="21">{escape(text)}</text>')
        x += 30 + round(6.6 * len(text))
    parts.append(f'<text class="death" x="{x}" y="21">\u2715</text>')
    parts.append(f'<text x="{x + 20}" y="21">{escape(end_mark_words([run]))}</text>')
    return '<g class="legend">' + "".join(parts) + "</g>"


def _html_table(summary: RunSummary) -> str:
    head = "".join(f"<th>{escape(h)}</th>" for h in HEADERS)
    body = []
    stats = [*summary.workers, summary.total]
    for w, cells in zip(stats, table_rows(summary)):
        tds = "".join(f"<td>{escape(c)}</td>" for c in cells[:-1])
        width = round(min(w.utilisation, 1.0) * 60)
        util = (
            f'<td class="util"><span class="track"><span class="fill" style="width:{width}px"></span></span>'
            f"{escape(cells[-1])}</td>"
        )
        cls = ' class="total"' if w is summary.total else ""
        body.append(f"<tr{cls}>{tds}{util}</tr>")
    return f"<table>\n<thead><tr>{head}</tr></thead>\n<tbody>\n" + "\n".join(body) + "\n</tbody>\n</table>"

"""``forklift report`` and ``forklift top``: draw a journal's runs, or watch the pools recording into it.

``forklift report run.db -o timeline.html`` writes one self-contained page (or a
PNG with matplotlib) with a lane per worker and a summary table, and prints the
table. ``forklift top run.db`` shows the live workers, refreshed twice a second.
Both only read the journal (see :mod:`forklift.report`).
"""

from __future__ import annotations

import argparse
import os
import stat
import sys
import time
from typing import Any

EXIT_OK = 0
EXIT_ERROR = 1  # the journal cannot be read, has no such run, or the output cannot be written

REPORT_DESCRIPTION = """\
Draw the runs recorded in a journal (Pool(journal=...), forklift run --journal): one lane per
worker over time, tasks as bars coloured by status, and a summary table per worker (tasks,
failures, retries, mean/p50/p99 duration, busy time, utilisation), also printed on stdout.
"""

REPORT_EPILOG = """\
colours: green done, vermilion failed (raised; for forklift run: exit status not 0), orange
timed out, pink lost with its worker, yellow failed and retried; attempts 2+ have a dark
outline; a cross: the worker died or was killed there (forklift run: the job was killed for
its timeout); grey lane = idle. A local forklift run's lanes are its job slots.
utilisation = busy time / the run's wall time (for 'all': / (wall time x pool size)).

exit status: 0 written; 1 the journal cannot be read or has no such run; 2 bad arguments.

examples:
  forklift report run.db                      latest run -> timeline.html
  forklift report run.db -o run3.png --run 3  one run as a PNG (needs matplotlib)
  forklift report run.db --run all            every run, one section each
"""

TOP_DESCRIPTION = """\
Watch the pools recording into a journal: one line per live worker with its state, current
task, tasks done, CPU % and RSS, and each running run's progress. Ctrl-C quits.
A journal that does not exist yet is waited for (not with --once).
"""

OUTPUT_KINDS = (".html", ".htm", ".png")
TOP_COLUMNS = ("pid", "parent", "run", "state", "task", "done", "cpu %", "rss")


def register(sub: argparse._SubParsersAction) -> None:  # type: ignore[type-arg]
    """Add the ``report`` and ``top`` subcommands."""
    r = sub.add_parser(
        "report",
        help="draw a journal's runs: timeline per worker and summary table (HTML or PNG)",
        description=REPORT_DESCRIPTION,
        epilog=REPORT_EPILOG,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    r.add_argument(
        "journal", metavar="JOURNAL", help="the journal file (SQLite) a pool or forklift run wrote"
    )
    r.add_argument(
        "-o", "--output", type=_output, default="timeline.html", metavar="FILE",
        help="FILE.html (self-contained page) or FILE.png (default timeline.html)",
    )  # fmt: skip
    r.add_argument(
        "--run", type=_run_choice, default=None, metavar="N",
        help="which run: its number, 'all', or (default) the latest",
    )  # fmt: skip
    r.set_defaults(func=run_report)

    t = sub.add_parser(
        "top",
        help="watch the workers of pools recording into a journal (live)",
        description=TOP_DESCRIPTION,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    t.add_argument(
        "journal", metavar="JOURNAL", nargs="?", default="run.db", help="the journal (default run.db)"
    )
    t.add_argument("--once", action="store_true", help="print one snapshot and exit")
    t.add_argument(
        "-n", "--interval", type=_interval, default=0.5, metavar="S", help="seconds between refreshes (0.5)"
    )
    t.set_defaults(func=run_top)


def _output(text: str) -> str:
    if os.path.splitext(text)[1].lower() not in OUTPUT_KINDS:
        raise argparse.ArgumentTypeError(f"{text!r}: the output must end in .html or .png")
    return text


def _run_choice(text: str) -> int | str:
    if text == "all":
        return text
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r} is not a run number or 'all'") from None
    if value < 1:
        raise argparse.ArgumentTypeError(f"run numbers start at 1, not {value}")
    return value


def _interval(text: str) -> float:
    try:
        value = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r} is not a number of seconds") from None
    if not 0.05 <= value <= 60:
        raise argparse.ArgumentTypeError("the interval must be between 0.05 and 60 seconds")
    return value


def _fail(command: str, message: str) -> int:
    print(f"forklift {command}: error: {message}", file=sys.stderr)
    return EXIT_ERROR


# -- report -------------------------------------------------------------------------------


def run_report(args: argparse.Namespace) -> int:
    from .. import report
    from ..errors import JournalError, MissingMatplotlib

    try:
        conn = report.open_journal(args.journal)
        try:
            ids = report.run_ids(conn)
            if not ids:
                return _fail("report", f"{args.journal!r} holds no runs yet")
            chosen = ids if args.run == "all" else [ids[-1] if args.run is None else args.run]
            runs = [report.load_run(conn, run) for run in chosen]
        finally:
            conn.close()
        title = f"forklift report: {os.path.basename(args.journal)}"
        if args.output.lower().endswith(".png"):
            report.render_png(runs, args.output, title)
        else:
            page = report.render_html(runs, title)
            with open(args.output, "w", encoding="utf-8") as f:
                f.write(page)
    except (JournalError, MissingMatplotlib) as exc:
        return _fail("report", str(exc))
    except OSError as exc:
        return _fail("report", f"cannot write {args.output!r}: {exc.strerror or exc}")
    for data in runs:
        print(report.summary_text(data.summary))
        print()
    print(f"wrote {args.output}")
    return EXIT_OK


# -- top ----------------------------------------------------------------------------------


def run_top(args: argparse.Namespace) -> int:
    from .. import report
    from ..errors import JournalError

    try:
        conn = report.open_journal(args.journal) if args.once else _wait_for_journal(args.journal)
    except JournalError as exc:
        return _fail("top", str(exc))
    except KeyboardInterrupt:
        return EXIT_OK  # Ctrl-C while waiting for the journal
    procs: dict[int, Any] = {}
    try:
        if args.once:
            report.take_snapshot(conn, procs)  # primes CPU % measurement
            time.sleep(0.3)
            _print_once(report.take_snapshot(conn, procs), args.journal)
            return EXIT_OK
        _watch(conn, procs, args.journal, args.interval)
    except JournalError as exc:
        return _fail("top", str(exc))
    except KeyboardInterrupt:
        pass  # Ctrl-C is how top is meant to end
    finally:
        conn.close()
    return EXIT_OK


APPEAR_POLL = 0.2  # seconds between looks for a journal that does not exist yet
SCHEMA_GRACE = 2.0  # seconds a journal that just appeared may take to get its tables


def _wait_for_journal(path: str) -> Any:
    """Open the journal; if there is none yet, say so once and wait until a pool creates it.

    A file that is there from the start and is no journal is refused at once; one
    that appears while we wait may be half made (its tables come a moment after
    the file), so it gets SCHEMA_GRACE seconds. Ctrl-C ends the wait.
    """
    from .. import report
    from ..errors import JournalError

    waited = False
    appeared: float | None = None
    while True:
        try:
            return report.open_journal(path)
        except JournalError:
            if _absent(path):
                appeared = None
            elif not waited:
                raise
            else:
                appeared = appeared or time.monotonic()
                if time.monotonic() - appeared > SCHEMA_GRACE:
                    raise
        if not waited:
            print(f"forklift top: no journal at {path!r} yet; waiting for a pool to create it (Ctrl-C stops)",
                  file=sys.stderr, flush=True)  # fmt: skip
            waited = True
        time.sleep(APPEAR_POLL)


def _absent(path: str) -> bool:
    """No file there, or an empty one (SQLite makes the file before it writes the journal)."""
    try:
        st = os.stat(path)
    except FileNotFoundError:
        return True
    except OSError:
        return False  # not ours to read: the journal's own error says so
    return stat.S_ISREG(st.st_mode) and st.st_size == 0


def _watch(conn: Any, procs: dict[int, Any], path: str, interval: float) -> None:
    from rich.live import Live

    from .. import report

    with Live(_render(report.take_snapshot(conn, procs), path), auto_refresh=False, transient=False) as live:
        while True:
            time.sleep(interval)
            live.update(_render(report.take_snapshot(conn, procs), path), refresh=True)


def _print_once(snap: Any, path: str) -> None:
    from rich.console import Console

    Console(soft_wrap=True).print(_render(snap, path))


def _render(snap: Any, path: str) -> Any:
    from rich.console import Group
    from rich.table import Table
    from rich.text import Text

    from .. import report
    from ..progress import usage_text

    parts: list[Any] = []
    if not snap.workers and not snap.runs:
        last = snap.last
        tail = f"; last: {report.run_title(last)}" if last else "; it holds no runs yet"
        return Text(f"no live pool is recording into {path}{tail}")
    for p in snap.runs:
        total = p.run.total
        share = (
            f"{p.done}/{total} ({p.done / total:.0%})" if type(total) is int and total else f"{p.done} done"
        )
        elapsed = report.fmt_seconds(time.time() - p.run.started)
        extra = f", {p.failed} failed" if p.failed else ""
        extra += f", {p.retried} retried/lost/timed out" if p.retried else ""
        parts.append(Text(f"{report.run_name(p.run)}: {share}{extra}, {elapsed} elapsed"))
    table = Table(box=None, pad_edge=False, header_style="bold")
    for name in TOP_COLUMNS:
        table.add_column(name, justify="left" if name == "state" else "right")
    for w in snap.workers:
        cpu, rss = usage_text(w.cpu, w.rss)
        task = "-" if w.task is None else w.task
        # Text, not markup: a journal is anyone's file, and "[/]" in a state would be an error.
        cells = [w.pid, w.parent, w.run or "-", w.state, task, w.done, cpu, rss]
        row = [Text(report.one_line(str(c))) for c in cells]
        if w.state == "busy":
            row[3].stylize("green")
        table.add_row(*row)
    if snap.workers:
        parts.append(table)
    else:
        parts.append(Text("no live workers"))
    return Group(*parts)

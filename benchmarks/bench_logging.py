"""Figure (p): logging from workers: forklift's forwarding against the stdlib's QueueHandler recipe.

The anchor is the logging cookbook's way for multiprocessing: a ``multiprocessing.Queue``,
a ``QueueHandler`` installed in each worker by the pool's initializer, and a
``QueueListener`` in the parent feeding the parent's handler. Both sides use the
default start method here (forkserver for forklift, as its default; the same for
mp.Pool) and 2 workers; the parent's handler counts records (no I/O), so the figure
is the transport.

* **records**: 20,000 tasks that each log one INFO record (``pool.map``); the time until
  the map has returned *and* every record has reached the parent's handler, records/s,
  and how many had when ``map`` returned (forklift waits for a call's records before it
  returns its result; the queue recipe's listener thread may still be behind);
* **quiet**: 200,000 tasks that log nothing, with forwarding on and off: what having
  it on costs a pool that does not log.
"""

from __future__ import annotations

import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))  # workers import _tasks by name

import logging
import logging.handlers
import multiprocessing
import time
from typing import Any

import _tasks
import forklift
from _common import (
    Goal,
    base_parser,
    fmt,
    fmt_x,
    markdown_table,
    median,
    ratio,
    render_report,
    round_robin,
    select,
    write_json,
)

CASES = ("forklift", "mp.Pool+QueueHandler")
QUIET = ("forklift forwarding on", "forklift forwarding off")


class Count(logging.Handler):
    def __init__(self) -> None:
        super().__init__()
        self.n = 0

    def emit(self, record: logging.LogRecord) -> None:
        self.n += 1


def _queue_initializer(queue: Any) -> None:
    root = logging.getLogger()
    root.handlers[:] = [logging.handlers.QueueHandler(queue)]
    root.setLevel(logging.INFO)


def records(key: str, n: int) -> dict[str, Any]:
    counter = Count()
    root = logging.getLogger()
    root.addHandler(counter)
    root.setLevel(logging.INFO)
    try:
        if key == "forklift":
            with forklift.Pool(2) as pool:
                pool.map(_tasks.square, range(100))  # warm
                start = time.perf_counter()
                pool.map(_tasks.log_one, range(n))
                seconds = time.perf_counter() - start
                at_return = counter.n
        else:
            ctx = multiprocessing.get_context("forkserver")
            queue = ctx.Queue()
            listener = logging.handlers.QueueListener(queue, counter)
            listener.start()
            pool = ctx.Pool(2, initializer=_queue_initializer, initargs=(queue,))
            pool.map(_tasks.square, range(100))
            start = time.perf_counter()
            pool.map(_tasks.log_one, range(n), chunksize=max(1, n // 64))
            at_return = counter.n
            deadline = time.monotonic() + 60
            while counter.n < n and time.monotonic() < deadline:  # the listener catches up
                time.sleep(0.0005)
            seconds = time.perf_counter() - start
            # close + join, as the cookbook does: leaving a `with` block terminates the pool, and a
            # worker killed while its queue feeder writes leaves a partial record in the shared
            # pipe, on which the listener then waits for ever (seen here at 2,000 records).
            pool.close()
            pool.join()
            listener.stop()  # drains the queue
        return {"seconds": seconds, "at_return": at_return, "total": counter.n}
    finally:
        root.removeHandler(counter)


def quiet(key: str, n: int) -> dict[str, Any]:
    with forklift.Pool(2, forward_logging=key.endswith("on")) as pool:
        pool.map(_tasks.square, range(100))
        start = time.perf_counter()
        pool.map(_tasks.square, range(n))
        return {"seconds": time.perf_counter() - start}


def main() -> None:
    parser = base_parser(__doc__.split("\n\n")[0], epilog=__doc__.split("\n\n", 1)[1])
    parser.add_argument("--n", type=int, default=20_000, help="logging tasks (default 20000)")
    parser.add_argument("--quiet-n", type=int, default=200_000, help="tasks that do not log (default 200000)")
    parser.add_argument("--reps", type=int, help="runs per case (default 5; 1 with --quick)")
    args = parser.parse_args()
    if args.list:
        print("\n".join([*CASES, *QUIET]))
        return
    keys = select(CASES, args.only)
    reps = args.reps or (1 if args.quick else 5)
    runs = round_robin(keys, lambda _: reps, lambda k: records(k, args.n), lambda m: f"{m['seconds']:.3f} s")
    qruns = round_robin(
        list(QUIET), lambda _: reps, lambda k: quiet(k, args.quiet_n), lambda m: f"{m['seconds']:.3f} s"
    )
    med = {k: median([m["seconds"] for m in runs[k]["samples"]]) for k in keys}
    rows = []
    for k in keys:
        s = runs[k]["samples"]
        rows.append(
            (
                f"**{k}**" if k == "forklift" else k,
                fmt(med[k]),
                f"{args.n / med[k]:,.0f}" if med[k] else "n/a",
                f"{min(m['at_return'] for m in s):,} / {args.n:,}" if s else "n/a",
                f"{min(m['total'] for m in s):,} / {args.n:,}" if s else "n/a",
            )
        )
    table1 = markdown_table(
        (
            "20,000 tasks logging one record each",
            "median s, all handled",
            "records/s",
            "handled when map returned (worst run)",
            "handled in the end (worst run)",
        ),
        rows,
        right=(1, 2),
    )
    qmed = {k: median([m["seconds"] for m in qruns[k]["samples"]]) for k in QUIET}
    table2 = markdown_table(
        ("200,000 tasks that log nothing", "median s"),
        [(k, fmt(qmed[k])) for k in QUIET],
        right=[1],
    )
    goals = [
        Goal(
            "forklift: every record handled by the time map returns",
            f"{min(m['at_return'] for m in runs['forklift']['samples']):,} / {args.n:,}"
            if "forklift" in runs
            else "n/a",
            None
            if "forklift" not in runs
            else all(m["at_return"] == args.n for m in runs["forklift"]["samples"]),
        ),
        Goal(
            "forklift no slower than the QueueHandler recipe",
            fmt_x(ratio(med.get("forklift"), med.get("mp.Pool+QueueHandler"))),
            None if len(med) < 2 else med["forklift"] <= med["mp.Pool+QueueHandler"],
        ),
        Goal(
            "forwarding costs a pool that does not log nothing measurable (<= 1.05x)",
            fmt_x(ratio(qmed[QUIET[0]], qmed[QUIET[1]])),
            None if not all(qmed.values()) else qmed[QUIET[0]] <= 1.05 * qmed[QUIET[1]],
        ),
    ]
    notes = [f"Median of {reps} runs per case, round-robin; 2 workers; the parent's handler only counts."]
    print(render_report("(p) Logging from workers", table1 + "\n\n" + table2, notes, goals))
    write_json(args.json, "logging", args, {"records": med, "quiet": qmed})


if __name__ == "__main__":
    main()

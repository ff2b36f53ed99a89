"""Figure (k): scheduler capacity, 64 workers sleeping 5 ms a task on 2 cores, forklift against the anchors.

A task that sleeps needs no CPU, so 64 workers on this 2-core machine are
limited by how fast each pool hands out work and takes results back, not by
the CPU: the ideal is workers / sleep = 64 / 0.005 s = 12,800 tasks/s. Every
pool has the same number of workers and gets the same tasks; no chunksize is
given anywhere (the anchors' defaults: mp.Pool.map n/(4*workers), the rest 1).
Pool creation and a warm-up call (10 items per worker) are not timed.

Besides throughput the report gives the parent process's CPU time during the
call (all its threads: forklift's scheduler, mp.Pool's handler threads, the
executors' management threads), per task and as a share of one core, and the
chunks (messages to a worker) per second, where they are known.

The project's goal: every forklift call reaches >= 90% of the ideal and is
ahead of multiprocessing.Pool, ProcessPoolExecutor and loky (an Executor.submit
loop: ahead of the two executors' map).
"""

from __future__ import annotations

import functools
import math
import resource
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))  # workers import _tasks by name

import _tasks
from _common import (
    Goal,
    base_parser,
    fmt,
    fmt_s,
    fmt_x,
    markdown_table,
    median,
    ratio,
    render_report,
    round_robin,
    select,
    write_json,
)
from _pools import CASES, SUBMIT_CASES, chunks_sent

ALL_CASES = {**CASES, **SUBMIT_CASES}
KEYS = (
    "forklift.Pool.map",
    "forklift.Pool.imap_unordered",
    "forklift.Executor.map",
    "forklift.Executor.submit",
    "mp.Pool.map",
    "mp.Pool.imap_unordered",
    "PPE.map",
    "loky.map",
)
ANCHORS = ("mp.Pool.map", "mp.Pool.imap_unordered", "PPE.map", "loky.map")
GOAL_SHARE = 0.90


def parse_args():
    parser = base_parser(__doc__.split("\n\n")[0], epilog=__doc__.split("\n\n", 1)[1])
    parser.add_argument("--workers", type=int, default=64, help="workers in every pool (default 64)")
    parser.add_argument("--sleep", type=float, default=0.005, help="seconds each task sleeps (default 0.005)")
    parser.add_argument("--n", type=int, help="tasks per timed call (default 30000; --quick 8000)")
    parser.add_argument("--reps", type=int, help="timed calls per case (default 3; --quick 1)")
    args = parser.parse_args()
    if args.n is None:
        args.n = 8_000 if args.quick else 30_000
    if args.reps is None:
        args.reps = 1 if args.quick else 3
    return args


def cpu_seconds() -> float:
    """CPU time of this process so far, every thread, user + system."""
    usage = resource.getrusage(resource.RUSAGE_SELF)
    return usage.ru_utime + usage.ru_stime


def known_chunks(key: str, n: int, workers: int) -> int | None:
    """Messages the anchors send for ``n`` items: their chunking is fixed by ``n``."""
    if key == "mp.Pool.map":
        size = math.ceil(n / (4 * workers))  # multiprocessing.Pool._map_async's default
        return math.ceil(n / size)
    if key in ("mp.Pool.imap_unordered", "PPE.map", "loky.map"):
        return n  # chunksize=1
    return None


def run_once(key: str, args) -> dict:
    """Open a pool, warm it, time one call of ``args.n`` sleeping tasks, close it."""
    case = ALL_CASES[key]
    fn = functools.partial(_tasks.nap, args.sleep)
    xs = list(range(args.n))
    pool = case.library.open(args.workers, None)
    try:
        case.run(pool, fn, list(range(10 * args.workers)))
        chunks0 = chunks_sent(pool)
        cpu0 = cpu_seconds()
        start = time.perf_counter()
        got = case.run(pool, fn, xs)
        seconds = time.perf_counter() - start
        cpu = cpu_seconds() - cpu0
        chunks1 = chunks_sent(pool)
    finally:
        case.library.close(pool)
    chunks = chunks1 - chunks0 if chunks0 is not None and chunks1 is not None else None
    if chunks is None:
        chunks = known_chunks(key, args.n, args.workers)
    return {"seconds": seconds, "cpu": cpu, "chunks": chunks, "correct": case.same_results(got, xs)}


def summarize(key: str, run: dict, args) -> dict:
    samples = run["samples"]
    ideal = args.workers / args.sleep
    seconds = median([s["seconds"] for s in samples])
    cpu = median([s["cpu"] for s in samples])
    chunks = median([s["chunks"] for s in samples if s["chunks"] is not None])
    rate = args.n / seconds if seconds else None
    return {
        "key": key,
        "label": ALL_CASES[key].label,
        "reps": len(samples),
        "seconds": [s["seconds"] for s in samples],
        "median": seconds,
        "tasks_per_s": rate,
        "share_of_ideal": rate / ideal if rate else None,
        "cpu_share": cpu / seconds if seconds else None,
        "cpu_us_per_task": cpu / args.n * 1e6 if cpu is not None else None,
        "chunks": chunks,
        "chunks_per_s": chunks / seconds if chunks and seconds else None,
        "cpu_us_per_chunk": cpu / chunks * 1e6 if chunks and cpu is not None else None,
        "correct": bool(samples) and all(s["correct"] for s in samples),
        "error": run["error"],
    }


def add_ratios(rows: list[dict]) -> None:
    """``vs[anchor]``: this row's throughput / the anchor's (above 1: faster)."""
    rates = {r["key"]: r["tasks_per_s"] for r in rows}
    for r in rows:
        r["vs"] = {a: ratio(r["tasks_per_s"], rates.get(a)) for a in ANCHORS if a in rates}


def goals(rows: list[dict]) -> list[Goal]:
    out = []
    for r in rows:
        if not ALL_CASES[r["key"]].is_forklift:
            continue
        share = r["share_of_ideal"]
        out.append(
            Goal(
                f"`{r['key']}` >= {GOAL_SHARE:.0%} of the ideal",
                fmt(share * 100 if share else None, 1, "%"),
                None if share is None else share >= GOAL_SHARE,
            )
        )
        # A submit loop has no chunksize to compare: it is held to the executors' own maps.
        against = ("PPE.map", "loky.map") if r["key"].endswith(".submit") else ANCHORS
        vs = {a: v for a, v in r["vs"].items() if v is not None and a in against}
        if vs:
            slowest = min(vs, key=vs.get)
            out.append(
                Goal(
                    f"`{r['key']}` ahead of {', '.join(f'`{a}`' for a in vs)}",
                    ", ".join(f"{fmt_x(v, 3)} `{a}`" for a, v in vs.items()),
                    vs[slowest] > 1.0,
                )
            )
    return out


def report(rows: list[dict], goal_rows: list[Goal], args) -> str:
    ideal = args.workers / args.sleep
    anchors = [a for a in ANCHORS if any(r["key"] == a for r in rows)]
    table = markdown_table(
        (
            "case",
            "reps",
            "median s",
            "tasks/s",
            "% of ideal",
            "parent CPU % of a core",
            "parent CPU µs/task",
            "chunks/s",
            "parent CPU µs/chunk",
            *(f"vs {a}" for a in anchors),
            "results",
        ),
        (
            (
                r["label"],
                r["reps"],
                fmt_s(r["median"]),
                fmt(r["tasks_per_s"], 0),
                fmt(r["share_of_ideal"] * 100 if r["share_of_ideal"] else None, 1),
                fmt(r["cpu_share"] * 100 if r["cpu_share"] is not None else None, 1),
                fmt(r["cpu_us_per_task"], 1),
                fmt(r["chunks_per_s"], 0),
                fmt(r["cpu_us_per_chunk"], 1),
                *(fmt_x(r["vs"].get(a), 3) for a in anchors),
                r["error"] or ("ok" if r["correct"] else "**WRONG**"),
            )
            for r in rows
        ),
        right=range(1, 9 + len(anchors)),
    )
    skipped = [k for k in KEYS if k not in {r["key"] for r in rows}]
    notes = [
        f"{args.n:,} tasks `time.sleep({args.sleep:g})` on {args.workers} workers per pool; ideal "
        f"{args.workers} / {args.sleep:g} s = {ideal:,.0f} tasks/s. Median of {args.reps} timed calls "
        "per case, cases round-robin; each call gets a fresh pool, whose creation and warm-up are not timed.",
        "No chunksize given: mp.Pool.map's default is n/(4·workers); mp.Pool.imap_unordered, "
        "ProcessPoolExecutor.map and loky's map default to chunksize=1, so their defaults are "
        "already the one-task-per-message setting. Start methods are each library's default "
        "(forklift: forkserver; mp.Pool and PPE: fork; loky: its own fork+exec).",
        "Parent CPU: `getrusage(RUSAGE_SELF)` over the timed call, all the parent's threads; "
        "chunks: forklift's counter of chunks sent, the anchors' from their fixed chunk sizes.",
        "`vs X` = this case's tasks/s / X's (above 1.00x: faster).",
    ]
    if skipped:
        notes.append(f"Not run: {', '.join(skipped)} (--only).")
    return render_report(
        f"(k) scheduler capacity: {args.workers} workers, tasks sleeping {args.sleep * 1000:g} ms",
        table,
        notes,
        goal_rows,
        workers=args.workers,
    )


def main() -> None:
    args = parse_args()
    if args.list:
        print("\n".join(KEYS))
        return
    keys = select(KEYS, args.only)
    runs = round_robin(
        keys,
        reps=lambda key: args.reps,
        run=lambda key: run_once(key, args),
        describe=lambda s: (
            f"{s['seconds']:.3f} s, {args.n / s['seconds']:,.0f} tasks/s, parent CPU {s['cpu']:.2f} s"
            f"{'' if s['correct'] else ', WRONG results'}"
        ),
    )
    rows = [summarize(key, runs[key], args) for key in keys]
    add_ratios(rows)
    goal_rows = goals(rows)
    print(report(rows, goal_rows, args))
    write_json(args.json, "scale", args, {"rows": rows, "goals": [g.__dict__ for g in goal_rows]})


if __name__ == "__main__":
    main()

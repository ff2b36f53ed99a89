"""Figure (m): what a pool costs in memory: an idle worker's PSS, and the parent's RSS over 10 million tasks.

(a) Idle worker. Each pool runs in a fresh interpreter (so no two share a fork
server): 2 workers, start method forkserver (loky: its own fork+exec), one
warm-up map of 100 items, half a second to settle, then every worker's
``psutil.Process(pid).memory_full_info()``: PSS (its unique pages plus its share
of the pages it shares), USS (unique) and RSS. Median over the workers of
``--pools`` fresh pools.

(b) Parent RSS over a long lazy map. forklift's ``imap_unordered`` of ``x*x``
over ``range(10_000_000)`` (a lazy input) on 2 workers, results consumed one by
one and dropped; a separate process samples the parent's RSS every
``--interval`` seconds. Reported: RSS just before the call, its peak during the
call, RSS just after it, and the slope of a least-squares line through the
samples of the call's second half. Side anchor:
``multiprocessing.Pool.imap_unordered`` with ``chunksize=10000`` (its default of 1
would take minutes), which reads its whole input ahead of the workers.

The project's goals: an idle forklift worker's PSS no larger than an idle
multiprocessing.Pool worker's; the parent's RSS grows by at most 5 MB over the
10 million tasks (during the call: peak - before; after it: after - before),
with no upward trend in the second half (the line through it rises by less
than 1 MB over that half).
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))  # workers import _tasks by name

from _common import (
    WORKERS,
    Goal,
    base_parser,
    command_line,
    fmt,
    fmt_s,
    fmt_x,
    goals_table,
    header,
    markdown_table,
    median,
    ratio,
    round_robin,
    select,
    write_json,
)

MB = 1024 * 1024
IDLE_KEYS = ("idle:forklift.Pool", "idle:mp.Pool", "idle:PPE", "idle:loky")
STREAM_KEYS = ("stream:forklift.Pool.imap_unordered", "stream:mp.Pool.imap_unordered")
KEYS = IDLE_KEYS + STREAM_KEYS
MP_CHUNKSIZE = 10_000
GROWTH_MB = 5.0
TREND_MB = 1.0


def parse_args():
    parser = base_parser(__doc__.split("\n\n")[0], epilog=__doc__.split("\n\n", 1)[1])
    parser.add_argument("--pools", type=int, help="fresh pools per idle case (default 5; --quick 2)")
    parser.add_argument("--n", type=int, help="tasks in the long map (default 10000000; --quick 1000000)")
    parser.add_argument(
        "--interval", type=float, default=0.05, help="seconds between RSS samples (default 0.05)"
    )
    parser.add_argument(
        "--runs", type=int, default=2, help="long maps per call, one after another in one parent (default 2)"
    )
    parser.add_argument("--subject", metavar="KEY", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.pools is None:
        args.pools = 2 if args.quick else 5
    if args.n is None:
        args.n = 1_000_000 if args.quick else 10_000_000
    return args


# -- (a) an idle worker, in a fresh interpreter ----------------------------------------------
def worker_pids(pool) -> list[int]:
    if hasattr(pool, "worker_pids"):  # forklift
        return pool.worker_pids()
    if hasattr(pool, "_pool"):  # multiprocessing.Pool
        return [p.pid for p in pool._pool]
    return list(pool._processes)  # ProcessPoolExecutor, loky: {pid: process}


def idle_subject(key: str) -> None:
    """Open one pool, warm it, let it settle, print its workers' memory as one JSON line."""
    import psutil

    import _pools
    import _tasks

    library = {
        "forklift.Pool": _pools.FORKLIFT_POOL,
        "mp.Pool": _pools.MP_POOL,
        "PPE": _pools.PPE,
        "loky": _pools.LOKY,
    }[key]
    pool = library.open(WORKERS, None if key == "loky" else "forkserver")
    try:
        _pools._map_list(pool, _tasks.identity, list(range(100)))
        time.sleep(0.5)
        workers = []
        for pid in worker_pids(pool):
            info = psutil.Process(pid).memory_full_info()
            workers.append({"pid": pid, "pss": info.pss, "uss": info.uss, "rss": info.rss})
    finally:
        library.close(pool)
    print(json.dumps(workers), flush=True)


def run_idle(key: str) -> dict:
    cmd = [sys.executable, str(Path(__file__).resolve()), "--subject", key]
    proc = subprocess.run(cmd, capture_output=True, text=True, timeout=300)
    if proc.returncode != 0:
        raise RuntimeError(f"exit {proc.returncode}: {proc.stderr.strip().splitlines()[-3:]}")
    return {"workers": json.loads(proc.stdout.strip().splitlines()[-1])}


# -- (b) the parent's RSS over a long lazy map -------------------------------------------------
# The sampler is a separate process, so that sampling neither waits for the GIL nor adds
# a thread to the parent it measures.
SAMPLER = """
import os, sys, time
pid, interval = int(sys.argv[1]), float(sys.argv[2])
page = os.sysconf("SC_PAGE_SIZE")
with open(f"/proc/{pid}/statm") as statm:
    while True:
        statm.seek(0)
        print(time.monotonic(), int(statm.read().split()[1]) * page, flush=True)
        time.sleep(interval)
"""


def run_stream(key: str, args) -> dict:
    import _pools
    import _tasks

    forklift = key.startswith("stream:forklift")
    library = _pools.FORKLIFT_POOL if forklift else _pools.MP_POOL
    pool = library.open(WORKERS, None)

    def call(xs):
        if forklift:
            return pool.imap_unordered(_tasks.square, xs)
        return pool.imap_unordered(_tasks.square, xs, chunksize=MP_CHUNKSIZE)

    sampler = None
    try:
        sum(call(range(1000)))  # warm-up, not sampled
        sampler = subprocess.Popen(
            [sys.executable, "-c", SAMPLER, str(os.getpid()), str(args.interval)],
            stdout=subprocess.PIPE,
            text=True,
        )
        assert sampler.stdout is not None
        first = sampler.stdout.readline()  # taken before the call starts
        start = time.monotonic()
        total = 0
        for value in call(range(args.n)):
            total += value
        end = time.monotonic()
        time.sleep(args.interval * 1.5)  # one more sample after the end
    finally:
        if sampler is not None:
            sampler.kill()
            out, _ = sampler.communicate()
        library.close(pool)
    lines = [first, *out.splitlines()]
    points = [(float(t), int(rss)) for t, rss in (line.split() for line in lines)]
    samples = [(t - start, rss) for t, rss in points if start <= t <= end]
    before = [rss for t, rss in points if t < start]
    after = [rss for t, rss in points if t > end]
    samples = [(0.0, before[-1] if before else samples[0][1]), *samples]
    samples.append((end - start, after[0] if after else samples[-1][1]))
    expected = (args.n - 1) * args.n * (2 * args.n - 1) // 6
    return {"seconds": end - start, "samples": samples, "correct": total == expected}


def slope(points: list[tuple[float, int]]) -> float | None:
    """Least-squares slope of RSS over time, bytes per second."""
    if len(points) < 2:
        return None
    ts = [t for t, _ in points]
    ys = [y for _, y in points]
    mt, my = sum(ts) / len(ts), sum(ys) / len(ys)
    var = sum((t - mt) ** 2 for t in ts)
    return sum((t - mt) * (y - my) for t, y in points) / var if var else None


def stream_stats(sample: dict) -> dict:
    points = sample["samples"]
    rss = [y for _, y in points]
    half = [p for p in points if p[0] >= sample["seconds"] / 2]
    trend = slope(half)
    span = half[-1][0] - half[0][0] if len(half) > 1 else 0.0
    return {
        "seconds": sample["seconds"],
        "start_mb": rss[0] / MB,
        "peak_mb": max(rss) / MB,
        "end_mb": rss[-1] / MB,
        "growth_mb": (rss[-1] - rss[0]) / MB,
        "peak_growth_mb": (max(rss) - rss[0]) / MB,
        "second_half_mb_per_s": trend / MB if trend is not None else None,
        "second_half_rise_mb": trend * span / MB if trend is not None else None,
        "n_samples": len(points),
        "samples": [(round(t, 3), round(y / MB, 2)) for t, y in points],
        "correct": sample["correct"],
    }


# -- report ------------------------------------------------------------------------------------
def summarize_idle(key: str, run: dict) -> dict:
    workers = [w for s in run["samples"] for w in s["workers"]]
    return {
        "key": key,
        "pools": len(run["samples"]),
        "workers": len(workers),
        "pss_mb": median([w["pss"] / MB for w in workers]),
        "uss_mb": median([w["uss"] / MB for w in workers]),
        "rss_mb": median([w["rss"] / MB for w in workers]),
        "error": run["error"],
    }


def summarize_stream(key: str, run: dict) -> list[dict]:
    """One row per run: the runs share the parent, so a later run starts where the allocator
    left the earlier ones (what they freed and it kept)."""
    rows = []
    for i, sample in enumerate(run["samples"], 1):
        stats = stream_stats(sample)
        rows.append({"key": key, "run": i, "error": None, **stats})
    if run["error"]:
        rows.append({"key": key, "run": len(rows) + 1, "error": run["error"], "correct": False})
    return rows


def goals(idle: list[dict], stream: list[dict]) -> list[Goal]:
    out = []
    by_key = {r["key"]: r for r in idle}
    mine, theirs = by_key.get("idle:forklift.Pool"), by_key.get("idle:mp.Pool")
    if mine and theirs:
        vs = ratio(mine["pss_mb"], theirs["pss_mb"])
        out.append(
            Goal(
                "idle forklift worker's PSS <= an idle mp.Pool worker's (forkserver)",
                f"{fmt(mine['pss_mb'], 1)} MB vs {fmt(theirs['pss_mb'], 1)} MB ({fmt_x(vs)})",
                None if vs is None else vs <= 1.0,
            )
        )
    mine = [r for r in stream if r["key"].startswith("stream:forklift") and not r["error"]]
    if mine:
        worst = {f: max(r[f] for r in mine) for f in ("growth_mb", "peak_growth_mb", "second_half_rise_mb")}
        r = {**max(mine, key=lambda r: r["peak_growth_mb"]), **worst}
        growth, peak, rise = r.get("growth_mb"), r.get("peak_growth_mb"), r.get("second_half_rise_mb")
        out.append(
            Goal(
                f"parent RSS growth during the map (peak - before) <= {GROWTH_MB:g} MB (`{r['key'][7:]}`, "
                f"worst of {len(mine)} runs)",
                f"{fmt(peak, 1)} MB ({fmt(r.get('start_mb'), 1)} -> peak {fmt(r.get('peak_mb'), 1)} MB)",
                None if peak is None else peak <= GROWTH_MB,
            )
        )
        out.append(
            Goal(
                f"parent RSS left after the map (after - before) <= {GROWTH_MB:g} MB",
                f"{fmt(growth, 1)} MB ({fmt(r.get('start_mb'), 1)} -> {fmt(r.get('end_mb'), 1)} MB)",
                None if growth is None else growth <= GROWTH_MB,
            )
        )
        out.append(
            Goal(
                f"no upward trend in the second half (rise < {TREND_MB:g} MB over it)",
                f"{fmt(rise, 2)} MB ({fmt(r.get('second_half_mb_per_s'), 3)} MB/s)",
                None if rise is None else rise < TREND_MB,
            )
        )
    return out


def report(idle: list[dict], stream: list[dict], goal_rows: list[Goal], args) -> str:
    parts = [header("(m) memory: an idle worker, and the parent over a long lazy map", command_line())]
    if idle:
        base = next((r["pss_mb"] for r in idle if r["key"] == "idle:mp.Pool"), None)
        parts += [
            "(a) an idle worker, 2 workers, forkserver (loky: its own fork+exec), after a warm-up map",
            "",
            markdown_table(
                ("pool", "pools x workers", "PSS MB (median)", "USS MB", "RSS MB", "PSS vs mp.Pool"),
                (
                    (
                        f"**{r['key'][5:]}**" if "forklift" in r["key"] else r["key"][5:],
                        f"{r['pools']} x {WORKERS}",
                        fmt(r["pss_mb"], 1),
                        fmt(r["uss_mb"], 1),
                        fmt(r["rss_mb"], 1),
                        r["error"] or fmt_x(ratio(r["pss_mb"], base)),
                    )
                    for r in idle
                ),
                right=range(1, 6),
            ),
            "",
        ]
    if stream:
        parts += [
            f"(b) the parent's RSS over `imap_unordered(x*x, range({args.n:,}))`, 2 workers, "
            f"sampled every {args.interval:g} s",
            "",
            markdown_table(
                (
                    "call",
                    "run",
                    "seconds",
                    "tasks/s",
                    "RSS before MB",
                    "peak MB",
                    "after MB",
                    "peak - before MB",
                    "after - before MB",
                    "2nd-half slope MB/s",
                    "2nd-half rise MB",
                    "results",
                ),
                (
                    (
                        f"**{r['key'][7:]}**"
                        if "forklift" in r["key"]
                        else f"{r['key'][7:]} (chunksize={MP_CHUNKSIZE:,})",
                        r["run"],
                        fmt_s(r.get("seconds")),
                        fmt(args.n / r["seconds"] if r.get("seconds") else None, 0),
                        fmt(r.get("start_mb"), 1),
                        fmt(r.get("peak_mb"), 1),
                        fmt(r.get("end_mb"), 1),
                        fmt(r.get("peak_growth_mb"), 1),
                        fmt(r.get("growth_mb"), 1),
                        fmt(r.get("second_half_mb_per_s"), 3),
                        fmt(r.get("second_half_rise_mb"), 2),
                        r["error"] or ("ok" if r["correct"] else "**WRONG**"),
                    )
                    for r in stream
                ),
                right=range(1, 11),
            ),
            "",
        ]
    notes = [
        f"(a): median over {args.pools} fresh pools x {WORKERS} workers, each pool in a fresh interpreter; "
        "PSS counts a page shared by k processes as 1/k, so the fork server's and the sibling's sharing lower it.",
        "(b): RSS from /proc/self/statm (every thread of the parent); before: the last sample before the call, after: the first after it; "
        "2nd-half slope: least squares over the samples taken in the second half of the call, "
        "rise = slope x that half's span. The runs (round-robin) share one parent: a later run starts "
        "with what the allocator kept of the earlier ones.",
    ]
    parts += [*(f"* {n}" for n in notes), "", goals_table(goal_rows)]
    return "\n".join(parts)


def main() -> None:
    args = parse_args()
    if args.subject:
        idle_subject(args.subject)
        return
    if args.list:
        print("\n".join(KEYS))
        return
    keys = select(KEYS, args.only)
    idle_keys = [k for k in keys if k in IDLE_KEYS]
    stream_keys = [k for k in keys if k in STREAM_KEYS]
    idle_runs = round_robin(
        idle_keys,
        reps=lambda _: args.pools,
        run=lambda key: run_idle(key[5:]),
        describe=lambda s: ", ".join(f"PSS {w['pss'] / MB:.1f} MB" for w in s["workers"]),
    )
    stream_runs = round_robin(
        stream_keys,
        reps=lambda _: args.runs,
        run=lambda key: run_stream(key, args),
        describe=lambda s: (
            f"{s['seconds']:.1f} s, RSS {s['samples'][0][1] / MB:.1f} -> {s['samples'][-1][1] / MB:.1f} MB"
        ),
    )
    idle = [summarize_idle(k, idle_runs[k]) for k in idle_keys]
    stream = [row for k in stream_keys for row in summarize_stream(k, stream_runs[k])]
    goal_rows = goals(idle, stream)
    print(report(idle, stream, goal_rows, args))
    write_json(
        args.json,
        "memory",
        args,
        {"idle": idle, "stream": stream, "goals": [g.__dict__ for g in goal_rows]},
    )


if __name__ == "__main__":
    main()

"""Figure (l): the parent's instructions per task and per chunk, counted with valgrind's callgrind.

Each case runs twice under ``valgrind --tool=callgrind --trace-children=no``, in
a fresh interpreter (this script with ``--subject``): once opening a pool of 2
workers, warming it with one 100-item map, mapping ``x*x`` over ``--n`` items
and shutting down; once the same without the big map (the baseline). The
difference is what the map itself cost the parent, every thread of it
(forklift's scheduler thread; mp.Pool's task and result handler threads),
divided by the tasks and by the chunks sent (forklift: its chunk counter;
mp.Pool.map: its fixed chunk size n/(4*workers)).

Only the parent is instrumented: the workers start by forkserver, which
fork+execs a fresh interpreter that valgrind does not follow (children are
not traced) and forks every worker from it, so no worker runs under valgrind.
Each run's output files are counted to check that: one per run.

Two more cases map with chunksize=1 on fewer tasks (--chunk-n), so that the
count is what one chunk costs: sending it, taking its result back.

The project's goal: each forklift call costs the parent no more instructions
per task than multiprocessing.Pool.map, and one chunk no more than one of
mp.Pool.map's.
"""

from __future__ import annotations

import argparse
import json
import math
import os
import re
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))  # workers import _tasks by name

from _common import (
    WORKERS,
    Goal,
    base_parser,
    fmt,
    fmt_x,
    log,
    markdown_table,
    median,
    ratio,
    render_report,
    round_robin,
    select,
    write_json,
)

KEYS = (
    "forklift.Pool.map",
    "forklift.Pool.imap_unordered",
    "forklift.Executor.map",
    "mp.Pool.map",
    "forklift.Pool.map:chunksize=1",
    "mp.Pool.map:chunksize=1",
)
ONE = ":chunksize=1"  # one task per chunk, on --chunk-n tasks: what a chunk costs on its own
BASELINE = "mp.Pool.map"
WARM = 100


def parse_args():
    parser = base_parser(__doc__.split("\n\n")[0], epilog=__doc__.split("\n\n", 1)[1])
    parser.add_argument("--n", type=int, help="tasks in the counted map (default 200000; --quick 50000)")
    parser.add_argument("--chunk-n", type=int, help=f"tasks in the {ONE} cases (default 5000; --quick 2000)")
    parser.add_argument("--reps", type=int, default=1, help="counted runs per case and baseline (default 1)")
    parser.add_argument(
        "--start-method",
        default="forkserver",
        choices=("forkserver", "spawn", "fork"),
        help="the pools' start method (default forkserver; fork runs every worker under valgrind too)",
    )
    parser.add_argument("--valgrind", default="valgrind", help="the valgrind command (default: valgrind)")
    parser.add_argument("--subject", metavar="KEY", help=argparse.SUPPRESS)
    parser.add_argument("--no-map", action="store_true", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.n is None:
        args.n = 50_000 if args.quick else 200_000
    if args.chunk_n is None:
        args.chunk_n = 2_000 if args.quick else 5_000
    return args


# -- the subject: what runs under valgrind ---------------------------------------------------
def subject(args) -> None:
    """Open the case's pool, warm it, map over ``args.n`` items (unless --no-map), shut down.

    Prints one JSON line: this process's pid and the chunks the big map sent.
    """
    import _pools
    import _tasks

    chunks_sent = _pools.chunks_sent
    key, one, _ = args.subject.partition(ONE)
    case = _pools.CASES[key]
    run = _map_one_by_one if one else case.run
    xs = list(range(args.n))  # built in the baseline too: the list is not the map's cost
    pool = case.library.open(WORKERS, args.start_method)
    chunks = None
    try:
        case.run(pool, _tasks.square, xs[:WARM])
        if not args.no_map:
            before = chunks_sent(pool)
            got = run(pool, _tasks.square, xs)
            after = chunks_sent(pool)
            if len(got) != len(xs):
                raise SystemExit(f"{args.subject}: {len(got)} results for {len(xs)} items")
            del got
            if before is not None and after is not None:
                chunks = after - before
    finally:
        case.library.close(pool)
    print(json.dumps({"pid": os.getpid(), "chunks": chunks}), flush=True)


def _map_one_by_one(pool, fn, xs) -> list:
    return pool.map(fn, xs, chunksize=1)


def count(key: str, no_map: bool, args) -> dict:
    """One run of the subject under callgrind: the parent's instructions (Ir), all threads."""
    out_dir = Path(tempfile.mkdtemp(prefix="forklift-callgrind-"))
    try:
        cmd = [
            args.valgrind,
            "--tool=callgrind",
            "--trace-children=no",
            f"--callgrind-out-file={out_dir}/callgrind.out.%p",
            sys.executable,
            str(Path(__file__).resolve()),
            "--subject",
            key,
            "--n",
            str(tasks(key, args)),
            "--start-method",
            args.start_method,
            *(["--no-map"] if no_map else []),
        ]
        start = time.perf_counter()
        proc = subprocess.run(cmd, capture_output=True, text=True, timeout=900)
        seconds = time.perf_counter() - start
        if proc.returncode != 0:
            raise RuntimeError(f"exit {proc.returncode}: {proc.stderr.strip().splitlines()[-3:]}")
        line = [ln for ln in proc.stdout.splitlines() if ln.startswith("{")][-1]
        info = json.loads(line)
        files = sorted(out_dir.iterdir())
        mine = out_dir / f"callgrind.out.{info['pid']}"
        totals = re.search(r"^totals:\s*(\d+)", mine.read_text(), re.MULTILINE)
        if totals is None:
            raise RuntimeError(f"no totals line in {mine.name}")
        return {
            "ir": int(totals.group(1)),
            "chunks": info["chunks"],
            "instrumented": len(files),  # 1: only the parent ran under valgrind
            "wall": seconds,
        }
    finally:
        shutil.rmtree(out_dir, ignore_errors=True)


def tasks(key: str, args) -> int:
    return args.chunk_n if key.endswith(ONE) else args.n


def known_chunks(key: str, n: int) -> int | None:
    if key.endswith(ONE):
        return n
    if key == "mp.Pool.map":
        size = math.ceil(n / (4 * WORKERS))  # multiprocessing.Pool._map_async's default
        return math.ceil(n / size)
    return None


def summarize(key: str, runs: dict, args) -> dict:
    full, base = runs[key], runs[f"{key} (baseline)"]
    ir_full = median([s["ir"] for s in full["samples"]])
    ir_base = median([s["ir"] for s in base["samples"]])
    chunks = median([s["chunks"] for s in full["samples"] if s["chunks"] is not None])
    if chunks is None:
        chunks = known_chunks(key, tasks(key, args))
    ir_map = ir_full - ir_base if ir_full is not None and ir_base is not None else None
    samples = full["samples"] + base["samples"]
    return {
        "key": key,
        "ir_full": ir_full,
        "ir_baseline": ir_base,
        "ir_map": ir_map,
        "chunks": chunks,
        "tasks": tasks(key, args),
        "per_task": ir_map / tasks(key, args) if ir_map is not None else None,
        "per_chunk": ir_map / chunks if ir_map is not None and chunks else None,
        "instrumented": max((s["instrumented"] for s in samples), default=None),
        "wall": sum(s["wall"] for s in samples),
        "error": full["error"] or base["error"],
    }


def anchor(key: str) -> str:
    """The stdlib row a case is held to: mp.Pool.map with the same chunking."""
    return BASELINE + ONE if key.endswith(ONE) else BASELINE


def add_ratios(rows: list[dict]) -> None:
    by_key = {r["key"]: r for r in rows}
    for r in rows:
        base = by_key.get(anchor(r["key"]), {})
        r["vs_task"] = ratio(r["per_task"], base.get("per_task"))
        r["vs_chunk"] = ratio(r["per_chunk"], base.get("per_chunk"))


def goals(rows: list[dict]) -> list[Goal]:
    by_key = {r["key"]: r for r in rows}
    out = []
    for r in rows:
        if not r["key"].startswith("forklift"):
            continue
        base = by_key.get(anchor(r["key"]), {})
        one = r["key"].endswith(ONE)
        what, mine, theirs, vs = (
            ("chunk", r["per_chunk"], base.get("per_chunk"), r["vs_chunk"])
            if one
            else ("task", r["per_task"], base.get("per_task"), r["vs_task"])
        )
        out.append(
            Goal(
                f"`{r['key']}`: parent instructions per {what} <= `{anchor(r['key'])}`'s",
                f"{fmt(mine, 0)} vs {fmt(theirs, 0)} ({fmt_x(vs)})",
                None if vs is None else vs <= 1.0,
            )
        )
    instrumented = {r["instrumented"] for r in rows if r["instrumented"] is not None}
    if instrumented:
        out.append(
            Goal(
                "only the parent ran under valgrind (one callgrind file per run)",
                f"files per run: {', '.join(map(str, sorted(instrumented)))}",
                instrumented == {1},
            )
        )
    return out


def report(rows: list[dict], goal_rows: list[Goal], args) -> str:
    table = markdown_table(
        (
            "case",
            "tasks",
            "chunks",
            "Ir, run with the map",
            "Ir, baseline",
            "Ir of the map",
            "Ir / task",
            "Ir / chunk",
            "per task vs mp.Pool.map, same chunking",
            "per chunk vs the same",
        ),
        (
            (
                f"**{r['key']}**" if r["key"].startswith("forklift") else r["key"],
                fmt(r["tasks"], 0),
                fmt(r["chunks"], 0),
                fmt(r["ir_full"], 0),
                fmt(r["ir_baseline"], 0),
                fmt(r["ir_map"], 0),
                fmt(r["per_task"], 0),
                fmt(r["per_chunk"], 0),
                r["error"] or fmt_x(r["vs_task"]),
                fmt_x(r["vs_chunk"]),
            )
            for r in rows
        ),
        right=range(1, 10),
    )
    notes = [
        f"`f(x) = x*x`, {WORKERS} workers, start method {args.start_method}: {args.n:,} tasks with each "
        f"library's default chunking, {args.chunk_n:,} with `chunksize=1` (what one chunk costs). "
        "Ir = instructions executed by the parent process, all its threads "
        f"(`valgrind --tool=callgrind --trace-children=no`); median of {args.reps} run(s) each.",
        f"Baseline: the same interpreter, pool, {WARM}-item warm-up map, input list and shutdown, "
        "without the big map. Ir of the map = run - baseline; it includes handing out the input, "
        "taking the results back into one list (or iterating them) and freeing that list.",
        "Chunks: forklift's counter of chunks sent in the big map (adaptive sizes); mp.Pool.map: "
        "n / ceil(n/(4·workers)); `chunksize=1`: one per task.",
        "Under valgrind the parent runs ~50x slower while the workers do not; "
        f"the runs took {fmt(sum(r['wall'] for r in rows), 0)} s in all.",
    ]
    return render_report(
        "(l) parent instructions per task and per chunk, under callgrind", table, notes, goal_rows
    )


def main() -> None:
    args = parse_args()
    if args.subject:
        subject(args)
        return
    if args.list:
        print("\n".join(KEYS))
        return
    if shutil.which(args.valgrind) is None:
        raise SystemExit(f"{args.valgrind} not found (apt-get install valgrind)")
    keys = select(KEYS, args.only)
    runs_keys = [k for key in keys for k in (key, f"{key} (baseline)")]
    runs = round_robin(
        runs_keys,
        reps=lambda _: args.reps,
        run=lambda k: count(k.removesuffix(" (baseline)"), k.endswith("(baseline)"), args),
        describe=lambda s: (
            f"{s['ir']:,} Ir, {s['chunks']} chunks, {s['wall']:.1f} s, {s['instrumented']} file(s)"
        ),
    )
    rows = [summarize(key, runs, args) for key in keys]
    add_ratios(rows)
    goal_rows = goals(rows)
    print(report(rows, goal_rows, args))
    write_json(args.json, "callgrind", args, {"rows": rows, "goals": [g.__dict__ for g in goal_rows]})
    log("done")


if __name__ == "__main__":
    main()

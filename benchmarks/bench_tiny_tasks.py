"""Figure (a): 200,000 tiny tasks f(x) = x*x, forklift against the anchors in one run.

No chunksize or batch size is given anywhere: the figure compares defaults.
Each pool is created and warmed with one small call first; only the call
itself is timed (results consumed fully) and checked against the serial answer.

The project's goal: every forklift call is no slower than multiprocessing.Pool.map,
which makes it at least 10x faster than every other anchor's default.
"""

from __future__ import annotations

import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))  # workers import _tasks by name

import _tasks
from _common import (
    WORKERS,
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
from _pools import CASES, measure

KEYS = (
    "serial",
    "forklift.Pool.map",
    "forklift.Pool.imap_unordered",
    "forklift.Executor.map",
    "mp.Pool.map",
    "mp.Pool.imap_unordered",
    "PPE.map",
    "loky.map",
    "mpire.map",
    "pebble.map",
    "joblib",
)
# chunksize=1 by default: about 8 s (mp imap_unordered), 30-45 s (PPE), 35 s (pebble)
# and 60-80 s (loky) for 200,000 tasks on the reference machine.
SLOW = ("mp.Pool.imap_unordered", "PPE.map", "loky.map", "pebble.map")
BASELINE = "mp.Pool.map"
GOAL_FACTOR = 10.0


def parse_args():
    parser = base_parser(__doc__.split("\n\n")[0], epilog=__doc__.split("\n\n", 1)[1])
    parser.add_argument("--n", type=int, default=200_000, help="number of tasks (default 200000)")
    parser.add_argument("--reps", type=int, default=3, help="timed calls per case (default 3)")
    parser.add_argument(
        "--slow-reps", type=int, default=1, help=f"timed calls for the slow anchors {SLOW} (default 1)"
    )
    parser.add_argument(
        "--warm", type=int, default=100, help="items in the untimed warm-up call (default 100)"
    )
    return parser.parse_args()


def run_once(key: str, xs: list[int], expected: list[int], args) -> dict:
    """One timed call of one case on a freshly created and warmed pool."""
    case = CASES[key]
    seconds, ok = measure(
        case,
        _tasks.square,
        xs,
        workers=WORKERS,
        warm=xs[: args.warm],
        check=lambda got: case.same_results(got, expected),
    )
    return {"seconds": seconds, "correct": ok}


def summarize(key: str, run: dict) -> dict:
    seconds = [s["seconds"] for s in run["samples"]]
    return {
        "key": key,
        "label": CASES[key].label,
        "reps": len(seconds),
        "seconds": seconds,
        "median": median(seconds),
        "correct": bool(seconds) and all(s["correct"] for s in run["samples"]),
        "error": run["error"],
    }


def add_ratios(rows: list[dict]) -> None:
    """``vs_baseline`` for every row, ``vs_forklift_best`` for every non-forklift row."""
    by_key = {r["key"]: r for r in rows}
    base = by_key.get(BASELINE, {}).get("median")
    best = min((r["median"] for r in rows if CASES[r["key"]].is_forklift and r.get("median")), default=None)
    for r in rows:
        r["vs_baseline"] = ratio(r.get("median"), base)
        r["vs_forklift_best"] = None if CASES[r["key"]].is_forklift else ratio(r.get("median"), best)


def goals(rows: list[dict]) -> list[Goal]:
    """Per forklift call: no slower than mp.Pool.map, and >= 10x faster than each other anchor."""
    others = [r for r in rows if r["key"] not in ("serial", BASELINE) and not CASES[r["key"]].is_forklift]
    others = [r for r in others if r.get("median")]
    out = []
    for r in rows:
        if not CASES[r["key"]].is_forklift:
            continue
        vs = r.get("vs_baseline")
        out.append(
            Goal(f"`{r['key']}` no slower than `{BASELINE}`", fmt_x(vs), None if vs is None else vs <= 1.0)
        )
        if others and r.get("median"):
            closest = min(others, key=lambda o: o["median"])
            factor = closest["median"] / r["median"]
            out.append(
                Goal(
                    f"`{r['key']}` >= {GOAL_FACTOR:.0f}x faster than every other anchor ({len(others)} measured)",
                    f"closest: `{closest['key']}` {fmt_x(factor)}",
                    factor >= GOAL_FACTOR,
                )
            )
    return out


def report(rows: list[dict], goal_rows: list[Goal], args) -> str:
    table = markdown_table(
        (
            "case",
            "reps",
            "median s",
            "min s",
            "max s",
            "µs/task",
            f"vs {BASELINE}",
            "anchor / forklift best",
            "results",
        ),
        (
            (
                r["label"],
                r["reps"],
                fmt_s(r.get("median")),
                fmt_s(min(r["seconds"], default=None)),
                fmt_s(max(r["seconds"], default=None)),
                fmt(r["median"] / args.n * 1e6 if r.get("median") else None, 2),
                fmt_x(r.get("vs_baseline")),
                fmt_x(r.get("vs_forklift_best")),
                r["error"] or ("ok" if r["correct"] else "**WRONG**"),
            )
            for r in rows
        ),
        right=range(1, 8),
    )
    skipped = [k for k in KEYS if k not in {r["key"] for r in rows}]
    notes = [
        f"{args.n:,} tasks `f(x) = x*x`; median of {args.reps} timed calls per case, "
        f"{args.slow_reps} for the slow chunksize=1 anchors ({', '.join(SLOW)}); cases run round-robin.",
        "Each timed call gets a fresh pool; its creation and a warm-up call are not timed. Start methods are each library's default "
        "(forklift: forkserver; the others: fork, loky: its own fork+exec).",
        "`anchor / forklift best` = the anchor's median / the fastest forklift call's median.",
    ]
    if skipped:
        notes.append(f"Not run: {', '.join(skipped)} (--quick or --only).")
    return render_report(
        f"(a) {args.n:,} tiny tasks: forklift vs the anchors, default chunking", table, notes, goal_rows
    )


def main() -> None:
    args = parse_args()
    if args.list:
        print("\n".join(f"{k}{' (slow)' if k in SLOW else ''}" for k in KEYS))
        return
    keys = select(KEYS, args.only, skip=SLOW if args.quick else ())
    xs = list(range(args.n))
    expected = [_tasks.square(x) for x in xs]
    runs = round_robin(
        keys,
        reps=lambda key: args.slow_reps if key in SLOW else args.reps,
        run=lambda key: run_once(key, xs, expected, args),
        describe=lambda s: f"{s['seconds']:.3f} s{'' if s['correct'] else ', WRONG results'}",
    )
    rows = [summarize(key, runs[key]) for key in keys]
    add_ratios(rows)
    goal_rows = goals(rows)
    print(report(rows, goal_rows, args))
    write_json(args.json, "tiny_tasks", args, {"rows": rows, "goals": [g.__dict__ for g in goal_rows]})


if __name__ == "__main__":
    main()

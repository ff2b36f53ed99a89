"""Figure (d): 10,000 tiny tasks submitted one call at a time, forklift against the anchors.

The pattern of the tutorial's ProcessPoolExecutor example: a list comprehension of
``submit(f, x)`` (or ``apply_async`` / ``schedule``), then every result. Each pool is
created and warmed first; only the submits and the results are timed and checked.
joblib has no single-task API and is not in this figure.
"""

from __future__ import annotations

import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))  # workers import _tasks by name

import _tasks
from _common import (
    WORKERS,
    base_parser,
    command_line,
    fmt_s,
    fmt_x,
    header,
    markdown_table,
    median,
    ratio,
    round_robin,
    select,
    write_json,
)
from _pools import SUBMIT_CASES, measure

BASELINE = "PPE.submit"


def main() -> None:
    parser = base_parser(__doc__.split("\n\n")[0], epilog=__doc__.split("\n\n", 1)[1])
    parser.add_argument("--n", type=int, default=10_000, help="number of tasks (default 10000)")
    parser.add_argument("--reps", type=int, default=3, help="timed calls per case (default 3)")
    args = parser.parse_args()
    keys = select(list(SUBMIT_CASES), args.only)
    if args.list:
        print("\n".join(keys))
        return
    xs = list(range(args.n))
    expected = [_tasks.square(x) for x in xs]

    def run_once(key: str) -> dict:
        seconds, ok = measure(
            SUBMIT_CASES[key], _tasks.square, xs, workers=WORKERS, warm=xs[:50], check=expected.__eq__
        )
        return {"seconds": seconds, "correct": ok}

    runs = round_robin(
        keys, reps=lambda _: args.reps, run=run_once, describe=lambda s: f"{s['seconds']:.3f} s"
    )
    rows = []
    for key in keys:
        seconds = [s["seconds"] for s in runs[key]["samples"]]
        ok = bool(seconds) and all(s["correct"] for s in runs[key]["samples"])
        rows.append({"key": key, "median": median(seconds), "correct": ok, "error": runs[key]["error"]})
    base = next((r["median"] for r in rows if r["key"] == BASELINE), None)
    table = markdown_table(
        ("case", "median s", "tasks/s", f"time vs {BASELINE}", "results"),
        (
            (
                SUBMIT_CASES[r["key"]].label,
                fmt_s(r["median"]),
                f"{args.n / r['median']:,.0f}" if r["median"] else "-",
                fmt_x(ratio(r["median"], base)),
                r["error"] or ("ok" if r["correct"] else "**WRONG**"),
            )
            for r in rows
        ),
        right=range(1, 4),
    )
    print(header(f"(d) {args.n:,} tiny tasks submitted one at a time", command_line()))
    print(table)
    print(
        f"\n* `f(x) = x*x`; median of {args.reps} timed calls per case, round-robin; fresh warmed pool each."
    )
    write_json(args.json, "submit", args, {"rows": rows})


if __name__ == "__main__":
    main()

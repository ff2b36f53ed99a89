"""Figure (j): what a journal costs a pool, side by side in one run.

Two pools of 2 workers live for the whole run, one with ``journal=`` and one
without; each case runs on both, round-robin, the call timed alone (pool start
and a warm-up call not timed). Cases: 200,000 tiny tasks (figure (a)'s map, the
worst case for any per-task bookkeeping), the same as a lazy imap_unordered,
and 400 CPU tasks of ~5 ms. The journal file is in a fresh temporary directory
and deleted at the end; its size is reported.

The issue's goal: a journal costs < 5% on the tiny-task benchmark.
"""

from __future__ import annotations

import os
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent))  # workers import _tasks by name

import _tasks
import forklift
from _common import (
    WORKERS,
    Goal,
    base_parser,
    command_line,
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

CASES = ("tiny map", "tiny imap_unordered", "cpu map")


def run_case(case: str, pool: forklift.Pool, n: int, burn: int) -> float:
    t0 = time.perf_counter()
    if case == "tiny map":
        out = pool.map(_tasks.square, range(n))
        assert out[-1] == (n - 1) ** 2
    elif case == "tiny imap_unordered":
        total = sum(pool.imap_unordered(_tasks.square, range(n)))
        assert total == sum(x * x for x in range(n))
    else:
        out = pool.map(_tasks.burn, [burn] * 400)
        assert len(out) == 400
    return time.perf_counter() - t0


def main() -> None:
    parser = base_parser(__doc__.split("\n\n")[0], epilog=__doc__.split("\n\n", 1)[1])
    parser.add_argument("--n", type=int, default=200_000, help="tiny tasks per call (default 200000)")
    parser.add_argument("--reps", type=int, default=9, help="rounds (default 9)")
    args = parser.parse_args()
    if args.list:
        print("\n".join(CASES))
        return
    cases = select(CASES, args.only)
    reps = 3 if args.quick else args.reps
    # ~5 ms of burn(): calibrate on this machine
    t0 = time.perf_counter()
    _tasks.burn(200_000)
    burn = int(200_000 * 0.005 / (time.perf_counter() - t0))
    work = tempfile.mkdtemp(prefix="bench_journal.")
    db = os.path.join(work, "run.db")
    with forklift.Pool(WORKERS) as plain, forklift.Pool(WORKERS, journal=db) as journaled:
        pools = {"without": plain, "with journal": journaled}
        for pool in pools.values():
            pool.map(_tasks.square, range(10_000))
            pool.map(_tasks.burn, [burn] * 8)
        keys = [f"{case} | {name}" for case in cases for name in pools]

        def one(key: str) -> dict[str, Any]:
            case, name = key.split(" | ")
            return {"seconds": run_case(case, pools[name], args.n, burn)}

        runs = round_robin(keys, lambda k: reps, one, lambda s: f"{s['seconds']:.4f} s")
    size = sum(os.path.getsize(os.path.join(work, f)) for f in os.listdir(work))
    for f in os.listdir(work):
        os.remove(os.path.join(work, f))
    os.rmdir(work)
    rows, goals = [], []
    for case in cases:
        base = median([s["seconds"] for s in runs[f"{case} | without"]["samples"]])
        withj = median([s["seconds"] for s in runs[f"{case} | with journal"]["samples"]])
        r = ratio(withj, base)
        rows.append((case, fmt_s(base), fmt_s(withj), fmt_x(r)))
        if case == "tiny map":
            goals.append(
                Goal("journal costs < 5% on 200,000 tiny tasks", fmt_x(r), None if r is None else r < 1.05)
            )
    text = "\n\n".join(
        [
            header("(j) the journal's cost", command_line()),
            f"{args.n:,} tiny tasks `x*x`; 400 tasks of ~5 ms; median of {reps} rounds, seconds per call.",
            markdown_table(("case", "without", "with journal", "ratio"), rows, right=(1, 2, 3)),
            f"Journal file after the run: {size / 1e6:.1f} MB (WAL included).",
            goals_table(goals),
        ]
    )
    print(text)
    write_json(args.json, "bench_journal", args, {"runs": runs, "journal_bytes": size})


if __name__ == "__main__":
    main()

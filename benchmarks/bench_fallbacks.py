"""Figure (q): what each FORKLIFT_WITHOUT fallback costs, against forklift with every Linux feature.

forklift keeps a fallback for memfd, pidfd, prctl and /proc (docs/architecture.md,
"Platforms"); ``FORKLIFT_WITHOUT`` switches the feature off. Each measurement runs in
a fresh interpreter (this script, started again with --child) with the variable set,
and times four things a pool does, all on 2 forkserver workers:

- start:   create the pool, get one trivial result, shut it down (close + join);
- tiny:    map(abs, range(20,000)) on a started pool;
- big:     apply(numpy.copy, (a 64 MiB float64 array,)): the argument goes out and the
           result comes back (by descriptor with /proc; in the pickle stream without);
- timeout: apply(time.sleep, (10,), timeout=0.2): time until TaskTimeout, which
           includes killing the worker's tree (/proc or psutil) and replacing it.

Runs go round-robin over the cases; the table gives medians and each case's ratio to
the default (every feature on). Progress goes to stderr, the report to stdout.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

from _common import base_parser, fmt_s, fmt_x, log, markdown_table, median, ratio, render_report, write_json

CASES = {"default": "", "memfd": "memfd", "pidfd": "pidfd", "prctl": "prctl", "proc": "proc", "all": "all"}
METRICS = ("start", "tiny", "big", "timeout")
BIG_BYTES = 64 << 20


def child() -> None:
    """One measurement of every metric, printed as one JSON line."""
    import numpy as np

    import forklift

    out = {}
    t0 = time.perf_counter()
    pool = forklift.Pool(2, start_method="forkserver")
    pool.apply(abs, (-1,))
    pool.close()
    pool.join()
    out["start"] = time.perf_counter() - t0
    with forklift.Pool(2, start_method="forkserver") as pool:
        pool.map(abs, range(100))  # both workers up
        t0 = time.perf_counter()
        pool.map(abs, range(20_000))
        out["tiny"] = time.perf_counter() - t0
        big = np.ones(BIG_BYTES // 8)
        pool.apply(np.copy, (big[:1000],))
        t0 = time.perf_counter()
        back = pool.apply(np.copy, (big,))
        out["big"] = time.perf_counter() - t0
        assert back.nbytes == BIG_BYTES
        del back
        t0 = time.perf_counter()
        try:
            pool.apply(time.sleep, (10,), timeout=0.2)
        except forklift.errors.TaskTimeout:
            out["timeout"] = time.perf_counter() - t0
    print(json.dumps(out), flush=True)


def measure(features: str) -> dict[str, float]:
    env = {**os.environ, "FORKLIFT_WITHOUT": features}
    done = subprocess.run(
        [sys.executable, __file__, "--child"], capture_output=True, text=True, env=env, timeout=120
    )
    if done.returncode != 0:
        raise RuntimeError(done.stderr[-2000:])
    return json.loads(done.stdout.splitlines()[-1])


def main() -> None:
    parser = base_parser(__doc__.splitlines()[0])
    parser.add_argument("--child", action="store_true", help=argparse_suppress())
    parser.add_argument("--reps", type=int, default=7, help="rounds over the cases (default 7)")
    args = parser.parse_args()
    if args.child:
        child()
        return
    keys = list(CASES)
    if args.list:
        print("\n".join(keys))
        return
    if args.only:
        keys = [k for k in keys if k in args.only.split(",") or k == "default"]
    reps = 3 if args.quick else args.reps
    samples: dict[str, list[dict[str, float]]] = {k: [] for k in keys}
    for rnd in range(reps):
        shift = rnd % len(keys)
        for key in keys[shift:] + keys[:shift]:
            samples[key].append(measure(CASES[key]))
        log(f"round {rnd + 1}/{reps} done")
    medians = {k: {m: median([s[m] for s in samples[k] if m in s]) for m in METRICS} for k in keys}
    rows = []
    for key in keys:
        cells = []
        for m in METRICS:
            value = medians[key][m]
            cells.append(
                f"{fmt_s(value)} s"
                if key == "default"
                else f"{fmt_s(value)} s ({fmt_x(ratio(value, medians['default'][m]))})"
            )
        rows.append([f"FORKLIFT_WITHOUT={CASES[key]}" if CASES[key] else "every feature (default)", *cells])
    table = markdown_table(
        ["switch", "start", "tiny map (20k)", "64 MiB out and back", "timeout 0.2 s"], rows
    )
    notes = [
        f"medians of {reps} fresh interpreters per case, round-robin; ratios to the default in the same run",
        "big: with /proc the array crosses by descriptor both ways; without, in the pickle stream",
    ]
    print(render_report("Figure (q): the cost of each fallback", table, notes, None))
    write_json(args.json, "fallbacks", args, {"samples": samples, "medians": medians})


def argparse_suppress() -> str:
    import argparse

    return argparse.SUPPRESS


if __name__ == "__main__":
    main()

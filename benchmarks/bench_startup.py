"""Figure (c): pool start-up, forklift against the anchors in one run.

Each measurement runs in a fresh interpreter (this script, started again with
--child): import the library (timed on its own), create a pool of 2 workers,
run one trivial task and get its result, then shut the pool down gracefully
(close + join, or shutdown(wait=True)). Runs go round-robin over the cases.

The fair comparison is forklift against multiprocessing.Pool with the SAME start
method: forklift's default is forkserver (safe with threads; Python 3.14's default
too), while the standard library's default on Linux before 3.14 is fork.
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
import time
from dataclasses import dataclass
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))  # workers import _tasks by name

import _tasks
from _common import (
    WORKERS,
    base_parser,
    fmt,
    fmt_x,
    log,
    markdown_table,
    median,
    ratio,
    render_report,
    select,
    timed,
    write_json,
)
from _pools import CASES


@dataclass(frozen=True)
class Start:
    key: str
    case: str  # the key in _pools.CASES whose library and call are used
    start_method: str | None  # None: the library's own
    label: str


STARTS = {
    s.key: s
    for s in (
        *(Start(f"mp.Pool:{m}", "mp.Pool.map", m, f"mp.Pool {m}") for m in ("fork", "forkserver", "spawn")),
        *(
            Start(f"forklift.Pool:{m}", "forklift.Pool.map", m, f"**forklift Pool {m}**")
            for m in ("fork", "forkserver", "spawn")
        ),
        Start("PPE:fork", "PPE.map", "fork", "ProcessPoolExecutor fork (workers start at first submit)"),
        Start("loky", "loky.map", None, "loky get_reusable_executor (fork+exec)"),
        Start("mpire", "mpire.map", None, "mpire WorkerPool(keep_alive=True) + stop_and_join()"),
        Start("pebble", "pebble.map", None, "pebble ProcessPool + close(); join()"),
        Start("joblib", "joblib", None, "joblib Parallel(n_jobs=2) + loky executor shutdown()"),
    )
}
MP_FORK = "mp.Pool:fork"


def parse_args() -> argparse.Namespace:
    parser = base_parser(__doc__.split("\n\n")[0], epilog=__doc__.split("\n\n", 1)[1])
    parser.add_argument("--runs", type=int, help="fresh interpreters per case (default 7; 3 with --quick)")
    parser.add_argument("--timeout", type=float, default=60.0, help="seconds before a run counts as a hang")
    parser.add_argument("--child", metavar="KEY", help=argparse.SUPPRESS)  # one measurement, JSON on stdout
    args = parser.parse_args()
    if args.runs is None:
        args.runs = 3 if args.quick else 7
    return args


# -- one measurement, in the fresh interpreter ---------------------------------------------------
def measure_once(key: str) -> dict:
    start = STARTS[key]
    case = CASES[start.case]
    import_s, _ = timed(case.library.load)
    t0 = time.perf_counter()
    pool = case.library.open(WORKERS, start.start_method)
    result = case.run(pool, _tasks.identity, [42])
    t1 = time.perf_counter()
    case.library.close(pool)
    t2 = time.perf_counter()
    return {"import": import_s, "first_result": t1 - t0, "shutdown": t2 - t1, "correct": result == [42]}


# -- the driver ----------------------------------------------------------------------------------------
def run_child(key: str, timeout: float) -> dict:
    """Start a fresh interpreter for one measurement; add its whole lifetime as ``interpreter``."""
    cmd = [sys.executable, str(Path(__file__).resolve()), "--child", key]
    start = time.perf_counter()
    try:
        proc = subprocess.run(cmd, capture_output=True, text=True, timeout=timeout)
    except subprocess.TimeoutExpired:
        return {"error": f"HANG (> {timeout:g} s)"}
    wall = time.perf_counter() - start
    lines = proc.stdout.strip().splitlines()
    if proc.returncode != 0 or not lines:
        last = (proc.stderr.strip().splitlines() or ["no output"])[-1]
        return {"error": f"exit {proc.returncode}: {last}"}
    return {**json.loads(lines[-1]), "interpreter": wall}


def compile_forklift() -> None:
    """Byte-compile forklift's sources, as pip does for the anchors in site-packages.

    An editable install has no .pyc files, and where PYTHONDONTWRITEBYTECODE is
    set (it is on this project's machines) every fresh interpreter, fork server
    and spawned worker would compile forklift from source, a cost no installed
    user pays.
    """
    import compileall

    import forklift

    compileall.compile_dir(str(Path(forklift.__file__).parent), quiet=1)


def run_all(keys: list[str], args: argparse.Namespace) -> dict[str, list[dict]]:
    compile_forklift()
    runs: dict[str, list[dict]] = {k: [] for k in keys}
    for i in range(args.runs):
        for key in keys:
            m = run_child(key, args.timeout)
            runs[key].append(m)
            shown = m.get("error") or f"{(m['first_result'] + m['shutdown']) * 1e3:.1f} ms"
            log(f"run {i + 1}/{args.runs}: {key}: {shown}")
    return runs


def summarize(key: str, measurements: list[dict]) -> dict:
    ok = [m for m in measurements if "error" not in m and m["correct"]]

    def ms(field: str) -> float | None:
        return median([m[field] * 1e3 for m in ok]) if ok else None

    errors = sorted({m.get("error") or "wrong result" for m in measurements if m not in ok})
    return {
        "key": key,
        "label": STARTS[key].label,
        "start_method": STARTS[key].start_method,
        "import_ms": ms("import"),
        "first_result_ms": ms("first_result"),
        "shutdown_ms": ms("shutdown"),
        "total_ms": median([(m["first_result"] + m["shutdown"]) * 1e3 for m in ok]) if ok else None,
        "interpreter_ms": ms("interpreter"),
        "runs_ok": len(ok),
        "runs": len(measurements),
        "errors": errors,
        "raw": measurements,
    }


def add_ratios(rows: list[dict]) -> None:
    """Totals against mp.Pool fork, and (for mp.Pool and forklift) against mp.Pool with the same method."""
    by_key = {r["key"]: r for r in rows}
    fork_total = by_key.get(MP_FORK, {}).get("total_ms")
    for r in rows:
        r["vs_mp_fork"] = ratio(r["total_ms"], fork_total)
        same = (
            by_key.get(f"mp.Pool:{r['start_method']}")
            if r["key"].split(":")[0] in ("mp.Pool", "forklift.Pool")
            else None
        )
        r["first_vs_same"] = ratio(r["first_result_ms"], same and same["first_result_ms"])
        r["total_vs_same"] = ratio(r["total_ms"], same and same["total_ms"])


def report(rows: list[dict], args: argparse.Namespace) -> str:
    table = markdown_table(
        (
            "case",
            "import ms",
            "create → first result ms",
            "graceful shutdown ms",
            "**total ms**",
            "first result vs mp.Pool, same method",
            "**total vs mp.Pool, same method**",
            "total vs mp.Pool fork",
            "interpreter start → exit ms",
            "runs ok",
        ),
        (
            (
                r["label"],
                fmt(r["import_ms"], 1),
                fmt(r["first_result_ms"], 1),
                fmt(r["shutdown_ms"], 1),
                fmt(r["total_ms"], 1),
                fmt_x(r["first_vs_same"]),
                fmt_x(r["total_vs_same"]),
                fmt_x(r["vs_mp_fork"]),
                fmt(r["interpreter_ms"], 1),
                f"{r['runs_ok']}/{r['runs']}" + (f" ({'; '.join(r['errors'])})" if r["errors"] else ""),
            )
            for r in rows
        ),
        right=range(1, 10),
    )
    notes = [
        f"Median of {args.runs} fresh interpreters per case, run round-robin; {WORKERS} workers; "
        "one trivial task (`identity(42)`) through each library's map.",
        "total = create → first result + graceful shutdown; the library import is timed apart and not included.",
        "**The fair comparison is forklift against mp.Pool with the same start method** (the 'same method' "
        "columns): forklift's default is forkserver, as Python 3.14's is; the standard library's default "
        "here is fork, which is faster to start but unsafe with threads.",
    ]
    return render_report(
        "(c) pool start-up: create 2 workers, first result, graceful shutdown", table, notes, None
    )


def main() -> None:
    args = parse_args()
    if args.child:
        print(json.dumps(measure_once(args.child)))
        return
    if args.list:
        print("\n".join(STARTS))
        return
    keys = select(list(STARTS), args.only)
    runs = run_all(keys, args)
    rows = [summarize(k, runs[k]) for k in keys]
    add_ratios(rows)
    print(report(rows, args))
    write_json(args.json, "startup", args, {"rows": rows})


if __name__ == "__main__":
    main()

"""Figure (c): a 100 MB numpy array to 2 workers that sum it, and a 100 MB array back, 20 rounds.

Each repetition times 20 rounds on a warm pool of 2 workers:

- **to**: every round hands the same 100 MB float64 array to both workers,
  each returns its sum (40 deliveries of 100 MB per repetition);
- **back**: every round both workers make a 100 MB array and return it.

Cases: multiprocessing.Pool (pickling through pipes), joblib.Parallel (its
default: arrays over 1 MB memory-mapped), the hand-written reference
(multiprocessing.shared_memory blocks the workers attach once; the copy into
the block is timed once per repetition), forklift.Pool with plain arrays (the
automatic shared-memory transport) and forklift.SharedArray (the array made
shared once per repetition, like the reference; for "back" the workers fill
SharedArrays the parent made).

The project's goals, for forklift's automatic transport: >= 10x faster than
multiprocessing.Pool, no slower than joblib, and within 1.5x of the
hand-written shared_memory code.
"""

from __future__ import annotations

import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))  # workers import _array_tasks by name

import multiprocessing
import time
from multiprocessing import shared_memory

import numpy as np

import _array_tasks as T
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

KEYS = ("mp.Pool", "joblib", "shm-ref", "forklift", "forklift-shared")
LABELS = {
    "mp.Pool": "multiprocessing.Pool.map",
    "joblib": "joblib.Parallel (auto-memmap)",
    "shm-ref": "REF: mp.Pool + hand-written shared_memory",
    "forklift": "**forklift.Pool.map, plain arrays**",
    "forklift-shared": "forklift.Pool.map + SharedArray",
}


def parse_args():
    parser = base_parser(__doc__.split("\n\n")[0], epilog=__doc__.split("\n\n", 1)[1])
    parser.add_argument("--mb", type=int, default=100, help="array size in MB (default 100)")
    parser.add_argument("--rounds", type=int, help="rounds per repetition (default 20; 5 with --quick)")
    parser.add_argument("--reps", type=int, help="repetitions (default 3; 1 with --quick)")
    args = parser.parse_args()
    args.rounds = args.rounds or (5 if args.quick else 20)
    args.reps = args.reps or (1 if args.quick else 3)
    return args


class Pools:
    """One warm pool per library, made before timing and kept for the whole run."""

    def __init__(self) -> None:
        from joblib import Parallel

        self.mp = multiprocessing.Pool(WORKERS)
        self.joblib = Parallel(n_jobs=WORKERS)
        self.joblib.__enter__()
        self.forklift = forklift.Pool(WORKERS)
        small = np.ones(10)
        self.mp.map(T.total, [small] * 4)
        self.forklift.map(T.total, [small] * 4)
        self.joblib(self._delayed(T.total)(small) for _ in range(4))

    @staticmethod
    def _delayed(fn):
        from joblib import delayed

        return delayed(fn)

    def close(self) -> None:
        self.mp.terminate()
        self.joblib.__exit__(None, None, None)
        self.forklift.terminate()


def run_to(key: str, pools: Pools, arr, rounds: int) -> float:
    """Seconds for ``rounds`` rounds of "both workers sum arr"; checks the sums."""
    want = float(arr.sum())
    start = time.perf_counter()
    if key == "mp.Pool":
        outs = [pools.mp.map(T.total, [arr, arr]) for _ in range(rounds)]
    elif key == "joblib":
        d = pools._delayed(T.total)
        outs = [pools.joblib(d(arr) for _ in range(2)) for _ in range(rounds)]
    elif key == "shm-ref":
        shm = shared_memory.SharedMemory(create=True, size=arr.nbytes)
        try:
            np.ndarray(arr.shape, arr.dtype, buffer=shm.buf)[:] = arr
            job = [(shm.name, arr.size)] * 2
            outs = [pools.mp.starmap(T.shm_total, job) for _ in range(rounds)]
        finally:
            shm.close()
            shm.unlink()
    elif key == "forklift":
        outs = [pools.forklift.map(T.total, [arr, arr]) for _ in range(rounds)]
    else:
        with forklift.SharedArray.from_array(arr) as shared:
            outs = [pools.forklift.map(T.total, [shared, shared]) for _ in range(rounds)]
            del shared
    seconds = time.perf_counter() - start
    if any(out != [want, want] for out in outs):
        raise AssertionError(f"{key}: wrong sums")
    return seconds


def run_back(key: str, pools: Pools, n: int, rounds: int) -> float:
    """Seconds for ``rounds`` rounds of "both workers return a new n-element array"."""
    start = time.perf_counter()
    firsts = []
    if key == "mp.Pool":
        for r in range(rounds):
            firsts.append([a[-1] for a in pools.mp.starmap(T.make, [(r, n), (r + 1, n)])])
    elif key == "joblib":
        d = pools._delayed(T.make)
        for r in range(rounds):
            firsts.append([a[-1] for a in pools.joblib(d(v, n) for v in (r, r + 1))])
    elif key == "shm-ref":
        blocks = [shared_memory.SharedMemory(create=True, size=n * 8) for _ in range(2)]
        try:
            views = [np.ndarray((n,), np.float64, buffer=b.buf) for b in blocks]
            for r in range(rounds):
                pools.mp.starmap(T.shm_fill, [(blocks[0].name, n, r), (blocks[1].name, n, r + 1)])
                firsts.append([v[-1] for v in views])
            del views
        finally:
            for b in blocks:
                b.close()
                b.unlink()
    elif key == "forklift":
        for r in range(rounds):
            firsts.append([a[-1] for a in pools.forklift.starmap(T.make, [(r, n), (r + 1, n)])])
    else:
        outs = [forklift.SharedArray((n,)) for _ in range(2)]
        for r in range(rounds):
            pools.forklift.starmap(T.fill, [(outs[0], r), (outs[1], r + 1)])
            firsts.append([o[-1] for o in outs])
        for o in outs:
            o.close()
    seconds = time.perf_counter() - start
    if firsts != [[r, r + 1] for r in range(rounds)]:
        raise AssertionError(f"{key}: wrong arrays back")
    return seconds


def summarize(keys, runs, rounds):
    rows = {}
    for key in keys:
        samples = runs[key]["samples"]
        rows[key] = {
            "label": LABELS[key],
            "samples": samples,
            "median": median(samples),
            "min": min(samples, default=None),
            "max": max(samples, default=None),
            "error": runs[key]["error"],
        }
    base, ref = rows.get("mp.Pool", {}).get("median"), rows.get("shm-ref", {}).get("median")
    for row in rows.values():
        m = row["median"]
        row["ms_round"] = m / rounds * 1e3 if m else None
        row["vs_mp"] = ratio(base, m)
        row["vs_ref"] = ratio(m, ref)
    return rows


def table(rows) -> str:
    return markdown_table(
        ("case", "median s", "min s", "max s", "ms/round", "speedup vs mp.Pool", "time vs shm ref"),
        (
            (
                r["label"],
                fmt_s(r["median"]),
                fmt_s(r["min"]),
                fmt_s(r["max"]),
                fmt_s(r["ms_round"]),
                fmt_x(r["vs_mp"]),
                fmt_x(r["vs_ref"]),
            )
            if not r["error"]
            else (r["label"], r["error"], "", "", "", "", "")
            for r in rows.values()
        ),
        right=range(1, 7),
    )


def goals(direction: str, rows) -> list[Goal]:
    out = []
    for key in ("forklift", "forklift-shared"):
        r = rows.get(key)
        if not r or not r["median"]:
            continue
        name = f"{direction}: `{LABELS[key].strip('*')}`"
        if r["vs_mp"] is not None:
            out.append(Goal(f"{name} >= 10x multiprocessing.Pool", fmt_x(r["vs_mp"]), r["vs_mp"] >= 10))
        jl = rows.get("joblib", {}).get("median")
        if jl:
            out.append(
                Goal(
                    f"{name} no slower than joblib",
                    f"{fmt_s(r['median'])} s vs {fmt_s(jl)} s",
                    r["median"] <= jl,
                )
            )
        if r["vs_ref"] is not None:
            out.append(
                Goal(f"{name} within 1.5x of the shm reference", fmt_x(r["vs_ref"]), r["vs_ref"] <= 1.5)
            )
    return out


def main() -> None:
    args = parse_args()
    keys = select(KEYS, args.only, skip=("mp.Pool",) if args.quick else ())
    if args.list:
        print("\n".join(KEYS))
        return
    n = args.mb * 1_000_000 // 8
    arr = np.random.default_rng(0).random(n)
    pools = Pools()
    try:
        to = round_robin(keys, lambda k: args.reps, lambda k: run_to(k, pools, arr, args.rounds), fmt_s)
        back = round_robin(keys, lambda k: args.reps, lambda k: run_back(k, pools, n, args.rounds), fmt_s)
    finally:
        pools.close()
    rows_to, rows_back = summarize(keys, to, args.rounds), summarize(keys, back, args.rounds)
    print(header(f"Big arrays: {args.mb} MB to 2 workers and back, {args.rounds} rounds", command_line()))
    print(f"### To the workers (each round: both workers sum the array), median of {args.reps}\n")
    print(table(rows_to))
    print(f"\n### Back from the workers (each round: both return a new array), median of {args.reps}\n")
    print(table(rows_back))
    print("\n### Goals\n")
    print(goals_table(goals("to", rows_to) + goals("back", rows_back)))
    write_json(args.json, "big_arrays", args, {"to": rows_to, "back": rows_back})


if __name__ == "__main__":
    main()

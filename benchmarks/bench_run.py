"""Figure (h): `forklift run` against xargs -P and GNU parallel, in one run.

Three measurements, each run round-robin over the tools so drift hits all alike:

* per-job overhead: 2,000 jobs of `true`, 2 at a time (wall time / jobs, start-up
  included, as GNU parallel's man page counts it);
* grouped output: 1,000 jobs that each print 10 lines, 2 at a time; the output
  (to a file) is checked for jobs whose lines were split by another job's;
* timeout precision: `sleep 5` with a 0.3 s timeout; how long the job really ran
  (the joblog's JobRuntime) and how late the kill was.

Every tool reads its arguments from the same stdin file. xargs execs `true`
directly (no shell); the `xargs sh -c` row pays one dash per job like forklift
(which runs every job with /bin/sh -c). GNU parallel runs as users run it, with
its default shell ($SHELL, bash here).
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent))

from _common import (
    Goal,
    base_parser,
    command_line,
    fmt,
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

FORKLIFT = [sys.executable, "-m", "forklift", "run"]
PARALLEL = shutil.which("parallel")
EMIT10 = "for i in 1 2 3 4 5 6 7 8 9 10; do echo job {} line $i; done"

TINY = {
    "forklift": [*FORKLIFT, "-j2", "true"],
    "xargs": ["xargs", "-P2", "-n1", "true"],
    "xargs-sh": ["xargs", "-P2", "-n1", "sh", "-c", "true"],
    "parallel": [PARALLEL or "parallel", "--will-cite", "-j2", "true"],
}
GROUPED = {
    "forklift": [*FORKLIFT, "-j2", EMIT10],
    "xargs": ["xargs", "-P2", "-I{}", "sh", "-c", EMIT10],
    "parallel": [PARALLEL or "parallel", "--will-cite", "-j2", EMIT10],
}
TIMEOUT = {
    "forklift": [*FORKLIFT, "--timeout", "0.3"],
    "parallel": [PARALLEL or "parallel", "--will-cite", "--timeout", "0.3"],
}


def run_tool(command: list[str], inputs: Path, out: Path) -> float:
    with open(inputs, "rb") as stdin, open(out, "wb") as stdout:
        t0 = time.perf_counter()
        proc = subprocess.run(command, stdin=stdin, stdout=stdout, stderr=subprocess.PIPE, timeout=600)
        wall = time.perf_counter() - t0
    if proc.returncode != 0:
        raise RuntimeError(f"{command[0]} exited {proc.returncode}: {proc.stderr[-300:]!r}")
    return wall


def split_jobs(path: Path) -> int:
    """Jobs whose 10 lines are not one contiguous, ordered block."""
    lines = path.read_text().splitlines()
    blocks: dict[str, list[int]] = {}
    position: dict[str, list[int]] = {}
    for index, line in enumerate(lines):
        _, job, _, n = line.split()
        blocks.setdefault(job, []).append(int(n))
        position.setdefault(job, []).append(index)
    return sum(
        1
        for job, ns in blocks.items()
        if ns != list(range(1, 11)) or position[job] != list(range(position[job][0], position[job][0] + 10))
    )


def timeout_sample(tool: str, work: Path) -> dict[str, Any]:
    log_file = work / f"{tool}.joblog"
    log_file.unlink(missing_ok=True)
    command = [*TIMEOUT[tool], "--joblog", str(log_file), "sleep", ":::", "5"]
    t0 = time.perf_counter()
    subprocess.run(command, capture_output=True, timeout=60)
    wall = time.perf_counter() - t0
    row = log_file.read_text().splitlines()[1].split("\t")
    return {"runtime": float(row[3]), "late": float(row[3]) - 0.3, "wall": wall}


def main() -> int:
    parser = base_parser(__doc__ or "")
    parser.add_argument("--jobs", type=int, default=2000, help="jobs in the per-job overhead case")
    parser.add_argument("--grouped-jobs", type=int, default=1000, help="jobs in the grouped-output case")
    parser.add_argument("--reps", type=int, default=5)
    args = parser.parse_args()
    keys = ["tiny", "grouped", "timeout"]
    if args.list:
        print("\n".join(keys))
        return 0
    if PARALLEL is None:
        raise SystemExit("GNU parallel is not installed: apt-get install parallel")
    chosen = select(keys, args.only)
    reps = 2 if args.quick else args.reps
    work = Path(tempfile.mkdtemp(prefix="bench_run."))
    tiny_in, grouped_in = work / "tiny.in", work / "grouped.in"
    tiny_in.write_text("".join(f"{i}\n" for i in range(args.jobs)))
    grouped_in.write_text("".join(f"{i}\n" for i in range(args.grouped_jobs)))
    results: dict[str, Any] = {}
    try:
        if "tiny" in chosen:
            results["tiny"] = round_robin(
                list(TINY),
                lambda k: reps,
                lambda k: {"wall": run_tool(TINY[k], tiny_in, work / "out")},
                lambda s: f"{s['wall'] * 1000 / args.jobs:.3f} ms/job",
            )
        if "grouped" in chosen:

            def grouped(key: str) -> dict[str, Any]:
                out = work / f"grouped.{key}"
                wall = run_tool(GROUPED[key], grouped_in, out)
                return {"wall": wall, "split": split_jobs(out)}

            results["grouped"] = round_robin(
                list(GROUPED),
                lambda k: reps,
                grouped,
                lambda s: f"{s['wall'] * 1000 / args.grouped_jobs:.3f} ms/job, {s['split']} split",
            )
        if "timeout" in chosen:
            results["timeout"] = round_robin(
                list(TIMEOUT),
                lambda k: reps,
                lambda k: timeout_sample(k, work),
                lambda s: f"ran {s['runtime']:.3f} s",
            )
    finally:
        shutil.rmtree(work, ignore_errors=True)
    print(report(results, args))
    write_json(args.json, "bench_run", args, {"results": results})
    return 0


def med(results: dict[str, Any], case: str, key: str, field: str) -> float | None:
    samples = results.get(case, {}).get(key, {}).get("samples", [])
    return median([s[field] for s in samples])


def report(results: dict[str, Any], args: Any) -> str:
    parts = [header("(h) forklift run vs xargs -P and GNU parallel", command_line())]
    goals = []
    if "tiny" in results:
        per = {k: (w * 1000 / args.jobs if (w := med(results, "tiny", k, "wall")) else None) for k in TINY}
        rows = [
            (k, fmt(per[k]), fmt_x(ratio(per[k], per["xargs"])), fmt_x(ratio(per["parallel"], per[k])))
            for k in TINY
        ]
        parts.append(
            f"### {args.jobs:,} jobs of `true`, -j2 (median ms per job, start-up included)\n\n"
            + markdown_table(("tool", "ms/job", "vs xargs", "parallel is slower by"), rows, right=(1, 2, 3))
        )
        over = ratio(per["forklift"], per["xargs"])
        faster = ratio(per["parallel"], per["forklift"])
        goals.append(
            Goal("per-job overhead <= 1.3x xargs", fmt_x(over), None if over is None else over <= 1.3)
        )
        goals.append(
            Goal(">= 5x faster than GNU parallel", fmt_x(faster), None if faster is None else faster >= 5)
        )
    if "grouped" in results:
        rows = []
        for k in GROUPED:
            wall = med(results, "grouped", k, "wall")
            splits = [s["split"] for s in results["grouped"][k]["samples"]]
            per_job = wall * 1000 / args.grouped_jobs if wall else None
            split_text = f"{min(splits)}..{max(splits)}" if splits else "-"
            rows.append((k, fmt(per_job), split_text))
        parts.append(
            f"### {args.grouped_jobs:,} jobs printing 10 lines each, -j2, output to a file\n\n"
            + markdown_table(("tool", "ms/job", "jobs split (min..max)"), rows, right=(1,))
        )
        fl = med(results, "grouped", "forklift", "wall")
        gp = med(results, "grouped", "parallel", "wall")
        faster = ratio(gp, fl)
        clean = all(s["split"] == 0 for s in results["grouped"]["forklift"]["samples"])
        goals.append(
            Goal(
                "grouped output: never split, >= 5x faster than GNU parallel",
                f"{fmt_x(faster)}, {'no job split' if clean else 'jobs split!'}",
                None if faster is None else (faster >= 5 and clean),
            )
        )
    if "timeout" in results:
        rows = []
        for k in TIMEOUT:
            samples = results["timeout"][k]["samples"]
            lates = [s["late"] for s in samples]
            rows.append((k, fmt(med(results, "timeout", k, "runtime")), fmt(max(lates) if lates else None)))
        parts.append(
            "### `sleep 5` with `--timeout 0.3`: how long the job ran (joblog JobRuntime)\n\n"
            + markdown_table(("tool", "median s", "latest kill, s after 0.3"), rows, right=(1, 2))
        )
        late = [s["late"] for s in results["timeout"]["forklift"]["samples"]]
        worst = max(late) if late else None
        goals.append(
            Goal(
                "timeout fires within 0.1 s",
                fmt(worst, 3, " s late at worst"),
                None if worst is None else worst <= 0.1,
            )
        )
    parts.append(goals_table(goals))
    load = os.getloadavg()
    parts.append(f"Load average at the end: {load[0]:.2f}, {load[1]:.2f}, {load[2]:.2f}.")
    return "\n\n".join(parts) + "\n"


if __name__ == "__main__":
    raise SystemExit(main())

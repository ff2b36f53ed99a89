"""Run the throughput and start-up benchmarks in sequence and say where their outputs went.

Each script's report (markdown) is shown as it runs and saved as
``<out-dir>/<name>.md``, and its raw results as ``<out-dir>/<name>.json``.
"""

from __future__ import annotations

import argparse
import subprocess
import sys
import time
from pathlib import Path

BENCH_DIR = Path(__file__).resolve().parent
SCRIPTS = (
    "bench_tiny_tasks",
    "bench_cpu_tasks",
    "bench_startup",
    "bench_submit",
    "bench_big_arrays",
    "bench_memory",
)


def parse_args() -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0], epilog=__doc__.split("\n\n", 1)[1])
    parser.add_argument("--quick", action="store_true", help="pass --quick to every script")
    parser.add_argument(
        "--out-dir",
        type=Path,
        default=BENCH_DIR / "results",
        help="where the .md and .json files go (default benchmarks/results)",
    )
    parser.add_argument("--only", metavar="NAMES", help=f"comma-separated subset of {', '.join(SCRIPTS)}")
    return parser.parse_args()


def run_script(name: str, args: argparse.Namespace) -> tuple[int, Path, Path, float]:
    """Run one script: stream its report to the terminal and into ``<name>.md``."""
    md, js = args.out_dir / f"{name}.md", args.out_dir / f"{name}.json"
    cmd = [
        sys.executable,
        str(BENCH_DIR / f"{name}.py"),
        "--json",
        str(js),
        *(["--quick"] if args.quick else []),
    ]
    print(f"\n$ {' '.join(cmd)}", file=sys.stderr, flush=True)
    start = time.perf_counter()
    with md.open("w") as out, subprocess.Popen(cmd, stdout=subprocess.PIPE, text=True) as proc:
        assert proc.stdout is not None
        for line in proc.stdout:
            sys.stdout.write(line)
            out.write(line)
    print(flush=True)  # a blank line between two reports
    return proc.returncode, md, js, time.perf_counter() - start


def main() -> None:
    args = parse_args()
    names = [n.strip() for n in args.only.split(",")] if args.only else list(SCRIPTS)
    unknown = set(names) - set(SCRIPTS)
    if unknown:
        raise SystemExit(f"unknown script(s): {', '.join(sorted(unknown))}")
    args.out_dir.mkdir(parents=True, exist_ok=True)
    done = [(name, *run_script(name, args)) for name in names]
    print("\nOutputs:")
    for name, rc, md, js, seconds in done:
        status = "ok" if rc == 0 else f"FAILED (exit {rc})"
        print(f"- {name}: {status} in {seconds:.0f} s -> {md}, {js}")
    sys.exit(1 if any(rc for _, rc, *_ in done) else 0)


if __name__ == "__main__":
    main()

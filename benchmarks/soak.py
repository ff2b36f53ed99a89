"""The long fault soak, for a person to run before a release: tests/faults/soak.py per start
method, with and without the journal, then a PASS/FAIL table.

    .venv/bin/python benchmarks/soak.py                      # 300 s per run, 6 runs (~32 minutes)
    .venv/bin/python benchmarks/soak.py --seconds 120 --methods fork,spawn --journal on

Runs one at a time (the soak's timing is part of what it tests: do not load the machine
with parallel runs). A run passes when it exits 0 with no finding and nothing leaked; a
failing run's stderr (findings with tracebacks, or every thread's stack on a hang) is kept
in ``--logs`` and its command is printed, to replay it. ``make test`` runs the same program
for 4 s per start method (tests/faults/test_soak.py).
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
import time
from pathlib import Path

SOAK = Path(__file__).resolve().parent.parent / "tests" / "faults" / "soak.py"
COLUMNS = (
    ("calls", "calls"),
    ("items", "items"),
    ("results_ok", "ok"),
    ("kills", "kills"),
    ("interrupted", "ctrl-c"),
    ("cancelled", "cancelled"),
    ("lock_spans", "locks"),
    ("epochs", "epochs"),
)


def run_one(method: str, journal: bool, args: argparse.Namespace) -> tuple[bool, dict, str, list[str]]:
    cmd = [
        sys.executable,
        str(SOAK),
        "--seconds",
        str(args.seconds),
        "--seed",
        str(args.seed),
        "--start-method",
        method,
        *(["--journal"] if journal else []),
    ]
    limit = args.seconds * 1.5 + 180
    try:
        out = subprocess.run(cmd, capture_output=True, text=True, timeout=limit)
        stdout, stderr, code = out.stdout, out.stderr, out.returncode
    except subprocess.TimeoutExpired as exc:
        stdout = exc.stdout.decode(errors="replace") if isinstance(exc.stdout, bytes) else exc.stdout or ""
        stderr = exc.stderr.decode(errors="replace") if isinstance(exc.stderr, bytes) else exc.stderr or ""
        stderr += f"\n(no end after {limit:.0f} s: killed)"
        code = -1
    report: dict = {}
    lines = stdout.strip().splitlines()
    if lines:
        try:
            report = json.loads(lines[-1])
        except json.JSONDecodeError:
            pass
    passed = code == 0 and report.get("findings") == 0 and report.get("leaks") == []
    return passed, report, stderr, cmd


def main() -> int:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--seconds", type=float, default=300.0, help="seconds per run (300)")
    parser.add_argument("--methods", default="fork,forkserver,spawn", help="start methods, comma-separated")
    parser.add_argument("--journal", choices=("both", "on", "off"), default="both")
    parser.add_argument(
        "--seed", type=int, default=int(time.time()) % 100_000, help="(default: from the clock)"
    )
    parser.add_argument(
        "--logs", type=Path, default=Path("/tmp/forklift-soak-logs"), help="failing runs' stderr"
    )
    args = parser.parse_args()
    journals = {"both": (False, True), "on": (True,), "off": (False,)}[args.journal]
    runs = [(m.strip(), j) for m in args.methods.split(",") if m.strip() for j in journals]
    print(f"soak: {len(runs)} runs of {args.seconds:g} s, seed {args.seed}")
    header = f"{'start method':<12} {'journal':<8}" + "".join(f"{t:>10}" for _, t in COLUMNS) + "  result"
    rows = []
    failed = 0
    for method, journal in runs:
        t0 = time.monotonic()
        passed, report, stderr, cmd = run_one(method, journal, args)
        row = f"{method:<12} {'yes' if journal else 'no':<8}" + "".join(
            f"{report.get(key, '-')!s:>10}" for key, _ in COLUMNS
        )
        row += "  PASS" if passed else "  FAIL"
        rows.append(row)
        print(f"{row}   ({time.monotonic() - t0:.0f} s)", flush=True)
        if not passed:
            failed += 1
            args.logs.mkdir(parents=True, exist_ok=True)
            log = args.logs / f"soak-{method}-{'journal' if journal else 'plain'}-{args.seed}.log"
            log.write_text(" ".join(cmd) + "\n\n" + stderr + "\n" + json.dumps(report, indent=1) + "\n")
            for finding in report.get("finding_list", [])[:5]:
                print(f"    {finding}")
            if report.get("leaks"):
                print(f"    leaks: {report['leaks']}")
            print(f"    replay: {' '.join(cmd)}\n    stderr: {log}")
    print()
    print(header)
    print("\n".join(rows))
    print(f"\n{'PASS' if not failed else 'FAIL'}: {len(runs) - failed} of {len(runs)} runs passed")
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())

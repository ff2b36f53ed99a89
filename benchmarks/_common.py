"""Helpers shared by the benchmark scripts: arguments, timing, medians, tables, JSON.

Only the standard library is imported here, so that the start-up benchmark's
fresh interpreters pay nothing for it.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import statistics
import subprocess
import sys
import time
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass
from importlib import metadata
from pathlib import Path
from typing import Any

BENCH_DIR = Path(__file__).resolve().parent
RESULTS_DIR = BENCH_DIR / "results"
MISSING = "\N{EN DASH}"  # a table cell with no value
WORKERS = 2  # the machine has 2 cores; every pool in every benchmark gets 2 workers
LIBRARIES = ("forklift", "loky", "mpire", "pebble", "joblib", "cloudpickle", "psutil")


# -- arguments -----------------------------------------------------------------------------
def base_parser(description: str, epilog: str = "") -> argparse.ArgumentParser:
    """A parser with the options every benchmark has: --quick, --only, --json."""
    parser = argparse.ArgumentParser(
        description=description,
        epilog=epilog,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument("--quick", action="store_true", help="a short run: fewer reps, slowest cases skipped")
    parser.add_argument("--only", metavar="KEYS", help="comma-separated case keys to run (see --list)")
    parser.add_argument("--list", action="store_true", help="print the case keys and exit")
    parser.add_argument("--json", metavar="PATH", type=Path, help="also write the results as JSON to PATH")
    return parser


def select(keys: Sequence[str], only: str | None, skip: Iterable[str] = ()) -> list[str]:
    """The case keys to run, in table order: ``--only`` if given, else all but ``skip``."""
    if only:
        wanted = [k.strip() for k in only.split(",") if k.strip()]
        unknown = sorted(set(wanted) - set(keys))
        if unknown:
            raise SystemExit(f"unknown case(s): {', '.join(unknown)}; known: {', '.join(keys)}")
        return [k for k in keys if k in wanted]
    skipped = set(skip)
    return [k for k in keys if k not in skipped]


# -- timing ----------------------------------------------------------------------------------
def timed(fn: Callable[..., Any], *args: Any) -> tuple[float, Any]:
    """``(seconds, fn(*args))`` measured with ``time.perf_counter``."""
    start = time.perf_counter()
    value = fn(*args)
    return time.perf_counter() - start, value


def round_robin(
    keys: Sequence[str],
    reps: Callable[[str], int],
    run: Callable[[str], dict[str, Any]],
    describe: Callable[[dict[str, Any]], str],
) -> dict[str, dict[str, Any]]:
    """Run every case once per round, ``reps(key)`` rounds each, so drift is spread over all cases.

    Each round starts one case later than the one before. A case that raises is
    reported and not run again. Returns ``{key: {"samples": [run(key), ...], "error": str | None}}``.
    """
    out: dict[str, dict[str, Any]] = {k: {"samples": [], "error": None} for k in keys}
    rounds = max((reps(k) for k in keys), default=0)
    for rnd in range(rounds):
        shift = rnd % max(len(keys), 1)
        for key in [*keys[shift:], *keys[:shift]]:
            if rnd >= reps(key) or out[key]["error"]:
                continue
            try:
                sample = run(key)
            except Exception as exc:  # one failing library must not stop the others
                out[key]["error"] = f"{type(exc).__name__}: {exc}"
                log(f"round {rnd + 1}/{rounds}: {key}: {out[key]['error']}")
                continue
            out[key]["samples"].append(sample)
            log(f"round {rnd + 1}/{rounds}: {key}: {describe(sample)}")
    return out


def median(values: Sequence[float]) -> float | None:
    return statistics.median(values) if values else None


def ratio(a: float | None, b: float | None) -> float | None:
    return a / b if a is not None and b else None


def log(message: str) -> None:
    """Progress goes to stderr, so stdout holds only the report."""
    print(message, file=sys.stderr, flush=True)


# -- formatting --------------------------------------------------------------------------------
def fmt(value: float | None, digits: int = 3, suffix: str = "") -> str:
    if value is None:
        return MISSING
    return f"{value:,.{digits}f}{suffix}"


def fmt_s(seconds: float | None) -> str:
    """Seconds to 3 significant figures: 44.2, 0.065, 0.00042."""
    return MISSING if seconds is None else f"{seconds:#.3g}".rstrip(".")


def fmt_x(value: float | None, digits: int = 2) -> str:
    """A ratio, as ``1.23x``; three significant figures for large ones."""
    if value is None:
        return MISSING
    if value >= 100:
        digits = 0
    elif value >= 10:
        digits = min(digits, 1)
    return f"{value:,.{digits}f}x"


def verdict(ok: bool | None) -> str:
    return {True: "PASS", False: "**FAIL**", None: "n/a"}[ok]


def markdown_table(
    headers: Sequence[str], rows: Iterable[Sequence[object]], right: Iterable[int] = ()
) -> str:
    """A markdown table; columns whose index is in ``right`` are right-aligned."""
    right = set(right)
    rule = ["---:" if i in right else "---" for i in range(len(headers))]
    lines = [headers, rule, *rows]
    return "\n".join("| " + " | ".join(str(cell) for cell in line) + " |" for line in lines)


@dataclass
class Goal:
    """One stated goal of the project and whether this run met it."""

    goal: str
    measured: str
    ok: bool | None


def goals_table(goals: Sequence[Goal]) -> str:
    return markdown_table(
        ("goal", "measured", "verdict"), ((g.goal, g.measured, verdict(g.ok)) for g in goals)
    )


# -- output ----------------------------------------------------------------------------------
def environment() -> dict[str, Any]:
    """What the numbers depend on: interpreter, machine, library versions, commit."""
    versions = {}
    for name in LIBRARIES:
        try:
            versions[name] = metadata.version(name)
        except metadata.PackageNotFoundError:
            versions[name] = None
    return {
        "python": sys.version.split()[0],
        "platform": platform.platform(),
        "cpus": os.cpu_count(),
        "loadavg": os.getloadavg() if hasattr(os, "getloadavg") else None,
        "versions": versions,
        "git": _git_revision(),
        "time": time.strftime("%Y-%m-%dT%H:%M:%S%z"),
    }


def _git_revision() -> str | None:
    try:
        out = subprocess.run(
            ["git", "describe", "--always", "--dirty"],
            cwd=BENCH_DIR,
            capture_output=True,
            text=True,
            timeout=10,
        )
    except (OSError, subprocess.SubprocessError):
        return None
    return out.stdout.strip() or None


def header(title: str, command: str, *, workers: int = WORKERS) -> str:
    """The report's first lines: what ran, how to rerun it, on what."""
    env = environment()
    libs = ", ".join(f"{k} {v}" for k, v in env["versions"].items() if v)
    load = ", ".join(f"{x:.2f}" for x in env["loadavg"]) if env["loadavg"] else "?"
    return (
        f"## {title}\n\n"
        f"Reproduce: `{command}`  \n"
        f"Python {env['python']} on {env['platform']}, {env['cpus']} CPUs, load average {load}, "
        f"commit {env['git']}  \n"
        f"{libs}. Every pool has {workers} workers.\n"
    )


def render_report(
    title: str, table: str, notes: Sequence[str], goals: Sequence[Goal] | None, *, workers: int = WORKERS
) -> str:
    """A whole report: the header, the table, its notes as bullets and (if any) the goal table."""
    parts = [header(title, command_line(), workers=workers), table, "", *(f"* {n}" for n in notes)]
    if goals is not None:
        parts += ["", goals_table(goals)]
    return "\n".join(parts)


def command_line() -> str:
    script = Path(sys.argv[0])
    try:
        script = script.resolve().relative_to(Path.cwd())
    except ValueError:
        pass
    return " ".join(["python", str(script), *sys.argv[1:]])


def write_json(path: Path | None, benchmark: str, args: argparse.Namespace, payload: dict[str, Any]) -> None:
    """Write the run to ``path`` (if given) with its arguments and environment."""
    if path is None:
        return
    path.parent.mkdir(parents=True, exist_ok=True)
    record = {
        "benchmark": benchmark,
        "command": command_line(),
        "args": {k: (str(v) if isinstance(v, Path) else v) for k, v in vars(args).items()},
        "environment": environment(),
        **payload,
    }
    path.write_text(json.dumps(record, indent=2) + "\n")
    log(f"wrote {path}")

"""Figure (g): killing a process tree: forklift.kill_tree against the usual recipes, in one run.

Trees come from tests/tree_spawner.py; each is fresh per trial and every
process in it carries a marker variable (FORKLIFT_TREE_MARK) unique to the
trial, so survivors are found by scanning /proc/*/environ even after they were
re-parented to PID 1, and swept (SIGKILL) after the trial. Only marked
processes are ever signalled.

Cases:
  eleven   bash -c 'python tree_spawner.py eleven; echo' -> python -> 3 x bash -> 2 x sleep
           (11 processes, all obey SIGTERM). Time until the method returns, survivors after.
             kill_tree       forklift.kill_tree(top) (SIGTERM, SIGKILL after 3 s)
             psutil          children(recursive=True) + top, terminate(), wait_procs(timeout=3),
                             kill() the rest -- the documented psutil recipe
             psutil-zombie   the same signals, waiting with a poll that counts a zombie as dead
             kill            os.kill(top, SIGTERM): orphans left after 0.3 s
  forking  a 3-level tree where the top and 2 middles fork a leaf every 2 ms; killed at >= 100
           processes. Escapes: marked processes still running 0.3 s after the method returned.
             kill_tree / psutil-snapshot (children(), terminate children, then the top) / killpg
  setsid   top (own session) -> child -> grandchild that called setsid(): kill_tree / psutil / killpg
  orphans  top (own session) whose middle process died, leaving 2 leaves re-parented to PID 1:
           kill_tree / psutil / killpg
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
import uuid
from collections.abc import Callable
from pathlib import Path
from typing import Any

import psutil

import forklift
from _common import (
    Goal,
    base_parser,
    command_line,
    fmt_s,
    fmt_x,
    goals_table,
    header,
    log,
    markdown_table,
    median,
    ratio,
    round_robin,
    select,
    write_json,
)
from forklift.trees import find_marked

SPAWNER = str(Path(__file__).resolve().parent.parent / "tests" / "tree_spawner.py")
MARK = "FORKLIFT_TREE_MARK"
SETTLE = 0.3  # s: after a method returns, how long before survivors are counted
GROW_TO = 100  # processes in the forking tree when the kill starts


# -- trees -----------------------------------------------------------------------------------


class Tree:
    def __init__(self, shape: str, *, new_session: bool = False, under_bash: bool = False) -> None:
        self.mark = uuid.uuid4().hex
        cmd = [sys.executable, SPAWNER, shape]
        if under_bash:
            cmd = ["bash", "-c", f"{sys.executable} {SPAWNER} {shape}; echo"]
        self.top = subprocess.Popen(
            cmd,
            env={**os.environ, MARK: self.mark},
            stdout=subprocess.PIPE,
            stderr=subprocess.DEVNULL,  # bash's "Terminated" notices
            start_new_session=new_session,
        )
        line = (self.top.stdout.readline() if self.top.stdout else b"").decode().split()
        if not line or line[0] != "READY":
            self.sweep()
            raise RuntimeError(f"tree {shape!r} did not start")
        self.pids = [int(p) for p in line[1:]]

    def running(self) -> list[int]:
        """Marked processes that are not zombies."""
        return find_marked(MARK, self.mark)

    def wait_for(self, count: int, within: float = 10.0) -> None:
        deadline = time.monotonic() + within
        while len(self.running()) < count:
            if time.monotonic() > deadline:
                raise RuntimeError(f"tree did not reach {count} processes")
            time.sleep(0.002)

    def survivors(self) -> int:
        time.sleep(SETTLE)
        return len(self.running())

    def sweep(self) -> None:
        for pid in self.running():
            try:
                os.kill(pid, signal.SIGKILL)
            except ProcessLookupError:
                pass
        if self.top.poll() is None:
            self.top.kill()
        try:
            self.top.wait(10)
        except ChildProcessError:  # psutil's wait_procs reaped it already
            pass
        if self.top.stdout:
            self.top.stdout.close()


# -- methods ---------------------------------------------------------------------------------


def by_kill_tree(pid: int) -> None:
    result = forklift.kill_tree(pid)
    if not result.ok:
        log(f"kill_tree left {result.alive}")


def by_psutil(pid: int) -> None:
    top = psutil.Process(pid)
    procs = [*top.children(recursive=True), top]
    for p in procs:
        try:
            p.terminate()
        except psutil.NoSuchProcess:
            pass
    _, alive = psutil.wait_procs(procs, timeout=3)
    for p in alive:
        try:
            p.kill()
        except psutil.NoSuchProcess:
            pass


def by_psutil_zombie_aware(pid: int) -> None:
    top = psutil.Process(pid)
    procs = [*top.children(recursive=True), top]
    for p in procs:
        try:
            p.terminate()
        except psutil.NoSuchProcess:
            pass
    deadline = time.monotonic() + 3
    while procs and time.monotonic() < deadline:
        procs = [p for p in procs if not _ended(p)]
        time.sleep(0.001)
    for p in procs:
        try:
            p.kill()
        except psutil.NoSuchProcess:
            pass


def _ended(p: psutil.Process) -> bool:
    try:
        return bool(p.status() == psutil.STATUS_ZOMBIE)
    except psutil.NoSuchProcess:
        return True


def by_psutil_snapshot(pid: int) -> None:
    """The usual recipe: one snapshot of the children, terminate them, then the top."""
    top = psutil.Process(pid)
    for p in top.children(recursive=True):
        try:
            p.terminate()
        except psutil.NoSuchProcess:
            pass
    top.terminate()


def by_kill(pid: int) -> None:
    os.kill(pid, signal.SIGTERM)


def by_killpg(pid: int) -> None:
    os.killpg(pid, signal.SIGTERM)


METHODS: dict[str, Callable[[int], None]] = {
    "kill_tree": by_kill_tree,
    "psutil": by_psutil,
    "psutil-zombie": by_psutil_zombie_aware,
    "psutil-snapshot": by_psutil_snapshot,
    "kill": by_kill,
    "killpg": by_killpg,
}

# case key -> (shape, tree options, processes to wait for, methods)
CASES: dict[str, tuple[str, dict[str, bool], int, tuple[str, ...]]] = {
    "eleven": ("eleven", {"under_bash": True}, 11, ("kill_tree", "psutil", "psutil-zombie", "kill")),
    "forking": ("forking", {}, GROW_TO, ("kill_tree", "psutil-snapshot")),
    "forking-group": ("forking", {"new_session": True}, GROW_TO, ("kill_tree", "killpg")),
    "setsid": ("setsid", {"new_session": True}, 3, ("kill_tree", "psutil", "killpg")),
    "orphans": ("orphans", {"new_session": True}, 3, ("kill_tree", "psutil", "killpg")),
}
KEYS = [f"{case}:{method}" for case, (_, _, _, methods) in CASES.items() for method in methods]


def trial(key: str) -> dict[str, Any]:
    case, method = key.split(":")
    shape, options, size, _ = CASES[case]
    tree = Tree(shape, **options)
    try:
        tree.wait_for(size)
        members = len(tree.running())
        start = time.perf_counter()
        METHODS[method](tree.top.pid)
        seconds = time.perf_counter() - start
        return {"seconds": seconds, "members": members, "survivors": tree.survivors()}
    finally:
        tree.sweep()


# -- report ----------------------------------------------------------------------------------


def summarize(runs: dict[str, dict[str, Any]]) -> dict[str, dict[str, Any]]:
    out = {}
    for key, run in runs.items():
        samples = run["samples"]
        out[key] = {
            "median_s": median([s["seconds"] for s in samples]),
            "min_s": min((s["seconds"] for s in samples), default=None),
            "max_s": max((s["seconds"] for s in samples), default=None),
            "members": median([s["members"] for s in samples]),
            "survivors": [s["survivors"] for s in samples],
            "error": run["error"],
        }
    return out


WAITS = ("kill_tree", "psutil", "psutil-zombie")  # methods that return once the tree has ended


def report(rows: dict[str, dict[str, Any]]) -> str:
    table = []
    for key, r in rows.items():
        case, method = key.split(":")
        best = rows.get(f"{case}:kill_tree", {}).get("median_s")
        timed = method in WAITS and r["median_s"] is not None
        table.append(
            (
                case,
                f"**{method}**" if method == "kill_tree" else method,
                f"{r['members']:.0f}" if r["members"] is not None else "",
                fmt_s(r["median_s"]) if timed else "",
                f"{fmt_s(r['min_s'])}-{fmt_s(r['max_s'])}" if timed else "",
                fmt_x(ratio(r["median_s"], best)) if timed else "",
                ", ".join(map(str, r["survivors"])) or r["error"] or "",
            )
        )
    headers = (
        "tree",
        "method",
        "processes",
        "median s",
        "range s",
        "vs kill_tree",
        "left running, per trial",
    )
    return "\n\n".join([markdown_table(headers, table, right=(2, 3, 4, 5)), goals_table(goals(rows))])


def goals(rows: dict[str, dict[str, Any]]) -> list[Goal]:
    eleven = rows.get("eleven:kill_tree")
    out = []
    if eleven and eleven["median_s"] is not None:
        ms = eleven["median_s"] * 1e3
        out.append(Goal("11-process tree obeying SIGTERM ended in < 50 ms", f"median {ms:.1f} ms", ms < 50))
    for case in ("eleven", "forking", "forking-group", "setsid", "orphans"):
        r = rows.get(f"{case}:kill_tree")
        if r and r["survivors"]:
            left = sum(r["survivors"])
            out.append(
                Goal(f"kill_tree: 0 escapes ({case})", f"{left} in {len(r['survivors'])} trials", left == 0)
            )
    return out


def main() -> None:
    parser = base_parser(__doc__ or "")
    parser.add_argument("--reps", type=int, default=10, help="trials per eleven case (default 10)")
    parser.add_argument("--trials", type=int, default=5, help="trials per other case (default 5)")
    args = parser.parse_args()
    if args.list:
        print("\n".join(KEYS))
        return
    keys = select(KEYS, args.only)
    reps, trials = (3, 2) if args.quick else (args.reps, args.trials)
    runs = round_robin(
        keys,
        lambda k: reps if k.startswith("eleven:") else trials,
        trial,
        lambda s: f"{s['seconds'] * 1e3:.1f} ms, {s['members']} processes, {s['survivors']} left",
    )
    rows = summarize(runs)
    print(header("(g) killing a process tree", command_line()))
    print(report(rows))
    write_json(args.json, "bench_kill_tree", args, {"rows": rows})


if __name__ == "__main__":
    main()

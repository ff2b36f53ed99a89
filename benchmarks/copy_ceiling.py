"""Figure (f2): the ceiling of any Python copier on this machine, against cp -a and forklift copy.

Where do issue 17's small-file goals (5,000 files >= 1.0x cp -a, 20,000 >= 1.3x) stand
against what Python can do at all here? This runs, on bench_copy.py's data sets, each
into a fresh destination, round-robin:

- **cp -a** (a whole command);
- **bare, 1 process**: the system calls forklift's worker makes per file (scandir,
  openat, fstat, openat of a temp name, copy_file_range, futimens, close, renameat,
  close), in a plain loop in this process: no start-up, no pool, no messages;
- **bare, 2 processes**: the same loop in two processes forked at the start, each taking
  half of the directories (the fork and the wait are timed, no interpreter start);
- **forklift copy -j 2** (a whole command, as bench_copy.py runs it).

"bare, 2 processes" is an upper bound for any copier written in Python on 2 cores: it
has no start-up (a Python command pays ~8 ms for the interpreter and ~15-35 ms of
imports before it copies) and no coordination. If it is below a goal's ratio, so is
every Python design, forklift's included.
"""

from __future__ import annotations

import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

import functools
import os
import shutil
import subprocess
import time
from collections.abc import Iterator

import bench_copy
from _common import (
    Goal,
    base_parser,
    fmt,
    fmt_x,
    log,
    markdown_table,
    median,
    ratio,
    render_report,
    round_robin,
    select,
    write_json,
)

KEYS = ("cp", "bare-1", "bare-2", "forklift")
LABELS = {
    "cp": "cp -a",
    "bare-1": "bare syscalls, 1 process (no start-up)",
    "bare-2": "bare syscalls, 2 processes (no start-up)",
    "forklift": "**forklift copy -j 2**",
}
GOALS = {"5k": 1.0, "20k": 1.3}


def copy_dirs(src: str, dst: str, dirs: list[str]) -> None:
    """forklift's per-file system calls (worker._copy_dir's fast path), in a bare loop."""
    flags = os.O_RDONLY | os.O_CLOEXEC | os.O_NONBLOCK | os.O_NOFOLLOW
    create = os.O_CREAT | os.O_EXCL | os.O_WRONLY | os.O_CLOEXEC
    odir = os.O_RDONLY | os.O_DIRECTORY | os.O_CLOEXEC
    for d in dirs:
        sd, td = os.path.join(src, d), os.path.join(dst, d)
        os.mkdir(td, 0o700)
        sfd, dfd = os.open(sd, odir), os.open(td, odir)
        with os.scandir(sd) as it:
            names = [e.name for e in it]
        for name in names:
            fi = os.open(name, flags, dir_fd=sfd)
            st = os.fstat(fi)
            tmp = f".{name}.forklift-00000000.tmp"
            fo = os.open(tmp, create, st.st_mode & 0o7777, dir_fd=dfd)
            os.copy_file_range(fi, fo, st.st_size)
            os.fstat(fi)
            os.utime(fo, ns=(st.st_atime_ns, st.st_mtime_ns))
            os.close(fo)
            os.rename(tmp, name, src_dir_fd=dfd, dst_dir_fd=dfd)
            os.close(fi)
        os.close(sfd)
        os.close(dfd)


def bare(src: Path, dst: Path, processes: int) -> float:
    dirs = sorted(os.listdir(src))
    start = time.perf_counter()
    os.mkdir(dst)
    if processes == 1:
        copy_dirs(str(src), str(dst), dirs)
    else:
        pids = []
        for k in range(processes):
            pid = os.fork()
            if pid == 0:
                code = 0
                try:
                    copy_dirs(str(src), str(dst), dirs[k::processes])
                except BaseException:
                    code = 1
                os._exit(code)
            pids.append(pid)
        for pid in pids:
            _, status = os.waitpid(pid, 0)
            if os.waitstatus_to_exitcode(status) != 0:
                raise RuntimeError("a bare copy process failed")
    return time.perf_counter() - start


def run_case(src: Path, work: Path, counter: Iterator[int], key: str) -> dict[str, float]:
    """One run of case ``key`` into a fresh destination under ``work``."""
    dst = work / f"{key}-{next(counter)}"
    subprocess.run(["sync"], check=True)
    if key == "cp":
        return {"s": command(["cp", "-a", str(src), str(dst)], None)}
    if key == "forklift":
        argv = [sys.executable, "-m", "forklift", "copy", "-q", "-j", "2", str(src), str(dst)]
        return {"s": command(argv, bench_copy.ENV["forklift"])}
    return {"s": bare(src, dst, 1 if key == "bare-1" else 2)}


def command(argv: list[str], env: dict[str, str] | None) -> float:
    start = time.perf_counter()
    subprocess.run(argv, check=True, env=env)
    return time.perf_counter() - start


def main() -> None:
    parser = base_parser(__doc__.split("\n\n")[0], epilog=__doc__.split("\n\n", 1)[1])
    parser.add_argument("--reps", type=int, default=5, help="runs per case and data set (default 5)")
    parser.add_argument("--sets", default="5k,20k", help="of 5k, 20k (default both)")
    parser.add_argument("--fs", default="ext4,tmpfs", help="file systems: ext4, tmpfs or both (default)")
    args = parser.parse_args()
    if args.list:
        print("\n".join(KEYS))
        return
    keys = select(KEYS, args.only)
    # bench_copy's data sets and paths (made if missing)
    args.one_big_mb, args.big_count, args.big_mb = 300, 8, 200
    bases = {"ext4": Path("/tmp/forklift-bench-copy"), "tmpfs": Path("/dev/shm/forklift-bench-copy")}
    sections, goals, payload = [], [], {}
    for fs in [s.strip() for s in args.fs.split(",") if s.strip()]:
        for name in [s.strip() for s in args.sets.split(",") if s.strip()]:
            src, files, _ = bench_copy.dataset(args, bases[fs], name)
            work = bases[fs] / "ceiling"
            shutil.rmtree(work, ignore_errors=True)
            work.mkdir(parents=True)
            run = functools.partial(run_case, src, work, iter(range(10**6)))
            log(f"{fs}, {name}: {files:,} files")
            runs = round_robin(keys, lambda k: args.reps, run, lambda m: f"{m['s']:.3f} s")
            shutil.rmtree(work, ignore_errors=True)
            med = {k: median([m["s"] for m in runs[k]["samples"]]) if k in runs else None for k in KEYS}
            rows = [
                (
                    LABELS[k],
                    fmt(med[k]),
                    f"{files / med[k]:,.0f}" if med[k] else "n/a",
                    fmt_x(ratio(med["cp"], med[k])),
                )
                for k in keys
            ]
            table = markdown_table(("case", "median s", "files/s", "speed vs cp -a"), rows, right=(1, 2, 3))
            sections.append(f"### {fs}, {name}: {files:,} files, median of {args.reps}\n\n{table}")
            payload[f"{fs}/{name}"] = med
            if name in GOALS:
                best = ratio(med["cp"], med["bare-2"])
                goals.append(
                    Goal(
                        f"{fs}, {name}: can any 2-process Python copier reach {GOALS[name]}x cp -a?",
                        f"bare 2 processes, no start-up: {fmt_x(best)}; forklift {fmt_x(ratio(med['cp'], med['forklift']))}",
                        None if best is None else best >= GOALS[name],
                    )
                )
    notes = [
        "bare rows time only the copy (fork and wait included for 2 processes); cp -a and forklift are whole commands.",
        "A goal row FAILs when even the bare 2-process loop, with no start-up at all, is below the goal's ratio.",
    ]
    print(
        render_report(
            "(f2) The ceiling of a Python copier on this machine", "\n\n".join(sections), notes, goals
        )
    )
    write_json(args.json, "copy_ceiling", args, payload)


if __name__ == "__main__":
    main()

"""Figure (f): `forklift copy` against cp -a, rsync -a and tar | tar, from a 50-file tree to big files, on ext4 and tmpfs.

Data sets (made once per file system under --data / --tmpfs, reused by later runs):

- **tiny**: 50 files of 1-8 KiB in one directory: start-up is the figure;
- **5k**: 5,000 files of 1-8 KiB in 50 directories: files/s;
- **20k**: 20,000 files of 1-8 KiB in 200 directories: files/s;
- **one-big**: one file of --one-big-mb MB (default 300): MB/s (MB = 10^6 B);
- **big**: --big-count files (default 8) of --big-mb MB (default 200): MB/s.

File systems (--fs): **ext4** (--data, default /tmp/forklift-bench-copy: this VM's disk)
and **tmpfs** (--tmpfs, default /dev/shm/forklift-bench-copy: no disk, so the CPU cost
of each tool shows). Commands, each into a FRESH destination directory per run (cases
round-robin): `cp -a S D`, `rsync -a S/ D/`, `mkdir D && tar -C S -cf - . | tar -C D -xf -`,
`python -m forklift copy -q -j WORKERS S D`. Timing covers the whole command
(start-up included); the data ends in the page cache, as with cp (no --fsync).
Before every run, untimed: `sync` (so one run's write-back does not land in the
next) and, unless --no-prefault, touching about the run's size in fresh memory.
Why the latter: on this VM the hypervisor takes back guest memory that stays
free for a few seconds (free page reporting), and the first touch of such a page
costs a host fault; a copy writing 1.6 GB of new page cache then measures the
hypervisor (cp -a: 0.57 s for 200 MB after 5 s idle, 0.10 s right after a
prefault). Destinations are deleted only at the very end: on this machine's
journal-less ext4, creating files right after a large `rm -rf` is ~10x slower
for 60-300 s.

The project's goals (issue 17), on both file systems: the 50-file tree within 50 ms
of cp -a; 5,000 small files >= 1.0x and 20,000 >= 1.3x cp -a; one big file at
cp -a's throughput (>= 1.0x); with atomic renames.
"""

from __future__ import annotations

import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

import filecmp
import mmap
import os
import random
import shutil
import subprocess
import time

from _common import (
    WORKERS,
    Goal,
    base_parser,
    command_line,
    fmt,
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

KEYS = ("cp", "rsync", "tar", "forklift", "forklift-split")
SETS = ("tiny", "5k", "20k", "one-big", "big")
SMALL = {"tiny": (50, 1), "5k": (5_000, 50), "20k": (20_000, 200)}  # files, directories
LABELS = {
    "cp": "cp -a",
    "rsync": "rsync -a S/ D/",
    "tar": "tar -cf - \\| tar -xf -",
    "forklift": "**forklift copy -j 2**",
    "forklift-split": "forklift copy -j 2, files >= 256 MiB split into ranges",
}
# forklift runs as an installed package would: with its bytecode cached (here outside the
# tree, in /tmp), not recompiled each run as PYTHONDONTWRITEBYTECODE=1 in this VM's
# environment would make it (~30 ms per run).
PYCACHE = Path("/tmp/forklift-bench-copy-pycache")
_FK_ENV = {k: v for k, v in os.environ.items() if k != "PYTHONDONTWRITEBYTECODE"}
_FK_ENV["PYTHONPYCACHEPREFIX"] = str(PYCACHE)
ENV = {
    "cp": None,
    "rsync": None,
    "tar": None,
    "forklift": _FK_ENV,
    "forklift-split": {**_FK_ENV, "FORKLIFT_COPY_SPLIT_BYTES": str(256 << 20)},
}
MADV_POPULATE_WRITE = 23  # Linux 5.14+; not in Python 3.11's mmap module


def parse_args():
    parser = base_parser(__doc__.split("\n\n")[0], epilog=__doc__.split("\n\n", 1)[1])
    parser.add_argument("--big-count", type=int, default=8, help="files of the big set (default 8)")
    parser.add_argument("--big-mb", type=int, default=200, help="size of each big file in MB (default 200)")
    parser.add_argument(
        "--one-big-mb", type=int, default=300, help="size of the one-big file in MB (default 300)"
    )
    parser.add_argument("--reps", type=int, help="runs per case and data set (default 5; 1 with --quick)")
    parser.add_argument(
        "--sets", default=",".join(SETS[:4]), help=f"data sets, of {', '.join(SETS)} (default: all but big)"
    )
    parser.add_argument("--fs", default="ext4,tmpfs", help="file systems: ext4, tmpfs or both (default)")
    parser.add_argument("--workers", type=int, default=WORKERS, help=f"forklift's -j (default {WORKERS})")
    parser.add_argument(
        "--data",
        type=Path,
        default=Path("/tmp/forklift-bench-copy"),
        help="ext4: where the data and the destinations go (default /tmp/forklift-bench-copy)",
    )
    parser.add_argument(
        "--tmpfs",
        type=Path,
        default=Path("/dev/shm/forklift-bench-copy"),
        help="tmpfs: where the data and the destinations go (default /dev/shm/forklift-bench-copy)",
    )
    parser.add_argument("--keep-data", action="store_true", help="keep the source data at the end")
    parser.add_argument(
        "--no-prefault", action="store_true", help="do not touch fresh memory before each run"
    )
    parser.add_argument(
        "--max-load",
        type=float,
        default=0.7,
        help="wait (up to --max-wait s) until the 1-minute load average is below this (default 0.7)",
    )
    parser.add_argument("--max-wait", type=float, default=300, help="seconds to wait for a quiet machine")
    args = parser.parse_args()
    args.reps = args.reps or (1 if args.quick else 5)
    args.sets = [s.strip() for s in args.sets.split(",") if s.strip()]
    args.fs = [s.strip() for s in args.fs.split(",") if s.strip()]
    bad = sorted(set(args.sets) - set(SETS)) + sorted(set(args.fs) - {"ext4", "tmpfs"})
    if bad:
        parser.error(f"unknown data set or file system: {', '.join(bad)}")
    return args


# -- data ------------------------------------------------------------------------------------
def make_small(root: Path, files: int, dirs: int) -> None:
    rng = random.Random(0)
    for i in range(files):
        d = root / f"d{i % dirs:04d}"
        if i < dirs:
            d.mkdir(parents=True)
        (d / f"f{i:06d}.bin").write_bytes(rng.randbytes(rng.randint(1024, 8192)))


def make_big(root: Path, count: int, mb: int) -> None:
    root.mkdir(parents=True)
    for i in range(count):
        with open(root / f"big{i}.bin", "wb") as f:
            for _ in range(mb):
                f.write(os.urandom(1_000_000))


def dataset(args, base: Path, name: str) -> tuple[Path, int, int]:
    """(source directory, files, bytes), made if missing or of another shape."""
    if name in SMALL:
        spec = "{}x{}".format(*SMALL[name])
    elif name == "one-big":
        spec = f"1x{args.one_big_mb}MB"
    else:
        spec = f"{args.big_count}x{args.big_mb}MB"
    root = base / f"src-{spec}"
    if not root.exists():
        log(f"making the {name} data set in {root} ...")
        tmp = root.with_name(root.name + ".partial")
        shutil.rmtree(tmp, ignore_errors=True)
        if name in SMALL:
            make_small(tmp, *SMALL[name])
        elif name == "one-big":
            make_big(tmp, 1, args.one_big_mb)
        else:
            make_big(tmp, args.big_count, args.big_mb)
        tmp.rename(root)
    nfiles = nbytes = 0
    for dirpath, _, names in os.walk(root):
        for n in names:
            nfiles += 1
            nbytes += os.lstat(os.path.join(dirpath, n)).st_size
    for dirpath, _, names in os.walk(root):  # warm the cache: the figure is the copy, not the disk
        for n in names:
            with open(os.path.join(dirpath, n), "rb") as f:
                while f.read(1 << 20):
                    pass
    return root, nfiles, nbytes


# -- one run ----------------------------------------------------------------------------------
def command(key: str, src: Path, dst: Path, workers: int) -> list[str]:
    if key == "cp":
        return ["cp", "-a", str(src), str(dst)]
    if key == "rsync":
        return ["rsync", "-a", f"{src}/", f"{dst}/"]
    if key == "tar":
        return ["bash", "-c", f"mkdir '{dst}' && tar -C '{src}' -cf - . | tar -C '{dst}' -xf -"]
    return [sys.executable, "-m", "forklift", "copy", "-q", "-j", str(workers), str(src), str(dst)]


def busy_jiffies() -> tuple[int, int]:
    """(busy, total) jiffies of all CPUs, from /proc/stat."""
    with open("/proc/stat") as f:
        fields = [int(x) for x in f.readline().split()[1:]]
    idle = fields[3] + fields[4]
    return sum(fields) - idle, sum(fields)


def prefault(nbytes: int) -> None:
    """Touch ``nbytes`` of fresh memory and free it, so the copy's page cache finds host-backed pages."""
    if nbytes <= 0:
        return
    m = mmap.mmap(-1, nbytes)
    try:
        m.madvise(MADV_POPULATE_WRITE)
    except OSError:
        for i in range(0, nbytes, mmap.PAGESIZE):
            m[i] = 1
    m.close()


class Runner:
    def __init__(self, args, base: Path, name: str, src: Path, nfiles: int, nbytes: int) -> None:
        self.args, self.base, self.name, self.src = args, base, name, src
        self.nfiles, self.nbytes = nfiles, nbytes
        self.count = 0
        self.verified = False

    def __call__(self, key: str) -> dict:
        self.count += 1
        dst = self.base / f"dst-{self.name}-{key}-{self.count}-{os.getpid()}"
        subprocess.run(["sync"], check=True)
        if not self.args.no_prefault:
            prefault(int(self.nbytes * 1.2) + (256 << 20))
        load = os.getloadavg()[0]
        busy0, _ = busy_jiffies()
        r0 = os.times()
        t0 = time.perf_counter()
        out = subprocess.run(
            command(key, self.src, dst, self.args.workers), capture_output=True, text=True, env=ENV[key]
        )
        seconds = time.perf_counter() - t0
        r1 = os.times()
        busy1, _ = busy_jiffies()
        if out.returncode != 0:
            raise RuntimeError(f"exit {out.returncode}: {out.stderr.strip()[:300]}")
        own = (r1.children_user + r1.children_system) - (r0.children_user + r0.children_system)
        machine = (busy1 - busy0) / os.sysconf("SC_CLK_TCK")
        if key == "forklift" and not self.verified:
            check_identical(self.src, dst)
            self.verified = True
        return {"seconds": seconds, "cpu": own, "machine_cpu": machine, "load": load}


def check_identical(src: Path, dst: Path) -> None:
    """Every file of src is in dst with the same size, mtime_ns and bytes (forklift's first run only)."""
    for dirpath, _, names in os.walk(src):
        for n in names:
            a = os.path.join(dirpath, n)
            b = os.path.join(dst, os.path.relpath(a, src))
            sa, sb = os.lstat(a), os.lstat(b)
            if (sa.st_size, sa.st_mtime_ns, sa.st_mode) != (sb.st_size, sb.st_mtime_ns, sb.st_mode):
                raise AssertionError(f"{b}: metadata differs from {a}")
            if not filecmp.cmp(a, b, shallow=False):
                raise AssertionError(f"{b}: content differs from {a}")
    leftovers = [n for _, _, names in os.walk(dst) for n in names if ".forklift-" in n]
    if leftovers:
        raise AssertionError(f"temp files left: {leftovers[:3]}")


def wait_for_quiet(max_load: float, max_wait: float) -> float:
    deadline = time.monotonic() + max_wait
    while True:
        load = os.getloadavg()[0]
        if load < max_load or time.monotonic() > deadline:
            return load
        log(f"waiting for a quiet machine: 1-min load {load:.2f} >= {max_load}")
        time.sleep(10)


# -- report ---------------------------------------------------------------------------------
def summarize(keys, runs, nfiles, nbytes):
    rows = {}
    for key in keys:
        samples = runs[key]["samples"]
        secs = [s["seconds"] for s in samples]
        m = median(secs)
        rows[key] = {
            "label": LABELS[key],
            "samples": samples,
            "median": m,
            "min": min(secs, default=None),
            "max": max(secs, default=None),
            "files_per_s": nfiles / m if m else None,
            "mb_per_s": nbytes / 1e6 / m if m else None,
            "machine_cpu": median([s["machine_cpu"] for s in samples]),
            "max_load": max((s["load"] for s in samples), default=None),
            "error": runs[key]["error"],
        }
    fk = rows.get("forklift", {}).get("median")
    for row in rows.values():
        row["forklift_speedup"] = ratio(row["median"], fk)  # > 1: forklift is faster
    return rows


def table(rows, unit: str) -> str:
    rate_key = "files_per_s" if unit == "files/s" else "mb_per_s"
    return markdown_table(
        ("case", "median s", "min s", "max s", unit, "busy CPU s", "max load", "forklift speed vs this"),
        (
            (
                r["label"],
                fmt_s(r["median"]),
                fmt_s(r["min"]),
                fmt_s(r["max"]),
                fmt(r[rate_key], 0),
                fmt(r["machine_cpu"], 2),
                fmt(r["max_load"], 2),
                fmt_x(r["forklift_speedup"]),
            )
            if not r["error"]
            else (r["label"], r["error"], "", "", "", "", "", "")
            for r in rows.values()
        ),
        right=range(1, 8),
    )


def unit_of(name: str) -> str:
    return "files/s" if name in SMALL else "MB/s"


def goals(fs: str, name: str, rows) -> list[Goal]:
    cp, fk = rows.get("cp"), rows.get("forklift")
    if not cp or not fk or not cp["median"] or not fk["median"]:
        return []
    if name == "tiny":
        behind = (fk["median"] - cp["median"]) * 1000
        return [Goal(f"{fs}, tiny: forklift within 50 ms of cp -a", f"+{behind:.1f} ms", behind <= 50)]
    x = ratio(cp["median"], fk["median"])
    want = {"5k": 1.0, "20k": 1.3, "one-big": 1.0, "big": 1.0}[name]
    return [Goal(f"{fs}, {name}: forklift >= {want:g}x cp -a ({unit_of(name)})", fmt_x(x), x >= want)]


def main() -> None:
    args = parse_args()
    keys = select(KEYS, args.only, skip=("forklift-split",))  # --only forklift-split,...: the split path
    if args.list:
        print("\n".join(KEYS))
        return
    keys = [k for k in keys if k == "forklift" or shutil.which(command(k, Path("s"), Path("d"), 1)[0])]
    bases = {"ext4": args.data, "tmpfs": args.tmpfs}
    plan = []
    for fs in args.fs:
        bases[fs].mkdir(parents=True, exist_ok=True)
        plan += [(fs, name, *dataset(args, bases[fs], name)) for name in args.sets]
    subprocess.run([sys.executable, "-m", "forklift", "copy", "--help"], env=_FK_ENV, capture_output=True)
    load = wait_for_quiet(args.max_load, args.max_wait)
    log(f"1-min load average at the start: {load:.2f}")
    results, all_goals = {}, []
    try:
        for fs, name, src, nfiles, nbytes in plan:
            runner = Runner(args, bases[fs], name, src, nfiles, nbytes)
            runs = round_robin(keys, lambda k: args.reps, runner, lambda s: f"{s['seconds']:.3f} s")
            results[f"{fs}/{name}"] = {
                "rows": summarize(keys, runs, nfiles, nbytes),
                "files": nfiles,
                "bytes": nbytes,
            }
    finally:
        log("deleting the destinations ...")
        for fs in args.fs:
            for d in bases[fs].glob(f"dst-*-{os.getpid()}"):
                shutil.rmtree(d, ignore_errors=True)
            if not args.keep_data:
                shutil.rmtree(bases[fs], ignore_errors=True)
        if not args.keep_data:
            shutil.rmtree(PYCACHE, ignore_errors=True)
    print(header(f"Copying a tree: forklift copy vs cp, rsync, tar ({args.reps} runs each)", command_line()))
    print(
        f"1-min load average before the first run: {load:.2f}. Prefault: {not args.no_prefault}. "
        "busy CPU s: all processes of the machine during the run (/proc/stat), the copy's own and "
        "anyone else's; max load: the 1-min load average before the run, worst of the runs.\n"
    )
    for fs, name, *_ in plan:
        res = results[f"{fs}/{name}"]
        print(
            f"### {fs}, {name}: {res['files']:,} files, {res['bytes'] / 1e6:,.1f} MB, median of {args.reps}\n"
        )
        print(table(res["rows"], unit_of(name)) + "\n")
        all_goals += goals(fs, name, res["rows"])
    print("### Goals\n")
    print(goals_table(all_goals))
    write_json(args.json, "copy", args, {"results": results, "start_load": load})


if __name__ == "__main__":
    main()

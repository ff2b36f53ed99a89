"""Figure (i): forklift's Pool on a Dask cluster against raw Client.map + gather, same cluster.

A real cluster on 127.0.0.1 with mutual TLS, started with forklift's own CLI
(``forklift cluster scheduler`` + ``forklift cluster worker --procs 2``, one
thread per process), then, round-robin on that one cluster:

- 20,000 tiny tasks ``x*x``: ``Pool(address=...).map`` (chunks cut by forklift)
  against ``client.map(f, xs, pure=False)`` + ``client.gather`` (one Dask task per item);
- 400 CPU tasks of ~5 ms (``burn(n)``, calibrated here): the same two calls.

Also timed: start-up of the embedded local cluster, ``Pool(address="local",
processes=2)`` until its first result, and its close.

Goals (issue 7): forklift >= 5x faster than raw on the tiny tasks; within 1.1x of
raw on the CPU tasks.
"""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))  # workers import _tasks by name

import _tasks
from _common import (
    BENCH_DIR,
    WORKERS,
    Goal,
    base_parser,
    fmt,
    fmt_s,
    fmt_x,
    log,
    markdown_table,
    median,
    ratio,
    render_report,
    round_robin,
    select,
    timed,
    write_json,
)

KEYS = ("forklift tiny", "raw tiny", "forklift cpu", "raw cpu", "local start")
SLOW = ("raw tiny",)  # one Dask task per item: ~20-45 s per call on 2 cores
TINY_GOAL = 5.0
CPU_GOAL = 1.1
SRC = BENCH_DIR.parent / "src"


def parse_args():
    parser = base_parser(__doc__.split("\n\n")[0], epilog=__doc__.split("\n\n", 1)[1])
    parser.add_argument("--n", type=int, default=20_000, help="tiny tasks (default 20000)")
    parser.add_argument("--cpu-n", type=int, default=400, help="CPU tasks (default 400)")
    parser.add_argument("--task-ms", type=float, default=5.0, help="CPU task time in ms (default 5)")
    parser.add_argument("--reps", type=int, default=3, help="timed calls per case (default 3)")
    parser.add_argument("--slow-reps", type=int, default=2, help="timed calls of raw tiny (default 2)")
    return parser.parse_args()


# -- the cluster --------------------------------------------------------------------------------
class Cluster:
    """Scheduler + one worker command (2 processes x 1 thread), TLS, on 127.0.0.1."""

    def __init__(self, tmp: Path) -> None:
        from forklift._cluster import make_credentials

        self.creds = make_credentials(tmp / "creds").directory
        with socket.socket() as s:
            s.bind(("127.0.0.1", 0))
            self.port = s.getsockname()[1]
        self.address = f"tls://127.0.0.1:{self.port}"
        env = dict(os.environ, PYTHONPATH=os.pathsep.join([str(SRC), str(BENCH_DIR)]))
        cli = [sys.executable, "-m", "forklift.cli.cluster"]
        self.log = open(tmp / "cluster.log", "ab")  # noqa: SIM115 - closed in stop()
        started = time.perf_counter()
        self.procs = [
            subprocess.Popen(
                [*cli, "scheduler", "--port", str(self.port), "--credentials", str(self.creds)],
                env=env,
                stdout=self.log,
                stderr=subprocess.STDOUT,
                start_new_session=True,
            )
        ]
        self._wait_port()
        self.procs.append(
            subprocess.Popen(
                [*cli, "worker", self.address, "--credentials", str(self.creds), "--procs", str(WORKERS)],
                env=env,
                stdout=self.log,
                stderr=subprocess.STDOUT,
                start_new_session=True,
            )
        )
        self.client = self._client()
        while len(self.client.nthreads()) < WORKERS:
            if time.perf_counter() - started > 60:
                raise TimeoutError("the cluster's workers did not register within 60 s")
            time.sleep(0.1)
        self.startup = time.perf_counter() - started

    def _wait_port(self) -> None:
        deadline = time.monotonic() + 30
        while time.monotonic() < deadline:
            with socket.socket() as s:
                if s.connect_ex(("127.0.0.1", self.port)) == 0:
                    return
            time.sleep(0.05)
        raise TimeoutError("the scheduler did not listen within 30 s")

    def _client(self):
        from distributed import Client

        from forklift._cluster import load_credentials

        return Client(self.address, security=load_credentials(self.creds).security(), timeout=30)

    def stop(self) -> None:
        self.client.close()
        for proc in reversed(self.procs):
            proc.send_signal(signal.SIGINT)
            try:
                proc.wait(timeout=30)
            except subprocess.TimeoutExpired:
                os.killpg(proc.pid, signal.SIGKILL)
                proc.wait()
        self.log.close()


# -- the cases ------------------------------------------------------------------------------------
def calibrate(task_ms: float) -> int:
    n = 20_000
    for _ in range(4):
        seconds = min(timed(_tasks.burn, n)[0] for _ in range(5))
        n = max(1, int(n * task_ms / 1000 / seconds))
    return n


def run_once(key: str, cluster: Cluster, pool, data: dict) -> dict:
    if key == "local start":
        return local_start()
    tiny = key.endswith("tiny")
    fn, xs, expected = (
        (_tasks.square, data["xs"], data["squares"]) if tiny else (_tasks.burn, data["cpu"], data["burned"])
    )
    if key.startswith("forklift"):
        seconds, got = timed(pool.map, fn, xs)
    else:
        client = cluster.client

        def raw():
            futures = client.map(fn, xs, pure=False)
            values = client.gather(futures)
            del futures
            return values

        seconds, got = timed(raw)
    return {"seconds": seconds, "correct": got == expected}


def local_start() -> dict:
    from forklift import Pool

    start = time.perf_counter()
    pool = Pool(WORKERS, address="local")
    try:
        first = pool.apply(_tasks.square, (3,))
        ready = time.perf_counter() - start
    finally:
        t = time.perf_counter()
        pool.terminate()
        closed = time.perf_counter() - t
    return {"seconds": ready, "close": closed, "correct": first == 9}


def summarize(key: str, run: dict, args) -> dict:
    seconds = [s["seconds"] for s in run["samples"]]
    n = args.n if key.endswith("tiny") else args.cpu_n if key.endswith("cpu") else None
    closes = [s["close"] for s in run["samples"] if "close" in s]
    return {
        "key": key,
        "reps": len(seconds),
        "seconds": seconds,
        "median": median(seconds),
        "tasks": n,
        "close": median(closes) if closes else None,
        "correct": bool(seconds) and all(s["correct"] for s in run["samples"]),
        "error": run["error"],
    }


def goals(rows: dict) -> list[Goal]:
    out = []
    tiny = ratio(rows.get("raw tiny", {}).get("median"), rows.get("forklift tiny", {}).get("median"))
    out.append(
        Goal(
            f"20,000 tiny tasks: forklift >= {TINY_GOAL:.0f}x faster than raw `Client.map` + `gather`",
            fmt_x(tiny),
            None if tiny is None else tiny >= TINY_GOAL,
        )
    )
    cpu = ratio(rows.get("forklift cpu", {}).get("median"), rows.get("raw cpu", {}).get("median"))
    out.append(
        Goal(
            f"400 CPU tasks: forklift within {CPU_GOAL}x of raw (forklift time / raw time)",
            fmt_x(cpu),
            None if cpu is None else cpu <= CPU_GOAL,
        )
    )
    return out


LABELS = {
    "forklift tiny": "`Pool(address=...).map`, tiny",
    "raw tiny": "raw `client.map` + `gather`, tiny",
    "forklift cpu": "`Pool(address=...).map`, CPU",
    "raw cpu": "raw `client.map` + `gather`, CPU",
    "local start": '`Pool(2, address="local")` to first result',
}


def report(
    rows: dict, goal_rows: list[Goal], args, cluster_startup: float, calibration: str, serial: float
) -> str:
    def per_sec(r):
        return fmt(r["tasks"] / r["median"], 0) if r.get("tasks") and r.get("median") else "\N{EN DASH}"

    table = markdown_table(
        ("case", "reps", "median s", "min s", "max s", "tasks/s", "results"),
        (
            (
                LABELS[r["key"]],
                r["reps"],
                fmt_s(r.get("median")),
                fmt_s(min(r["seconds"], default=None)),
                fmt_s(max(r["seconds"], default=None)),
                per_sec(r),
                r["error"] or ("ok" if r["correct"] else "**WRONG**"),
            )
            for r in rows.values()
        ),
        right=range(1, 6),
    )
    notes = [
        f"One cluster for every case: `forklift cluster scheduler` + `forklift cluster worker --procs {WORKERS}` "
        f"(TLS, 1 thread per process) on 127.0.0.1, up with {WORKERS} workers in {fmt_s(cluster_startup)} s; "
        "client, scheduler and workers share the machine's 2 cores.",
        f"Median of {args.reps} timed calls per case ({args.slow_reps} for raw tiny), round-robin. "
        "Raw = `client.map(f, xs, pure=False)` then `client.gather` (one Dask task per item).",
        f"{calibration} Serial time of the {args.cpu_n} CPU tasks here: {fmt_s(serial)} s.",
    ]
    local = rows.get("local start")
    if local and local.get("close") is not None:
        notes.append(
            f"Embedded local cluster: close (`terminate()`) took {fmt_s(local['close'])} s (median)."
        )
    return render_report(
        "(i) forklift on Dask distributed vs raw Client.map, same cluster", table, notes, goal_rows
    )


def main() -> None:
    args = parse_args()
    if args.list:
        print("\n".join(f"{k}{' (slow)' if k in SLOW else ''}" for k in KEYS))
        return
    keys = select(KEYS, args.only, skip=SLOW if args.quick else ())
    n_burn = calibrate(args.task_ms)
    ms = timed(_tasks.burn, n_burn)[0] * 1000
    calibration = f"Calibration: `burn({n_burn})` = {ms:.2f} ms."
    log(calibration)
    cpu = [n_burn] * args.cpu_n
    serial, burned = timed(lambda: [_tasks.burn(x) for x in cpu])
    xs = list(range(args.n))
    data = {"xs": xs, "squares": [x * x for x in xs], "cpu": cpu, "burned": burned}
    from forklift import Pool

    with tempfile.TemporaryDirectory(prefix="forklift-bench-cluster-") as tmp:
        cluster = Cluster(Path(tmp))
        log(f"cluster up in {cluster.startup:.2f} s at {cluster.address}")
        try:
            with Pool(address=cluster.address, credentials=cluster.creds) as pool:
                pool.map(_tasks.square, range(100))  # warm: workers import _tasks
                cluster.client.gather(cluster.client.map(_tasks.square, range(100), pure=False))
                runs = round_robin(
                    keys,
                    reps=lambda key: args.slow_reps if key in SLOW else args.reps,
                    run=lambda key: run_once(key, cluster, pool, data),
                    describe=lambda s: f"{s['seconds']:.3f} s{'' if s['correct'] else ', WRONG results'}",
                )
        finally:
            cluster.stop()
    rows = {key: summarize(key, runs[key], args) for key in keys}
    goal_rows = goals(rows)
    print(report(rows, goal_rows, args, cluster.startup, calibration, serial))
    payload = {
        "rows": list(rows.values()),
        "goals": [g.__dict__ for g in goal_rows],
        "cluster_startup": cluster.startup,
    }
    write_json(args.json, "cluster", args, payload)


if __name__ == "__main__":
    main()

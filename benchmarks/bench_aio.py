"""Figure (n): process pools from asyncio: forklift.aio against run_in_executor(ProcessPoolExecutor) and aiomultiprocess.

Three measurements, each case on a fresh pool of 2 workers, cases round-robin:

* **throughput and loop lag**: --n tiny tasks (default 10,000) through each library's
  asyncio API, while a ticker coroutine asks to wake every 1 ms and records how late
  each wake-up is (the event loop's lag: what every other coroutine of the program
  waits). Cases: forklift.aio ``map`` and ``async for ... imap_unordered``;
  ``asyncio.gather`` of ``loop.run_in_executor(ProcessPoolExecutor)`` per task (the
  usual way), and its ``loop.run_in_executor(ppe, list, ppe.map(...))`` variant (one
  blocking map on a thread); aiomultiprocess ``Pool.map`` (its tasks are coroutines,
  run in the workers' own loops);
* **the issue's stream**: --stream tiny tasks (default 100,000) through forklift.aio's
  ``async for``, with the ticker: the loop's lag at that rate;
* **cancellation**: a call of a task that sleeps 3 s is cancelled after 0.2 s
  (``asyncio.wait_for``) on a pool of one worker; then one trivial call. How long that
  call waits says whether the cancelled task was stopped (forklift kills it and starts
  a new worker) or kept its worker busy to the end.
"""

from __future__ import annotations

import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))  # workers import _tasks by name

import asyncio
import statistics
import time
from concurrent.futures import ProcessPoolExecutor
from typing import Any

import _tasks
import forklift.aio
from _common import (
    WORKERS,
    Goal,
    base_parser,
    fmt,
    fmt_x,
    markdown_table,
    median,
    ratio,
    render_report,
    round_robin,
    select,
    write_json,
)

THROUGHPUT = (
    "forklift.aio.map",
    "forklift.aio.imap_unordered",
    "run_in_executor.gather",
    "run_in_executor.map",
    "aiomultiprocess.map",
)
CANCEL = ("forklift.aio", "run_in_executor", "aiomultiprocess")
TICK = 0.001


class Ticker:
    """Wakes every TICK seconds; records how late each wake-up was (the loop's lag)."""

    def __init__(self) -> None:
        self.lags: list[float] = []
        self._task: asyncio.Task[None] | None = None

    async def _run(self) -> None:
        loop = asyncio.get_running_loop()
        while True:
            due = loop.time() + TICK
            await asyncio.sleep(TICK)
            self.lags.append(max(0.0, loop.time() - due))

    def __enter__(self) -> Ticker:
        self._task = asyncio.get_running_loop().create_task(self._run())
        return self

    def __exit__(self, *exc: object) -> None:
        assert self._task is not None
        self._task.cancel()

    def summary(self) -> dict[str, float]:
        lags = sorted(self.lags) or [0.0]
        return {
            "lag_p50_ms": 1e3 * statistics.median(lags),
            "lag_p99_ms": 1e3 * lags[min(len(lags) - 1, int(0.99 * len(lags)))],
            "lag_max_ms": 1e3 * lags[-1],
            "ticks": len(self.lags),
        }


async def _throughput(key: str, xs: list[int]) -> dict[str, Any]:
    expected = [x * x for x in xs]
    if key.startswith("forklift"):
        async with forklift.aio.Pool(WORKERS) as pool:
            await pool.map(_tasks.square, range(50))  # warm
            with Ticker() as ticker:
                start = time.perf_counter()
                if key == "forklift.aio.map":
                    got = await pool.map(_tasks.square, xs)
                else:
                    got = sorted([r async for r in pool.imap_unordered(_tasks.square, xs)])
                seconds = time.perf_counter() - start
    elif key.startswith("run_in_executor"):
        loop = asyncio.get_running_loop()
        with ProcessPoolExecutor(WORKERS) as ppe:
            list(ppe.map(_tasks.square, range(50)))  # warm
            with Ticker() as ticker:
                start = time.perf_counter()
                if key == "run_in_executor.gather":
                    got = list(
                        await asyncio.gather(*(loop.run_in_executor(ppe, _tasks.square, x) for x in xs))
                    )
                else:
                    got = await loop.run_in_executor(
                        None, lambda: list(ppe.map(_tasks.square, xs, chunksize=64))
                    )
                seconds = time.perf_counter() - start
    else:
        import aiomultiprocess

        async with aiomultiprocess.Pool(WORKERS) as pool:
            await pool.map(_tasks.async_square, range(50))  # warm
            with Ticker() as ticker:
                start = time.perf_counter()
                got = await pool.map(_tasks.async_square, xs)
                seconds = time.perf_counter() - start
    return {"seconds": seconds, "correct": got == expected, **ticker.summary()}


async def _stream(n: int) -> dict[str, Any]:
    async with forklift.aio.Pool(WORKERS) as pool:
        await pool.map(_tasks.square, range(50))
        with Ticker() as ticker:
            start = time.perf_counter()
            total = 0
            async for r in pool.imap_unordered(_tasks.square, range(n)):
                total += r
            seconds = time.perf_counter() - start
    return {"seconds": seconds, "correct": total == sum(x * x for x in range(n)), **ticker.summary()}


async def _cancel(key: str) -> dict[str, Any]:
    """Cancel a 3 s task after 0.2 s on a 1-worker pool; how long does the next call wait?"""
    loop = asyncio.get_running_loop()

    async def cancel_then_next(call_sleep, call_next) -> float:
        try:
            await asyncio.wait_for(call_sleep(), 0.2)
        except asyncio.TimeoutError:
            pass
        start = time.perf_counter()
        assert await call_next() == 49
        return time.perf_counter() - start

    if key == "forklift.aio":
        async with forklift.aio.Pool(1) as pool:
            await pool.apply(_tasks.square, (1,))
            wait = await cancel_then_next(
                lambda: pool.apply(_tasks.nap, (3.0, 0)), lambda: pool.apply(_tasks.square, (7,))
            )
    elif key == "run_in_executor":
        with ProcessPoolExecutor(1) as ppe:
            await loop.run_in_executor(ppe, _tasks.square, 1)
            wait = await cancel_then_next(
                lambda: loop.run_in_executor(ppe, _tasks.nap, 3.0, 0),
                lambda: loop.run_in_executor(ppe, _tasks.square, 7),
            )
    else:
        import aiomultiprocess

        async with aiomultiprocess.Pool(1, childconcurrency=1) as pool:
            await pool.apply(_tasks.async_square, (1,))
            wait = await cancel_then_next(
                lambda: pool.apply(_tasks.async_nap, (3.0, 0)), lambda: pool.apply(_tasks.async_square, (7,))
            )
    return {"next_call_s": wait}


def main() -> None:
    parser = base_parser(__doc__.split("\n\n")[0], epilog=__doc__.split("\n\n", 1)[1])
    parser.add_argument("--n", type=int, default=10_000, help="tasks of the throughput case (default 10000)")
    parser.add_argument(
        "--stream", type=int, default=100_000, help="tasks of forklift's stream (default 100000)"
    )
    parser.add_argument("--reps", type=int, help="runs per case (default 3; 1 with --quick)")
    args = parser.parse_args()
    keys = select(THROUGHPUT, args.only)
    if args.list:
        print("\n".join([*THROUGHPUT, "stream", *(f"cancel:{k}" for k in CANCEL)]))
        return
    reps = args.reps or (1 if args.quick else 3)
    xs = list(range(args.n))

    runs = round_robin(keys, lambda _: reps, lambda k: asyncio.run(_throughput(k, xs)), _describe)
    stream = round_robin(["stream"], lambda _: reps, lambda _: asyncio.run(_stream(args.stream)), _describe)
    cancel = round_robin(
        list(CANCEL), lambda _: reps, lambda k: asyncio.run(_cancel(k)), lambda m: f"{m['next_call_s']:.3f} s"
    )

    def med(samples: list[dict[str, Any]], field: str) -> float | None:
        return median([s[field] for s in samples])

    base = (
        med(runs["run_in_executor.gather"]["samples"], "seconds")
        if "run_in_executor.gather" in runs
        else None
    )
    rows = []
    for key in keys:
        s = runs[key]["samples"]
        ok = bool(s) and all(x["correct"] for x in s)
        secs = med(s, "seconds")
        rows.append(
            (
                f"**{key}**" if key.startswith("forklift") else key,
                fmt(secs),
                f"{args.n / secs:,.0f}" if secs else "n/a",
                fmt_x(ratio(base, secs)),
                fmt(med(s, "lag_p50_ms"), 2),
                fmt(med(s, "lag_p99_ms"), 2),
                fmt(med(s, "lag_max_ms"), 1),
                "yes" if ok else (runs[key]["error"] or "NO"),
            )
        )
    table1 = markdown_table(
        (
            "case",
            "median s",
            "tasks/s",
            "speed vs gather(run_in_executor)",
            "lag p50 ms",
            "lag p99 ms",
            "lag max ms",
            "correct",
        ),
        rows,
        right=range(1, 7),
    )
    ss = stream["stream"]["samples"]
    table2 = markdown_table(
        ("case", "median s", "tasks/s", "lag p50 ms", "lag p99 ms", "lag max ms", "correct"),
        [
            (
                f"**forklift.aio imap_unordered, {args.stream:,} tasks**",
                fmt(med(ss, "seconds")),
                f"{args.stream / med(ss, 'seconds'):,.0f}" if ss else "n/a",
                fmt(med(ss, "lag_p50_ms"), 2),
                fmt(med(ss, "lag_p99_ms"), 2),
                fmt(med(ss, "lag_max_ms"), 1),
                "yes" if ss and all(x["correct"] for x in ss) else "NO",
            )
        ],
        right=range(1, 6),
    )
    table3 = markdown_table(
        ("pool of 1 worker", "next call after cancelling a 3 s task, median s"),
        [(k, fmt(med(cancel[k]["samples"], "next_call_s"))) for k in CANCEL],
        right=[1],
    )
    fk = med(runs.get("forklift.aio.imap_unordered", {"samples": []})["samples"], "seconds")
    fk_lag = med(ss, "lag_p99_ms")
    goals = [
        Goal(
            f"forklift.aio async for: no slower than gather(run_in_executor), {args.n:,} tiny tasks",
            fmt_x(ratio(base, fk)),
            None if base is None or fk is None else fk <= base,
        ),
        Goal(
            f"the loop stays responsive while {args.stream:,} results stream through async for (p99 lag <= 5 ms)",
            f"p99 {fmt(fk_lag, 2)} ms",
            None if fk_lag is None else fk_lag <= 5.0,
        ),
        Goal(
            "a cancelled call's task is stopped: the next call on a 1-worker pool waits < 1 s",
            f"{fmt(med(cancel['forklift.aio']['samples'], 'next_call_s'))} s",
            None
            if not cancel["forklift.aio"]["samples"]
            else med(cancel["forklift.aio"]["samples"], "next_call_s") < 1.0,
        ),
    ]
    notes = [
        f"{WORKERS} workers per pool (the cancellation rows: 1); median of {reps} runs; the ticker asks to wake every {TICK * 1e3:.0f} ms and records how late it woke.",
        "run_in_executor.map runs one blocking ppe.map on the loop's default thread pool, so the loop is free but gets every result at the end.",
        "aiomultiprocess runs coroutines: its task is `async def async_square(x)`; childconcurrency 16 (its default).",
    ]
    sections = [
        f"### {args.n:,} tiny tasks\n\n{table1}",
        f"### forklift.aio's stream\n\n{table2}",
        f"### Cancellation\n\n{table3}",
    ]
    print(render_report("(n) Process pools from asyncio", "\n\n".join(sections), notes, goals))
    write_json(args.json, "aio", args, {"throughput": runs, "stream": stream, "cancel": cancel})


def _describe(m: dict[str, Any]) -> str:
    return f"{m['seconds']:.3f} s, lag p99 {m['lag_p99_ms']:.2f} ms"


if __name__ == "__main__":
    main()

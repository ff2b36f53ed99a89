"""forklift demo: watch a process pool put every CPU to work, in 5 to 10 seconds.

It counts the divisors of 20,000 numbers from 10,000,000 up, by plain trial
division (a fraction of a millisecond of pure Python each): first on a forklift
Pool, one worker per CPU, with a progress bar; then again in an ordinary loop in
this process. It checks that both found the same counts and prints the speedup,
and the effective parallelism: how many tasks ran at once on average (time spent
inside the tasks / the pool's wall time), which hardly suffers, unlike the
speedup, when other programs share the CPUs.

The loop takes 3 to 4 s on one core of a recent machine, the pool about that
divided by the number of CPUs. Nothing to set up: no server, no files. --tasks
sets the amount of work, --no-serial skips the loop.
"""

from __future__ import annotations

import argparse
import os
import sys
import time

from ._args import positive

START = 10_000_000
SLOWER = 1.25  # the tasks took this much longer in the pool than in the loop: the machine was busy


def count_divisors(n: int) -> int:
    """Trial division: deliberately plain Python, so every input costs real CPU."""
    count = 0
    d = 1
    while d * d < n:
        if n % d == 0:
            count += 2
        d += 1
    return count + (d * d == n)


def register(sub: argparse._SubParsersAction) -> None:  # type: ignore[type-arg]
    p = sub.add_parser(
        "demo",
        help="watch a pool put every CPU to work, against a plain loop (5-10 s)",
        description=__doc__,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    p.add_argument("-n", "--tasks", type=positive, default=20_000, help="inputs to map (default 20000)")
    p.add_argument("-j", "--workers", type=positive, default=None, help="worker processes (default: CPUs)")
    p.add_argument("--no-serial", action="store_true", help="skip the serial comparison run")
    p.set_defaults(func=run)


def timed_count(n: int) -> tuple[float, int]:
    """``count_divisors(n)``, and the seconds it took inside the worker."""
    start = time.perf_counter()
    count = count_divisors(n)
    return time.perf_counter() - start, count


def run(args: argparse.Namespace) -> int:
    from ..pool import Pool  # here, not at the top: every other command would pay its import

    numbers = range(START, START + args.tasks)
    workers = args.workers or os.cpu_count() or 1
    print(f"forklift demo: count the divisors of {args.tasks:,} numbers from {START:,} ({workers} workers)")
    t0 = time.perf_counter()
    with Pool(workers, progress="divisors") as pool:
        mapped = time.perf_counter()
        timed = pool.map(timed_count, numbers)
        map_wall = time.perf_counter() - mapped
        stats = pool.statistics()
    wall = time.perf_counter() - t0
    counts = [count for _, count in timed]
    in_tasks = sum(seconds for seconds, _ in timed)
    best = max(range(len(counts)), key=counts.__getitem__)
    print(f"  tasks     {stats.tasks_done:,} done, {stats.tasks_failed} failed")
    print(f"  workers   {workers} ({pool.start_method})")
    print(f"  result    {numbers[best]:,} has the most divisors: {counts[best]}")
    print(f"  wall time {wall:.2f} s (pool start-up included)")
    parallelism = f"{in_tasks / map_wall:.2f}x effective parallelism (time inside tasks / wall time)"
    if args.no_serial:
        print(f"  parallel  {parallelism}")
        return 0
    print("  timing the same work as a plain serial loop ...", file=sys.stderr)
    t0 = time.perf_counter()
    serial = [count_divisors(n) for n in numbers]
    serial_wall = time.perf_counter() - t0
    if serial != counts:
        print("error: the pool's results differ from the serial loop's", file=sys.stderr)
        return 1
    print(f"  serial    {serial_wall:.2f} s, same results")
    print(f"  speedup   {serial_wall / wall:.2f}x on {workers} workers; {parallelism}")
    if in_tasks > SLOWER * serial_wall:
        print(
            f"  note      the tasks took {in_tasks:.2f} s in the pool, {serial_wall:.2f} s in the loop:"
            " other programs had the CPUs part of the time"
        )
    return 0

"""Beyond the tutorial: process pools from asyncio code, with forklift.aio.

An async web service or crawler that must run CPU-bound work (parsing, hashing,
resizing) without blocking its event loop usually reaches for
``loop.run_in_executor(ProcessPoolExecutor())``: no per-task timeout, a dead worker
breaks the executor, and cancelling the awaiting task leaves the work running in
the background. ``forklift.aio.Pool`` is awaited directly, keeps the loop free, and
a cancelled call kills its running task (and the task's children).
"""

import asyncio
import hashlib
import time

import forklift.aio


def digest(n: int) -> str:
    """CPU work: hash a megabyte derived from n."""
    return hashlib.sha256(str(n).encode() * 150_000).hexdigest()[:12]


def stuck(seconds: float) -> float:
    time.sleep(seconds)
    return seconds


async def ticker(counter: list[int]) -> None:
    """Runs all along: it only advances while nothing blocks the event loop."""
    while True:
        await asyncio.sleep(0.01)
        counter[0] += 1


async def main() -> None:
    ticks = [0]
    tick_task = asyncio.create_task(ticker(ticks))
    async with forklift.aio.Pool(2) as pool:
        print("apply:", await pool.apply(digest, (1,)))
        print("map:", await pool.map(digest, range(3)))
        futures = [pool.submit(digest, n) for n in range(3)]  # asyncio futures, at once
        print("submit + gather:", await asyncio.gather(*futures))
        done = sorted([d async for d in pool.imap_unordered(digest, range(40))])
        print("imap_unordered:", len(done), "digests")
        # Cancellation is real: the timed-out call's task is killed, not left running.
        before = set(pool.pool.worker_pids())
        try:
            await asyncio.wait_for(pool.apply(stuck, (60,)), timeout=0.5)
        except asyncio.TimeoutError:
            print("gave up on stuck(60) at the 0.5 s timeout")
        print("the pool goes on:", await pool.apply(digest, (1,)))
        for _ in range(500):  # the kill and the new worker take a few ms, off the loop
            if set(pool.pool.worker_pids()) != before:
                break
            await asyncio.sleep(0.01)
        replaced = set(pool.pool.worker_pids()) != before
        print("the worker that ran stuck(60) was killed and replaced:", replaced)
    tick_task.cancel()
    print("the event loop ran all along:", ticks[0] > 20)


if __name__ == "__main__":
    asyncio.run(main())

"""Tutorial: 进程同步 > Event (processes wait until another one sets an event).

forklift.Event as in multiprocessing: wait() blocks until set(); wait(timeout)
returns False if the timeout passed first.
"""

# Fixes to the tutorial's code: its logic never waited. The first process found the
# event clear and set it; each later one found it set, so wait() returned at once,
# it printed and cleared it; the next found it clear and set it again... Nobody
# waited for anybody, and which numbers printed was luck. Here five workers wait
# for the event, and the main process sets it when the "resource" is ready.
# "hello word" -> "hello world".

import time

import forklift


def f(e, i: int) -> str:
    if not e.wait(timeout=10):
        return f"worker {i} gave up"
    return f"hello world {i}"


def main() -> None:
    e = forklift.Event()
    workers = [forklift.Process(target=f, args=(e, num)) for num in range(5)]
    for w in workers:
        w.start()
    time.sleep(0.2)  # prepare the resource the workers wait for
    print(f"before set(): is_set={e.is_set()}, any worker done: {any(not w.is_alive() for w in workers)}")
    e.set()
    for w in workers:
        print(w.result(timeout=10))
    e.clear()
    print(f"after clear(): wait(0.1) returns {e.wait(0.1)}")


if __name__ == "__main__":
    main()

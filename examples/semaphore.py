"""Tutorial: 进程同步 > Semaphore (at most two of three processes at a time).

forklift.Semaphore as in multiprocessing. Events replace the tutorial's sleeps,
so the order is the same on every run: processes 1 and 2 get in, process 3
finds both places taken and waits, and gets in once one of them leaves.
"""

# Fixes to the tutorial's code:
# - the functions used a global ``s`` assigned under ``if __name__ == "__main__"``:
#   under spawn or forkserver that global does not exist in the child (NameError),
#   it only worked with fork. The semaphore is passed as an argument;
# - mixed tabs and spaces (a TabError); three copies of one function -> one;
# - "print('process release')" in process3 -> "process3 release";
# - the main process did not join its children;
# - 5 s sleeps timed against 1 s start-up delays (the order was luck): events.

import forklift


def visit(name: str, s, inside, most, entered, leave) -> None:
    print(f"{name} try to start", flush=True)
    s.acquire()
    try:
        with inside.get_lock():
            inside.value += 1
            most.value = max(most.value, inside.value)
        print(f"{name} acquire", flush=True)
        entered.set()
        leave.wait(10)  # stay inside until the main process says so
        with inside.get_lock():
            inside.value -= 1
        print(f"{name} release", flush=True)
    finally:
        s.release()


def main() -> None:
    s = forklift.Semaphore(2)  # at most two processes inside at once
    inside, most = forklift.Value("i", 0), forklift.Value("i", 0)
    procs = {}
    for name in ("process1", "process2", "process3"):
        entered, leave = forklift.Event(), forklift.Event()
        p = forklift.Process(target=visit, args=(name, s, inside, most, entered, leave))
        p.start()
        procs[name] = (p, entered, leave)
        if name != "process3":
            entered.wait(10)

    entered3 = procs["process3"][1]
    print(f"process3 inside while 1 and 2 hold the semaphore: {entered3.wait(0.3)}")
    procs["process1"][2].set()  # process1 leaves
    print(f"process3 inside after process1 left: {entered3.wait(10)}")
    for _, _, leave in procs.values():
        leave.set()
    for p, _, _ in procs.values():
        p.join()
    print(f"most processes inside at once: {most.value}")


if __name__ == "__main__":
    main()

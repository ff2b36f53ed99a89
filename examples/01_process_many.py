"""Tutorial: Process > 创建多个进程 (several processes and active_children()).

forklift.Process and forklift.active_children() behave as in multiprocessing;
the example is bounded: each child runs three rounds instead of forever.
"""

# Fixes to the tutorial's code:
# - p.id -> p.pid (Process has no "id"; the tutorial raised AttributeError);
# - mixed tabs and spaces (a TabError before anything ran);
# - the three endless loops are bounded (3 rounds, 0.1 s apart) and the main
#   process joins its children;
# - "runing" -> "running"; the checked lines print names, not pids.

import time

import forklift


def work(name: str, interval: float, rounds: int) -> None:
    for i in range(rounds):
        print(f"{name} is running ({i + 1}/{rounds})", flush=True)
        time.sleep(interval)


def main() -> None:
    p1 = forklift.Process(target=work, name="process1", args=("process1", 0.1, 3))
    p2 = forklift.Process(target=work, name="process2", args=("process2", 0.1, 3))
    p1.start()
    p2.start()

    names = sorted(p.name for p in forklift.active_children())
    print(f"alive children: {', '.join(names)}")
    for p in forklift.active_children():
        print(f"child process {p.name}, pid {p.pid}, is alive")  # pid, not the tutorial's p.id
    print("main process is running")

    p1.join()
    p2.join()
    print(f"alive children after join: {len(forklift.active_children())}")


if __name__ == "__main__":
    main()

"""Tutorial: Process > 在子类中使用 (subclassing Process, overriding run()).

forklift.Process can be subclassed the same way: override ``__init__`` (call
super) and ``run``; ``start()`` calls ``run()`` in the child.
"""

# Fixes to the tutorial's code:
# - mixed tabs and spaces in __init__ (an IndentationError);
# - both endless loops are bounded (3 rounds, 0.1 s) and the child is joined;
# - super().__init__() instead of naming the base class; "runing" -> "running".

import time

import forklift


class ChildProcess(forklift.Process):
    def __init__(self, interval: float, rounds: int) -> None:
        super().__init__()
        self.interval = interval
        self.rounds = rounds

    def run(self) -> None:
        for i in range(self.rounds):
            print(f"ChildProcess is running ({i + 1}/{self.rounds})", flush=True)
            time.sleep(self.interval)


def main() -> None:
    p = ChildProcess(0.1, 3)
    p.start()
    for i in range(3):
        print(f"MainProcess is running ({i + 1}/3)", flush=True)
        time.sleep(0.1)
    p.join()
    print(f"ChildProcess exit code: {p.exitcode}")


if __name__ == "__main__":
    main()

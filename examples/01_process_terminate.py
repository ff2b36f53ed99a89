"""Tutorial: Process > 杀死进程 (terminate a process).

terminate() sends SIGTERM to the process only: children it started live on.
forklift.Process adds kill_tree(), which kills the process and everything it
started (see kill_tree.py).
"""

# Fixes to the tutorial's code:
# - it printed is_alive() right after terminate(): that can still say True (the
#   signal is not delivered instantly), so the state is printed after join();
# - it printed the Process repr, which holds the pid; the checked lines do not.

import signal
import time

import forklift


def foo() -> None:
    print("Starting function", flush=True)
    time.sleep(0.1)
    print("Finished function", flush=True)


def main() -> None:
    p = forklift.Process(target=foo)
    print(f"Process before execution: alive={p.is_alive()}")
    p.start()
    print(f"Process running: alive={p.is_alive()}")
    p.terminate()
    p.join()
    print(f"Process terminated and joined: alive={p.is_alive()}")
    print(f"Process exit code: {p.exitcode} (-SIGTERM is {-signal.SIGTERM})")


if __name__ == "__main__":
    main()

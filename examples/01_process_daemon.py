"""Tutorial: Process > 在后台运行进程 (daemon processes).

A daemon process is killed when the main process exits; a non-daemon one is
waited for. forklift.Process keeps the multiprocessing meaning of ``daemon``.
"""

# Fixes to the tutorial's code:
# - its output depended on timing: the main process did not wait for anything,
#   so whether the daemon printed "Starting" at all was luck. Here the daemon
#   sleeps longer than the other process; the main process joins the non-daemon
#   one and exits, which kills the daemon before its "Exiting" line;
# - "Exting" -> "Exiting"; the sleeps are 0.2 s / 2 s instead of 3 s.

import time

import forklift


def foo(seconds: float) -> None:
    name = forklift.current_process().name
    print(f"Starting {name}", flush=True)
    time.sleep(seconds)
    print(f"Exiting {name}", flush=True)


def main() -> None:
    background_process = forklift.Process(name="background_process", target=foo, args=(2.0,))
    background_process.daemon = True  # killed when the main process exits
    no_background_process = forklift.Process(name="NO_background_process", target=foo, args=(0.2,))
    no_background_process.daemon = False
    background_process.start()
    no_background_process.start()
    no_background_process.join()
    print(f"main exits; the daemon is still running: {background_process.is_alive()}")


if __name__ == "__main__":
    main()

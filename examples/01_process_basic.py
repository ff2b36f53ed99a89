"""Tutorial: Process > 创建进程 (create a process: run_proc).

forklift.Process is multiprocessing.Process with two additions shown here:
``result(timeout)`` returns what the target returned (or raises what it raised),
so no Queue is needed to get a value back; ``kill_tree()`` is in kill_tree.py.
"""

# Fixes to the tutorial's code: none needed; the child's print is flushed so its
# line appears before "Child process end." even when stdout is a pipe.

import os

import forklift


def run_proc(name: str) -> str:
    print(f"Run child process {name} ({os.getpid()})...", flush=True)
    return name.upper()


def divide(a: float, b: float) -> float:
    return a / b


def main() -> None:
    print(f"Parent process {os.getpid()}.")
    p = forklift.Process(target=run_proc, args=("test",))
    print("Child process will start.")
    p.start()
    p.join()
    print("Child process end.")
    print(f"exit code: {p.exitcode}")
    print(f"result: {p.result(timeout=5)}")

    # The target's exception comes back from result(), with its own type (the child
    # also prints its traceback on stderr before it exits, as multiprocessing does).
    p = forklift.Process(target=divide, args=(1, 0))
    p.start()
    try:
        p.result(timeout=5)
    except ZeroDivisionError as exc:
        print(f"result raised ZeroDivisionError: {exc}")


if __name__ == "__main__":
    main()

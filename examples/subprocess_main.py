"""Tutorial: Subprocess > 示例 (the main program: run funcs.py with JSON and read its output).

Runs subprocess_funcs.py with subprocess.run(), which waits, collects stdout and
stderr and enforces a timeout in one call. The standard library's subprocess,
unchanged by forklift; see subprocess_pool.py for many commands in parallel.
"""

# Fixes to the tutorial's code:
# - p.wait() before p.communicate() with stdout=PIPE: a child that writes more
#   than the pipe holds (64 KiB) blocks on the full pipe while the parent waits
#   for it to exit: a deadlock (the subprocess docs warn about it). subprocess.run
#   (or communicate() alone) reads while it waits;
# - "python3" -> sys.executable (the same interpreter, venv included);
# - stderr was printed as raw bytes: it is decoded, and only its last line shown;
# - a second call divides by zero to show what a failing child looks like.

import os
import subprocess
import sys

FUNCS = os.path.join(os.path.dirname(os.path.abspath(__file__)), "subprocess_funcs.py")


def call_funcs(request: str) -> None:
    done = subprocess.run(
        [sys.executable, FUNCS, request], capture_output=True, text=True, timeout=30, check=False
    )
    print(f"request {request}: exit code {done.returncode}")
    print(f"  out: {done.stdout.strip()}")
    if done.stderr:
        print(f"  err: {done.stderr.strip().splitlines()[-1]}")


def main() -> None:
    call_funcs('{"a": 1, "b": 1}')
    call_funcs('{"a": 1, "b": 0}')


if __name__ == "__main__":
    main()

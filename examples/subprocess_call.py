"""Tutorial: Subprocess > 介绍 (subprocess.call: run a command, get its exit code).

This is the standard library's subprocess module, which forklift does not
replace; running many commands in parallel, with a timeout that also kills
what they started, is subprocess_pool.py.
"""

# Fixes to the tutorial's code:
# - "nslookup www.python.org" needs nslookup installed and a network: a Python
#   child (sys.executable, not "python3") prints a line instead;
# - stdout is flushed before the call: the child writes straight to the shared
#   stdout while the parent's "$ ..." line still sat in its buffer, so with stdout
#   a pipe or file the child's line came first.

import subprocess
import sys


def main() -> None:
    print("$ python -c \"print('hello from a child process')\"", flush=True)
    r = subprocess.call([sys.executable, "-c", "print('hello from a child process')"])
    print("Exit code:", r)


if __name__ == "__main__":
    main()

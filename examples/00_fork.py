"""Tutorial: 概述 > fork (the os.fork() example that opens the tutorial).

forklift changes nothing here: os.fork() is the system call under every process
on Linux, and this example shows what it does (one call, two returns). Use
forklift.Process (01_process_basic.py) in real code: it is portable and, by
default, starts children with the forkserver method, which is safe in programs
that run threads (a bare fork() copies only the calling thread and any lock
another thread held at that moment stays locked forever in the child).
"""

# Fixes to the tutorial's code:
# - stdout is flushed before fork(): when stdout is a file or a pipe the text
#   printed before fork() is still in the buffer, which the child inherits, so the
#   tutorial printed "Process (...) start..." twice;
# - the parent waits for the child (os.waitpid) instead of leaving a zombie and
#   racing it for the terminal, so the order of the lines is fixed;
# - the child leaves with os._exit(0) (after flushing) so it never runs the
#   parent's code after the if/else;
# - the lines checked by tests/test_examples.py hold no pids.

import os
import sys


def main() -> None:
    parent = os.getpid()
    print(f"Process ({parent}) start...")
    sys.stdout.flush()  # or the child inherits (and prints again) the unflushed line
    pid = os.fork()  # Unix only
    if pid == 0:
        print("child: fork() returned 0")
        print(f"child: my parent is the process that called fork(): {os.getppid() == parent}")
        sys.stdout.flush()
        os._exit(0)  # skip the parent's code and its atexit handlers
    _, status = os.waitpid(pid, 0)
    print("parent: fork() returned the child's pid")
    print(f"parent: child exited with code {os.waitstatus_to_exitcode(status)}")


if __name__ == "__main__":
    main()

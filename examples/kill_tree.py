"""Tutorial: 强制杀死所有进程 (kill a process and all its descendants).

forklift.kill_tree(pid) kills a process tree; forklift.Process.kill_tree()
does it for that process. The tutorial's psutil walk collects the children
once and then kills them, so a child forked in between survives;
forklift.kill_tree freezes the tree first (SIGSTOP, walking until nothing new
appears), signals every member, and says who ended how. Here a child starts two
grandchildren (sleeping commands) and the whole tree is killed, twice: once by
pid, once by method. ``forklift kill PID`` does the same from the shell.
"""

# Fixes to the tutorial's code:
# - it killed its own tree, parent included (me = os.getpid(), including_parent
#   defaults to True): the script SIGKILLed itself and any caller saw exit -9.
#   A child's tree is killed instead;
# - mixed tab indentation under the main guard (a TabError).

import signal
import subprocess
import sys
import time

import psutil

import forklift

SLEEPER = [sys.executable, "-c", "import time; time.sleep(60)"]


def parent_of_two(ready) -> None:
    """Start two grandchildren, report their pids, then wait forever (bounded)."""
    kids = [subprocess.Popen(SLEEPER) for _ in range(2)]
    ready.put([k.pid for k in kids])
    time.sleep(60)


def gone(pid: int, within: float = 5.0) -> bool:
    """True once ``pid`` no longer runs (a zombie waiting for its reaper counts as gone)."""
    deadline = time.monotonic() + within
    while time.monotonic() < deadline:
        try:
            if psutil.Process(pid).status() == psutil.STATUS_ZOMBIE:
                return True
        except psutil.NoSuchProcess:
            return True
        time.sleep(0.05)
    return False


def start_tree():
    ready = forklift.Queue()
    child = forklift.Process(target=parent_of_two, args=(ready,))
    child.start()
    return child, ready.get(timeout=10)


def main() -> None:
    child, grandchildren = start_tree()
    result = forklift.kill_tree(child.pid, sig=signal.SIGKILL)
    print(result)
    signalled = result.pids
    child.join(timeout=10)
    print(
        f"kill_tree(pid) signalled the child and both grandchildren: "
        f"{set(signalled) >= {child.pid, *grandchildren}}"
    )
    print(f"all gone: {all(gone(pid) for pid in [child.pid, *grandchildren])}")
    print(f"child exit code: {child.exitcode}")

    child, grandchildren = start_tree()
    child.kill_tree()
    child.join(timeout=10)
    print(f"Process.kill_tree(): all gone: {all(gone(pid) for pid in [child.pid, *grandchildren])}")


if __name__ == "__main__":
    main()

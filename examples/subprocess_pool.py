"""Tutorial: Subprocess, in parallel: commands run by a forklift.Pool with a per-task timeout.

The tutorial runs one command at a time. Here a Pool runs several at once, and
``timeout=`` bounds each task. A command that hangs is the case the standard
library handles worst: killing a multiprocessing worker leaves the command it
started running, orphaned. forklift kills the timed-out task's worker *with its
process tree* (each worker leads its own process group), so the hung command
goes too; the task fails with forklift.TaskTimeout and the pool goes on.
"""

import os
import subprocess
import sys
import tempfile
import time

import psutil

import forklift

COMMANDS = {
    "answer": [sys.executable, "-c", "print(6 * 7)"],
    "fails": [sys.executable, "-c", "import sys; sys.exit(3)"],
    "hangs": [sys.executable, "-c", "import time; time.sleep(60)"],
}


def run_command(args: list[str], pid_file: str) -> tuple[int, str]:
    with subprocess.Popen(args, stdout=subprocess.PIPE, text=True) as proc:
        with open(pid_file, "w") as f:
            f.write(str(proc.pid))
        out, _ = proc.communicate()
    return proc.returncode, out.strip()


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


def main() -> None:
    with tempfile.TemporaryDirectory() as tmp, forklift.Pool(3, timeout=2) as pool:
        pid_files = {name: os.path.join(tmp, name + ".pid") for name in COMMANDS}
        results = {
            name: pool.apply_async(run_command, (args, pid_files[name])) for name, args in COMMANDS.items()
        }
        for name, result in results.items():
            try:
                code, out = result.get(timeout=30)
                print(f"{name}: exit code {code}, output {out!r}")
            except forklift.TaskTimeout:
                print(f"{name}: TaskTimeout after 2 s")
        with open(pid_files["hangs"]) as f:
            hung_pid = int(f.read())
        print(f"the hung command was killed with its worker: {gone(hung_pid)}")
        print(f"the pool goes on: {pool.apply(run_command, (COMMANDS['answer'], pid_files['answer']))}")


if __name__ == "__main__":
    main()

"""Tutorial: Subprocess > 介绍 (Popen.communicate: feed a command its input).

The standard library's subprocess module, unchanged by forklift.
"""

# Fixes to the tutorial's code: the interactive nslookup session ("set q=mx",
# "python.org", "exit") needs nslookup and a network; a small Python child reads
# the same three lines from stdin and answers each, so the run is the same
# everywhere. communicate() also takes a timeout here, so a child that never
# reads its input cannot hang the parent.

import subprocess
import sys

CHILD = """
import sys
for line in sys.stdin:
    command = line.strip()
    if command == "exit":
        break
    print(f"> {command}: ok")
"""


def main() -> None:
    print("$ child (reads commands from stdin)")
    p = subprocess.Popen(
        [sys.executable, "-c", CHILD], stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=subprocess.PIPE
    )
    output, err = p.communicate(b"set q=mx\npython.org\nexit\n", timeout=30)
    print(output.decode("utf-8"), end="")
    if err:
        print("stderr:", err.decode("utf-8"))
    print("Exit code:", p.returncode)


if __name__ == "__main__":
    main()

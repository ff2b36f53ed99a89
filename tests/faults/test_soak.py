"""The randomized fault soak (soak.py), a few seconds per start method.

soak.py calls one Pool(2) and one Executor(2) with a seeded mix of map, map_async, imap,
imap_unordered, apply, apply_async, submit and Executor.map while workers are SIGKILLed,
futures cancelled, calls interrupted (KeyboardInterrupt) and, with ``--journal``, the
journal's SQLite lock held from another connection; at the end another thread closes or
terminates both while calls are still being made. Every outcome must be one the failure
contract allows, every item accounted for once, and nothing left behind: no process, fd or
thread. See soak.py's docstring for the rules.

Here each start method runs ``SECONDS`` (4) with a fixed seed, the journal on for fork and
spawn. A longer soak, e.g. before a release::

    FORKLIFT_SOAK_SECONDS=300 .venv/bin/python -m pytest tests/faults/test_soak.py
    FORKLIFT_SOAK_SECONDS=60 FORKLIFT_SOAK_SEED=123 .venv/bin/python -m pytest tests/faults/test_soak.py

(the seed is added to each case's own). ``benchmarks/soak.py`` runs the program directly,
with and without the journal, and prints a PASS/FAIL table. To replay a failure, run the
command the assertion message shows.
"""

import faulthandler
import json
import os
import subprocess
import sys

import pytest

SOAK = os.path.join(os.path.dirname(__file__), "soak.py")
SECONDS = float(os.environ.get("FORKLIFT_SOAK_SECONDS", "4"))
SEED = int(os.environ.get("FORKLIFT_SOAK_SEED", "0"))
CASES = {"fork": (101, True), "forkserver": (202, False), "spawn": (303, True)}  # seed, --journal
HANG_SECONDS = 30  # a call stuck this long is a hang (the longest legitimate one takes a few s)
LIMIT = SECONDS + HANG_SECONDS + 60  # start-up, warm-up, teardown and the leak checks' waits


@pytest.mark.slow
@pytest.mark.timeout(LIMIT + 30)
def test_soak(start_method):
    faulthandler.dump_traceback_later(LIMIT + 60, exit=True)  # conftest's backstop is 240 s
    seed, journal = CASES[start_method]
    cmd = [
        sys.executable,
        SOAK,
        "--seconds",
        str(SECONDS),
        "--seed",
        str(seed + SEED),
        "--start-method",
        start_method,
        "--hang-seconds",
        str(HANG_SECONDS),
        *(["--journal"] if journal else []),
    ]
    replay = " ".join(cmd)
    try:
        out = subprocess.run(cmd, capture_output=True, text=True, timeout=LIMIT)
    except subprocess.TimeoutExpired as exc:
        err = exc.stderr.decode(errors="replace") if isinstance(exc.stderr, bytes) else exc.stderr or ""
        pytest.fail(f"no end after {LIMIT} s: {replay}\n{err[-6000:]}")
    lines = out.stdout.strip().splitlines()
    assert lines, f"no report (exit {out.returncode}): {replay}\n{out.stderr[-6000:]}"
    report = json.loads(lines[-1])
    summary = f"{replay}\n{json.dumps(report, indent=1)}\n{out.stderr[-6000:]}"
    assert out.returncode == 0 and report["findings"] == 0, summary
    assert report["leaks"] == [], summary
    # The faults did land: calls were made and checked, workers killed, calls interrupted.
    assert report["results_ok"] > 100, summary
    assert report.get("kills", 0) > 0 and report.get("interrupted", 0) > 0, summary

"""Scripts that start a pool, run as newcomers run them: without the ``__main__`` guard, from
stdin, with a main module that fails in the workers. Under spawn and forkserver every worker
imports the main module again as it starts; each mistake must end in one message saying what to
do, not a wall of tracebacks and a hint that blames a task."""

import os
import subprocess
import sys

import pytest

import forklift

NO_GUARD = """\
import forklift

def square(x):
    return x * x

with forklift.Pool(2, start_method={method!r}) as pool:
    print(pool.map(square, range(5)))
"""

GUARDED = """\
import forklift

{before}

def square(x):
    return x * x

if __name__ == "__main__":
    with forklift.Pool(2, start_method={method!r}) as pool:
        print(pool.map(square, range(5)))
"""


def _run(args, stdin=None):
    src = os.path.dirname(os.path.dirname(forklift.__file__))
    env = {**os.environ, "PYTHONPATH": os.pathsep.join([src, os.environ.get("PYTHONPATH", "")])}
    return subprocess.run(
        [sys.executable, *args], input=stdin, capture_output=True, text=True, timeout=60, env=env
    )


@pytest.mark.parametrize("method", ["forkserver", "spawn"])
def test_a_script_without_the_main_guard_gets_one_message_saying_what_to_do(tmp_path, method):
    script = tmp_path / "no_guard.py"
    script.write_text(NO_GUARD.format(method=method))
    done = _run([str(script)])
    assert done.returncode == 1
    assert done.stderr.count("Traceback") == 1, done.stderr  # the script's own; no worker's
    last = done.stderr.strip().splitlines()[-1]
    assert last == (
        f"forklift.errors.BrokenPoolError: {method} workers import the main module ({script}) again "
        "as they start, and it started a pool again: put the code that starts the pool under `if "
        '__name__ == "__main__":`, or use start_method="fork"'
    )
    script.write_text(NO_GUARD.format(method="fork"))  # what the message offers: it works
    assert _run([str(script)]).stdout == "[0, 1, 4, 9, 16]\n"


def test_a_script_read_from_stdin_is_refused_at_once_with_what_to_do():
    done = _run(["-"], stdin=GUARDED.format(before="", method="forkserver"))
    assert done.returncode == 1
    assert done.stderr.count("Traceback") == 1, done.stderr  # no worker started, none failed
    assert "FileNotFoundError" not in done.stderr
    assert done.stderr.strip().splitlines()[-1] == (
        "forklift.errors.BrokenPoolError: the main module is '<stdin>', not a file, and forkserver "
        "workers import it again as they start: save the script to a file and run that, or use "
        'start_method="fork"'
    )
    done = _run(["-"], stdin=GUARDED.format(before="", method="fork"))
    assert done.stdout == "[0, 1, 4, 9, 16]\n", done.stderr


def test_workers_that_fail_to_start_are_not_blamed_on_a_task(tmp_path):
    script = tmp_path / "fails_in_workers.py"
    before = 'if __name__ != "__main__":\n    raise RuntimeError("only in the workers")'
    script.write_text(GUARDED.format(before=before, method="forkserver"))
    done = _run([str(script)])
    assert done.returncode == 1
    assert "RuntimeError: only in the workers" in done.stderr  # the workers' own error, shown
    last = done.stderr.strip().splitlines()[-1]
    assert "before running any task" in last and "import the main module again" in last, last
    assert "in the task" not in last

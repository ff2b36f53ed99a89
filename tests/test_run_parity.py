"""``forklift run`` against GNU parallel on a table of cases: same output, exit status, joblog.

GNU parallel runs its jobs with $PARALLEL_SHELL; both tools get /bin/sh here so
the comparison is about the tools, not about bash vs dash. Where forklift
deliberately differs (a newline inside a ``:::`` argument stays one argument),
the case says so and is tested on its own.
"""

from __future__ import annotations

import os
import re
import shutil
import subprocess
import sys

import pytest

PARALLEL = shutil.which("parallel")
pytestmark = pytest.mark.skipif(
    PARALLEL is None, reason="GNU parallel is not installed (.ci/run installs the 'parallel' package)"
)

ENV = {**os.environ, "PARALLEL_SHELL": "/bin/sh", "LC_ALL": "C.UTF-8"}

NASTY = ["a b", "it's", 'say "hi"', "x$HOME", "a;b", "`id`", "$(echo pwned)", "a*b", "é", "-n", "a\\b", "{}"]

# (id, options and command, sources, stdin, compare output sorted?)
CASES = [
    (
        "replacements",
        ["echo", "{}", "{.}", "{/}", "{//}", "{/.}", "{#}"],
        [":::", "dir/sub/file.tar.gz", "file", ".hidden", "/abs/x.y", "a.b/c", "a/b/"],
        None,
        True,
    ),
    ("nasty-names", ["echo", "[{}]"], [":::", *NASTY], None, True),
    ("nasty-names-appended", ["printf", "<%s>\\n"], [":::", *NASTY], None, True),
    ("nasty-with-newline-null", ["-0", "echo", "[{}]"], [], b"a\nb\0c d\0$(id)\0", True),
    ("product", ["-k", "echo", "{1}-{2}", "{}"], [":::", "a", "b", ":::", "1", "2", "3"], None, False),
    ("linked", ["-k", "echo", "{1}-{2}"], [":::", "a", "b", ":::+", "1", "2"], None, False),
    ("keep-order", ["-k", "-j3", "sleep 0.0{}; echo {}"], [":::", "3", "1", "2", "0"], None, False),
    ("stdin", ["-k", "echo", "line:"], [], b"one\ntwo words\n\nlast", False),
    ("colsep", ["-k", "--colsep", ",", "echo", "{2}/{1}", "{3}"], [":::", "a, b ,c", "x,y"], None, False),
    ("no-command", ["-k"], [":::", "echo a", "echo b; echo c"], None, False),
    ("exit-count", ["exit {}"], [":::", "0", "1", "2", "0", "3"], None, True),
    ("exit-101", ["-j8", "exit 1"], [], "".join(f"{i}\n" for i in range(120)).encode(), True),
    ("not-found", ["no_such_command_xyz"], [":::", "a"], None, True),
    (
        "halt-now-fail",
        ["-j1", "--halt", "now,fail=1", "sleep 0.0{}; exit {}"],
        [":::", "0", "7", "0"],
        None,
        True,
    ),
    (
        "halt-soon-fail",
        ["-j2", "--halt", "soon,fail=1", "sleep 0.{}; echo {}; exit {}"],
        [":::", "0", "3", "5", "0", "0"],
        None,
        True,
    ),
    (
        "halt-percent",
        ["-j1", "--halt", "soon,fail=50%", "exit {}"],
        [":::", "1", "1", "0", "1", "0", "0"],
        None,
        True,
    ),
    ("halt-success", ["-j1", "--halt", "now,success=1", "exit {}"], [":::", "1", "0", "1"], None, True),
    ("halt-minus-1", ["-j1", "--halt", "-1", "exit {}"], [":::", "1", "0", "1"], None, True),
    ("halt-never", ["-k", "-j1", "--halt", "never", "echo {}; exit {}"], [":::", "1", "0", "2"], None, True),
    ("halt-0", ["-k", "-j1", "--halt", "0", "echo {}; exit {}"], [":::", "1", "0", "2"], None, True),
    ("retries", ["--retries", "3", "echo try; exit 3"], [":::", "a"], None, True),
    ("timeout", ["--timeout", "0.5", "sleep {}; echo {}"], [":::", "3", "0.1"], None, True),
    ("tag", ["-k", "--tag", "echo x; echo y"], [":::", "a", "b", ":::", "1"], None, False),
]


def run(tool: list[str], args: list[str], stdin: bytes | None, tmp_path) -> tuple[int, bytes, list[tuple]]:
    log = tmp_path / f"{tool[0].replace('/', '_')}.log"
    proc = subprocess.run(
        [*tool, "--joblog", str(log), *args],
        input=stdin or b"",
        capture_output=True,
        env=ENV,
        timeout=50,
        cwd=tmp_path,
    )
    return proc.returncode, proc.stdout, read_joblog(log)


def read_joblog(path) -> list[tuple]:
    """Joblog rows without the times: Seq Host Send Receive Exitval Signal Command."""
    if not path.exists():
        return []
    lines = path.read_bytes().removesuffix(b"\n").split(b"\n")
    assert lines[0] == b"Seq\tHost\tStarttime\tJobRuntime\tSend\tReceive\tExitval\tSignal\tCommand"
    records: list[bytes] = []
    for line in lines[1:]:
        if re.match(rb"\d+\t:\t", line):
            records.append(line)
        elif records:  # a command holding a newline continues on the next line
            records[-1] += b"\n" + line
    rows = []
    for line in records:
        if line:
            f = line.split(b"\t", 8)
            float(f[2]), float(f[3])  # both are numbers
            rows.append((int(f[0]), f[1], f[4], f[5], int(f[6]), int(f[7]), f[8]))
    return sorted(rows)


FORKLIFT = [sys.executable, "-m", "forklift", "run"]
GNU = [PARALLEL or "parallel", "--will-cite"]


@pytest.mark.parametrize("case", CASES, ids=[c[0] for c in CASES])
def test_same_as_gnu_parallel(case, tmp_path):
    _, options, sources, stdin, unordered = case
    args = options + sources
    ours = run(FORKLIFT, args, stdin, tmp_path)
    theirs = run(GNU, args, stdin, tmp_path)
    out_ours, out_theirs = ours[1], theirs[1]
    if unordered:
        out_ours, out_theirs = sorted(out_ours.splitlines()), sorted(out_theirs.splitlines())
    assert out_ours == out_theirs
    assert ours[0] == theirs[0], "exit status"
    assert ours[2] == theirs[2], "joblog"


def test_dry_run_same_as_gnu_parallel(tmp_path):
    # ({%} is left out: GNU parallel's dry run numbers slots by its own timing. -k: without
    # it GNU parallel's dry run prints in the order its two slots happen to finish, which
    # differed from ours in 1 suite run of many.)
    args = ["--dry-run", "-k", "-j2", "gzip -9 {} > {.}.gz; echo {#}", ":::", *NASTY, "plain.txt"]
    ours = subprocess.run([*FORKLIFT, *args], capture_output=True, env=ENV, timeout=30, cwd=tmp_path)
    theirs = subprocess.run([*GNU, *args], capture_output=True, env=ENV, timeout=30, cwd=tmp_path)
    assert ours.returncode == theirs.returncode == 0
    assert ours.stdout == theirs.stdout
    assert not list(tmp_path.iterdir()), "a dry run runs nothing"


@pytest.mark.parametrize("mode", ["--resume", "--resume-failed"])
def test_resume_same_as_gnu_parallel(mode, tmp_path):
    """A first run of 4 inputs, then a resumed run of 7: same jobs rerun, same final log."""
    results = []
    for tool in (FORKLIFT, GNU):
        log = tmp_path / "resume.log"
        log.unlink(missing_ok=True)
        first = ["--joblog", str(log), "-k", "echo {}; exit {}", ":::", "0", "1", "0", "2"]
        subprocess.run([*tool, *first], capture_output=True, env=ENV, timeout=30, cwd=tmp_path)
        second = [
            "--joblog",
            str(log),
            mode,
            "-k",
            "echo {}; exit {}",
            ":::",
            "0",
            "1",
            "0",
            "2",
            "0",
            "3",
            "0",
        ]
        proc = subprocess.run([*tool, *second], capture_output=True, env=ENV, timeout=30, cwd=tmp_path)
        results.append((proc.returncode, proc.stdout, read_joblog(log)))
    assert results[0] == results[1]


def test_joblog_to_stdout_same_as_gnu_parallel(tmp_path):
    """--joblog -: the header, then each job's line right after its output, on stdout (forklift once
    wrote a file named -)."""
    args = ["-k", "-j1", "--joblog", "-", "echo {}; exit {}", ":::", "0", "1"]
    results = []
    for tool in (FORKLIFT, GNU):
        proc = subprocess.run([*tool, *args], capture_output=True, env=ENV, timeout=30, cwd=tmp_path)
        results.append((proc.returncode, _timeless(proc.stdout)))
    assert results[0] == results[1]
    assert results[0][1].startswith(b"Seq\tHost\t") and results[0][1].count(b"\t:\tT\tT\t") == 2
    assert list(tmp_path.iterdir()) == []


def _timeless(joblog_lines: bytes) -> bytes:
    """Joblog lines with their Starttime and JobRuntime as T."""
    return re.sub(rb"(?m)^(\d+\t:\t)[0-9.]+\t *[0-9.]+\t", rb"\1T\tT\t", joblog_lines)

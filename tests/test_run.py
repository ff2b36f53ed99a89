"""``forklift run``: what GNU parallel does not promise, and what it must never do.

Grouping under pressure, output that does not fit in memory, timeouts that fire
on time and take the whole process group, interrupts (SIGINT and SIGKILL of
forklift itself) followed by --resume, and bad input.
"""

from __future__ import annotations

import os
import re
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from forklift._run.guardian import find_marked
from forklift._run.template import Template, dirname, quote

from tasks import run_script

RUN = [sys.executable, "-m", "forklift", "run"]


def run(*args: str, stdin: bytes = b"", timeout: float = 50, **kw) -> subprocess.CompletedProcess[bytes]:
    return subprocess.run([*RUN, *args], input=stdin, capture_output=True, timeout=timeout, **kw)


def joblog_rows(path) -> list[list[str]]:
    lines = path.read_text().splitlines()
    assert lines[0].split("\t") == [
        "Seq", "Host", "Starttime", "JobRuntime", "Send", "Receive", "Exitval", "Signal", "Command",
    ]  # fmt: skip
    return [line.split("\t", 8) for line in lines[1:]]


def _logged(path) -> int:
    """Rows in a joblog being written (0 before it exists)."""
    try:
        return max(0, len(path.read_text().splitlines()) - 1)
    except FileNotFoundError:
        return 0


def sleepers(tag: str) -> list[int]:
    """Pids of live ``sleep TAG`` processes."""
    found = []
    for pid in survivors(tag):
        try:
            with open(f"/proc/{pid}/cmdline", "rb") as f:
                if f.read().split(b"\0")[0].endswith(b"sleep"):
                    found.append(pid)
        except OSError:
            pass
    return found


def survivors(tag: str) -> list[int]:
    """Pids of live processes whose command line holds ``tag``."""
    found = []
    for name in os.listdir("/proc"):
        if name.isdigit():
            try:
                with open(f"/proc/{name}/cmdline", "rb") as f:
                    if tag.encode() in f.read():
                        found.append(int(name))
            except OSError:
                pass
    return found


# -- templates and quoting (pure functions) ---------------------------------------------------


@pytest.mark.parametrize(
    ("value", "quoted"),
    [
        ("plain-a_b+c./d", "plain-a_b+c./d"),
        ("a b", "'a b'"),
        ("it's", "'it'\"'\"'s'"),
        ("", "''"),
        ("a\nb", "'a\nb'"),
    ],
)
def test_quote(value, quoted):
    assert quote(value) == quoted


@pytest.mark.parametrize(
    ("path", "expected"), [("a", "."), ("/a", "/"), ("a/b/", "a"), ("a//b", "a"), ("/", "/"), ("", ".")]
)
def test_dirname_is_perls(path, expected):
    assert dirname(path) == expected


def test_template_appends_the_argument_when_it_has_no_field():
    assert Template(["gzip", "-9"]).build(("a b",), 1, 1) == "gzip -9 'a b'"
    assert Template(["echo", "{1}", "{-1}", "{3}"]).build(("x", "y"), 1, 1) == "echo x y "
    assert Template([]).build(("echo hi",), 1, 1) == "echo hi"
    assert Template(["echo", "a|b"], quote_command=True).build(("c",), 1, 1) == "echo 'a|b' c"


def test_nasty_names_reach_the_command_as_one_argument_and_never_run(tmp_path):
    names = ["a b", "it's", "x$HOME", "a;touch pwned", "$(touch pwned)", "`touch pwned`", "new\nline", "*"]
    out = run("-k", "printf '<%s>\\n'", ":::", *names, cwd=tmp_path)
    assert out.returncode == 0, out.stderr
    assert out.stdout.decode() == "".join(f"<{n}>\n" for n in names)
    assert not (tmp_path / "pwned").exists()


# -- output ------------------------------------------------------------------------------------


def test_output_of_concurrent_jobs_is_never_interleaved():
    script = "for i in 1 2 3 4 5 6 7 8 9 10; do echo job {} line $i; sleep 0.001; done"
    out = run("-j4", script, ":::", *map(str, range(60)))
    assert out.returncode == 0, out.stderr
    lines = out.stdout.decode().splitlines()
    assert len(lines) == 600
    for start in range(0, 600, 10):
        block = lines[start : start + 10]
        job = block[0].split()[1]
        assert block == [f"job {job} line {i}" for i in range(1, 11)]


def test_stdout_then_stderr_of_each_job_and_tag():
    out = run("-k", "--tag", "echo out; echo err >&2", ":::", "a", "b c")
    assert out.stdout == b"a\tout\nb c\tout\n"  # the argument is appended to the last command
    assert out.stderr == b"a\terr a\nb c\terr b c\n"


def test_line_buffer_prints_lines_while_jobs_run():
    out = run("-j2", "--line-buffer", "echo start{}; sleep 0.{}; echo end{}", ":::", "6", "1")
    lines = out.stdout.decode().split()
    assert sorted(lines[:2]) == ["start1", "start6"]  # both jobs printed before either ended
    assert lines[2:] == ["end1", "end6"]


def test_huge_output_is_not_held_in_memory(tmp_path):
    """200 MB from one job pass through forklift without growing its memory."""
    sink = tmp_path / "out"
    # A fresh interpreter measures: RUSAGE_CHILDREN of this one remembers other tests' children.
    measure = (
        "import resource, subprocess, sys\n"
        f"with open({str(sink)!r}, 'wb') as f:\n"
        f"    code = subprocess.run({RUN!r} + ['head -c 200000000 /dev/zero; true', ':::', 'x'],\n"
        "                          stdin=subprocess.DEVNULL, stdout=f).returncode\n"
        "print(code, resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss)\n"
    )
    out = subprocess.run([sys.executable, "-c", measure], capture_output=True, text=True, timeout=50)
    code, peak_kib = map(int, out.stdout.split())
    assert code == 0, out.stderr
    assert sink.stat().st_size == 200_000_000
    assert peak_kib < 120_000, f"forklift peaked at {peak_kib} KiB"


# -- timeouts, interrupts, resume ---------------------------------------------------------------


def test_timeout_fires_on_time_and_kills_the_whole_group(tmp_path):
    log = tmp_path / "log"
    tag = f"sleep 30.{os.getpid()}7"
    t0 = time.monotonic()
    out = run("--joblog", str(log), "--timeout", "0.3", f"{tag} & {tag}; wait #", ":::", "x")
    elapsed = time.monotonic() - t0
    assert out.returncode == 1
    assert b"timed out" in out.stderr
    (row,) = joblog_rows(log)
    assert (row[6], row[7]) == ("-1", "15")
    assert 0.3 <= float(row[3]) < 0.4, f"killed after {row[3]} s"
    assert elapsed < 3
    time.sleep(0.2)
    assert survivors(tag) == []


def test_retries_then_success(tmp_path):
    counter = tmp_path / "n"
    script = f"echo x >> {counter}; test $(wc -l < {counter}) -ge 3 #"
    out = run("--retries", "5", script, ":::", "a")
    assert out.returncode == 0, out.stderr
    assert counter.read_text().count("x") == 3


def test_command_not_found_is_the_jobs_exit_127(tmp_path):
    log = tmp_path / "log"
    out = run("--joblog", str(log), "no_such_command_forklift", ":::", "a")
    assert out.returncode == 1
    assert joblog_rows(log)[0][6] == "127"
    assert b"Traceback" not in out.stderr


@pytest.mark.parametrize("how", ["SIGINT", "SIGKILL"])
def test_interrupted_run_resumes_without_rerunning_or_losing_jobs(how, tmp_path):
    """Stop forklift half way; no job survives it; --resume finishes exactly the rest."""
    log, ran = tmp_path / "log", tmp_path / "ran"
    tag = f"30.{os.getpid()}{len(how)}"
    # Jobs 1-6 end at once; 7 and 8 would run 30 s; 9-12 wait for a slot.
    script = f"case {{}} in 7|8) sleep {tag};; esac; echo end {{}} >> {ran}"
    args = ["-j2", "--joblog", str(log), script, ":::", *map(str, range(1, 13))]
    proc = subprocess.Popen([*RUN, *args], stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    deadline = time.monotonic() + 20
    # Every job's shell holds the tag (its case statement), so count the sleeps alone, and wait
    # for jobs 1-6 in the joblog: the signal must come after they are logged (it once came
    # while job 6's row was being written, and the test failed, not forklift).
    while (len(sleepers(tag)) < 2 or _logged(log) < 6) and time.monotonic() < deadline:
        time.sleep(0.05)
    assert len(sleepers(tag)) == 2, "jobs 7 and 8 did not start"
    proc.send_signal(getattr(signal, how))
    proc.communicate(timeout=20)
    assert proc.returncode == (130 if how == "SIGINT" else -9)
    deadline = time.monotonic() + 5
    while survivors(tag) and time.monotonic() < deadline:
        time.sleep(0.05)
    assert survivors(tag) == [], "a job outlived forklift"
    done_first = {row[0] for row in joblog_rows(log)}
    assert done_first == {str(i) for i in range(1, 7)}

    # Rerun without the slow part: every job ends exactly once over both runs.
    script_fast = f"echo end {{}} >> {ran}"
    args = ["-j2", "--joblog", str(log), "--resume", script_fast, ":::", *map(str, range(1, 13))]
    out = run(*args)
    assert out.returncode == 0, out.stderr
    ends = sorted(int(line.split()[1]) for line in ran.read_text().splitlines())
    assert ends == list(range(1, 13))
    assert sorted(int(row[0]) for row in joblog_rows(log)) == list(range(1, 13))


@pytest.mark.parametrize("how", ["SIGTERM", "SIGINT", "SIGHUP"])
def test_a_signal_while_waiting_for_stdin_stops_the_run_at_once(how, tmp_path):
    """``slow | forklift run``: a signal is acted on at once, not when stdin ends (it once waited for EOF
    and exited 0); the job that had ended is printed and logged, so --resume will not run it again."""
    log, ran = tmp_path / "log", tmp_path / "ran"
    proc = subprocess.Popen(
        [*RUN, "--joblog", str(log), f"touch {ran}; echo"], stdin=subprocess.PIPE, stdout=subprocess.PIPE
    )
    try:
        proc.stdin.write(b"a\n")
        proc.stdin.flush()  # and stdin stays open: forklift waits for the next line
        deadline = time.monotonic() + 20
        while not ran.exists() and time.monotonic() < deadline:
            time.sleep(0.02)
        assert ran.exists(), "job 1 did not run"
        time.sleep(0.2)  # forklift is back waiting for stdin
        proc.send_signal(getattr(signal, how))
        code = proc.wait(timeout=10)
    finally:
        proc.kill()
        proc.stdin.close()
    assert code == 128 + getattr(signal, how)
    assert proc.stdout.read() == b"a\n"
    assert [row[0] for row in joblog_rows(log)] == ["1"]


def test_ctrl_c_while_reading_arguments_from_the_terminal_stops_at_once():
    """At a terminal, Ctrl-C did nothing until Ctrl-D."""
    import pty

    leader, follower = pty.openpty()
    proc = subprocess.Popen([*RUN, "echo"], stdin=follower, stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    os.close(follower)
    try:
        assert b"reading arguments from the terminal" in proc.stderr.readline()
        time.sleep(0.2)  # past the message: waiting for the first line
        proc.send_signal(signal.SIGINT)
        code = proc.wait(timeout=10)
    finally:
        proc.kill()
        os.close(leader)
    assert code == 130


def test_a_reader_gone_stops_the_run_with_true_books(tmp_path):
    """``forklift run ... | head``: exit 141 as GNU parallel (SIGPIPE), no traceback; no job whose output
    was not printed is logged or journaled, and the journal's run is interrupted, not failed."""
    import sqlite3

    log, db = tmp_path / "log", tmp_path / "run.db"
    read_end, write_end = os.pipe()
    os.close(read_end)
    env = {k: v for k, v in os.environ.items() if k != "PYTHONUNBUFFERED"}
    args = [
        "-k",
        "-j2",
        "--joblog",
        str(log),
        "--journal",
        str(db),
        "sleep 0.{}; echo {}",
        ":::",
        "3",
        "1",
        "2",
    ]
    try:
        out = subprocess.run([*RUN, *args], stdout=write_end, stderr=subprocess.PIPE, env=env, timeout=50)
    finally:
        os.close(write_end)
    assert (out.returncode, out.stderr) == (141, b"")
    assert joblog_rows(log) == []
    with sqlite3.connect(db) as conn:
        assert conn.execute("SELECT status FROM runs").fetchall() == [("interrupted",)]
        assert conn.execute("SELECT count(*) FROM task_rows").fetchone() == (0,)
    conn.close()


def test_a_runner_whose_output_fails_still_cleans_up():
    """Printing the jobs -k held back fails again while the run stops: the rest of the cleanup
    (signal handlers, guardian, descriptors) still happens."""
    from forklift._run.runner import Runner, RunOptions

    def gone(fd: int, data: bytes) -> None:
        raise BrokenPipeError(32, "Broken pipe")

    before = signal.getsignal(signal.SIGTERM)
    # Job 1 ends first in order, while job 2 waits to be printed after it and job 3 still runs.
    inputs = iter([("3",), ("1",), ("9",)])
    runner = Runner(
        Template(["sleep 0.{}; echo {}"]), inputs, RunOptions(jobs=2, keep_order=True), write_out=gone
    )
    with pytest.raises(BrokenPipeError):
        runner.run()
    assert signal.getsignal(signal.SIGTERM) is before
    assert runner.ep.closed


def test_guardian_finds_marked_processes_only():
    assert find_marked("no-such-run-id") == []


def test_the_guardian_of_a_dead_run_also_ends_jobs_that_start_after_its_first_sweep():
    """With --cluster local the cluster's worker outlived a SIGKILLed forklift by a moment and
    started the next queued job after the guardian's one sweep: that job ran on, orphaned (seen
    once in a full test run). The guardian now sweeps until nothing marked shows up for QUIET s."""
    from forklift._run.guardian import MARKER, QUIET, Guardian

    run_id = f"late-{os.getpid()}-{time.monotonic_ns()}"
    guardian = Guardian(run_id)
    os.close(guardian._write_end)  # forklift "died": EOF without the release byte
    time.sleep(0.5)  # the first sweep found nothing
    late = subprocess.Popen(["sleep", "60"], env={**os.environ, MARKER: run_id}, start_new_session=True)
    try:
        assert late.wait(timeout=QUIET + 5) == -signal.SIGTERM  # ended by the guardian
    finally:
        late.kill()
        late.wait()
        os.waitpid(guardian.pid, 0)


def test_keep_order_with_slow_first_job():
    out = run("-k", "-j4", "sleep 0.{}; echo {}", ":::", "5", "0", "1", "0")
    assert out.stdout == b"5\n0\n1\n0\n"


def test_jobs_get_seq_and_slot():
    out = run("-j3", "-k", "echo $PARALLEL_SEQ {#} {%} $PARALLEL_JOBSLOT", ":::", *"abcdefg")
    rows = [line.split() for line in out.stdout.decode().splitlines()]
    assert [r[0] for r in rows] == [r[1] for r in rows] == [str(i) for i in range(1, 8)]
    assert all(r[2] == r[3] and 1 <= int(r[2]) <= 3 for r in rows)


def test_jobs_option_forms():
    cores = len(os.sched_getaffinity(0))
    forms = [("1", 1), ("0", None), ("50%", max(1, cores // 2)), ("+1", cores + 1), ("-1", max(1, cores - 1))]
    for jobs, expected in forms:
        spellings = (["-j", jobs], ["--jobs", jobs], [f"--jobs={jobs}"], ["--timeout", "5", "-j", jobs])
        for option in (*spellings, ["-kj", jobs]):
            out = run(*option, "--dry-run", "echo {%}", ":::", *map(str, range(40)))
            assert out.returncode == 0, (option, out.stderr)
            slots = {int(line.split()[1]) for line in out.stdout.splitlines()}
            if expected is not None:
                assert max(slots) == expected, option


def test_options_after_the_command_belong_to_the_command():
    out = run("-k", "echo", "-j", "-1", "--tag", ":::", "a")
    assert out.returncode == 0 and out.stdout == b"-j -1 --tag a\n", out.stderr


def test_bar_always_draws_and_summarises():
    out = run("--bar-always", "-j2", "true", ":::", *map(str, range(20)))
    assert out.returncode == 0
    assert re.search(rb"20 jobs in [0-9.]+ s.*20 succeeded, 0 failed", out.stderr)


def test_help_agrees_with_the_docs():
    """The help said jobs on a cluster "finish even after Ctrl-C" (docs/run.md, rightly: they are
    killed), and its exit statuses left out some of those docs/run.md lists."""
    text = " ".join(run("--help").stdout.decode().split())
    assert "finish even after Ctrl-C" not in text
    assert "Ctrl-C (or --halt now) kills the jobs running there too" in text
    docs = (Path(__file__).parents[1] / "docs" / "run.md").read_text()
    bold = re.findall(r"\*\*([^*]+)\*\*", docs.split("## Exit status")[1].split("\n## ")[0])
    statuses = {n for words in bold for n in re.findall(r"\d+", words)}
    assert statuses >= {"0", "1", "100", "101", "130", "143", "129", "141", "255"}
    in_help = set(re.findall(r"\d+", text.split("Exit status")[1].split("options:")[0]))
    assert statuses <= in_help


# -- bad input ---------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["--no-such-option", "echo", ":::", "a"], "unrecognized arguments: --no-such-option"),
        (["echo", "::::", "/no/such/file"], "cannot read input file '/no/such/file'"),
        (["", ":::", "a"], "the command is empty"),
        (["-j", "many", "echo", ":::", "a"], "-j takes"),
        (["--halt", "sometimes", "echo", ":::", "a"], "--halt takes"),
        (["--timeout", "soon", "echo", ":::", "a"], "--timeout takes"),
        (["--resume", "echo", ":::", "a"], "--resume needs --joblog"),
        (["--retries", "0", "echo", ":::", "a"], "--retries must be at least 1"),
        (["--retries", "-2", "echo", ":::", "a"], "--retries must be at least 1, not -2"),
        (["echo", "{= s/a/b/ =}", ":::", "a"], "{= perl expression =} replacement strings are not supported"),
        (["-q", "echo", "{=1 uc =}", ":::", "a"], "are not supported (forklift runs no Perl): '{=1 uc =}'"),
        (["--joblog", "-", "--resume", "echo", ":::", "a"], "--resume reads the joblog of the run to resume"),
        (["--colsep", "(", "echo", ":::", "a"], "not a valid regular expression"),
        (["--shell", "/no/shell", "echo", ":::", "a"], "cannot be run"),
        (["echo", "::::"], ":::: needs a file name"),
    ],
)
def test_bad_input_is_one_line_and_exit_255(args, message):
    out = run(*args)
    assert out.returncode == 255
    err = out.stderr.decode()
    assert message in err and err.count("\n") == 1 and "Traceback" not in err


def test_a_file_that_is_not_a_joblog_is_refused_not_overwritten(tmp_path):
    precious = tmp_path / "notes.txt"
    precious.write_text("my notes\n")
    out = run("--joblog", str(precious), "--resume", "echo", ":::", "a")
    assert out.returncode == 255 and b"is not a joblog" in out.stderr
    assert precious.read_text() == "my notes\n"


def test_joblog_plus_dash_appends_to_a_file_named_dash(tmp_path):
    """As GNU parallel: only ``-`` itself is stdout."""
    out = run("-k", "--joblog", "+-", "echo", ":::", "a", "b", cwd=tmp_path)
    assert (out.returncode, out.stdout) == (0, b"a\nb\n")
    assert [row[0] for row in joblog_rows(tmp_path / "-")] == ["1", "2"]


def test_dry_run_runs_nothing(tmp_path):
    out = run("--dry-run", "touch {}", ":::", "a", "b c", cwd=tmp_path)
    assert out.stdout == b"touch a\ntouch 'b c'\n"
    assert list(tmp_path.iterdir()) == []


def test_keep_order_with_line_buffer_prints_job_by_job():
    out = run("-k", "--line-buffer", "-j2", "echo a{}; sleep 0.{}; echo b{}", ":::", "4", "1")
    assert out.stdout == b"a4\nb4\na1\nb1\n"


def test_journal_records_every_job_and_attempt(tmp_path):
    import sqlite3

    db = tmp_path / "run.db"
    out = run(
        "-j2", "--journal", str(db), "--retries", "2", "echo {}; exit $(({} % 2))", ":::", "1", "2", "3"
    )
    assert out.returncode == 2
    with sqlite3.connect(db) as conn:
        (name, kind, status), *_ = conn.execute("SELECT name, kind, status FROM runs")
        got = sorted(conn.execute("SELECT idx, attempt, status, exit_code, output_bytes FROM task_rows"))
    assert (kind, status) == ("run", "failed") and name.startswith("echo {}")
    assert got == [
        (1, 1, "retried", 1, None),
        (1, 2, "failed", 1, 2),
        (2, 1, "done", 0, 2),
        (3, 1, "retried", 1, None),
        (3, 2, "failed", 1, 2),
    ]


def test_journal_that_is_not_one_is_refused(tmp_path):
    bad = tmp_path / "bad.db"
    bad.write_text("my notes\n")
    out = run("--journal", str(bad), "true", ":::", "1")
    assert out.returncode == 255 and b"not a usable journal" in out.stderr
    assert bad.read_text() == "my notes\n"


needs_dask = pytest.mark.skipif(
    __import__("importlib").util.find_spec("distributed") is None, reason="needs forklift[cluster]"
)


@needs_dask
def test_cluster_runs_the_same_jobs_with_the_same_output_and_log(tmp_path):
    """--cluster local: an embedded Dask cluster runs the jobs; output, status and log as locally."""
    script = "echo out {}; echo err {} >&2; exit $(({} % 3 == 0))"
    local = run("-k", "--joblog", str(tmp_path / "local.log"), script, ":::", *"123456")
    remote = run(
        "-k", "--cluster", "local", "--joblog", str(tmp_path / "remote.log"), script, ":::", *"123456"
    )
    assert remote.returncode == local.returncode == 2
    assert remote.stdout == local.stdout
    assert sorted(remote.stderr.splitlines()) == sorted(local.stderr.splitlines())
    rows = joblog_rows(tmp_path / "remote.log")
    assert [r[0] for r in rows] == [str(i) for i in range(1, 7)]
    assert [(r[5], r[6]) for r in rows] == [(r[5], r[6]) for r in joblog_rows(tmp_path / "local.log")]
    assert all(r[1] not in ("", ":") for r in rows)  # the Host column names the worker's machine


@needs_dask
def test_cluster_journal_rows_are_the_local_ones(tmp_path):
    """Every attempt, retried ones too, with its error, command and worker, as a local run records it."""
    import sqlite3

    jobs = ["echo a", "echo b; exit 1", "kill -9 $$", "sleep 9"]
    rows = {}
    for where in ("local", "cluster"):
        db = tmp_path / f"{where}.db"
        cluster = ["--cluster", "local"] if where == "cluster" else []
        out = run(*cluster, "-j4", "--journal", str(db), "--retries", "2", "--timeout", "1", ":::", *jobs)
        assert out.returncode == 3, (where, out.stderr)
        with sqlite3.connect(db) as conn:
            rows[where] = sorted(
                conn.execute(
                    "SELECT idx, attempt, status, error, exit_code, output_bytes, command, typeof(worker)"
                    " FROM task_rows"
                )
            )
        conn.close()
    assert rows["local"] == [
        (1, 1, "done", None, 0, 2, "echo a", "integer"),
        (2, 1, "retried", "exit status 1", 1, None, "echo b; exit 1", "integer"),
        (2, 2, "failed", "exit status 1", 1, 2, "echo b; exit 1", "integer"),
        (3, 1, "retried", "killed by signal 9", 0, None, "kill -9 $$", "integer"),
        (3, 2, "failed", "killed by signal 9", 0, 0, "kill -9 $$", "integer"),
        (4, 1, "retried", "timed out", -1, None, "sleep 9", "integer"),
        (4, 2, "timeout", "timed out", -1, 0, "sleep 9", "integer"),
    ]
    assert rows["cluster"] == rows["local"]


@needs_dask
def test_cluster_timeout_retries_and_halt():
    out = run(
        "--cluster", "local", "--timeout", "0.3", "--retries", "2", "sleep {}; echo {}", ":::", "5", "0"
    )
    assert out.returncode == 1 and out.stdout == b"0\n" and b"timed out" in out.stderr
    out = run("--cluster", "local", "--halt", "now,fail=1", "exit {}", ":::", "7")
    assert out.returncode == 7


@needs_dask
@pytest.mark.parametrize("how", ["SIGINT", "SIGKILL"])
def test_cluster_interrupt_leaves_no_job_running(how):
    """Ctrl-C (SIGINT to the whole group, as a terminal sends it) or SIGKILL of forklift."""
    tag = f"40.{os.getpid()}{len(how)}"
    proc = subprocess.Popen(
        [*RUN, "--cluster", "local", f"sleep {tag}; echo {{}}", ":::", "1", "2", "3"],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        start_new_session=True,
    )
    try:
        deadline = time.monotonic() + 40
        while len(survivors(tag)) < 4 and time.monotonic() < deadline:  # two shells, two sleeps
            time.sleep(0.05)
        assert len(survivors(tag)) >= 4, "two jobs did not start"
        started = time.monotonic()
        if how == "SIGINT":
            os.killpg(proc.pid, signal.SIGINT)
        else:
            proc.kill()
        _, err = proc.communicate(timeout=30)
        assert proc.returncode == (130 if how == "SIGINT" else -9), err
        if how == "SIGINT":
            assert time.monotonic() - started < 10 and b"Traceback" not in err, err
        deadline = time.monotonic() + 10
        while survivors(tag) and time.monotonic() < deadline:
            time.sleep(0.05)
        assert survivors(tag) == [], "a job outlived forklift"
    finally:
        for pid in survivors(tag):
            os.kill(pid, signal.SIGKILL)
        if proc.poll() is None:
            os.killpg(proc.pid, signal.SIGKILL)


@needs_dask
@pytest.mark.parametrize(("how", "after"), [("SIGTERM", 0.5), ("SIGHUP", 0.5), ("SIGTERM", 6)])
def test_cluster_sigterm_stops_the_run_as_ctrl_c_does(how, after, tmp_path):
    """SIGTERM once killed forklift outright (no exit status of its own, the journal left "running"),
    also while it waited for stdin; now it stops the run as Ctrl-C does, with 128 + the signal: while
    the embedded cluster starts (0.5 s in) or once it waits for stdin (6 s)."""
    db = tmp_path / "run.db"
    proc = subprocess.Popen(
        [*RUN, "--cluster", "local", "--journal", str(db), "echo"],
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
    )
    try:
        proc.stdin.write(b"a\n")
        proc.stdin.flush()  # stdin stays open: forklift waits for more (or starts its cluster)
        deadline = time.monotonic() + 40
        while not _journal_runs(db) and time.monotonic() < deadline:
            time.sleep(0.05)
        time.sleep(after)
        proc.send_signal(getattr(signal, how))
        code = proc.wait(timeout=30)
    finally:
        proc.kill()
        proc.stdin.close()
    err = proc.stderr.read()
    assert code == 128 + getattr(signal, how), err
    assert b"Traceback" not in err
    assert _journal_runs(db) == ["interrupted"]


def _journal_runs(db) -> list[str]:
    """The status of each run in the journal ``db`` ([] before it exists)."""
    import sqlite3

    if not db.exists():
        return []
    conn = sqlite3.connect(db)
    try:
        return [status for (status,) in conn.execute("SELECT status FROM runs")]
    except sqlite3.OperationalError:  # being created
        return []
    finally:
        conn.close()


@needs_dask
def test_cluster_halt_now_kills_the_running_jobs():
    tag = f"41.{os.getpid()}"
    started = time.monotonic()
    out = run("--cluster", "local", "--halt", "now,fail=1", "sleep {}; exit 3", ":::", tag, "0.5")
    assert out.returncode == 3 and time.monotonic() - started < 30
    assert survivors(tag) == []


@needs_dask
def test_cluster_halt_soon_lets_the_running_job_end_and_prints_it():
    tag = f"3.{os.getpid()}"
    script = "sleep {}; echo done {}; exit $(( {#} == 2 ? 3 : 0 ))"
    out = run("--cluster", "local", "--halt", "soon,fail=1", script, ":::", tag, "0.5", "1", "1")
    assert out.returncode == 3, out.stderr
    assert f"done {tag}\n".encode() in out.stdout and b"done 0.5\n" in out.stdout
    assert b"starting no more jobs" in out.stderr
    assert survivors(tag) == []


@needs_dask
def test_cluster_halt_soon_keeps_a_failed_attempt_that_would_have_been_retried(tmp_path):
    # Job 1 fails (exit 5) while job 2 fails and halts the run: job 1's retry is not started,
    # and its failed attempt is its result: printed, logged and counted, as locally.
    script = "case {} in f) exit 3;; *) sleep {}; echo ran {}; exit 5;; esac"
    for where in ([], ["--cluster", "local"]):
        log = tmp_path / f"log{len(where)}"
        out = run(
            *where,
            "-j2",
            "--retries",
            "2",
            "--joblog",
            str(log),
            "--halt",
            "soon,fail=1",
            script,
            ":::",
            "1",
            "f",
        )
        assert out.returncode == 3 and out.stdout == b"ran 1\n", (where, out.stderr)
        assert sorted((r[0], r[6]) for r in joblog_rows(log)) == [("1", "5"), ("2", "3")], where


@needs_dask
def test_cluster_job_that_cannot_start_is_one_line_and_255(tmp_path):
    args = tmp_path / "args"
    args.write_text("small\n" + "x" * 200_000 + "\n")  # one argument over the kernel's 128 KiB
    for where in ([], ["--cluster", "local"]):
        out = run(*where, "echo {} | wc -c", "::::", str(args))
        assert out.returncode == 255, (where, out.stderr)
        assert b"cannot start '/bin/sh'" in out.stderr and b"Argument list too long" in out.stderr
        assert b"Traceback" not in out.stderr


def test_stop_run_refuses_the_next_jobs_and_kills_the_running_ones():
    """What each cluster worker runs on a stop (Client.run), tested where it runs: in-process."""
    from forklift._run.remote import RemoteJob, RunStopped, run_remote_job, stop_run

    tag = f"42.{os.getpid()}"
    running_id, stopped_id = f"test-{tag}-a", f"test-{tag}-b"
    results = []
    job = RemoteJob(1, (tag,), f"sleep {tag}", "/bin/sh", None, 1, running_id)
    runner = __import__("threading").Thread(target=lambda: results.append(run_remote_job(job)))
    runner.start()
    deadline = time.monotonic() + 10
    while len(survivors(tag)) < 2 and time.monotonic() < deadline:
        time.sleep(0.02)
    assert len(survivors(tag)) == 2  # the shell and its sleep

    assert stop_run(stopped_id, 0.2, kill=False) == 0  # another run: ours runs on
    with pytest.raises(RunStopped):
        run_remote_job(RemoteJob(2, ("x",), "echo never", "/bin/sh", None, 1, stopped_id))
    assert len(survivors(tag)) == 2

    assert stop_run(running_id, 0.2) >= 1
    runner.join(10)
    assert not runner.is_alive() and results[0].attempt.signal == signal.SIGTERM
    assert survivors(tag) == []
    with pytest.raises(RunStopped):
        run_remote_job(RemoteJob(3, ("x",), "echo never", "/bin/sh", None, 1, running_id))


def test_cluster_without_credentials_is_one_line_and_255(monkeypatch):
    monkeypatch.delenv("FORKLIFT_CREDENTIALS", raising=False)
    out = run("--cluster", "tls://127.0.0.1:9", "true", ":::", "1")
    assert out.returncode == 255 and out.stderr.count(b"\n") == 1 and b"credentials" in out.stderr


@pytest.mark.parametrize("address", ["tls://127.0.0.1:9", "127.0.0.1:9"])
def test_cluster_messages_name_the_flags_not_python_keywords(monkeypatch, address):
    """It said "give credentials=DIR", the Python API's words: the command line has --credentials DIR."""
    monkeypatch.delenv("FORKLIFT_CREDENTIALS", raising=False)
    out = run("--cluster", address, "true", ":::", "1")
    assert out.returncode == 255 and out.stderr.count(b"\n") == 1
    assert b"give --credentials DIR" in out.stderr and b"credentials=" not in out.stderr


def test_cluster_without_the_cluster_extra_is_one_line_and_255():
    """Without Dask distributed (hidden here), --cluster printed a traceback."""
    code = (
        "import sys\n"
        "sys.modules['distributed'] = None  # as if not installed: importing it raises ImportError\n"
        "from forklift.cli.main import main\n"
        "raise SystemExit(main(['run', '--cluster', 'local', 'echo', ':::', 'a']))\n"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, timeout=60)
    assert out.returncode == 255 and out.stdout == b""
    assert out.stderr == (
        b"forklift run: --cluster runs on Dask distributed, which is not installed:"
        b" pip install 'forklift[cluster]'\n"
    )


def test_a_cluster_run_that_cannot_start_its_pool_is_failed_in_the_journal(monkeypatch, tmp_path):
    """As a local run stopped by an error: the journal's run ends "failed", not "running" forever."""
    import sqlite3

    monkeypatch.delenv("FORKLIFT_CREDENTIALS", raising=False)
    db = tmp_path / "run.db"
    out = run("--journal", str(db), "--cluster", "tls://127.0.0.1:9", "true", ":::", "1")
    assert out.returncode == 255 and b"credentials" in out.stderr
    with sqlite3.connect(db) as conn:
        assert conn.execute("SELECT status FROM runs").fetchall() == [("failed",)]
    conn.close()


# -- a NUL byte: no command line can carry one ---------------------------------------------------

NUL_MESSAGE = b"cannot start job 2: its command holds a NUL byte"


@pytest.mark.parametrize(
    ("where", "args", "stdin", "file"),
    [
        ("stdin", ["echo {}"], b"a\nx\0y\nc\n", None),
        ("-a", ["-a", "{file}", "echo {}"], b"", b"a\nx\0y\nc\n"),
        ("::::", ["echo {}", "::::", "{file}"], b"", b"a\nx\0y\nc\n"),
        ("::::+", ["echo {1} {2}", ":::", "a", "b", "c", "::::+", "{file}"], b"", b"a\nx\0y\nc\n"),
        ("--colsep", ["--colsep", ",", "echo {2}"], b"1,a\n2,x\0y\n3,c\n", None),
        ("bare command", ["::::", "{file}"], b"", b"echo a\necho x\0y\necho c\n"),
    ],
)
def test_a_nul_in_a_command_is_one_line_and_255_with_a_true_joblog(tmp_path, where, args, stdin, file):
    """As an over-long argument: the run stops at the job, its earlier jobs printed and logged."""
    path = tmp_path / "inputs"
    if file is not None:
        path.write_bytes(file)
    log = tmp_path / "joblog"
    words = [str(path) if a == "{file}" else a for a in args]
    out = run("-j1", "-k", "--joblog", str(log), *words, stdin=stdin)
    assert out.returncode == 255, (where, out.stderr)
    assert NUL_MESSAGE in out.stderr and b"-0" in out.stderr, where
    assert out.stderr.count(b"\n") == 1 and b"Traceback" not in out.stderr, (where, out.stderr)
    assert out.stdout.split()[-1:] == [b"a"], (where, out.stdout)  # job 1 ran, job 3 never did
    assert [(r[0], r[6]) for r in joblog_rows(log)] == [("1", "0")], where
    dry = run("--dry-run", *words, stdin=stdin)
    assert dry.returncode == 255 and NUL_MESSAGE in dry.stderr and b"Traceback" not in dry.stderr, where


def test_a_run_stopped_by_a_job_that_cannot_start_is_failed_in_the_journal(tmp_path):
    """It was marked "done" (exit 255 all the same)."""
    import sqlite3

    db = tmp_path / "run.db"
    out = run("-j1", "--journal", str(db), "echo {}", stdin=b"a\nx\0y\n")
    assert out.returncode == 255, out.stderr
    with sqlite3.connect(db) as conn:
        assert conn.execute("SELECT status FROM runs").fetchall() == [("failed",)]
    conn.close()


def test_a_nul_in_a_column_the_command_does_not_use_is_no_problem():
    out = run("--colsep", ",", "echo {1}", stdin=b"a,x\0y\n")
    assert out.returncode == 0 and out.stdout == b"a\n", out.stderr


def test_a_nul_from_python_sources_or_template_is_refused(tmp_path):
    """``:::`` arguments and the template cannot hold a NUL from a command line; from Python they can."""
    from forklift._run.inputs import Inputs, Source
    from forklift._run.runner import RunError, Runner, RunOptions
    from forklift._run.template import TemplateError

    with pytest.raises(TemplateError, match="NUL byte"):
        Template(["echo\0", "{}"])
    log = tmp_path / "joblog"
    inputs = iter(Inputs([Source(args=["a", "x\0y", "c"])]))
    runner = Runner(Template(["true"]), inputs, RunOptions(jobs=1, joblog=str(log)))
    with pytest.raises(RunError, match="cannot start job 2: its command holds a NUL byte"):
        runner.run()
    assert [(r[0], r[8]) for r in joblog_rows(log)] == [("1", "true a")]


@needs_dask
def test_cluster_job_with_a_nul_is_one_line_and_255(tmp_path):
    args = tmp_path / "args"
    args.write_bytes(b"a\nx\0y\nc\n")
    out = run("-k", "--cluster", "local", "echo {}", "::::", str(args))
    assert out.returncode == 255 and out.stdout == b"a\n", out.stderr
    assert NUL_MESSAGE in out.stderr and out.stderr.count(b"\n") == 1 and b"Traceback" not in out.stderr


@pytest.mark.skipif(sys.version_info < (3, 12), reason="os.fork() warns in a threaded process from 3.12")
def test_the_guardians_fork_does_not_warn_in_a_threaded_process(tmp_path):
    """The guardian is a fork of the caller; its child only reads a pipe, scans /proc and
    signals, so 3.12+'s 'multi-threaded, use of fork()' warning is silenced for that fork
    only: a fork elsewhere in the same process still warns."""
    out = run_script(
        tmp_path / "threaded_run.py",
        "import os, threading\n"
        "from forklift.cli.main import main\n"
        "threading.Thread(target=threading.Event().wait, daemon=True).start()\n"
        "assert main(['run', 'true', ':::', 'a']) == 0\n"
        "pid = os.fork()\n"
        "if pid == 0:\n"
        "    os._exit(0)\n"
        "os.waitpid(pid, 0)\n",
        "always::DeprecationWarning",
    )
    assert out.returncode == 0, out.stderr
    warned = [line for line in out.stderr.splitlines() if "multi-threaded" in line]
    assert len(warned) == 1 and "guardian.py" not in out.stderr, out.stderr  # the script's own fork

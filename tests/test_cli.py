"""The command-line tool: --help, --version, the demo."""

import os
import re
import subprocess
import sys

import pytest

import forklift


def run(*args):
    return subprocess.run(
        [sys.executable, "-m", "forklift", *args], capture_output=True, text=True, timeout=120
    )


def test_help_and_version():
    out = run("--help")
    assert out.returncode == 0 and "demo" in out.stdout
    out = run("--version")
    assert out.returncode == 0 and forklift.__version__ in out.stdout


def test_no_command_prints_help_and_fails():
    out = run()
    assert out.returncode == 2 and "usage" in out.stdout


def test_demo_small():
    out = run("demo", "--tasks", "300", "--workers", "2")
    assert out.returncode == 0, out.stderr
    assert "300 done, 0 failed" in out.stdout and "speedup" in out.stdout and "same results" in out.stdout


def test_demo_help_says_plainly_what_it_does_and_how_long():
    """It said "the main job on its embedded default, no server needed"."""
    text = " ".join(run("demo", "--help").stdout.split())
    assert "embedded default" not in text
    assert "It counts the divisors of 20,000 numbers" in text and "in 5 to 10 seconds" in text


@pytest.mark.parametrize("serial", [True, False])
def test_demo_prints_the_effective_parallelism(serial):
    """A speedup of 1.05x on a busy machine read as "the pool does nothing": the effective parallelism
    (time inside tasks / wall time) is printed beside it, as the benchmarks do."""
    out = run("demo", "--tasks", "300", "--workers", "2", *([] if serial else ["--no-serial"]))
    assert out.returncode == 0, out.stderr
    parallelism = float(re.search(r"(\d+\.\d\d)x effective parallelism", out.stdout)[1])
    assert 0 < parallelism <= 2.05
    if serial:
        assert re.search(r"speedup +\d+\.\d\dx on 2 workers; \d+\.\d\dx effective parallelism", out.stdout)


def test_demo_rejects_bad_input_with_one_line():
    out = run("demo", "--tasks", "zero")
    assert out.returncode == 2 and "not a whole number" in out.stderr
    assert "Traceback" not in out.stderr


def test_help_lists_every_command():
    out = run("--help")
    for command in ("demo", "run", "copy", "kill", "ps", "report", "top", "cluster"):
        assert f"\n    {command} " in out.stdout, command


def test_a_command_imports_only_what_it_uses():
    # `forklift run` starts once per shell pipeline: it must not pay for the pool's
    # machinery (multiprocessing, ~15 ms), the journal or the other commands.
    code = (
        "import sys\n"
        "from forklift.cli.main import main\n"
        "assert main(['run', 'true', ':::', '1']) == 0\n"
        "heavy = {'forklift.errors', 'forklift.journal', 'forklift.cli.kill', 'forklift.cli.cluster',\n"
        "         'concurrent.futures.process', 'multiprocessing.pool'}\n"
        "print(sorted(heavy & set(sys.modules)))\n"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=60)
    assert out.returncode == 0, out.stderr
    assert out.stdout.strip() == "[]"


def test_a_small_copy_imports_no_pool_and_no_dataclasses(tmp_path):
    # A tree copied in the first 20 ms never starts a pool: its start-up is the figure
    # (benchmarks/bench_copy.py "tiny"), and dataclasses + inspect alone cost ~6 ms.
    (tmp_path / "src").mkdir()
    (tmp_path / "src" / "a").write_text("a")
    code = (
        "import sys\n"
        "from forklift.cli.main import main\n"
        f"assert main(['copy', '-q', {str(tmp_path / 'src')!r}, {str(tmp_path / 'dst')!r}]) == 0\n"
        "heavy = {'dataclasses', 'inspect', 'forklift.pool', 'multiprocessing.pool', 'concurrent.futures'}\n"
        "print(sorted(heavy & set(sys.modules)))\n"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=60)
    assert out.returncode == 0, out.stderr
    assert out.stdout.strip() == "[]"
    assert (tmp_path / "dst" / "a").read_text() == "a"


# -- output into a pipe whose reader has gone (| head) ------------------------------------------


def run_into_closed_pipe(*args, unbuffered=False, **kw):
    """The CLI with its stdout a pipe nobody reads any more, as in ``forklift ... | head -1``."""
    env = {k: v for k, v in os.environ.items() if k != "PYTHONUNBUFFERED"}
    if unbuffered:
        env["PYTHONUNBUFFERED"] = "1"
    read_end, write_end = os.pipe()
    os.close(read_end)
    try:
        return subprocess.run(
            [sys.executable, "-m", "forklift", *args],
            stdout=write_end, stderr=subprocess.PIPE, env=env, text=True, timeout=120, **kw,
        )  # fmt: skip
    finally:
        os.close(write_end)


@pytest.mark.parametrize(
    "args",
    [
        ["--help"],
        ["run", "--help"],
        ["ps"],
        ["run", "echo", ":::", "a"],
        ["run", "-k", "echo", ":::", "a", "b"],
    ],
)
def test_a_reader_gone_is_a_quiet_exit_141(args):
    """As GNU parallel and coreutils, which SIGPIPE kills: the shell sees 141, and no traceback
    (once a BrokenPipeError traceback, or "Exception ignored" and exit 120)."""
    out = run_into_closed_pipe(*args)
    assert (out.returncode, out.stderr) == (141, "")


@pytest.mark.parametrize("args", [["ps"], ["run", "echo", ":::", "a"]])
def test_a_reader_gone_is_a_quiet_exit_141_unbuffered_too(args):
    out = run_into_closed_pipe(*args, unbuffered=True)
    assert (out.returncode, out.stderr) == (141, "")


def test_report_into_a_closed_pipe_still_writes_the_page(tmp_path):
    db = tmp_path / "run.db"
    assert run("run", "--journal", str(db), "true", ":::", "1").returncode == 0
    out = run_into_closed_pipe("report", str(db), "-o", str(tmp_path / "t.html"))
    assert (out.returncode, out.stderr) == (141, "")
    assert (tmp_path / "t.html").stat().st_size > 0


# -- messages in the command line's words --------------------------------------------------------


def test_credentials_refusal_names_the_flag(tmp_path):
    """It said "pass force=True (--force)", the Python API's words."""
    pytest.importorskip("cryptography")
    assert run("cluster", "credentials", str(tmp_path / "c")).returncode == 0
    out = run("cluster", "credentials", str(tmp_path / "c"))
    assert out.returncode == 1 and out.stderr.count("\n") == 1
    assert "pass --force to replace them" in out.stderr and "force=True" not in out.stderr


def test_library_messages_in_cli_words():
    """Every keyword the CLI rewords is in the messages it rewords (the table cannot go stale)."""
    from forklift._cluster.place import _connect_error, _url
    from forklift.cli._args import in_cli_words

    refused = _connect_error("tcp://h:1", OSError("Stream is closed"), 1.0, tls=False)
    with pytest.raises(ValueError) as no_credentials:
        _url("tls://h:1", tls=False)
    for message in (str(refused), str(no_credentials.value)):
        assert "credentials=DIR" in message
        assert "--credentials DIR" in in_cli_words(message) and "=DIR" not in in_cli_words(message)


# -- forklift cluster scheduler ------------------------------------------------------------------


@pytest.mark.skipif(
    __import__("importlib").util.find_spec("distributed") is None, reason="needs forklift[cluster]"
)
def test_scheduler_on_port_0_says_its_real_address_and_its_log_names_no_dashboard(tmp_path):
    """--port 0 printed "tcp://127.0.0.1:0" (the real port only in Dask's log), and Dask's log named a
    dashboard (http://...:PORT/status, a 404) that docs/cluster.md says is off."""
    import signal
    import socket
    import time
    import urllib.request

    log = tmp_path / "scheduler.log"
    with open(log, "wb") as out:
        proc = subprocess.Popen(
            [sys.executable, "-m", "forklift", "cluster", "scheduler", "--insecure", "--port", "0"],
            stdout=out, stderr=subprocess.STDOUT, start_new_session=True,
        )  # fmt: skip
    try:
        deadline = time.monotonic() + 60
        while "forklift cluster: scheduler at" not in log.read_text() and time.monotonic() < deadline:
            assert proc.poll() is None, log.read_text()
            time.sleep(0.1)
        text = log.read_text()
        host, port = re.search(r"forklift cluster: scheduler at tcp://([\d.]+):(\d+) ", text).groups()
        assert port != "0"
        socket.create_connection((host, int(port)), timeout=5).close()  # the scheduler listens there
        link = re.search(r"dashboard at: +(\S+)(.*)", text)
        assert "no dashboard" in link[2] and "/status" not in link[1]
        with urllib.request.urlopen(link[1], timeout=5) as page:  # the server it names answers there
            assert page.status == 200
    finally:
        proc.send_signal(signal.SIGINT)
        try:
            assert proc.wait(timeout=30) == 0
        finally:
            try:
                os.killpg(proc.pid, signal.SIGKILL)  # whatever is left of its group
            except ProcessLookupError:
                pass

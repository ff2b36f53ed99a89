"""``forklift cluster``: credentials, a scheduler and workers for ``Pool(address=...)``.

``forklift cluster credentials DIR`` makes a private CA and certificates;
``forklift cluster scheduler`` and ``forklift cluster worker ADDRESS`` start
Dask distributed's own scheduler and workers with mutual TLS from DIR (plain
TCP only with ``--insecure``). Each runs Dask's command in a child process
(its own session, so a terminal's Ctrl-C reaches only forklift, which stops
the child cleanly); a worker whose Dask process exits, for instance because
the scheduler restarted (Dask's workers then shut down), is started again.
"""

from __future__ import annotations

import argparse
import json
import os
import signal
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from ..trees import signal_group
from ._args import in_cli_words

DESCRIPTION = """\
Run forklift's Pool and Executor on several machines, on Dask distributed:

  1. forklift cluster credentials DIR       (once; copy DIR to every machine)
  2. forklift cluster scheduler --host HOST --credentials DIR
  3. forklift cluster worker tls://HOST:8786 --credentials DIR   (on each machine)
  4. Pool(address="tls://HOST:8786", credentials=DIR)  in your program

Every peer proves itself with a certificate from DIR (mutual TLS); anyone without
it is refused. Anyone WITH it can run code on the workers: guard DIR like an SSH key.
See docs/cluster.md.
"""

STOP_GRACE = 10.0  # seconds a Dask process gets to stop cleanly after SIGTERM
RESTART_DELAYS = (1.0, 2.0, 5.0, 10.0)  # between restarts of a worker that keeps exiting


def register(sub: argparse._SubParsersAction) -> None:  # type: ignore[type-arg]
    """Add the ``cluster`` subcommand and its own subcommands."""
    c = sub.add_parser(
        "cluster",
        help="run on several machines: credentials, a scheduler, workers (Dask distributed, TLS)",
        description=DESCRIPTION,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    c.set_defaults(func=lambda args: _usage(c))
    csub = c.add_subparsers(dest="cluster_command", metavar="COMMAND")

    cred = csub.add_parser(
        "credentials",
        help="make a CA and the node and client certificates in DIR (files 0600)",
        description="Make a private CA and certificates for mutual TLS in DIR: ca.pem, node.pem/.key "
        "(scheduler and workers), client.pem/.key (programs). The CA's key is not kept.",
    )
    cred.add_argument("directory", metavar="DIR", type=Path)
    cred.add_argument("--force", action="store_true", help="replace credentials already in DIR")
    cred.add_argument("--days", type=int, default=825, help="validity of the certificates (default 825)")
    cred.set_defaults(func=run_credentials)

    sch = csub.add_parser(
        "scheduler",
        help="start Dask's scheduler (mutual TLS with --credentials)",
        description="Start Dask's scheduler. Workers and programs connect to tls://HOST:PORT.",
    )
    sch.add_argument(
        "--host",
        default="127.0.0.1",
        help="address to listen on (default 127.0.0.1: this machine only; the machine's "
        "address or 0.0.0.0 to serve others)",
    )
    sch.add_argument("--port", type=int, default=8786, help="port (default 8786; 0: any free port)")
    _security_args(sch)
    sch.add_argument("--scheduler-file", metavar="PATH", help="write the scheduler's address here as JSON")
    sch.add_argument(
        "--dashboard-address",
        metavar="ADDR",
        help="serve Dask's dashboard there, e.g. 127.0.0.1:8787 (needs bokeh; off by default)",
    )
    sch.set_defaults(func=run_scheduler)

    wk = csub.add_parser(
        "worker",
        help="start Dask worker processes for the scheduler at ADDRESS",
        description="Start Dask worker processes (each under a nanny that restarts it if it dies) "
        "connected to the scheduler at ADDRESS; restarted when the scheduler restarts.",
    )
    wk.add_argument(
        "address", metavar="ADDRESS", help="the scheduler: tls://HOST:PORT (tcp:// with --insecure)"
    )
    _security_args(wk)
    wk.add_argument(
        "--procs",
        type=int,
        default=os.cpu_count() or 1,
        help="worker processes (default: the number of CPUs)",
    )
    wk.add_argument(
        "--threads",
        type=int,
        default=1,
        help="threads per process (default 1: forklift's work is CPU-bound Python)",
    )
    wk.add_argument("--host", help="address to listen on (default: the one that reaches the scheduler)")
    wk.add_argument("--name", help="a name for this machine's workers")
    wk.add_argument("--no-restart", action="store_true", help="exit when Dask's worker exits")
    wk.set_defaults(func=run_worker)


def _security_args(parser: argparse.ArgumentParser) -> None:
    group = parser.add_mutually_exclusive_group()
    group.add_argument(
        "--credentials",
        metavar="DIR",
        default=os.environ.get("FORKLIFT_CREDENTIALS") or None,
        help="directory made by 'forklift cluster credentials' (default: $FORKLIFT_CREDENTIALS)",
    )
    group.add_argument(
        "--insecure",
        action="store_true",
        help="plain TCP, no authentication: anyone who reaches the port can run code",
    )


def _usage(parser: argparse.ArgumentParser) -> int:
    parser.print_help()
    return 2


def _say(message: str) -> None:
    print(f"forklift cluster: {message}", file=sys.stderr, flush=True)


# -- credentials --------------------------------------------------------------------------
def run_credentials(args: argparse.Namespace) -> int:
    from .._cluster.credentials import make_credentials

    try:
        creds = make_credentials(args.directory, days=args.days, force=args.force)
    except (FileExistsError, ImportError, OSError) as exc:
        _say(in_cli_words(str(exc)))
        return 1
    print(f"credentials written to {creds.directory} (ca.pem, node.pem, node.key, client.pem, client.key)")
    print("copy this directory to every machine of the cluster and to the programs that use it;")
    print("anyone who holds it can run code on the workers: keep it private (files are 0600).")
    return 0


# -- scheduler and worker ------------------------------------------------------------------
def _security(args: argparse.Namespace) -> tuple[str, list[str]] | None:
    """``(protocol, dask flags)``, or None after saying why the command cannot start."""
    if args.insecure:
        return "tcp", []
    if not args.credentials:
        _say(
            "give --credentials DIR (make it with 'forklift cluster credentials DIR'), "
            "or --insecure for plain TCP with no authentication"
        )
        return None
    from .._cluster.credentials import load_credentials

    try:
        creds = load_credentials(args.credentials)
    except FileNotFoundError as exc:
        _say(str(exc))
        return None
    return "tls", creds.node_args()


def run_scheduler(args: argparse.Namespace) -> int:
    sec = _security(args)
    if sec is None:
        return 2
    protocol, flags = sec
    if _missing_distributed():
        return 1
    cmd = [sys.executable, "-m", "distributed.cli.dask_scheduler"]
    cmd += ["--host", args.host, "--port", str(args.port), "--protocol", protocol, *flags]
    http, env = _http_server(args.dashboard_address)
    cmd += http
    if protocol == "tcp":
        _warn_insecure(args.host)
    how = f"mutual TLS, credentials {args.credentials}"
    if protocol == "tcp":
        how = "plain TCP, NO authentication"
    with _address_file(args.scheduler_file) as path:
        cmd += ["--scheduler-file", path]
        ready = _announcer(path, f"({how}); Ctrl-C stops it")
        return _supervise(cmd, env, restart=False, what="scheduler", ready=ready)


# What Dask's scheduler logs as its "dashboard" link when forklift turned the dashboard off.
NO_DASHBOARD_LINK = "{scheme}://{host}:{port}/health (no dashboard: Dask's HTTP server, health and metrics)"


def _http_server(dashboard_address: str | None) -> tuple[list[str], dict[str, str]]:
    """Dask's scheduler flags for its HTTP server, and the environment to run it in."""
    env = dict(os.environ)
    if dashboard_address:
        return ["--dashboard", "--dashboard-address", dashboard_address], env
    # Dask serves HTTP (health, metrics) even with --no-dashboard, by default on 0.0.0.0:8787:
    # keep it on this machine, on any free port. Its log calls that server "dashboard at:
    # http://.../status", a page it then does not serve: have the line say what it is.
    env["DASK_DISTRIBUTED__DASHBOARD__LINK"] = NO_DASHBOARD_LINK
    return ["--no-dashboard", "--dashboard-address", "127.0.0.1:0"], env


@contextmanager
def _address_file(given: str | None) -> Iterator[str]:
    """Where Dask's scheduler writes its address: the --scheduler-file, or a file of our own."""
    if given:
        yield given
        return
    with tempfile.TemporaryDirectory(prefix="forklift-scheduler-") as directory:
        yield os.path.join(directory, "scheduler.json")


def _announcer(path: str, how: str) -> Callable[[], bool]:
    """Says the scheduler's real address (the port --port 0 got) once Dask has written it to ``path``.

    A file already there is from an earlier scheduler: only a newer one counts.
    """
    before = _stat(path)

    def ready() -> bool:
        now = _stat(path)
        if now is None or now == before:
            return False
        try:
            with open(path) as f:
                address = json.load(f)["address"]
        except (OSError, ValueError, KeyError):  # being written: next time
            return False
        _say(f"scheduler at {address} {how}")
        return True

    return ready


def _stat(path: str) -> tuple[int, int, int] | None:
    try:
        st = os.stat(path)
    except OSError:
        return None
    return st.st_ino, st.st_mtime_ns, st.st_size


def run_worker(args: argparse.Namespace) -> int:
    sec = _security(args)
    if sec is None:
        return 2
    protocol, flags = sec
    if args.procs < 1 or args.threads < 1:
        _say("--procs and --threads must be at least 1")
        return 2
    address = args.address if "://" in args.address else f"{protocol}://{args.address}"
    scheme = address.split("://", 1)[0]
    if scheme != protocol:
        _say(
            f"{address} is {scheme}:// but this worker was started for {protocol}:// "
            f"({'--insecure' if protocol == 'tcp' else '--credentials'})"
        )
        return 2
    if _missing_distributed():
        return 1
    cmd = [sys.executable, "-m", "distributed.cli.dask_worker", address, *flags]
    cmd += ["--nworkers", str(args.procs), "--nthreads", str(args.threads)]
    cmd += ["--no-dashboard", "--dashboard-address", "127.0.0.1:0"]  # as the scheduler's
    cmd += ["--death-timeout", "60"]
    if args.host:
        cmd += ["--host", args.host]
    if args.name:
        cmd += ["--name", args.name]
    if protocol == "tcp":
        _warn_insecure(args.host or "")
    env = dict(os.environ)
    # Tasks may start processes (forklift runs timed tasks in a child process):
    # Dask's nanny would otherwise make its worker processes daemonic.
    env["DASK_DISTRIBUTED__WORKER__DAEMON"] = "False"
    _say(f"{args.procs} worker process(es) x {args.threads} thread(s) for {address}; Ctrl-C stops them")
    return _supervise(cmd, env, restart=not args.no_restart, what="worker")


def _warn_insecure(host: str) -> None:
    if host not in ("127.0.0.1", "localhost", "::1"):
        _say(
            "WARNING: --insecure: plain TCP with no authentication; anyone who can reach this "
            "port can run code here. Use --credentials DIR on any network you do not fully trust."
        )


def _missing_distributed() -> bool:
    try:
        import distributed  # noqa: F401
    except ImportError:
        _say("Dask distributed is not installed: pip install 'forklift[cluster]'")
        return True
    return False


def _supervise(
    cmd: list[str], env: dict[str, str], *, restart: bool, what: str, ready: Callable[[], bool] | None = None
) -> int:
    """Run ``cmd`` until SIGINT / SIGTERM; with ``restart``, start it again whenever it exits.

    ``ready`` is called while the child runs, until it returns True (it has said the child is up).
    """
    stop = threading.Event()
    previous: dict[int, Any] = {}

    def on_signal(signum: int, frame: Any) -> None:
        stop.set()

    for sig in (signal.SIGINT, signal.SIGTERM):
        previous[sig] = signal.signal(sig, on_signal)
    failures = 0
    try:
        while True:
            started = time.monotonic()
            proc = subprocess.Popen(cmd, env=env, start_new_session=True, preexec_fn=_die_with_parent)
            code = _wait(proc, stop, ready)
            if stop.is_set():
                _stop(proc, what)
                return 0
            if not restart:
                _say(f"Dask's {what} exited with code {code}")
                return code if code else 1
            failures = 0 if time.monotonic() - started > 60 else failures + 1
            delay = RESTART_DELAYS[min(failures, len(RESTART_DELAYS) - 1)]
            _say(f"Dask's {what} exited with code {code} (scheduler gone?); starting it again in {delay:g} s")
            if stop.wait(delay):
                return 0
    finally:
        for number, handler in previous.items():
            signal.signal(number, handler)


def _die_with_parent() -> None:
    """In the child before exec: SIGTERM when forklift dies, even by SIGKILL (Linux).

    The child has its own session, so without this a killed forklift would leave
    Dask's scheduler or workers running with nobody to stop them.
    """
    if not sys.platform.startswith("linux"):
        return
    try:
        import ctypes

        ctypes.CDLL(None, use_errno=True).prctl(_PR_SET_PDEATHSIG, signal.SIGTERM, 0, 0, 0)
    except (OSError, AttributeError):
        pass


_PR_SET_PDEATHSIG = 1


def _wait(proc: subprocess.Popen[bytes], stop: threading.Event, ready: Callable[[], bool] | None) -> int:
    while not stop.is_set():
        try:
            return proc.wait(timeout=0.2)
        except subprocess.TimeoutExpired:
            if ready is not None and ready():
                ready = None
    return -1


def _stop(proc: subprocess.Popen[bytes], what: str) -> None:
    """SIGTERM to the child (Dask closes cleanly), then SIGKILL to what is left of its group."""
    _say(f"stopping Dask's {what}")
    # The leader only: Dask's CLI closes its nannies, which close their workers. A
    # SIGTERM to the whole group would kill the workers under the nannies' feet.
    proc.send_signal(signal.SIGTERM)
    try:
        proc.wait(timeout=STOP_GRACE)
    except subprocess.TimeoutExpired:
        _say(f"Dask's {what} did not stop within {STOP_GRACE:g} s: killing it")
    signal_group(proc.pid, signal.SIGKILL)  # whatever it left in its group (nanny's workers)
    proc.wait()
    _say("stopped")


def main(argv: list[str] | None = None) -> int:
    """``python -m forklift.cli.cluster ...``: the same as ``forklift cluster ...``."""
    parser = argparse.ArgumentParser(prog="forklift")
    register(parser.add_subparsers(dest="command", metavar="COMMAND", required=True))
    args = parser.parse_args(["cluster", *(sys.argv[1:] if argv is None else argv)])
    try:
        return int(args.func(args) or 0)
    except KeyboardInterrupt:
        return 130


if __name__ == "__main__":
    raise SystemExit(main())

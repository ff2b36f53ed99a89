"""``forklift kill`` and ``forklift ps``: end a process tree, or look at one.

``forklift kill PID`` ends PID and every process it started, with
:func:`forklift.kill_tree`: the tree is frozen (SIGSTOP) before it is walked,
so nothing forked meanwhile escapes; every member gets the signal, then
SIGCONT; survivors get SIGKILL after ``--timeout``. ``forklift ps [PID]``
shows a process tree (all processes as a forest, or PID's subtree).
"""

from __future__ import annotations

import argparse
import json
import signal
import sys
import time
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    import psutil

# Exit codes of `forklift kill` (argparse's usage errors exit 2).
EXIT_OK = 0  # every member of the tree ended
EXIT_ERROR = 1  # nothing done: no such process, refused, permission denied
EXIT_SURVIVORS = 3  # done, but some members are still running (stuck in the kernel, or not permitted)

KILL_DESCRIPTION = """\
End PID and every process it started. The tree is frozen first (SIGSTOP, top-down, until
no new process appears), so nothing forked meanwhile escapes; then every member gets the
signal and SIGCONT, so it can act on it; whatever is left after --timeout gets SIGKILL.
"""

KILL_EPILOG = """\
The tree is PID, its descendants and, when PID leads its own process group, every process
in that group (orphans whose parent already died stay in it). A zombie counts as ended.

Refused without --force: PID 1, kernel threads, this forklift process, its ancestors
(your shell) and a process group holding one of them.

exit status: 0 every process ended; 1 nothing done (no such process, refused, permission
denied); 2 bad arguments; 3 some processes are still running afterwards.

examples:
  forklift kill 4242                      SIGTERM, SIGKILL after 3 s for what is left
  forklift kill 4242 --signal INT -t 10   SIGINT, 10 s to clean up
  forklift kill 4242 --signal KILL        at once
"""

PS_DESCRIPTION = "Show a process tree: pid, status, CPU %, RSS and command line of each process."

PS_EPILOG = """\
Without PID: every process as a forest (kernel threads hidden unless --kernel-threads).
With PID: PID and its descendants. CPU % is measured over --interval seconds (as top does),
RSS is the resident memory. On a terminal the tree is drawn with rich; otherwise (a pipe,
a file) as plain aligned text, one process per line.
"""


def register(sub: argparse._SubParsersAction) -> None:  # type: ignore[type-arg]
    """Add the ``kill`` and ``ps`` subcommands."""
    k = sub.add_parser(
        "kill",
        help="end a process and everything it started (no orphans, no escapes)",
        description=KILL_DESCRIPTION,
        epilog=KILL_EPILOG,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    k.add_argument("pid", type=_pid, metavar="PID", help="the top of the tree")
    k.add_argument(
        "-s", "--signal", type=_signal, default=signal.SIGTERM, metavar="SIG",
        help="signal to send first: TERM, SIGINT, 9, ... (default TERM)",
    )  # fmt: skip
    k.add_argument(
        "-t", "--timeout", type=_seconds, default=3.0, metavar="S",
        help="seconds to wait before SIGKILL for what is left (default 3)",
    )  # fmt: skip
    k.add_argument("--force", action="store_true", help="allow PID 1, kernel threads, forklift's ancestors")
    k.add_argument("--json", action="store_true", help="print the result as JSON")
    k.set_defaults(func=run_kill)

    p = sub.add_parser(
        "ps",
        help="show a process tree: pid, name, status, CPU %%, RSS, command line",
        description=PS_DESCRIPTION,
        epilog=PS_EPILOG,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    p.add_argument("pid", type=_pid, nargs="?", metavar="PID", help="show only this process's tree")
    p.add_argument("--json", action="store_true", help="print the tree as JSON (nested 'children')")
    p.add_argument(
        "--interval", type=_seconds, default=0.1, metavar="S",
        help="CPU %% sampling time (default 0.1; 0: average since each process started)",
    )  # fmt: skip
    p.add_argument("--kernel-threads", action="store_true", help="include kernel threads (forest only)")
    p.set_defaults(func=run_ps)


# -- argument types ------------------------------------------------------------------------


def _pid(text: str) -> int:
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"not a process id: {text!r}") from None
    if value < 1:
        raise argparse.ArgumentTypeError(f"a process id is at least 1, not {value}")
    return value


def _signal(text: str) -> int:
    name = text.strip().upper()
    try:
        sig = signal.Signals(int(name)) if name.isdigit() else signal.Signals[_with_sig(name)]
    except (KeyError, ValueError):
        hint = "try TERM, INT, HUP, KILL or 15"
        raise argparse.ArgumentTypeError(f"unknown signal: {text!r} ({hint})") from None
    if sig in (signal.SIGSTOP, signal.SIGTSTP, signal.SIGTTIN, signal.SIGTTOU, signal.SIGCONT):
        raise argparse.ArgumentTypeError(f"{sig.name} does not end a process; use TERM, INT, HUP or KILL")
    return int(sig)


def _with_sig(name: str) -> str:
    return name if name.startswith("SIG") else f"SIG{name}"


def _seconds(text: str) -> float:
    try:
        value = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"not a number of seconds: {text!r}") from None
    if not 0 <= value < float("inf"):
        raise argparse.ArgumentTypeError(f"seconds must be >= 0, not {text}")
    return value


def _fail(message: str) -> int:
    print(f"forklift: {message}", file=sys.stderr)
    return EXIT_ERROR


# -- forklift kill -------------------------------------------------------------------------


def run_kill(args: argparse.Namespace) -> int:
    import psutil

    from ..trees import kill_tree, refusal

    pid: int = args.pid
    try:
        target = psutil.Process(pid)
        name = one_line(target.name())
    except psutil.NoSuchProcess:
        return _fail(f"no such process: {pid}")
    except psutil.AccessDenied:
        name = "?"
    if not args.force:
        reason = refusal(pid, caller="this forklift process")
        if reason:
            return _fail(f"refusing to kill {pid} ({name}): {reason}; pass --force to do it anyway")
    try:
        # force=True: refused just above, in the command line's words (--force, not force=True).
        result = kill_tree(pid, sig=args.signal, timeout=args.timeout, force=True)
    except PermissionError:
        owner = _owner(target)
        return _fail(f"permission denied: cannot signal {pid} ({name}, user {owner}); run as them or root")
    if not result.pids:
        return _fail(f"no such process: {pid} (it ended before it could be signalled)")
    if args.json:
        print(json.dumps(_result_dict(result, name), indent=2))
    else:
        print(_describe(result, name, args.timeout))
    if result.denied:
        print(f"forklift: permission denied for {_pids(result.denied)}", file=sys.stderr)
    return EXIT_OK if result.ok else EXIT_SURVIVORS


def _owner(proc: psutil.Process) -> str:
    import psutil

    try:
        return str(proc.username())
    except (psutil.Error, KeyError):
        return "?"


def _describe(result: Any, name: str, timeout: float) -> str:
    sig = signal.Signals(result.sig).name
    others = len(result.pids) - (result.pid in result.pids)
    lines = [f"{result.pid} ({name}) and {others} descendant(s): {len(result.pids)} process(es)"]
    lines.append(f"  ended on {sig:<8} {len(result.ended):>4}  {_pids(result.ended)}")
    if result.sig != signal.SIGKILL:
        killed = f"{len(result.killed):>4}  {_pids(result.killed)}"
        lines.append(f"  needed SIGKILL  {killed}  (after {timeout:g} s)")
    lines.append(f"  still running   {len(result.alive):>4}  {_pids(result.alive)}")
    lines.append(f"  took {result.elapsed * 1000:.1f} ms")
    return "\n".join(line.rstrip() for line in lines)


def _pids(pids: tuple[int, ...], limit: int = 12) -> str:
    shown = " ".join(map(str, pids[:limit]))
    return shown + (f" ... (+{len(pids) - limit})" if len(pids) > limit else "")


def _result_dict(result: Any, name: str) -> dict[str, Any]:
    return {
        "pid": result.pid,
        "name": name,
        "signal": signal.Signals(result.sig).name,
        "pids": list(result.pids),
        "ended": list(result.ended),
        "killed": list(result.killed),
        "alive": list(result.alive),
        "denied": list(result.denied),
        "elapsed": round(result.elapsed, 6),
        "ok": result.ok,
    }


# -- forklift ps ---------------------------------------------------------------------------


@dataclass
class Node:
    """One process as ``forklift ps`` shows it."""

    pid: int
    ppid: int
    name: str
    status: str
    cpu_percent: float | None
    rss: int | None
    cmdline: list[str]
    children: list[Node] = field(default_factory=list)

    def command(self) -> str:
        """The command line on one line: control characters (a newline in an argument) escaped."""
        return one_line(" ".join(self.cmdline) if self.cmdline else f"[{self.name}]")

    def to_dict(self) -> dict[str, Any]:
        return {
            "pid": self.pid,
            "ppid": self.ppid,
            "name": self.name,
            "status": self.status,
            "cpu_percent": self.cpu_percent,
            "rss": self.rss,
            "cmdline": self.cmdline,
            "children": [c.to_dict() for c in self.children],
        }


# C0 and C1 controls (a newline, an escape sequence, NEL) and the Unicode line and
# paragraph separators: each would break a row or drive the terminal.
_ONE_LINE = {c: repr(chr(c))[1:-1] for c in [*range(32), *range(127, 160)]} | {
    0x2028: "\\u2028",
    0x2029: "\\u2029",
}


def one_line(text: str) -> str:
    """``text`` with control characters escaped (a process may name itself "a\\nb")."""
    return text.translate(_ONE_LINE)


def run_ps(args: argparse.Namespace) -> int:
    import psutil

    if args.pid is not None and not psutil.pid_exists(args.pid):
        return _fail(f"no such process: {args.pid}")
    nodes = _collect(args.interval)
    if args.pid is not None:
        if args.pid not in nodes:
            return _fail(f"no such process: {args.pid}")
        roots = [nodes[args.pid]]
    else:
        roots = _forest(nodes, kernel_threads=args.kernel_threads)
    if args.json:
        print(json.dumps([r.to_dict() for r in roots], indent=2))
    elif _is_terminal():
        _print_rich(roots)
    else:
        print(_plain(roots))
    return EXIT_OK


def _is_terminal() -> bool:
    return sys.stdout.isatty()


def _collect(interval: float) -> dict[int, Node]:
    """Every process as a Node, linked to its children; CPU % over ``interval`` seconds."""
    import psutil

    procs = list(psutil.process_iter(["ppid", "name", "status", "memory_info", "cmdline"]))
    cpu: dict[int, float | None] = {}
    if interval > 0:
        for proc in procs:
            _cpu_percent(proc)  # the first call starts the sample
        time.sleep(interval)
        cpu = {proc.pid: _cpu_percent(proc) for proc in procs}
    else:
        cpu = {proc.pid: _lifetime_cpu(proc) for proc in procs}
    nodes: dict[int, Node] = {}
    for proc in procs:
        info = proc.info
        mem = info.get("memory_info")
        nodes[proc.pid] = Node(
            pid=proc.pid,
            ppid=info.get("ppid") or 0,
            name=info.get("name") or "?",
            status=info.get("status") or "?",
            cpu_percent=cpu.get(proc.pid),
            rss=getattr(mem, "rss", None),
            cmdline=list(info.get("cmdline") or []),
        )
    for node in sorted(nodes.values(), key=lambda n: n.pid):
        parent = nodes.get(node.ppid)
        if parent is not None and parent is not node:
            parent.children.append(node)
    return nodes


def _cpu_percent(proc: psutil.Process) -> float | None:
    import psutil

    try:
        return float(proc.cpu_percent(None))
    except psutil.Error:
        return None


def _lifetime_cpu(proc: psutil.Process) -> float | None:
    import psutil

    try:
        times = proc.cpu_times()
        age = time.time() - proc.create_time()
    except psutil.Error:
        return None
    return 100.0 * (times.user + times.system) / age if age > 0 else 0.0


def _forest(nodes: dict[int, Node], *, kernel_threads: bool) -> list[Node]:
    """The processes whose parent is not listed (PID 1, kthreadd, ...), in pid order."""
    roots = [n for n in sorted(nodes.values(), key=lambda n: n.pid) if n.ppid not in nodes or n.ppid == n.pid]
    if not kernel_threads and sys.platform.startswith("linux"):
        roots = [n for n in roots if n.pid != 2]  # kthreadd: the parent of every kernel thread
    return roots


def _walk(roots: list[Node]) -> list[tuple[Node, str]]:
    """Depth-first, each node with its tree-drawing prefix."""
    rows: list[tuple[Node, str]] = []

    def visit(node: Node, lead: str, branch: str) -> None:
        rows.append((node, lead + branch))
        below = lead + ("" if not branch else "   " if branch == "└─ " else "│  ")
        for i, child in enumerate(node.children):
            visit(child, below, "└─ " if i == len(node.children) - 1 else "├─ ")

    for root in roots:
        visit(root, "", "")
    return rows


def _plain(roots: list[Node]) -> str:
    rows = _walk(roots)
    width = max([len(str(n.pid)) for n, _ in rows] + [3])
    lines = [f"{'PID':>{width}}  {'STATUS':<9} {'CPU%':>6} {'RSS':>8}  COMMAND"]
    for node, prefix in rows:
        lines.append(
            f"{node.pid:>{width}}  {node.status:<9} {_fmt_cpu(node.cpu_percent):>6} "
            f"{_fmt_bytes(node.rss):>8}  {prefix}{node.command()}"
        )
    return "\n".join(lines)


def _print_rich(roots: list[Node]) -> None:
    from rich.console import Console
    from rich.markup import escape
    from rich.tree import Tree

    def label(node: Node) -> str:
        return (
            f"[bold]{node.pid}[/] [cyan]{escape(one_line(node.name))}[/] [dim]{node.status}[/] "
            f"{_fmt_cpu(node.cpu_percent)}% {_fmt_bytes(node.rss)}  [dim]{escape(node.command())}[/]"
        )

    def add(branch: Tree, node: Node) -> None:
        for child in node.children:
            add(branch.add(label(child)), child)

    console = Console()
    for root in roots:
        tree = Tree(label(root), guide_style="dim")
        add(tree, root)
        console.print(tree, overflow="ellipsis", no_wrap=True, crop=True)


def _fmt_cpu(value: float | None) -> str:
    return "?" if value is None else f"{value:.1f}"


def _fmt_bytes(n: int | None) -> str:
    if n is None:
        return "?"
    size = float(n)
    for unit in ("B", "K", "M", "G"):
        if size < 1024 or unit == "G":
            return f"{size:.0f}{unit}" if unit == "B" else f"{size:.1f}{unit}"
        size /= 1024
    return f"{size:.1f}T"  # pragma: no cover

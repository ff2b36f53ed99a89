"""forklift run: run shell commands in parallel, GNU parallel style.

  forklift run [OPTIONS] COMMAND [ARG...] ::: A B C        one job per argument
  forklift run [OPTIONS] COMMAND ::: A B ::: 1 2           the product: A 1, A 2, B 1, B 2
  forklift run [OPTIONS] COMMAND ::: A B :::+ 1 2          linked (:::+, ::::+): A 1, B 2
  forklift run [OPTIONS] COMMAND :::: FILE                 one job per line of FILE ('-' = stdin)
  ... | forklift run [OPTIONS] COMMAND                     one job per line of stdin
  forklift run [OPTIONS] ::: 'cmd one' 'cmd two'           no command: each argument is one

Replacement strings in COMMAND: {} the argument, {.} without extension, {/} basename,
{//} dirname, {/.} basename without extension, {#} job number, {%} job slot,
{1} {2} ... the n-th source or --colsep column, {-1} the last (also {1.} {1/} {1//}
{1/.}). Without any, the argument is appended. Arguments are shell-quoted: a name
with spaces, quotes, $, ; or a newline is one argument and is never run.
{=perl=} is not supported (refused).

Each job runs with /bin/sh -c (--shell to change) in its own session. Its stdout
and stderr are printed whole when it ends, never mixed with another job's.
SIGINT, SIGTERM or SIGHUP kill the running jobs; the jobs that had ended are
printed and logged, so --resume runs exactly the rest.

Exit status (GNU parallel's): 0 all jobs succeeded; 1-100 that many failed;
101 more than 100 failed; with --halt, see --halt; 130/143/129 interrupted by
SIGINT/SIGTERM/SIGHUP; 141 the output's reader went away (| head); 255 bad
usage or another error (one line on stderr).
"""

from __future__ import annotations

import argparse
import math
import os
import re
import sys
from collections.abc import Iterator
from typing import TYPE_CHECKING, Any, NoReturn

from ._args import in_cli_words

if TYPE_CHECKING:  # imported when the command runs: every other command starts faster
    from .._run.inputs import Inputs, Source
    from .._run.recorder import RunSummary
    from .._run.runner import Halt, RunOptions
    from .._run.template import Template

ERROR = 255
_DURATION = re.compile(r"(\d+(?:\.\d*)?|\.\d+)([dhms]?)")
_UNITS = {"": 1.0, "s": 1.0, "m": 60.0, "h": 3600.0, "d": 86400.0}


class UsageError(Exception):
    """Bad input: one line on stderr, exit 255."""


def register(sub: argparse._SubParsersAction) -> None:  # type: ignore[type-arg]
    p = sub.add_parser(
        "run",
        help="run shell commands in parallel (GNU parallel's everyday features)",
        description=__doc__,
        formatter_class=argparse.RawDescriptionHelpFormatter,
        allow_abbrev=False,
        usage="forklift run [OPTIONS] [COMMAND [ARG...]] [::: ARGS | :::: FILES]...",
    )
    p.error = _usage_error
    p.add_argument(
        "-j",
        "--jobs",
        default=None,
        metavar="N",
        help="jobs at once: N, N%% of the cores, +N/-N cores plus/minus N, 0 = as many as possible"
        " (default: the number of cores)",
    )
    p.add_argument(
        "--timeout",
        metavar="SECS",
        help="kill a job (its whole process group) after SECS seconds (also 1h2m3s, or N%% of"
        " the median runtime so far); it counts as failed, Exitval -1 in the joblog",
    )
    p.add_argument(
        "--retries",
        type=int,
        default=1,
        metavar="N",
        help="run a failing job up to N times in all (default 1); only its last attempt is printed"
        " and logged",
    )
    p.add_argument(
        "--halt",
        metavar="WHEN,WHAT=N",
        help="stop early: WHEN is 'now' (kill running jobs; they are not printed nor logged) or"
        " 'soon' (let them finish), WHAT is fail|success|done, N a count or a percentage, e.g."
        " now,fail=1 or soon,fail=20%%; also 1 (soon,fail=1), 2 (now,fail=1), -1 (soon,success=1),"
        " -2 (now,success=1); never or 0: run everything (the default). The exit status is then"
        " the failing job's (fail=1), the number failed, the percentage failed, or 0 (success)",
    )
    p.add_argument("-k", "--keep-order", action="store_true", help="print output in input order")
    p.add_argument("--dry-run", action="store_true", help="print the commands, run nothing")
    p.add_argument(
        "--line-buffer",
        "--lb",
        action="store_true",
        help="print output line by line as jobs run (lines of different jobs may alternate;"
        " a line is never torn, unless longer than 64 KiB)",
    )
    p.add_argument(
        "--tag", action="store_true", help="prefix each output line with the job's arguments and a TAB"
    )
    p.add_argument(
        "--bar",
        "--progress",
        action="store_true",
        dest="bar",
        help="progress bar on stderr (when it is a terminal) and a summary line at the end;"
        " all inputs are read first, for the total",
    )
    p.add_argument("--bar-always", action="store_true", help="show the bar even if stderr is no terminal")
    p.add_argument(
        "--joblog",
        metavar="FILE",
        help="log each finished job to FILE in GNU parallel's format (+FILE appends; - is stdout,"
        " each line after its job's output)",
    )
    p.add_argument(
        "--journal",
        metavar="DB",
        help="also record every job (times, slot, exit code, output size) in the SQLite journal DB,"
        " for 'forklift report' (see docs/report.md)",
    )
    p.add_argument(
        "--resume",
        action="store_true",
        help="skip the jobs already in --joblog (same inputs and command as the interrupted run)",
    )
    p.add_argument(
        "--resume-failed",
        action="store_true",
        help="like --resume, but run the jobs that failed again",
    )
    p.add_argument(
        "--colsep",
        metavar="REGEX",
        help="split each input line into columns {1} {2} ..., trimmed of spaces and tabs",
    )
    p.add_argument("-0", "--null", action="store_true", help="input items end with NUL, not newline")
    p.add_argument(
        "-a",
        "--arg-file",
        action="append",
        default=[],
        metavar="FILE",
        help="read arguments from FILE (like :::: FILE)",
    )
    p.add_argument("-q", "--quote", action="store_true", help="quote the command's words (no shell syntax)")
    p.add_argument(
        "--shell",
        default=os.environ.get("FORKLIFT_SHELL", "/bin/sh"),
        help="shell that runs each job with -c (default: $FORKLIFT_SHELL or /bin/sh)",
    )
    p.add_argument("--tmpdir", metavar="DIR", help="where grouped output is kept (default: $TMPDIR or /tmp)")
    p.add_argument(
        "--cluster",
        metavar="ADDRESS",
        help="run the jobs on a Dask cluster's workers instead (tls://host:8786, or 'local');"
        " see docs/cluster.md. Ctrl-C (or --halt now) kills the jobs running there too;"
        " -j and --line-buffer do not apply",
    )
    p.add_argument(
        "--credentials",
        metavar="DIR",
        default=os.environ.get("FORKLIFT_CREDENTIALS"),
        help="the cluster's credentials directory (default: $FORKLIFT_CREDENTIALS)",
    )
    p.add_argument("words", nargs=argparse.REMAINDER, help=argparse.SUPPRESS)
    p.set_defaults(func=main)


_NEGATIVE = re.compile(r"-\d+(?:\.\d*)?%?")


def join_negative_values(parser: argparse.ArgumentParser, words: list[str]) -> list[str]:
    """``-j -2`` (GNU parallel: the cores minus 2) as ``--jobs=-2``; so for every option's value.

    argparse takes ``-2`` for an option, since ``forklift run`` has one that looks
    like a number (``-0``), so ``-j -2`` would be "expected one argument", and so would
    ``--halt -1`` (GNU parallel's soon,success=1) and ``--retries -2`` (which then gets
    its own message). Only the options before the command are looked at:
    ``forklift run make -j -2 ::: x`` passes ``-j -2`` to make untouched.
    """
    out = list(words)
    i = 0
    while i < len(out):
        takes = _takes_next(parser, out[i])
        if out[i] == "--" or takes is None:  # the command (or something argparse will refuse)
            break
        if takes and i + 1 < len(out):
            if _NEGATIVE.fullmatch(out[i + 1]):
                out[i : i + 2] = [_joined(parser, out[i], out[i + 1])]
            else:
                i += 1  # the option's value
        i += 1
    return out


def _takes_next(parser: argparse.ArgumentParser, word: str) -> bool | None:
    """Whether the option ``word`` takes the next word as its value; None if it is no option."""
    actions = parser._option_string_actions
    name, equals, _ = word.partition("=")
    if name in actions:
        return actions[name].nargs != 0 and not equals
    if word.startswith("--") or word[:2] not in actions:
        return None
    if actions[word[:2]].nargs != 0:
        return False  # -j4: the value is attached
    last = actions.get(f"-{word[-1]}")  # flags together, the last one may take a value: -kj 4
    return last is not None and last.nargs != 0


def _joined(parser: argparse.ArgumentParser, option: str, value: str) -> str:
    """``option`` and its value as one word: --jobs=-2 for -j, -kj-2 for flags together."""
    action = parser._option_string_actions.get(option)
    if action is None:
        return option + value
    return f"{max(action.option_strings, key=len)}={value}"


def main(args: argparse.Namespace) -> int:
    from .._run.inputs import InputError
    from .._run.joblog import JoblogError
    from .._run.runner import RunError
    from .._run.template import TemplateError

    expected: tuple[type[Exception], ...] = (UsageError, InputError, TemplateError, JoblogError, RunError)
    try:
        return _run(args)
    except Exception as exc:
        # A JournalError comes only from a run that loaded forklift.errors (--journal):
        # looked up here, the plain run does not import it (and multiprocessing, ~15 ms).
        errors = sys.modules.get("forklift.errors")
        if not isinstance(exc, expected + ((errors.JournalError,) if errors is not None else ())):
            raise
        print(f"forklift run: {exc}", file=sys.stderr)
        return ERROR


def _run(args: argparse.Namespace) -> int:
    from .._run.template import Template

    words, sources = _command_line(args)
    template = Template(words, quote_command=args.quote)
    jobs = parse_jobs(args.jobs)
    inputs = _inputs(args, sources)
    options = _options(args, jobs)
    items: Iterator[tuple[str, ...]] = iter(inputs)
    if _shown_bar(args) or (options.halt is not None and options.halt.percent):
        listed = list(items)  # GNU parallel too reads everything first for a bar or a percentage
        items = iter(listed)
        options = options._replace(total=len(listed) - len(options.skip))
    if args.dry_run:
        return _dry_run(template, items, jobs, options.skip)
    if not os.access(args.shell, os.X_OK):
        raise UsageError(f"the shell {args.shell!r} cannot be run (see --shell)")
    if args.cluster:
        return _run_on_cluster(args, template, items, options)
    return _run_here(args, template, items, options)


def _command_line(args: argparse.Namespace) -> tuple[list[str], list[Source]]:
    """The command's words, and the inputs' sources (-a FILE first)."""
    from .._run.inputs import Source, split_command_line

    words, sources = split_command_line(args.words)
    if words[:1] == ["--"]:
        words = words[1:]
    return words, [Source(path=f) for f in args.arg_file] + sources


def _inputs(args: argparse.Namespace, sources: list[Source]) -> Inputs:
    from .._run.inputs import Inputs

    colsep = _regex(args.colsep) if args.colsep is not None else None
    inputs = Inputs(sources, null=args.null, colsep=colsep)
    if any(s.path == "-" for s in inputs.sources) and sys.stdin.isatty() and not args.dry_run:
        print("forklift run: reading arguments from the terminal (end with Ctrl-D)", file=sys.stderr)
    return inputs


def _options(args: argparse.Namespace, jobs: int) -> RunOptions:
    """The run's options; their ``total`` stays None until the inputs are read up front."""
    from .._run.runner import RunOptions

    if args.retries < 1:
        raise UsageError(f"--retries must be at least 1, not {args.retries}")
    halt = parse_halt(args.halt) if args.halt else None
    timeout, timeout_percent = parse_timeout(args.timeout) if args.timeout else (None, None)
    joblog, append, skip = _joblog(args)
    return RunOptions(
        jobs=jobs,
        shell=args.shell,
        timeout=timeout,
        timeout_percent=timeout_percent,
        retries=args.retries,
        halt=halt,
        keep_order=args.keep_order,
        line_buffer=args.line_buffer and not args.keep_order,  # -k prints job by job
        tag=args.tag,
        joblog=joblog,
        joblog_append=append,
        skip=skip,
        tmpdir=args.tmpdir,
        journal=args.journal,
    )


def _joblog(args: argparse.Namespace) -> tuple[str | None, bool, frozenset[int]]:
    """--joblog's file (``-``: stdout), whether to append to it, and the jobs --resume skips."""
    from .._run.joblog import STDOUT, read_done

    resume = args.resume or args.resume_failed
    if resume and not args.joblog:
        raise UsageError("--resume needs --joblog FILE (the log of the run to resume)")
    if resume and args.joblog == STDOUT:
        raise UsageError("--resume reads the joblog of the run to resume: give its file, not - (stdout)")
    joblog, append = args.joblog, False
    if joblog and joblog.startswith("+"):
        joblog, append = joblog[1:], True
        if joblog == STDOUT:
            joblog = f"./{STDOUT}"  # as GNU parallel: +- appends to a file named -
    if not (joblog and resume):
        return joblog, append, frozenset()
    return joblog, True, frozenset(read_done(joblog, failed_too=not args.resume_failed))


def _shown_bar(args: argparse.Namespace) -> bool:
    return bool(args.bar_always or (args.bar and sys.stderr.isatty()))


def _run_here(
    args: argparse.Namespace, template: Template, items: Iterator[tuple[str, ...]], options: RunOptions
) -> int:
    from .._run.runner import Runner

    bar = _Bar(options.total) if _shown_bar(args) else None
    runner = Runner(
        template,
        items,
        options,
        on_progress=bar.update if bar else None,
        write_out=bar.write if bar else None,
        warn=bar.warn if bar else None,
    )
    try:
        summary = runner.run()
    finally:
        if bar:
            bar.close()
    return _reported(args, summary)


def _run_on_cluster(
    args: argparse.Namespace, template: Template, items: Iterator[tuple[str, ...]], options: RunOptions
) -> int:
    from .._run.output import write_all
    from .._run.remote import run_on_cluster
    from ..errors import AuthenticationError, ClusterError

    if args.line_buffer:
        raise UsageError("--line-buffer does not apply with --cluster: a job's output comes back whole")
    try:
        summary = run_on_cluster(
            template, items, options, args.cluster, args.credentials, write_out=write_all, warn=_warn
        )
    except (ImportError, ClusterError, AuthenticationError, ValueError, FileNotFoundError) as exc:
        raise _cluster_error(args.cluster, exc) from None
    return _reported(args, summary)


def _cluster_error(address: str, exc: Exception) -> Exception:
    """Why a run could not use the cluster, in the command line's words: one line, exit 255."""
    from .._run.runner import RunError

    if not isinstance(exc, ImportError):
        return RunError(f"the cluster {address!r}: {in_cli_words(str(exc))}")
    if (exc.name or "").partition(".")[0] == "forklift":
        return exc  # forklift's own module: a bug, shown as one
    # the cluster extra (Dask distributed) is not installed, or not whole
    extra = " (--cluster needs: pip install 'forklift[cluster]')" if exc.name else ""
    return RunError(in_cli_words(str(exc)) + extra)


def _warn(text: str) -> None:
    print(f"forklift run: {text}", file=sys.stderr)


def _reported(args: argparse.Namespace, summary: RunSummary) -> int:
    """The run's exit status, once its summary line is printed (--bar)."""
    if args.bar or args.bar_always:
        print(_summary_line(summary), file=sys.stderr)
    return summary.exit_status


def _dry_run(template: Template, items: Iterator[tuple[str, ...]], jobs: int, skip: frozenset[int]) -> int:
    from .._run.runner import RunError, nul_problem

    out = sys.stdout
    for seq, args in enumerate(items, 1):
        if seq not in skip:
            command = template.build(args, seq, (seq - 1) % jobs + 1)
            problem = nul_problem(seq, command)
            if problem is not None:  # the run would stop here: so does its rehearsal
                out.flush()
                raise RunError(problem)
            out.write(command + "\n")
    out.flush()
    return 0


def parse_jobs(text: str | None) -> int:
    cores = len(os.sched_getaffinity(0))
    if text is None:
        return cores
    value = text.strip()
    try:
        if value.endswith("%"):
            return max(1, math.floor(float(value[:-1]) * cores / 100))
        if value.startswith(("+", "-")):
            return max(1, cores + int(value))
        n = int(value)
    except ValueError:
        raise UsageError(f"-j takes N, N%, +N or -N, not {text!r}") from None
    if n < 0:
        raise UsageError(f"-j must be 0 or more, not {n}")
    if n == 0:
        import resource

        _, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
        return max(1, min(4096, (hard if hard != resource.RLIM_INFINITY else 1 << 16) // 4))
    return n


def parse_timeout(text: str) -> tuple[float | None, float | None]:
    value = text.strip()
    if value.endswith("%"):
        try:
            pct = float(value[:-1])
        except ValueError:
            raise UsageError(f"--timeout takes seconds or N%, not {text!r}") from None
        if pct <= 0:
            raise UsageError("--timeout must be more than 0")
        return None, pct
    pos, seconds = 0, 0.0
    for match in _DURATION.finditer(value):
        if match.start() != pos:
            break
        seconds += float(match[1]) * _UNITS[match[2]]
        pos = match.end()
    if pos != len(value) or not value:
        raise UsageError(f"--timeout takes seconds (or 1h2m3s, or N%), not {text!r}")
    if seconds <= 0:
        raise UsageError("--timeout must be more than 0")
    return seconds, None


def parse_halt(text: str) -> Halt | None:
    """``--halt``'s value as GNU parallel reads it; None for ``never`` / ``0`` (the default)."""
    from .._run.runner import Halt

    value = {"1": "soon,fail=1", "2": "now,fail=1", "-1": "soon,success=1", "-2": "now,success=1"}.get(
        text, text
    )
    if re.fullmatch(r"\d+%", value):
        value = f"soon,fail={value}"
    match = re.fullmatch(r"(now|soon),(fail|success|done)=(\d+)(%?)", value)
    if value in ("never", "0"):  # GNU parallel's default, said out loud: scripts do
        return None
    if not match:
        raise UsageError(f"--halt takes now|soon,fail|success|done=N or N%, e.g. now,fail=1; not {text!r}")
    when, what, number, pct = match.groups()
    if pct:
        if not 0 < int(number) <= 100:
            raise UsageError(f"--halt percentage must be 1..100, not {number}")
        return Halt(when, what, percent=float(number))
    if int(number) < 1:
        raise UsageError(f"--halt count must be at least 1, not {number}")
    return Halt(when, what, count=int(number))


def _regex(text: str) -> re.Pattern[str]:
    try:
        return re.compile(text)
    except re.error as exc:
        raise UsageError(f"--colsep {text!r} is not a valid regular expression: {exc}") from None


def _usage_error(message: str) -> NoReturn:
    print(f"forklift run: {message} (see 'forklift run --help')", file=sys.stderr)
    raise SystemExit(ERROR)


def _summary_line(s: RunSummary) -> str:
    parts = [f"{s.succeeded} succeeded", f"{s.failed} failed"]
    if s.timed_out:
        parts.append(f"{s.timed_out} timed out")
    if s.retried:
        parts.append(f"{s.retried} retries")
    if s.skipped:
        parts.append(f"{s.skipped} skipped (already in the joblog)")
    jobs = s.succeeded + s.failed
    per_job = f", {s.seconds / jobs * 1000:.2f} ms/job" if jobs else ""
    line = f"forklift run: {jobs} jobs in {s.seconds:.2f} s{per_job}: " + ", ".join(parts)
    if s.interrupted:
        line += f"; interrupted by signal {s.interrupted}"
    return line


class _Bar:
    """A rich progress bar on stderr, started at the first job (after the guardian forked)."""

    def __init__(self, total: int | None) -> None:
        self.total = total
        self.progress: Any = None
        self.task: Any = None

    def _start(self) -> None:
        from rich.console import Console
        from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeRemainingColumn

        self.progress = Progress(
            TextColumn("[bold]forklift run"),
            BarColumn(),
            MofNCompleteColumn(),
            TextColumn("{task.fields[running]} running, {task.fields[failed]} failed"),
            TimeRemainingColumn(),
            console=Console(file=sys.stderr, force_terminal=sys.stderr.isatty() or None),
        )
        self.progress.start()
        self.task = self.progress.add_task("jobs", total=self.total, running=0, failed=0)

    def update(self, summary: RunSummary, running: int) -> None:
        if self.progress is None:
            self._start()
        self.progress.update(
            self.task, completed=summary.succeeded + summary.failed, running=running, failed=summary.failed
        )

    def write(self, fd: int, data: bytes) -> None:
        if self.progress is not None and os.isatty(fd):
            self.progress.console.out(data.decode(errors="replace"), end="", highlight=False)
        else:
            from .._run.output import write_all

            write_all(fd, data)

    def warn(self, text: str) -> None:
        self.write(2, f"forklift run: {text}\n".encode())

    def close(self) -> None:
        if self.progress is not None:
            self.progress.stop()

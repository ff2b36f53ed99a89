"""``forklift``: the command-line entry point; subcommands register themselves here."""

from __future__ import annotations

import argparse
import importlib
import os
import sys
from collections.abc import Sequence

from .. import __version__
from .._errors import PlatformError, SettingError  # here: a command may drop privileges before it fails

# Each command's module, in the order of `forklift --help`. Only the module of the
# command being run is imported, so `forklift run` does not pay for `cluster` or `ps`.
MODULES = {
    "demo": "demo",
    "run": "run",
    "copy": "copy",
    "kill": "kill",
    "ps": "kill",
    "report": "report",
    "top": "report",
    "cluster": "cluster",
}


def build_parser(command: str | None = None) -> argparse.ArgumentParser:
    """The parser of every command, or of ``command`` alone when it is one."""
    parser = argparse.ArgumentParser(
        prog="forklift",
        description=(
            "forklift: multiprocessing that does not fail you. Process pools that survive "
            "dead workers, per-task timeouts, progress bars, lambdas that pickle, no orphans."
        ),
        epilog="Run 'forklift COMMAND --help' for a command's options.",
    )
    parser.add_argument("--version", action="version", version=f"forklift {__version__}")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND")
    names = [MODULES[command]] if command in MODULES else dict.fromkeys(MODULES.values())
    for name in names:
        importlib.import_module(f".{name}", __package__).register(sub)
    return parser


# Exit status when whoever reads our output has gone (`forklift ps | head -1`): what a shell
# reports for GNU parallel or coreutils there, killed by SIGPIPE: 128 + 13.
BROKEN_PIPE = 141


def main(argv: Sequence[str] | None = None) -> int:
    try:
        try:
            return _main(argv)
        finally:
            sys.stdout.flush()  # here, where a broken pipe is caught, not at the interpreter's exit
    except BrokenPipeError:
        if not _quiet_gone_outputs():
            raise  # not stdout or stderr: a bug, shown as one
        return BROKEN_PIPE


def _main(argv: Sequence[str] | None) -> int:
    argv = sys.argv[1:] if argv is None else list(argv)
    parser = build_parser(argv[0] if argv else None)
    if argv[:1] == ["run"]:
        from .run import join_negative_values

        argv = ["run", *join_negative_values(_subparser(parser, "run"), argv[1:])]
    args, extra = parser.parse_known_args(argv)
    if extra:  # reported by the subcommand's parser, which knows its own exit status
        _subparser(parser, args.command).error(f"unrecognized arguments: {' '.join(extra)}")
    if args.command is None:
        parser.print_help()
        return 2
    try:
        return int(args.func(args) or 0)
    except KeyboardInterrupt:
        print("interrupted", file=sys.stderr)
        return 130
    except (PlatformError, SettingError) as exc:  # one line, no traceback: cannot run here, or so
        print(f"forklift {args.command}: {exc}", file=sys.stderr)
        return 2


def _quiet_gone_outputs() -> bool:
    """Point stdout and stderr at /dev/null if their reader has gone; True if one had.

    Then nothing more is written there, the interpreter's last flush included, which
    would print a second BrokenPipeError on the way out.
    """
    import select

    poller = select.poll()
    for fd in (1, 2):
        poller.register(fd, 0)  # a pipe whose reader closed reports POLLERR
    gone = [fd for fd, events in poller.poll(0) if events & (select.POLLERR | select.POLLHUP)]
    if gone:
        devnull = os.open(os.devnull, os.O_WRONLY)
        for fd in gone:
            os.dup2(devnull, fd)
        os.close(devnull)
    return bool(gone)


def _subparser(parser: argparse.ArgumentParser, command: str | None) -> argparse.ArgumentParser:
    for action in parser._subparsers._group_actions if parser._subparsers else ():
        if isinstance(action, argparse._SubParsersAction) and command in action.choices:
            return action.choices[command]  # type: ignore[no-any-return]
    return parser


if __name__ == "__main__":
    raise SystemExit(main())

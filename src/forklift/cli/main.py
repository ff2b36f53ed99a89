"""``forklift``: the command-line entry point; subcommands register themselves here."""

from __future__ import annotations

import argparse
import sys
from collections.abc import Sequence

from .. import __version__
from . import cluster, copy, demo, kill, report, run

# Order here is the order of `forklift --help`.
COMMANDS = (demo, run, copy, kill, report, cluster)


def build_parser() -> argparse.ArgumentParser:
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
    for module in COMMANDS:
        module.register(sub)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    parser = build_parser()
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


def _subparser(parser: argparse.ArgumentParser, command: str | None) -> argparse.ArgumentParser:
    for action in parser._subparsers._group_actions if parser._subparsers else ():
        if isinstance(action, argparse._SubParsersAction) and command in action.choices:
            return action.choices[command]  # type: ignore[no-any-return]
    return parser


if __name__ == "__main__":
    raise SystemExit(main())

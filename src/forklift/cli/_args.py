"""Argument types the subcommands share (argparse ``type=`` callables)."""

from __future__ import annotations

import argparse


def positive(text: str) -> int:
    """A whole number of at least 1, or argparse's one-line usage error."""
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"not a whole number: {text!r}") from None
    if value < 1:
        raise argparse.ArgumentTypeError(f"must be at least 1, not {value}")
    return value


# The library speaks to Python callers in keywords; a command line has flags for them. Each
# pair: a keyword as the library's messages write it, and the flag that sets it here.
KEYWORD_FLAGS = (
    ("pass force=True (--force)", "pass --force"),
    ("credentials=DIR", "--credentials DIR"),
    ("Pool(address=...)", "--cluster"),
)


def in_cli_words(message: str) -> str:
    """A library error's message in the command line's words: the flags, not Python keywords."""
    for keyword, flag in KEYWORD_FLAGS:
        message = message.replace(keyword, flag)
    return message

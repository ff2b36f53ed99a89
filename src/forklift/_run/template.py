"""Command templates with GNU parallel's replacement strings, and its shell quoting.

A template is compiled once into a list of literal strings and small functions;
building a job's command is then a join, which matters at thousands of jobs a second.

Replacement strings (GNU parallel's meaning):

==========  ==========================================================
``{}``      the argument (several sources or columns: each, quoted, joined by spaces)
``{.}``     the argument without its extension (``a/b.tar.gz`` -> ``a/b.tar``)
``{/}``     the basename (``a/b.c`` -> ``b.c``)
``{//}``    the dirname (``a/b.c`` -> ``a``; ``b.c`` -> ``.``)
``{/.}``    the basename without extension (``a/b.c`` -> ``b``)
``{#}``     the job's sequence number, 1, 2, ...
``{%}``     the job slot, 1 .. jobs
``{n}``     the n-th source's argument or the n-th column; ``{-1}`` the last;
            ``{n.}`` ``{n/}`` ``{n//}`` ``{n/.}`` combine the two
==========  ==========================================================

Every replaced value is shell-quoted, so a file name holding spaces, quotes,
``$``, ``;`` or a newline reaches the command as one argument and is never run.
A template with no replacement string gets `` {}`` appended, as in GNU parallel.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Sequence

__all__ = ["Template", "TemplateError", "quote"]

_SAFE = re.compile(r"[-A-Za-z0-9_+./]+")
_FIELD = re.compile(r"\{(?:(?P<n>-?[1-9][0-9]*)?(?P<op>/\.|//|/|\.)?|(?P<special>[#%]))\}")
_EXTENSION = re.compile(r"\.[^/.]*$")
_PERL = re.compile(r"\{=.*?=\}", re.DOTALL)  # GNU parallel's {= perl expression =} (and {=N ... =})

Part = Callable[[Sequence[str], int, int], str]


class TemplateError(ValueError):
    """The command template cannot be used (empty, or a field out of range)."""


def quote(value: str) -> str:
    """Quote ``value`` for ``sh -c`` exactly as GNU parallel does.

    Plain words (letters, digits and ``-_+./``) stay as they are; anything else is
    wrapped in single quotes, with each ``'`` written as ``'"'"'``.
    """
    if _SAFE.fullmatch(value):
        return value
    return "'" + value.replace("'", "'\"'\"'") + "'"


def remove_extension(path: str) -> str:
    return _EXTENSION.sub("", path)


def basename(path: str) -> str:
    return path.rpartition("/")[2]


def dirname(path: str) -> str:
    """Perl's File::Basename::dirname, which GNU parallel's ``{//}`` uses."""
    stripped = path.rstrip("/")
    if not stripped:
        return "/" if path else "."
    head, slash, _ = stripped.rpartition("/")
    if not slash:
        return "."
    return head.rstrip("/") or "/"


_OPS: dict[str | None, Callable[[str], str]] = {
    None: lambda s: s,
    ".": remove_extension,
    "/": basename,
    "//": dirname,
    "/.": lambda s: remove_extension(basename(s)),
}


class Template:
    """A compiled command template; ``build(args, seq, slot)`` gives the shell command.

    ``words`` are the command's words as given on the command line; like GNU
    parallel they are joined with spaces *unquoted* (so ``'cmd | other'`` is a
    pipe), unless ``quote_command`` is set (``-q``), which quotes each word.
    With no words, each argument is itself the command (``forklift run ::: 'echo a'``).
    """

    def __init__(self, words: Sequence[str], *, quote_command: bool = False) -> None:
        if words and not any(w.strip() for w in words):
            raise TemplateError("the command is empty")
        if any("\0" in w for w in words):  # only from Python: a command line's words cannot hold one
            raise TemplateError("the command holds a NUL byte, which no command line can carry")
        self.bare = not words
        self.words = list(words)
        text = " ".join(quote(w) for w in words) if quote_command else " ".join(words)
        perl = _PERL.search(text)
        if perl:  # passed on as text, the command would run with the expression in it
            raise TemplateError(
                f"{{= perl expression =}} replacement strings are not supported (forklift runs no Perl):"
                f" {perl[0]!r}"
            )
        self.parts: list[str | Part] = []
        self.max_index = 0
        pos = 0
        for match in _FIELD.finditer(text):
            if match.start() > pos:
                self.parts.append(text[pos : match.start()])
            self.parts.append(self._field(match))
            pos = match.end()
        if self.bare:
            self.parts.append(lambda args, seq, slot: " ".join(args))
        elif not any(callable(p) for p in self.parts):
            self.parts.append(text[pos:] + " ")
            self.parts.append(_all_args)
            pos = len(text)
        if pos < len(text):
            self.parts.append(text[pos:])

    def _field(self, match: re.Match[str]) -> Part:
        special = match["special"]
        if special == "#":
            return lambda args, seq, slot: str(seq)
        if special == "%":
            return lambda args, seq, slot: str(slot)
        op = _OPS[match["op"]]
        if match["n"] is None:
            if match["op"] is None:
                return _all_args
            return lambda args, seq, slot: " ".join(quote(op(a)) for a in args)
        n = int(match["n"])
        self.max_index = max(self.max_index, abs(n))
        index = n - 1 if n > 0 else n

        def field(args: Sequence[str], seq: int, slot: int) -> str:
            try:
                return quote(op(args[index]))
            except IndexError:
                return ""  # GNU parallel: a missing column is nothing, not ''

        return field

    def build(self, args: Sequence[str], seq: int, slot: int) -> str:
        """The command for one job: the template with its fields replaced."""
        return "".join(p if isinstance(p, str) else p(args, seq, slot) for p in self.parts)


def _all_args(args: Sequence[str], seq: int, slot: int) -> str:
    return " ".join(quote(a) for a in args)

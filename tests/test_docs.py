"""Every link in README.md and docs/*.md resolves, and every snippet in them runs.

Links. Every Markdown link and image in README.md and docs/*.md stays inside the
repository: a relative path that exists, with a ``#anchor`` that is the GitHub slug of a
heading in the target. http(s) links are not fetched: test_http_links_are_listed_and_use_https
lists them. A file named in a code span under a top-level directory (``examples/x.py``) exists.

Extras. The README's Extras table names every optional dependency group of pyproject.toml
with its packages, and a feature used without its extra says which extra to install.

Snippets. Every fenced block says what it is in its info string:

- ``python``: a program, run as a script with this interpreter and PYTHONPATH=src. A block
  without ``if __name__ == "__main__":`` is a fragment and runs under that guard (the
  guide says why: forklift's workers re-import the main module).
- ``sh``: commands, one a line (a trailing ``\\`` continues one); each runs with bash and
  must exit 0. An ``export`` line's variables reach the lines after it. A command that runs
  until Ctrl-C (``forklift top`` without ``--once``) gets SIGINT, as from a terminal, after
  2 s, and must then exit 0 having printed something.
- ``console``: a transcript: ``$ command`` lines, each followed by what it prints (stdout
  and stderr together), which the output must match once normalize() has replaced what
  varies from run to run (durations, sizes, other numbers: pids, counts, dates; runs of
  spaces; this directory's path). A line ``...`` stands for any number of lines. The exit
  status is not checked: a transcript may show an error.
- ``text``: not code: a diagram, or output shown without its command. It may not hold a
  ``$ `` prompt: a transcript is a console block, and gets run.

An HTML comment right before a block (blank lines between are fine) says how to run it:

- ``<!-- not run: REASON -->``: it is not run (it needs another machine, installs packages,
  takes minutes); its test is skipped with the reason, so pytest's ``-ra`` summary lists
  it, and test_inventory counts it.
- ``<!-- fixture: NAME ARG..., NAME ARG... -->``: FIXTURES[NAME] provides what the block
  assumes: files, a process tree, a journal, a cluster, the names a fragment leaves to the
  reader. Each fixture's docstring says what it provides and what its ARGs stand for.

The blocks of one document run in order, in one directory that stands in for a clone after
``make demo``: examples/ (a link to the repository's), .venv/bin/python and, on PATH,
``forklift`` and ``python``, all running this checkout; HOME is a fresh directory in it. So a
block continues the ones before it: what one writes, the next finds (the README's Use snippet
writes run.db, its command-line block reports on it). The documents run in parallel, each in
its own directory; every process they start carries a marker in its environment, and what
is left when a document is done is killed.
"""

from __future__ import annotations

import concurrent.futures
import json
import os
import re
import shlex
import shutil
import signal
import sqlite3
import subprocess
import sys
import textwrap
import time
import urllib.parse
import uuid
from dataclasses import dataclass, field
from pathlib import Path

import pytest
from markdown_it import MarkdownIt

ROOT = Path(__file__).resolve().parent.parent
TESTS = ROOT / "tests"
DOCS = [ROOT / "README.md", *sorted((ROOT / "docs").glob("*.md"))]
KINDS = ("python", "sh", "console", "text")
MARK = "FORKLIFT_DOCS_MARK"
TIMEOUT = 90  # s for one python block or one command
LIVE_GRACE = 2.0  # s a command that runs until Ctrl-C runs before it gets one
PARALLEL = 3  # documents at once

_MD = MarkdownIt("commonmark").enable("table")
_MARKER = re.compile(r"<!--\s*(not run|fixture):\s*(.*?)\s*-->", re.S)
_ALMOST = re.compile(r"<!--\s*(?:not[ _-]*run|fixtures?)\b", re.I)  # a marker, misspelt
_PATH = re.compile(r"(?:\.\./|(?:src|docs|tests|examples|benchmarks|shared)/)[\w./-]+")  # no globs
_HTML_LINK = re.compile(r"""(?:href|src)\s*=\s*["']([^"']+)["']""")


def rel(path: Path) -> str:
    return path.relative_to(ROOT).as_posix()


# -- reading the documents ----------------------------------------------------------------


@dataclass(frozen=True)
class Block:
    doc: str  # "docs/guide.md"
    line: int  # of the opening fence, 1-based
    kind: str  # the info string's first word ("" when there is none)
    text: str
    not_run: str | None = None
    fixtures: tuple[tuple[str, tuple[str, ...]], ...] = ()

    @property
    def id(self) -> str:
        return f"{self.doc}:{self.line}"


@dataclass
class Parsed:
    links: list[tuple[int, str]]  # (line, target)
    slugs: set[str]  # the anchors of its headings
    paths: list[tuple[int, str]]  # code spans that name a file under a top-level directory
    blocks: list[Block] = field(default_factory=list)
    problems: list[str] = field(default_factory=list)  # markers out of place, or misspelt


def github_slug(heading: str, seen: dict[str, int]) -> str:
    """The anchor GitHub gives a heading: lower case, punctuation dropped, spaces to hyphens."""
    slug = re.sub(r"[^\w\- ]", "", heading.strip().lower()).replace(" ", "-")
    if slug in seen:
        seen[slug] += 1
        return f"{slug}-{seen[slug]}"
    seen[slug] = 0
    return slug


def parse_fixtures(spec: str) -> tuple[tuple[str, tuple[str, ...]], ...]:
    out = []
    for part in spec.split(","):
        words = part.split()
        if words:
            out.append((words[0], tuple(words[1:])))
    return tuple(out)


def parse(path: Path) -> Parsed:
    doc = rel(path) if path.is_relative_to(ROOT) else path.name
    tokens = _MD.parse(path.read_text(encoding="utf-8"))
    blocks: list[Block] = []
    links: list[tuple[int, str]] = []
    slugs: set[str] = set()
    seen: dict[str, int] = {}
    problems: list[str] = []
    paths: list[tuple[int, str]] = []
    pending: list[tuple[str, str, int]] = []  # markers waiting for their block
    for i, tok in enumerate(tokens):
        line = tok.map[0] + 1 if tok.map else 0
        if tok.type in ("html_block", "html_inline"):
            links += [(line, m) for m in _HTML_LINK.findall(tok.content)]
        if tok.type == "html_block" and _MARKER.search(tok.content):
            pending += [(kind, value, line) for kind, value in _MARKER.findall(tok.content)]
            continue
        if tok.type == "html_block" and _ALMOST.search(tok.content):
            problems.append(
                f"{doc}:{line}: a comment that is not <!-- not run: ... --> or <!-- fixture: ... -->"
            )
        if tok.type in ("fence", "code_block"):
            kind = tok.info.split()[0] if tok.info.split() else ""
            not_run = next((v for k, v, _ in pending if k == "not run"), None)
            fixtures = tuple(f for k, v, _ in pending if k == "fixture" for f in parse_fixtures(v))
            blocks.append(Block(doc, line, kind, tok.content, not_run, fixtures))
            pending = []
            continue
        if pending and tok.type not in ("html_block",):
            problems += [f"{doc}:{ln}: <!-- {k}: ... --> is not right before a block" for k, _, ln in pending]
            pending = []
        if tok.type == "heading_open":
            inline = tokens[i + 1]
            words = "".join(c.content for c in inline.children or [] if c.type in ("text", "code_inline"))
            slugs.add(github_slug(words, seen))
        if tok.type == "inline":
            for child in tok.children or []:
                line += child.type in ("softbreak", "hardbreak")
                if child.type == "link_open":
                    links.append((line, str(child.attrGet("href"))))
                elif child.type == "image":
                    links.append((line, str(child.attrGet("src"))))
                elif child.type == "html_inline":
                    links += [(line, m) for m in _HTML_LINK.findall(child.content)]
                elif child.type == "code_inline" and _PATH.fullmatch(child.content):
                    paths.append((line, child.content))
    problems += [f"{doc}:{ln}: <!-- {k}: ... --> is not right before a block" for k, _, ln in pending]
    return Parsed(links, slugs, paths, blocks, problems)


PARSED = {rel(path): parse(path) for path in DOCS}
BLOCKS = [b for p in PARSED.values() for b in p.blocks]
CODE = [b for b in BLOCKS if b.kind != "text"]


def link_problems(path: Path, parsed: Parsed, root: Path = ROOT) -> list[str]:
    """What is wrong with each link of ``path``: a missing file, an unknown anchor, the outside."""
    out = []
    for line, target in parsed.links:
        where = f"{path.name}:{line}: {target}"
        scheme = urllib.parse.urlsplit(target).scheme
        if scheme in ("http", "https"):
            continue
        if scheme:
            out.append(f"{where}: only relative links and http(s) are allowed")
            continue
        file_part, _, anchor = target.partition("#")
        file = (path.parent / urllib.parse.unquote(file_part)).resolve() if file_part else path
        if not file.is_relative_to(root):
            out.append(f"{where}: points outside the repository ({file})")
        elif not file.exists():
            out.append(f"{where}: no such file {file.relative_to(root)}")
        elif anchor:
            if file.suffix != ".md":
                out.append(f"{where}: an anchor into a file that is not Markdown")
            elif urllib.parse.unquote(anchor) not in (parsed if file == path else parse(file)).slugs:
                out.append(f"{where}: no heading with the anchor #{anchor} in {file.relative_to(root)}")
    return out


# -- links ---------------------------------------------------------------------------------


@pytest.mark.parametrize("doc", list(PARSED))
def test_every_link_resolves_inside_the_repository(doc):
    assert link_problems(ROOT / doc, PARSED[doc]) == []


@pytest.mark.parametrize("doc", list(PARSED))
def test_every_path_named_in_code_exists(doc):
    """`examples/x.py`, `tests/...`: a file named in a code span under a top-level directory."""
    missing = [f"{doc}:{line}: {p}" for line, p in PARSED[doc].paths if not (ROOT / p).exists()]
    outside = [f"{doc}:{line}: {p}" for line, p in PARSED[doc].paths if p.startswith("../")]
    assert missing + outside == []


def test_http_links_are_listed_and_use_https():
    """Links out of the repository are not fetched: they are listed here (``pytest -s`` shows them)."""
    listed = [(f"{doc}:{line}", t) for doc, p in PARSED.items() for line, t in p.links if "://" in t]
    print("links out of the repository, not fetched:", *(f"{w}: {t}" for w, t in listed), sep="\n  ")
    assert [(w, t) for w, t in listed if not t.startswith("https://")] == []


def test_the_link_check_finds_what_is_wrong(tmp_path):
    """The checker itself, on a repository of two pages: what it must refuse, what it must pass."""
    root = tmp_path / "repo"
    (root / "docs").mkdir(parents=True)
    (root / "docs" / "other.md").write_text("# Other page\n\n## Its part\n")
    (tmp_path / "shared").mkdir()
    (tmp_path / "shared" / "notes.md").write_text("# Notes\n")  # exists, but outside the repository
    page = root / "docs" / "page.md"
    page.write_text(
        "# Top\n\n## A `code` heading, with punctuation!\n\n## Top\n\n"
        "[ok](#a-code-heading-with-punctuation) [dup](#top-1) [there](other.md#its-part) "
        "[bad](#nope) [gone](missing.md) [part](other.md#nope) [up](../../shared/notes.md) "
        "[file](ftp://example.com/x) [web](https://example.com)\n\n![img](pic.png)\n"
    )
    parsed = parse(page)
    assert parsed.slugs == {"top", "a-code-heading-with-punctuation", "top-1"}
    problems = link_problems(page, parsed, root)
    assert [p.split(": ", 2)[1] for p in problems] == [
        "#nope",
        "missing.md",
        "other.md#nope",
        "../../shared/notes.md",
        "ftp://example.com/x",
        "pic.png",
    ]
    assert "outside the repository" in problems[3] and "no such file" in problems[5]


def test_the_parser_reads_blocks_and_their_markers(tmp_path):
    page = tmp_path / "page.md"
    page.write_text(
        "# Page\n\n<!-- not run: needs a second machine -->\n```sh\nssh far away\n```\n\n"
        "<!-- fixture: tree 4242, guide -->\n\n```python\nprint(1)\n```\n\n"
        "```\nno info string\n```\n\n    indented\n\n"
        "<!-- not-run: a typo -->\n```sh\ntrue\n```\n\n<!-- fixture: guide -->\nA paragraph.\n"
    )
    parsed = parse(page)
    got = [(b.line, b.kind, b.text, b.not_run, b.fixtures) for b in parsed.blocks]
    assert got == [
        (4, "sh", "ssh far away\n", "needs a second machine", ()),
        (10, "python", "print(1)\n", None, (("tree", ("4242",)), ("guide", ()))),
        (14, "", "no info string\n", None, ()),
        (18, "", "indented\n", None, ()),
        (21, "sh", "true\n", None, ()),
    ]
    assert parsed.problems == [
        "page.md:20: a comment that is not <!-- not run: ... --> or <!-- fixture: ... -->",
        "page.md:25: <!-- fixture: ... --> is not right before a block",
    ]


# -- the README's Extras ---------------------------------------------------------------


def test_readme_names_every_extra_and_what_it_installs():
    """pyproject's optional dependencies, each in the README's Extras table with its packages."""
    text = (ROOT / "pyproject.toml").read_text()
    section = text.split("[project.optional-dependencies]", 1)[1].split("\n[", 1)[0]
    extras = {
        name: re.findall(r'"([A-Za-z0-9_.-]+)', body)
        for name, body in re.findall(r"^(\w+)\s*=\s*\[(.*?)\]", section, re.S | re.M)
    }
    assert set(extras) >= {"numpy", "cluster", "report", "dev"}
    readme = (ROOT / "README.md").read_text()
    table = readme.split("## Extras", 1)[1].split("\n## ", 1)[0]
    rows = {m[0]: m[1] for m in re.findall(r"^\| `(\w+)` \|([^\n]*)$", table, re.M)}
    assert set(rows) == set(extras)
    for name, packages in extras.items():
        for package in packages:
            assert package in rows[name], f"the {name} row does not name {package}"
    assert ".venv/bin/pip install -e '.[cluster]'" in readme


def test_without_its_extra_a_feature_names_the_extra():
    """What the README's Extras table says, with the extras' packages hidden."""
    code = textwrap.dedent(
        """\
        import sys

        sys.modules.update(dict.fromkeys(["numpy", "distributed", "cryptography", "matplotlib"]))
        import forklift
        from forklift import report

        def message(call):
            try:
                call()
            except ImportError as exc:
                return str(exc)
            return "no ImportError"

        if __name__ == "__main__":
            print(message(lambda: forklift.SharedArray((2,), "f8")))
            print(message(lambda: forklift.Pool(address="local")))
            print(message(lambda: forklift.ClusterQueue("tasks")))
            print(message(lambda: report.render_png([], "run.png", "a run")))
            with forklift.Pool(2) as pool:  # the base install's pool
                print(pool.map(abs, [-1, -2]))
        """
    )
    env = dict(os.environ, PYTHONPATH=str(ROOT / "src"))
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, env=env, timeout=60)
    assert done.returncode == 0, done.stderr
    lines = done.stdout.splitlines()
    assert len(lines) == 5 and lines[-1] == "[1, 2]", done.stdout
    for line, extra in zip(lines, ["numpy", "cluster", "cluster", "report"]):
        assert f"pip install 'forklift[{extra}]'" in line, line


# -- what each block is --------------------------------------------------------------------


def test_inventory():
    """Every block says what it is; markers sit right before a block; fixtures exist."""
    problems = [p for parsed in PARSED.values() for p in parsed.problems]
    for b in BLOCKS:
        if b.kind not in KINDS:
            problems.append(f"{b.id}: a block of kind {b.kind!r}; say one of {', '.join(KINDS)}")
        if b.not_run is not None and not b.not_run.strip():
            problems.append(f"{b.id}: <!-- not run: --> needs a reason")
        if b.not_run is not None and b.fixtures:
            problems.append(f"{b.id}: not run, yet it has fixtures")
        problems += [f"{b.id}: no fixture {name!r}" for name, _ in b.fixtures if name not in FIXTURES]
        if b.kind == "text" and any(line.startswith("$ ") for line in b.text.splitlines()):
            problems.append(f"{b.id}: a transcript in a text block; make it a console block")
        if b.kind == "console" and not b.text.startswith("$ "):
            problems.append(f"{b.id}: a console block starts with a '$ ' command")
    assert problems == []
    counts = {k: sum(b.kind == k for b in BLOCKS) for k in KINDS}
    skipped = [f"{b.id}: {b.not_run}" for b in CODE if b.not_run]
    print(f"{len(BLOCKS)} blocks: {counts}; not run ({len(skipped)}):", *skipped, sep="\n  ")
    assert len(CODE) - len(skipped) >= 30  # a parser that finds nothing must not pass


# -- running a document ----------------------------------------------------------------------


def normalize(text: str, here: str = "") -> list[str]:
    """Lines as compared: numbers, durations and sizes replaced, runs of spaces made one."""
    if here:
        text = text.replace(here + "/", "").replace(here, ".")
    out = []
    for line in text.splitlines():
        line = re.sub(r"\d+(?:\.\d+)?\s?(?:ns|us|µs|ms|s|min|h)\b", "<T>", line)
        line = re.sub(r"\d+(?:\.\d+)?\s?(?:[KMGT]i?B|B|[KMGT])\b", "<SIZE>", line)
        line = re.sub(r"\d+(?:[.,:]\d+)*", "<N>", line)
        out.append(re.sub(r"\s+", " ", line).strip())
    while out and not out[0]:
        out.pop(0)
    while out and not out[-1]:
        out.pop()
    return out


def matches(expected: list[str], actual: list[str]) -> bool:
    """``expected`` against ``actual`` line by line; a line ``...`` matches any number of lines."""
    if not expected:
        return not actual
    if expected[0] == "...":
        return any(matches(expected[1:], actual[i:]) for i in range(len(actual) + 1))
    return bool(actual) and expected[0] == actual[0] and matches(expected[1:], actual[1:])


def test_output_is_compared_strictly_but_for_what_varies():
    doc = "14670 (python): 10 process(es)\n  took 7.4 ms, 11.1M\n...\nend"
    assert matches(normalize(doc), normalize("9 (python): 3 process(es)\ntook 12 s,  3.0M\nend"))
    assert matches(normalize(doc), normalize("1 (python): 1 process(es)\ntook 1 us, 1K\na\nb\nend\n\n"))
    assert not matches(normalize(doc), normalize("1 (bash): 1 process(es)\ntook 1 s, 1M\nend"))
    assert not matches(normalize(doc), normalize("1 (python): 1 process(es)\ntook 1 s, 1M"))
    assert not matches(normalize("a\n\nb"), normalize("a\nb"))  # a blank line inside counts
    assert normalize("wrote /tmp/x/t.html", "/tmp/x") == ["wrote t.html"]
    assert commands("a \\\n  b  # c\n\n# d\ne") == ["a    b  # c", "e"]
    assert transcript("$ a\nout\n$ b # c\n") == [("a", "out"), ("b # c", "")]
    assert is_live("forklift top run.db  # live") and not is_live("forklift top run.db --once")


def commands(text: str) -> list[str]:
    """The commands of an sh block: one a line, ``\\`` continuing one; comment lines dropped."""
    out, held = [], ""
    for line in text.splitlines():
        if line.rstrip().endswith("\\"):
            held += line.rstrip()[:-1] + " "
            continue
        line = held + line
        held = ""
        if line.strip() and not line.lstrip().startswith("#"):
            out.append(line.strip())
    return out


def transcript(text: str) -> list[tuple[str, str]]:
    """``(command, expected output)`` pairs of a console block."""
    pairs: list[tuple[str, list[str]]] = []
    for line in text.splitlines():
        if line.startswith("$ "):
            pairs.append((line[2:].strip(), []))
        else:
            pairs[-1][1].append(line)
    return [(cmd, "\n".join(lines)) for cmd, lines in pairs]


def is_live(command: str) -> bool:
    """Runs until Ctrl-C: ``forklift top`` without ``--once``."""
    words = shlex.split(command, comments=True)
    return words[:2] == ["forklift", "top"] and "--once" not in words


@dataclass
class Outcome:
    ran: int = 0  # commands, or 1 for a python block
    compared: int = 0  # outputs compared
    errors: list[str] = field(default_factory=list)


def script(path: Path, body: str) -> None:
    path.write_text("#!/bin/sh\n" + body)
    path.chmod(0o755)


class Group:
    """One document's blocks, run in order in one directory (see the module's docstring)."""

    def __init__(self, doc: str, base: Path) -> None:
        self.doc = doc
        self.dir = base / re.sub(r"\W", "-", doc)
        self.bin = self.dir / "bin"
        self.bin.mkdir(parents=True)
        (self.dir / "home").mkdir()
        (self.dir / "examples").symlink_to(ROOT / "examples")
        python = shlex.quote(sys.executable)
        script(self.bin / "forklift", f'exec {python} -m forklift "$@"\n')
        script(self.bin / "python", f'exec {python} "$@"\n')
        (self.dir / ".venv" / "bin").mkdir(parents=True)
        script(self.dir / ".venv" / "bin" / "python", f'exec {python} "$@"\n')
        self.mark = uuid.uuid4().hex
        env = {k: v for k, v in os.environ.items() if not k.startswith(("FORKLIFT_", "PYTHON", "XDG_"))}
        env.update(
            PATH=f"{self.bin}{os.pathsep}{env.get('PATH', '/usr/bin:/bin')}",
            PYTHONPATH=str(ROOT / "src"),
            HOME=str(self.dir / "home"),
            COLUMNS="100",
        )
        env[MARK] = self.mark
        self.env = env
        self.fixtures: dict[tuple[str, tuple[str, ...]], Fixture] = {}
        self.runs = 0

    # - fixtures

    def fixtures_of(self, block: Block) -> list[Fixture]:
        out = []
        for key in block.fixtures:
            if key not in self.fixtures:
                fixture = FIXTURES[key[0]](self, key[1])
                fixture.setup()
                self.fixtures[key] = fixture
            out.append(self.fixtures[key])
        return out

    def close(self) -> None:
        for fixture in reversed(list(self.fixtures.values())):
            try:
                fixture.close()
            except Exception as exc:  # the sweep below still runs
                print(f"{self.doc}: closing fixture {type(fixture).__name__}: {exc!r}")
        from forklift.trees import find_marked, kill_tree

        for pid in find_marked(MARK, self.mark):
            try:
                kill_tree(pid, sig=signal.SIGKILL, timeout=0)
            except (ValueError, PermissionError):
                pass

    # - running

    def run(self, blocks: list[Block]) -> dict[str, Outcome]:
        outcomes = {}
        started = time.monotonic()
        try:
            for block in blocks:
                outcome = outcomes[block.id] = Outcome()
                try:
                    fixtures = self.fixtures_of(block)
                    getattr(self, f"run_{block.kind}")(block, fixtures, outcome)
                except Exception as exc:
                    outcome.errors.append(f"{type(exc).__name__}: {exc}")
        finally:
            self.close()
            print(f"{self.doc}: {len(blocks)} blocks in {time.monotonic() - started:.1f} s")
        return outcomes

    def run_python(self, block: Block, fixtures: list[Fixture], outcome: Outcome) -> None:
        defs = "".join(f.defs for f in fixtures)
        setup = "".join(f.main_code() for f in fixtures)
        after = "".join(f.after_code for f in fixtures)
        body = block.text
        if re.search(r"^if __name__ == .__main__.:", body, re.M):
            code = defs + (f'if __name__ == "__main__":\n{textwrap.indent(setup, "    ")}\n' if setup else "")
            code += body
        else:
            inner = setup + body + after
            code = f'{defs}\nif __name__ == "__main__":\n{textwrap.indent(inner, "    ")}'
        for f in fixtures:
            code = f.rewrite(code, "python")
        path = self.dir / f"snippet_{block.line}.py"
        path.write_text(code)
        code_, out, why = self.execute([sys.executable, path.name])
        outcome.ran += 1
        if code_ != 0 or why:
            outcome.errors.append(f"{path.name} exited {code_} {why}:\n{out[-3000:]}")

    def execute(self, argv: list[str], live: bool = False) -> tuple[int, str, str]:
        """Exit status, output (stdout and stderr together) and what went wrong, if anything.

        The output goes to a file, not a pipe: a process the command left behind cannot hold
        the test up by keeping a pipe open.
        """
        self.runs += 1
        log = self.dir / f".out-{self.runs}"
        with open(log, "w") as out:
            proc = subprocess.Popen(
                argv,
                cwd=self.dir,
                env=self.env,
                stdin=subprocess.DEVNULL,
                stdout=out,
                stderr=subprocess.STDOUT,
                start_new_session=True,  # a process group, as a terminal gives a command
            )
        why = ""
        try:
            if live:
                try:
                    proc.wait(timeout=LIVE_GRACE)
                    why = "ended before Ctrl-C"
                except subprocess.TimeoutExpired:
                    os.killpg(proc.pid, signal.SIGINT)
            proc.wait(timeout=TIMEOUT)
        except subprocess.TimeoutExpired:
            os.killpg(proc.pid, signal.SIGKILL)
            proc.wait()
            why = f"still running after {TIMEOUT} s"
        return proc.returncode, log.read_text(errors="replace"), why

    def shell(self, command: str, fixtures: list[Fixture]) -> tuple[int, str, str]:
        """Run one command as the doc shows it (after the fixtures' rewriting)."""
        for f in fixtures:
            command = f.rewrite(command, "sh")
        if command.startswith("export "):
            done = subprocess.run(
                ["bash", "-c", f"{command} && env -0"],
                cwd=self.dir,
                env=self.env,
                capture_output=True,
                timeout=TIMEOUT,
            )
            pairs = [item.split(b"=", 1) for item in done.stdout.split(b"\0") if b"=" in item]
            self.env = {k.decode(): v.decode() for k, v in pairs}
            return done.returncode, "", done.stderr.decode()
        return self.execute(["bash", "-c", command], live=is_live(command))

    def run_sh(self, block: Block, fixtures: list[Fixture], outcome: Outcome) -> None:
        for i, command in enumerate(commands(block.text)):
            for f in fixtures:
                f.before(i)
            code, out, why = self.shell(command, fixtures)
            outcome.ran += 1
            if code != 0 or why or (is_live(command) and not out.strip()):
                outcome.errors.append(f"$ {command}\nexit {code} {why}\n{out[-3000:]}")

    def run_console(self, block: Block, fixtures: list[Fixture], outcome: Outcome) -> None:
        for i, (command, expected) in enumerate(transcript(block.text)):
            for f in fixtures:
                f.before(i)
            code, out, why = self.shell(command, fixtures)
            outcome.ran += 1
            outcome.compared += 1
            want, got = normalize(expected), normalize(out, str(self.dir))
            if why or not matches(want, got):
                shown, printed = "\n".join(want), "\n".join(got)
                outcome.errors.append(
                    f"$ {command}\n(exit {code} {why})\n--- the doc shows\n{expected}\n--- it printed\n{out}"
                    f"\n--- normalized, the doc shows\n{shown}\n--- and the output\n{printed}"
                )


# -- fixtures -----------------------------------------------------------------------------------


class Fixture:
    """Sets up, for one document's directory, what a block assumes."""

    defs = ""  # python blocks: module-level definitions (functions pickle by value from there)
    after_code = ""  # python blocks: run under the __main__ guard after the block

    def __init__(self, group: Group, args: tuple[str, ...]) -> None:
        self.group, self.args, self.dir = group, args, group.dir

    def setup(self) -> None:
        """Once per document, before the first block that names this fixture."""

    def main_code(self) -> str:
        """Python run under the ``__main__`` guard before the block (names the block uses)."""
        return ""

    def rewrite(self, text: str, kind: str) -> str:
        """A command (kind "sh"), or a python block's whole script, as this fixture runs it."""
        return text

    def before(self, index: int) -> None:
        """Before the index-th command of an sh or console block."""

    def close(self) -> None:
        """When the document is done."""

    def start(self, *argv: str) -> subprocess.Popen:
        """A process of the fixture's, in a session of its own, its output in a file."""
        self.group.runs += 1
        with open(self.dir / f".fixture-{self.group.runs}", "w") as log:
            return subprocess.Popen(
                argv,
                cwd=self.dir,
                env=self.group.env,
                stdin=subprocess.DEVNULL,
                stdout=log,
                stderr=subprocess.STDOUT,
                start_new_session=True,
            )


def write(path: Path, text: str) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(textwrap.dedent(text))


class Files(Fixture):
    """The files the shell examples take as input, with stand-ins for the programs they run.

    *.log, *.jpg, *.csv, *.tmp files; pairs.csv (``SRC,DST`` lines of files that exist);
    urls.txt with fetch.sh, which prints what it was given and fetches nothing (it fails
    on anything but one http URL); a/ and b/ with a Makefile each; photos/ (a small tree);
    and ``convert``, which stands in for ImageMagick's: it wants ``convert X.jpg X.png``,
    with X.jpg there, and writes X.png.
    """

    def setup(self) -> None:
        d = self.dir
        for name in ("app.log", "db.log", "web.log"):
            write(d / name, f"{name}: a line\n" * 200)
        for name in ("cat.jpg", "dog.jpg"):
            write(d / name, "not really a jpeg\n")
        write(d / "sales.csv", "day,total\nmon,3\ntue,4\n")
        write(d / "notes.txt", "some notes\n")
        write(d / "pairs.csv", "notes.txt,notes-copy.txt\nsales.csv, sales-copy.csv\n")
        write(d / "urls.txt", "http://127.0.0.1:9/one\nhttp://127.0.0.1:9/two\nhttp://127.0.0.1:9/three\n")
        for name in ("old.tmp", "older.tmp"):
            write(d / name, "")
        for sub in ("a", "b"):
            write(d / sub / "Makefile", f"all:\n\t@echo built {sub}\n")
        for name in ("2026/01/beach.jpg", "2026/01/hill.jpg", "2026/02/city.jpg", "index.txt"):
            write(d / "photos" / name, f"photo {name}\n" * 50)
        script(d / "fetch.sh", 'case "$#:$1" in 1:http://*) echo "fetched $1";; *) exit 2;; esac\n')
        script(
            self.group.bin / "convert",
            'case "$#:$2" in 2:*.png) [ -f "$1" ] && [ "${1%.jpg}.png" = "$2" ] && cp "$1" "$2";;'
            " *) exit 2;; esac\n",
        )


class Tree(Fixture):
    """A process tree: ``python tree_spawner.py eleven`` (tests/tree_spawner.py), 10 processes.

    ARG is the pid the block shows. In a command, ARG (as a word) becomes the pid of a tree
    started for that command; in a python block, ARG is a variable holding one's pid.
    """

    def setup(self) -> None:
        (self.token,) = self.args
        self.trees: list[subprocess.Popen] = []
        # a link named "python": the tree's top shows as (python), as in the docs
        self.python = self.dir / "tree-python" / "python"
        if not self.python.exists():
            self.python.parent.mkdir()
            self.python.symlink_to(os.path.realpath(sys.executable))

    def fresh(self) -> int:
        proc = subprocess.Popen(
            ["python", "tree_spawner.py", "eleven"],
            executable=self.python,
            cwd=TESTS,
            env=self.group.env,
            stdout=subprocess.PIPE,
            text=True,
            start_new_session=True,
        )
        self.trees.append(proc)
        line = proc.stdout.readline().split()
        assert line[:1] == ["READY"], line
        return int(line[1])

    def rewrite(self, text: str, kind: str) -> str:
        pattern = rf"(?<![\w.]){re.escape(self.token)}(?![\w.])"
        if kind == "python" or not re.search(pattern, text):
            return text  # python: see main_code
        return re.sub(pattern, str(self.fresh()), text)

    def main_code(self) -> str:
        argv = ["python", "tree_spawner.py", "eleven"]
        return (
            "import subprocess as _sp\n"
            f"_tree = _sp.Popen({argv!r}, executable={str(self.python)!r}, cwd={str(TESTS)!r}, "
            "stdout=_sp.PIPE, text=True, start_new_session=True)\n"
            f"{self.token} = int(_tree.stdout.readline().split()[1])\n"
        )

    def close(self) -> None:
        for proc in self.trees:
            if proc.poll() is None:
                proc.kill()
            proc.wait()
            proc.stdout.close()


class Guide(Fixture):
    """The names the guide's fragments leave to the reader.

    forklift, os, signal, subprocess, sys, time; f (squares), slow(seconds) (sleeps),
    items, fib(n), fill(d) (fills a dict proxy), writer(q) / reader(q) (three items through a
    queue), add_one(counter, i) (under counter's lock), scale_row(arr, row, factor),
    commands with run_command's input, and src, dst, names and copy_file(name, src, dst)
    (the copier's).
    """

    defs = textwrap.dedent(
        """\
        import os
        import shutil
        import signal
        import subprocess
        import sys
        import time

        import forklift


        def f(x):
            return x * x


        def slow(seconds):
            time.sleep(seconds)
            return seconds


        def fib(n):
            return n if n < 2 else fib(n - 1) + fib(n - 2)


        def fill(d):
            d.update(filled_by=os.getpid())


        def writer(q):
            for i in range(3):
                q.put(i)


        def reader(q):
            return [q.get(timeout=10) for _ in range(3)]


        def add_one(counter, i):
            with counter.get_lock():
                counter.value += 1


        def scale_row(arr, row, factor):
            arr[row] = (arr[row] + 1) * factor


        def copy_file(name, src, dst):
            shutil.copyfile(os.path.join(src, name), os.path.join(dst, name))
            return name

        """
    )

    def main_code(self) -> str:
        return textwrap.dedent(
            """\
            items = range(200)
            commands = [["true"], ["sh", "-c", "exit 3"], [sys.executable, "--version"]]
            src, dst = "copier-src", "copier-dst"
            for d in (src, dst):
                os.makedirs(d, exist_ok=True)
            for i in range(6):
                with open(os.path.join(src, f"file{i}.txt"), "w") as out:
                    out.write("x" * 1000 * i)
            names = sorted(os.listdir(src))
            """
        )


class StartedProcess(Fixture):
    """p: a started forklift.Process that sleeps (a daemon: the program does not wait for it)."""

    def main_code(self) -> str:
        return "p = forklift.Process(target=time.sleep, args=(60,), daemon=True)\np.start()\n"


class ListenerClient(Fixture):
    """key, and a client that connects to 127.0.0.1:ARG with it: it must receive a message."""

    def main_code(self) -> str:
        (port,) = self.args
        return textwrap.dedent(
            f"""\
            import threading as _threading
            import time as _time

            key = os.urandom(32)


            def _client():
                from forklift.connection import Client

                deadline = _time.monotonic() + 30
                while _time.monotonic() < deadline:
                    try:
                        with Client(("127.0.0.1", {int(port)}), authkey=key) as conn:
                            _got.append(conn.recv())
                            return
                    except ConnectionError:
                        _time.sleep(0.05)


            _got = []
            _client_thread = _threading.Thread(target=_client, daemon=True)
            _client_thread.start()
            """
        )

    after_code = "_client_thread.join(10)\nassert _got, 'the client got nothing'\n"


class Cluster(Fixture):
    """A TLS Dask cluster on 127.0.0.1: ``forklift cluster scheduler`` and one ``worker``.

    ARGs: the address and the credentials directory the block shows, which stand for
    this cluster's (its credentials are its own, made with ``forklift cluster credentials``).
    Also square, slow(x), work(x), fetch(url) (no network: it returns the URL's length),
    items and urls; and my_batch.py, a program that maps on whatever FORKLIFT_ADDRESS says
    and fails unless that is a cluster.
    """

    defs = textwrap.dedent(
        """\
        import time


        def square(x):
            return x * x


        def slow(x):
            time.sleep(0.01)
            return x


        def work(x):
            return x + 1


        def fetch(url):
            return len(url)

        """
    )

    def setup(self) -> None:
        self.address_shown, self.credentials_shown = self.args
        self.credentials = self.dir / "cluster-credentials"
        forklift = str(self.group.bin / "forklift")
        subprocess.run(
            [forklift, "cluster", "credentials", str(self.credentials)],
            env=self.group.env,
            check=True,
            capture_output=True,
            timeout=60,
        )
        info = self.dir / "scheduler.json"
        creds = ["--credentials", str(self.credentials)]
        self.procs = [
            self.start(forklift, "cluster", "scheduler", "--port", "0", "--scheduler-file", str(info), *creds)
        ]
        deadline = time.monotonic() + 60
        while not info.exists() or not info.read_text().strip():
            assert self.procs[0].poll() is None and time.monotonic() < deadline, "the scheduler did not start"
            time.sleep(0.1)
        time.sleep(0.1)  # the file is written whole, but give it a moment
        self.address = json.loads(info.read_text())["address"]
        self.procs.append(self.start(forklift, "cluster", "worker", self.address, "--procs", "1", *creds))
        write(
            self.dir / "my_batch.py",
            """\
            import forklift

            if __name__ == "__main__":
                with forklift.Pool() as pool:
                    assert pool.address.startswith("tls://"), pool.address
                    print(sum(pool.map(abs, range(-50, 50))), "on", pool.address)
            """,
        )

    def main_code(self) -> str:
        return "items = range(50)\nurls = [f'http://127.0.0.1:9/{i}' for i in range(5)]\n"

    def rewrite(self, text: str, kind: str) -> str:
        return text.replace(self.address_shown, self.address).replace(
            self.credentials_shown, str(self.credentials)
        )

    def close(self) -> None:
        for proc in self.procs:
            if proc.poll() is None:
                proc.send_signal(signal.SIGTERM)
        deadline = time.monotonic() + 3
        for proc in self.procs:
            try:
                proc.wait(timeout=max(0.1, deadline - time.monotonic()))
            except subprocess.TimeoutExpired:  # no need to wait out Dask's own grace period
                os.killpg(proc.pid, signal.SIGKILL)
                proc.wait()


class ClusterPool(Fixture):
    """pool: a forklift.Pool on the block's cluster (the cluster fixture's), closed after it."""

    after_code = "pool.terminate()\n"

    def main_code(self) -> str:
        (cluster,) = [f for f in self.group.fixtures.values() if isinstance(f, Cluster)]
        address, credentials = cluster.args
        return f"import forklift\npool = forklift.Pool(address={address!r}, credentials={credentials!r})\n"


class JournalOfARun(Fixture):
    """run.db: the journal of ``python examples/journal_timeline.py`` (the run docs/report.md shows)."""

    def setup(self) -> None:
        code, out, why = self.group.execute([sys.executable, "examples/journal_timeline.py"])
        assert code == 0 and not why, f"examples/journal_timeline.py: exit {code} {why}\n{out[-2000:]}"


class BadJournals(Fixture):
    """notes.db (another program's SQLite), torn.db (run.db with its pages overwritten),
    altered.db (run.db with '<script>' in tasks.began)."""

    def setup(self) -> None:
        with sqlite3.connect(self.dir / "notes.db") as conn:
            conn.execute("CREATE TABLE notes (day TEXT, note TEXT)")
            conn.execute("INSERT INTO notes VALUES ('mon', 'buy milk')")
        conn.close()
        data = bytearray((self.dir / "run.db").read_bytes())
        page = int.from_bytes(data[16:18], "big")
        data[page:] = bytes(len(data) - page)  # the header stays: a journal at first sight
        (self.dir / "torn.db").write_bytes(bytes(data))
        shutil.copyfile(self.dir / "run.db", self.dir / "altered.db")
        with sqlite3.connect(self.dir / "altered.db") as conn:
            conn.execute("UPDATE tasks SET began = '<script>'")
        conn.close()


class LivePool(Fixture):
    """A pool recording into livepool.db: ``Pool(2, journal="livepool.db").map(crunch, range(300))``.

    Its last 20 tasks wait for the test: before the first command, both workers are busy
    on them; before the second, the test lets them end and waits for the program to exit.
    """

    def setup(self) -> None:
        write(
            self.dir / "livepool.py",
            """\
            import os
            import time

            import forklift


            def crunch(i):
                time.sleep(0.002)
                deadline = time.monotonic() + 60
                while i >= 280 and not os.path.exists("livepool.release") and time.monotonic() < deadline:
                    time.sleep(0.01)
                return i


            if __name__ == "__main__":
                with forklift.Pool(2, journal="livepool.db") as pool:
                    pool.map(crunch, range(300))
            """,
        )
        self.proc = self.start(sys.executable, "livepool.py")

    def before(self, index: int) -> None:
        if index == 0:
            deadline = time.monotonic() + 60
            while self.busy() < 2:
                assert self.proc.poll() is None and time.monotonic() < deadline, "the live pool did not start"
                time.sleep(0.1)
        elif index == 1:
            (self.dir / "livepool.release").touch()
            assert self.proc.wait(timeout=60) == 0

    def busy(self) -> int:
        try:
            with sqlite3.connect(f"file:{self.dir / 'livepool.db'}?mode=ro", uri=True) as conn:
                rows = conn.execute("SELECT count(*) FROM workers WHERE state = 'busy'").fetchone()
            conn.close()
            return int(rows[0])
        except sqlite3.Error:
            return 0

    def close(self) -> None:
        (self.dir / "livepool.release").touch()
        try:
            self.proc.wait(timeout=30)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait()


FIXTURES: dict[str, type[Fixture]] = {
    "files": Files,
    "tree": Tree,
    "guide": Guide,
    "client": ListenerClient,
    "process": StartedProcess,
    "cluster": Cluster,
    "pool": ClusterPool,
    "journal": JournalOfARun,
    "bad-journals": BadJournals,
    "livepool": LivePool,
}


# -- the snippets ------------------------------------------------------------------------------


def _selected_docs(request) -> list[str]:
    docs = {
        item.callspec.params["block"].doc
        for item in request.session.items
        if item.module is sys.modules[__name__] and item.originalname == "test_snippet"
    }
    return sorted(docs or PARSED)


@pytest.fixture(scope="module")
def outcomes(request, tmp_path_factory):
    """Every selected document's blocks, run: documents in parallel, each block in order."""
    base = tmp_path_factory.mktemp("docs")
    started = time.monotonic()
    jobs = {}
    with concurrent.futures.ThreadPoolExecutor(PARALLEL) as pool:
        for doc in _selected_docs(request):
            blocks = [b for b in PARSED[doc].blocks if b.kind != "text" and not b.not_run]
            jobs[doc] = pool.submit(Group(doc, base).run, blocks)
    results: dict[str, Outcome] = {}
    for job in jobs.values():
        results.update(job.result())
    print(f"snippets of {len(jobs)} documents ran in {time.monotonic() - started:.1f} s")
    return results


@pytest.mark.slow
@pytest.mark.timeout(400)
@pytest.mark.parametrize("block", CODE, ids=[b.id for b in CODE])
def test_snippet(block, outcomes):
    if block.not_run:
        pytest.skip(f"{block.id} not run: {block.not_run}")
    outcome = outcomes[block.id]
    assert outcome.errors == [], "\n\n".join(outcome.errors)
    assert outcome.ran > 0
    if block.kind == "console":
        assert outcome.compared == len(transcript(block.text))

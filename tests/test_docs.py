"""Every link in README.md and docs/*.md resolves, and what they say about installing holds.

Links. Every Markdown link and image in README.md and docs/*.md stays inside the
repository: a relative path that exists, with a ``#anchor`` that is the GitHub slug of a
heading in the target. http(s) links are not fetched: test_http_links_are_listed_and_use_https
lists them. A file named in a code span under a top-level directory (``examples/x.py``) exists.

Extras. The README's Extras table names every optional dependency group of pyproject.toml
with its packages, and a feature used without its extra says which extra to install.
"""

from __future__ import annotations

import os
import re
import subprocess
import sys
import textwrap
import urllib.parse
from dataclasses import dataclass
from pathlib import Path

import pytest
from markdown_it import MarkdownIt

ROOT = Path(__file__).resolve().parent.parent
DOCS = [ROOT / "README.md", *sorted((ROOT / "docs").glob("*.md"))]

_MD = MarkdownIt("commonmark").enable("table")
_PATH = re.compile(r"(?:\.\./|(?:src|docs|tests|examples|benchmarks|shared)/)[\w./-]+")  # no globs
_HTML_LINK = re.compile(r"""(?:href|src)\s*=\s*["']([^"']+)["']""")


def rel(path: Path) -> str:
    return path.relative_to(ROOT).as_posix()


# -- reading the documents ----------------------------------------------------------------


@dataclass
class Parsed:
    links: list[tuple[int, str]]  # (line, target)
    slugs: set[str]  # the anchors of its headings
    paths: list[tuple[int, str]]  # code spans that name a file under a top-level directory


def github_slug(heading: str, seen: dict[str, int]) -> str:
    """The anchor GitHub gives a heading: lower case, punctuation dropped, spaces to hyphens."""
    slug = re.sub(r"[^\w\- ]", "", heading.strip().lower()).replace(" ", "-")
    if slug in seen:
        seen[slug] += 1
        return f"{slug}-{seen[slug]}"
    seen[slug] = 0
    return slug


def parse(path: Path) -> Parsed:
    tokens = _MD.parse(path.read_text(encoding="utf-8"))
    links: list[tuple[int, str]] = []
    slugs: set[str] = set()
    seen: dict[str, int] = {}
    paths: list[tuple[int, str]] = []
    for i, tok in enumerate(tokens):
        line = tok.map[0] + 1 if tok.map else 0
        if tok.type in ("html_block", "html_inline"):
            links += [(line, m) for m in _HTML_LINK.findall(tok.content)]
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
    return Parsed(links, slugs, paths)


PARSED = {rel(path): parse(path) for path in DOCS}


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

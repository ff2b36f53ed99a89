"""What README.md and docs/*.md promise about installing forklift holds.

Extras. The README's Extras table names every optional dependency group of pyproject.toml
with its packages, and a feature used without its extra says which extra to install.
"""

from __future__ import annotations

import os
import re
import subprocess
import sys
import textwrap
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent


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

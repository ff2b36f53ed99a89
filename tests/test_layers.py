"""The import-layering checker (tests/layers.py), on small packages and on forklift itself."""

from __future__ import annotations

import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

from layers import check, format_report

SRC = Path(__file__).resolve().parents[1] / "src" / "forklift"

# A two-area package: "top" may import "low", never the other way round.
AREAS = {"__init__": "top", "a": "top", "sub": "top", "b": "low", "c": "low"}
LAYERS = ["top", "low"]


def make(tmp_path: Path, files: dict[str, str]) -> Path:
    root = tmp_path / "pkg"
    for name, text in {"__init__.py": "", "a.py": "from . import b\n", "b.py": "", **files}.items():
        (root / name).parent.mkdir(parents=True, exist_ok=True)
        (root / name).write_text(textwrap.dedent(text))
    return root


def violations(root: Path, exceptions: dict[tuple[str, str], str] | None = None) -> list[str]:
    return check(root, AREAS, LAYERS, exceptions or {}).violations


def targets(root: Path, module: str) -> set[tuple[int, str, str]]:
    report = check(root, AREAS, LAYERS, {})
    return {(imp.line, imp.target, imp.kind) for imp in report.imports if imp.source == module}


def test_a_clean_package_passes(tmp_path: Path) -> None:
    root = make(tmp_path, {"c.py": "import os\nfrom .b import x, y\n\ndef f():\n    from . import b\n"})
    report = check(root, AREAS, LAYERS, {})
    assert report.violations == []
    assert report.module_cycles == []
    assert [(imp.source, imp.line, imp.target, imp.kind) for imp in report.imports] == [
        ("pkg.a", 1, "pkg.b", "top"),
        ("pkg.c", 2, "pkg.b", "top"),  # once, though it names two things of pkg.b
        ("pkg.c", 5, "pkg.b", "deferred"),
    ]


def test_a_cycle_through_a_function_level_import(tmp_path: Path) -> None:
    root = make(tmp_path, {"b.py": "import json\n\ndef f():\n    from .a import g\n    return g\n"})
    found = violations(root)
    assert found[0] == "layer: low -> top: pkg/b.py:4 (deferred) imports pkg.a"
    assert found[1].startswith("cycle: low -> top -> low\n")
    assert "low -> top: pkg/b.py:4 (deferred) imports pkg.a" in found[1]
    assert "top -> low: pkg/a.py:1 imports pkg.b" in found[1]
    assert len(found) == 2


def test_a_cycle_through_type_checking(tmp_path: Path) -> None:
    text = """
        from typing import TYPE_CHECKING
        import typing

        if TYPE_CHECKING:
            from pkg.a import A
        if typing.TYPE_CHECKING:
            import pkg.sub.d
        else:
            import pkg.c
    """
    root = make(tmp_path, {"b.py": text, "c.py": "", "sub/__init__.py": "", "sub/d.py": ""})
    assert targets(root, "pkg.b") == {
        (6, "pkg.a", "typing"),
        (8, "pkg.sub.d", "typing"),
        (10, "pkg.c", "top"),
    }
    assert [v.partition(":")[0] for v in violations(root)] == ["layer", "layer", "cycle"]


def test_a_cycle_through_from_dot_import(tmp_path: Path) -> None:
    root = make(tmp_path, {"b.py": "from . import a\n"})
    assert violations(root)[0] == "layer: low -> top: pkg/b.py:1 imports pkg.a"


def test_from_dot_import_of_a_name_is_the_package(tmp_path: Path) -> None:
    root = make(tmp_path, {"__init__.py": "VERSION = 1\n", "b.py": "from . import VERSION\n"})
    assert violations(root)[0] == "layer: low -> top: pkg/b.py:1 imports pkg"


def test_relative_imports_resolve_to_submodules_or_names(tmp_path: Path) -> None:
    text = """
        from .. import a, b
        from ..a import name
        from ..sub import d
        from . import d as also_d, name_of_sub
        from .d import *
    """
    root = make(tmp_path, {"sub/__init__.py": "from .d import x\n", "sub/d.py": "", "sub/e.py": text})
    assert targets(root, "pkg.sub.e") == {
        (2, "pkg.a", "top"),
        (2, "pkg.b", "top"),
        (3, "pkg.a", "top"),
        (4, "pkg.sub.d", "top"),
        (5, "pkg.sub.d", "top"),
        (5, "pkg.sub", "top"),
        (6, "pkg.sub.d", "top"),
    }
    assert targets(root, "pkg.sub") == {(1, "pkg.sub.d", "top")}


def test_a_cycle_through_an_importlib_literal(tmp_path: Path) -> None:
    text = """
        import importlib

        def load(name):
            importlib.import_module(".a", __package__)
            __import__("pkg.a")
            return importlib.import_module(name)
    """
    root = make(tmp_path, {"b.py": text})
    assert targets(root, "pkg.b") == {(5, "pkg.a", "deferred"), (6, "pkg.a", "deferred")}
    assert violations(root)[-1].startswith("cycle: low -> top -> low")
    notes = check(root, AREAS, LAYERS, {}).notes
    assert [note for note in notes if note.startswith("dynamic")] == [
        "dynamic import not followed: pkg/b.py:7"
    ]


def test_an_exception_allows_an_upward_import(tmp_path: Path) -> None:
    root = make(tmp_path, {"b.py": "def f():\n    from . import a\n"})
    why = {("b", "top"): "b is a worker-side program"}
    assert violations(root, exceptions=why) == []
    assert check(root, AREAS, LAYERS, why).allowed == [
        "low -> top: pkg/b.py:2 (deferred) imports pkg.a -- b is a worker-side program"
    ]


def test_a_module_in_no_area_is_a_violation(tmp_path: Path) -> None:
    root = make(tmp_path, {"new.py": ""})
    assert violations(root) == ["area: pkg.new is in no area (add it to AREAS)"]


def test_module_cycles_are_reported_not_enforced(tmp_path: Path) -> None:
    root = make(tmp_path, {"b.py": "def f():\n    from . import c\n", "c.py": "from . import b\n"})
    report = check(root, AREAS, LAYERS, {})
    assert report.violations == []
    assert report.module_cycles == [["pkg.b", "pkg.c"]]


def test_the_report_runs_as_a_script() -> None:
    script = Path(__file__).with_name("layers.py")
    ran = subprocess.run([sys.executable, str(script), str(SRC)], capture_output=True, text=True)
    report = check(SRC)
    assert ran.stdout == format_report(report) + "\n"
    assert f"Violations ({len(report.violations)}):" in ran.stdout
    assert ran.returncode == (1 if report.violations else 0)


def test_forklift_keeps_its_layers() -> None:
    report = check(SRC)
    if report.violations:
        heading = f"{len(report.violations)} layering violations (rules and areas: tests/layers.py):"
        pytest.fail("\n".join([heading, *report.violations]), pytrace=False)

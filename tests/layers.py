"""forklift's import layering, checked on the source (parsed with ``ast``, never imported).

Every import of every module under src/forklift counts: at the top, inside a
function (*deferred*), under ``if TYPE_CHECKING:`` (*typing*), and
``importlib.import_module("literal")`` / ``__import__("literal")``. Relative
imports are resolved: ``from . import x`` names the submodule x when there is
one, else the package. A non-literal ``import_module(...)`` cannot be followed:
the report lists it. (The implicit import of a module's parent packages is not
counted.)

Each module is in the AREA of the longest prefix of its name in ``AREAS``
(``__init__`` is the package itself), and ``LAYERS`` orders the areas top to
bottom. The rules:

1. layer -- a module imports only its own area and the areas below it. So the
   engine never imports a face (nor the front, the tools or a place), and
   support imports nothing but support.
2. cycle -- no import cycle between areas, even through deferred or typing
   imports. Rule 1 implies it; the report names the cycle an upward import closes.
3. area -- every module is in an area: a new module must be added to ``AREAS``.

``EXCEPTIONS`` lists the upward imports allowed, each with its reason.
Cycles between single modules are reported, not enforced.

    python tests/layers.py [PACKAGE_DIR]    # the report; exit status 1 on a violation
"""

from __future__ import annotations

import ast
import sys
from collections import defaultdict, deque
from dataclasses import dataclass, field
from pathlib import Path

# The areas, top to bottom: a module may import its own area and the areas below it.
LAYERS = ["front", "tools", "faces", "places", "cluster", "engine", "primitives", "support"]

# Module prefix -> area. A prefix is the name inside the package ("_cluster.place"; "__init__" is
# the package itself) and covers its submodules; the longest one that matches wins. A prefix
# that matches no module yet (the tree is being reorganised) is only noted.
# fmt: off
AREAS = {
    # front: the package root (it re-exports the whole API, copy_tree included), and the programs
    # built on the faces: the CLI, copy_tree, report. They use the tools, so they sit above them.
    "__init__": "front", "__main__": "front", "cli": "front", "copier": "front", "report": "front",
    # tools: the machinery of forklift run / copy / report. Above the faces: it may drive a Pool
    # (forklift run --cluster does, in _run/remote.py).
    "_run": "tools", "_copy": "tools", "_report": "tools",
    # faces: the public API's objects.
    "pool": "faces", "aio": "faces", "joblib": "faces", "executor": "faces", "process": "faces",
    "context": "faces",
    "managers": "faces", "connection": "faces", "shared": "faces",
    # places: what Pool and Executor hold; they turn calls into jobs (_resume: journaled maps).
    "_places": "places", "_cluster.place": "places",
    # cluster: the Dask engine, what a Dask worker runs, credentials, cluster-wide primitives.
    "_cluster": "cluster",
    # engine: the local scheduler and its workers, and what the cluster engine shares with it.
    "_engine": "engine",
    # primitives: Queue, Lock, Value, Pipe... that pickle at any time, and their plumbing.
    "_primitives": "primitives",
    # support: leaves anyone may use. trees, journal and progress are public modules, but the
    # engine kills with trees, records into the journal and advances progress bars.
    "errors": "support", "_errors": "support",
    "_serialize": "support", "_config": "support", "_checks": "support",
    "_digest": "support", "_start_methods": "support", "_exit_watch": "support", "_platform": "support",
    "_options": "support",
    "progress": "support", "trees": "support", "journal": "support",
}
# fmt: on

# (importing module's prefix, imported area) -> why these upward imports are allowed.
EXCEPTIONS = {
    ("_cluster.runner", "faces"): "worker-side program: a Dask worker runs a chunk's timed tasks "
    "in a forklift Executor (imported there, never in the client)",
}


@dataclass(frozen=True)
class Import:
    source: str  # importing module ("forklift._engine.watch"; "forklift" is the package)
    path: str  # its file, relative to the package's parent
    line: int
    target: str  # the imported module
    kind: str  # "top", "deferred" (in a function) or "typing" (under TYPE_CHECKING)

    def __str__(self) -> str:
        kind = "" if self.kind == "top" else f" ({self.kind})"
        return f"{self.path}:{self.line}{kind} imports {self.target}"


@dataclass
class Report:
    layers: list[str]
    imports: list[Import] = field(default_factory=list)
    areas: dict[str, str | None] = field(default_factory=dict)  # module -> area
    violations: list[str] = field(default_factory=list)
    allowed: list[str] = field(default_factory=list)
    module_cycles: list[list[str]] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)


def modules(root: Path) -> dict[str, Path]:
    """Every module of the package at ``root``, by dotted name."""
    found = {}
    for path in sorted(root.rglob("*.py")):
        parts = [root.name, *path.relative_to(root).with_suffix("").parts]
        found[".".join(parts[:-1] if parts[-1] == "__init__" else parts)] = path
    return found


class _Collector(ast.NodeVisitor):
    def __init__(self, name: str, path: Path, known: dict[str, Path]) -> None:
        self.name, self.known, self.kind = name, known, "top"
        self.package = name if path.name == "__init__.py" else name.rpartition(".")[0]
        self.found: list[tuple[int, str, str]] = []  # line, target, kind
        self.dynamic: list[int] = []

    def add(self, line: int, name: str) -> None:
        while name and name not in self.known:  # a name that is no module: its module's attribute
            name = name.rpartition(".")[0]
        if name and name != self.name and (line, name, self.kind) not in self.found:
            self.found.append((line, name, self.kind))  # once per module a statement names

    def resolve(self, level: int, module: str | None) -> str:
        parts = self.package.split(".")
        base = parts[: len(parts) - level + 1] if level else []
        return ".".join([*base, *([module] if module else [])])

    def visit_Import(self, node: ast.Import) -> None:
        for alias in node.names:
            self.add(node.lineno, alias.name)

    def visit_ImportFrom(self, node: ast.ImportFrom) -> None:
        base = self.resolve(node.level, node.module)
        for alias in node.names:
            self.add(node.lineno, f"{base}.{alias.name}")

    def visit_Call(self, node: ast.Call) -> None:
        func = node.func
        called = func.attr if isinstance(func, ast.Attribute) else getattr(func, "id", "")
        if called in ("import_module", "__import__") and node.args:
            arg = node.args[0]
            if isinstance(arg, ast.Constant) and isinstance(arg.value, str):
                module = arg.value.lstrip(".")
                self.add(node.lineno, self.resolve(len(arg.value) - len(module), module))
            else:
                self.dynamic.append(node.lineno)
        self.generic_visit(node)

    def visit_FunctionDef(self, node: ast.FunctionDef | ast.AsyncFunctionDef | ast.Lambda) -> None:
        outer = self.kind
        self.kind = "deferred" if outer == "top" else outer
        self.generic_visit(node)
        self.kind = outer

    visit_AsyncFunctionDef = visit_Lambda = visit_FunctionDef

    def visit_If(self, node: ast.If) -> None:
        test = node.test
        if getattr(test, "id", getattr(test, "attr", None)) != "TYPE_CHECKING":
            self.generic_visit(node)
            return
        outer, self.kind = self.kind, "typing"
        for statement in node.body:
            self.visit(statement)
        self.kind = outer
        for statement in node.orelse:
            self.visit(statement)


def under(module: str, prefix: str) -> bool:
    """Whether ``module`` ("forklift._cluster.runner") is ``prefix`` ("_cluster") or inside it."""
    name = module.partition(".")[2] or "__init__"
    return name == prefix or name.startswith(prefix + ".")


def area_of(module: str, areas: dict[str, str]) -> str | None:
    keys = [key for key in areas if under(module, key)]
    return areas[max(keys, key=len)] if keys else None


def shortest_path(graph: dict[str, set[str]], start: str, end: str) -> list[str] | None:
    back = {start: start}
    todo = deque([start])
    while todo and end not in back:
        node = todo.popleft()
        for nxt in sorted(graph.get(node, ())):
            if nxt not in back:
                back[nxt] = node
                todo.append(nxt)
    if end not in back:
        return None
    path = [end]
    while path[-1] != start:
        path.append(back[path[-1]])
    return path[::-1]


def cycles(graph: dict[str, set[str]], through: list[tuple[str, str]] | None = None) -> list[list[str]]:
    """A shortest cycle through each edge of ``through`` (default: every edge), each cycle once."""
    found: dict[tuple[str, ...], list[str]] = {}
    every = [(source, target) for source in sorted(graph) for target in sorted(graph[source])]
    for source, target in every if through is None else through:
        back = shortest_path(graph, target, source)
        if back is not None:
            cycle = [source, *back[:-1]]
            first = cycle.index(min(cycle))
            found.setdefault(tuple(cycle[first:] + cycle[:first]), cycle[first:] + cycle[:first])
    return list(found.values())


def check(
    root: Path,
    areas: dict[str, str] = AREAS,
    layers: list[str] = LAYERS,
    exceptions: dict[tuple[str, str], str] = EXCEPTIONS,
) -> Report:
    """Collect the imports of the package at ``root`` and check them against the rules."""
    if unknown := set(areas.values()) - set(layers):
        raise ValueError(f"areas not in LAYERS: {sorted(unknown)}")
    known, report = modules(root), Report(layers)
    for name, path in known.items():
        collector = _Collector(name, path, known)
        collector.visit(ast.parse(path.read_bytes(), str(path)))
        shown = str(path.relative_to(root.parent))
        report.imports += [Import(name, shown, *found) for found in collector.found]
        report.notes += [f"dynamic import not followed: {shown}:{line}" for line in collector.dynamic]
        report.areas[name] = area_of(name, areas)
        if report.areas[name] is None:
            report.violations.append(f"area: {name} is in no area (add it to AREAS)")
    unused = [key for key in areas if not any(under(name, key) for name in known)]
    report.notes += [f"AREAS entry matches no module (yet): {key}" for key in unused]

    witnesses: dict[tuple[str, str], list[Import]] = defaultdict(list)
    upward: list[tuple[str, str]] = []
    for imp in report.imports:
        source, target = report.areas[imp.source], report.areas[imp.target]
        if source is None or target is None or source == target:
            continue
        why = [
            why for (prefix, area), why in exceptions.items() if area == target and under(imp.source, prefix)
        ]
        if why:
            report.allowed.append(f"{source} -> {target}: {imp} -- {why[0]}")
            continue
        witnesses[source, target].append(imp)
        if layers.index(target) < layers.index(source):
            upward.append((source, target))
            report.violations.append(f"layer: {source} -> {target}: {imp}")

    graph: dict[str, set[str]] = defaultdict(set)
    for source, target in witnesses:
        graph[source].add(target)
    for cycle in cycles(graph, sorted(set(upward))):  # every cycle has an upward edge
        lines = [f"cycle: {' -> '.join([*cycle, cycle[0]])}"]
        for source, target in zip(cycle, [*cycle[1:], cycle[0]]):
            first, *more = witnesses[source, target]
            lines.append(f"    {source} -> {target}: {first}" + (f" (and {len(more)} more)" if more else ""))
        report.violations.append("\n".join(lines))

    module_graph: dict[str, set[str]] = defaultdict(set)
    for imp in report.imports:
        module_graph[imp.source].add(imp.target)
    report.module_cycles = cycles(module_graph)
    return report


def format_report(report: Report) -> str:
    kinds = [imp.kind for imp in report.imports]
    out = [
        f"{len(report.areas)} modules, {len(kinds)} imports ({kinds.count('deferred')} deferred, "
        f"{kinds.count('typing')} under TYPE_CHECKING)",
        "",
        "Areas:",
    ]
    members: dict[str | None, list[str]] = defaultdict(list)
    for name, area in sorted(report.areas.items()):
        members[area].append(name)
    out += [f"  {area}: {', '.join(members.pop(area))}" for area in [*report.layers, None] if area in members]
    out += ["", f"Violations ({len(report.violations)}):", *report.violations]
    out += ["", f"Allowed by EXCEPTIONS ({len(report.allowed)}):", *report.allowed]
    out += ["", f"Module cycles, not enforced ({len(report.module_cycles)}):"]
    out += ["  " + " -> ".join([*cycle, cycle[0]]) for cycle in report.module_cycles]
    out += ["", "Notes:", *report.notes]
    return "\n".join(out)


if __name__ == "__main__":
    root = Path(sys.argv[1]) if len(sys.argv) > 1 else Path(__file__).parents[1] / "src" / "forklift"
    result = check(root)
    print(format_report(result))
    sys.exit(1 if result.violations else 0)

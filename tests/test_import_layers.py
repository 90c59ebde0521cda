"""The tree reads top-down: no import circle between the parts of ``api/`` (its
subpackages and top-level modules) or of ``scripts/``, none between ``api``'s modules, the
aiortc adapter at the bottom of ``sfu/``, and no module of ``api/`` or ``sfu/`` over 600 lines.

The graph is built from the source (AST), so it sees every import: at module level, inside
functions, and under ``if TYPE_CHECKING:``.
"""

from __future__ import annotations

import ast
import itertools
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path

from tests.source_ast import parse_source

REPO = Path(__file__).resolve().parents[1]
MAX_MODULE_LINES = 600


@dataclass
class ImportGraph:
    """Which node imports which, and for every edge the files whose imports make it."""

    edges: dict[str, dict[str, set[str]]] = field(default_factory=dict)

    def add(self, source: str, target: str, where: str) -> None:
        if source != target:
            self.edges.setdefault(source, {}).setdefault(target, set()).add(where)

    def circles(self) -> list[str]:
        """Each group of nodes that import each other, with one circle through it and the
        files behind every step of that circle."""
        described = []
        for group in _strongly_connected(self.edges):
            cycle = _cycle_in(group, self.edges)
            steps = [
                f"  {a} -> {b}  ({', '.join(sorted(self.edges[a][b]))})"
                for a, b in itertools.pairwise(cycle)
            ]
            described.append("\n".join([f"among {', '.join(group)}:", " -> ".join(cycle), *steps]))
        return described


def _modules(root: str) -> dict[str, Path]:
    """Every module of the package ``root`` by dotted name (a package by its ``__init__``)."""
    found = {}
    directory = REPO / root
    for path in sorted(directory.rglob("*.py")):
        parts = (root, *path.relative_to(directory).with_suffix("").parts)
        found[".".join(parts[:-1] if parts[-1] == "__init__" else parts)] = path
    return found


def _imported_names(module: str, path: Path) -> Iterator[str]:
    """Dotted names ``module`` imports (each ``from x import y`` as ``x`` and ``x.y``)."""
    package = module if path.name == "__init__.py" else module.rpartition(".")[0]
    for node in ast.walk(parse_source(path)):
        if isinstance(node, ast.Import):
            yield from (alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom):
            if node.level:
                base = package.split(".")[: len(package.split(".")) - node.level + 1]
                target = ".".join([*base, node.module] if node.module else base)
            else:
                target = node.module or ""
            yield target
            yield from (f"{target}.{alias.name}" for alias in node.names)


def _part(module: str) -> str:
    """The subpackage or top-level module of its root package that ``module`` belongs to."""
    return ".".join(module.split(".")[:2])


def import_graph(root: str = "api", *, by_part: bool) -> ImportGraph:
    """The imports between ``root``'s modules, or between its parts (``by_part``)."""
    modules = _modules(root)
    graph = ImportGraph()
    for module, path in modules.items():
        where = str(path.relative_to(REPO))
        for name in _imported_names(module, path):
            if name in modules:
                if by_part:
                    graph.add(_part(module), _part(name), where)
                else:
                    graph.add(module, name, where)
    return graph


def _strongly_connected(edges: dict[str, dict[str, set[str]]]) -> list[list[str]]:
    """Tarjan's algorithm; only groups of two or more nodes (no node imports itself)."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    on_stack: set[str] = set()
    groups: list[list[str]] = []

    def visit(node: str) -> None:
        index[node] = low[node] = len(index)
        stack.append(node)
        on_stack.add(node)
        for target in sorted(edges.get(node, {})):
            if target not in index:
                visit(target)
                low[node] = min(low[node], low[target])
            elif target in on_stack:
                low[node] = min(low[node], index[target])
        if low[node] == index[node]:
            group = []
            while True:
                member = stack.pop()
                on_stack.discard(member)
                group.append(member)
                if member == node:
                    break
            if len(group) > 1:
                groups.append(sorted(group))

    nodes = sorted(set(edges) | {t for targets in edges.values() for t in targets})
    for node in nodes:
        if node not in index:
            visit(node)
    return groups


def _cycle_in(group: list[str], edges: dict[str, dict[str, set[str]]]) -> list[str]:
    """A shortest circle through the group's first node, staying inside the group."""
    start, members = group[0], set(group)
    paths = {start: [start]}
    frontier = [start]
    while frontier:
        following = []
        for node in frontier:
            for target in sorted(edges.get(node, {})):
                if target == start:
                    return [*paths[node], start]
                if target in members and target not in paths:
                    paths[target] = [*paths[node], target]
                    following.append(target)
        frontier = following
    raise AssertionError(f"{group} is not strongly connected")


def test_the_graph_sees_the_imports_it_must_judge() -> None:
    # Guards the checks below against an empty or blind graph.
    parts = import_graph(by_part=True).edges
    assert "api.store" in parts["api.rooms"]
    assert "api.rooms" in parts["api.recordings"]
    assert "api.rooms" in parts["api.ws"]
    group = {"x": {"y": {"x.py"}}, "y": {"z": {"y.py"}}, "z": {"x": {"z.py"}}}
    assert [_cycle_in(g, group) for g in _strongly_connected(group)] == [["x", "y", "z", "x"]]


def test_no_import_circle_between_the_parts_of_api() -> None:
    circles = import_graph(by_part=True).circles()
    assert not circles, "import circles between api's parts:\n" + "\n".join(circles)


def test_no_import_circle_between_the_modules_of_api() -> None:
    circles = import_graph(by_part=False).circles()
    assert not circles, "import circles between api's modules:\n" + "\n".join(circles)


def test_no_import_circle_between_the_parts_of_scripts() -> None:
    circles = import_graph("scripts", by_part=True).circles()
    assert not circles, "import circles between scripts' parts:\n" + "\n".join(circles)


def test_the_aiortc_adapter_is_the_bottom_of_sfu() -> None:
    # It may use sfu's errors, plain value types and the typed front of the C receive
    # path it feeds; the engine above it (direct_send, sender_reports, producer...)
    # reaches it, never the other way round.
    edges = import_graph("sfu", by_part=True).edges.get("sfu.aiortc_adapter", {})
    allowed = {"sfu.errors", "sfu.stats", "sfu.ids", "sfu.native_receive", "sfu.track_caps"}
    assert set(edges) <= allowed, edges
    assert "sfu.aiortc_adapter" in import_graph("sfu", by_part=True).edges["sfu.direct_send"]


def test_no_module_of_api_or_sfu_is_over_600_lines() -> None:
    over = {
        str(path.relative_to(REPO)): lines
        for root in ("api", "sfu")
        for path in _modules(root).values()
        if (lines := len(path.read_text().splitlines())) > MAX_MODULE_LINES
    }
    assert over == {}

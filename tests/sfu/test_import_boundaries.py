"""sfu/ is a clean media library: no control plane, no web framework, no database."""

from __future__ import annotations

import ast
from pathlib import Path

SFU = Path(__file__).resolve().parents[2] / "sfu"
FORBIDDEN = {"api", "aiohttp", "pymongo", "motor", "bson", "sqlite3", "aiosqlite", "nx_27017"}


def _imported_roots(path: Path) -> set[str]:
    roots: set[str] = set()
    for node in ast.walk(ast.parse(path.read_text(), filename=str(path))):
        if isinstance(node, ast.Import):
            roots |= {alias.name.split(".")[0] for alias in node.names}
        elif isinstance(node, ast.ImportFrom):
            if node.level:
                continue  # relative: inside sfu
            assert node.module is not None
            roots.add(node.module.split(".")[0])
        elif (
            isinstance(node, ast.Call)
            and isinstance(node.func, ast.Attribute | ast.Name)
            and getattr(node.func, "attr", getattr(node.func, "id", ""))
            in ("import_module", "__import__")
        ):
            raise AssertionError(f"{path}: dynamic import")
    return roots


def test_no_module_of_sfu_imports_the_api_a_web_framework_or_a_database() -> None:
    modules = sorted(SFU.rglob("*.py"))
    assert len(modules) >= 10
    for module in modules:
        bad = _imported_roots(module) & FORBIDDEN
        assert not bad, f"{module.relative_to(SFU.parent)} imports {sorted(bad)}"

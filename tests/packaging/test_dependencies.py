"""Every third-party import is a declared dependency: runtime code needs nothing more
than ``pip install .``, and the tests nothing more than the ``test`` extra on top.

Imports are read from the source (an AST walk, top-level names), so a lazy import inside
a function counts as much as one at the top of a module. A module outside the runtime
dependencies may be imported only inside ``try: ... except ImportError:`` whose handler
names the extra that provides it (``pip install 'classroom-sfu[plot]'``).
"""

from __future__ import annotations

import ast
import re
import sys
import tomllib
from collections.abc import Iterator
from dataclasses import dataclass
from importlib.metadata import packages_distributions
from pathlib import Path

from tests.source_ast import parse_source

REPO = Path(__file__).resolve().parents[2]
INSTALLED = ("api", "sfu", "scripts")
"""The packages `pip install .` installs (pyproject.toml's package find)."""
FIRST_PARTY = {*INSTALLED, "tests"}
EXTRA_HINT = re.compile(r"classroom-sfu\[([a-z0-9-]+)\]")


@dataclass(frozen=True)
class Import:
    """One import statement's top-level module, where it is, and the extra it is
    optional for (named by its ImportError handler), if any."""

    module: str
    where: str
    optional_for: str | None


def _name(requirement: str) -> str:
    match = re.match(r"[A-Za-z0-9][A-Za-z0-9._-]*", requirement)
    assert match is not None, requirement
    return _normalized(match.group(0))


def _normalized(distribution: str) -> str:
    return re.sub(r"[-_.]+", "-", distribution).lower()


def _project() -> dict[str, object]:
    with (REPO / "pyproject.toml").open("rb") as file:
        project = tomllib.load(file)["project"]
    assert isinstance(project, dict)
    return project


def _runtime() -> set[str]:
    dependencies = _project()["dependencies"]
    assert isinstance(dependencies, list)
    return {_name(r) for r in dependencies}


def _extras() -> dict[str, set[str]]:
    extras = _project()["optional-dependencies"]
    assert isinstance(extras, dict)
    return {extra: {_name(r) for r in requirements} for extra, requirements in extras.items()}


def _providers() -> dict[str, set[str]]:
    """Import name -> the installed distributions that provide it."""
    return {
        module: {_normalized(d) for d in distributions}
        for module, distributions in packages_distributions().items()
    }


def _handler_extra(handler: ast.ExceptHandler) -> str | None:
    """The extra a handler of ImportError names in its message, if it is one."""
    caught = handler.type
    names = caught.elts if isinstance(caught, ast.Tuple) else [caught]
    if not any(
        isinstance(n, ast.Name) and n.id in {"ImportError", "ModuleNotFoundError"} for n in names
    ):
        return None
    texts = [n.value for n in ast.walk(handler) if isinstance(n, ast.Constant)]
    for text in texts:
        if isinstance(text, str) and (found := EXTRA_HINT.search(text)):
            return found.group(1)
    return None


def _imports(path: Path) -> Iterator[Import]:
    tree = parse_source(path)
    where = str(path.relative_to(REPO) if path.is_relative_to(REPO) else path)

    def visit(node: ast.AST, optional_for: str | None) -> Iterator[Import]:
        if isinstance(node, ast.Import):
            for alias in node.names:
                yield Import(alias.name.split(".")[0], f"{where}:{node.lineno}", optional_for)
        elif isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
            yield Import(node.module.split(".")[0], f"{where}:{node.lineno}", optional_for)
        if isinstance(node, ast.Try):
            extras = [_handler_extra(h) for h in node.handlers]
            guarded = next((e for e in extras if e is not None), optional_for)
            for statement in node.body:
                yield from visit(statement, guarded)
            unguarded: list[ast.AST] = [*node.handlers, *node.orelse, *node.finalbody]
            for part in unguarded:
                yield from visit(part, optional_for)
            return
        for child in ast.iter_child_nodes(node):
            yield from visit(child, optional_for)

    yield from visit(tree, None)


def _third_party(*packages: str) -> list[Import]:
    found = []
    for package in packages:
        for path in sorted((REPO / package).rglob("*.py")):
            for item in _imports(path):
                if item.module not in sys.stdlib_module_names | FIRST_PARTY:
                    found.append(item)
    return found


def _undeclared(items: list[Import], allowed: set[str]) -> list[str]:
    providers = _providers()
    extras = _extras()
    problems = []
    for item in items:
        provided_by = providers.get(item.module, set())
        if provided_by & allowed:
            continue
        if item.optional_for is not None and provided_by & extras.get(item.optional_for, set()):
            continue
        if not provided_by:
            problems.append(f"{item.where}: {item.module} is not installed here at all")
        elif item.optional_for is not None:
            problems.append(
                f"{item.where}: {item.module} ({', '.join(sorted(provided_by))}) is not in "
                f"the extra {item.optional_for!r} its ImportError handler names"
            )
        else:
            problems.append(
                f"{item.where}: {item.module} ({', '.join(sorted(provided_by))}) is not a "
                "runtime dependency, and no ImportError handler names its extra"
            )
    return problems


def test_every_import_of_the_installed_packages_is_a_runtime_dependency() -> None:
    items = _third_party(*INSTALLED)
    assert {i.module for i in items} >= {"aiohttp", "aiortc", "av", "numpy", "psutil"}
    assert _undeclared(items, _runtime()) == []


def test_every_runtime_dependency_is_imported_somewhere() -> None:
    providers = _providers()
    used = {d for i in _third_party(*INSTALLED) for d in providers.get(i.module, set())}
    assert _runtime() - used == set()


def test_optional_imports_name_a_declared_extra() -> None:
    optional = [i for i in _third_party(*INSTALLED) if i.optional_for is not None]
    # --plot, and the README picture's screenshot script (a contributor's tool)
    assert {(i.module, i.optional_for) for i in optional} == {
        ("matplotlib", "plot"),
        ("playwright", "test"),
    }
    assert set(_extras()) >= {"plot", "test"}


def test_every_import_of_the_tests_is_a_runtime_or_test_dependency() -> None:
    items = _third_party("tests")
    assert {i.module for i in items} >= {"pytest", "playwright", "openapi_spec_validator"}
    assert _undeclared(items, _runtime() | _extras()["test"]) == []


def test_the_walk_finds_lazy_imports_and_only_handlers_that_name_an_extra(tmp_path: Path) -> None:
    source = tmp_path / "sample.py"
    source.write_text(
        "import os, numpy.typing\n"
        "def draw():\n"
        "    from matplotlib import pyplot\n"
        "try:\n"
        "    import psutil\n"
        "except ImportError:\n"
        "    raise SystemExit(\"needs psutil: pip install 'classroom-sfu[plot]'\")\n"
        "try:\n"
        "    import yaml\n"
        "except ImportError:\n"
        "    yaml = None\n"
        "try:\n"
        "    import pylibsrtp\n"
        "except ValueError:\n"
        "    raise SystemExit(\"pip install 'classroom-sfu[plot]'\")\n"
    )
    found = [(i.module, i.where.rsplit(":", 1)[1], i.optional_for) for i in _imports(source)]
    assert found == [
        ("os", "1", None),
        ("numpy", "1", None),
        ("matplotlib", "3", None),
        ("psutil", "5", "plot"),
        ("yaml", "9", None),
        ("pylibsrtp", "13", None),
    ]
    problems = _undeclared([i for i in _imports(source) if i.module != "os"], {"numpy"})
    assert [p.split(": ", 1)[1].split(" ")[0] for p in problems] == [
        "matplotlib",
        "psutil",
        "yaml",
        "pylibsrtp",
    ]

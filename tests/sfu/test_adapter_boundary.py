"""Every aiortc / aioice private stays inside `sfu/aiortc_adapter/`.

Checked by reading the source (AST) of `sfu/`, `api/`, `scripts/` and `tests/`: outside
the adapter package, no ``x._name`` and no ``getattr``/``setattr``/``hasattr``/
``delattr`` with a ``"_name"`` string, where ``_name`` is a private name aiortc, aioice
or pylibsrtp define (attributes their classes assign on ``self``, their methods and
class attributes, module-level names, name-mangled ``_Class__name`` forms; read from the
installed sources; not aiortc.contrib's), or one the adapter's internals table lists
(asyncio's among them).
``self._name`` is fine in our own classes, except in a subclass of an aiortc/aioice class
for a name that class hierarchy defines. No ``from aiortc... import _private``. And
`scripts/` import the adapter only through `sfu.aiortc_adapter.testing`.
"""

from __future__ import annotations

import ast
from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from pathlib import Path

import aioice
import aiortc
import pylibsrtp
import pytest

from sfu.aiortc_adapter import internals
from tests.source_ast import parse_source

ROOT = Path(__file__).resolve().parents[2]
ADAPTER = Path("sfu/aiortc_adapter")
CHECKED = ("sfu", "api", "scripts", "tests")
FOREIGN = ("aiortc", "aioice", "pylibsrtp")
EXEMPT = {
    Path("tests/sfu/test_adapter_canary.py"): (
        "reads aiortc's internals (their source and their live values) to prove the "
        "adapter's assumptions still hold"
    ),
}
"""Files allowed to reach into aiortc / aioice, and why. Keep it this small."""
TESTING_MODULE = "sfu.aiortc_adapter.testing"


def _is_private(name: str) -> bool:
    dunder = name.startswith("__") and name.endswith("__")
    return len(name) > 1 and name.startswith("_") and not dunder


def _mangle(class_name: str, name: str) -> str:
    if name.startswith("__") and not name.endswith("__"):
        return f"_{class_name.lstrip('_')}{name}"
    return name


@dataclass
class ForeignNames:
    """The private names aiortc / aioice / pylibsrtp define."""

    all: set[str]
    by_class: dict[str, set[str]]
    """Per class (by name): the private names it defines itself."""
    bases: dict[str, set[str]]
    """Per class (by name): the names of its bases."""

    def of_hierarchy(self, class_name: str) -> set[str]:
        names: set[str] = set()
        todo, seen = [class_name], set()
        while todo:
            current = todo.pop()
            if current in seen:
                continue
            seen.add(current)
            names |= self.by_class.get(current, set())
            todo.extend(self.bases.get(current, ()))
        return names


def _foreign_sources() -> Iterator[Path]:
    for package in (aiortc, aioice, pylibsrtp):
        assert package.__file__ is not None
        root = Path(package.__file__).parent
        # aiortc.contrib (media players and recorders, signaling, MediaRelay) is none of
        # what the adapter touches; its privates (`_reader`, ...) are everyday words.
        yield from sorted(p for p in root.rglob("*.py") if "contrib" not in p.parts)


def collect_foreign_names(sources: Iterable[Path]) -> ForeignNames:
    found = ForeignNames(set(), {}, {})
    for path in sources:
        tree = parse_source(path)
        for node in tree.body:
            targets: list[ast.expr] = []
            if isinstance(node, ast.FunctionDef | ast.AsyncFunctionDef | ast.ClassDef):
                if _is_private(node.name):
                    found.all.add(node.name)
            elif isinstance(node, ast.Assign):
                targets = node.targets
            elif isinstance(node, ast.AnnAssign):
                targets = [node.target]
            found.all |= {t.id for t in targets if isinstance(t, ast.Name) and _is_private(t.id)}
        for cls in (n for n in ast.walk(tree) if isinstance(n, ast.ClassDef)):
            names = found.by_class.setdefault(cls.name, set())
            found.bases.setdefault(cls.name, set()).update(
                b.id if isinstance(b, ast.Name) else b.attr
                for b in cls.bases
                if isinstance(b, ast.Name | ast.Attribute)
            )
            for inner in ast.walk(cls):
                candidates: list[str] = []
                if isinstance(inner, ast.FunctionDef | ast.AsyncFunctionDef):
                    candidates = [inner.name]
                elif isinstance(inner, ast.Attribute) and isinstance(inner.ctx, ast.Store):
                    is_self = isinstance(inner.value, ast.Name) and inner.value.id == "self"
                    candidates = [inner.attr] if is_self else []
                elif isinstance(inner, ast.Name) and isinstance(inner.ctx, ast.Store):
                    candidates = [inner.id]  # class attributes (and locals: harmless)
                names |= {_mangle(cls.name, c) for c in candidates if _is_private(c)}
            found.all |= names
    return found


def adapter_table_names() -> set[str]:
    """The private names `sfu.aiortc_adapter.internals` lists (asyncio's among them)."""
    names: set[str] = set()
    for value in vars(internals).values():
        for item in value if isinstance(value, tuple) else (value,):
            if isinstance(item, str) and _is_private(item):
                names.add(item)
    return names


@dataclass(frozen=True)
class Violation:
    path: Path
    line: int
    what: str

    def __str__(self) -> str:
        return f"{self.path}:{self.line}: {self.what}"


class _Checker(ast.NodeVisitor):
    def __init__(self, path: Path, private: set[str], foreign: ForeignNames, script: bool):
        self.path = path
        self.private = private
        self.foreign = foreign
        self.script = script
        self.violations: list[Violation] = []
        self._imported_foreign: set[str] = set()  # names bound to aiortc/aioice classes
        self._string_constants: dict[str, str] = {}
        self._inherited: list[set[str]] = []  # per enclosing class: foreign names of its bases

    def _flag(self, node: ast.AST, what: str) -> None:
        self.violations.append(Violation(self.path, getattr(node, "lineno", 0), what))

    def visit_Module(self, node: ast.Module) -> None:
        for statement in node.body:
            if (
                isinstance(statement, ast.Assign)
                and isinstance(statement.value, ast.Constant)
                and isinstance(statement.value.value, str)
            ):
                for target in statement.targets:
                    if isinstance(target, ast.Name):
                        self._string_constants[target.id] = statement.value.value
        self.generic_visit(node)

    def visit_Import(self, node: ast.Import) -> None:
        for alias in node.names:
            parts = alias.name.split(".")
            if parts[0] in FOREIGN and any(_is_private(p) for p in parts[1:]):
                self._flag(node, f"imports private module {alias.name}")
            adapter = alias.name.startswith("sfu.aiortc_adapter")
            if self.script and adapter and alias.name != TESTING_MODULE:
                self._flag(node, f"scripts import {alias.name}, not {TESTING_MODULE}")
        self.generic_visit(node)

    def visit_ImportFrom(self, node: ast.ImportFrom) -> None:
        module = node.module or ""
        parts = module.split(".")
        if node.level == 0 and parts[0] in FOREIGN:
            if any(_is_private(p) for p in parts[1:]):
                self._flag(node, f"imports from private module {module}")
            for alias in node.names:
                if _is_private(alias.name):
                    self._flag(node, f"imports private {alias.name} from {module}")
                self._imported_foreign.add(alias.asname or alias.name)
        if self.script and node.level == 0:
            names = {alias.name for alias in node.names}
            if module == "sfu" and "aiortc_adapter" in names:
                self._flag(node, f"scripts import sfu.aiortc_adapter, not {TESTING_MODULE}")
            elif module == "sfu.aiortc_adapter" and names != {"testing"}:
                self._flag(node, f"scripts import from sfu.aiortc_adapter, not {TESTING_MODULE}")
            elif module.startswith("sfu.aiortc_adapter.") and module != TESTING_MODULE:
                self._flag(node, f"scripts import {module}, not {TESTING_MODULE}")
        self.generic_visit(node)

    def visit_ClassDef(self, node: ast.ClassDef) -> None:
        inherited: set[str] = set()
        for base in node.bases:
            if isinstance(base, ast.Name) and base.id in self._imported_foreign:
                inherited |= self.foreign.of_hierarchy(base.id)
            elif (
                isinstance(base, ast.Attribute)
                and isinstance(base.value, ast.Name)
                and base.value.id in FOREIGN
            ):
                inherited |= self.foreign.of_hierarchy(base.attr)
        self._inherited.append(inherited)
        self.generic_visit(node)
        self._inherited.pop()

    def visit_Attribute(self, node: ast.Attribute) -> None:
        name = node.attr
        on_self = isinstance(node.value, ast.Name) and node.value.id in ("self", "cls")
        if on_self:
            if self._inherited and name in self._inherited[-1]:
                self._flag(node, f"uses inherited aiortc/aioice private self.{name}")
        elif name in self.private:
            self._flag(node, f"accesses private .{name}")
        self.generic_visit(node)

    def visit_Call(self, node: ast.Call) -> None:
        func = node.func
        called = func.id if isinstance(func, ast.Name) else getattr(func, "attr", None)
        if called in ("getattr", "setattr", "hasattr", "delattr") and len(node.args) >= 2:
            argument = node.args[1]
            name: object = None
            if isinstance(argument, ast.Constant):
                name = argument.value
            elif isinstance(argument, ast.Name):
                name = self._string_constants.get(argument.id)
            if isinstance(name, str) and name in self.private:
                self._flag(node, f"{called}(..., {name!r})")
        self.generic_visit(node)


def check_source(
    source: str, path: Path, private: set[str], foreign: ForeignNames
) -> list[Violation]:
    checker = _Checker(path, private, foreign, script=path.parts[0] == "scripts")
    checker.visit(parse_source(path, source))
    return checker.violations


@pytest.fixture(scope="module")
def foreign() -> ForeignNames:
    return collect_foreign_names(_foreign_sources())


@pytest.fixture(scope="module")
def private(foreign: ForeignNames) -> set[str]:
    return foreign.all | adapter_table_names()


def _checked_files() -> list[Path]:
    files = []
    for top in CHECKED:
        for path in sorted((ROOT / top).rglob("*.py")):
            relative = path.relative_to(ROOT)
            if relative.is_relative_to(ADAPTER) or relative in EXEMPT:
                continue
            files.append(relative)
    return files


def test_the_private_names_are_found_in_the_installed_sources(private: set[str]) -> None:
    # A few the adapter is known to use, each found the way the test finds them all.
    for name in (
        "_RTCRtpReceiver__jitter_buffer",  # mangled, assigned in __init__
        "_RTCPeerConnection__connect",  # mangled method
        "_send_rtcp_pli",  # method
        "_nominated",  # aioice attribute
        "_tx_srtp",  # DTLS attribute
        "_cdata",  # pylibsrtp
        "_asyncio_future_blocking",  # asyncio, from the adapter's table
    ):
        assert name in private
    assert "__init__" not in private and "send" not in private


def test_nothing_outside_the_adapter_reaches_into_aiortc_or_aioice(
    private: set[str], foreign: ForeignNames
) -> None:
    files = _checked_files()
    assert len(files) > 100
    violations = [
        violation
        for path in files
        for violation in check_source((ROOT / path).read_text(), path, private, foreign)
    ]
    assert not violations, "\n".join(map(str, violations))


def test_the_exemptions_exist_and_still_need_to_be_exempt(
    private: set[str], foreign: ForeignNames
) -> None:
    for path in EXEMPT:
        assert check_source((ROOT / path).read_text(), path, private, foreign), path


VIOLATIONS = {
    "mangled attribute": "pc._RTCPeerConnection__connect()",
    "aioice attribute": "pair = dtls.transport._connection._nominated.get(1)",
    "getattr with a literal": 'srtp = getattr(dtls, "_tx_srtp")',
    "setattr through a constant": 'NAME = "_send_keyframe"\nsetattr(sender, NAME, cb)',
    "monkeypatch.setattr": 'monkeypatch.setattr(ice, "_recv", fake)',
    "asyncio private from the table": "future._asyncio_future_blocking = False",
    "private import": "from pylibsrtp import _binding",
    "private module": "import aiortc._internal",
    "inherited private": (
        "from aiortc import RTCRtpSender\n"
        "class Sender(RTCRtpSender):\n"
        "    def f(self):\n"
        "        return self._ssrc"
    ),
}


@pytest.mark.parametrize("source", VIOLATIONS.values(), ids=VIOLATIONS.keys())
def test_the_checker_catches_a_violation(
    source: str, private: set[str], foreign: ForeignNames
) -> None:
    assert check_source(source, Path("sfu/example.py"), private, foreign)


SCRIPT_VIOLATIONS = {
    "the package": "from sfu import aiortc_adapter",
    "a name of the package": "from sfu.aiortc_adapter import intercept_receiver",
    "another module": "from sfu.aiortc_adapter.receivers import intercept_receiver",
    "imported whole": "import sfu.aiortc_adapter",
}


@pytest.mark.parametrize("source", SCRIPT_VIOLATIONS.values(), ids=SCRIPT_VIOLATIONS.keys())
def test_scripts_may_import_only_the_testing_module(
    source: str, private: set[str], foreign: ForeignNames
) -> None:
    assert check_source(source, Path("scripts/example.py"), private, foreign)
    assert not check_source(source, Path("tests/example.py"), private, foreign)


def test_clean_code_passes(private: set[str], foreign: ForeignNames) -> None:
    clean = (
        "from sfu.aiortc_adapter import testing\n"
        "from sfu.aiortc_adapter.testing import is_rtp\n"
        "from aiortc import MediaStreamTrack\n"
        "class Track(MediaStreamTrack):\n"
        "    def __init__(self):\n"
        "        self._frames = []\n"  # our own attribute, not MediaStreamTrack's
        "class Own:\n"
        "    def __init__(self):\n"
        "        self._nominated = {}\n"  # our own class may use any name on self
        "testing.selected_pair(pc)\n"
        "getattr(sender, 'kind')\n"
    )
    assert check_source(clean, Path("scripts/example.py"), private, foreign) == []

"""The import graph of ``lhvdbg``, read from the source: no cycle, no arrow against the layers.

Every ``import`` and ``from ... import`` anywhere in a module counts — at module level,
inside functions and under ``if TYPE_CHECKING:`` — because a function-level import hides
a cycle from ``sys.modules`` probes but not from a reader. ``from pkg import name`` is an
arrow to ``pkg.name`` when that is a module, else to ``pkg``. The layers are those of
docs/architecture.md (``x86`` ← ``state`` ← ``diagnose``; ``machine`` beside them;
``scenario``; ``ui``; ``commands``; ``cli``); a control test runs the same reader on a
made-up package with a cycle hidden in a function and an upward ``TYPE_CHECKING`` import.
"""

from __future__ import annotations

import ast
import re
from collections.abc import Iterator, Mapping
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent.parent

# Modules every layer may import (each imports at most lhvdbg.errors).
BASE = frozenset({"lhvdbg", "lhvdbg.errors", "lhvdbg.files", "lhvdbg.signals"})

# layer -> the layers it may import (besides BASE and itself).
ALLOWED: Mapping[str, frozenset[str]] = {
    "x86": frozenset(),
    "state": frozenset({"x86"}),
    "diagnose": frozenset({"x86", "state"}),
    "machine": frozenset({"x86", "state"}),
    "scenario": frozenset({"x86", "state", "diagnose", "machine"}),
    "ui": frozenset({"x86", "state", "diagnose"}),
    "commands": frozenset({"x86", "state", "diagnose", "machine", "scenario", "ui"}),
    "cli": frozenset({"commands"}),
    "__main__": frozenset({"cli"}),
}

# Third-party packages only one layer may import.
OWNED = {"rich": "ui", "prompt_toolkit": "ui", "pygdbmi": "machine", "qemu": "machine"}

# Cycles still present, each a sorted tuple of modules, to be removed, never added to.
# Empty: no module of lhvdbg is part of an import cycle.
KNOWN_CYCLES: frozenset[tuple[str, ...]] = frozenset()


def _module_name(path: Path, top: Path) -> str:
    parts = list(path.relative_to(top.parent).with_suffix("").parts)
    if parts[-1] == "__init__":
        parts.pop()
    return ".".join(parts)


def _imported_names(node: ast.AST, module: str, is_package: bool) -> Iterator[tuple[str, str]]:
    """(imported module, name or '') of one import statement."""
    if isinstance(node, ast.Import):
        for alias in node.names:
            yield alias.name, ""
    elif isinstance(node, ast.ImportFrom):
        if node.level:
            base = module.split(".") if is_package else module.split(".")[:-1]
            base = base[: len(base) - (node.level - 1)]
            source = ".".join([*base, *([node.module] if node.module else [])])
        else:
            source = node.module or ""
        for alias in node.names:
            yield source, alias.name


def read_graph(top: Path) -> tuple[dict[str, set[str]], dict[str, set[str]]]:
    """Module -> the package's modules it imports, and module -> the foreign top-level
    packages it imports, for the package whose directory is ``top``."""
    files = {_module_name(p, top): p for p in sorted(top.rglob("*.py"))}
    graph: dict[str, set[str]] = {}
    foreign: dict[str, set[str]] = {}
    for module, path in files.items():
        graph[module], foreign[module] = set(), set()
        tree = ast.parse(path.read_text(), str(path))
        for node in ast.walk(tree):
            for source, name in _imported_names(node, module, path.name == "__init__.py"):
                if source.split(".")[0] != top.name:
                    foreign[module].add(source.split(".")[0])
                    continue
                target = f"{source}.{name}" if f"{source}.{name}" in files else source
                while target not in files and "." in target:
                    target = target.rsplit(".", 1)[0]
                if target != module:
                    graph[module].add(target)
    return graph, foreign


def cycles(graph: Mapping[str, set[str]]) -> list[tuple[str, ...]]:
    """The strongly connected components with more than one module (Tarjan), sorted."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    found: list[tuple[str, ...]] = []

    def visit(v: str) -> None:
        index[v] = low[v] = len(index)
        stack.append(v)
        for w in sorted(graph.get(v, ())):
            if w not in index:
                visit(w)
                low[v] = min(low[v], low[w])
            elif w in stack:
                low[v] = min(low[v], index[w])
        if low[v] == index[v]:
            component = []
            while True:
                w = stack.pop()
                component.append(w)
                if w == v:
                    break
            if len(component) > 1:
                found.append(tuple(sorted(component)))

    for v in sorted(graph):
        if v not in index:
            visit(v)
    return sorted(found)


def layer_of(module: str) -> str:
    """``lhvdbg.state.elf`` -> ``state``; ``lhvdbg.cli`` -> ``cli``."""
    parts = module.split(".")
    return parts[1] if len(parts) > 1 else parts[0]


def arrows_against_layers(graph: Mapping[str, set[str]]) -> list[str]:
    """Each import of a module its layer may not import, as ``a -> b``."""
    bad = []
    for module, targets in sorted(graph.items()):
        for target in sorted(targets):
            if module in BASE:
                if target != "lhvdbg.errors":
                    bad.append(f"{module} -> {target} (a base module imports at most errors)")
                continue
            if target in BASE:
                continue
            mine, theirs = layer_of(module), layer_of(target)
            if mine != theirs and theirs not in ALLOWED.get(mine, frozenset()):
                bad.append(f"{module} -> {target}")
    return bad


def foreign_owned_elsewhere(foreign: Mapping[str, set[str]]) -> list[str]:
    """Each import of rich/prompt_toolkit outside ui, pygdbmi/qemu outside machine."""
    return [
        f"{module} -> {package}"
        for module, packages in sorted(foreign.items())
        for package in sorted(packages)
        if package in OWNED and layer_of(module) != OWNED[package]
    ]


GRAPH, FOREIGN = read_graph(ROOT / "lhvdbg")


def test_the_reader_sees_the_package() -> None:
    assert len(GRAPH) > 100
    assert set(map(layer_of, GRAPH)) - BASE.union(ALLOWED) <= {"errors", "files", "signals"}
    assert "lhvdbg.x86.layout" in GRAPH["lhvdbg.x86.segments"]
    assert "lhvdbg.cli" in GRAPH["lhvdbg.__main__"]
    assert "rich" in FOREIGN["lhvdbg.ui.tables"]


def test_no_import_cycle() -> None:
    assert set(cycles(GRAPH)) <= KNOWN_CYCLES


def test_the_known_cycles_are_still_there() -> None:
    """An allowlisted cycle that is gone must leave the list (it only shrinks)."""
    assert set(cycles(GRAPH)) >= KNOWN_CYCLES


def test_no_arrow_against_the_layers() -> None:
    assert arrows_against_layers(GRAPH) == []


def _documented_arrows() -> dict[str, frozenset[str]]:
    """Layer -> the layers after ``->`` in the block at the top of docs/architecture.md."""
    text = (ROOT / "docs" / "architecture.md").read_text()
    block = text.split("```")[1]
    arrows: dict[str, frozenset[str]] = {}
    layer = ""
    for line in block.splitlines():
        named = re.match(r"^  (\w+)(?:/|\.py)\s", line)
        if named is not None:
            layer = named[1]
        if "->" in line and layer:
            targets = line.split("->")[1].replace("(the base only)", "")
            arrows[layer] = frozenset(t.strip() for t in targets.split(",") if t.strip())
    return arrows


def test_the_layer_table_is_the_architecture_page_s() -> None:
    assert _documented_arrows() == dict(ALLOWED)


def test_nothing_imports_cli() -> None:
    assert [m for m, targets in GRAPH.items() if "lhvdbg.cli" in targets] == ["lhvdbg.__main__"]


def test_rich_prompt_toolkit_only_in_ui_backends_only_in_machine() -> None:
    assert foreign_owned_elsewhere(FOREIGN) == []


def _module_rows() -> dict[str, str]:
    """Layer -> its row of the Modules table of docs/architecture.md."""
    rows = {}
    for line in (ROOT / "docs" / "architecture.md").read_text().splitlines():
        cells = [c.strip() for c in line.strip().strip("|").split("|")]
        if line.startswith("| ") and len(cells) == 2:
            rows[cells[0].strip("`")] = cells[1]
    return rows


def test_every_module_is_in_the_architecture_page() -> None:
    rows = _module_rows()
    missing = []
    for module in GRAPH:
        parts = module.split(".")[1:]
        if not parts or (
            len(parts) == 1 and module not in BASE | {"lhvdbg.cli", "lhvdbg.__main__"}
        ):
            continue  # the package and its layers' __init__
        if len(parts) == 1:
            row, wanted = ("base" if module in BASE else "entry"), f"`{parts[0]}.py`"
        elif len(parts) == 2 and not any(m.startswith(module + ".") for m in GRAPH):
            row, wanted = parts[0], f"`{parts[1]}.py`"
        else:
            row, wanted = parts[0], f"`{parts[1]}/`"
        if wanted not in rows.get(row, ""):
            missing.append(module)
    assert missing == []


# ---- the control: the reader on a made-up package --------------------------------------


def _write(top: Path, files: Mapping[str, str]) -> None:
    for name, text in files.items():
        path = top / name
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(text)


def test_the_checks_catch_hidden_cycles_and_upward_arrows(tmp_path: Path) -> None:
    top = tmp_path / "lhvdbg"
    _write(
        top,
        {
            "__init__.py": "",
            "errors.py": "",
            "x86/__init__.py": "",
            "x86/a.py": "def f():\n    from lhvdbg.x86 import b\n",
            "x86/b.py": "from . import a\n",
            "state/__init__.py": "",
            "state/s.py": (
                "from typing import TYPE_CHECKING\n"
                "if TYPE_CHECKING:\n    from lhvdbg.machine.m import M\n"
            ),
            "machine/__init__.py": "",
            "machine/m.py": "import lhvdbg.state.s\nimport rich.table\n",
            "ui/__init__.py": "",
            "ui/u.py": "from ..x86.a import f\nimport pygdbmi\n",
        },
    )
    graph, foreign = read_graph(top)
    assert graph["lhvdbg.x86.a"] == {"lhvdbg.x86.b"}
    assert graph["lhvdbg.ui.u"] == {"lhvdbg.x86.a"}
    assert cycles(graph) == [
        ("lhvdbg.machine.m", "lhvdbg.state.s"),
        ("lhvdbg.x86.a", "lhvdbg.x86.b"),
    ]
    assert arrows_against_layers(graph) == ["lhvdbg.state.s -> lhvdbg.machine.m"]
    assert foreign_owned_elsewhere(foreign) == [
        "lhvdbg.machine.m -> rich",
        "lhvdbg.ui.u -> pygdbmi",
    ]


@pytest.mark.parametrize(
    ("module", "target", "allowed"),
    [
        ("lhvdbg.x86.tss", "lhvdbg.state.snapshot", False),
        ("lhvdbg.state.elf", "lhvdbg.x86.layout", True),
        ("lhvdbg.diagnose.chain", "lhvdbg.machine.session", False),
        ("lhvdbg.machine.live", "lhvdbg.diagnose.events", False),
        ("lhvdbg.scenario.runner", "lhvdbg.commands.registry", False),
        ("lhvdbg.scenario.runner", "lhvdbg.ui.console", False),
        ("lhvdbg.ui.shell", "lhvdbg.commands.registry", False),
        ("lhvdbg.commands.show", "lhvdbg.ui.tables", True),
        ("lhvdbg.errors", "lhvdbg.x86.layout", False),
        ("lhvdbg.files", "lhvdbg.errors", True),
    ],
)
def test_the_layer_table(module: str, target: str, allowed: bool) -> None:
    assert (arrows_against_layers({module: {target}}) == []) is allowed

"""The drill product's shape (issue 19): no import circle in ``drills/`` or ``chaos/``, every
module importable on its own, the one subprocess harness out of the daemon's reach, and
benchmarks that never import ``tests``.

Imports are read with ``ast`` (function-level and ``TYPE_CHECKING`` ones count); ``from
autoheal.x import y`` names both ``autoheal.x`` and ``autoheal.x.y``, as in
``tests/test_layers.py``.
"""

from __future__ import annotations

import ast
import json
import subprocess
import sys
from pathlib import Path

import pytest

import autoheal

SRC = Path(autoheal.__file__).resolve().parent.parent
REPO = SRC.parent
OWN = ("autoheal.drills", "autoheal.chaos")
#: The layers below ``drills`` in DESIGN.md §1: none of them may import it.
BELOW = ("core", "store", "probes", "procs", "guard", "web", "daemon", "chaos", "demo", "config")


def _modules() -> dict[str, Path]:
    found = {}
    for path in (SRC / "autoheal").rglob("*.py"):
        parts = list(path.relative_to(SRC).with_suffix("").parts)
        if parts[-1] == "__init__":
            parts.pop()
        found[".".join(parts)] = path
    return found


def _imports(name: str, path: Path) -> set[str]:
    return _imports_in(
        name, path.read_text(encoding="utf-8"), is_package=path.name == "__init__.py"
    )


def _imports_in(name: str, text: str, *, is_package: bool = False) -> set[str]:
    package = name if is_package else name.rpartition(".")[0]
    out: set[str] = set()
    for node in ast.walk(ast.parse(text)):
        if isinstance(node, ast.Import):
            out |= {alias.name for alias in node.names}
        elif isinstance(node, ast.ImportFrom):
            if node.level:
                base = package.split(".")[: len(package.split(".")) - (node.level - 1)]
                module = ".".join([*base, node.module] if node.module else base)
            else:
                module = node.module or ""
            out.add(module)
            out |= {f"{module}.{alias.name}" for alias in node.names}
    return out


def _graph() -> dict[str, set[str]]:
    modules = _modules()
    return {
        name: {m for m in _imports(name, path) if m in modules and m != name}
        for name, path in modules.items()
    }


def _circles(graph: dict[str, set[str]], among: tuple[str, ...]) -> list[list[str]]:
    """Strongly connected components of more than one module, or a module importing itself."""
    nodes = {n for n in graph if n.startswith(among)}
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    found: list[list[str]] = []

    def visit(v: str) -> None:
        index[v] = low[v] = len(index)
        stack.append(v)
        for w in graph[v] & nodes:
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
                found.append(sorted(component))

    for v in sorted(nodes):
        if v not in index:
            visit(v)
    return found


def test_no_import_circle_in_drills_or_chaos() -> None:
    assert _circles(_graph(), OWN) == []


def test_the_circle_check_sees_one() -> None:
    graph = {"autoheal.drills.a": {"autoheal.drills.b"}, "autoheal.drills.b": {"autoheal.drills.a"}}
    assert _circles(graph, OWN) == [["autoheal.drills.a", "autoheal.drills.b"]]
    text = (
        "if TYPE_CHECKING:\n    from autoheal.drills.context import DrillContext\n"
        "def f():\n    from .stacks import harness\n"
    )
    found = _imports_in("autoheal.drills.x", text)
    assert {"autoheal.drills.context", "autoheal.drills.stacks.harness"} <= found


def test_nothing_below_drills_imports_it() -> None:
    graph = _graph()
    below = tuple(f"autoheal.{layer}" for layer in BELOW)
    offenders = sorted(
        f"{m} -> {i}"
        for m, deps in graph.items()
        if m.startswith(below)
        for i in deps
        if i == "autoheal.drills" or i.startswith("autoheal.drills.")
    )
    assert offenders == []


@pytest.mark.slow
def test_every_drills_and_chaos_module_imports_on_its_own() -> None:
    """In one interpreter, each module imported with no ``autoheal`` module loaded before it
    (third-party ones stay cached: only our own import order matters to a circle)."""
    names = sorted(n for n in _modules() if n.startswith(OWN))
    code = (
        "import importlib, json, sys, traceback\n"
        f"names = {names!r}\n"
        "failed = {}\n"
        "for name in names:\n"
        "    for loaded in [m for m in sys.modules if m.split('.')[0] == 'autoheal']:\n"
        "        del sys.modules[loaded]\n"
        "    try:\n"
        "        importlib.import_module(name)\n"
        "    except Exception:\n"
        "        failed[name] = traceback.format_exc(limit=3)\n"
        "print(json.dumps(failed))\n"
    )
    done = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, timeout=120, check=True
    )
    assert json.loads(done.stdout.strip().splitlines()[-1]) == {}
    assert len(names) > 30


def test_benchmarks_never_import_tests() -> None:
    offenders = []
    for path in sorted((REPO / "benchmarks").glob("*.py")):
        for module in _imports(f"benchmarks.{path.stem}", path):
            if module == "tests" or module.startswith("tests."):
                offenders.append(f"{path.name}: {module}")
    assert offenders == []

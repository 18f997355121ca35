"""Layering (DESIGN.md §1): the daemon never imports the fault injector; the CLI hands it in."""

from __future__ import annotations

import ast
from pathlib import Path

import autoheal.daemon


def _imported_modules(tree: ast.AST, package: str) -> list[str]:
    """Every module an ``import`` names in ``tree`` (function bodies, TYPE_CHECKING too)."""
    found: list[str] = []
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            found += [alias.name for alias in node.names]
        elif isinstance(node, ast.ImportFrom):
            if node.level:
                # ``from ..chaos import x`` inside autoheal.daemon: resolve against the package.
                base = package.split(".")[: len(package.split(".")) - (node.level - 1)]
                module = ".".join([*base, node.module] if node.module else base)
            else:
                module = node.module or ""
            found.append(module)
            # ``from autoheal import chaos`` names the package through the alias.
            found += [f"{module}.{alias.name}" for alias in node.names]
    return found


def test_daemon_does_not_import_chaos() -> None:
    daemon_dir = Path(autoheal.daemon.__file__).parent
    offenders = []
    for path in sorted(daemon_dir.rglob("*.py")):
        tree = ast.parse(path.read_text(), filename=str(path))
        for module in _imported_modules(tree, "autoheal.daemon"):
            if module == "autoheal.chaos" or module.startswith("autoheal.chaos."):
                offenders.append(f"{path.relative_to(daemon_dir)}: {module}")
    assert offenders == []


def test_import_scan_sees_function_level_and_relative_imports() -> None:
    tree = ast.parse(
        "def f():\n    from autoheal.chaos.blast import watch\n"
        "def g():\n    from ..chaos import proxy\n"
        "def h():\n    from autoheal import chaos\n"
    )
    found = _imported_modules(tree, "autoheal.daemon")
    assert "autoheal.chaos.blast" in found
    assert "autoheal.chaos.proxy" in found
    assert "autoheal.chaos" in found

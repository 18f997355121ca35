"""The core stays pure: no module under autoheal/core imports I/O, clocks or randomness."""

from __future__ import annotations

import ast
from pathlib import Path

import autoheal.core

FORBIDDEN = {
    "anyio", "asyncio", "psutil", "orjson", "os", "time", "random", "logging", "socket",
    "subprocess", "httpx", "watchfiles", "threading", "pathlib", "sqlite3", "signal",
}


def test_core_imports_only_pure_modules() -> None:
    core_dir = Path(autoheal.core.__file__).parent
    offenders = []
    for path in sorted(core_dir.glob("*.py")):
        tree = ast.parse(path.read_text(), filename=str(path))
        for node in ast.walk(tree):
            names: list[str] = []
            if isinstance(node, ast.Import):
                names = [a.name for a in node.names]
            elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
                names = [node.module]
            for name in names:
                top = name.split(".")[0]
                if top in FORBIDDEN or (top == "autoheal" and not name.startswith("autoheal.core")):
                    offenders.append(f"{path.name}: {name}")
    assert offenders == []

"""Layering (DESIGN.md §1): every area imports only what its row of the table allows (the
daemon never imports the fault injector: the CLI hands it in), and no import circle."""

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


# ------------------------------------------------------------------ the whole table

SRC = Path(autoheal.daemon.__file__).parent.parent

#: DESIGN.md §1, who may import whom (besides the standard library and third-party
#: packages, and besides itself). Function-level and TYPE_CHECKING imports count.
#: The three small leaf modules at the top: ``terminal`` (the one sanitiser: nothing),
#: ``logformat`` (log lines through it) and ``testing`` (the verified fakes). ``store``
#: is "the ground floor the others stand on": probes read heartbeats with its one safe
#: reader, procs write pidfiles with its atomic write; ``config`` validates ``[risk]``
#: with the guard's own light limits module. The exec probe waits for its command as
#: services are waited for (``procs.exits``: a pidfd, no watcher thread). The page
#: checks a scope an operator typed with the guard's own pure parser (``guard.scopes``),
#: the one that decides what the scope means to the trading processes.
MAY_IMPORT: dict[str, set[str]] = {
    "core": set(),
    "terminal": set(),
    "store": {"core", "terminal"},
    "probes": {"core", "store", "procs"},
    "procs": {"core", "store"},
    "config": {"core", "store", "guard"},
    "guard": {"core", "store"},
    "web": {"core", "store", "guard"},
    "logformat": {"terminal"},
    "testing": {"core", "procs"},
    # the demo's ccxt trader is a ccxt bot made safe by autoheal.ccxt.
    "demo": {"core", "store", "guard", "ccxt"},
    # a ccxt bot's exchange, guarded (issue 21): the guard's parts, never the daemon.
    "ccxt": {"core", "store", "guard"},
    "daemon": {
        "core",
        "store",
        "probes",
        "procs",
        "guard",
        "web",
        "config",
        "terminal",
        "logformat",
    },
    # chaos names the daemon's injector port types, for type checking only.
    "chaos": {"core", "store", "config", "procs", "probes", "daemon", "terminal"},
}
# drills: everything but the CLI; the CLI: everything.
MAY_IMPORT["drills"] = set(MAY_IMPORT)
MAY_IMPORT["cli"] = MAY_IMPORT["drills"] | {"drills"}
# sim: the whole daemon under simulation (issue 20), with the verified fakes; procs only
# for the fake process control's own types; probes for the HTTP probe its simulated
# exchange answers; cli for the operator's own ``autoheal fleet halt/run`` (the
# simulated operator types CLI commands). Nothing imports sim (see below).
MAY_IMPORT["sim"] = {
    "core",
    "store",
    "daemon",
    "guard",
    "testing",
    "config",
    "procs",
    "probes",
    "cli",
}


def _area(module: str) -> str | None:
    """``autoheal.daemon.loop`` → ``daemon``; None for ``autoheal`` itself or foreign."""
    parts = module.split(".")
    if parts[0] != "autoheal" or len(parts) < 2:
        return None
    return parts[1]


def _modules() -> dict[str, Path]:
    out = {}
    for path in sorted(SRC.rglob("*.py")):
        rel = path.relative_to(SRC.parent).with_suffix("")
        parts = list(rel.parts)
        if parts[-1] == "__init__":
            parts.pop()
        out[".".join(parts)] = path
    return out


def _edges() -> dict[str, set[str]]:
    """Module → the autoheal modules it imports (the longest known name of each import)."""
    modules = _modules()
    graph: dict[str, set[str]] = {}
    for name, path in modules.items():
        package = name if path.name == "__init__.py" else name.rpartition(".")[0]
        tree = ast.parse(path.read_text(), filename=str(path))
        deps = set()
        for imported in _imported_modules(tree, package):
            parts = imported.split(".")
            for i in range(len(parts), 0, -1):
                candidate = ".".join(parts[:i])
                if candidate in modules:
                    deps.add(candidate)
                    break
        # Importing a module imports its parent packages first anyway: not an edge.
        graph[name] = {d for d in deps if d != name and not name.startswith(d + ".")}
    return graph


def test_every_module_imports_only_what_its_layer_may() -> None:
    offenders = []
    for module, deps in _edges().items():
        area = _area(module)
        if area in (None, "__main__"):
            continue
        assert area in MAY_IMPORT, f"{module}: a new top-level area; add it to MAY_IMPORT"
        for dep in deps:
            other = _area(dep)
            if other is not None and other != area and other not in MAY_IMPORT[area]:
                offenders.append(f"{module} -> {dep}")
    assert offenders == []


def test_nothing_imports_cli_but_main_and_nothing_imports_drills_but_cli() -> None:
    offenders = []
    for module, deps in _edges().items():
        area = _area(module)
        for dep in deps:
            other = _area(dep)
            if other == "cli" and area not in ("cli", "__main__", "sim"):
                offenders.append(f"{module} -> {dep}")
            if other == "drills" and area not in ("drills", "cli"):
                offenders.append(f"{module} -> {dep}")
    assert offenders == []


def test_nothing_imports_sim_but_sim() -> None:
    edges = _edges()
    assert any(_area(m) == "sim" for m in edges), "the sim area is scanned"
    offenders = [
        f"{module} -> {dep}"
        for module, deps in edges.items()
        for dep in deps
        if _area(dep) == "sim" and _area(module) != "sim"
    ]
    assert offenders == []


def _circles(graph: dict[str, set[str]]) -> list[list[str]]:
    """Strongly connected components of more than one module (iterative Tarjan)."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    on_stack: set[str] = set()
    stack: list[str] = []
    found: list[list[str]] = []
    for root in sorted(graph):
        if root in index:
            continue
        work = [(root, iter(sorted(graph[root])))]
        index[root] = low[root] = len(index)
        stack.append(root)
        on_stack.add(root)
        while work:
            node, children = work[-1]
            child = next(children, None)
            if child is not None:
                if child not in index:
                    index[child] = low[child] = len(index)
                    stack.append(child)
                    on_stack.add(child)
                    work.append((child, iter(sorted(graph.get(child, ())))))
                elif child in on_stack:
                    low[node] = min(low[node], index[child])
                continue
            work.pop()
            if work:
                low[work[-1][0]] = min(low[work[-1][0]], low[node])
            if low[node] == index[node]:
                component = []
                while True:
                    member = stack.pop()
                    on_stack.discard(member)
                    component.append(member)
                    if member == node:
                        break
                if len(component) > 1:
                    found.append(sorted(component))
    return found


def test_no_import_circle_anywhere() -> None:
    assert _circles(_edges()) == []


def test_circle_check_finds_a_circle() -> None:
    assert _circles({"a": {"b"}, "b": {"c"}, "c": {"a"}, "d": {"a"}}) == [["a", "b", "c"]]

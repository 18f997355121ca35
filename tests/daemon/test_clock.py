"""One clock (DESIGN.md §1): no call in the daemon reads, sleeps or times out on another.

Every reading of time, sleep, timeout and deadline of :mod:`autoheal.daemon` goes
through its injected clock (``autoheal.daemon.clock``), so the real daemon runs on
virtual time (``tests/daemon/test_virtual_time.py``). A default argument
naming ``time.monotonic`` (for a caller outside the daemon) is not a call, and is fine.
"""

from __future__ import annotations

import ast
from pathlib import Path

import autoheal.daemon

#: Calls that read or wait on a clock other than the injected one.
FORBIDDEN = {
    ("anyio", "sleep"),
    ("anyio", "sleep_until"),
    ("anyio", "sleep_forever"),
    ("anyio", "move_on_after"),
    ("anyio", "fail_after"),
    ("anyio", "current_time"),
    ("time", "monotonic"),
    ("time", "monotonic_ns"),
    ("time", "perf_counter"),
    ("time", "sleep"),
    ("time", "time"),
}


def offending_calls(source: str) -> list[str]:
    """``module.name(...)`` calls of :data:`FORBIDDEN`, and imports of those names."""
    found = []
    for node in ast.walk(ast.parse(source)):
        if (
            isinstance(node, ast.Call)
            and isinstance(node.func, ast.Attribute)
            and isinstance(node.func.value, ast.Name)
            and (node.func.value.id, node.func.attr) in FORBIDDEN
        ):
            found.append(f"{node.lineno}: {node.func.value.id}.{node.func.attr}()")
        elif isinstance(node, ast.ImportFrom) and node.module in ("anyio", "time"):
            found += [
                f"{node.lineno}: from {node.module} import {alias.name}"
                for alias in node.names
                if (node.module, alias.name) in FORBIDDEN
            ]
    return sorted(found, key=lambda where: int(where.split(":")[0]))


def test_daemon_reads_and_sleeps_on_its_one_clock() -> None:
    daemon_dir = Path(autoheal.daemon.__file__).parent
    offenders = [
        f"{path.name}:{where}"
        for path in sorted(daemon_dir.rglob("*.py"))
        if path.name != "clock.py"
        for where in offending_calls(path.read_text())
    ]
    assert offenders == []


def test_clock_scan_sees_calls_and_imports_not_default_arguments() -> None:
    source = (
        "import anyio, time\n"
        "from anyio import sleep\n"
        "def f(clock=time.monotonic):\n"
        "    anyio.sleep(1)\n"
        "    with anyio.move_on_after(2): pass\n"
        "    return time.time()\n"
    )
    assert offending_calls(source) == [
        "2: from anyio import sleep",
        "4: anyio.sleep()",
        "5: anyio.move_on_after()",
        "6: time.time()",
    ]

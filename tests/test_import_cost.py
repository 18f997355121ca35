"""What ``autoheal status`` and ``autoheal check-config`` import: the lazy imports stay lazy.

No timing here (``benchmarks/cli_startup.py`` measures the start-up): each test runs a
fresh interpreter and asserts that modules the command does not need are absent from
``sys.modules`` afterwards. ``tests/cli/test_status.py`` checks ``autoheal.cli.status`` alone.
"""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

import autoheal.guard
import autoheal.guard.risk
import autoheal.guard.risk_limits

REPO = Path(__file__).resolve().parent.parent
DEMO_CONFIG = REPO / "config" / "autoheal.toml"

#: Made lazy for start-up: the order check (with logging and the guard's state files)
#: behind ``[risk]``, the email package behind guard.classify, socket behind ``[fleet]``.
LAZY = {"autoheal.guard.risk", "logging", "email", "email.utils", "socket"}
#: Never needed to read a config or the runtime files.
HEAVY = {
    "anyio",
    "httpx",
    "psutil",
    "prometheus_client",
    "redis",
    "watchfiles",
    "websockets",
    "autoheal.daemon",
    "autoheal.probes",
    "autoheal.chaos",
}


def _loaded_after(code: str) -> dict[str, Any]:
    """Run ``code`` in a fresh interpreter; it prints one JSON object as its last line."""
    done = subprocess.run(
        [sys.executable, "-c", code],
        cwd=REPO,
        capture_output=True,
        text=True,
        timeout=60,
        check=True,
    )
    result: dict[str, Any] = json.loads(done.stdout.strip().splitlines()[-1])
    return result


def test_loading_the_demo_config_validates_risk_without_the_heavy_modules() -> None:
    code = (
        "import json, sys\n"
        "from autoheal.config import load_config\n"
        f"cfg = load_config({str(DEMO_CONFIG)!r})\n"
        "print(json.dumps({'risk': cfg.risk is not None, 'modules': sorted(sys.modules)}))\n"
    )
    result = _loaded_after(code)
    assert result["risk"] is True  # the demo config has [risk], so it was validated
    loaded = set(result["modules"])
    assert "autoheal.guard.risk_limits" in loaded
    assert sorted((LAZY | HEAVY) & loaded) == []


@pytest.mark.parametrize("command", ["status", "check-config"])
def test_cli_command_on_the_demo_config_imports_no_heavy_modules(command: str) -> None:
    code = (
        "import contextlib, io, json, sys\n"
        "from autoheal.cli import main\n"
        "with contextlib.redirect_stdout(io.StringIO()), "
        "contextlib.redirect_stderr(io.StringIO()):\n"
        f"    code = main([{command!r}, '--config', {str(DEMO_CONFIG)!r}])\n"
        "print(json.dumps({'code': code, 'modules': sorted(sys.modules)}))\n"
    )
    result = _loaded_after(code)
    # check-config passes; status exits 0 or 1 (no daemon, or a stale one, is fine here).
    assert result["code"] in ((0,) if command == "check-config" else (0, 1))
    loaded = set(result["modules"])
    assert sorted((LAZY | HEAVY) & loaded) == []


def test_risk_names_are_the_same_objects_wherever_they_are_imported_from() -> None:
    for name in autoheal.guard.risk_limits.__all__:
        assert getattr(autoheal.guard.risk, name) is getattr(autoheal.guard.risk_limits, name)
        assert name in autoheal.guard.risk.__all__
    for name in ("RiskConfigError", "RiskLimits", "parse_limits"):
        assert getattr(autoheal.guard, name) is getattr(autoheal.guard.risk, name)

"""``autoheal check`` shows how failures are judged (issue 23): windows, exit-code rules,
debug variables by name only; and the verdict needs K failed checks of a dependency
judged K of N."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

from autoheal.cli.check import DEPENDENCY, Fact, KillSwitchFact, verdict
from autoheal.config import load_config
from autoheal.daemon.wiring import build_policy

pytestmark = [pytest.mark.timeout(60)]

CONFIG = """\
environment = "paper"
[paths]
runtime_dir = "rt"
[services.feeder]
argv = ["{python}", "-c", "pass"]
depends_on = ["ex"]
failsafe_exit_codes = [78]
restart_exit_codes = [0]
debug_environment = { LOG_LEVEL = "DEBUG-value" }
[[services.feeder.probes]]
kind = "heartbeat"
max_age = "5s"
failures = 2
within = 4
[dependencies.ex]
[[dependencies.ex.probes]]
kind = "http"
url = "http://127.0.0.1:1/"
failures = 3
within = 5
"""


def _check(tmp_path: Path, *extra: str) -> subprocess.CompletedProcess[str]:
    (tmp_path / "autoheal.toml").write_text(CONFIG)
    config = str(tmp_path / "autoheal.toml")
    return subprocess.run(
        [sys.executable, "-m", "autoheal", "check", "--config", config, *extra],
        capture_output=True,
        text=True,
        timeout=30,
        check=False,
    )


def test_check_shows_the_rules_in_text_and_json(tmp_path: Path) -> None:
    text = _check(tmp_path).stdout
    assert (
        "  feeder: heartbeat 2 failures within 4 checks; failsafe_exit_codes 78; "
        "restart_exit_codes 0; debug_environment on retry AUTOHEAL_DEBUG_INVOCATION,LOG_LEVEL"
    ) in text
    assert "  ex: http 3 failures within 5 checks" in text
    assert "DEBUG-value" not in text
    doc = json.loads(_check(tmp_path, "--json").stdout)
    assert doc["judging"] == {
        "feeder": {
            "windows": {"heartbeat": {"failures": 2, "within": 4}},
            "failsafe_exit_codes": [78],
            "restart_exit_codes": [0],
            "debug_environment": ["AUTOHEAL_DEBUG_INVOCATION", "LOG_LEVEL"],
        },
        "ex": {"windows": {"http": {"failures": 3, "within": 5}}},
    }
    # the http probe to port 1 fails: with 3 failures fed, the dependency is DEGRADED
    assert doc["degraded"] == ["ex"]


def test_the_verdict_feeds_a_dependency_its_k_failures(tmp_path: Path) -> None:
    (tmp_path / "autoheal.toml").write_text(CONFIG)
    policy = build_policy(load_config(tmp_path / "autoheal.toml"))
    fact = Fact("ex", DEPENDENCY, "http", False, None, None, "CONN_REFUSED")
    assert verdict(policy, [fact], KillSwitchFact(False)).degraded == ("ex",)

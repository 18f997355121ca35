"""Prometheus's own tools judge what autoheal gives Prometheus (issue 11, part 5).

``promtool check metrics`` on a real daemon's ``/metrics``; ``promtool check rules``
and ``promtool test rules`` on the shipped alerting rules. promtool comes from the
Debian package ``prometheus`` (installed by ``.ci/run``).
"""

from __future__ import annotations

import subprocess
from pathlib import Path

import httpx
import pytest

from autoheal.drills.stacks.simple import Runtime, read_doc, wait_for
from tests.sysdeps import require_binary

REPO = Path(__file__).resolve().parents[2]
RULES = REPO / "config" / "prometheus" / "autoheal.rules.yml"
RULE_TESTS = REPO / "tests" / "web" / "prometheus" / "autoheal.rules.test.yml"


def promtool(*args: str, stdin: bytes | None = None) -> subprocess.CompletedProcess[bytes]:
    return subprocess.run(
        [require_binary("promtool", "prometheus"), *args],
        input=stdin,
        capture_output=True,
        timeout=60,
        check=False,
    )


def test_shipped_rules_pass_promtool_check_rules() -> None:
    result = promtool("check", "rules", str(RULES))
    assert result.returncode == 0, result.stdout.decode() + result.stderr.decode()
    assert b"SUCCESS: 5 rules found" in result.stdout


def test_shipped_rules_pass_their_promtool_unit_tests() -> None:
    result = promtool("test", "rules", str(RULE_TESTS))
    assert result.returncode == 0, result.stdout.decode() + result.stderr.decode()


def test_rule_unit_tests_can_fail(tmp_path: Path) -> None:
    """A changed threshold is caught: the unit tests are not vacuous."""
    broken = RULES.read_text().replace("> 3", "> 30")
    assert broken != RULES.read_text()
    (tmp_path / "autoheal.rules.yml").write_text(broken)
    tests = tmp_path / "autoheal.rules.test.yml"
    tests.write_text(
        RULE_TESTS.read_text().replace(
            "../../../config/prometheus/autoheal.rules.yml", "autoheal.rules.yml"
        )
    )
    result = promtool("test", "rules", str(tests))
    assert result.returncode != 0
    assert b"AutohealRestartRateHigh" in result.stdout + result.stderr


@pytest.mark.slow
@pytest.mark.timeout(60)
def test_a_real_daemons_metrics_pass_promtool_check_metrics(tmp_path: Path) -> None:
    require_binary("promtool", "prometheus")
    with Runtime(tmp_path, status_listen=True) as rt:
        rt.start_daemon()
        endpoint = wait_for(
            lambda: read_doc(rt.runtime_dir / "status_endpoint.json"), 10, "status endpoint"
        )
        body = httpx.get(f"http://127.0.0.1:{endpoint['port']}/metrics", timeout=10).content
    assert b"autoheal_failsafe_active" in body
    assert b"autoheal_kill_switch_write_failing" in body
    result = promtool("check", "metrics", stdin=body)
    assert result.returncode == 0, result.stdout.decode() + result.stderr.decode()

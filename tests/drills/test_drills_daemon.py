"""The daemon-backed drills through ``run_drills``: a real ``autoheal run --chaos``, a real
fake exchange behind a real fault proxy, faults through the command queue.

The mutation checks run the same scenario files against a deliberately broken setup,
changed as data (``params.policy_overrides``, ``params.trader_args``), and must see
FAILED with the violated criterion named.
"""

from __future__ import annotations

import json
import sys
from pathlib import Path

import pytest

from autoheal.config import load_config
from autoheal.drills import Status, run_drills
from autoheal.drills.catalog import SCENARIO_DIR, load_catalog
from autoheal.drills.plan import scaled_policy
from autoheal.drills.stacks.demo import render_config

DAEMON_DRILLS = {"kill_feeder", "feeder_cannot_start", "network_cut", "rest_latency",
                 "hung_trader"}


def mutated(tmp_path: Path, base: str, new_name: str, old: str, new: str) -> Path:
    """A scenario directory with a copy of ``base`` where ``old`` became ``new``."""
    directory = tmp_path / "scenarios"
    directory.mkdir(exist_ok=True)
    text = (SCENARIO_DIR / f"{base}.toml").read_text()
    assert old in text
    text = text.replace(f'name = "{base}"', f'name = "{new_name}"').replace(old, new)
    (directory / f"{new_name}.toml").write_text(text)
    return directory


def test_daemon_drills_are_in_the_default_set() -> None:
    catalog = load_catalog()
    for name in DAEMON_DRILLS:
        assert catalog[name].kind == "daemon"
        assert catalog[name].default, name


def test_scaled_policy_scales_durations_not_counts() -> None:
    policy = scaled_policy(0.05, {"max_restarts": 50})
    assert policy["restart_backoff"] == ["0.75s", "1.5s", "3s", "6s", "15s"]
    assert policy["verify_window"] == "4.5s"
    assert policy["stable_reset"] == "30s"
    assert policy["verify_min_uptime"] == "0.1s"
    assert policy["failures_before_restart"] == 2
    assert policy["max_restarts"] == 50


def test_render_config_routes_everything_through_the_proxy(tmp_path: Path) -> None:
    control = tmp_path / "proxy" / "exchange_proxy.control"
    cfg = render_config(
        SCENARIO_DIR / "daemon_demo.toml.in", tmp_path / "drill.toml", proxy_port=45678,
        proxy_control=control, policy=scaled_policy(0.05), feeder_args=["--fail-on-start"],
        trader_args=["--no-gate"],
        variables={"rest_timeout": "250ms", "feeder_stop_signal": "SIGTERM",
                   "ws_max_age": "3s"})
    loaded = load_config(cfg)
    feeder, trader = loaded.services["feeder"], loaded.services["trader"]
    assert "http://127.0.0.1:45678" in feeder.argv and feeder.argv[-1] == "--fail-on-start"
    assert "http://127.0.0.1:45678" in trader.argv and trader.argv[-1] == "--no-gate"
    assert feeder.argv[0] == sys.executable
    (probe,) = loaded.dependencies["exchange_rest"].probes
    assert probe.url == "http://127.0.0.1:45678/api/ping" and probe.timeout == 0.25
    assert loaded.chaos.proxies == {"exchange_rest": control}
    ws = next(p for p in feeder.probes if p.kind == "ws_freshness")
    assert ws.max_age == 3.0
    assert loaded.policy.restart_backoff[:2] == (0.75, 1.5)
    assert loaded.policy.max_restarts == 3
    assert loaded.environment == "paper"


@pytest.mark.slow
@pytest.mark.timeout(120)
def test_kill_feeder_and_feeder_cannot_start_pass_with_measured_times(tmp_path: Path) -> None:
    report = run_drills(["kill_feeder", "feeder_cannot_start"], work_dir=tmp_path / "w",
                        runtime_dir=tmp_path / "rt", progress=lambda _: None)
    for result in report.results:
        assert result.status is Status.PASSED, (result.name, result.failed_criteria,
                                                result.details.get("error"))
    (json_file,) = (tmp_path / "rt" / "drills").glob("*.json")
    doc = json.loads(json_file.read_text())
    by_name = {d["name"]: d for d in doc["drills"]}
    for name in ("kill_feeder", "feeder_cannot_start"):
        drill = by_name[name]
        assert isinstance(drill["time_to_detect_s"], float)
        assert isinstance(drill["time_to_recover_s"], float)
        assert drill["details"]["time_scale"] == "1/20"
        assert "stop_daemon" in drill["details"]["rollback"]
        assert drill["details"]["daemon_exit"] == 0
    # SIGKILL is seen at once (pidfd): detection well inside the scaled 15 s.
    assert by_name["kill_feeder"]["time_to_detect_s"] < 1.0
    assert by_name["kill_feeder"]["details"]["chaos_result"]["fault"] == "kill"
    held = {c["name"] for c in by_name["feeder_cannot_start"]["criteria"] if c["held"]}
    assert {"event:failsafe", "stop_file_written", "flags_mode_signal_read_only",
            "failsafe_notification_sent", "zero_new_orders_after_failsafe"} <= held


@pytest.mark.slow
@pytest.mark.timeout(120)
def test_mutation_failsafe_out_of_reach_fails_naming_the_failsafe(tmp_path: Path) -> None:
    scenarios = mutated(tmp_path, "feeder_cannot_start", "feeder_cannot_start_50",
                        "policy_overrides = {}", "policy_overrides = { max_restarts = 50 }")
    report = run_drills(["feeder_cannot_start_50"], work_dir=tmp_path / "w",
                        scenario_dirs=[scenarios], progress=lambda _: None)
    (result,) = report.results
    assert result.status is Status.FAILED, result.details.get("error")
    violated = {c.name: c.observed for c in result.failed_criteria}
    assert violated["event:failsafe"] == "never observed"
    assert {"stop_file_written", "flags_failsafe_active"} <= set(violated)
    assert result.time_to_recover_s is None
    assert not report.passed


@pytest.mark.slow
@pytest.mark.timeout(120)
def test_mutation_trader_gate_disabled_fails_naming_zero_new_orders(tmp_path: Path) -> None:
    scenarios = mutated(tmp_path, "feeder_cannot_start", "feeder_cannot_start_no_gate",
                        "trader_args = []", 'trader_args = ["--no-gate"]')
    report = run_drills(["feeder_cannot_start_no_gate"], work_dir=tmp_path / "w",
                        scenario_dirs=[scenarios], progress=lambda _: None)
    (result,) = report.results
    assert result.status is Status.FAILED, result.details.get("error")
    violated = {c.name: c.observed for c in result.failed_criteria}
    # The failsafe itself still works; only the trader ignores it.
    assert set(violated) == {"zero_new_orders_after_failsafe"}
    assert int(violated["zero_new_orders_after_failsafe"]) > 0

"""The drill runner and the daemon-independent drills, run for real through ``run_drills``."""

from __future__ import annotations

import json
import re
from pathlib import Path

import pytest

from autoheal.cli.drill import drill_command
from autoheal.drills import ScenarioError, Status, parse_scenario, run_drills
from autoheal.drills.catalog import SCENARIO_DIR, load_catalog
from autoheal.drills.evaluate import evaluate
from autoheal.drills.steps.daemon import watches_fired

# The drills that need no daemon: run here in full. The daemon-backed ones are in
# test_drills_daemon.py, and .ci/run runs the whole default set with `autoheal drill run`.
GUARD_SET = {"duplicate_signals", "sell_without_position", "breaker_trip", "state_bus_corrupt",
             "exchange_outage", *(f"live_gating_{c}" for c in "abcdefg")}
DAEMON_SET = {"kill_feeder", "feeder_cannot_start", "network_cut", "rest_latency", "hung_trader"}
DEADMAN_SET = {"host_dies_with_resting_orders", "stop_file_cancels_resting_orders",
               "unknown_outcome_never_resent"}  # test_drill_deadman.py, test_drill_orders.py
#: The ccxt drills (issue 21): each venue's dialect, driven by ccxt's own class.
CCXT_SET = {
    f"ccxt_{drill}_{venue}"
    for drill in (
        "host_dies_with_resting_orders",
        "stop_cancels_only_own_orders",
        "unknown_outcome_never_resent",
    )
    for venue in ("binance", "okx")
}
#: The freqtrade drills (issue 22): a real dry-run bot under the daemon, the recipe.
FREQTRADE_SET = {"freqtrade_killed", "freqtrade_hung", "freqtrade_stop_file",
                 "freqtrade_degraded"}  # test_drill_freqtrade.py
#: The judging drills (issue 23): a small stack of their own (test_drill_judging.py).
JUDGING_SET = {"flapping_probe", "config_error_exit"}
#: The feed drills (issue 23): a small feeder-only daemon stack (test_drill_feed.py).
FEED_SET = {"feed_frozen", "feed_sequence_gap"}
#: The exec, tcp and resource probe drills (issue 23): test_drills_system_probes.py.
SYSTEM_PROBE_SET = {"memory_leak", "exec_probe", "tcp_probe"}
#: The reconciliation drill (issue 24): test_drill_reconcile.py.
RECONCILE_SET = {"reconcile_unknown_order"}
#: The loss-limit drills (issue 24): test_drill_loss.py.
LOSS_SET = {"phantom_loss_read", "drawdown_from_peak", "daily_loss_survives_restart"}
#: The trading controls' drills (issue 24): test_drill_scoped_kill.py, ...
CONTROLS_SET = {"scoped_kill_symbol"}
#: The execution-throttle drill (issue 24): test_drill_throttle.py.
THROTTLE_SET = {"repeated_execution_throttle"}
#: Collars per order and over a window, message limits (issue 24): test_drill_limits.py.
LIMITS_SET = {"execution_limits"}
DEFAULT_SET = (GUARD_SET | DAEMON_SET | DEADMAN_SET | CCXT_SET | FREQTRADE_SET | JUDGING_SET
               | FEED_SET | SYSTEM_PROBE_SET | LOSS_SET | CONTROLS_SET
               | RECONCILE_SET | THROTTLE_SET | LIMITS_SET)
RECOVERING = {"breaker_trip", "state_bus_corrupt", "exchange_outage"}
PROGRESS = re.compile(r"^\[\d+/\d+\] \w+ \.\.\. (PASSED|FAILED|ABORTED|ERROR) "
                      r"\(detect (-|\d+\.\d\ds), recover (-|\d+\.\d\ds)\)")


def mutated(tmp_path: Path, base: str, new_name: str, *replacements: tuple[str, str]) -> Path:
    """A scenario directory holding a copy of ``base`` with text replaced (data, not code)."""
    directory = tmp_path / "scenarios"
    directory.mkdir(exist_ok=True)
    text = (SCENARIO_DIR / f"{base}.toml").read_text()
    text = text.replace(f'name = "{base}"', f'name = "{new_name}"')
    for old, new in replacements:
        assert old in text
        text = text.replace(old, new)
    (directory / f"{new_name}.toml").write_text(text)
    return directory


@pytest.mark.slow
def test_drills_guard_set_passes_with_measured_times(tmp_path: Path) -> None:
    lines: list[str] = []
    report = run_drills(sorted(GUARD_SET), work_dir=tmp_path / "work", fmt="text",
                        progress=lines.append, runtime_dir=tmp_path / "rt")
    assert {r.name for r in report.results} == GUARD_SET
    failed = {r.name: [c for c in r.failed_criteria] or r.details.get("error") or r.violations
              for r in report.results if r.status is not Status.PASSED}
    assert failed == {}
    assert report.passed and report.duration_s < 20
    progress, text = lines[:-1], lines[-1]
    assert len(progress) == len(GUARD_SET) and all(PROGRESS.match(p) for p in progress)
    assert "Passed:                  12 ✓" in text and "Time scale 1/100" in text
    (json_file,) = (tmp_path / "rt" / "drills").glob("*.json")
    doc = json.loads(json_file.read_text())
    assert doc["passed"] is True and doc["counts"]["PASSED"] == 12
    for drill in doc["drills"]:
        assert drill["status"] == "PASSED"
        assert isinstance(drill["time_to_detect_s"], float), drill["name"]
        if drill["name"] in RECOVERING:
            assert isinstance(drill["time_to_recover_s"], float), drill["name"]
        assert drill["criteria"] and all(c["held"] for c in drill["criteria"])
    by_name = {d["name"]: d for d in doc["drills"]}
    assert by_name["breaker_trip"]["gates_fired"] == ["outage_circuit_breaker_active"]
    assert by_name["sell_without_position"]["gates_fired"] == ["SKIP_NO_POSITION"]
    assert by_name["live_gating_a"]["details"]["effective_mode"] == "live_dry_run"
    # The breaker's 120 s cooldown at 1/100 is 1.2 s: recovery is measured, not assumed.
    assert by_name["breaker_trip"]["time_to_recover_s"] > 1.1  # never before the cooldown


@pytest.mark.slow
def test_drills_mutation_idempotency_disabled_fails(tmp_path: Path) -> None:
    scenarios = mutated(tmp_path, "duplicate_signals", "duplicates_no_ledger",
                        ("ttl_s = 120.0", "ttl_s = 0.0"))
    report = run_drills(["duplicates_no_ledger"], work_dir=tmp_path / "w",
                        scenario_dirs=[scenarios], progress=lambda _: None)
    (result,) = report.results
    assert result.status is Status.FAILED
    violated = {c.name: c.observed for c in result.failed_criteria}
    assert violated == {"order_requests_at_exchange": "10", "duplicates_blocked": "0"}
    assert not report.passed


@pytest.mark.slow
def test_drills_mutation_unreachable_breaker_threshold_fails(tmp_path: Path) -> None:
    scenarios = mutated(tmp_path, "breaker_trip", "breaker_never_trips",
                        ("window_failures = 3", "window_failures = 1000"),
                        ("failure_threshold = 5", "failure_threshold = 1000"))
    report = run_drills(["breaker_never_trips"], work_dir=tmp_path / "w",
                        scenario_dirs=[scenarios], progress=lambda _: None)
    (result,) = report.results
    assert result.status is Status.FAILED
    violated = {c.name for c in result.failed_criteria}
    assert {"event:breaker_open", "orders_while_open", "still_open_after_signals"} <= violated


def test_drills_unknown_kind_is_error(tmp_path: Path) -> None:
    (tmp_path / "odd.toml").write_text('name = "odd"\nkind = "no_such_kind"\n')
    lines: list[str] = []
    report = run_drills(["odd"], work_dir=tmp_path / "w", scenario_dirs=[tmp_path],
                        progress=lines.append)
    (result,) = report.results
    assert result.status is Status.ERROR
    assert "unknown kind 'no_such_kind'" in result.details["error"]
    assert lines[0].startswith("[1/1] odd ... ERROR")


@pytest.mark.slow
def test_drills_daemon_hung_trader(tmp_path: Path) -> None:
    """The daemon-backed kind against the real `autoheal run --chaos` (SIGSTOP through chaos)."""
    report = run_drills(["hung_trader"], work_dir=tmp_path,
                        progress=lambda _: None)
    for result in report.results:
        assert result.status is Status.PASSED, (result.name, result.failed_criteria,
                                                result.details.get("error"))
        assert result.time_to_detect_s is not None and result.time_to_recover_s is not None
        assert "stop_daemon" in result.details["rollback"]


def test_drill_command_refuses_live_target(tmp_path: Path, capsys: pytest.CaptureFixture[str]
                                           ) -> None:
    cfg = tmp_path / "live.toml"
    cfg.write_text('environment = "live"\n')
    code = drill_command("run", [], target=str(cfg), fmt="text", report=None,
                         runtime_dir=tmp_path / "rt")
    assert code == 3
    assert "live" in capsys.readouterr().err
    assert not (tmp_path / "rt").exists()


def test_drill_command_list_and_unknown_name(tmp_path: Path,
                                             capsys: pytest.CaptureFixture[str]) -> None:
    assert drill_command("list", [], target=None, fmt="text", report=None, runtime_dir=None) == 0
    listed = capsys.readouterr().out
    assert "exchange_outage" in listed and "kill_feeder" in listed
    code = drill_command("run", ["no_such_drill"], target=None, fmt="text", report=None,
                         runtime_dir=tmp_path)
    assert code == 2
    assert "unknown drill 'no_such_drill'" in capsys.readouterr().err


def test_drill_command_runs_gating_drill_with_json_report(
        tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    extra = tmp_path / "report.json"
    code = drill_command("run", ["live_gating_c"], target=None, fmt="json", report=str(extra),
                         runtime_dir=tmp_path / "rt")
    out = capsys.readouterr()
    assert code == 0
    doc = json.loads(out.out)
    assert doc["drills"][0]["details"]["reason"] == "live_dry_run_mode=True"
    assert "[1/1] live_gating_c ... PASSED" in out.err
    assert json.loads(extra.read_text())["passed"] is True
    assert len(list((tmp_path / "rt" / "drills").glob("*.json"))) == 1


def test_scenarios_shipped_parse_and_names_match_files() -> None:
    catalog = load_catalog()
    assert set(catalog) >= DEFAULT_SET
    assert {s.name for s in catalog.values() if s.default} == DEFAULT_SET


def test_scenario_parse_rejects_bad_op_naming_the_key() -> None:
    doc = {"name": "x", "kind": "live_gating",
           "criteria": [{"name": "c", "op": "~=", "expected": 1}]}
    with pytest.raises(ScenarioError, match=r"x.toml: criteria\[0\]: op"):
        parse_scenario(doc, source="x.toml")


def test_evaluate_deadlines_and_thresholds() -> None:
    scenario = parse_scenario({
        "name": "x", "kind": "k", "time_scale": 0.01,
        "expect": [{"event": "open", "within_s": 60, "detect": True},
                   {"event": "closed", "within_s": 100, "recover": True}],
        "criteria": [{"name": "orders", "op": "==", "expected": 0},
                     {"name": "log", "op": "contains", "expected": ["a b", "c"]}]})
    criteria, detect, recover = evaluate(
        scenario, {"orders": 1, "log": ["x a b y", "c"]}, {"open": 0.5, "closed": 1.3})
    held = {c.name: c.held for c in criteria}
    assert held == {"event:open": True, "event:closed": False, "orders": False, "log": True}
    assert (detect, recover) == (0.5, 1.3)


def test_daemon_watch_predicates_on_health_document() -> None:
    health = {"dor": False, "failing_components": ["exchange_rest", "feeder"],
              "components": {"feeder": {"restarts": 0, "stage": "OBSERVE"}}}
    watches = [{"event": "detected", "path": "failing_components", "op": "contains",
                "value": "feeder"},
               {"event": "restarted", "path": "components.feeder.restarts", "op": ">=",
                "value": 1},
               {"event": "missing", "path": "components.trader.stage", "value": "OBSERVE"}]
    assert watches_fired(health, watches) == ["detected"]

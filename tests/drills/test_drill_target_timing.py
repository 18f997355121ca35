"""Against a target, a drill judges by the target's own clock and waits for its preconditions.

Pure functions only (no daemon, no sleeps): the timing computed from a target's
settings (:func:`phase_times`, :func:`target_plan`), the preconditions read from its
``health_v2.json`` (:func:`precondition_problem`), the drill lock, and the ``drill``
command's usage errors for the new options. The real target runs are in
``test_drills_target.py``.
"""

from __future__ import annotations

import os
from dataclasses import replace
from pathlib import Path
from typing import Any

import pytest

from autoheal.cli.drill import EXIT_USAGE, drill_command
from autoheal.config import load_config
from autoheal.drills.catalog import load_catalog
from autoheal.drills.plan import (
    BASIS_TARGET,
    DrillTarget,
    PhaseTimes,
    ProbeTiming,
    TargetTiming,
    default_wait_s,
    phase_times,
    target_plan,
)
from autoheal.drills.preconditions import precondition_problem
from autoheal.drills.runner import time_basis
from autoheal.drills.stacks.target import DrillLock

REPO = Path(__file__).resolve().parents[2]
SHIPPED = REPO / "config" / "autoheal.toml"


def _timing(*, rest_interval: float = 1.0, rest_timeout: float = 3.0,
            ws_max_age: float = 60.0, hb_max_age: float = 15.0, **policy: Any) -> TargetTiming:
    """The shipped demo's shape: feeder (process, heartbeat, stream), trader, exchange_rest."""
    return TargetTiming(
        probes={
            "feeder": (ProbeTiming("process", 1.0, 1.0), ProbeTiming("heartbeat", 1.0, 1.0, 15.0),
                       ProbeTiming("ws_freshness", 1.0, 1.0, ws_max_age)),
            "trader": (ProbeTiming("process", 1.0, 1.0),
                       ProbeTiming("heartbeat", 1.0, 1.0, hb_max_age)),
            "exchange_rest": (ProbeTiming("http", rest_interval, rest_timeout,
                                          latency_p95=1.5, window=10),),
        },
        stop_timeout={"feeder": 10.0, "trader": 10.0},
        depends_on={"feeder": ("exchange_rest",), "trader": ("exchange_rest",)},
        **policy)


def _times(params: dict[str, Any], t: TargetTiming) -> PhaseTimes:
    times = phase_times(params, t)
    assert isinstance(times, PhaseTimes), times
    return times


NETCUT = {"fault": "netcut", "target": "exchange_rest"}
LATENCY = {"fault": "latency", "target": "exchange_rest", "latency_ms": 2000}


# ------------------------------------------------------------------------ the timing


def test_a_network_cut_outlasts_the_probe_timeouts_and_the_stream_max_age() -> None:
    t = _timing()
    times = _times(NETCUT, t)
    # The defect this replaces: a 3 s cut against a probe that times out after 3 s.
    assert times.fault_for > 3.0 + 1.0 * t.failures_before_degraded
    assert times.deadline("detect") < times.fault_for  # CONN_TIMEOUT is seen while it lasts
    assert times.deadline("stale") < times.fault_for   # and the feeder's stream goes stale
    assert times.raw["stale"] > 60.0
    assert times.raw["recover"] > times.fault_for       # recovery is due after the cut


def test_a_slower_probe_means_a_longer_cut_and_a_later_deadline() -> None:
    fast = _times(NETCUT, _timing(rest_timeout=3.0, ws_max_age=1.0))
    slow = _times(NETCUT, _timing(rest_timeout=6.0, ws_max_age=1.0))
    assert slow.fault_for > fast.fault_for
    assert slow.deadline("detect") > fast.deadline("detect")
    # More failed checks before DEGRADED: later too.
    more = _times(NETCUT, _timing(rest_timeout=3.0, ws_max_age=1.0, failures_before_degraded=4))
    assert more.raw["detect"] - fast.raw["detect"] == pytest.approx(2 * 3.0)


def test_a_latency_fault_is_timed_from_the_window_and_the_threshold() -> None:
    times = _times(LATENCY, _timing())
    # window 10: one slow answer is the p95; then 2 failed checks of 2 s each.
    assert times.raw["detect"] == pytest.approx(1.0 + 1.0 + 2 * 2.0 + 1.0)
    assert times.deadline("detect") < times.fault_for
    assert times.raw["recover"] >= times.fault_for + 2.0 + 10 * 1.0


def test_a_latency_the_target_cannot_show_is_a_reason_not_a_failure() -> None:
    over_timeout = phase_times(LATENCY, _timing(rest_timeout=2.0))
    assert isinstance(over_timeout, str) and "CONN_TIMEOUT" in over_timeout
    under = phase_times({**LATENCY, "latency_ms": 1000}, _timing())
    assert isinstance(under, str) and "not over" in under


def test_a_stall_lasts_past_the_restart_and_follows_the_heartbeat_max_age() -> None:
    t = _timing()
    times = _times({"fault": "stall", "target": "trader"}, t)
    assert times.raw["detect"] > 15.0
    assert times.fault_for >= times.deadline("restart")
    assert times.raw["recover"] > times.raw["restart"] + 10.0  # stop_timeout: KILL of a stopped one
    slower = _times({"fault": "stall", "target": "trader"}, _timing(hb_max_age=30.0))
    assert slower.fault_for > times.fault_for
    nobeat = replace(t, probes={**t.probes, "trader": (ProbeTiming("process", 1.0, 1.0),)})
    problem = phase_times({"fault": "stall", "target": "trader"}, nobeat)
    assert isinstance(problem, str) and "no heartbeat probe" in problem


def test_a_kill_is_timed_from_the_process_probe_and_verify_min_uptime() -> None:
    times = _times({"fault": "kill", "target": "feeder"}, _timing())
    assert times.raw["restart"] == times.raw["detect"]  # the first restart is immediate
    later = _times({"fault": "kill", "target": "feeder"}, _timing(verify_min_uptime=10.0))
    assert later.raw["recover"] - times.raw["recover"] == pytest.approx(8.0)
    assert times.fault_for == 0.0


def test_the_plan_for_the_shipped_config_is_taken_from_its_own_settings() -> None:
    target = DrillTarget.from_config(load_config(SHIPPED))
    catalog = load_catalog()
    scenario, plan = target.plan(catalog["network_cut"])
    assert plan["basis"] == BASIS_TARGET and "problem" not in plan
    assert scenario.time_scale == 1.0 and time_basis(scenario) == BASIS_TARGET
    # The shipped REST probe: every 1 s, 3 s timeout, 2 checks; the stream's max_age 60 s.
    assert scenario.params["fault_for_s"] == plan["fault_for_s"] > 60.0
    by_event = {e.event: e for e in scenario.expect}
    assert by_event["flags_degraded"].within_s == plan["fault_for_s"]
    assert by_event["flags_degraded"].slack_s == 0.0
    assert plan["deadlines_s"]["conn_timeout"] < plan["fault_for_s"]
    assert scenario.params["observe_for_s"] > plan["deadlines_s"]["dor_back"]
    for name in ("kill_feeder", "rest_latency", "hung_trader"):
        _, other = target.plan(catalog[name])
        assert "problem" not in other, (name, other)
    assert target.wait == default_wait_s(target.timing) >= 600.0  # a stable_reset fits


def test_time_scale_overrides_the_target_settings() -> None:
    cfg = load_config(SHIPPED)
    catalog = load_catalog()
    runbook, plan = DrillTarget.from_config(cfg, time_scale=1.0).plan(catalog["network_cut"])
    assert plan["basis"] == "runbook"
    assert runbook.time_scale == 1.0 and runbook.expect == catalog["network_cut"].expect
    assert runbook.params["fault_for_s"] == 60  # the runbook's own cut
    scaled, plan = DrillTarget.from_config(cfg, time_scale=0.05).plan(catalog["network_cut"])
    assert plan["basis"] == "--time-scale 0.05" and scaled.time_scale == 0.05
    assert time_basis(catalog["network_cut"]) == "scaled 1/20"  # its own stack


def test_a_scenario_without_on_target_cannot_be_timed_from_the_target() -> None:
    scenario = load_catalog()["kill_feeder"]
    bare = replace(scenario, params={k: v for k, v in scenario.params.items()
                                     if k != "on_target"})
    _, plan = target_plan(bare, _timing())
    assert "on_target" in plan["problem"] and "--time-scale" in plan["problem"]
    _, plan = target_plan(bare, _timing(), time_scale=0.5)
    assert "problem" not in plan


# ------------------------------------------------------------------------ preconditions


def _health(**changes: Any) -> dict[str, Any]:
    comp = {"ok": True, "stage": "OBSERVE", "reason": "", "attempts": 0, "max_restarts": 3,
            "held": False, "next_restart_at": None, "verify_until": None}
    doc: dict[str, Any] = {
        "dor": True, "failsafe": False, "failsafe_reason": "",
        "components": {"feeder": dict(comp), "trader": dict(comp)},
        "dependencies": {"exchange_rest": {"ok": True, "reason": ""}}}
    for dotted, value in changes.items():
        where = doc
        *parts, last = dotted.split("__")
        for part in parts:
            where = where[part]
        where[last] = value
    return doc


def test_a_healthy_target_is_ready_for_every_fault() -> None:
    for fault, name in (("kill", "feeder"), ("stall", "trader"), ("netcut", "exchange_rest")):
        assert precondition_problem(_health(), fault=fault, name=name) is None


def test_a_component_inside_its_episode_holds_the_drill_back() -> None:
    backoff = _health(dor=False, components__feeder__stage="BACKOFF",
                      components__feeder__reason="verifying", components__feeder__ok=False)
    problem = precondition_problem(backoff, fault="netcut", name="exchange_rest")
    assert problem == "feeder is in BACKOFF (verifying)"
    pending = _health(components__trader__next_restart_at=123.0)
    assert "trader has a restart or a verification pending" in str(
        precondition_problem(pending, fault="kill", name="feeder"))
    # Verified, but its episode still counts: a kill now would be attempt 2, delayed.
    counted = _health(components__feeder__attempts=1)
    problem = precondition_problem(counted, fault="kill", name="feeder")
    assert problem is not None and "feeder is inside a restart episode (attempts 1 of 3" in problem
    # A fault on the dependency restarts nothing: that episode does not matter to it.
    assert precondition_problem(counted, fault="netcut", name="exchange_rest") is None


def test_failsafe_stop_file_dor_and_dependencies_are_named() -> None:
    assert "failsafe active (feeder: max_restarts_exceeded)" in str(precondition_problem(
        _health(failsafe=True, failsafe_reason="feeder: max_restarts_exceeded"),
        fault="kill", name="feeder"))
    assert precondition_problem(_health(), fault="kill", name="feeder",
                                stop_file_there=True) == "STOP.TXT present"
    assert precondition_problem(_health(dor=False), fault="kill", name="feeder") == "DOR is false"
    assert "dependency exchange_rest failing (CONN_TIMEOUT)" in str(precondition_problem(
        _health(dependencies__exchange_rest__ok=False,
                dependencies__exchange_rest__reason="CONN_TIMEOUT"),
        fault="kill", name="feeder"))
    assert precondition_problem(b"junk", fault="kill", name="feeder") is not None


# ------------------------------------------------------------------------ the lock, the CLI


def test_the_drill_lock_admits_one_holder_and_names_it(tmp_path: Path) -> None:
    first, second = DrillLock(tmp_path), DrillLock(tmp_path)
    assert first.try_acquire() is None
    assert second.try_acquire() == str(os.getpid())
    first.release()
    assert second.try_acquire() is None
    second.release()
    assert first.path == tmp_path / "drills" / ".lock"


def test_time_scale_and_wait_need_a_target(capsys: pytest.CaptureFixture[str]) -> None:
    common: dict[str, Any] = dict(fmt="text", report=None, runtime_dir=None)
    assert drill_command("run", ["kill_feeder"], target=None, time_scale=0.5,
                         **common) == EXIT_USAGE
    assert drill_command("run", ["kill_feeder"], target=None, wait="10s", **common) == EXIT_USAGE
    assert "give --target" in capsys.readouterr().err
    assert drill_command("run", ["kill_feeder"], target=str(SHIPPED), time_scale=2.0,
                         **common) == EXIT_USAGE
    assert drill_command("run", ["kill_feeder"], target=str(SHIPPED), wait="soon",
                         **common) == EXIT_USAGE
    err = capsys.readouterr().err
    assert "--time-scale 2: must be in (0, 1]" in err and "--wait soon" in err

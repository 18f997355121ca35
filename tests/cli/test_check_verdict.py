"""``autoheal check``'s verdict: hand-made probe facts through the real core (no I/O)."""

from __future__ import annotations

from hypothesis import given
from hypothesis import strategies as st

from autoheal.cli.check import DEPENDENCY, SERVICE, Fact, KillSwitchFact, verdict
from autoheal.core.policy import ComponentSpec, HealPolicy, Policy

HEAL = HealPolicy(
    failures_before_restart=2,
    restart_backoff=(1.0,),
    verify_window=5.0,
    max_restarts=3,
    stable_reset=60.0,
    verify_min_uptime=0.1,
)
POLICY = Policy(
    components={
        "feeder": ComponentSpec("feeder", ("process", "heartbeat"), ("rest",), True, HEAL),
        "helper": ComponentSpec("helper", ("process",), (), False, HEAL),
    },
    dependencies={"rest": ("http",)},
    failures_before_degraded=2,
)
OFF = KillSwitchFact(False)


def _facts(
    feeder_hb: bool = True, rest: bool = True, proc: bool = True, helper: bool = True
) -> list[Fact]:
    return [
        Fact("feeder", SERVICE, "process", proc, 1.0, None, "" if proc else "process_missing"),
        Fact(
            "feeder",
            SERVICE,
            "heartbeat",
            feeder_hb,
            0.1,
            15.0,
            "" if feeder_hb else "heartbeat_stale",
        ),
        Fact("helper", SERVICE, "process", helper, 2.0, None, "" if helper else "process_missing"),
        Fact("rest", DEPENDENCY, "http", rest, 0.01, 1.5, "" if rest else "CONN_REFUSED"),
    ]


def test_all_passing_is_dor() -> None:
    v = verdict(POLICY, _facts(), OFF)
    assert v.dor is True
    assert v.failsafe is None and v.degraded == () and v.failing_components == ()


def test_stale_heartbeat_fails_dor_and_names_the_component() -> None:
    v = verdict(POLICY, _facts(feeder_hb=False), OFF)
    assert v.dor is False
    assert v.failing_components == ("feeder",)
    assert v.degraded == ()


def test_failing_dependency_reads_as_degraded_not_a_restart() -> None:
    v = verdict(POLICY, _facts(rest=False, feeder_hb=False), OFF)
    assert v.dor is False
    assert v.degraded == ("rest",)
    # the feeder is not restarted for its dependency's failure (DESIGN §2)
    assert v.stages["feeder"] == "OBSERVE"


def test_kill_switch_is_a_failsafe() -> None:
    v = verdict(POLICY, _facts(), KillSwitchFact(True, "stop_file_present", "alice"))
    assert v.dor is False
    assert v.failsafe == "stop_file_present"


def test_a_missing_probe_result_is_not_healthy() -> None:
    facts = [f for f in _facts() if f.probe != "heartbeat"]
    assert verdict(POLICY, facts, OFF).dor is False


def test_an_optional_component_does_not_decide_dor() -> None:
    assert verdict(POLICY, _facts(helper=False), OFF).dor is True


@given(st.booleans(), st.booleans(), st.booleans(), st.booleans(), st.booleans())
def test_dor_is_exactly_every_required_fact_passing(
    hb: bool, rest: bool, proc: bool, helper: bool, stop: bool
) -> None:
    v = verdict(
        POLICY,
        _facts(feeder_hb=hb, rest=rest, proc=proc, helper=helper),
        KillSwitchFact(stop, "x" if stop else ""),
    )
    assert v.dor is (hb and rest and proc and not stop)

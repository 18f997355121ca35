"""``autoheal metrics``'s arithmetic on hand-made journal events (pure, no I/O, no clock)."""

from __future__ import annotations

from typing import Any

from hypothesis import given
from hypothesis import strategies as st

from autoheal.cli.metrics import render_text
from autoheal.cli.summary import (
    DAY_S,
    degraded_periods,
    failsafe_periods,
    incidents,
    p50,
    restarts,
    stage_time,
    summarize,
    uptime,
)
from autoheal.store.journal import Event


class _Log:
    """Builds an event list the way the daemon journals it."""

    def __init__(self) -> None:
        self.events: list[Event] = []

    def add(self, ts: float, kind: str, component: str | None = None, **kw: Any) -> _Log:
        self.events.append(Event(len(self.events) + 1, ts, kind, component, **kw))
        return self

    def move(self, ts: float, comp: str, src: str, dst: str, reason: str) -> _Log:
        data = {"from": src, "to": dst, "attempt": 1, "max_attempts": 3}
        return self.add(ts, "stage_transition", comp, reason=reason, actor="autoheal", data=data)

    def probe(self, ts: float, comp: str, probe: str, ok: bool, reason: str = "") -> _Log:
        data = {"probe": probe, "ok": ok, "value": None}
        return self.add(ts, "probe_changed", comp, reason=reason or "ok", data=data)

    def notice(self, ts: float, target: str, kind: str, reason: str) -> _Log:
        return self.add(ts, "notice", target, reason=reason, data={"kind": kind, "message": "m"})


def _killed_feeder() -> _Log:
    """A SIGKILLed feeder: exit at 100, restarted at once, verified at 103."""
    return (
        _Log()
        .add(10.0, "process_started", "feeder", data={"pid": 1})
        .probe(10.1, "feeder", "heartbeat", True)
        .move(100.0, "feeder", "OBSERVE", "RESTART", "process_exited")
        .add(100.01, "process_started", "feeder", data={"pid": 2})
        .move(100.02, "feeder", "RESTART", "BACKOFF", "verifying")
        .move(103.0, "feeder", "BACKOFF", "OBSERVE", "verified")
    )


def _hung_feeder() -> _Log:
    """A hung feeder: heartbeat stale at 200, restart at 200.5, verified at 205."""
    return (
        _killed_feeder()
        .probe(200.0, "feeder", "heartbeat", False, "heartbeat_stale")
        .move(200.5, "feeder", "OBSERVE", "RESTART", "heartbeat_stale")
        .add(200.6, "process_started", "feeder", data={"pid": 3})
        .move(200.7, "feeder", "RESTART", "BACKOFF", "verifying")
        .probe(201.0, "feeder", "heartbeat", True)
        .move(205.0, "feeder", "BACKOFF", "OBSERVE", "verified")
    )


def test_a_process_exit_is_its_own_evidence() -> None:
    [inc] = incidents(_killed_feeder().events, "feeder")
    assert inc.started_at == inc.detected_at == 100.0
    assert inc.time_to_detect_s == 0.0
    assert inc.time_to_recover_s == 3.0
    assert inc.evidence == "transition"
    assert inc.restarts == 1 and inc.end_reason == "verified"


def test_a_stale_heartbeat_is_detected_from_the_probe_change() -> None:
    found = incidents(_hung_feeder().events, "feeder")
    assert len(found) == 2
    hung = found[1]
    assert hung.started_at == 200.0 and hung.detected_at == 200.5
    assert hung.time_to_detect_s == 0.5
    assert hung.time_to_recover_s == 5.0
    assert hung.evidence == "heartbeat"


def test_an_ongoing_incident_has_no_recovery_and_counts_each_restart() -> None:
    log = (
        _killed_feeder()
        .move(300.0, "feeder", "OBSERVE", "RESTART", "process_exited")
        .move(300.1, "feeder", "RESTART", "BACKOFF", "verifying")
        .move(303.0, "feeder", "BACKOFF", "RESTART", "verify_timeout")
    )
    last = incidents(log.events, "feeder")[-1]
    assert last.recovered_at is None and last.time_to_recover_s is None
    assert last.restarts == 2
    assert last.to_doc()["ongoing"] is True


def test_restarts_in_windows_and_by_operator() -> None:
    log = _hung_feeder().move(400.0, "feeder", "OBSERVE", "RESTART", "operator")
    assert restarts(log.events, "feeder", 0.0) == {"total": 3, "by_operator": 1}
    assert restarts(log.events, "feeder", 150.0) == {"total": 2, "by_operator": 1}
    assert restarts(log.events, "trader", 0.0) == {"total": 0, "by_operator": 0}


def test_stage_time_is_clipped_to_the_window_and_the_journal() -> None:
    events = _killed_feeder().events
    got = stage_time(events, "feeder", since=0.0, now=110.0, known_from=10.0)
    assert got == {"OBSERVE": 97.0, "RESTART": 0.02, "BACKOFF": 2.98}
    # a window starting inside BACKOFF knows the stage from the earlier transition
    assert stage_time(events, "feeder", since=101.0, now=104.0) == {"BACKOFF": 2.0, "OBSERVE": 1.0}


def test_uptime_follows_the_current_process() -> None:
    events = _killed_feeder().events
    assert uptime(events, "feeder", 110.0) == 9.99  # pid 2 since 100.01
    ongoing = _Log()
    ongoing.events = list(events)
    ongoing.move(120.0, "feeder", "OBSERVE", "RESTART", "process_exited")
    assert uptime(ongoing.events, "feeder", 121.0) is None
    assert uptime(events, "unknown", 110.0) is None


def test_degraded_periods_of_a_dependency() -> None:
    log = (
        _Log()
        .notice(50.0, "rest", "degraded", "CONN_TIMEOUT")
        .notice(80.0, "rest", "recovered", "recovered")
        .notice(90.0, "rest", "degraded", "latency_p95_high")
    )
    first, second = degraded_periods(log.events, "rest")
    assert (first.started_at, first.ended_at, first.reason) == (50.0, 80.0, "CONN_TIMEOUT")
    assert first.duration_s(1000.0) == 30.0
    assert second.ended_at is None and second.duration_s(100.0) == 10.0


def test_failsafe_entries_and_who_cleared_them() -> None:
    log = (
        _Log()
        # the daemon gives up on the feeder
        .notice(10.0, "feeder", "failsafe", "max_restarts_exceeded")
        # alice clears it with the CLI
        .add(20.0, "started", None, reason="fixed", actor="alice", command_id="c1")
        .add(20.0, "failsafe_clear.started", None, reason="fixed", actor="alice", command_id="c1")
        .notice(20.01, "runtime", "failsafe_cleared", "operator")
        # bob enters one by creating STOP.TXT, then removes it
        .add(30.0, "operator_kill_switch", None, reason="stop_file_created", actor="operator")
        .notice(30.01, "runtime", "failsafe", "operator")
        .add(40.0, "operator_kill_switch", None, reason="stop_file_removed", actor="operator")
        .notice(40.01, "runtime", "failsafe_cleared", "operator")
        # carol enters one with the CLI and it is still active
        .add(50.0, "failsafe_enter.started", None, reason="x", actor="carol", command_id="c2")
        .notice(50.01, "runtime", "failsafe", "operator")
    )
    a, b, c = failsafe_periods(log.events)
    assert (a.started_by, a.ended_by, a.reason) == (
        "autoheal",
        "alice",
        "feeder: max_restarts_exceeded",
    )
    assert a.duration_s(1e9) == 20.01 - 10.0
    assert b.started_by == "operator (stop_file_created)"
    assert b.ended_by == "operator (stop_file_removed)"
    assert c.started_by == "carol" and c.ended_at is None


def test_summary_document_and_text() -> None:
    log = _hung_feeder().notice(150.0, "rest", "degraded", "CONN_TIMEOUT")
    log.notice(160.0, "rest", "recovered", "recovered")
    drill = {"path": "d.json", "started_at": "x", "passed": True, "counts": {}, "drills": []}
    doc = summarize(
        log.events,
        components=["feeder", "trader"],
        dependencies=["rest"],
        now=300.0,
        since=0.0,
        drill=drill,
    )
    feeder = doc["components"]["feeder"]
    assert feeder["restarts_window"]["total"] == 2
    assert [i["time_to_detect_s"] for i in feeder["incidents"]] == [0.0, 0.5]
    assert feeder["time_to_detect_s"] == {"p50": 0.25, "max": 0.5}
    assert feeder["time_to_recover_s"] == {"p50": 4.0, "max": 5.0}
    assert doc["components"]["trader"]["incidents"] == []
    assert doc["dependencies"]["rest"]["degraded_s"] == 10.0
    assert doc["last_drill"]["passed"] is True
    text = render_text(doc)
    assert "feeder: restarts 2 in 24h" in text
    assert "evidence heartbeat" in text
    assert "rest (dependency): 1 degraded period(s)" in text
    # a window that excludes the first incident
    later = summarize(log.events, components=["feeder"], dependencies=[], now=300.0, since=150.0)
    assert len(later["components"]["feeder"]["incidents"]) == 1
    assert later["components"]["feeder"]["restarts_24h"] == 2
    far = summarize(
        log.events, components=["feeder"], dependencies=[], now=300.0 + DAY_S, since=0.0
    )
    assert far["components"]["feeder"]["restarts_24h"] == 0


def test_p50() -> None:
    assert p50([]) is None
    assert p50([3.0]) == 3.0
    assert p50([4.0, 1.0, 2.0]) == 2.0
    assert p50([1.0, 2.0, 3.0, 10.0]) == 2.5


_episode = st.tuples(
    st.floats(0.0, 30.0),  # quiet time before the failure
    st.floats(0.0, 5.0),  # failure evidence -> transition (0 for an exit)
    st.booleans(),  # soft (probe) or hard (exit)
    st.floats(0.01, 60.0),  # transition -> verified
    st.integers(1, 3),  # restarts in the episode
)


@given(st.lists(_episode, max_size=8))
def test_incidents_reproduce_generated_episodes(episodes: list[Any]) -> None:
    log = _Log().add(0.0, "process_started", "feeder", data={"pid": 1})
    t = 1.0
    expected = []
    for quiet, soft_detect, soft, recover, n in episodes:
        t += quiet
        start = t
        detect = soft_detect if soft else 0.0
        if soft:
            log.probe(t, "feeder", "heartbeat", False, "heartbeat_stale")
            t += detect
        log.move(t, "feeder", "OBSERVE", "RESTART", "heartbeat_stale" if soft else "x")
        step = recover / (2 * n)
        for i in range(n):
            if i:
                log.move(t, "feeder", "BACKOFF", "RESTART", "verify_timeout")
            t += step
            log.move(t, "feeder", "RESTART", "BACKOFF", "verifying")
            t += step
        if soft:
            log.probe(t, "feeder", "heartbeat", True)
        log.move(t, "feeder", "BACKOFF", "OBSERVE", "verified")
        expected.append((start, detect, t - start, n))
        t += 1.0
    found = incidents(log.events, "feeder")
    assert len(found) == len(expected)
    for inc, (start, detect, ttr, n) in zip(found, expected, strict=True):
        assert inc.started_at == start
        assert abs(inc.time_to_detect_s - detect) < 1e-9
        assert inc.time_to_recover_s is not None
        assert abs(inc.time_to_recover_s - ttr) < 1e-6
        assert inc.restarts == n
    # stage time over the whole journal adds up to the time it covers
    spent = stage_time(log.events, "feeder", 0.0, t)
    assert abs(sum(spent.values()) - t) < 1e-3

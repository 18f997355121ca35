"""The health trace a daemon drill records: polled documents folded into spans and marks."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from autoheal.drills.context import DrillContext
from autoheal.drills.model import Scenario
from autoheal.drills.trace import HealthTrace, timeline_doc


def _health(*, dor: bool = True, degraded: bool = False, failsafe: bool = False,
            stage: str = "OBSERVE", restarts: int = 0) -> dict[str, Any]:
    return {"dor": dor, "degraded": degraded, "failsafe": failsafe,
            "components": {"feeder": {"stage": stage, "restarts": restarts},
                           "trader": {"stage": "OBSERVE", "restarts": 0}}}


def test_trace_keeps_spans_and_one_mark_per_restart() -> None:
    trace = HealthTrace()
    trace.sample(10.0, _health())
    trace.sample(10.1, _health(dor=False, stage="RESTART", restarts=1))
    trace.sample(10.2, _health(dor=False, stage="BACKOFF", restarts=1))
    trace.sample(10.3, {})  # unreadable: changes nothing
    trace.sample(10.4, _health(dor=False, stage="RESTART", restarts=3))
    trace.sample(10.5, _health())
    doc = timeline_doc(trace, fault_at=10.0, fault_label="kill feeder",
                       events={"detected": 10.1, "ready": 9.9})
    assert doc["fault"] == {"label": "kill feeder", "start_s": 0.0, "end_s": None}
    assert [(s["label"], s["start_s"], s["end_s"]) for s in doc["spans"]] == [
        ("DOR false", 0.1, 0.5), ("feeder RESTART", 0.1, 0.2), ("feeder BACKOFF", 0.2, 0.4),
        ("feeder RESTART", 0.4, 0.5)]
    assert [(m["label"], m["at_s"]) for m in doc["marks"]] == [
        ("feeder", 0.1), ("feeder", 0.4), ("feeder", 0.4)]
    assert doc["events"] == {"ready": -0.1, "detected": 0.1}
    assert doc["observed_until_s"] == 0.5


def test_trace_leaves_a_span_open_when_the_drill_stops_watching() -> None:
    trace = HealthTrace()
    trace.sample(1.0, _health())
    trace.sample(2.0, _health(dor=False, degraded=True))
    trace.sample(3.0, _health(dor=False, failsafe=True, stage="FAILSAFE"))
    doc = timeline_doc(trace, fault_at=1.5, fault_ends_at=2.5)
    assert doc["fault"]["end_s"] == 1.0
    spans = {s["label"]: (s["start_s"], s["end_s"]) for s in doc["spans"]}
    assert spans == {"DOR false": (0.5, None), "DEGRADED": (0.5, 1.5),
                     "FAILSAFE": (1.5, None), "feeder FAILSAFE": (1.5, None)}


def test_trace_drops_spans_that_ended_before_the_fault() -> None:
    trace = HealthTrace()
    trace.sample(0.0, _health(dor=False))  # starting up
    trace.sample(1.0, _health())
    doc = timeline_doc(trace, fault_at=2.0)
    assert doc["spans"] == [] and doc["marks"] == []


def test_no_fault_no_timeline() -> None:
    trace = HealthTrace()
    trace.sample(1.0, _health(dor=False))
    assert timeline_doc(trace, fault_at=None) == {}


def test_context_records_the_trace_and_the_fault_end_on_its_own_clock(tmp_path: Path) -> None:
    now = [100.0]
    ctx = DrillContext(Scenario("d", "t", "daemon"), tmp_path, time_fn=lambda: now[0])
    ctx.track(_health())
    ctx.mark_fault()
    now[0] = 100.2
    ctx.fault_lasts(3.0)
    ctx.track(_health(dor=False, degraded=True))
    now[0] = 103.5
    ctx.track(_health())
    doc = timeline_doc(ctx.trace, fault_at=ctx.fault_at, fault_ends_at=ctx.fault_ends_at)
    assert doc["fault"]["end_s"] == 3.2
    assert [(s["label"], s["start_s"], s["end_s"]) for s in doc["spans"]] == [
        ("DOR false", 0.2, 3.5), ("DEGRADED", 0.2, 3.5)]

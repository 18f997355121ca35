"""The drill timeline picture: a pure renderer from a report document to SVG text.

Every report here is built by hand, so the positions can be checked against the times.
"""

from __future__ import annotations

import copy
import xml.etree.ElementTree as ET
from typing import Any

import pytest

from autoheal.drills.timeline import Scale, nice_ticks, render_svg

NS = "{http://www.w3.org/2000/svg}"


def _criterion(name: str, measured: float | None, bound: float) -> dict[str, Any]:
    margin = None if measured is None else bound - measured
    return {"name": f"event:{name}", "expected": f"within {bound:.2f}s",
            "observed": "never observed" if measured is None else f"after {measured:.2f}s",
            "held": measured is not None and measured <= bound, "kind": "time",
            "bound_s": bound, "measured_s": measured, "margin_s": margin,
            "margin_pct": None if margin is None else 100 * margin / bound}


def _drill(name: str = "network_cut", *, title: str = "Cut the network") -> dict[str, Any]:
    return {
        "name": name, "title": title, "status": "PASSED",
        "time_to_detect_s": 1.0, "time_to_recover_s": 4.0,
        "criteria": [_criterion("conn_timeout", 1.0, 2.0), _criterion("dor_back", 4.0, 5.0),
                     {"name": "no_restart", "expected": "== 0", "observed": "0", "held": True}],
        "timeline": {
            "fault": {"label": "netcut exchange_rest", "start_s": 0.0, "end_s": 3.0},
            "events": {"ready": -0.1, "conn_timeout": 1.0, "dor_back": 4.0},
            "spans": [{"kind": "not_ready", "label": "DOR false", "start_s": 1.0, "end_s": 4.0},
                      {"kind": "degraded", "label": "DEGRADED", "start_s": 1.0, "end_s": None},
                      {"kind": "stage", "label": "feeder RESTART", "start_s": 0.5,
                       "end_s": 0.8}],
            "marks": [{"kind": "restart", "label": "feeder", "at_s": 0.5}],
            "observed_until_s": 4.0,
        },
    }


def _report(*drills: dict[str, Any]) -> dict[str, Any]:
    return {"schema": 1, "started_at": "2026-12-02T20:00:00Z", "duration_s": 9.0,
            "time_scale": "1/20", "passed": True, "counts": {"PASSED": len(drills)},
            "drills": list(drills)}


def _lanes(svg: str) -> list[ET.Element]:
    root = ET.fromstring(svg)
    return [g for g in root.iter(f"{NS}g") if g.get("class") == "lane"]


def _one(lane: ET.Element, tag: str, cls: str) -> ET.Element:
    found = [e for e in lane.iter(f"{NS}{tag}") if e.get("class") == cls]
    assert len(found) == 1, (tag, cls, found)
    return found[0]


def _all(lane: ET.Element, tag: str, cls: str) -> list[ET.Element]:
    return [e for e in lane.iter(f"{NS}{tag}") if e.get("class") == cls]


def _tick_x(lane: ET.Element, label: str) -> float:
    """The x of the axis label reading ``label`` (``"5s"``)."""
    xs = [float(t.get("x", "nan")) for t in lane.iter(f"{NS}text")
          if (t.text or "") == label and t.get("text-anchor") == "middle"]
    assert len(xs) == 1, (label, xs)
    return xs[0]


def test_render_svg_is_xml_with_one_lane_per_drill() -> None:
    svg = render_svg(_report(_drill("a"), _drill("b"), _drill("c")))
    root = ET.fromstring(svg)
    assert root.tag == f"{NS}svg"
    assert [g.get("data-drill") for g in _lanes(svg)] == ["a", "b", "c"]


def test_render_svg_puts_fault_window_deadlines_and_measurements_on_the_time_axis() -> None:
    lane = _lanes(render_svg(_report(_drill())))[0]
    x0, x1, x2, x5 = (_tick_x(lane, f"{t}s") for t in (0, 1, 2, 5))
    unit = x1 - x0
    assert unit > 0
    assert x2 - x0 == pytest.approx(2 * unit, abs=0.02)
    window = _one(lane, "rect", "fault-window")
    assert float(window.get("x", "nan")) == pytest.approx(x0, abs=0.02)
    assert float(window.get("width", "nan")) == pytest.approx(3 * unit, abs=0.05)
    deadlines = sorted(float(d.get("x", "nan")) + 2 for d in _all(lane, "rect", "deadline"))
    assert deadlines == [pytest.approx(x2, abs=0.02), pytest.approx(x5, abs=0.02)]
    measured = sorted(float(c.get("cx", "nan")) for c in _all(lane, "circle", "measured"))
    assert measured == [pytest.approx(x1, abs=0.02), pytest.approx(x0 + 4 * unit, abs=0.02)]
    restart = _one(lane, "circle", "restart")
    assert float(restart.get("cx", "nan")) == pytest.approx(x0 + 0.5 * unit, abs=0.02)
    detect, recover = _one(lane, "line", "detect"), _one(lane, "line", "recover")
    assert float(detect.get("x1", "nan")) == pytest.approx(x1, abs=0.02)
    assert float(recover.get("x1", "nan")) == pytest.approx(x0 + 4 * unit, abs=0.02)


def test_render_svg_positions_scale_with_the_times() -> None:
    """Doubling every time doubles the axis: every mark stays where it was, the labels change."""
    doc = _drill()
    doubled = copy.deepcopy(doc)
    for c in doubled["criteria"]:
        for key in ("bound_s", "measured_s", "margin_s"):
            if key in c:
                c[key] *= 2
    doubled["time_to_detect_s"] *= 2
    doubled["time_to_recover_s"] *= 2
    tl = doubled["timeline"]
    tl["fault"]["end_s"] *= 2
    tl["observed_until_s"] *= 2
    tl["events"] = {k: v * 2 for k, v in tl["events"].items()}
    for s in tl["spans"]:
        s["start_s"] *= 2
        s["end_s"] = None if s["end_s"] is None else s["end_s"] * 2
    for m in tl["marks"]:
        m["at_s"] *= 2
    one, two = _lanes(render_svg(_report(doc, doubled)))

    def xs(lane: ET.Element) -> list[float]:
        return [float(e.get("x") or e.get("cx") or "nan")
                for cls, tag in (("deadline", "rect"), ("measured", "circle"),
                                 ("fault-window", "rect"), ("restart", "circle"))
                for e in _all(lane, tag, cls)]

    assert xs(one) == xs(two)
    assert _tick_x(one, "5s") == _tick_x(two, "10s")


def test_render_svg_shows_each_margin_as_text() -> None:
    svg = render_svg(_report(_drill()))
    texts = [t.text or "" for t in ET.fromstring(svg).iter(f"{NS}text")]
    assert "margin +1.00s (+50%)" in texts
    assert "margin +1.00s (+20%)" in texts
    # The count criterion: expected against observed, no margin.
    assert any("no_restart: expected == 0, observed 0" in t for t in texts)
    # Detection and recovery name the event the scenario counts as each.
    assert {"detected (conn_timeout) 1.00s", "recovered (dor_back) 4.00s"} <= set(texts)


def test_render_svg_marks_a_missed_deadline_and_an_event_never_seen() -> None:
    doc = _drill()
    doc["status"] = "FAILED"
    doc["criteria"] = [_criterion("conn_timeout", 3.0, 2.0), _criterion("dor_back", None, 5.0)]
    texts = [t.text or "" for t in ET.fromstring(render_svg(_report(doc))).iter(f"{NS}text")]
    assert "margin -1.00s (-50%)" in texts
    assert "never observed" in texts


@pytest.mark.parametrize("hostile", [
    "<script>alert(1)</script>", "a & b", 'quote " and \' apostrophe', "]]>", "ctl\x01\x1b[31m",
])
def test_render_svg_keeps_hostile_text_as_text(hostile: str) -> None:
    doc = _drill(hostile, title=hostile)
    doc["criteria"][0]["name"] = hostile
    doc["timeline"]["fault"]["label"] = hostile
    svg = render_svg(_report(doc))
    root = ET.fromstring(svg)  # still well-formed XML
    tags = {e.tag for e in root.iter()}
    assert f"{NS}script" not in tags and "script" not in tags
    assert "<script>" not in svg and "\x01" not in svg
    shown = "".join(root.itertext())
    assert hostile.replace("\x01", "").replace("\x1b", "") in shown
    assert _lanes(svg)[0].get("data-drill") == hostile.replace("\x01", "").replace("\x1b", "")


def test_render_svg_is_self_contained() -> None:
    svg = render_svg(_report(_drill()))
    root = ET.fromstring(svg)
    tags = {e.tag.removeprefix(NS) for e in root.iter()}
    assert tags <= {"svg", "g", "rect", "line", "circle", "text", "tspan", "title"}
    assert "href" not in svg and "url(" not in svg and "@import" not in svg


def test_render_svg_draws_old_and_partial_reports() -> None:
    """A report from before the timeline (events only in details), and one with junk."""
    old = {"name": "kill_feeder", "title": "t", "status": "PASSED", "time_to_detect_s": 0.2,
           "time_to_recover_s": 0.8, "criteria": [
               {"name": "event:detected", "expected": "within 1.00s", "observed": "after 0.20s",
                "held": True}],
           "details": {"events_after_fault_s": {"detected": 0.2, "dor_back": 0.8}}}
    junk = {"name": 7, "criteria": "nope", "timeline": {"spans": [1, None], "fault": "x",
                                                         "marks": [{"at_s": "soon"}]}}
    svg = render_svg(_report(old, junk, {}))
    assert len(_lanes(svg)) == 3
    assert len(_lanes(render_svg({}))) == 0


def test_nice_ticks_cover_the_range_with_round_steps() -> None:
    assert nice_ticks(5.2) == [0, 1, 2, 3, 4, 5, 6]
    assert nice_ticks(1.9) == [0, 0.25, 0.5, 0.75, 1, 1.25, 1.5, 1.75, 2]
    assert nice_ticks(0.0) == nice_ticks(1.0)
    for upper in (0.003, 0.7, 3.3, 47.0, 1234.0):
        ticks = nice_ticks(upper)
        assert ticks[0] == 0 and ticks[-1] >= upper and len(ticks) <= 9


def test_scale_clips_to_the_axis() -> None:
    scale = Scale(10.0, x0=100, x1=600)
    assert (scale.x(-1), scale.x(0), scale.x(5), scale.x(10), scale.x(99)) == (
        100, 100, 350, 600, 600)

"""Each time criterion's margin (bound - measured, also in % of the bound) in the reports."""

from __future__ import annotations

import pytest

from autoheal.drills.evaluate import check_criterion, check_expectation
from autoheal.drills.model import (
    Criterion,
    CriterionSpec,
    DrillResult,
    Expectation,
    Report,
    Status,
)
from autoheal.drills.report import margin_text, render_text
from autoheal.drills.runner import progress_line


def test_check_expectation_carries_the_measured_time_and_the_scaled_bound() -> None:
    c = check_expectation(Expectation("detected", within_s=15, slack_s=0.25), 0.18, 0.05)
    assert c.held
    assert c.bound_s == pytest.approx(1.0)
    assert c.measured_s == pytest.approx(0.18)
    assert c.margin_s == pytest.approx(0.82)
    assert c.margin_pct == pytest.approx(82.0)


def test_a_missed_deadline_has_a_negative_margin() -> None:
    c = check_expectation(Expectation("dor_back", within_s=10, slack_s=0.0), 1.5, 0.1)
    assert not c.held
    assert c.margin_s == pytest.approx(-0.5)
    assert c.margin_pct == pytest.approx(-50.0)
    assert margin_text(c) == "margin -0.50s (-50% of 1.00s)"


def test_an_event_never_seen_has_a_bound_but_no_margin() -> None:
    c = check_expectation(Expectation("dor_back", within_s=10, slack_s=0.0), None, 0.1)
    assert (c.bound_s, c.measured_s, c.margin_s, c.margin_pct) == (pytest.approx(1.0), None,
                                                                   None, None)
    assert margin_text(c) == ""
    assert c.to_doc()["measured_s"] is None and c.to_doc()["bound_s"] == 1.0


def test_a_count_criterion_has_no_margin() -> None:
    c = check_criterion(CriterionSpec("one_restart", "restarts_added", "==", 1),
                        {"restarts_added": 1})
    assert c.margin_s is None and margin_text(c) == ""
    assert c.to_doc() == {"name": "one_restart", "expected": "== 1", "observed": "1",
                          "held": True}


def _result() -> DrillResult:
    return DrillResult(
        name="kill_feeder", title="Kill the feeder", status=Status.PASSED,
        time_to_detect_s=0.18, time_to_recover_s=0.79,
        criteria=(check_expectation(Expectation("detected", 15), 0.18, 0.05),
                  check_expectation(Expectation("dor_back", 90), 3.5, 0.05),
                  Criterion("one_restart", "== 1", "1", True)))


def test_json_report_shows_bound_measured_and_margin_of_time_criteria() -> None:
    doc = Report((_result(),), "2026-12-02T20:00:00Z", 3.0, "1/20").to_doc()
    detected, dor_back, count = doc["drills"][0]["criteria"]
    assert detected == {"name": "event:detected", "expected": "within 1.00s (15s at 1/20)",
                        "observed": "after 0.18s", "held": True, "kind": "time",
                        "bound_s": 1.0, "measured_s": 0.18, "margin_s": 0.82,
                        "margin_pct": 82.0}
    assert dor_back["margin_s"] == pytest.approx(1.25) and dor_back["margin_pct"] == 26.3
    assert "margin_s" not in count and "kind" not in count
    assert "timeline" not in doc["drills"][0]  # nothing recorded: the key is left out


def test_text_report_shows_each_margin_and_the_tightest() -> None:
    text = render_text(Report((_result(),), "2026-12-02T20:00:00Z", 3.0, "1/20"))
    assert ("✓ event:detected: expected within 1.00s (15s at 1/20), observed after 0.18s, "
            "margin +0.82s (+82% of 1.00s)") in text
    assert "✓ one_restart: expected == 1, observed 1\n" in text
    assert "Tightest margin:         event:dor_back margin +1.25s (+26% of 4.75s)" in text


def test_text_report_names_every_report_file() -> None:
    report = Report((_result(),), "t", 1.0, "1/1", json_path="a/r.json",
                    files=("a/r.json", "a/r.svg"))
    text = render_text(report)
    assert "JSON report: a/r.json\nTimeline picture: a/r.svg" in text


def test_progress_line_names_the_tightest_margin() -> None:
    line = progress_line(1, 2, _result())
    assert line == ("[1/2] kill_feeder ... PASSED (detect 0.18s, recover 0.79s) "
                    "tightest margin +26% (dor_back +1.25s)")
    no_time = DrillResult("d", "t", Status.PASSED, None, None,
                          criteria=(Criterion("one_restart", "== 1", "1", True),))
    assert progress_line(1, 1, no_time) == "[1/1] d ... PASSED (detect -, recover -)"

"""The compliance judgement (``core/compliance.py``): a stale, failed or garbled proof fails."""

from __future__ import annotations

import math

import pytest
from hypothesis import given
from hypothesis import strategies as st

from autoheal.core.compliance import (
    FUTURE_SKEW_S,
    MAX_DRILLS,
    DrillRecord,
    Verdict,
    history_doc,
    judge_drill,
    judge_matrix,
    merge_history,
    parse_history,
)
from autoheal.core.compliance_matrix import CONTROLS, Control, drill_names

pytestmark = [pytest.mark.timeout(60)]

DAY = 86_400.0
NOW = 1_800_000_000.0
STATUSES = st.sampled_from(["PASSED", "FAILED", "ABORTED", "ERROR"])
NAMES = st.from_regex(r"[a-z][a-z0-9_]{0,20}", fullmatch=True)


def record(name: str, status: str = "PASSED", finished_at: float = NOW - 60) -> DrillRecord:
    return DrillRecord(name, status, finished_at, 1.5, 20.0, None)


def passed_everywhere(now: float = NOW) -> dict[str, DrillRecord]:
    return {n: record(n, finished_at=now) for n in drill_names()}


def test_matrix_names_every_issue_24_control_and_drill() -> None:
    articles = " ".join(c.article for c in CONTROLS)
    for part in (
        "Art. 12",
        "15(1)(a)",
        "15(1)(b)",
        "15(1)(c)",
        "15(1)(d)",
        "15(2)",
        "15(3)",
        "Art. 16",
        "Art. 17",
        "FIA",
    ):
        assert part in articles
    for drill in (
        "scoped_kill_symbol",
        "daily_loss_survives_restart",
        "phantom_loss_read",
        "repeated_execution_throttle",
        "drawdown_from_peak",
        "reconcile_unknown_order",
        "live_gating_e",
        "breaker_trip",
    ):
        assert drill in drill_names()
    assert len({c.key for c in CONTROLS}) == len(CONTROLS)
    assert all(c.drills and c.mechanism for c in CONTROLS)


def test_matrix_passes_when_every_drill_passed_within_the_window() -> None:
    matrix = judge_matrix(CONTROLS, passed_everywhere(), now=NOW, window_s=DAY)
    assert matrix.passed and matrix.history_ok
    assert {r.verdict for r in matrix.rows} == {Verdict.PASSED}


@given(
    drill=st.sampled_from(drill_names()),
    status=STATUSES,
    age=st.floats(min_value=-FUTURE_SKEW_S * 10, max_value=DAY * 10),
    window=st.floats(min_value=1.0, max_value=DAY * 7),
)
def test_one_drill_decides_its_rows(drill: str, status: str, age: float, window: float) -> None:
    history = passed_everywhere()
    history[drill] = record(drill, status, NOW - age)
    matrix = judge_matrix(CONTROLS, history, now=NOW, window_s=window)
    real_age = NOW - (NOW - age)  # as the judgement computes it (float rounding)
    fresh = -FUTURE_SKEW_S <= real_age <= window
    for row in matrix.rows:
        if drill not in row.control.drills:
            assert row.passed
            continue
        assert row.passed == (status == "PASSED" and fresh)
        if real_age < -FUTURE_SKEW_S:
            assert row.verdict is Verdict.UNKNOWN
        elif status != "PASSED":
            assert row.verdict is Verdict.FAILED
        elif not fresh:
            assert row.verdict is Verdict.STALE
    assert matrix.passed == (status == "PASSED" and fresh)


@given(drill=st.sampled_from(drill_names()))
def test_a_drill_never_run_fails_its_rows(drill: str) -> None:
    history = passed_everywhere()
    del history[drill]
    matrix = judge_matrix(CONTROLS, history, now=NOW, window_s=DAY)
    assert not matrix.passed
    for row in matrix.rows:
        assert row.passed == (drill not in row.control.drills)
        if not row.passed:
            assert row.verdict is Verdict.NEVER_RUN


def test_an_unreadable_history_is_unknown_never_passed() -> None:
    matrix = judge_matrix(CONTROLS, None, now=NOW, window_s=DAY)
    assert not matrix.passed and not matrix.history_ok
    assert {r.verdict for r in matrix.rows} == {Verdict.UNKNOWN}


def test_a_row_without_drills_never_passes() -> None:
    bare = Control("x", "Art. X", "t", "m", (), (), ())
    assert not judge_matrix((bare,), {}, now=NOW, window_s=DAY).passed


@pytest.mark.parametrize("now", [math.nan, math.inf])
def test_a_bad_now_is_unknown(now: float) -> None:
    assert (
        judge_drill("breaker_trip", passed_everywhere(), now=now, window_s=DAY).verdict
        is Verdict.UNKNOWN
    )


def test_a_nan_window_is_stale_not_passed() -> None:
    verdict = judge_drill("breaker_trip", passed_everywhere(), now=NOW, window_s=math.nan)
    assert verdict.verdict is Verdict.STALE


@given(
    st.dictionaries(NAMES, st.tuples(STATUSES, st.floats(0, 2e9), st.floats(0, 1e4)), max_size=20)
)
def test_history_round_trips(entries: dict[str, tuple[str, float, float]]) -> None:
    records = {
        n: DrillRecord(n, s, f, d, None, f if s == "PASSED" else None)
        for n, (s, f, d) in entries.items()
    }
    assert parse_history(history_doc(records)) == records


GARBAGE = [
    None,
    [],
    "x",
    1,
    {},
    {"schema": 2, "drills": {}},
    {"schema": 1},
    {"schema": 1, "drills": []},
    {"schema": 1, "drills": {"a": {"status": "PASSED", "finished_at": "1", "duration_s": 1}}},
    {"schema": 1, "drills": {"a": {"status": "OK", "finished_at": 1, "duration_s": 1}}},
    {"schema": 1, "drills": {"a": {"status": "PASSED", "finished_at": True, "duration_s": 1}}},
    {"schema": 1, "drills": {"a": {"status": "PASSED", "finished_at": -1.0, "duration_s": 1}}},
    {
        "schema": 1,
        "drills": {
            "a": {"status": "PASSED", "finished_at": 1, "duration_s": 1, "margin_pct": math.nan}
        },
    },
    {"schema": 1, "drills": {"a\x1b[2J": {"status": "PASSED", "finished_at": 1, "duration_s": 1}}},
    {
        "schema": 1,
        "drills": {
            "ok": {"status": "PASSED", "finished_at": 1, "duration_s": 1},
            "bad": {"status": "PASSED"},
        },
    },
]


@pytest.mark.parametrize("doc", GARBAGE)
def test_garbled_history_is_unknown(doc: object) -> None:
    assert parse_history(doc) is None


def test_a_missing_history_reads_as_empty_not_unknown() -> None:
    assert parse_history(history_doc({})) == {}


@given(st.lists(st.tuples(NAMES, STATUSES, st.floats(0, 2e9)), max_size=30))
def test_merge_keeps_the_last_result_and_the_last_pass(
    runs: list[tuple[str, str, float]],
) -> None:
    history: dict[str, DrillRecord] | None = None
    for name, status, finished in runs:
        history = merge_history(history, [DrillRecord(name, status, finished, 1.0)])
    history = history or {}
    for name in {n for n, _, _ in runs}:
        mine = [(s, f) for n, s, f in runs if n == name]
        assert history[name].status == mine[-1][0]
        assert history[name].finished_at == mine[-1][1]
        passes = [f for s, f in mine if s == "PASSED"]
        assert history[name].last_passed_at == (passes[-1] if passes else None)


def test_merge_is_bounded_and_drops_the_oldest() -> None:
    results = [DrillRecord(f"d{i}", "PASSED", float(i), 1.0) for i in range(MAX_DRILLS + 7)]
    merged = merge_history({}, results)
    assert len(merged) == MAX_DRILLS
    assert "d0" not in merged and f"d{MAX_DRILLS + 6}" in merged
    assert parse_history(history_doc(merged)) == merged


def test_merge_after_an_unreadable_history_starts_afresh() -> None:
    merged = merge_history(None, [record("breaker_trip")])
    matrix = judge_matrix(CONTROLS, merged, now=NOW, window_s=DAY)
    assert not matrix.passed  # the other drills are never_run, not carried over from garbage

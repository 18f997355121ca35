"""judge_feed: the feed section's meaning, from values and a fake clock (no files, no sleeps)."""

from __future__ import annotations

import math

import pytest
from hypothesis import given
from hypothesis import strategies as st

from autoheal.core.feed_lag import FeedBaseline, judge_feed
from autoheal.core.reasons import FEED_INVALID, FEED_MISSING, FEED_SEQUENCE_GAP, FEED_STALE

pytestmark = [pytest.mark.timeout(60)]

WALL = 1_765_000_000.0
MONO = 7_000.0
SYMBOLS = ("BTCUSDT", "ETHUSDT", "SOLUSDT")


def entry(age: float, gaps: int = 0) -> dict[str, object]:
    return {"exchange_ts": WALL - age, "received_ts": WALL, "seq": 1, "gaps": gaps}


def judge(
    section,
    *,
    symbols=(),
    max_age=2.0,
    max_gaps=0,
    baseline=None,
    writer=1,
    now_wall=WALL,
    now_mono=MONO,
):
    return judge_feed(
        section,
        writer=writer,
        symbols=symbols,
        max_age=max_age,
        max_gaps=max_gaps,
        baseline=baseline or FeedBaseline(),
        now_wall=now_wall,
        now_mono=now_mono,
    )


def test_fresh_feed_passes_and_rechecks_when_the_oldest_symbol_would_turn_stale() -> None:
    v = judge({"BTCUSDT": entry(0.5), "ETHUSDT": entry(1.5)})
    assert v.ok and v.reason == ""
    assert v.age == pytest.approx(1.5)
    assert v.recheck_at == pytest.approx(MONO + 0.5)


def test_one_frozen_symbol_fails_naming_it() -> None:
    v = judge({"BTCUSDT": entry(0.1), "ETHUSDT": entry(9.0), "SOLUSDT": entry(0.1)})
    assert not v.ok and v.reason == FEED_STALE
    assert "ETHUSDT" in v.detail and "BTCUSDT" not in v.detail
    assert v.recheck_at is None


def test_only_the_configured_symbols_are_judged() -> None:
    section = {"BTCUSDT": entry(0.1), "ETHUSDT": entry(99.0)}
    assert judge(section, symbols=("BTCUSDT",)).ok
    v = judge(section, symbols=("BTCUSDT", "XRPUSDT"))
    assert v.reason == FEED_MISSING and "XRPUSDT" in v.detail


@pytest.mark.parametrize(
    ("section", "reason"),
    [
        (None, FEED_MISSING),
        ({}, FEED_MISSING),
        ([], FEED_INVALID),
        ("feed", FEED_INVALID),
        ({"BTCUSDT": 5}, FEED_INVALID),
        ({"BTCUSDT": {"exchange_ts": "yesterday"}}, FEED_INVALID),
        ({"BTCUSDT": {"exchange_ts": True}}, FEED_INVALID),
        ({"BTCUSDT": {"exchange_ts": 10**400}}, FEED_INVALID),
        ({"BTCUSDT": {}}, FEED_INVALID),
        ({"BTCUSDT": {"exchange_ts": WALL, "gaps": -1}}, FEED_INVALID),
        ({"BTCUSDT": {"exchange_ts": WALL, "gaps": 1.5}}, FEED_INVALID),
        ({"BTCUSDT": {"exchange_ts": WALL, "gaps": False}}, FEED_INVALID),
    ],
)
def test_a_malformed_or_missing_section_is_a_clear_failure(section, reason) -> None:
    v = judge(section)
    assert not v.ok and v.reason == reason and v.detail


def test_non_finite_float_is_invalid() -> None:
    for bad in (math.nan, math.inf, -math.inf):
        assert judge({"BTCUSDT": {"exchange_ts": bad}}).reason == FEED_INVALID


def test_a_future_exchange_time_is_age_zero_not_a_failure() -> None:
    v = judge({"BTCUSDT": entry(-30.0)})
    assert v.ok and v.age == 0.0


def test_a_new_gap_fails_until_the_writer_restarts() -> None:
    first = judge({"BTCUSDT": entry(0.1, gaps=3)})  # old gaps: the baseline
    assert first.ok
    gap = judge({"BTCUSDT": entry(0.1, gaps=5)}, baseline=first.baseline)
    assert gap.reason == FEED_SEQUENCE_GAP and "BTCUSDT: 2 sequence" in gap.detail
    still = judge({"BTCUSDT": entry(0.1, gaps=5)}, baseline=gap.baseline)
    assert still.reason == FEED_SEQUENCE_GAP  # a book that missed updates stays wrong
    restarted = judge({"BTCUSDT": entry(0.1, gaps=0)}, baseline=still.baseline, writer=2)
    assert restarted.ok


def test_max_gaps_tolerates_that_many() -> None:
    base = judge({"BTCUSDT": entry(0.1, gaps=0)}).baseline
    assert judge({"BTCUSDT": entry(0.1, gaps=2)}, baseline=base, max_gaps=2).ok
    assert not judge({"BTCUSDT": entry(0.1, gaps=3)}, baseline=base, max_gaps=2).ok


def test_a_counter_that_went_down_is_a_restarted_writer() -> None:
    base = judge({"BTCUSDT": entry(0.1, gaps=4)}).baseline
    v = judge({"BTCUSDT": entry(0.1, gaps=1)}, baseline=base)
    assert v.ok and v.baseline.gaps == {"BTCUSDT": 1}


def test_stale_is_reported_before_a_gap() -> None:
    base = judge({"BTCUSDT": entry(0.1)}).baseline
    v = judge({"BTCUSDT": entry(5.0, gaps=9)}, baseline=base)
    assert v.reason == FEED_STALE


# -- properties ------------------------------------------------------------------------

json_leaf = st.none() | st.booleans() | st.integers() | st.floats() | st.text(max_size=5)
json_value = st.recursive(
    json_leaf,
    lambda inner: (
        st.lists(inner, max_size=3) | st.dictionaries(st.text(max_size=8), inner, max_size=3)
    ),
    max_leaves=10,
)


@given(section=json_value, symbols=st.lists(st.sampled_from(SYMBOLS), max_size=3))
def test_judge_is_total_and_deterministic(section, symbols) -> None:
    a = judge(section, symbols=tuple(symbols))
    b = judge(section, symbols=tuple(symbols))
    assert a == b
    assert a.ok == (a.reason == "")
    assert a.ok or a.reason in (FEED_INVALID, FEED_MISSING, FEED_SEQUENCE_GAP, FEED_STALE)


ages = st.floats(min_value=-100.0, max_value=100.0, allow_nan=False)


@given(
    st.dictionaries(st.sampled_from(SYMBOLS), ages, min_size=1),
    st.floats(min_value=0.01, max_value=60.0),
)
def test_stale_exactly_when_some_symbol_is_older_than_max_age(by_symbol, max_age) -> None:
    v = judge({s: entry(a) for s, a in by_symbol.items()}, max_age=max_age)
    # entry() computes WALL - age; compare with the same float arithmetic.
    real = {s: max(WALL - (WALL - a), 0.0) for s, a in by_symbol.items()}
    assert v.ok == all(age <= max_age for age in real.values())
    if v.ok:
        assert v.recheck_at is not None and v.recheck_at >= MONO
        assert v.recheck_at == pytest.approx(MONO + max_age - max(real.values()))
    else:
        stale = [s for s, age in real.items() if age > max_age]
        assert v.reason == FEED_STALE and any(s in v.detail for s in stale)


@given(
    st.lists(st.integers(min_value=0, max_value=5), min_size=1, max_size=12),
    st.integers(min_value=0, max_value=4),
)
def test_gap_fails_exactly_when_the_counter_grew_past_max_gaps(increments, max_gaps) -> None:
    """A fake feeder whose counter only grows, judged after every step."""
    gaps, baseline = 0, FeedBaseline()
    start = None
    for inc in increments:
        gaps += inc
        v = judge({"BTCUSDT": entry(0.0, gaps=gaps)}, baseline=baseline, max_gaps=max_gaps)
        start = gaps if start is None else start
        assert v.ok == (gaps - start <= max_gaps)
        baseline = v.baseline


def test_a_resync_rebuilds_the_book_and_ends_the_gap_failure() -> None:
    base = judge({"BTCUSDT": entry(0.1, gaps=0)}).baseline
    gap = judge({"BTCUSDT": entry(0.1, gaps=2)}, baseline=base)
    assert gap.reason == FEED_SEQUENCE_GAP
    rebuilt = {"BTCUSDT": {**entry(0.1, gaps=2), "resyncs": 1}}
    assert judge(rebuilt, baseline=gap.baseline).ok
    bad = {"BTCUSDT": {**entry(0.1), "resyncs": "once"}}
    assert judge(bad).reason == FEED_INVALID

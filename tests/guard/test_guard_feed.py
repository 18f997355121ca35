"""The feed section of a feeder's heartbeat: newest exchange time, sequence gaps (issue 23)."""

from __future__ import annotations

import math

import orjson
import pytest
from hypothesis import given
from hypothesis import strategies as st

from autoheal.guard import Heartbeat
from autoheal.guard.feed import FeedTracker

pytestmark = [pytest.mark.timeout(60)]


def test_beat_carries_the_feed_section_once_a_symbol_was_seen(tmp_path):
    hb = Heartbeat(tmp_path, "feeder", time_fn=lambda: 1000.0)
    assert "feed" not in hb.beat()
    hb.feed_event("BTCUSDT", 999.5, 41)
    hb.feed_event("BTCUSDT", 999.7, 44)  # 42 and 43 never came: a gap of 2
    hb.feed_event("ETHUSDT", 999.0, received_ts=999.9)
    hb.beat(ws_connected=True)
    doc = orjson.loads((tmp_path / "feeder.heartbeat.json").read_bytes())
    assert doc["feed"] == {
        "BTCUSDT": {
            "exchange_ts": 999.7,
            "received_ts": 1000.0,
            "seq": 44,
            "gaps": 2,
            "resyncs": 0,
            "messages": 2,
        },
        "ETHUSDT": {
            "exchange_ts": 999.0,
            "received_ts": 999.9,
            "seq": None,
            "gaps": 0,
            "resyncs": 0,
            "messages": 1,
        },
    }
    assert doc["ws_connected"] is True


def test_feed_extra_clashes_with_the_tracked_section(tmp_path):
    hb = Heartbeat(tmp_path, "feeder")
    hb.beat(feed={"mine": 1})  # nothing tracked: the caller's own extra is theirs
    hb.feed_event("BTCUSDT", 1.0)
    with pytest.raises(ValueError, match="feed"):
        hb.beat(feed={"mine": 1})


def test_a_repeated_or_older_message_is_no_gap_and_moves_nothing_back():
    t = FeedTracker(time_fn=lambda: 5.0)
    t.saw("BTCUSDT", 100.0, 10)
    t.saw("BTCUSDT", 100.0, 10)  # a cached book handed back again
    t.saw("BTCUSDT", 99.0, 9)  # reordered
    feed = t.symbols["BTCUSDT"]
    assert (feed.exchange_ts, feed.seq, feed.gaps, feed.messages) == (100.0, 10, 0, 3)


@pytest.mark.parametrize(
    ("args", "match"),
    [
        (("", 1.0), "symbol"),
        (("BTCUSDT", math.nan), "exchange_ts"),
        (("BTCUSDT", math.inf), "exchange_ts"),
        (("BTCUSDT", 1.0, -1), "seq"),
        (("BTCUSDT", 1.0, 1.5), "seq"),
        (("BTCUSDT", 1.0, True), "seq"),
    ],
)
def test_bad_reports_are_refused(args, match):
    with pytest.raises(ValueError, match=match):
        FeedTracker().saw(*args)


@given(st.lists(st.integers(min_value=0, max_value=10_000), min_size=1, max_size=50))
def test_gaps_only_grow_and_count_the_numbers_never_seen_in_order(seqs):
    t = FeedTracker(time_fn=lambda: 0.0)
    last_gaps = 0
    for s in seqs:
        feed = t.saw("X", 1.0, s)
        assert feed.gaps >= last_gaps
        last_gaps = feed.gaps
    # For a strictly increasing stream the count is exact: the holes between first and last.
    increasing = sorted(set(seqs))
    t2 = FeedTracker(time_fn=lambda: 0.0)
    for s in increasing:
        t2.saw("X", 1.0, s)
    assert t2.symbols["X"].gaps == increasing[-1] - increasing[0] + 1 - len(increasing)
    assert t2.symbols["X"].seq == max(seqs)


def test_after_a_resync_the_next_number_is_a_new_start_not_a_gap(tmp_path):
    hb = Heartbeat(tmp_path, "feeder", time_fn=lambda: 1.0)
    hb.feed_event("BTCUSDT", 1.0, 10)
    hb.feed_resync()  # reconnected: the exchange's numbers go on from wherever it is
    hb.feed_event("BTCUSDT", 2.0, 500)
    hb.feed_event("BTCUSDT", 3.0, 502)
    feed = hb.beat()["feed"]["BTCUSDT"]
    assert (feed["seq"], feed["gaps"], feed["resyncs"]) == (502, 1, 1)

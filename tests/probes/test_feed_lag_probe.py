"""FeedLagProbe on real heartbeat files: what a file cannot say, and the shared reads."""

from __future__ import annotations

from pathlib import Path

import anyio
import pytest

from autoheal.core.reasons import FEED_SEQUENCE_GAP, FEED_STALE
from autoheal.guard import Heartbeat
from autoheal.probes import HEARTBEAT_INVALID, HEARTBEAT_MISSING, HeartbeatFiles
from autoheal.probes.feed_lag import FeedLagProbe

pytestmark = [pytest.mark.timeout(30)]

WALL = 1_765_000_000.0


class Clock:
    def __init__(self) -> None:
        self.wall, self.mono = WALL, 100.0


def probe(path: Path, clock: Clock, **kw) -> FeedLagProbe:
    return FeedLagProbe(
        path, 2.0, wall=lambda: clock.wall, clock=lambda: clock.mono, files=HeartbeatFiles(), **kw
    )


def test_a_frozen_symbol_fails_while_the_heartbeat_is_fresh(tmp_path: Path) -> None:
    clock = Clock()
    hb = Heartbeat(tmp_path, "feeder", time_fn=lambda: clock.wall)
    hb.feed_event("BTCUSDT", WALL, 1)
    hb.feed_event("ETHUSDT", WALL, 1)
    hb.beat()
    p = probe(hb.path, clock)
    first = p.check_inline()
    assert first.ok and first.recheck_at == pytest.approx(102.0)
    clock.wall += 3.0
    clock.mono += 3.0
    hb.feed_event("BTCUSDT", clock.wall, 2)  # ETHUSDT's exchange time is stuck
    hb.beat()
    r = anyio.run(p.check)
    assert (r.ok, r.reason) == (False, FEED_STALE)
    assert "ETHUSDT" in r.detail and r.value == pytest.approx(3.0) and r.threshold == 2.0
    assert probe(hb.path, clock, symbols=("BTCUSDT",)).check_inline().ok


def test_a_sequence_gap_fails_until_the_feeder_restarts(tmp_path: Path) -> None:
    clock = Clock()
    hb = Heartbeat(tmp_path, "feeder", time_fn=lambda: clock.wall)
    hb.feed_event("BTCUSDT", WALL, 1)
    hb.beat()
    p = probe(hb.path, clock)
    assert p.check_inline().ok
    hb.feed_event("BTCUSDT", WALL, 5)
    hb.beat()
    r = p.check_inline()
    assert (r.ok, r.reason) == (False, FEED_SEQUENCE_GAP) and "BTCUSDT: 3" in r.detail
    assert p.check_inline().reason == FEED_SEQUENCE_GAP
    assert probe(hb.path, clock, max_gaps=3).check_inline().ok  # baseline 3, no new gap
    # A restarted feeder: a new pid and counters from 0.
    fresh = Heartbeat(tmp_path, "feeder", time_fn=lambda: clock.wall)
    fresh.feed_event("BTCUSDT", WALL, 100)
    doc = fresh.beat()
    doc["pid"] += 1  # stands in for the new process (same test process here)
    from autoheal.store.atomic import write_json_atomic

    write_json_atomic(hb.path, doc, durable=False)
    assert p.check_inline().ok


@pytest.mark.parametrize(
    ("content", "reason"),
    [
        (None, HEARTBEAT_MISSING),
        (b"", HEARTBEAT_INVALID),
        (b'{"feed": {"BTCUSDT": {"exchange_ts"', HEARTBEAT_INVALID),
        (b"\x00\xff\xfe binary \x89PNG", HEARTBEAT_INVALID),
        (b"[1, 2]", HEARTBEAT_INVALID),
        (b"x" * (70 * 1024), HEARTBEAT_INVALID),
    ],
)
def test_a_missing_truncated_or_garbage_file_is_a_clear_failure(tmp_path, content, reason):
    path = tmp_path / "feeder.heartbeat.json"
    if content is not None:
        path.write_bytes(content)
    r = probe(path, Clock()).check_inline()
    assert (r.ok, r.reason) == (False, reason)

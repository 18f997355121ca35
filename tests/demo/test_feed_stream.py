"""The exchange's feed faults end to end (issue 23): a real exchange, a real feeder, and the
daemon's ``feed_lag`` probe reading the feeder's real heartbeat file.

The socket stays open in every case: only the exchange's event times and sequence
numbers say what happened, which is exactly what the probe must see.
"""

from __future__ import annotations

import json
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
from websockets.sync.client import connect as ws_connect

from autoheal.core.reasons import FEED_SEQUENCE_GAP, FEED_STALE
from autoheal.probes.feed_lag import FeedLagProbe
from tests.demo.test_stack import ExchangeInfo, Spawner, read_json, start_exchange, wait_for

pytestmark = [pytest.mark.slow, pytest.mark.timeout(60)]

MAX_AGE = 1.0


def set_feed(exchange: ExchangeInfo, **doc: Any) -> dict[str, Any]:
    response = httpx.post(f"{exchange.url}/admin/feed", json=doc, timeout=2)
    response.raise_for_status()
    return response.json()["feed"]


@pytest.fixture
def spawn(tmp_path: Path) -> Iterator[Spawner]:
    spawner = Spawner(tmp_path)
    yield spawner
    spawner.close()


@pytest.fixture(scope="module")
def shared_feed_exchange(tmp_path_factory: pytest.TempPathFactory) -> Iterator[ExchangeInfo]:
    spawner = Spawner(tmp_path_factory.mktemp("exchange"))
    yield start_exchange(spawner, spawner.directory)
    spawner.close()


@pytest.fixture
def feed_exchange(shared_feed_exchange: ExchangeInfo) -> Iterator[ExchangeInfo]:
    """One exchange for the module; its feed faults cleared after each test."""
    yield shared_feed_exchange
    set_feed(shared_feed_exchange)


def start_feeder(spawn: Spawner, exchange: ExchangeInfo, runtime: Path) -> Path:
    spawn(
        "feeder",
        "--exchange",
        exchange.url,
        "--runtime-dir",
        runtime,
        "--heartbeat-interval",
        "0.1",
    )
    path = runtime / "feeder.heartbeat.json"
    wait_for(
        "a feed section with every symbol",
        lambda: (b := read_json(path)) and len(b.get("feed", {})) == 3 and b,
    )
    return path


def test_every_event_is_sent_once_in_order(feed_exchange: ExchangeInfo) -> None:
    seqs: dict[str, list[int]] = {}
    with ws_connect(feed_exchange.ws_url, open_timeout=2) as ws:
        for _ in range(60):
            m = json.loads(ws.recv(timeout=2))
            seqs.setdefault(m["symbol"], []).append(m["seq"])
    for symbol, got in seqs.items():
        assert got == list(range(got[0], got[0] + len(got))), symbol


def test_admin_feed_refuses_bad_plans(feed_exchange: ExchangeInfo) -> None:
    for bad in ({"freeze": ["NOPE"]}, {"skip": {"BTCUSDT": 0}}, {"quiet": "yes"}, {"x": 1}, []):
        r = httpx.post(f"{feed_exchange.url}/admin/feed", json=bad, timeout=2)
        assert r.status_code == 400 and r.json()["error"] == "invalid_feed"


def test_a_frozen_symbol_is_feed_stale_while_socket_and_heartbeat_live(
    feed_exchange: ExchangeInfo, spawn: Spawner, tmp_path: Path
) -> None:
    path = start_feeder(spawn, feed_exchange, tmp_path / "rt")
    probe, others = (
        FeedLagProbe(path, MAX_AGE),
        FeedLagProbe(path, MAX_AGE, symbols=("BTCUSDT", "SOLUSDT")),
    )
    wait_for("a healthy feed", lambda: probe.check_inline().ok)
    frozen_at = time.time()
    set_feed(feed_exchange, freeze=["ETHUSDT"])
    r = wait_for("feed_stale", lambda: (r := probe.check_inline()).reason == FEED_STALE and r)
    assert "ETHUSDT" in r.detail and "BTCUSDT" not in r.detail
    beat = read_json(path)
    # Stale because its exchange time stopped at the freeze (its last event may predate
    # the freeze by up to a tick: that, not the freeze, is what max_age is counted from).
    stuck = beat["feed"]["ETHUSDT"]["exchange_ts"]
    assert stuck <= time.time() - MAX_AGE and stuck < frozen_at + 0.5
    assert beat["ws_connected"] is True and time.time() - beat["ts"] < MAX_AGE
    assert time.time() - beat["ws_last_msg_ts"] < MAX_AGE  # messages still come
    assert others.check_inline().ok
    set_feed(feed_exchange)
    wait_for("the frozen symbol moving again", lambda: probe.check_inline().ok)


def test_skipped_sequence_numbers_are_a_gap_until_a_resync(
    feed_exchange: ExchangeInfo, spawn: Spawner, tmp_path: Path
) -> None:
    path = start_feeder(spawn, feed_exchange, tmp_path / "rt")
    probe = FeedLagProbe(path, MAX_AGE)
    wait_for("a healthy feed", lambda: probe.check_inline().ok)
    set_feed(feed_exchange, skip={"SOLUSDT": 2})
    r = wait_for(
        "feed_sequence_gap", lambda: (r := probe.check_inline()).reason == FEED_SEQUENCE_GAP and r
    )
    assert "SOLUSDT: 2 sequence numbers" in r.detail
    assert read_json(path)["feed"]["SOLUSDT"]["gaps"] == 2
    assert probe.check_inline().reason == FEED_SEQUENCE_GAP  # it holds
    assert FeedLagProbe(path, MAX_AGE, max_gaps=5).check_inline().ok


def test_a_quiet_market_is_no_alarm(spawn: Spawner, tmp_path: Path) -> None:
    ex = start_exchange(spawn, tmp_path)
    set_feed(ex, quiet=True)
    path = start_feeder(spawn, ex, tmp_path / "rt")
    probe = FeedLagProbe(path, MAX_AGE)
    first = read_json(path)["feed"]
    end = time.monotonic() + 3 * MAX_AGE
    checks = 0
    while time.monotonic() < end:
        r = probe.check_inline()
        assert r.ok, r
        checks += 1
        time.sleep(0.05)
    last = read_json(path)["feed"]
    for symbol in first:
        assert last[symbol]["exchange_ts"] > first[symbol]["exchange_ts"] + MAX_AGE
    prices = read_json(tmp_path / "rt" / "prices.json")["prices"]
    assert {s: p["price"] for s, p in prices.items()} == {
        "BTCUSDT": 60000.0,
        "ETHUSDT": 3000.0,
        "SOLUSDT": 150.0,
    }  # the book never moved
    assert checks > 10

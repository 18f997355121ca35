"""Reconciliation through the guarded ccxt exchange: ccxt's own ``binanceusdm`` on the demo
venue; a person's order placed beside the guard is reported, never adopted or cancelled."""

from __future__ import annotations

from pathlib import Path

import pytest

from autoheal.ccxt import GuardedExchange
from autoheal.drills.stacks.exchange import ExchangeHarness
from autoheal.guard.breaker import CircuitBreaker
from autoheal.guard.errors import OrderOutcomeUnknownError
from autoheal.guard.gate import TradingGate
from autoheal.guard.idempotency import OrderLedger
from autoheal.guard.reconcile import ALERT_NAME, ORDER_UNKNOWN_AT_VENUE
from autoheal.store.alerts import read_alerts
from tests.ccxt.venue import BTC, ETH, binance, fault, runtime, stats

pytestmark = [pytest.mark.slow, pytest.mark.timeout(60), pytest.mark.anyio]


async def test_an_order_beside_the_guard_is_reported_and_its_own_are_matched(
    venue: ExchangeHarness, tmp_path: Path
) -> None:
    rt, stop = runtime(tmp_path / "rt")
    ex = GuardedExchange(
        binance(venue.url),
        symbols=[BTC, ETH],
        gate=TradingGate(rt, stop),
        ledger=OrderLedger(rt),
        breaker=CircuitBreaker(rt),
    )
    recon = ex.reconciler(venue="binance", period_s=10.0)
    by_hand = binance(venue.url)
    try:
        own = await ex.create_order(BTC, "limit", "buy", 0.01, 1000.0)
        assert (await recon.run_once())["ok"] is True
        manual = await by_hand.create_order(
            ETH, "limit", "sell", 0.5, 9999.0, {"newClientOrderId": "manual-by-alice"}
        )
        doc = await recon.run_once()
        alert = read_alerts(rt)[ALERT_NAME]
        await fault(venue.url, "http_503", "GET /fapi/v1/openOrders")
        broken = await recon.run_once()
    finally:
        await ex.close()
        await by_hand.close()
    assert doc["ok"] is False
    assert [
        (o["order_id"], o["client_order_id"], o["symbol"], o["side"])
        for o in doc["unknown_at_venue"]
    ] == [(manual["id"], "manual-by-alice", ETH, "sell")]
    assert doc["matched"] == {own["id"]: own["clientOrderId"]}
    assert alert["reasons"] == [ORDER_UNKNOWN_AT_VENUE]
    assert "manual-by-alice" not in ex.ledger.records()  # never adopted
    open_ids = [o["client_order_id"] for o in (await stats(venue.url))["open_orders"]]
    assert "manual-by-alice" in open_ids  # never cancelled
    assert broken["status"] == "unknown" and broken["ok"] is False  # a venue error: never ok
    assert read_alerts(rt)[ALERT_NAME]["reasons"] == ["reconcile_unknown"]


async def test_an_unknown_outcome_makes_a_pass_due_at_once_and_the_order_is_matched(
    venue: ExchangeHarness, tmp_path: Path
) -> None:
    rt, stop = runtime(tmp_path / "rt")
    ex = GuardedExchange(
        binance(venue.url),
        symbols=[BTC],
        gate=TradingGate(rt, stop),
        ledger=OrderLedger(rt),
        breaker=CircuitBreaker(rt),
        strategy="grid",  # its tag in the client order id: matched all the same
    )
    recon = ex.reconciler(period_s=3600.0)
    try:
        await ex.load_markets()
        await recon.run_once()
        assert not recon.due()
        await fault(venue.url, "accept_then_drop", "POST /fapi/v1/order")
        with pytest.raises(OrderOutcomeUnknownError):
            await ex.create_order(BTC, "limit", "buy", 0.01, 1000.0)
        assert recon.due()  # an hour early
        doc = await recon.run_once()
    finally:
        await ex.close()
    # The booked order whose answer was lost is the ledger's (pending): matched, not unknown.
    assert doc["ok"] is True and len(doc["matched"]) == 1

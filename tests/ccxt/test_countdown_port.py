"""The venue's own dead man's switch armed through ccxt (:class:`CcxtCountdownPort`), with
the guard's :class:`DeadmanSwitch`, on the demo venue's Binance dialect."""

from __future__ import annotations

import asyncio
import time
from pathlib import Path

import ccxt.async_support as ccxt
import pytest

from autoheal.ccxt import CcxtCountdownPort, CountdownUnsupportedError, GuardedExchange
from autoheal.drills.stacks.exchange import ExchangeHarness
from autoheal.guard.breaker import CircuitBreaker
from autoheal.guard.deadman import DeadmanPolicy, DeadmanSwitch
from autoheal.guard.gate import TradingGate
from autoheal.guard.idempotency import OrderLedger
from tests.ccxt.venue import BTC, ETH, binance, runtime, stats

pytestmark = [pytest.mark.slow, pytest.mark.timeout(60), pytest.mark.anyio]


async def test_binance_is_armed_per_symbol_and_its_countdown_fires_with_nobody_calling(
    venue: ExchangeHarness,
) -> None:
    ex = binance(venue.url)
    try:
        await ex.create_order(BTC, "limit", "buy", 0.01, 1000.0)
        await ex.create_order(ETH, "limit", "buy", 0.1, 100.0)
        port = CcxtCountdownPort(ex, [BTC])
        assert port.way == "binance"  # ccxt has no unified method for it: the raw endpoint
        await port.arm(0.3)
    finally:
        await ex.close()
    deadline = time.monotonic() + 5.0
    while (doc := await stats(venue.url))["binance_countdowns"]["fired"] == 0:
        assert time.monotonic() < deadline, doc["binance_countdowns"]
        await asyncio.sleep(0.05)
    assert [o["symbol"] for o in doc["open_orders"]] == ["ETHUSDT"]  # not armed for ETH
    assert [o["cancel_reason"] for o in doc["cancelled_orders"]] == ["countdown"]


async def test_the_switch_arms_then_cancels_only_own_orders_on_stop_txt(
    venue: ExchangeHarness, tmp_path: Path
) -> None:
    rt, stop = runtime(tmp_path / "rt")
    gate = TradingGate(rt, stop)
    ex = GuardedExchange(
        binance(venue.url),
        symbols=[BTC],
        gate=gate,
        ledger=OrderLedger(rt),
        breaker=CircuitBreaker(rt),
    )
    by_hand = binance(venue.url)
    try:
        await by_hand.create_order(BTC, "limit", "buy", 0.01, 999.0, {"newClientOrderId": "hand1"})
        await ex.create_order(BTC, "limit", "buy", 0.01, 1000.0)
        await ex.create_order(BTC, "limit", "buy", 0.01, 1001.0)
        switch = DeadmanSwitch(
            CcxtCountdownPort(ex.exchange, [BTC]), gate, DeadmanPolicy(60.0, 15.0)
        )
        await switch.tick()
        assert switch.arms == 1
        armed = (await stats(venue.url))["binance_countdowns"]["armed"]
        assert 59.0 < armed["BTCUSDT"] <= 60.0
        stop.write_text("halt\n")
        await switch.tick()
        assert switch.cancels == 1
    finally:
        await ex.close()
        await by_hand.close()
    doc = await stats(venue.url)
    assert [o["client_order_id"] for o in doc["open_orders"]] == ["hand1"]
    assert [o["cancel_reason"] for o in doc["cancelled_orders"]] == ["cancel", "cancel"]


def test_a_venue_without_a_countdown_is_a_config_error_naming_it() -> None:
    ex = ccxt.coinbase()
    with pytest.raises(CountdownUnsupportedError, match=r"^coinbase: .*cannot be armed"):
        CcxtCountdownPort(ex, ["BTC/USD"])
    with pytest.raises(ValueError, match="symbols"):
        CcxtCountdownPort(ccxt.okx(), [])


def test_a_venue_with_the_unified_method_uses_it() -> None:
    for name in ("okx", "bybit", "kraken"):
        assert (
            CcxtCountdownPort(getattr(ccxt, name)(), ["BTC/USDT"]).way == "cancel_all_orders_after"
        )

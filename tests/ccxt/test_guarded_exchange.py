"""A ccxt bot's exchange, guarded: ccxt's own ``binanceusdm`` on the demo venue, with the
real gate, idempotency ledger and circuit breaker in a runtime directory.

What reached the venue is read from the venue (``/admin/stats``), never from the bot.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from autoheal.ccxt import GuardedExchange, KillIncompleteError, OrderRefusedError
from autoheal.ccxt.identity import client_order_id
from autoheal.drills.stacks.exchange import ExchangeHarness
from autoheal.guard.breaker import CircuitBreaker
from autoheal.guard.errors import OrderOutcomeUnknownError
from autoheal.guard.gate import TradingGate
from autoheal.guard.idempotency import OrderLedger, order_signature
from autoheal.store.flags import Flags, write_flags
from tests.ccxt.venue import BTC, ETH, binance, fault, runtime, stats

pytestmark = [pytest.mark.slow, pytest.mark.timeout(60), pytest.mark.anyio]


def guarded(venue: ExchangeHarness, tmp_path: Path, **kw: Any) -> GuardedExchange:
    rt, stop = runtime(tmp_path / "rt")
    kw.setdefault("breaker", CircuitBreaker(rt))
    return GuardedExchange(
        binance(venue.url),
        symbols=[BTC, ETH],
        gate=TradingGate(rt, stop),
        ledger=OrderLedger(rt),
        **kw,
    )


def client_ids(doc: dict[str, Any]) -> list[str]:
    every = [*doc["orders"], *doc["open_orders"], *doc["cancelled_orders"]]
    return sorted(o["client_order_id"] for o in every)


async def test_an_order_goes_out_once_under_the_ledgers_client_order_id(
    venue: ExchangeHarness, tmp_path: Path
) -> None:
    ex = guarded(venue, tmp_path)
    try:
        first = await ex.create_order(BTC, "limit", "buy", 0.01, 1000.0)
        again = await ex.create_order(BTC, "limit", "buy", 0.01, 1000.0)  # the same signal
    finally:
        await ex.close()
    sig = order_signature("BTCUSDT", "buy", 0.01, 1000.0)
    assert first["clientOrderId"] == client_order_id("ah", sig) == "ah" + sig[:30]
    assert again["id"] == first["id"]  # the first call's result, not a second order
    assert client_ids(await stats(venue.url)) == [first["clientOrderId"]]
    assert ex.ledger.status(sig) == "placed"


async def test_the_gate_refuses_before_anything_is_sent_and_cancels_always_pass(
    venue: ExchangeHarness, tmp_path: Path
) -> None:
    ex = guarded(venue, tmp_path)
    try:
        resting = await ex.create_order(BTC, "limit", "buy", 0.01, 1000.0)
        (tmp_path / "rt" / "STOP.TXT").write_text("halt\n")
        with pytest.raises(OrderRefusedError) as refused:
            await ex.create_order(BTC, "limit", "buy", 0.01, 1001.0)
        assert refused.value.reason == "stop_file_present"
        with pytest.raises(OrderRefusedError):
            await ex.create_order(BTC, "market", "sell", 0.01, None, {"reduceOnly": True})
        cancelled = await ex.cancel_order(resting["id"], BTC)  # the exchange's own
        assert cancelled["status"] == "canceled"
    finally:
        await ex.close()
    doc = await stats(venue.url)
    assert [o["client_order_id"] for o in doc["cancelled_orders"]] == [resting["clientOrderId"]]
    assert doc["orders"] == [] and doc["open_orders"] == []


async def test_reduce_only_mode_lets_only_a_reduce_only_order_through(
    venue: ExchangeHarness, tmp_path: Path
) -> None:
    ex = guarded(venue, tmp_path)
    try:
        await ex.create_order(BTC, "market", "buy", 0.02)  # a position to reduce
        write_flags(tmp_path / "rt", Flags(mode="REDUCE_ONLY", reason="drawdown"))
        with pytest.raises(OrderRefusedError) as refused:
            await ex.create_order(BTC, "market", "buy", 0.01)
        assert refused.value.reason == "reduce_only"
        with pytest.raises(OrderRefusedError):  # a plain sell may open a short
            await ex.create_order(BTC, "limit", "sell", 0.01, 90000.0)
        closed = await ex.create_order(BTC, "market", "sell", 0.01, None, {"reduceOnly": True})
        assert closed["status"] == "closed"
        assert closed["info"]["reduceOnly"] is True
    finally:
        await ex.close()
    sides = [o["side"] for o in (await stats(venue.url))["orders"]]
    assert sides == ["buy", "sell"]


async def test_an_order_whose_answer_was_lost_is_found_and_never_sent_twice(
    venue: ExchangeHarness, tmp_path: Path
) -> None:
    ex = guarded(venue, tmp_path)
    try:
        await ex.load_markets()
        # The venue books the order, then the connection drops before the answer.
        await fault(venue.url, "accept_then_drop", "POST /fapi/v1/order")
        with pytest.raises(OrderOutcomeUnknownError) as unknown:
            await ex.create_order(BTC, "limit", "buy", 0.01, 1000.0)
        sig = unknown.value.sig
        assert ex.ledger.status(sig) == "pending"
        # The bot tries again: looked up by its client order id, returned, not resent.
        found = await ex.create_order(BTC, "limit", "buy", 0.01, 1000.0)
        assert found["clientOrderId"] == client_order_id("ah", sig)
        assert ex.ledger.status(sig) == "placed"
    finally:
        await ex.close()
    doc = await stats(venue.url)
    assert client_ids(doc) == [client_order_id("ah", sig)]
    assert doc["calls"]["POST /fapi/v1/order"] == 1


async def test_an_order_that_never_arrived_is_sent_again_with_the_same_id(
    venue: ExchangeHarness, tmp_path: Path
) -> None:
    ex = guarded(venue, tmp_path)
    try:
        await ex.load_markets()
        await fault(venue.url, "down", "POST /fapi/v1/order")  # hung up before serving
        with pytest.raises(OrderOutcomeUnknownError) as unknown:
            await ex.create_order(BTC, "limit", "buy", 0.01, 1000.0)
        assert (await stats(venue.url))["open_orders"] == []
        placed = await ex.create_order(BTC, "limit", "buy", 0.01, 1000.0)
    finally:
        await ex.close()
    assert placed["clientOrderId"] == client_order_id("ah", unknown.value.sig)
    assert client_ids(await stats(venue.url)) == [placed["clientOrderId"]]


async def test_a_failed_lookup_sends_nothing(venue: ExchangeHarness, tmp_path: Path) -> None:
    ex = guarded(venue, tmp_path)
    try:
        await ex.load_markets()
        await fault(venue.url, "accept_then_drop", "POST /fapi/v1/order")
        with pytest.raises(OrderOutcomeUnknownError):
            await ex.create_order(BTC, "limit", "buy", 0.01, 1000.0)
        await fault(venue.url, "http_503", "GET /fapi/v1/order", count=None)  # no lookups
        with pytest.raises(OrderOutcomeUnknownError):
            await ex.create_order(BTC, "limit", "buy", 0.01, 1000.0)
        await fault(venue.url, "none", "/fapi/v1", count=None)
    finally:
        await ex.close()
    doc = await stats(venue.url)
    assert doc["calls"]["POST /fapi/v1/order"] == 1  # nothing was sent again
    assert len(doc["open_orders"]) == 1


async def test_the_kill_cancels_only_own_orders_and_verifies_they_are_gone(
    venue: ExchangeHarness, tmp_path: Path
) -> None:
    ex = guarded(venue, tmp_path)
    by_hand = binance(venue.url)
    try:
        manual = await by_hand.create_order(
            BTC, "limit", "buy", 0.01, 999.0, {"newClientOrderId": "manual-by-alice"}
        )
        for price in (1000.0, 1001.0):
            await ex.create_order(BTC, "limit", "buy", 0.01, price)
        await ex.create_order(ETH, "limit", "buy", 0.1, 100.0)
        # The first cancel's answer is lost: the kill reads again and sees it gone.
        await fault(venue.url, "accept_then_drop", "DELETE /fapi/v1/order")
        report = await ex.kill(reason="test")
    finally:
        await ex.close()
        await by_hand.close()
    assert len(report.cancelled) >= 2 and report.rounds >= 2
    doc = await stats(venue.url)
    assert [o["client_order_id"] for o in doc["open_orders"]] == [manual["clientOrderId"]]
    assert sorted(o["symbol"] for o in doc["cancelled_orders"]) == ["BTCUSDT", "BTCUSDT", "ETHUSDT"]


async def test_a_kill_that_cannot_finish_says_so(venue: ExchangeHarness, tmp_path: Path) -> None:
    ex = guarded(venue, tmp_path, kill_within_s=1.0, poll_s=0.1)
    try:
        placed = await ex.create_order(BTC, "limit", "buy", 0.01, 1000.0)
        await fault(venue.url, "http_503", "DELETE /fapi/v1/order", count=None)
        with pytest.raises(KillIncompleteError) as incomplete:
            await ex.kill()
        assert incomplete.value.reason == "kill_incomplete"
        assert incomplete.value.left == [f"{placed['clientOrderId']}@{BTC}"]
    finally:
        await ex.close()


async def test_the_guard_kills_on_stop_txt(venue: ExchangeHarness, tmp_path: Path) -> None:
    import asyncio

    ex = guarded(venue, tmp_path)
    by_hand = binance(venue.url)
    try:
        await by_hand.create_order(BTC, "limit", "buy", 0.01, 999.0, {"newClientOrderId": "hand1"})
        for price in (1000.0, 1001.0, 1002.0):
            await ex.create_order(BTC, "limit", "buy", 0.01, price)
        watcher = asyncio.create_task(ex.guard(tick_s=0.05))
        (tmp_path / "rt" / "STOP.TXT").write_text("halt\n")
        for _ in range(200):  # at most 10 s
            doc = await stats(venue.url)
            if [o["client_order_id"] for o in doc["open_orders"]] == ["hand1"]:
                break
            await asyncio.sleep(0.05)
        watcher.cancel()
    finally:
        await ex.close()
        await by_hand.close()
    assert [o["client_order_id"] for o in doc["open_orders"]] == ["hand1"]
    assert len(doc["cancelled_orders"]) == 3


async def test_the_risk_limits_refuse_before_anything_is_sent(
    venue: ExchangeHarness, tmp_path: Path
) -> None:
    from decimal import Decimal

    from autoheal.guard.risk import RiskBook, RiskGuard, parse_limits

    books: list[str] = []

    async def book(symbol: str) -> RiskBook:
        books.append(symbol)
        return RiskBook(marks={"BTCUSDT": Decimal("60000")})

    limits = parse_limits({"max_order_qty": 0.05})
    ex = guarded(venue, tmp_path, risk=RiskGuard(limits, tmp_path / "rt"), book=book)
    try:
        with pytest.raises(OrderRefusedError) as refused:
            await ex.create_order(BTC, "limit", "buy", 0.1, 59000.0)
        assert refused.value.reason == "risk_max_order_qty"
        small = await ex.create_order(BTC, "limit", "buy", 0.01, 59000.0)
    finally:
        await ex.close()
    assert books == [BTC, BTC]
    assert client_ids(await stats(venue.url)) == [small["clientOrderId"]]
    with pytest.raises(ValueError, match="needs the book"):
        GuardedExchange(object(), symbols=[BTC], risk=RiskGuard(limits, tmp_path / "rt"))


async def test_transient_failures_open_the_breaker_and_then_buys_are_refused(
    venue: ExchangeHarness, tmp_path: Path
) -> None:
    from autoheal.guard.breaker_state import BreakerPolicy

    rt, _stop = runtime(tmp_path / "rt")
    ex = guarded(venue, tmp_path, breaker=CircuitBreaker(rt, BreakerPolicy(failure_threshold=2)))
    try:
        await ex.create_order(BTC, "market", "buy", 0.01)  # a position to reduce later
        await fault(venue.url, "rate_limit", "POST /fapi/v1/order", count=2)
        for price in (1000.0, 1001.0):
            with pytest.raises(Exception, match="-1003"):  # ccxt's DDoSProtection
                await ex.create_order(BTC, "limit", "buy", 0.01, price)
        with pytest.raises(OrderRefusedError) as refused:
            await ex.create_order(BTC, "limit", "buy", 0.01, 1002.0)
        assert refused.value.reason == "outage_circuit_breaker_active"
        # Risk-reducing orders still pass an open breaker.
        sell = await ex.create_order(BTC, "market", "sell", 0.01, None, {"reduceOnly": True})
        assert sell["info"]["reduceOnly"] is True
    finally:
        await ex.close()
    doc = await stats(venue.url)
    # The buy, two refused by the venue (429), the sell: the third buy never left.
    assert doc["calls"]["POST /fapi/v1/order"] == 4


async def test_a_failsafe_kills_too(venue: ExchangeHarness, tmp_path: Path) -> None:
    import asyncio

    ex = guarded(venue, tmp_path)
    try:
        await ex.create_order(BTC, "limit", "buy", 0.01, 1000.0)
        watcher = asyncio.create_task(ex.guard(tick_s=0.05))
        # What `autoheal failsafe enter` writes (beside STOP.TXT): the gate halts.
        write_flags(tmp_path / "rt", Flags(True, "SIGNAL_READ_ONLY", "maintenance", None, "op"))
        for _ in range(200):
            if not (await stats(venue.url))["open_orders"]:
                break
            await asyncio.sleep(0.05)
        watcher.cancel()
    finally:
        await ex.close()
    assert (await stats(venue.url))["open_orders"] == []


async def test_submits_and_cancels_count_against_the_strategys_message_limits(
    venue: ExchangeHarness, tmp_path: Path
) -> None:
    """A ccxt bot meets its message limits: each send is counted, a cancel never refused."""
    from decimal import Decimal

    from autoheal.guard.risk import RiskBook, RiskGuard, parse_limits

    async def book(symbol: str) -> RiskBook:
        return RiskBook(marks={"BTCUSDT": Decimal("60000")})

    limits = parse_limits({"max_submits_per_s": 2, "max_cancels_per_s": 100})
    risk = RiskGuard(limits, tmp_path / "rt", strategy="grid")
    ex = guarded(venue, tmp_path, risk=risk, book=book, strategy="grid")
    try:
        first = await ex.create_order(BTC, "limit", "buy", 0.01, 59000.0)
        await ex.create_order(BTC, "limit", "buy", 0.01, 59001.0)
        with pytest.raises(OrderRefusedError) as refused:
            await ex.create_order(BTC, "limit", "buy", 0.01, 59002.0)
        assert refused.value.reason == "risk_message_rate"
        await ex.cancel_order(first["id"], BTC)  # at the submit limit: the cancel goes out
        assert risk.message_rates()["grid"]["submit"] == 2
        assert risk.message_rates()["grid"]["cancel"] == 1
    finally:
        await ex.close()
    doc = await stats(venue.url)
    assert len(doc["cancelled_orders"]) == 1 and len(doc["open_orders"]) == 1

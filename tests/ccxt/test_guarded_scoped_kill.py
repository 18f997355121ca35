"""A scoped kill through the guarded ccxt exchange (issue 24), on the demo venue.

Two strategies of one runtime (``grid`` and ``trend``: one prefix, one ledger, their
own ``GuardedExchange``) rest orders on BTC and ETH. A scoped halt of ``strategy=grid``
refuses grid's new orders and its kill cancels only grid's (told apart by the
strategy tag in the client order id), verified by reading back; trend's stay and it
keeps trading. A scoped kill that cannot finish says so, and touches nothing outside
its scope. What reached the venue is read from the venue.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from autoheal.ccxt import GuardedExchange, KillIncompleteError, OrderRefusedError
from autoheal.drills.stacks.exchange import ExchangeHarness
from autoheal.guard.breaker import CircuitBreaker
from autoheal.guard.gate import TradingGate
from autoheal.guard.idempotency import OrderLedger
from autoheal.guard.scoped_record import set_halt
from autoheal.guard.scopes import Halt, parse_scope, strategy_tag_of
from tests.ccxt.venue import BTC, ETH, binance, fault, runtime, stats

pytestmark = [pytest.mark.slow, pytest.mark.timeout(60), pytest.mark.anyio]


def two_strategies(venue: ExchangeHarness, tmp_path: Path, **kw: Any) -> list[GuardedExchange]:
    rt, stop = runtime(tmp_path / "rt")
    return [
        GuardedExchange(
            binance(venue.url),
            symbols=[BTC, ETH],
            gate=TradingGate(rt, stop, recheck_interval_s=0.0),
            ledger=OrderLedger(rt),
            breaker=CircuitBreaker(rt),
            strategy=name,
            **kw,
        )
        for name in ("grid", "trend")
    ]


def by_strategy(doc: dict[str, Any]) -> dict[str | None, int]:
    counts: dict[str | None, int] = {}
    for o in doc["open_orders"]:
        tag = strategy_tag_of(o["client_order_id"], "ah")
        counts[tag] = counts.get(tag, 0) + 1
    return counts


async def test_a_strategys_halt_cancels_its_orders_only_and_the_other_keeps_trading(
    venue: ExchangeHarness, tmp_path: Path
) -> None:
    grid, trend = two_strategies(venue, tmp_path)
    try:
        for i, ex in enumerate((grid, trend)):
            await ex.create_order(BTC, "limit", "buy", 0.01, 1000.0 + i)
            await ex.create_order(ETH, "limit", "buy", 0.01, 100.0 + i)
        assert by_strategy(await stats(venue.url)) == {"grid": 2, "trend": 2}
        entry = grid.ledger.entry(next(iter(_ledger_names(grid))))
        assert entry is not None and entry["strategy"] in {"grid", "trend"}

        set_halt(tmp_path / "rt", "strategy=grid", Halt("runaway", 1.0, "alice"))
        with pytest.raises(OrderRefusedError) as refused:
            await grid.create_order(BTC, "limit", "buy", 0.01, 1005.0)
        assert refused.value.reason == "scoped_halt:strategy=grid"
        report = await grid.kill(reason="scoped_halt", scope=parse_scope("strategy=grid"))
        assert len(report.cancelled) == 2
        assert by_strategy(await stats(venue.url)) == {"trend": 2}
        placed = await trend.create_order(BTC, "limit", "buy", 0.01, 1006.0)
        assert strategy_tag_of(placed["clientOrderId"], "ah") == "trend"
    finally:
        await grid.close()
        await trend.close()


async def test_a_scoped_kill_that_cannot_finish_says_so_and_leaves_the_rest(
    venue: ExchangeHarness, tmp_path: Path
) -> None:
    grid, trend = two_strategies(venue, tmp_path, kill_within_s=1.0, poll_s=0.1)
    try:
        btc = await grid.create_order(BTC, "limit", "buy", 0.01, 1000.0)
        await grid.create_order(ETH, "limit", "buy", 0.01, 100.0)
        await trend.create_order(BTC, "limit", "buy", 0.01, 1001.0)
        await fault(venue.url, "http_503", "DELETE /fapi/v1/order", count=None)
        with pytest.raises(KillIncompleteError) as incomplete:
            await grid.kill(scope=parse_scope("strategy=grid,symbol=BTCUSDT"))
        assert incomplete.value.left == [f"{btc['clientOrderId']}@{BTC}"]
        assert len((await stats(venue.url))["open_orders"]) == 3
    finally:
        await grid.close()
        await trend.close()


def _ledger_names(ex: GuardedExchange) -> list[str]:
    import json

    doc = json.loads(ex.ledger.path.read_text())
    return list(doc["sigs"])

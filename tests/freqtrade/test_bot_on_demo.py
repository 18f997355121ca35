"""A real freqtrade 2026.9 bot, dry-run, on the demo exchange's Binance spot dialect.

Each test: the demo exchange (port 0) and the bot (``python -m freqtrade trade``, its API
on a free loopback port) as real processes in ``tmp_path``, then stopped. The bot's
strategy opens one trade per loop (:mod:`autoheal.drills.stacks.freqtrade_strategy`),
so "no new trade opens" is measured in bot loops: advances of ``/api/v1/health``'s
``last_process_ts``.
"""

from __future__ import annotations

import json
import time
from pathlib import Path
from typing import Any

import anyio
import httpx
import psutil
import pytest

from tests.freqtrade.conftest import needs_freqtrade, running_bot

pytestmark = [needs_freqtrade, pytest.mark.slow, pytest.mark.anyio, pytest.mark.timeout(180)]

#: Bounds on a loaded 2-vCPU host (a loop is ~1 s; a start, imports and markets, ~5 s).
LOOPS_S = 30.0
TRADES_S = 60.0


def _urls(doc: Any) -> list[str]:
    if isinstance(doc, str):
        return [doc]
    if isinstance(doc, dict):
        return [u for value in doc.values() for u in _urls(value)]
    return []


async def test_bot_comes_up_and_its_last_loop_is_fresh_and_advancing(tmp_path: Path) -> None:
    async with running_bot(tmp_path) as (_venue, bot):
        first = await bot.wait_loops(1, LOOPS_S)
        # Stamped by the bot's start-up, which ends after the API answers its first ping
        # (null until then: seen on a loaded machine); set once a loop has run.
        health = await bot.api.health()
        assert isinstance(health["bot_start_ts"], int)
        assert abs(time.time() - first) < 5
        later = await bot.wait_loops(3, LOOPS_S)
        assert later >= first + 3
        assert abs(time.time() - later) < 5


async def test_a_dry_run_trade_opens_at_the_demos_prices_over_loopback_only(
    tmp_path: Path,
) -> None:
    async with running_bot(tmp_path) as (venue, bot):
        assert await bot.wait_trades(1, TRADES_S) >= 1
        connections = psutil.Process(bot.pid).net_connections(kind="inet")
        assert connections, "the bot holds its API's socket at least"
        assert {c.raddr.ip for c in connections if c.raddr} <= {"127.0.0.1"}

        trade = [*await bot.api.open_trades(), *await bot.api.closed_trades(1)][0]
        async with httpx.AsyncClient(base_url=venue.url, timeout=5.0) as client:
            symbol = trade["pair"].replace("/", "")
            ticker = await client.get("/api/v3/ticker/price", params={"symbol": symbol})
        assert trade["open_rate"] == pytest.approx(float(ticker.json()["price"]), rel=0.02)

        calls = (await venue.stats())["calls"]
        for route in ("exchangeInfo", "klines", "ticker/24hr", "depth"):
            assert calls.get(f"GET /api/v3/{route}", 0) >= 1, route
        config = json.loads(bot.bot.config_path.read_text())
        urls = _urls(config["exchange"]["ccxt_config"]["urls"])
        assert len(urls) > 20
        loopback = venue.url.split("://")[1]
        assert all(u.split("://")[1].startswith(loopback + "/") for u in urls)


async def test_stopentry_stops_new_trades_for_loops_and_reload_config_restores_them(
    tmp_path: Path,
) -> None:
    async with running_bot(tmp_path) as (_venue, bot):
        await bot.wait_trades(2, TRADES_S)  # trading: one new trade a loop
        await bot.api.stopentry()
        assert await bot.api.state() == "paused"  # freqtrade 2026.9: stopentry is pause
        await bot.wait_loops(1, LOOPS_S)  # the loop under way when it landed
        held = await bot.api.trade_count()
        await bot.wait_loops(5, LOOPS_S)
        assert await bot.api.trade_count() == held
        assert await bot.api.open_trades() == []  # exits went on

        await bot.api.reload_config()
        await bot.wait_trades(held + 1, TRADES_S)
        assert await bot.api.state() == "running"


async def test_start_undoes_stopentry_without_a_reload(tmp_path: Path) -> None:
    async with running_bot(tmp_path) as (_venue, bot):
        await bot.wait_trades(1, TRADES_S)
        await bot.api.stopentry()
        await bot.wait_loops(1, LOOPS_S)
        held = await bot.api.trade_count()
        await bot.wait_loops(3, LOOPS_S)
        assert await bot.api.trade_count() == held
        await bot.api.start()
        assert await bot.api.state() == "running"
        await bot.wait_trades(held + 1, TRADES_S)


async def test_stop_halts_the_loop_itself_so_health_goes_stale_and_start_resumes(
    tmp_path: Path,
) -> None:
    """What a supervisor must know: after ``/stop`` the bot's API answers but its loop
    clock stands still, exactly as when the bot hangs."""
    async with running_bot(tmp_path) as (_venue, bot):
        await bot.wait_trades(1, TRADES_S)
        await bot.api.stop()
        assert await bot.api.state() == "stopped"
        frozen = await _stale(bot, 2.0)  # the loop under way when it landed has ended
        held = await bot.api.trade_count()
        observed_until = time.monotonic() + 4.0  # four loop times: none runs
        while time.monotonic() < observed_until:
            assert await bot.api.last_loop_ts() == frozen
            await anyio.sleep(0.2)
        assert await bot.api.trade_count() == held
        await bot.api.start()
        await bot.wait_loops(2, LOOPS_S)
        await bot.wait_trades(held + 1, TRADES_S)


async def _stale(bot: Any, age_s: float) -> int:
    """The bot's last loop time once it is ``age_s`` old (bounded by :data:`LOOPS_S`)."""
    deadline = time.monotonic() + LOOPS_S
    while True:
        ts = await bot.api.last_loop_ts()
        if ts is not None and time.time() - ts >= age_s:
            return int(ts)
        assert time.monotonic() < deadline, f"the loop clock still moves: {ts}"
        await anyio.sleep(0.2)

"""The demo trader with the execution throttles: its heartbeat carries the guard's message
rates per strategy, and a submit over ``max_submits_per_s`` never reaches the exchange
(the real demo exchange on a loopback port, the real heartbeat file)."""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path

import anyio
import httpx
import pytest

from autoheal.demo.trader import RiskCheckedSession, parse_args
from autoheal.guard.risk import RiskGuard, parse_limits
from tests.demo.test_stack import ExchangeInfo, Spawner, start_exchange
from tests.guard.conftest import FakeClock, daemon_runtime

pytestmark = [pytest.mark.timeout(60)]


@pytest.fixture(scope="module")
def exchange(tmp_path_factory: pytest.TempPathFactory) -> Iterator[ExchangeInfo]:
    spawner = Spawner(tmp_path_factory.mktemp("exchange"))
    yield start_exchange(spawner, spawner.directory)
    spawner.close()


def test_the_heartbeat_reports_the_message_rates_and_the_limit_holds(
    exchange: ExchangeInfo, tmp_path: Path
) -> None:
    daemon_runtime(tmp_path)
    args = parse_args(
        ["--runtime-dir", str(tmp_path), "--stop-file", str(tmp_path / "STOP.TXT"),
         "--qty", "0.001", "--retries", "1", "--backoff", "0.001", "--strategy", "grid"]
    )  # fmt: skip
    limits = parse_limits({"max_submits_per_s": 2})
    before = exchange.orders()

    async def main() -> list[bool]:
        async with httpx.AsyncClient(base_url=exchange.url, timeout=5) as http:
            session = RiskCheckedSession(args, http, limits)
            assert session.risk.strategy == "grid"  # from --strategy
            # the same guard on a clock that stands still: a slow machine cannot let the
            # window slide between the signals
            session.risk = RiskGuard(limits, tmp_path, time_fn=FakeClock(), strategy="grid")
            session.beat()
            first = json.loads((tmp_path / "trader.heartbeat.json").read_text())
            assert first["risk"] == {
                "message_rates": {"grid": {"submit": 0, "modify": 0, "cancel": 0}}
            }
            placed = [await session.on_signal("buy", 60000.0 + i) for i in range(3)]
            session.beat()
            return placed

    placed = anyio.run(main)
    assert placed == [True, True, False]  # within one second: the third is one too many
    assert exchange.orders() - before == 2
    beat = json.loads((tmp_path / "trader.heartbeat.json").read_text())
    assert beat["risk"]["message_rates"]["grid"]["submit"] == 2

"""The demo trader's order path settles unknown outcomes by client order id, for real.

The guarded path (:class:`TradingSession`) in-process against the fake exchange process
on loopback; the exchange's faults make the outcome unknown in the two ways that matter:
the order was never served (``down``) or served with the answer lost
(``accept_then_drop``).
"""

from __future__ import annotations

import argparse
import os
import subprocess
import sys
from pathlib import Path

import anyio
import pytest

from autoheal.demo.session import TradingSession, _outcome_unknown
from autoheal.drills.stacks.exchange import ExchangeHarness
from autoheal.store.atomic import read_json
from tests.guard.conftest import daemon_runtime

pytestmark = pytest.mark.slow
ORDERS, LOOKUPS = "POST /api/orders", "GET /api/orders"


def session_for(tmp_path: Path, http: object) -> TradingSession:
    args = argparse.Namespace(runtime_dir=tmp_path / "rt", stop_file=tmp_path / "rt" / "STOP.TXT",
                              symbol="BTCUSDT", qty=0.001, backoff=0.01, retries=2,
                              no_gate=False, max_orders=None, max_price_age=5.0)
    daemon_runtime(tmp_path / "rt")  # as the daemon leaves it: flags written
    return TradingSession(args, http)  # type: ignore[arg-type]


def test_unserved_order_is_looked_up_released_and_sent_once_more(tmp_path: Path) -> None:
    async def main() -> None:
        ex = await ExchangeHarness(tmp_path / "ex").start()
        try:
            async with ex.client() as http:
                session = session_for(tmp_path, http)
                await ex.set_fault("down", paths=[ORDERS], count=1)
                assert not await session.on_signal("buy", 60000.0)
                (sig,) = [s for s, e in _sigs(session).items() if e["status"] == "pending"]
                assert await ex.orders() == 0
                assert await session.on_signal("buy", 60000.0)  # asked, absent, sent once
                assert await ex.calls(LOOKUPS) == 1 and await ex.calls(ORDERS) == 2
                assert await ex.orders() == 1
                assert (await ex.stats())["orders"][0]["client_order_id"] == sig
                assert session.ledger.status(sig) == "placed"
                assert session.ledger.result(sig)["client_order_id"] == sig
        finally:
            await ex.stop()

    anyio.run(main)


def test_a_failed_lookup_settles_nothing_and_sends_nothing(tmp_path: Path) -> None:
    async def main() -> None:
        ex = await ExchangeHarness(tmp_path / "ex").start()
        try:
            async with ex.client() as http:
                session = session_for(tmp_path, http)
                await ex.set_fault("accept_then_drop", paths=[ORDERS], count=1)
                await session.on_signal("buy", 60000.0)
                (sig,) = list(_sigs(session))
                await ex.set_fault("http_503", paths=[LOOKUPS])
                for _ in range(3):
                    assert not await session.on_signal("buy", 60000.0)
                assert session.ledger.status(sig) == "pending"
                assert await ex.calls(ORDERS) == 1 and await ex.calls(LOOKUPS) == 3
                await ex.clear_fault()
                assert not await session.on_signal("buy", 60000.0)  # found: settled
                assert session.ledger.status(sig) == "placed"
                assert await ex.calls(ORDERS) == 1 and await ex.orders() == 1
                assert session.inventory.positions() == {"BTCUSDT": 0.001}
        finally:
            await ex.stop()

    anyio.run(main)


def _sigs(session: TradingSession) -> dict[str, dict[str, object]]:
    return dict((read_json(session.ledger.path).doc or {}).get("sigs") or {})


def test_only_unknown_outcomes_are_reconciled_never_a_live_send_in_flight() -> None:
    dead = subprocess.run([sys.executable, "-c", "import os; print(os.getpid())"],
                          capture_output=True, text=True, check=True, timeout=30)
    dead_pid = int(dead.stdout)
    pending = {"status": "pending", "reason": "in_flight"}
    assert not _outcome_unknown(None)
    assert not _outcome_unknown({"status": "placed"})
    assert not _outcome_unknown({**pending, "pid": os.getpid()})  # this process is sending
    assert not _outcome_unknown({**pending, "pid": os.getppid()})  # a live process is sending
    assert _outcome_unknown({**pending, "pid": dead_pid})  # the sender died mid-send
    assert _outcome_unknown({"status": "pending", "reason": "conn_reset", "pid": os.getpid()})

"""Issue 24: the order ledger reconciled with the venue's open orders (RTS 6 Art. 17(3)).

The pure diff under hypothesis (every venue order matched or reported, nothing
adopted, across passes); the runner on real files with a venue that is a plain list
behind an async function: the file, the alert raised and cleared, the period, a pass
due at once after an unknown outcome, and fail closed on a venue error, garbage and
an unreadable ledger.
"""

from __future__ import annotations

import asyncio
import logging
from typing import Any

import anyio
import pytest
from hypothesis import given
from hypothesis import strategies as st

from autoheal.core import reasons
from autoheal.drills.stacks.exchange import ExchangeHarness
from autoheal.guard import OrderLedger
from autoheal.guard import reconcile as rec
from autoheal.guard.idempotency import ORDER_SIGS_RELPATH
from autoheal.guard.reconcile import Reconciler, VenueOrder, diff, parse_venue_orders
from autoheal.store.alerts import alert_path, read_alerts
from autoheal.store.atomic import read_json
from tests.demo.test_session_reconcile import session_for

pytestmark = [pytest.mark.timeout(60)]

_ids = st.sampled_from([f"c{i}" for i in range(8)])
_records = st.dictionaries(
    _ids,
    st.fixed_dictionaries(
        {
            "status": st.sampled_from(["placed", "pending"]),
            "symbol": st.just("BTCUSDT"),
            "side": st.sampled_from(["buy", "sell"]),
            "qty": st.just("0.001"),
            "ts": st.just(1.0),
            "result": st.sampled_from([None, {"status": "open"}, {"status": "filled"}]),
        }
    ),
    max_size=6,
)
_venue = st.lists(
    st.builds(
        VenueOrder,
        st.sampled_from([f"o{i}" for i in range(10)]),
        st.one_of(st.none(), _ids, st.sampled_from(["manual-1", "x"])),
        st.just("BTCUSDT"),
        st.sampled_from(["buy", "sell"]),
        st.just("1"),
    ),
    max_size=8,
    unique_by=lambda o: o.order_id,
)


@given(_records, _venue, st.dictionaries(st.sampled_from([f"o{i}" for i in range(10)]), _ids))
def test_every_venue_order_is_matched_or_reported_and_nothing_is_adopted(ledger, venue, before):
    found = diff(ledger, venue, matched_before=before)
    ids = [o.order_id for o in venue]
    unknown = [o.order_id for o in found.unknown]
    assert sorted(ids) == sorted([*found.matched, *unknown])  # each exactly once
    assert not set(found.matched) & set(unknown)
    for order in venue:
        if order.order_id in found.matched:  # a ledger's own, or this very order matched before
            assert order.client_id in ledger or before.get(order.order_id) == order.client_id
        else:
            assert order.client_id not in ledger
    # Nothing adopted: pass after pass against the same ledger, the unknown stay unknown.
    again = diff(ledger, venue, matched_before=found.matched)
    assert [o.order_id for o in again.unknown] == unknown
    assert again.matched == found.matched
    # Missing: exactly the ledger's resting records the venue does not list.
    listed = {o.client_id for o in venue}
    assert {m["name"] for m in found.missing} == {
        n for n, e in ledger.items() if rec.resting_open(e) and n not in listed
    }


@given(_records, _venue)
def test_an_empty_ledger_reports_every_venue_order(ledger, venue):
    found = diff({}, venue)
    assert [o.order_id for o in found.unknown] == [o.order_id for o in venue]
    assert found.ok is (not venue)


def test_a_forged_client_id_on_another_order_id_is_not_carried_over():
    before = {"o1": "c1"}
    found = diff({}, [VenueOrder("o2", "c1", "BTCUSDT", "buy", "1")], matched_before=before)
    assert [o.order_id for o in found.unknown] == ["o2"]


@pytest.mark.parametrize(
    "docs",
    [None, {"orders": []}, [1], [{"symbol": "BTCUSDT"}], [{"id": ""}]],
)
def test_garbage_open_orders_are_an_error_never_no_orders(docs):
    with pytest.raises(ValueError):
        parse_venue_orders(docs)


def test_demo_and_ccxt_order_shapes_read_alike():
    demo = {
        "order_id": "rest-1",
        "client_order_id": "abc",
        "symbol": "BTCUSDT",
        "side": "buy",
        "qty": 0.001,
    }
    ccxt = {
        "id": "rest-1",
        "clientOrderId": "abc",
        "symbol": "BTCUSDT",
        "side": "buy",
        "amount": 0.001,
    }
    assert parse_venue_orders([demo]) == parse_venue_orders([ccxt])


def test_the_core_and_the_guard_share_the_tokens():
    assert rec.ORDER_UNKNOWN_AT_VENUE == reasons.ORDER_UNKNOWN_AT_VENUE
    assert rec.ORDER_MISSING_AT_VENUE == reasons.ORDER_MISSING_AT_VENUE
    assert rec.RECONCILE_UNKNOWN == reasons.RECONCILE_UNKNOWN


# -- the runner, on real files ------------------------------------------------------------


class _Venue:
    """A venue's open orders as a list; ``fail`` makes the next reads raise."""

    def __init__(self) -> None:
        self.open: list[dict[str, Any]] = []
        self.known: dict[str, dict[str, Any]] = {}
        self.fail: Exception | None = None
        self.reads = 0

    async def fetch_open_orders(self) -> Any:
        self.reads += 1
        if self.fail is not None:
            raise self.fail
        return list(self.open)

    async def lookup(self, cid: str) -> dict[str, Any] | None:
        return self.known.get(cid)


def _resting(ledger: OrderLedger, venue: _Venue, order_id: str) -> str:
    """An order the guard places and that rests at the venue."""
    result = ledger.place("BTCUSDT", "buy", "0.001", "59000", lambda: {"status": "open"})
    doc = {
        "order_id": order_id,
        "client_order_id": result.sig,
        "symbol": "BTCUSDT",
        "side": "buy",
        "qty": 0.001,
        "status": "open",
    }
    venue.open.append(doc)
    venue.known[result.sig] = doc
    return result.sig


def _setup(tmp_path, clock, **kw: Any) -> tuple[OrderLedger, _Venue, Reconciler]:
    ledger = OrderLedger(tmp_path, time_fn=clock)
    venue = _Venue()
    recon = Reconciler(
        tmp_path,
        venue.fetch_open_orders,
        ledger,
        venue="demo",
        lookup=venue.lookup,
        time_fn=clock,
        wall_fn=lambda: 1.7e9 + clock() - 1000.0,
        **{"period_s": 10.0, **kw},
    )
    return ledger, venue, recon


def test_agreeing_sides_write_ok_and_no_alert(tmp_path, clock):
    ledger, venue, recon = _setup(tmp_path, clock)
    _resting(ledger, venue, "rest-1")
    doc = asyncio.run(recon.run_once())
    assert doc["ok"] is True and doc["status"] == "ok"
    on_disk = read_json(tmp_path / rec.RECONCILIATION_FILENAME).doc
    assert {
        k: on_disk[k] for k in ("ts", "venue", "ok", "unknown_at_venue", "missing_at_venue")
    } == {"ts": 1.7e9, "venue": "demo", "ok": True, "unknown_at_venue": [], "missing_at_venue": []}
    assert not alert_path(tmp_path, rec.ALERT_NAME).exists()


def test_an_order_behind_the_guards_back_is_reported_not_adopted_not_cancelled(
    tmp_path, clock, caplog
):
    caplog.set_level(logging.ERROR, "autoheal.guard.reconcile")
    ledger, venue, recon = _setup(tmp_path, clock)
    _resting(ledger, venue, "rest-1")
    manual = {
        "order_id": "rest-2",
        "client_order_id": "manual-1",
        "symbol": "BTCUSDT",
        "side": "sell",
        "qty": 0.5,
    }
    venue.open.append(manual)
    before = ledger.records()
    for _ in range(3):
        doc = asyncio.run(recon.run_once())
        clock.advance(10.0)
    assert doc["ok"] is False and doc["status"] == "differences"
    assert doc["unknown_at_venue"] == [
        {
            "order_id": "rest-2",
            "client_order_id": "manual-1",
            "symbol": "BTCUSDT",
            "side": "sell",
            "qty": "0.5",
        }
    ]
    assert "rest-2" not in doc["matched"]
    assert ledger.records().keys() == before.keys()  # not adopted
    assert manual in venue.open  # not cancelled
    alert = read_alerts(tmp_path)[rec.ALERT_NAME]
    assert alert["reasons"] == [rec.ORDER_UNKNOWN_AT_VENUE]
    assert alert["unknown_at_venue"][0]["order_id"] == "rest-2"
    assert alert["since"] == 1.7e9 and alert["ts"] == 1.7e9 + 20  # raised by the first pass
    logged = [r.getMessage() for r in caplog.records]
    assert len(logged) == 1 and "order_unknown_at_venue order_id=rest-2" in logged[0]
    venue.open.remove(manual)  # the operator cancels it
    assert asyncio.run(recon.run_once())["ok"] is True
    assert not alert_path(tmp_path, rec.ALERT_NAME).exists()


def test_a_resting_order_stays_known_after_its_record_expires(tmp_path, clock):
    ledger, venue, recon = _setup(tmp_path, clock)
    _resting(ledger, venue, "rest-1")
    assert asyncio.run(recon.run_once())["ok"] is True
    clock.advance(ledger.ttl_s + 1)
    assert ledger.records() == {}
    assert asyncio.run(recon.run_once())["ok"] is True


def test_a_resting_order_the_venue_lost_is_missing_one_it_filled_is_not(tmp_path, clock):
    ledger, venue, recon = _setup(tmp_path, clock)
    lost = _resting(ledger, venue, "rest-1")
    venue.open.clear()
    venue.known.pop(lost)
    doc = asyncio.run(recon.run_once())
    assert [m["client_order_id"] for m in doc["missing_at_venue"]] == [lost]
    assert read_alerts(tmp_path)[rec.ALERT_NAME]["reasons"] == [rec.ORDER_MISSING_AT_VENUE]
    venue.known[lost] = {"status": "filled"}  # it filled after all
    assert asyncio.run(recon.run_once())["ok"] is True


@pytest.mark.parametrize("broken", ["venue_error", "venue_garbage", "ledger_unreadable"])
def test_a_pass_that_cannot_be_done_is_unknown_and_loud_never_ok(tmp_path, clock, broken, caplog):
    caplog.set_level(logging.ERROR, "autoheal.guard.reconcile")
    _ledger, venue, recon = _setup(tmp_path, clock)
    assert asyncio.run(recon.run_once())["ok"] is True
    if broken == "venue_error":
        venue.fail = ConnectionError("reset by peer")
    elif broken == "venue_garbage":
        venue.open = [{"no": "id"}]
    else:
        (tmp_path / ORDER_SIGS_RELPATH).write_bytes(b"{ torn")
    doc = asyncio.run(recon.run_once())
    assert doc["ok"] is False and doc["status"] == "unknown"
    assert doc["reason"] == rec.RECONCILE_UNKNOWN
    what = "ledger" if broken == "ledger_unreadable" else "venue open orders"
    assert doc["problem"].startswith(f"{what} unreadable: ")
    alert = read_alerts(tmp_path)[rec.ALERT_NAME]
    assert alert["status"] == "unknown" and alert["reasons"] == [rec.RECONCILE_UNKNOWN]
    assert any("reconcile_unknown" in r.getMessage() for r in caplog.records)


def test_a_failing_lookup_of_a_missing_order_is_unknown_not_missing(tmp_path, clock):
    ledger, venue, recon = _setup(tmp_path, clock)
    _resting(ledger, venue, "rest-1")
    venue.open.clear()

    async def broken_lookup(cid: str) -> dict[str, Any] | None:
        raise TimeoutError("lookup timed out")

    recon.lookup = broken_lookup
    doc = asyncio.run(recon.run_once())
    assert doc["status"] == "unknown" and doc["missing_at_venue"] == []
    assert doc["problem"].startswith("venue lookup unreadable: TimeoutError")


def test_passes_run_on_the_period_and_at_once_after_an_unknown_outcome(tmp_path, clock):
    _ledger, venue, recon = _setup(tmp_path, clock)
    assert recon.due()
    asyncio.run(recon.run_once())
    assert not recon.due()
    clock.advance(9.9)
    assert not recon.due()
    recon.request()  # an unknown outcome
    assert recon.due()
    asyncio.run(recon.run_once())
    clock.advance(10.0)
    assert recon.due()
    assert venue.reads == 2


def test_a_period_must_be_positive(tmp_path, clock):
    with pytest.raises(ValueError, match="period"):
        _setup(tmp_path, clock, period_s=0.0)


# -- the hook: an unknown outcome makes the next pass due at once ---------------------------


@pytest.mark.slow
def test_an_unknown_outcome_in_the_trader_makes_a_pass_due_at_once(tmp_path, clock):
    async def main() -> None:
        ex = await ExchangeHarness(tmp_path / "ex").start()
        try:
            async with ex.client() as http:
                session = session_for(tmp_path, http)
                recon = Reconciler(
                    tmp_path / "rt",
                    session.exchange.fetch_open_orders,
                    session.ledger,
                    venue="demo",
                    period_s=3600.0,
                    time_fn=clock,
                )
                session.reconciler = recon
                await recon.run_once()
                assert not recon.due()
                assert await session.on_signal("buy", 60000.0)  # a known outcome: not due
                assert not recon.due()
                await ex.set_fault("accept_then_drop", paths=["POST /api/orders"], count=1)
                assert not await session.on_signal("sell", 60000.0)
                assert recon.due()  # an hour early: the unknown outcome asked for a pass
                assert (await recon.run_once())["ok"] is True
                assert not recon.due()
                assert not await session.on_signal("sell", 60000.0)  # the lookup: due again
                assert recon.due()
        finally:
            await ex.stop()

    anyio.run(main)


def test_a_file_that_cannot_be_written_is_an_unknown_pass(tmp_path, clock):
    _ledger, _venue, recon = _setup(tmp_path, clock)
    recon.path.mkdir()  # a directory where the file should be: every write fails
    doc = asyncio.run(recon.run_once())
    assert doc["ok"] is False and doc["status"] == "unknown"
    assert "unsaved" in doc["problem"]
    assert read_alerts(tmp_path)[rec.ALERT_NAME]["reasons"] == [rec.RECONCILE_UNKNOWN]

"""Issue 18 A7: the day's realized PnL is durable, shared by the runtime, and fails closed.

Two :class:`RiskGuard` instances on one runtime directory are what a restart (or two
trading processes) is; ``test_guard_risk_restart.py`` does the same with real
processes. Every test here that names a defect failed on the branch point (59fb9bc),
where the day's loss lived in memory only.
"""

from __future__ import annotations

import logging
import shutil
from decimal import Decimal as D
from pathlib import Path

import orjson
import pytest

from autoheal.guard.risk import RiskBook, RiskGuard, RiskOrder, parse_limits
from autoheal.store import layout as runtime_files
from autoheal.store.alerts import read_alerts
from tests.guard.conftest import FakeClock

DAY = 86400.0
MARKS = {"BTCUSDT": D("50000")}
BOOK = RiskBook(marks=MARKS)
BUY = RiskOrder("BTCUSDT", "buy", D("0.001"))
LIMITS = parse_limits({"max_daily_loss": 500})


def pnl_file(runtime: Path) -> Path:
    return runtime / "risk_pnl.json"  # the contract's name (docs/files.md)


def guard(runtime: Path, wall: FakeClock, clock: FakeClock | None = None, limits=LIMITS):
    return RiskGuard(limits, runtime, time_fn=clock or FakeClock(), wall_fn=wall)


@pytest.fixture
def wall() -> FakeClock:
    return FakeClock(start=DAY * 10 + 3600)  # 1970-01-11 01:00 UTC


# -- a restart resumes the day ------------------------------------------------------------------
def test_a_restarted_guard_resumes_the_days_loss(tmp_path: Path, wall: FakeClock):
    first = guard(tmp_path, wall)
    first.record_fill("BTCUSDT", "buy", D(1), D(1000))
    first.record_fill("BTCUSDT", "sell", D(1), D(550))  # -450 of 500
    restarted = guard(tmp_path, wall)
    assert restarted.realized_pnl_today == D(-450)
    assert restarted.check(BUY, BOOK) == (True, ())
    restarted.record_realized(D(-60))
    assert restarted.check(BUY, BOOK) == (False, ("risk_daily_loss",))
    doc = orjson.loads(pnl_file(tmp_path).read_bytes())
    assert (doc["schema"], doc["day"], doc["realized_pnl"], doc["loss_latched"]) == (
        1,
        "1970-01-11",
        "-510",
        True,
    )
    assert doc["updated_at"] == wall.now and doc["cost_basis"] == {}


def test_a_position_opened_before_a_restart_realizes_its_loss_after_it(
    tmp_path: Path, wall: FakeClock
):
    guard(tmp_path, wall).record_fill("BTCUSDT", "buy", D(1), D(1000))
    restarted = guard(tmp_path, wall)
    booked = restarted.record_fill("BTCUSDT", "sell", D(1), D(400))
    assert restarted.realized_pnl_today == D(-600) and restarted.loss_latched
    assert booked.realized == D(-600)
    assert restarted.check(BUY, BOOK) == (False, ("risk_daily_loss",))


def test_the_latch_survives_a_restart_after_a_gain(tmp_path: Path, wall: FakeClock):
    first = guard(tmp_path, wall)
    first.record_realized(D(-600))
    first.record_realized(D(200))  # -400: under the limit, but the day latched
    assert first.loss_latched
    assert guard(tmp_path, wall).check(BUY, BOOK) == (False, ("risk_daily_loss",))


def test_two_guards_on_one_runtime_add_up(tmp_path: Path, wall: FakeClock):
    a, b = guard(tmp_path, wall), guard(tmp_path, wall)
    a.record_realized(D(-300))
    b.record_realized(D(-250))  # read-modify-write: -550, not -250
    assert b.realized_pnl_today == D(-550)
    # ``a`` sees ``b``'s loss before its next order, without a fill of its own.
    assert a.check(BUY, BOOK) == (False, ("risk_daily_loss",))
    assert orjson.loads(pnl_file(tmp_path).read_bytes())["realized_pnl"] == "-550"


def test_a_vanished_file_is_written_back_not_read_as_zero(tmp_path: Path, wall: FakeClock):
    running = guard(tmp_path, wall)
    running.record_realized(D(-450))
    pnl_file(tmp_path).unlink()
    assert running.check(BUY, BOOK)[0]
    assert orjson.loads(pnl_file(tmp_path).read_bytes())["realized_pnl"] == "-450"
    assert guard(tmp_path, wall).realized_pnl_today == D(-450)


def test_a_fresh_runtime_starts_the_day_at_zero_and_writes_nothing(tmp_path: Path, wall):
    fresh = guard(tmp_path, wall)
    assert fresh.check(BUY, BOOK) == (True, ())
    assert fresh.realized_pnl_today == 0
    assert not pnl_file(tmp_path).exists() and read_alerts(tmp_path) == {}


# -- the day rolls forward only ---------------------------------------------------------------
def test_a_clock_set_back_never_reopens_the_day_at_zero(tmp_path: Path, wall: FakeClock):
    g = guard(tmp_path, wall)
    g.record_realized(D(-450))
    wall.advance(-DAY)  # NTP steps the clock back over midnight
    assert g.realized_pnl_today == D(-450)
    g.record_realized(D(-60))
    assert g.check(BUY, BOOK) == (False, ("risk_daily_loss",))
    assert orjson.loads(pnl_file(tmp_path).read_bytes())["day"] == "1970-01-11"


def test_a_clock_set_back_in_memory_only_keeps_the_day_too(wall: FakeClock):
    g = RiskGuard(LIMITS, wall_fn=wall)
    g.record_realized(D(-450))
    wall.advance(-DAY)
    g.record_realized(D(-60))
    assert g.check(BUY, BOOK) == (False, ("risk_daily_loss",))


def test_a_new_day_starts_at_zero_and_keeps_the_cost_basis(tmp_path: Path, wall: FakeClock):
    g = guard(tmp_path, wall)
    g.record_fill("BTCUSDT", "buy", D(1), D(1000))
    g.record_realized(D(-600))
    assert not g.check(BUY, BOOK)[0]
    wall.advance(DAY)
    assert g.realized_pnl_today == 0 and not g.loss_latched
    assert g.check(BUY, BOOK) == (True, ())
    # The position bought yesterday at 1000 and sold today at 400 lost today.
    guard(tmp_path, wall).record_fill("BTCUSDT", "sell", D(1), D(400))
    assert g.realized_pnl_today == D(-600)
    assert not g.check(BUY, BOOK)[0]


def test_a_new_days_latch_is_written_again(tmp_path: Path, wall: FakeClock):
    latch = tmp_path / runtime_files.RISK_LATCH
    g = guard(tmp_path, wall)
    g.record_realized(D(-600))
    assert latch.exists()
    latch.unlink()  # an operator clears it
    wall.advance(DAY)
    g.record_realized(D(-600))
    assert latch.exists()


# -- the file failing fails closed ---------------------------------------------------------------
def valid_doc(**changes) -> dict:
    return {
        "schema": 1,
        "day": "1970-01-11",
        "realized_pnl": "-100",
        "loss_latched": False,
        "cost_basis": {},
        "updated_at": 1.0,
        **changes,
    }


CORRUPT = {
    "not_json": b"{not json",
    "binary": b"\x00\xff\xfe",
    "truncated": orjson.dumps(valid_doc())[:40],
    "not_object": b"[]",
    "schema": orjson.dumps(valid_doc(schema=2)),
    "nan": orjson.dumps(valid_doc(realized_pnl="NaN")),
    "infinite_gain": orjson.dumps(valid_doc(realized_pnl="Infinity")),
    "huge": orjson.dumps(valid_doc(realized_pnl="-1E+999999")),
    "no_pnl": orjson.dumps(valid_doc(realized_pnl=None)),
    "bool_pnl": orjson.dumps(valid_doc(realized_pnl=True)),
    "day": orjson.dumps(valid_doc(day="yesterday")),
    "latch": orjson.dumps(valid_doc(loss_latched="yes")),
    "basis": orjson.dumps(valid_doc(cost_basis={"BTCUSDT": {"position": "NaN", "avg_price": "1"}})),
    "basis_price": orjson.dumps(
        valid_doc(cost_basis={"BTCUSDT": {"position": "1", "avg_price": "-5"}})
    ),
    "unbooked": orjson.dumps(valid_doc(unbooked={"count": 0})),
}


@pytest.mark.parametrize("content", CORRUPT.values(), ids=CORRUPT.keys())
def test_an_unreadable_day_refuses_new_risk_and_is_never_read_as_zero(
    tmp_path: Path, wall: FakeClock, content: bytes, caplog
):
    pnl_file(tmp_path).write_bytes(content)
    with caplog.at_level(logging.ERROR, logger="autoheal.guard.risk"):
        g = guard(tmp_path, wall)
        for _ in range(3):
            assert g.check(BUY, BOOK) == (False, ("risk_pnl_unreadable",))
    states = [r for r in caplog.records if r.getMessage().startswith("[risk] risk_pnl_unreadable")]
    assert len(states) == 1  # logged once, not once per check
    alert = read_alerts(tmp_path)["risk_pnl_unreadable"]
    assert str(pnl_file(tmp_path)) in alert["detail"]
    # A reducing sell still goes out: the guard never traps a position.
    assert g.check(RiskOrder("BTCUSDT", "sell", D(1)), RiskBook({"BTCUSDT": D(1)}, (), MARKS))[0]


def test_an_unreadable_day_keeps_the_bookings_and_books_them_once_repaired(
    tmp_path: Path, wall: FakeClock
):
    clock = FakeClock()
    pnl_file(tmp_path).write_bytes(b"{torn")
    g = guard(tmp_path, wall, clock)
    g.record_realized(D(-30))  # booked here, kept: the file is evidence
    assert g.check(BUY, BOOK) == (False, ("risk_pnl_unreadable",))
    assert pnl_file(tmp_path).read_bytes() == b"{torn"
    pnl_file(tmp_path).write_bytes(orjson.dumps(valid_doc(realized_pnl="-100")))  # repaired
    clock.advance(1.0)
    assert g.check(BUY, BOOK) == (True, ())
    assert orjson.loads(pnl_file(tmp_path).read_bytes())["realized_pnl"] == "-130"
    assert "risk_pnl_unreadable" not in read_alerts(tmp_path)


def test_an_unsaved_day_refuses_new_risk_and_retries(tmp_path: Path, wall: FakeClock):
    clock = FakeClock()
    g = guard(tmp_path, wall, clock)
    blocker = tmp_path / "risk_pnl.json.lock"
    blocker.mkdir()  # the lock cannot be opened: every save fails (even as root)
    g.record_realized(D(-30))
    assert g.check(BUY, BOOK) == (False, ("risk_pnl_unsaved",))
    assert g.realized_pnl_today == D(-30)  # known here, not yet durable
    assert "risk_pnl_unsaved" in read_alerts(tmp_path)
    shutil.rmtree(blocker)
    assert g.check(BUY, BOOK) == (False, ("risk_pnl_unsaved",))  # retried once a second
    clock.advance(1.0)
    assert g.check(BUY, BOOK) == (True, ())
    assert orjson.loads(pnl_file(tmp_path).read_bytes())["realized_pnl"] == "-30"
    assert read_alerts(tmp_path) == {}


def test_a_loss_booked_while_unsaved_latches_when_saved(tmp_path: Path, wall: FakeClock):
    clock = FakeClock()
    g = guard(tmp_path, wall, clock)
    blocker = tmp_path / "risk_pnl.json.lock"
    blocker.mkdir()
    g.record_realized(D(-600))
    g.record_realized(D(200))  # -400 in the end, but the day crossed -500
    shutil.rmtree(blocker)
    clock.advance(1.0)
    assert g.check(BUY, BOOK) == (False, ("risk_daily_loss",))
    doc = orjson.loads(pnl_file(tmp_path).read_bytes())
    assert (doc["realized_pnl"], doc["loss_latched"]) == ("-400", True)


def test_an_unbooked_fill_is_kept_in_the_file_until_an_operator_clears_it(
    tmp_path: Path, wall: FakeClock
):
    g = guard(tmp_path, wall)
    assert not g.record_fill("BTCUSDT", "buy", D(1), D("NaN")).booked
    doc = orjson.loads(pnl_file(tmp_path).read_bytes())
    assert doc["unbooked"]["count"] == 1 and "price=Decimal('NaN')" in doc["unbooked"]["last"]
    # Another process, a restart, a new day: still refused.
    wall.advance(DAY)
    assert guard(tmp_path, wall).check(BUY, BOOK) == (False, ("risk_pnl_incomplete",))
    assert "risk_pnl_incomplete" in read_alerts(tmp_path)
    del doc["unbooked"]  # the operator booked it by hand
    pnl_file(tmp_path).write_bytes(orjson.dumps(doc))
    assert g.check(BUY, BOOK) == (True, ())
    assert read_alerts(tmp_path) == {}


def test_a_day_written_by_hand_with_numbers_is_read(tmp_path: Path, wall: FakeClock):
    doc = valid_doc(realized_pnl=-499.5, cost_basis={"BTCUSDT": {"position": 1, "avg_price": 100}})
    pnl_file(tmp_path).write_bytes(orjson.dumps(doc))
    g = guard(tmp_path, wall)
    assert g.realized_pnl_today == D("-499.5")
    assert g.record_fill("BTCUSDT", "sell", D(1), D(99)).realized == D(-1)
    assert g.check(BUY, BOOK) == (False, ("risk_daily_loss",))

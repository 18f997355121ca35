"""The risk panel's meaning (``core/risk_view.py``): "cannot tell" never looks like "all clear"."""

from __future__ import annotations

from decimal import Decimal
from typing import Any

import pytest
from hypothesis import given
from hypothesis import strategies as st

from autoheal.core.risk_view import (
    MAX_ROWS,
    MAX_TEXT,
    NEAR_PCT,
    FileRead,
    RiskLimitsView,
    headroom,
    risk_view,
)

pytestmark = [pytest.mark.timeout(60)]

NOW = 1_800_000_000.0  # 2027-01-15 08:00 UTC
TODAY = "2027-01-15"
LIMITS = RiskLimitsView(
    max_daily_loss=Decimal(500),
    max_drawdown=Decimal(300),
    max_position=Decimal("0.5"),
    max_position_by_symbol={"ETHUSDT": Decimal(4)},
    max_messages_per_second={"submit": Decimal(10), "cancel": Decimal(20)},
)
AMOUNTS = st.decimals(min_value=-(10**6), max_value=10**6, allow_nan=False, places=4)


def ok(doc: dict[str, Any]) -> FileRead:
    return FileRead("ok", doc)


def pnl(realized: str = "-120", day: str = TODAY, **more: Any) -> FileRead:
    return ok(
        {
            "schema": 1,
            "day": day,
            "realized_pnl": realized,
            "loss_latched": False,
            "cost_basis": {},
            **more,
        }
    )


@given(
    used=st.decimals(min_value=0, max_value=10**6, allow_nan=False, places=2),
    limit=st.decimals(min_value=Decimal("0.01"), max_value=10**6, allow_nan=False, places=2),
)
def test_headroom_states_follow_the_percentage(used: Decimal, limit: Decimal) -> None:
    view = headroom(used, limit)
    pct = used / limit * 100
    assert view["state"] == ("breach" if pct >= 100 else "near" if pct >= NEAR_PCT else "ok")
    assert view["used"] == str(used) and view["limit"] == str(limit)


def test_headroom_without_a_limit_or_a_value_is_never_ok() -> None:
    assert headroom(Decimal(5), None)["state"] == "no_limit"
    assert headroom(None, Decimal(5))["state"] == "unknown"


@given(realized=AMOUNTS)
def test_the_days_loss_is_the_negative_realized_pnl_of_today(realized: Decimal) -> None:
    view = risk_view(now=NOW, limits=LIMITS, pnl=pnl(str(realized)))["daily_loss"]
    assert Decimal(view["used"]) == max(Decimal(0), -realized)
    assert view["limit"] == "500"


def test_an_earlier_days_loss_is_not_todays() -> None:
    view = risk_view(now=NOW, limits=LIMITS, pnl=pnl("-450", day="2027-01-14"))["daily_loss"]
    assert view["used"] == "0" and view["day"] == "2027-01-14"


@pytest.mark.parametrize("bad", ["NaN", "Infinity", "sNaN", "1e999", "", "abc", None, True, [1]])
def test_a_bad_realized_number_is_unreadable_not_zero(bad: Any) -> None:
    view = risk_view(now=NOW, limits=LIMITS, pnl=pnl(bad))["daily_loss"]
    assert view["state"] == "unreadable" and view["used"] is None


@pytest.mark.parametrize("state", ["missing", "unreadable"])
def test_every_part_says_when_its_file_cannot_be_read(state: str) -> None:
    bad = FileRead(state, None, "invalid: truncated")  # type: ignore[arg-type]
    view = risk_view(
        now=NOW, limits=LIMITS, pnl=bad, flags=bad, latches=bad, breakers=bad, reconciliation=bad
    )
    for part in (
        "daily_loss",
        "drawdown",
        "positions",
        "scoped_halts",
        "latches",
        "breakers",
        "reconciliation",
    ):
        assert view[part]["state"] == state, part


def test_drawdown_by_the_contract_and_absent_when_not_written() -> None:
    view = risk_view(
        now=NOW,
        limits=LIMITS,
        pnl=pnl(peak_equity="10300", equity="10060", drawdown="240", breach_reads=1),
    )
    dd = view["drawdown"]
    assert (dd["used"], dd["limit"], dd["used_pct"], dd["state"]) == ("240", "300", 80.0, "near")
    assert dd["breach_reads"] == 1 and dd["peak_equity"] == "10300"
    assert risk_view(now=NOW, limits=LIMITS, pnl=pnl())["drawdown"]["state"] == "absent"
    bad = risk_view(now=NOW, limits=LIMITS, pnl=pnl(drawdown="NaN"))["drawdown"]
    assert bad["state"] == "unreadable"


def test_positions_against_their_symbols_limit() -> None:
    basis = {
        "BTCUSDT": {"position": "0.45", "avg_price": "60000"},
        "ETHUSDT": {"position": "-5", "avg_price": "3000"},
    }
    rows = risk_view(now=NOW, limits=LIMITS, pnl=pnl(cost_basis=basis))["positions"]["rows"]
    assert [(r["symbol"], r["used"], r["limit"], r["state"]) for r in rows] == [
        ("BTCUSDT", "0.45", "0.5", "near"),
        ("ETHUSDT", "5", "4", "breach"),
    ]


def test_message_rates_from_the_traders_heartbeats() -> None:
    beat = ok(
        {"ts": NOW, "risk": {"message_rates": {"grid": {"submit": 9, "modify": 1, "cancel": 2.5}}}}
    )
    rows = risk_view(now=NOW, limits=LIMITS, heartbeats={"trader": beat, "feeder": ok({})})[
        "message_rates"
    ]
    got = {(r["strategy"], r["kind"]): (r["used"], r["state"]) for r in rows["rows"]}
    assert got == {
        ("grid", "submit"): ("9", "near"),
        ("grid", "modify"): ("1", "no_limit"),
        ("grid", "cancel"): ("2.5", "ok"),
    }
    assert risk_view(now=NOW, limits=LIMITS)["message_rates"]["state"] == "missing"


def test_scoped_halts_latches_breakers_deadman_and_reconciliation() -> None:
    flags = ok(
        {
            "failsafe_active": False,
            "scoped_halts": {
                "symbol=BTCUSDT": {
                    "reason": "operator: fat finger",
                    "since": NOW - 60,
                    "set_by": "alice",
                }
            },
        }
    )
    latches = ok(
        {
            "latches": {
                "strategy=grid,symbol=BTCUSDT,side=buy": {
                    "reason": "risk_repeated_execution",
                    "since": NOW - 5,
                    "executions": 5,
                    "window_s": 10,
                }
            }
        }
    )
    breakers = ok(
        {
            "schema": 1,
            "clock": "wall",
            "keys": {
                "BTCUSDT": {
                    "state": "open",
                    "open_until": NOW + 12.5,
                    "last_reason": "exchange_502",
                    "trips": 2,
                }
            },
        }
    )
    beat = ok(
        {"deadman": {"binance": {"phase": "armed", "expires_at": NOW + 90, "countdown_s": 120}}}
    )
    recon = ok(
        {
            "ts": NOW - 3,
            "venue": "binance",
            "ok": False,
            "unknown_at_venue": ["x-1"],
            "missing_at_venue": [],
        }
    )
    view = risk_view(
        now=NOW,
        limits=None,
        flags=flags,
        latches=latches,
        breakers=breakers,
        reconciliation=recon,
        heartbeats={"trader": beat},
    )
    assert view["limits_configured"] is False
    (halt,) = view["scoped_halts"]["rows"]
    assert halt == {
        "scope": "symbol=BTCUSDT",
        "reason": "operator: fat finger",
        "since": NOW - 60,
        "set_by": "alice",
    }
    assert view["latches"]["rows"][0]["executions"] == 5
    assert view["breakers"]["rows"][0]["open_for_s"] == 12.5
    assert view["deadman"]["rows"][0]["left_s"] == 90.0
    assert view["reconciliation"]["state"] == "differences"
    assert view["reconciliation"]["unknown_at_venue"] == 1


def test_flags_without_scoped_halts_is_an_empty_list_and_garbage_is_unreadable() -> None:
    assert risk_view(now=NOW, limits=None, flags=ok({}))["scoped_halts"]["rows"] == []
    bad = risk_view(now=NOW, limits=None, flags=ok({"scoped_halts": ["symbol=X"]}))
    assert bad["scoped_halts"]["state"] == "unreadable"


@given(n=st.integers(0, MAX_ROWS * 3), text=st.text(max_size=MAX_TEXT * 3))
def test_lists_and_texts_are_bounded(n: int, text: str) -> None:
    flags = ok({"scoped_halts": {f"symbol=S{i}": {"reason": text} for i in range(n)}})
    part = risk_view(now=NOW, limits=None, flags=flags)["scoped_halts"]
    assert len(part["rows"]) == min(n, MAX_ROWS) and part["more"] == max(0, n - MAX_ROWS)
    assert all(len(r["reason"]) <= MAX_TEXT for r in part["rows"])


@given(now=st.floats(allow_nan=True, allow_infinity=True))
def test_any_clock_reading_gives_a_view(now: float) -> None:
    view = risk_view(now=now, limits=LIMITS, pnl=pnl())
    assert set(view) >= {"daily_loss", "scoped_halts", "deadman"}


def test_a_reconciliation_pass_that_could_not_be_done_is_unknown_with_its_problem() -> None:
    """Not "ok", and not "differences" with nothing in them: the problem is shown."""
    doc = {"ts": NOW - 3, "venue": "demo", "ok": False, "status": "unknown",
           "problem": "venue open orders: ConnectionRefusedError",
           "unknown_at_venue": [], "missing_at_venue": []}
    view = risk_view(now=NOW, limits=None, reconciliation=ok(doc))["reconciliation"]
    assert view["state"] == "unknown"
    assert view["problem"] == "venue open orders: ConnectionRefusedError"
    clean = risk_view(now=NOW, limits=None, reconciliation=ok(
        {**doc, "ok": True, "status": "ok", "problem": None}))["reconciliation"]
    assert clean["state"] == "ok" and clean["problem"] is None

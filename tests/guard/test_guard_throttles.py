"""The execution throttles (issue 24): the pure rules under hypothesis with a fake clock,
then :class:`RiskGuard` on real files (the latch document, a failed write, garbage, a
second process's guard, the operator's enable) and the ``[risk]`` keys' errors."""

from __future__ import annotations

import json
from decimal import Decimal as D
from pathlib import Path
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from autoheal.guard.risk import RiskBook, RiskConfigError, RiskGuard, RiskOrder, parse_limits
from autoheal.guard.scope_latches import (
    LATCHES_FILENAME,
    add_latch,
    read_latches,
    remove_latch,
)
from autoheal.guard.throttles import (
    LatchView,
    collar_window_check,
    execution_scope,
    latch_entry,
    latched_scope,
    message_check,
    parse_latches,
    parse_scope,
    repeated_execution,
)
from tests.guard.conftest import FakeClock

pytestmark = [pytest.mark.timeout(60)]

SCOPE = "strategy=grid,symbol=BTCUSDT,side=buy"
times = st.lists(st.floats(min_value=0, max_value=10, allow_nan=False), max_size=30)


# -- message limits -----------------------------------------------------------------------------
@settings(max_examples=200, deadline=None)
@given(
    sent=times,
    now=st.floats(min_value=0, max_value=10),
    limit=st.integers(min_value=1, max_value=10),
    kind=st.sampled_from(("submit", "modify")),
)
def test_a_submit_or_modify_is_refused_exactly_when_the_last_second_holds_the_limit(
    sent: list[float], now: float, limit: int, kind: str
) -> None:
    history = {kind: sent}
    out = message_check(kind, "grid", history, now, {kind: limit})
    in_window = sum(1 for t in sent if now - 1.0 < t)
    assert (out is not None) == (in_window >= limit)
    if out is not None:
        assert out[0] == "risk_message_rate" and "strategy=grid" in out[1]


@settings(max_examples=200, deadline=None)
@given(cancels=times, now=st.floats(min_value=0, max_value=10))
def test_a_cancel_is_never_refused_and_a_cancel_storm_brakes_submits(
    cancels: list[float], now: float
) -> None:
    limits = {"submit": None, "modify": None, "cancel": 2}
    history = {"cancel": cancels}
    assert message_check("cancel", "grid", history, now, limits) is None
    storm = sum(1 for t in cancels if now - 1.0 < t) >= 2
    refused = message_check("submit", "grid", history, now, limits)
    assert (refused is not None) == storm
    if refused is not None:
        assert "kind=cancel" in refused[1]


@pytest.mark.parametrize("bad", [float("nan"), float("inf"), "1"])
def test_a_bad_time_refuses_and_never_counts_nothing(bad: Any) -> None:
    out = message_check("submit", "grid", {"submit": [bad]}, 5.0, {"submit": 1})
    assert out is not None and out[0] == "risk_invalid_time"
    out = message_check("submit", "grid", {}, bad, {"submit": 1})
    assert out is not None and out[0] == "risk_invalid_time"


# -- the collar over a window -----------------------------------------------------------------
@settings(max_examples=200, deadline=None)
@given(
    marks=st.lists(
        st.tuples(
            st.floats(min_value=0, max_value=20),
            st.decimals(min_value=D("90"), max_value=D("110"), places=2),
        ),
        min_size=1,
        max_size=10,
    ),
    price=st.decimals(min_value=D("80"), max_value=D("120"), places=2),
)
def test_the_reference_is_the_oldest_mark_in_the_window(
    marks: list[tuple[float, D]], price: D
) -> None:
    now, window, pct = 20.0, 5.0, D(3)
    out = collar_window_check(pct, window, marks, price, now, symbol="BTCUSDT")
    inside = sorted((t, m) for t, m in marks if t > now - window)
    if not inside:
        assert out is not None and out[0] == "risk_collar_window" and "no mark" in out[1]
        return
    ref = inside[0][1]
    assert (out is not None) == (abs(price - ref) / ref * 100 > pct)


def test_a_jump_inside_one_window_is_refused_a_slow_drift_is_not() -> None:
    pct, window = D(2), 10.0
    jump = [(0.0, D(100)), (5.0, D(105))]
    out = collar_window_check(pct, window, jump, D(105), 5.0, symbol="X")
    assert out is not None and "window_reference=100" in out[1]
    drift = [(float(t), D(100) + D(t) / 10) for t in range(0, 60)]  # +0.1 a second
    assert collar_window_check(pct, window, drift, D("105.9"), 59.0, symbol="X") is None


# -- repeated executions and the latch document -----------------------------------------------
@settings(max_examples=200, deadline=None)
@given(fills=times, n=st.integers(min_value=1, max_value=5))
def test_the_nth_fill_within_the_window_disables(fills: list[float], n: int) -> None:
    disable, count = repeated_execution(fills, 10.0, n, 4.0)
    assert count == sum(1 for t in fills if t > 6.0)
    assert disable == (count >= n)


@pytest.mark.parametrize(
    ("text", "parsed"),
    [
        (
            "strategy=grid,symbol=btc/usdt,side=BUY",
            {"strategy": "grid", "symbol": "BTCUSDT", "side": "buy"},
        ),
        ("symbol=ETHUSDT", {"symbol": "ETHUSDT"}),
        ("all", {}),
        ("symbol=BTCUSDT,strategy=grid", None),  # out of the fixed order
        ("side=up", None),
        ("strategy=", None),
        ("colour=red", None),
        (3, None),
    ],
)
def test_scope_strings(text: Any, parsed: dict[str, str] | None) -> None:
    assert parse_scope(text) == parsed


@pytest.mark.parametrize(
    "doc",
    [[], {"latches": []}, {"latches": {"nonsense": {}}}, {"latches": {}, "extra": 1}, "x"],
)
def test_a_garbage_document_refuses_every_order(doc: Any) -> None:
    view = parse_latches(doc)
    assert view.garbage
    assert latched_scope(view, strategy="any", symbol="ETHUSDT", side="sell") == "all"


def test_an_entry_with_a_garbage_body_still_disables_its_scope() -> None:
    view = parse_latches({"latches": {SCOPE: "garbage"}})
    assert not view.garbage
    assert latched_scope(view, strategy="grid", symbol="btc/usdt", side="buy") == SCOPE
    assert latched_scope(view, strategy="grid", symbol="BTCUSDT", side="sell") is None
    assert latched_scope(view, strategy="trend", symbol="BTCUSDT", side="buy") is None


# -- the latch file -------------------------------------------------------------------------------
def test_add_latch_never_replaces_an_entry_and_never_overwrites_garbage(tmp_path: Path) -> None:
    first = latch_entry(1.0, 3, 60.0)
    assert add_latch(tmp_path, SCOPE, first) == "written"
    assert add_latch(tmp_path, SCOPE, latch_entry(2.0, 9, 60.0)) == "already"
    other = "strategy=grid,symbol=BTCUSDT,side=sell"
    assert add_latch(tmp_path, other, latch_entry(3.0, 3, 60.0)) == "written"
    doc = json.loads((tmp_path / LATCHES_FILENAME).read_text())
    assert doc == {"latches": {SCOPE: first, other: latch_entry(3.0, 3, 60.0)}}
    (tmp_path / LATCHES_FILENAME).write_text("{truncated")
    assert add_latch(tmp_path, SCOPE, first) == "garbage"
    assert (tmp_path / LATCHES_FILENAME).read_text() == "{truncated"
    assert read_latches(tmp_path).garbage


def test_remove_latch_takes_only_the_named_scope_and_garbage_only_with_all(
    tmp_path: Path,
) -> None:
    other = "strategy=grid,symbol=BTCUSDT,side=sell"
    add_latch(tmp_path, SCOPE, latch_entry(1.0, 3, 60.0))
    add_latch(tmp_path, other, latch_entry(1.0, 3, 60.0))
    ok, result = remove_latch(tmp_path, "strategy=grid,symbol=btc-usdt,side=buy")
    assert ok and result["enabled"] == SCOPE
    assert set(read_latches(tmp_path).latches) == {other}
    (tmp_path / LATCHES_FILENAME).write_text("[]")
    ok, result = remove_latch(tmp_path, other)
    assert not ok and result["reason"] == "latches_unreadable"
    ok, _ = remove_latch(tmp_path, "all")
    assert ok and read_latches(tmp_path) == LatchView()


# -- RiskGuard on real files ------------------------------------------------------------------
LIMITS = {
    "max_submits_per_s": 2,
    "max_modifies_per_s": 1,
    "max_cancels_per_s": 3,
    "collar_window_pct": 5,
    "collar_window_s": 10,
    "max_repeated_executions": 3,
    "repeated_execution_window_s": 60,
}
BUY = RiskOrder("BTCUSDT", "buy", D("0.01"), D("100"))
BOOK = RiskBook(marks={"BTCUSDT": D("100")})


def _guard(rt: Path | None, clock: FakeClock, strategy: str = "grid") -> RiskGuard:
    return RiskGuard(
        parse_limits(LIMITS), rt, time_fn=clock, wall_fn=lambda: 1e9 + clock(), strategy=strategy
    )


def test_submits_are_counted_per_strategy_and_the_rates_are_exposed(clock: FakeClock) -> None:
    guard = _guard(None, clock)
    assert guard.message_rates() == {"grid": {"submit": 0, "modify": 0, "cancel": 0}}
    for _ in range(2):
        assert guard.check(BUY, BOOK) == (True, ())
        guard.note_sent()
    assert guard.check(BUY, BOOK) == (False, ("risk_message_rate",))
    assert guard.check(BUY, BOOK, strategy="trend") == (True, ())  # its own budget
    guard.note_message("cancel")
    assert guard.check_message("cancel") == (True, "ok")
    assert guard.check_message("modify") == (True, "ok")
    guard.note_message("modify")
    assert guard.check_message("modify") == (False, "risk_message_rate")
    assert guard.message_rates()["grid"] == {"submit": 2, "modify": 1, "cancel": 1}
    clock.advance(1.0)
    assert guard.check(BUY, BOOK) == (True, ())
    assert guard.message_rates()["grid"] == {"submit": 0, "modify": 0, "cancel": 0}


def test_the_window_collar_refuses_a_jump_from_the_oldest_mark(clock: FakeClock) -> None:
    guard = _guard(None, clock)
    assert guard.check(BUY, BOOK)[0]
    clock.advance(3)
    jumped = RiskBook(marks={"BTCUSDT": D("106")})
    market = RiskOrder("BTCUSDT", "buy", D("0.01"))
    verdict = guard.verdict(market, jumped)
    assert verdict.reasons == ("risk_collar_window",)
    assert "window_reference=100" in verdict.details[0]
    clock.advance(10)  # the old mark left the window: 106 is the reference now
    assert guard.check(market, jumped) == (True, ())


def test_n_fills_disable_the_scope_durably_for_every_process_until_enabled(
    tmp_path: Path, clock: FakeClock
) -> None:
    guard = _guard(tmp_path, clock)
    other_process = _guard(tmp_path, clock)
    for i in range(3):
        assert guard.check(BUY, BOOK, strategy="grid")[0], i
        guard.record_fill("BTCUSDT", "buy", D("0.01"), D("100"))
        clock.advance(0.6)  # apart: the message limits must not be what says no
    doc = json.loads((tmp_path / LATCHES_FILENAME).read_text())
    assert doc["latches"][SCOPE] == {
        "reason": "risk_repeated_execution",
        "since": pytest.approx(1e9 + clock() - 0.6),
        "executions": 3,
        "window_s": 60.0,
    }
    assert guard.check(BUY, BOOK) == (False, ("risk_repeated_execution",))
    assert other_process.check(BUY, BOOK) == (False, ("risk_repeated_execution",))
    sell = RiskOrder("BTCUSDT", "sell", D("0.01"), D("100"))
    assert guard.check(sell, BOOK) == (True, ())
    assert guard.check(BUY, BOOK, strategy="trend") == (True, ())
    ok, _ = remove_latch(tmp_path, SCOPE)
    assert ok
    assert guard.check(BUY, BOOK) == (True, ())
    assert other_process.check(BUY, BOOK) == (True, ())
    guard.record_fill("BTCUSDT", "buy", D("0.01"), D("100"))  # counting starts afresh
    assert guard.check(BUY, BOOK) == (True, ())


def test_a_failed_latch_write_still_refuses_here_loudly_and_is_retried(
    tmp_path: Path, clock: FakeClock, caplog: pytest.LogCaptureFixture
) -> None:
    rt = tmp_path / "rt"  # not there yet: the lock and the write fail (ENOENT)
    guard = _guard(rt, clock)
    for _ in range(3):
        guard.record_fill("BTCUSDT", "buy", D("0.01"), D("100"))
        clock.advance(0.6)
    assert "cannot write the latch" in caplog.text
    assert guard.check(BUY, BOOK) == (False, ("risk_repeated_execution",))
    assert guard.check(BUY, BOOK, strategy="trend") == (True, ())
    rt.mkdir()
    assert guard.check(BUY, BOOK) == (False, ("risk_repeated_execution",))  # retried: written
    assert SCOPE in read_latches(rt).latches


def test_a_garbage_latch_file_refuses_every_strategy_and_symbol(
    tmp_path: Path, clock: FakeClock
) -> None:
    guard = _guard(tmp_path, clock)
    (tmp_path / LATCHES_FILENAME).write_text('{"latches": {"bad key": {}}}')
    eth = RiskOrder("ETHUSDT", "sell", D("1"), D("100"))
    verdict = guard.verdict(eth, RiskBook(marks={"ETHUSDT": D("100")}), strategy="other")
    assert verdict.reasons == ("risk_repeated_execution",)
    assert "scope=all" in verdict.details[0]


@pytest.mark.parametrize(
    ("table", "key"),
    [
        ({"max_submits_per_s": 0}, "risk.max_submits_per_s"),
        ({"max_cancels_per_s": 1.5}, "risk.max_cancels_per_s"),
        ({"collar_window_pct": 5}, "risk.collar_window_s"),
        ({"collar_window_s": 5}, "risk.collar_window_pct"),
        ({"collar_window_pct": -1, "collar_window_s": 5}, "risk.collar_window_pct"),
        ({"collar_window_pct": 1, "collar_window_s": float("nan")}, "risk.collar_window_s"),
        ({"max_repeated_executions": 3}, "risk.repeated_execution_window_s"),
        (
            {"max_repeated_executions": True, "repeated_execution_window_s": 5},
            "risk.max_repeated_executions",
        ),
    ],
)
def test_a_bad_throttle_key_is_named(table: dict[str, Any], key: str) -> None:
    with pytest.raises(RiskConfigError) as info:
        parse_limits(table)
    assert info.value.key == key


def test_execution_scope_is_the_contract_string() -> None:
    assert execution_scope("grid", "btc/usdt", "BUY") == SCOPE


# -- properties of RiskGuard over sequences (fake clock, real files) ---------------------------
steps = st.lists(
    st.one_of(
        st.tuples(st.just("submit"), st.sampled_from(("grid", "trend"))),
        st.tuples(
            st.just("fill"), st.sampled_from(("grid", "trend")), st.sampled_from(("buy", "sell"))
        ),
        st.tuples(st.just("wait"), st.floats(min_value=0.01, max_value=2.0)),
        st.tuples(
            st.just("enable"), st.sampled_from(("grid", "trend")), st.sampled_from(("buy", "sell"))
        ),
    ),
    max_size=40,
)


@settings(max_examples=60, deadline=None)
@given(ops=steps)
def test_no_window_of_one_second_ever_holds_more_allowed_submits_than_the_limit(
    ops: list[tuple[Any, ...]],
) -> None:
    clock = FakeClock()
    guard = RiskGuard(parse_limits({"max_submits_per_s": 3}), None, time_fn=clock)
    sent: dict[str, list[float]] = {"grid": [], "trend": []}
    for op in ops:
        if op[0] == "submit":
            if guard.check(BUY, BOOK, strategy=op[1])[0]:
                guard.note_sent(strategy=op[1])
                sent[op[1]].append(clock())
        elif op[0] == "wait":
            clock.advance(op[1])
    for times in sent.values():
        for t in times:
            assert sum(1 for u in times if t - 1.0 < u <= t) <= 3


@settings(max_examples=40, deadline=None)
@given(ops=steps)
def test_a_scope_is_refused_exactly_while_its_latch_stands(
    tmp_path_factory: pytest.TempPathFactory, ops: list[tuple[Any, ...]]
) -> None:
    rt = tmp_path_factory.mktemp("rt")
    clock = FakeClock()
    limits = parse_limits({"max_repeated_executions": 2, "repeated_execution_window_s": 3})
    guard = RiskGuard(limits, rt, time_fn=clock, wall_fn=clock)
    fills: dict[str, list[float]] = {}
    latched: set[str] = set()  # the model
    for op in ops:
        if op[0] == "fill":
            scope = execution_scope(op[1], "BTCUSDT", op[2])
            guard.record_fill("BTCUSDT", op[2], D("0.01"), D("100"), strategy=op[1])
            times = [t for t in fills.get(scope, []) if t > clock() - 3] + [clock()]
            fills[scope] = times
            if len(times) >= 2:
                latched.add(scope)
        elif op[0] == "wait":
            clock.advance(op[1])
        elif op[0] == "enable":
            scope = execution_scope(op[1], "BTCUSDT", op[2])
            remove_latch(rt, scope)
            if scope in latched:
                latched.discard(scope)
                fills.pop(scope, None)  # counting starts afresh
        assert set(read_latches(rt).latches) == latched
        for strategy in ("grid", "trend"):
            for side in ("buy", "sell"):
                order = RiskOrder("BTCUSDT", side, D("0.01"), D("100"))
                refused = not guard.check(order, BOOK, strategy=strategy)[0]
                assert refused == (execution_scope(strategy, "BTCUSDT", side) in latched)


def test_the_status_page_compares_the_rates_with_these_keys() -> None:
    from autoheal.daemon.risk_files import limits_view

    view = limits_view(
        parse_limits({"max_submits_per_s": 5, "max_modifies_per_s": 4, "max_cancels_per_s": 9})
    )
    assert view is not None
    assert view.max_messages_per_second == {"submit": D(5), "modify": D(4), "cancel": D(9)}

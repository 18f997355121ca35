"""What a scoped halt means (autoheal.guard.scopes), and the gate obeying it.

The pure rules under hypothesis: a scope's string form round-trips; an order is
halted exactly when a scope names nothing it contradicts; garbage in ``scoped_halts``
never lets an order pass; the union of two sources only tightens; a client order id
carries its strategy and keeps within the strictest venue's rule. Then the real gate
over real files: a halted symbol refused, another passing, a flags document without
the key clearing nothing.
"""

from __future__ import annotations

import json
import re
from pathlib import Path
from typing import Any

import pytest
from hypothesis import given
from hypothesis import strategies as st

from autoheal.ccxt.identity import MAX_LEN, client_order_id
from autoheal.guard.gate import GateStatus, TradingGate, decide
from autoheal.guard.scoped_record import set_halt, sync_flags
from autoheal.guard.scopes import (
    ALL,
    Halt,
    HaltsView,
    Scope,
    ScopeError,
    halted_scope,
    merge_views,
    parse_halts,
    parse_scope,
    strategy_tag,
    strategy_tag_of,
    tagged_name,
)
from autoheal.store.flags import Flags, parse_flags, write_flags

pytestmark = [pytest.mark.timeout(60)]

names = st.text(
    alphabet="abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789._-",
    min_size=1,
    max_size=20,
)
symbols = st.sampled_from(["BTCUSDT", "ETHUSDT", "SOLUSDT"])
sides = st.sampled_from(["buy", "sell"])
scopes = st.builds(
    Scope,
    strategy=st.none() | names,
    symbol=st.none() | symbols,
    venue=st.none() | st.sampled_from(["binanceusdm", "okx"]),
    side=st.none() | sides,
)
orders = st.fixed_dictionaries(
    {
        "strategy": st.none() | names,
        "symbol": st.none() | symbols,
        "venue": st.none() | st.sampled_from(["binanceusdm", "okx"]),
        "side": st.none() | sides,
    }
)


def _not_a_scope(key: str) -> bool:
    try:
        parse_scope(key)
    except ScopeError:
        return True
    return False


@given(scopes)
def test_a_scope_round_trips_through_its_string(scope: Scope) -> None:
    assert parse_scope(str(scope)) == scope
    assert (str(scope) == ALL) == scope.is_all


def test_the_scope_string_is_canonical() -> None:
    assert str(parse_scope("side=BUY, symbol=btc/usdt,strategy=grid")) == (
        "strategy=grid,symbol=BTCUSDT,side=buy"
    )
    assert parse_scope("symbol=BTC/USDT:USDT").matches(symbol="BTCUSDT")
    assert Scope(symbol="BTCUSDT").matches(symbol="BTC/USDT:USDT")
    assert not Scope(symbol="BTCUSDT").matches(symbol="ETH/USDT:USDT")
    for bad in ("", "symbol", "colour=red", "symbol=a,symbol=b", "side=hold", "symbol=//"):
        with pytest.raises(ScopeError):
            parse_scope(bad)


@given(scopes, orders)
def test_an_order_is_halted_exactly_when_the_scope_contradicts_none_of_its_fields(
    scope: Scope, order: dict[str, Any]
) -> None:
    view = HaltsView({scope: Halt("test")})
    contradicted = any(
        getattr(scope, kind) is not None
        and order[kind] is not None
        and getattr(scope, kind) != order[kind]
        for kind in ("strategy", "symbol", "venue", "side")
    )
    assert (halted_scope(view, **order) is None) == contradicted


@given(
    st.one_of(
        st.integers(),
        st.text(),
        st.lists(st.integers()),
        st.dictionaries(st.text().filter(_not_a_scope), st.just({}), min_size=1),
    ),
    orders,
)
def test_garbage_never_lets_an_order_pass(value: object, order: dict[str, Any]) -> None:
    view = parse_halts(value)
    assert view.garbage and view.halts_all
    assert halted_scope(view, **order) == ALL
    status = GateStatus(flags=Flags(mode="REDUCE_ONLY"), scoped=view)
    for action in ("buy", "sell"):
        fields = {k: v for k, v in order.items() if k != "side"}
        assert decide(status, action, reduces_position=True, **fields)[0] is False


@given(scopes, st.one_of(st.none(), st.integers(), st.text(), st.just({"reason": 1})))
def test_an_unreadable_entry_still_halts_its_scope(scope: Scope, entry: object) -> None:
    view = parse_halts({str(scope): entry})
    assert not view.garbage
    assert scope in view.halts


@given(st.lists(scopes, max_size=4), st.lists(scopes, max_size=4), orders)
def test_the_union_of_two_sources_only_tightens(
    a: list[Scope], b: list[Scope], order: dict[str, Any]
) -> None:
    va = HaltsView({s: Halt("a") for s in a})
    vb = HaltsView({s: Halt("b") for s in b})
    merged = merge_views(va, vb)
    for one in (va, vb):
        if halted_scope(one, **order) is not None:
            assert halted_scope(merged, **order) is not None
    assert merge_views(va, HaltsView(garbage="x")).garbage


@given(st.none() | names, st.text(min_size=1, max_size=40), st.sampled_from(["ah", "bot7", "x1"]))
def test_a_client_id_carries_its_strategy_and_keeps_the_venues_rule(
    strategy: str | None, name: str, prefix: str
) -> None:
    cid = client_order_id(prefix, tagged_name(name, strategy))
    assert len(cid) <= MAX_LEN and re.fullmatch(r"[A-Za-z0-9]+", cid)
    if strategy is None:
        assert cid == client_order_id(prefix, name)  # an untagged order keeps today's id
    else:
        assert strategy_tag_of(cid, prefix) == strategy_tag(strategy)


def test_an_untagged_signature_reads_as_no_strategy() -> None:
    sig = "0123456789abcdef0123456789abcdef"
    assert strategy_tag_of(client_order_id("ah", sig), "ah") is None
    assert strategy_tag("grid") == "grid"
    assert strategy_tag("a long strategy name") == strategy_tag("a long strategy name")


# ------------------------------------------------------------------ the gate, real files


def _gate(rt: Path) -> TradingGate:
    return TradingGate(rt, rt / "STOP.TXT", recheck_interval_s=0.0)


def test_the_gate_refuses_inside_a_halted_scope_and_passes_outside(tmp_path: Path) -> None:
    write_flags(tmp_path, Flags())
    gate = _gate(tmp_path)
    assert gate.allowed("buy", symbol="BTC/USDT") == (True, "ok")
    set_halt(tmp_path, "symbol=BTCUSDT", Halt("operator", 1.0, "alice"))
    assert gate.allowed("buy", symbol="BTC/USDT") == (False, "scoped_halt:symbol=BTCUSDT")
    assert gate.allowed("sell", symbol="BTCUSDT") == (False, "scoped_halt:symbol=BTCUSDT")
    assert gate.allowed("buy", symbol="ETHUSDT") == (True, "ok")
    set_halt(tmp_path, "strategy=grid", Halt("operator", 1.0, "alice"))
    assert gate.allowed("buy", symbol="ETHUSDT", strategy="grid")[1] == "scoped_halt:strategy=grid"
    assert gate.allowed("buy", symbol="ETHUSDT", strategy="trend") == (True, "ok")


def test_a_flags_document_without_the_key_clears_nothing(tmp_path: Path) -> None:
    write_flags(tmp_path, Flags())
    set_halt(tmp_path, "symbol=BTCUSDT", Halt("operator", 1.0, "alice"))
    assert sync_flags(tmp_path)
    doc = json.loads((tmp_path / "global_flags.json").read_text())
    assert set(doc["scoped_halts"]) == {"symbol=BTCUSDT"}
    gate = _gate(tmp_path)
    # An operator's editor (or the fleet) writes flags without the key: still halted.
    (tmp_path / "global_flags.json").write_text('{"failsafe_active": false}')
    assert gate.allowed("buy", symbol="BTCUSDT")[0] is False
    # The record lost (by hand) while the flags keep the key: still halted.
    sync_flags(tmp_path)
    (tmp_path / "scoped_halts.json").unlink()
    assert gate.allowed("buy", symbol="BTCUSDT")[0] is False


@pytest.mark.parametrize("value", ['"all"', "[1]", '{"colour=red": {}}', "7"])
def test_garbage_in_the_flags_or_the_record_halts_every_order(tmp_path: Path, value: str) -> None:
    (tmp_path / "global_flags.json").write_text(f'{{"scoped_halts": {value}}}')
    assert parse_flags(json.loads((tmp_path / "global_flags.json").read_text())).flags
    gate = _gate(tmp_path)
    assert gate.allowed("sell", symbol="ETHUSDT") == (False, "scoped_halt:all")
    write_flags(tmp_path, Flags())
    assert gate.allowed("sell", symbol="ETHUSDT") == (True, "ok")
    (tmp_path / "scoped_halts.json").write_text("{not json")
    assert gate.allowed("sell", symbol="ETHUSDT") == (False, "scoped_halt:all")
    assert gate.status().halted

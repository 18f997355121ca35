"""The fleet's scoped halts: the record's optional field and what a host changes."""

from __future__ import annotations

import json

import pytest
from hypothesis import given
from hypothesis import strategies as st

from autoheal.core import fleet as core_fleet
from autoheal.core.fleet import SwitchRecord, Unreadable, encode_switch, parse_switch
from autoheal.core.fleet_scoped import (
    SET_BY,
    FleetScoped,
    parse_scoped,
    plan,
    with_scope,
)

pytestmark = [pytest.mark.timeout(60)]

SCOPES = st.sampled_from(
    ["symbol=BTCUSDT", "symbol=ETHUSDT", "strategy=grid", "venue=binance", "side=buy"]
)
BY = st.sampled_from([SET_BY, "alice", "bob", ""])
WANTED = st.lists(SCOPES, unique=True).map(lambda ss: tuple(FleetScoped(s, "ops") for s in ss))
LOCAL = st.dictionaries(SCOPES, BY)


def applied(local: dict[str, str], wanted: tuple[FleetScoped, ...]) -> dict[str, str]:
    todo = plan(wanted, local)
    after = dict(local)
    for w in todo.to_set:
        after[w.scope] = SET_BY
    for scope in todo.to_clear:
        del after[scope]
    return after


@given(WANTED, LOCAL)
def test_a_read_never_touches_an_operators_scope(
    wanted: tuple[FleetScoped, ...], local: dict[str, str]
) -> None:
    todo = plan(wanted, local)
    assert all(local[s] == SET_BY for s in todo.to_clear)
    assert not {w.scope for w in todo.to_set} & set(local)
    after = applied(local, wanted)
    for scope, by in local.items():
        if by != SET_BY:
            assert after[scope] == by


@given(WANTED, LOCAL)
def test_after_a_read_the_host_holds_every_wanted_scope_and_no_stale_fleet_one(
    wanted: tuple[FleetScoped, ...], local: dict[str, str]
) -> None:
    after = applied(local, wanted)
    names = {w.scope for w in wanted}
    assert names <= set(after)
    assert {s for s, by in after.items() if by == SET_BY} <= names
    assert plan(wanted, after).empty  # a second read of the same record changes nothing


def test_an_operators_local_clear_is_undone_by_the_next_read() -> None:
    wanted = (FleetScoped("symbol=BTCUSDT", "ops", "incident"),)
    assert plan(wanted, {}).to_set == wanted


@given(st.lists(st.tuples(SCOPES, st.booleans())))
def test_halt_and_run_by_scope_keep_the_others(ops: list[tuple[str, bool]]) -> None:
    entries: tuple[FleetScoped, ...] = ()
    expected: set[str] = set()
    for scope, halted in ops:
        entries = with_scope(entries, scope, halted=halted, set_by="ops", reason="r", ts=1.0)
        (expected.add if halted else expected.discard)(scope)
    assert {e.scope for e in entries} == expected


def test_the_field_round_trips_and_its_absence_is_no_scope() -> None:
    record = SwitchRecord(
        "RUN", 4, "ops", "ok", 1.0, (FleetScoped("symbol=BTCUSDT", "alice", "why", 2.0),)
    )
    assert parse_switch(encode_switch(record)) == record
    plain = SwitchRecord("HALT", 1, "ops", "x", 1.0)
    assert "scoped_halts" not in encode_switch(plain)  # older daemons read the same record
    assert parse_switch(encode_switch(plain)) == plain


def test_a_state_change_keeps_the_scopes_and_a_scope_change_keeps_the_state() -> None:
    halted = core_fleet.next_scoped_record(
        SwitchRecord("RUN", 2, "a", "r", 1.0),
        "symbol=X",
        halted=True,
        set_by="b",
        reason="q",
        ts=3.0,
        floor=5,
    )
    assert (halted.state, halted.version, halted.set_by) == ("RUN", 6, "a")
    assert [e.scope for e in halted.scoped] == ["symbol=X"]
    later = core_fleet.next_record(halted, "HALT", set_by="c", reason="z", ts=4.0)
    assert later.scoped == halted.scoped and later.version == 7


def _canon(text: str) -> str:
    if "=" not in text or text == "all":
        raise ValueError("not a scope")
    return text.upper()


@pytest.mark.parametrize(
    "value",
    [
        [],
        "symbol=BTCUSDT",
        {"": {}},
        {"symbol=X": "halted"},
        {"symbol=X": {"reason": 3}},
        {"symbol=X": {"since": "yesterday"}},
        {"symbol=X": {"since": True}},
        {"all": {}},
        {"nonsense": {}},
        {f"symbol=S{i}": {} for i in range(300)},
    ],
)
def test_a_bad_field_makes_the_record_unreadable_never_a_run(value: object) -> None:
    raw = json.dumps({"state": "RUN", "version": 3, "scoped_halts": value})
    outcome = parse_switch(raw, _canon)
    assert isinstance(outcome, Unreadable) and outcome.problem == "fleet_switch_invalid"


def test_scopes_are_canonical_and_kept_once() -> None:
    got = parse_scoped({"symbol=x": {"set_by": "a"}, "SYMBOL=X": {"set_by": "b"}}, _canon)
    assert got == (FleetScoped("SYMBOL=X", "a", "", 0.0),)

"""The fleet's scoped halts written into a real runtime directory (no Redis: the record
is given), including a record that cannot be read, which is never written over."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

from autoheal.core.fleet import SwitchRecord
from autoheal.core.fleet_scoped import FleetScoped
from autoheal.daemon.fleet_scoped import FleetScopedApplier, canonical_scope
from autoheal.guard import scoped_record
from autoheal.guard.scopes import Halt, ScopeError
from tests.guard.conftest import daemon_runtime

pytestmark = [pytest.mark.timeout(30)]


def record(version: int, *scopes: str) -> SwitchRecord:
    return SwitchRecord(
        "RUN", version, "ops", "", 1.0, tuple(FleetScoped(s, "bob", "incident") for s in scopes)
    )


def applier(rt: Path, events: list[tuple[str, dict[str, Any]]]) -> FleetScopedApplier:
    return FleetScopedApplier(
        rt,
        rewrote_flags=lambda: None,
        journal_event=lambda kind, **kw: events.append((kind, kw)),
        wall=lambda: 123.0,
    )


def flags_halts(rt: Path) -> dict[str, Any]:
    return json.loads((rt / "global_flags.json").read_text()).get("scoped_halts") or {}


def test_set_cleared_and_an_operators_scope_left(tmp_path: Path) -> None:
    rt = daemon_runtime(tmp_path / "rt")
    events: list[tuple[str, dict[str, Any]]] = []
    scoped_record.set_halt(rt, "symbol=ETHUSDT", Halt("mine", 1.0, "alice"))
    fleet = applier(rt, events)
    fleet.apply(record(3, "symbol=BTCUSDT"))
    halts = flags_halts(rt)
    assert halts["symbol=BTCUSDT"]["set_by"] == "fleet"
    assert halts["symbol=BTCUSDT"]["since"] == 123.0
    assert halts["symbol=BTCUSDT"]["reason"] == "fleet v3 by bob: incident"
    assert fleet.apply(record(3, "symbol=BTCUSDT")).empty  # state: the same read, no change
    fleet.apply(record(4))
    assert set(flags_halts(rt)) == {"symbol=ETHUSDT"}  # the operator's stays
    assert [k for k, _ in events] == ["fleet_scoped_halt_entered", "fleet_scoped_halt_cleared"]
    assert events[0][1]["actor"] == "fleet" and events[0][1]["data"]["fleet_set_by"] == "bob"


def test_an_unreadable_record_is_never_written_over(tmp_path: Path) -> None:
    rt = daemon_runtime(tmp_path / "rt")
    (rt / "scoped_halts.json").write_text("{not json")
    fleet = applier(rt, [])
    assert fleet.apply(record(1, "symbol=BTCUSDT")).empty
    assert (rt / "scoped_halts.json").read_text() == "{not json"


@pytest.mark.parametrize("text", ["all", "colour=red", "side=up", ""])
def test_a_fleet_scope_is_a_scope_and_never_all(text: str) -> None:
    with pytest.raises(ScopeError):
        canonical_scope(text)
    assert canonical_scope("symbol=btc/usdt,strategy=grid") == "strategy=grid,symbol=BTCUSDT"

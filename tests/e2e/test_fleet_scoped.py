"""Scoped halts from the fleet (issue 24): two real daemons share one real
``redis-server``; ``autoheal fleet halt --scope`` halts that scope on both with
``set_by = "fleet"``, an operator's local clear is undone by the next read, a lost Redis
clears nothing, and ``fleet run --scope`` clears only what the fleet set."""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from autoheal.drills.stacks.redis import RedisServer
from autoheal.drills.stacks.simple import Runtime, wait_for
from tests.e2e.test_fleet import STALE_S, fleet_hosts, mode
from tests.sysdeps import require_binary

pytestmark = [pytest.mark.slow, pytest.mark.timeout(60)]

BTC, ETH = "symbol=BTCUSDT", "symbol=ETHUSDT"


@pytest.fixture
def redis(tmp_path: Path) -> Iterator[RedisServer]:
    server = RedisServer(require_binary("redis-server", "redis-server"), tmp_path / "redis")
    server.start()
    try:
        yield server
    finally:
        server.stop()


@pytest.fixture
def hosts(tmp_path: Path, redis: RedisServer) -> Iterator[list[Runtime]]:
    yield from fleet_hosts(tmp_path, redis, 2)


def halts(rt: Runtime) -> dict[str, Any]:
    """The scoped halts as the guard reads them from ``global_flags.json``."""
    return (rt.flags() or {}).get("scoped_halts") or {}


def by(rt: Runtime, scope: str) -> str | None:
    entry = halts(rt).get(scope)
    return entry.get("set_by") if isinstance(entry, dict) else None


def test_fleet_scoped_halt_set_kept_and_cleared_only_by_the_fleet(
    hosts: list[Runtime], redis: RedisServer
) -> None:
    h0, h1 = hosts
    done = h0.cli("fleet", "halt", "--scope", "symbol=btc/usdt", "--reason", "venue incident")
    assert done.returncode == 0, done.stdout + done.stderr
    for rt in hosts:
        wait_for(lambda rt=rt: by(rt, BTC) == "fleet", 5, f"{rt.root.name}: {BTC} by fleet")
        assert mode(rt) == "NORMAL"  # a scope, not the whole runtime
    switch = json.loads(h0.cli("fleet", "status", "--json").stdout)["switch"]
    assert switch["state"] == "RUN" and list(switch["scoped_halts"]) == [BTC]
    assert f"scoped halt {BTC} by " in h0.cli("fleet", "status").stdout
    wait_for(
        lambda: all(
            h["scoped_halts"] == [BTC]
            for h in json.loads(h0.cli("fleet", "status", "--json").stdout)["hosts"]
        ),
        5,
        "every host reports the scope applied",
    )
    assert "venue incident" in halts(h1)[BTC]["reason"]
    assert any(e.kind == "fleet_scoped_halt_entered" for e in h1.events())

    # An operator clears it locally on host0: the next read of the switch halts it again.
    assert h0.cli("failsafe", "clear", "--scope", BTC, "--reason", "try").returncode == 0
    wait_for(lambda: by(h0, BTC) == "fleet", 5, "host0 halted again by the fleet")
    # An operator's own scope on host1, and an operator taking the fleet's over on host0.
    assert h1.cli("failsafe", "enter", "--scope", ETH, "--reason", "mine").returncode == 0
    assert h0.cli("failsafe", "enter", "--scope", BTC, "--reason", "mine too").returncode == 0
    wait_for(lambda: by(h1, ETH) not in (None, "fleet"), 5, "host1's own ETH halt")
    wait_for(lambda: by(h0, BTC) not in (None, "fleet"), 5, "host0 took BTC over")

    # Redis gone past stale_after: the hosts fail closed and every scoped halt stays.
    redis.stop()
    for rt in hosts:
        wait_for(lambda rt=rt: mode(rt) == "DEGRADED", 3 * STALE_S + 3, "DEGRADED")
    assert by(h1, BTC) == "fleet" and BTC in halts(h0) and ETH in halts(h1)

    # Back empty: the operator resumes the scope, above the versions the hosts applied.
    redis.start()
    wait_for(
        lambda: len(json.loads(h0.cli("fleet", "status", "--json").stdout)["hosts"]) == 2,
        10,
        "hosts",
    )
    done = h0.cli("fleet", "run", "--scope", BTC, "--reason", "venue back")
    assert done.returncode == 0, done.stdout + done.stderr
    wait_for(lambda: BTC not in halts(h1), 5, "host1: the fleet's BTC halt cleared")
    wait_for(lambda: mode(h1) == "NORMAL", 5, "host1 NORMAL again")
    assert by(h1, ETH) not in (None, "fleet")  # the operator's own scope stays
    assert by(h0, BTC) not in (None, "fleet")  # taken over: the fleet's clear leaves it
    assert any(e.kind == "fleet_scoped_halt_cleared" for e in h1.events())


def test_fleet_scope_refusals(hosts: list[Runtime]) -> None:
    h0 = hosts[0]
    for args in (
        ("reduce-only", "--scope", BTC),
        ("halt", "--scope", "all"),
        ("halt", "--scope", "colour=red"),
        ("status", "--scope", BTC),
    ):
        done = h0.cli("fleet", *args, "--reason", "x")
        assert done.returncode == 2, (args, done.stdout + done.stderr)

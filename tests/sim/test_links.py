"""The simulator's links to the outside: the Redis stand-in, the exchange, the queue's lock.

Unit tests of the stand-ins (they answer like what they stand for, for what the daemon
uses, and fail the way it fails), of the fleet's invariants on hand-made inputs, and
the CLI's one clear line on a locked queue (a bug the lock errors found, fixed; the
daemon's two are tested in tests/daemon/test_command_queue.py).
"""

from __future__ import annotations

import random
import sqlite3
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Any

import httpx
import pytest
import redis.exceptions as rx
import trio
from trio.testing import MockClock

from autoheal.cli.fleet import CAS_SCRIPT
from autoheal.probes.http import HttpProbe
from autoheal.probes.result import CONN_REFUSED, CONN_TIMEOUT, LATENCY_P95_HIGH
from autoheal.sim.fleet import RedisStandIn, SimRedis, SimRedisSync
from autoheal.sim.invariants import ClearLedger, JournalEvent
from autoheal.sim.links import fleet_halt_refuses_buy
from autoheal.sim.network import EXCHANGE_URL, SimExchange
from autoheal.sim.queuelock import QueueLock, queue_lock_patches
from autoheal.store import commands as queue
from autoheal.store.journal import Journal

pytestmark = pytest.mark.timeout(120)


def virtual(fn: Callable[[], Awaitable[Any]]) -> Any:
    """Run ``fn`` on trio with a virtual clock (no real sleep); return its result."""
    box: list[Any] = []

    async def main() -> None:
        box.append(await fn())

    trio.run(main, clock=MockClock(autojump_threshold=0))
    return box[0]


# ---------------------------------------------------------------------- Redis


def test_the_commands_the_agent_uses_answer_as_redis_does() -> None:
    store = RedisStandIn(random.Random(1))

    async def body() -> list[Any]:
        r = SimRedis(store, timeout=1.0)
        out: list[Any] = [await r.get("k")]
        out.append(await r.set("k", "v", px=1500))
        out.append(await r.get(b"k"))
        out.append(await r.sadd("hosts", "a", "b"))
        out.append(await r.sadd("hosts", "a"))
        await trio.sleep(2.0)
        out.append(await r.get("k"))  # the TTL ran out
        return out

    assert virtual(body) == [None, True, b"v", 2, 0, None]


def test_a_refusing_partition_raises_redis_connection_error() -> None:
    store = RedisStandIn(random.Random(1))
    store.partition = "refuse"

    async def body() -> None:
        await SimRedis(store, timeout=1.0).get("k")

    with pytest.raises(rx.ConnectionError):
        virtual(body)


def test_a_hanging_partition_raises_redis_timeout_after_the_socket_timeout() -> None:
    store = RedisStandIn(random.Random(1))
    store.partition = "hang"

    async def body() -> float:
        start = trio.current_time()
        try:
            await SimRedis(store, timeout=0.75).get("k")
        except rx.TimeoutError:
            return trio.current_time() - start
        raise AssertionError("no timeout")

    assert virtual(body) == pytest.approx(0.75)


def test_an_empty_restart_loses_every_key_and_closes_the_connection_once() -> None:
    store = RedisStandIn(random.Random(1))

    async def body() -> list[Any]:
        r = SimRedis(store, timeout=1.0)
        await r.set("k", "v")
        await r.sadd("s", "m")
        store.empty_restart()
        out: list[Any] = []
        try:
            await r.get("k")
        except rx.ConnectionError:
            out.append("closed")
        out.append(await r.get("k"))  # the pool reconnects
        out.append(SimRedisSync(store).smembers("s"))
        return out

    assert virtual(body) == ["closed", None, set()]


def test_the_cas_script_sets_only_over_what_was_read_and_publishes() -> None:
    store = RedisStandIn(random.Random(1))
    sync = SimRedisSync(store)

    async def body() -> list[Any]:
        sub = SimRedis(store, timeout=1.0).pubsub()
        await sub.subscribe("ch")
        out: list[Any] = [sync.eval(CAS_SCRIPT, 2, "sw", "ch", "0", b"", "A", "1")]
        out.append(sync.eval(CAS_SCRIPT, 2, "sw", "ch", "0", b"", "B", "2"))  # not absent
        out.append(sync.eval(CAS_SCRIPT, 2, "sw", "ch", "1", b"X", "B", "2"))  # not X
        out.append(sync.get("sw"))
        message = await sub.get_message(ignore_subscribe_messages=True, timeout=1.0)
        out.append(None if message is None else message["data"])
        return out

    assert virtual(body) == [1, 0, 0, b"A", b"1"]


# ---------------------------------------------------------------------- the exchange


@pytest.mark.parametrize(
    ("mode", "reason"),
    [("refused", CONN_REFUSED), ("timeout", CONN_TIMEOUT), ("status", "http_status_503")],
)
def test_the_exchange_fails_the_probe_as_httpx_would(mode: str, reason: str) -> None:
    exchange = SimExchange(random.Random(1))
    exchange.mode = mode

    async def body() -> str:
        client = httpx.AsyncClient(transport=exchange, timeout=1.0, trust_env=False)
        async with HttpProbe(EXCHANGE_URL, 1.0, client=client, clock=trio.current_time) as p:
            result = await p.check()
        await client.aclose()
        return result.reason

    assert virtual(body) == reason


def test_a_slow_exchange_drives_the_p95_over_its_limit() -> None:
    exchange = SimExchange(random.Random(1))

    async def body() -> list[str]:
        client = httpx.AsyncClient(transport=exchange, timeout=1.0, trust_env=False)
        probe = HttpProbe(EXCHANGE_URL, 1.0, latency_p95=0.15, client=client, window=3)
        probe._clock = trio.current_time  # the virtual clock
        reasons = [(await probe.check()).reason]
        exchange.mode = "slow"
        for _ in range(3):
            reasons.append((await probe.check()).reason)
        await client.aclose()
        return reasons

    reasons = virtual(body)
    assert reasons[0] == ""
    assert reasons[-1] == LATENCY_P95_HIGH


# ---------------------------------------------------------------------- the queue's lock


def test_a_locked_queue_raises_database_is_locked_and_writes_nothing(tmp_path: Path) -> None:
    lock = QueueLock(random.Random(1))
    with Journal.open(tmp_path) as journal, queue_lock_patches(lock):
        lock.chance = 1.0
        with pytest.raises(sqlite3.OperationalError, match="database is locked"):
            queue.submit(journal, "restart", "x", {}, "alice", idempotency_key="k")
        lock.chance = 0.0
        again = queue.submit(journal, "restart", "x", {}, "alice", idempotency_key="k")
    assert not again.duplicate  # the failed submit left nothing behind: the key is fresh
    assert lock.failed["submit"] == 1


# ---------------------------------------------------------------------- invariants


def test_a_fleet_halt_the_daemon_applied_must_refuse_a_buy() -> None:
    assert fleet_halt_refuses_buy(True, 3, 3, False, (True, "ok"))
    assert fleet_halt_refuses_buy(True, 3, 2, True, (True, "ok"))  # lost: fail closed
    assert not fleet_halt_refuses_buy(True, 3, 2, False, (True, "ok"))  # not seen yet
    assert not fleet_halt_refuses_buy(True, 3, 3, False, (False, "stop_file_present"))
    assert not fleet_halt_refuses_buy(False, 3, 3, False, (True, "ok"))


def _notice(i: int, kind: str, reason: str) -> JournalEvent:
    return JournalEvent(i, "notice", None, reason, {"kind": kind, "message": f"{kind} {i}"})


def test_a_fleet_run_may_clear_the_fleets_halt_but_never_a_local_failsafe() -> None:
    ledger = ClearLedger()
    assert ledger.see([_notice(1, "failsafe", "fleet_halt")]) == []
    assert ledger.see([_notice(2, "failsafe_cleared", "fleet_run")]) == []
    assert ledger.see([_notice(3, "failsafe", "max_restarts")]) == []
    found = ledger.see([_notice(4, "failsafe_cleared", "fleet_run")])
    assert len(found) == 1 and "fleet RUN cleared a local failsafe" in found[0]


def test_the_operator_still_needs_an_act_to_clear_a_fleet_halt() -> None:
    ledger = ClearLedger()
    ledger.see([_notice(1, "failsafe", "fleet_halt")])
    found = ledger.see([_notice(2, "failsafe_cleared", "operator")])
    assert found and "no operator act" in found[0]


# ---------------------------------------------------------------------- real bugs


@pytest.mark.slow
def test_a_locked_queue_is_one_clear_line_for_the_operator(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    from autoheal.cli import main

    cfg = tmp_path / "autoheal.toml"
    cfg.write_text(
        f'environment = "paper"\n[paths]\nruntime_dir = "{tmp_path}/rt"\n'
        f'stop_file = "{tmp_path}/STOP.TXT"\n[services.svc]\nargv = ["sleep", "100"]\n'
    )
    lock = QueueLock(random.Random(1))
    lock.chance = 1.0
    with queue_lock_patches(lock):
        code = main(["restart", "svc", "--reason", "x", "--config", str(cfg)])
    err = capsys.readouterr().err
    assert code == 1
    assert "database is locked" in err
    assert len(err.strip().splitlines()) == 1


def test_a_halt_violation_must_outlast_the_grace_with_no_clearing_act_between() -> None:
    from types import SimpleNamespace

    from autoheal.sim.fleet import SimRedisSync
    from autoheal.sim.links import Links
    from autoheal.sim.profile import FaultProfile

    profile = FaultProfile({}, 5.0, 0.0, 0.0, 0, fleet="degrade")
    links = Links(random.Random(1), profile)
    record = b'{"state": "HALT", "version": 7, "set_by": "alice", "reason": "r", "ts": 0}'
    links.redis.set(b"autoheal:fleet:simfleet:switch", record, None)
    assert SimRedisSync(links.redis).get("autoheal:fleet:simfleet:switch") == record
    state: Any = SimpleNamespace(fleet=SimpleNamespace(version=7, lost=""), failsafe=None)
    allowed = (True, "ok")

    async def body() -> list[list[str]]:
        seen = [links.check(state, allowed, False, clear_acts=0)]  # first sighting
        await trio.sleep(5.0)
        seen.append(links.check(state, allowed, False, clear_acts=1))  # an act between
        await trio.sleep(5.0)
        seen.append(links.check(state, allowed, False, clear_acts=1))  # none: a violation
        return seen

    first, after_an_act, held = virtual(body)
    assert first == [] and after_an_act == []
    assert held and "fleet HALT v7 in force" in held[0]


def test_a_slow_link_that_can_outlast_the_timeout_gets_the_lost_links_grace() -> None:
    # Seeds 7416 and 7552: an operator's local clear of a fleet HALT right after a good
    # read, then a slow link (calls up to 1.5 s, the client's timeout 1 s): the reads
    # that would re-halt time out, and the host is lost only stale_after after the last
    # good read. Within that, no violation; after it, one.
    from types import SimpleNamespace

    from autoheal.sim.fleet import FLEET_IO_TIMEOUT_S
    from autoheal.sim.links import HALT_GRACE_S, LOST_GRACE_S, Links
    from autoheal.sim.profile import FaultProfile

    profile = FaultProfile({}, 5.0, 0.0, 0.0, 0, fleet="degrade")
    links = Links(random.Random(1), profile)
    record = b'{"state": "HALT", "version": 8, "set_by": "alice", "reason": "r", "ts": 0}'
    links.redis.set(b"autoheal:fleet:simfleet:switch", record, None)
    links.redis.latency_max = 1.5
    assert links.redis.latency_max > FLEET_IO_TIMEOUT_S
    state: Any = SimpleNamespace(fleet=SimpleNamespace(version=8, lost=""), failsafe=None)
    allowed = (True, "ok")

    async def body() -> list[list[str]]:
        seen = [links.check(state, allowed, False, clear_acts=1)]
        await trio.sleep(HALT_GRACE_S + 1.0)
        seen.append(links.check(state, allowed, False, clear_acts=1))  # slow: still grace
        await trio.sleep(LOST_GRACE_S - HALT_GRACE_S)
        seen.append(links.check(state, allowed, False, clear_acts=1))  # lost by now
        return seen

    first, within, after = virtual(body)
    assert first == [] and within == []
    assert after and "fleet HALT v8 in force" in after[0]


def test_a_fleet_signed_halt_read_back_is_the_fleets_and_a_second_notice_no_new_entry() -> None:
    # Seed 92: a fleet-signed flags document read back enters the failsafe as the
    # fleet's ("failsafe entered by fleet: ..."); the fleet's RUN may lift it.
    ledger = ClearLedger()
    fleet_flags = JournalEvent(
        1,
        "notice",
        None,
        "operator",
        {"kind": "failsafe", "message": "failsafe entered by fleet: x"},
    )
    assert ledger.see([fleet_flags]) == []
    assert ledger.see([_notice(2, "failsafe_cleared", "fleet_run")]) == []
    # Seed 250: an operator's act (removing STOP.TXT) made before the fleet's lost link
    # said "HALTED" again still clears: that notice is no new entry.
    ledger.see([_notice(3, "failsafe", "operator")])
    ledger.act(4)
    assert ledger.see([_notice(5, "failsafe", "fleet_lost")]) == []
    assert ledger.see([_notice(6, "failsafe_cleared", "operator")]) == []

"""A drill leaves nothing behind (issue 19): its teardown reaps its own processes by
identity (PID plus start time), whatever happened to its stop step and its rollbacks.

Seen once under load: an ``autoheal.demo.trader`` from ``host_dies_with_resting_orders``
still running 40 minutes later, its daemon gone. The operator's ``stop`` never landed,
and the rollback, which stops only the daemon, had no daemon left to stop the trader
(a service in a session of its own: init inherits it). Real processes here, no mocks.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
from collections.abc import Callable, Iterator
from functools import partial
from pathlib import Path

import anyio
import httpx
import psutil
import pytest

from autoheal.drills import DrillResult, Status, load_catalog, run_one
from autoheal.drills.stacks.harness import ProcessRoster, Spawned, wait_for
from autoheal.store.atomic import read_json

HOST_DIES = "host_dies_with_resting_orders"
SLEEPER = [sys.executable, "-c", "import time; time.sleep(60)"]


def gone(proc: psutil.Process) -> bool:
    try:
        return not proc.is_running() or proc.status() == psutil.STATUS_ZOMBIE
    except psutil.NoSuchProcess:
        return True


Start = Callable[[], "subprocess.Popen[bytes]"]


@pytest.fixture
def sleepers() -> Iterator[Start]:
    """Children the test starts itself; whatever a test leaves, this kills."""
    started: list[subprocess.Popen[bytes]] = []

    def start() -> subprocess.Popen[bytes]:
        child = subprocess.Popen(SLEEPER)
        started.append(child)
        return child

    yield start
    for child in started:
        child.kill()
        child.wait(5)


@pytest.mark.slow
def test_roster_reap_kills_what_it_owns_and_nothing_it_cannot_prove(sleepers: Start) -> None:
    roster = ProcessRoster()
    ours, reused = sleepers(), sleepers()
    assert roster.add(ours.pid, "ours")
    # The same PID with another start time is another process: never signalled.
    real = psutil.Process(reused.pid).create_time()
    assert roster.add(reused.pid, "reused pid", create_time=real - 10.0)
    assert roster.reap() == [f"{ours.pid} {' '.join(SLEEPER)}"[:130]]
    assert ours.wait(5) == -signal.SIGKILL
    assert reused.poll() is None
    assert roster.reap() == []  # nothing left: a second reap is a no-op


@pytest.mark.slow
def test_roster_takes_a_health_documents_components_only_if_they_ran_when_it_was_written(
    sleepers: Start,
) -> None:
    roster = ProcessRoster()
    before = sleepers()
    started = psutil.Process(before.pid).create_time()
    doc = {"ts": started + 1.0, "components": {"trader": {"pid": before.pid}}}
    assert roster.add_components(doc) == 1
    later = sleepers()  # as if the kernel had given a PID named in an old document away
    old = {
        "ts": psutil.Process(later.pid).create_time() - 5.0,
        "components": {"feeder": {"pid": later.pid}},
    }
    assert roster.add_components(old) == 0
    assert roster.add_components({"components": {"feeder": {"pid": later.pid}}}) == 0  # no ts
    assert [p.pid for p in roster.running()] == [before.pid]


@pytest.mark.slow
def test_spawned_stop_ends_in_sigkill_and_a_daemons_stop_owns_its_services(
    tmp_path: Path,
) -> None:
    roster = ProcessRoster()
    stubborn = Spawned(
        [
            sys.executable,
            "-c",
            "import signal, time; signal.signal(signal.SIGTERM, "
            "signal.SIG_IGN); print('ready', flush=True); time.sleep(60)",
        ],
        tmp_path / "stubborn.log",
        roster=roster,
    )
    wait_for(lambda: "ready" in stubborn.log_text(), 10, "the child to ignore SIGTERM")
    assert stubborn.stop(0.2) == -signal.SIGKILL
    assert roster.running() == []


@pytest.mark.slow
def test_a_drill_whose_stop_step_fails_leaves_no_process_behind(tmp_path: Path) -> None:
    """The host dies before the operator's stop lands: the daemon is SIGKILLed once its
    trader rests its orders. The stop step then fails (nothing claims the command), the
    rollback has no daemon to stop, and the trader, orphaned, would run on."""
    scenario = load_catalog()[HOST_DIES].with_params(stop_wait_s=1.0)
    work = tmp_path / HOST_DIES
    shared = work / "autoheal" / "shared_data"
    seen: dict[str, psutil.Process] = {}

    def trader_resting() -> bool:
        health = read_json(shared / "health_v2.json").doc
        port = read_json(work / "exchange" / "exchange.port.json").doc
        if not isinstance(health, dict) or not isinstance(port, dict):
            return False
        trader = (health.get("components") or {}).get("trader") or {}
        if not isinstance(trader.get("pid"), int):
            return False
        stats = httpx.get(f"{port['rest_url']}/admin/stats", timeout=2).json()
        if len(stats["open_orders"]) < 3:
            return False
        seen["trader"] = psutil.Process(trader["pid"])
        seen["daemon"] = psutil.Process(health["daemon"]["pid"])
        seen["exchange"] = psutil.Process(port["pid"])
        return True

    async def main() -> DrillResult:
        result: list[DrillResult] = []
        async with anyio.create_task_group() as tg:

            async def drill() -> None:
                result.append(await run_one(scenario, work))

            tg.start_soon(drill)
            await anyio.to_thread.run_sync(
                partial(wait_for, trader_resting, 20, "the trader's resting orders", poll=0.01)
            )
            os.kill(seen["daemon"].pid, signal.SIGKILL)  # the host dies, its daemon first
        return result[0]

    result = anyio.run(main)
    assert result.status in (Status.FAILED, Status.ERROR), result.status
    left = {name: p.pid for name, p in seen.items() if not gone(p)}
    for proc in seen.values():  # the test's own teardown, should the drill's have failed
        if not gone(proc):
            proc.kill()
    assert left == {}
    reaped = result.details["reaped"]
    assert any(
        r.startswith(f"{seen['trader'].pid} ") and "autoheal.demo.trader" in r for r in reaped
    ), reaped

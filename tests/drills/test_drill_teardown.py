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
import time
from collections.abc import Callable, Iterator
from functools import partial
from pathlib import Path

import anyio
import psutil
import pytest

from autoheal.drills import DrillResult, Status, load_catalog, run_one
from autoheal.drills.stacks.harness import ProcessRoster, Spawned, wait_for
from autoheal.drills.stacks.simple import Runtime
from autoheal.store.atomic import read_json
from autoheal.store.journal import Journal

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
def test_roster_takes_a_pidfiles_process_only_if_it_ran_when_the_file_was_written(
    sleepers: Start, tmp_path: Path
) -> None:
    roster = ProcessRoster()
    child = sleepers()
    pidfile = tmp_path / "svc.pid"
    pidfile.write_text(f"{child.pid}\n")
    stale = tmp_path / "old.pid"
    stale.write_text(f"{child.pid}\n")
    started = psutil.Process(child.pid).create_time()
    os.utime(stale, (started - 5.0, started - 5.0))  # written for a process before this one
    assert not roster.add_pidfile(stale)
    assert not roster.add_pidfile(tmp_path / "missing.pid")
    assert roster.add_pidfile(pidfile)
    assert [p.pid for p in roster.running()] == [child.pid]


@pytest.mark.slow
def test_spawned_stop_ends_in_sigkill_when_sigterm_is_ignored(
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
def test_a_daemon_that_leaves_its_services_running_leaves_them_to_the_roster(
    tmp_path: Path,
) -> None:
    """``stop_services_on_exit = false``: the daemon's SIGTERM leaves its services running
    (for the next daemon to adopt); the stack's teardown still ends them."""
    with Runtime(tmp_path, ("feeder", "trader"), stop_services_on_exit=False) as rt:
        rt.start_daemon()
        services = [psutil.Process(rt.health_pid(n) or 0) for n in ("feeder", "trader")]
        assert rt.stop_daemon() == 0
        assert not any(gone(p) for p in services)  # as configured: they outlive it
    assert all(gone(p) for p in services)


@pytest.mark.slow
def test_a_drill_whose_stop_step_fails_leaves_no_process_behind(tmp_path: Path) -> None:
    """The incident, made certain: the daemon freezes (SIGSTOP: a daemon under load that
    answers nothing) once its trader runs, so the operator's stop times out (the stop
    step fails), then the host dies (SIGKILL) before anything stopped the trader. The
    rollback has no daemon left to stop it; the drill's teardown reaps it anyway."""
    scenario = load_catalog()[HOST_DIES].with_params(stop_wait_s=1.0)
    work = tmp_path / HOST_DIES
    shared = work / "autoheal" / "shared_data"
    seen: dict[str, psutil.Process] = {}
    done: list[DrillResult] = []

    def trader_running() -> bool:
        health = read_json(shared / "health_v2.json").doc
        port = read_json(work / "exchange" / "exchange.port.json").doc
        if not isinstance(health, dict) or not isinstance(port, dict):
            return False
        trader = (health.get("components") or {}).get("trader") or {}
        if not isinstance(trader.get("pid"), int):
            return False
        try:  # a document may name a process already gone: look again
            seen["trader"] = psutil.Process(trader["pid"])
            seen["daemon"] = psutil.Process(health["daemon"]["pid"])
            seen["exchange"] = psutil.Process(port["pid"])
        except psutil.NoSuchProcess:
            return False
        return True

    def stop_step_gave_up() -> bool:
        """The operator's stop is in the journal, unclaimed, older than the step waits."""
        if done:
            return True  # the drill ended some other way: the teardown is checked all the same
        with Journal.open(shared) as journal:
            rows = journal.query("SELECT status, created_at FROM commands WHERE type = 'stop'")
        return any(r["status"] == "pending" and time.time() - r["created_at"] > 1.5 for r in rows)

    async def main() -> None:
        async with anyio.create_task_group() as tg:

            async def drill() -> None:
                done.append(await run_one(scenario, work))

            tg.start_soon(drill)
            await anyio.to_thread.run_sync(
                partial(wait_for, trader_running, 20, "the supervised trader", poll=0.005)
            )
            os.kill(seen["daemon"].pid, signal.SIGSTOP)  # frozen: it claims no command
            await anyio.to_thread.run_sync(
                partial(wait_for, stop_step_gave_up, 20, "the stop step to give up")
            )
            os.kill(seen["daemon"].pid, signal.SIGKILL)  # then the host dies

    anyio.run(main)
    result = done[0]
    left = {name: p.pid for name, p in seen.items() if not gone(p)}
    for proc in seen.values():  # the test's own teardown, should the drill's have failed
        if not gone(proc):
            proc.kill()
    assert left == {}
    assert result.status is Status.FAILED, (result.status, result.details.get("error"))
    assert {c.name: c.observed for c in result.failed_criteria}["operator_stop"] == "'pending'"
    reaped = result.details["reaped"]
    assert any(
        r.startswith(f"{seen['trader'].pid} ") and "autoheal.demo.trader" in r for r in reaped
    ), reaped


@pytest.mark.slow
def test_a_drill_cancelled_from_outside_still_rolls_back_and_reaps(tmp_path: Path) -> None:
    """Ctrl-C (or a caller's deadline) cancels the run while the demo stack is up: the
    rollbacks and the reap run all the same, and nothing the drill started is left."""
    work = tmp_path / "kill_feeder"
    seen: dict[int, psutil.Process] = {}

    def stack_up() -> bool:
        health = read_json(work / "shared_data" / "health_v2.json").doc
        port = read_json(work / "exchange" / "exchange.port.json").doc
        if not isinstance(health, dict) or health.get("dor") is not True:
            return False
        pids = [health["daemon"]["pid"], port["pid"]]  # type: ignore[index]
        pids += [c["pid"] for c in health["components"].values()]
        try:
            seen.update({pid: psutil.Process(pid) for pid in pids})
        except psutil.NoSuchProcess:
            return False
        return True

    async def main() -> None:
        async with anyio.create_task_group() as tg:
            tg.start_soon(run_one, load_catalog()["kill_feeder"], work)
            await anyio.to_thread.run_sync(
                partial(wait_for, stack_up, 20, "the drill's stack at DOR", poll=0.01)
            )
            tg.cancel_scope.cancel()

    anyio.run(main)
    left = {pid: p for pid, p in seen.items() if not gone(p)}
    for proc in left.values():
        proc.kill()
    assert len(seen) == 4  # daemon, exchange, feeder, trader
    assert left == {}

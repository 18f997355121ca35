"""The real Daemon on virtual time: a whole restart episode at the runbook's own timings.

The daemon reads, sleeps and times out on one clock (``autoheal.daemon.clock``), the
event loop's. Here the loop is trio's with ``MockClock(autojump_threshold=0)``: when
every task waits, time jumps to the next deadline, so the 15/30/60 s backoff, the
90 s verify windows and the 600 s ``stable_reset`` of DESIGN.md §2 pass in a fraction
of a second. That is honest only because nothing real is in flight: the processes
are :class:`~autoheal.testing.FakeProcessControl` (verified against the real control
by ``test_process_control_contract.py``), while the files (config, journal, state,
health, flags, STOP.TXT, the feeder's heartbeat) are real, in ``tmp_path``; their
wall-clock stamps follow the virtual clock (``LoopClock.virtual``).
"""

from __future__ import annotations

import gc
import itertools
import time
from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any

import anyio
import orjson
import pytest
from trio.testing import MockClock

from autoheal.config import Config, load_config
from autoheal.daemon.clock import LoopClock
from autoheal.daemon.loop import Daemon
from autoheal.store import commands as queue
from autoheal.store.atomic import read_json, write_json_atomic
from autoheal.store.journal import Journal
from autoheal.testing import FakeProcessControl

pytestmark = [pytest.mark.anyio]

#: Unix time at virtual time 0 (the wall clock is a label; it follows the virtual one).
EPOCH = 1_700_000_000.0

CONFIG = """\
environment = "paper"

[paths]
runtime_dir = "shared_data"
stop_file = "STOP.TXT"

[policy]
failures_before_restart = 2
restart_backoff = ["15s", "30s", "60s"]
verify_window = "90s"
verify_min_uptime = "2s"
max_restarts = 4
stable_reset = "600s"

[daemon]
heartbeat_interval = "10s"

[services.feeder]
argv = ["{python}", "-c", "feeder"]

[[services.feeder.probes]]
kind = "process"

[[services.feeder.probes]]
kind = "heartbeat"
path = "feeder.heartbeat.json"
max_age = "10s"
interval = "1s"
"""


@pytest.fixture
def anyio_backend() -> tuple[str, dict[str, Any]]:
    return "trio", {"clock": MockClock(autojump_threshold=0)}


@pytest.fixture
def config(tmp_path: Path) -> Config:
    path = tmp_path / "autoheal.toml"
    path.write_text(CONFIG)
    return load_config(path)


@asynccontextmanager
async def running_daemon(config: Config, fake: FakeProcessControl) -> AsyncIterator[None]:
    daemon = Daemon(config, procs=fake, clock=LoopClock.virtual(EPOCH))
    async with anyio.create_task_group() as tg:
        await tg.start(lambda task_status: daemon.run(task_status=task_status))
        yield
        tg.cancel_scope.cancel()
    gc.collect()


async def until(predicate: Callable[[], object], what: str, *, within: float) -> float:
    """Wait (in virtual time, a check a second) until ``predicate()``; return the time."""
    deadline = anyio.current_time() + within
    while not predicate():
        if anyio.current_time() > deadline:
            pytest.fail(f"no {what} within {within} virtual seconds")
        await anyio.sleep(1.0)
    return anyio.current_time()


def doc(path: Path) -> dict[str, Any]:
    return read_json(path).doc or {}


async def beat(path: Path, scope: anyio.CancelScope) -> None:
    """The feeder's heartbeat as a healthy feeder writes it (every 4 s, wall ``ts``),
    until ``scope`` is cancelled (the feeder hangs)."""
    with scope:
        for seq in itertools.count(1):
            doc = {"component": "feeder", "ts": EPOCH + anyio.current_time(), "seq": seq}
            write_json_atomic(path, doc, durable=False)
            await anyio.sleep(4.0)


async def test_daemon_on_virtual_time_runs_a_whole_restart_episode(config: Config) -> None:
    runtime = config.paths.runtime_dir
    state_file, flags_file = runtime / "autoheal_state.json", runtime / "global_flags.json"
    heartbeat = runtime / "feeder.heartbeat.json"

    def feeder() -> dict[str, Any]:
        return dict(doc(state_file).get("components", {}).get("feeder", {}))

    fake = FakeProcessControl()
    wall_started = time.perf_counter()
    async with running_daemon(config, fake), anyio.create_task_group() as feeders:
        t0 = anyio.current_time()
        # 0. A healthy feeder: it writes its heartbeat, the daemon verifies it.
        writer = anyio.CancelScope()
        feeders.start_soon(beat, heartbeat, writer)
        await until(
            lambda: feeder().get("reason") == "" and feeder()["attempts"] == 0, "health", within=30
        )

        # 1. It hangs: no more heartbeats. Two stale checks restart it; the new process
        #    never writes one either, so each restart's verify window (90 s) runs out,
        #    with the backoff between them: 15, 30, 60 s; the fourth failure is FAILSAFE.
        writer.cancel()
        failsafe_at = await until(
            lambda: doc(flags_file).get("failsafe_active") is True, "FAILSAFE", within=700
        )
        first = fake.started_at[1]
        restarts = [round(t - first, 3) for t in fake.started_at[1:]]
        assert restarts == [0.0, 90.0 + 15, 105.0 + 90 + 30, 225.0 + 90 + 60]
        assert failsafe_at - first == pytest.approx(375 + 90, abs=1.0)
        assert config.paths.stop_file.exists()
        # The state file follows at the consumer's next flush (the stop runs first).
        await until(lambda: feeder()["stage"] == "FAILSAFE", "FAILSAFE saved", within=10)
        assert feeder()["attempts"] == 4
        assert "max_restarts_exceeded" in (runtime / "notifications.log").read_text()

        # Latched: ten minutes later nothing has been started again.
        await anyio.sleep(600)
        assert len(fake.started) == 5

        # 2. The feeder is mended and the operator clears, through the command queue.
        writer = anyio.CancelScope()
        feeders.start_soon(beat, heartbeat, writer)
        with Journal.open(runtime) as journal:
            command = queue.submit(journal, "failsafe_clear", "", {"reason": "mended"}, "pytest")
            await until(
                lambda: queue.get(journal, command.command.id).status == "succeeded",  # type: ignore[union-attr]
                "the clear's answer",
                within=30,
            )
        assert not config.paths.stop_file.exists()
        assert doc(flags_file)["mode"] == "NORMAL"
        verified_at = await until(
            lambda: feeder()["stage"] == "OBSERVE", "a verified restart", within=120
        )
        assert feeder()["attempts"] == 1

        # 3. stable_reset: after 600 s of continuous health the episode ends.
        reset_at = await until(lambda: feeder()["attempts"] == 0, "stable_reset", within=700)
        assert reset_at - verified_at == pytest.approx(600, abs=2.0)
        assert feeder()["reason"] == "stable_reset"
        assert len(fake.started) == 6
        virtual_s = anyio.current_time() - t0
        feeders.cancel_scope.cancel()
    wall_s = time.perf_counter() - wall_started
    print(f"virtual-time episode: {virtual_s:.0f} virtual s in {wall_s:.3f} wall s")
    assert orjson.loads(flags_file.read_bytes())["failsafe_active"] is False

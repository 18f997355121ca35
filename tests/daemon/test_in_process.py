"""The real Daemon, in-process under anyio, with FakeProcessControl instead of processes.

Everything but the processes is real: the config file, the runtime directory and
its lock, the journal, health_v2.json, global_flags.json, STOP.TXT,
notifications.log, the signal receiver and the real monotonic clock. The policy
is time-scaled (backoff 50/100 ms, verify window 300 ms, heartbeat 50 ms) and
the services have only process probes, so no probe touches a file. Waits are on
conditions with a deadline, never fixed sleeps.
"""

from __future__ import annotations

import gc
import time
from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any

import anyio
import pytest

from autoheal.config import Config, load_config
from autoheal.core import OperatorRestarted
from autoheal.daemon.interpreter import Interpreter
from autoheal.daemon.loop import Daemon
from autoheal.store.atomic import read_json
from autoheal.testing import FakeProcessControl

pytestmark = [pytest.mark.anyio, pytest.mark.slow]

DEADLINE_S = 3.0

CONFIG = """\
environment = "paper"

[paths]
runtime_dir = "shared_data"
stop_file = "STOP.TXT"

[policy]
failures_before_restart = 2
restart_backoff = ["50ms", "100ms"]
verify_window = "300ms"
verify_min_uptime = "20ms"
max_restarts = 3
stable_reset = "10m"

[daemon]
heartbeat_interval = "50ms"

[services.feeder]
argv = ["{python}", "-c", "feeder"]
stop_timeout = "1s"

[[services.feeder.probes]]
kind = "process"
"""


@pytest.fixture
def anyio_backend() -> str:
    return "asyncio"


@pytest.fixture
def config(tmp_path: Path) -> Config:
    path = tmp_path / "autoheal.toml"
    path.write_text(CONFIG)
    return load_config(path)


@asynccontextmanager
async def running_daemon(config: Config, fake: FakeProcessControl) -> AsyncIterator[Interpreter]:
    """Run the daemon until the block ends, then cancel it (it stops its services)."""
    daemon = Daemon(config, procs=fake)
    async with anyio.create_task_group() as tg:
        yield await tg.start(lambda task_status: daemon.run(task_status=task_status))
        tg.cancel_scope.cancel()
    gc.collect()  # an unclosed stream of the daemon's would warn (error) here, not later


async def wait_for(predicate: Callable[[], bool], what: str) -> None:
    """Poll a condition every 10 ms; fail the test after DEADLINE_S."""
    deadline = time.monotonic() + DEADLINE_S
    while not predicate():
        if time.monotonic() > deadline:
            pytest.fail(f"timed out waiting for {what}")
        await anyio.sleep(0.01)


def doc(path: Path) -> dict[str, Any]:
    """A JSON file the daemon writes, or ``{}`` while it is missing."""
    return read_json(path).doc or {}


def health(config: Config) -> dict[str, Any]:
    return doc(config.paths.runtime_dir / "health_v2.json")


def feeder_pid(config: Config) -> int | None:
    component = health(config).get("components", {}).get("feeder", {})
    pid = component.get("pid")
    return pid if isinstance(pid, int) else None


def heartbeat_seq(config: Config) -> int:
    seq = doc(config.paths.runtime_dir / "auto_heal.heartbeat.json").get("seq", 0)
    return seq if isinstance(seq, int) else 0


def dor_with_pid(config: Config, pid: int) -> bool:
    return health(config).get("dor") is True and feeder_pid(config) == pid


async def test_daemon_crash_at_start_restarts_three_times_then_failsafe(config: Config) -> None:
    fake = FakeProcessControl()
    fake.set_crash_on_start("feeder", 1)
    runtime = config.paths.runtime_dir
    notifications = runtime / "notifications.log"
    async with running_daemon(config, fake):
        await wait_for(
            lambda: doc(runtime / "global_flags.json").get("failsafe_active") is True,
            "failsafe_active in global_flags.json",
        )
        await wait_for(notifications.exists, "notifications.log")
        assert config.paths.stop_file.exists()
        flags = doc(runtime / "global_flags.json")
        assert flags["mode"] == "SIGNAL_READ_ONLY"
        assert "max_restarts_exceeded" in notifications.read_text()
        assert fake.started == ["feeder"] * 4  # the first start, then exactly 3 restarts

        # Latched: a few heartbeats later, nothing has been started again.
        seq = heartbeat_seq(config)
        await wait_for(lambda: heartbeat_seq(config) >= seq + 3, "three more heartbeats")
        assert fake.started == ["feeder"] * 4
        assert health(config)["dor"] is False
        assert health(config)["components"]["feeder"]["stage"] == "FAILSAFE"
    assert config.paths.stop_file.exists()  # a failsafe survives the daemon
    assert len(notifications.read_text().splitlines()) == 1


async def test_daemon_restarts_a_healthy_service_that_exited(config: Config) -> None:
    fake = FakeProcessControl()
    async with running_daemon(config, fake):
        first = fake.current("feeder")
        assert first is not None
        await wait_for(lambda: dor_with_pid(config, first.pid), "DOR true with the first pid")

        fake.exit("feeder", -9)
        await wait_for(lambda: len(fake.started) == 2, "the restart")
        second = fake.current("feeder")
        assert second is not None and second.pid != first.pid
        await wait_for(lambda: dor_with_pid(config, second.pid), "DOR true with the new pid")
        assert fake.started == ["feeder", "feeder"]
        assert fake.stops == []  # it had exited: nothing to stop
        assert not config.paths.stop_file.exists()
    assert fake.stops == ["feeder"]  # the daemon stopped it on its way out
    assert not fake.running("feeder")
    assert health(config)["dor"] is False


async def test_daemon_operator_restart_gives_a_new_pid(config: Config) -> None:
    fake = FakeProcessControl()
    async with running_daemon(config, fake) as interpreter:
        first = fake.current("feeder")
        assert first is not None
        await wait_for(lambda: dor_with_pid(config, first.pid), "DOR true with the first pid")

        assert interpreter.apply(OperatorRestarted("feeder", "test", "pytest"))
        await wait_for(lambda: len(fake.started) == 2, "the operator restart")
        second = fake.current("feeder")
        assert second is not None and second.pid != first.pid
        assert fake.stops == ["feeder"]  # the old process was stopped, not left running
        assert fake.owned() == [second]
        await wait_for(lambda: dor_with_pid(config, second.pid), "DOR true with the new pid")
    assert fake.stops == ["feeder", "feeder"]


async def test_daemon_idle_beats_without_rewriting_health_until_something_changes(
    config: Config,
) -> None:
    # issue 14: health_v2.json is written when what it says changes, not every beat; the
    # daemon's own heartbeat (every beat) is what tells a reader the daemon is alive.
    fake = FakeProcessControl()
    path = config.paths.runtime_dir / "health_v2.json"
    async with running_daemon(config, fake):
        first = fake.current("feeder")
        assert first is not None
        await wait_for(lambda: dor_with_pid(config, first.pid), "DOR true with the first pid")
        await wait_for(lambda: health(config)["daemon"]["ready"] is True, "ready")
        written = path.stat().st_ino, path.stat().st_mtime_ns
        seq = heartbeat_seq(config)
        await wait_for(lambda: heartbeat_seq(config) >= seq + 5, "five more heartbeats")
        assert (path.stat().st_ino, path.stat().st_mtime_ns) == written

        fake.exit("feeder", -9)
        feeder = lambda: health(config)["components"]["feeder"]  # noqa: E731
        await wait_for(lambda: feeder()["restarts"] >= 1, "the restart")
        assert (path.stat().st_ino, path.stat().st_mtime_ns) != written


async def test_failing_state_and_health_writes_are_retried_each_beat_loudly_not_spun(
    config: Config, caplog: pytest.LogCaptureFixture
) -> None:
    # The seam: autoheal_state.json and health_v2.json cannot be written (a folder stands
    # where each file should be, so the rename fails). The change must not be lost (it is
    # written once the path is repaired), the failure is logged, and the consumer does
    # not spin retrying: at most once per beat (50 ms here).
    fake = FakeProcessControl()
    runtime = config.paths.runtime_dir
    state_path, health_path = runtime / "autoheal_state.json", runtime / "health_v2.json"
    async with running_daemon(config, fake):
        first = fake.current("feeder")
        assert first is not None
        await wait_for(lambda: dor_with_pid(config, first.pid), "DOR true with the first pid")
        restarts_before = doc(state_path)["components"]["feeder"]["restarts"]
        for path in (state_path, health_path):
            path.unlink()
            path.mkdir()
        caplog.clear()
        fake.exit("feeder", -9)
        await wait_for(lambda: len(fake.started) == 2, "the restart")
        seq = heartbeat_seq(config)
        await wait_for(lambda: heartbeat_seq(config) >= seq + 10, "ten more beats")
        failed = [r for r in caplog.records if "state_write_failed" in r.getMessage()]
        assert 1 <= len(failed) <= 14  # about one per beat, not a busy loop
        assert any("health_write_failed" in r.getMessage() for r in caplog.records)
        for path in (state_path, health_path):
            path.rmdir()
        await wait_for(
            lambda: (
                doc(state_path).get("components", {}).get("feeder", {}).get("restarts", 0)
                > restarts_before
            ),
            "the restart saved once the path is repaired",
        )
        await wait_for(lambda: health(config).get("components") is not None, "health again")

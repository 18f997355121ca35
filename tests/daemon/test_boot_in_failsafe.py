"""Nothing is spawned inside a failsafe: not by a daemon that boots into one, not by a
restart decided before one began (bugs the simulator found, issue 20).

The real daemon with :class:`~autoheal.testing.FakeProcessControl` and real files
(``tests/daemon/commands_support.py``). Before the fix a daemon that started while
``STOP.TXT`` held started every service, and the process work spawned a restart whose
stop had begun before an operator's halt (seed 166: inside the halt).
"""

from __future__ import annotations

import time
from collections.abc import Callable
from pathlib import Path

import anyio
import pytest

from autoheal.config import Config
from autoheal.daemon import wiring
from autoheal.daemon.services import Services
from autoheal.store.journal import Journal
from autoheal.testing import FakeProcessControl
from tests.daemon.commands_support import acli, health, running_daemon, write_config
from tests.daemon.commands_support import events as events_of

pytestmark = [pytest.mark.timeout(30)]


@pytest.fixture
def anyio_backend() -> str:
    return "asyncio"


async def wait_for(predicate: Callable[[], object], what: str, within: float = 5.0) -> None:
    deadline = time.monotonic() + within
    while not predicate():
        if time.monotonic() > deadline:
            pytest.fail(f"timed out waiting for {what}")
        await anyio.sleep(0.01)


@pytest.mark.anyio
async def test_a_daemon_that_boots_into_an_operators_halt_starts_nothing_until_the_clear(
    tmp_path: Path,
) -> None:
    config = write_config(tmp_path, virtual=False)
    config.paths.stop_file.write_text("halted by hand before the daemon started\n")
    fake = FakeProcessControl()
    async with running_daemon(config, fake):
        await wait_for(lambda: health(config).get("failsafe") is True, "the failsafe")
        comps = health(config)["components"]
        assert fake.started == []
        for name in config.services:
            assert comps[name]["stage"] == "BACKOFF", comps[name]
            assert comps[name]["reason"] == "failsafe_active", comps[name]
        cleared = await acli(config, "failsafe", "clear", "--reason", "checked")
        assert cleared.code == 0, cleared
        await wait_for(lambda: sorted(fake.started) == sorted(config.services), "the starts")


@pytest.mark.anyio
async def test_a_spawn_is_asked_for_right_before_it_is_made(tmp_path: Path) -> None:
    """The gate the process work passes through: withheld, nothing started, the reason."""
    config = write_config(tmp_path, virtual=False)
    specs = {n: wiring.service_spec(config, s) for n, s in config.services.items()}
    fake = FakeProcessControl()
    halted = True

    async def observe(_obs: object) -> None:
        return None

    async with anyio.create_task_group() as tg:
        services = Services(
            specs,
            fake,
            observe=observe,
            journal_event=lambda *a, **k: None,
            task_group=tg,
            watch_exits=False,
            may_spawn=lambda: not halted,
        )
        assert await services.start("feeder") == (False, "failsafe_active")
        assert fake.started == []
        assert services.identity("feeder") is None
        halted = False
        assert await services.start("feeder") == (True, "")
        assert fake.started == ["feeder"]


def _journal_notice(config: Config, kind: str, message: str) -> None:
    """A notice as the daemon's effects journal it (``Effects.notify``)."""
    config.paths.runtime_dir.mkdir(parents=True, exist_ok=True)
    with Journal.open(config.paths.runtime_dir) as journal:
        journal.record(
            "notice",
            component="runtime",
            reason="operator",
            data={"kind": kind, "message": message},
        )


@pytest.mark.anyio
async def test_a_failsafe_the_state_lost_is_resumed_from_the_journal(tmp_path: Path) -> None:
    """The simulated disk's seed 14: the state's save failed (ENOTDIR), the host lost
    power, and the kill-switch files were edited while no daemon ran. The journal
    still says the failsafe was entered: the next daemon halts, loudly."""
    config = write_config(tmp_path, virtual=False)
    _journal_notice(config, "failsafe", "failsafe entered by alice: hold")
    fake = FakeProcessControl()
    async with running_daemon(config, fake):
        await wait_for(lambda: health(config).get("failsafe") is True, "the failsafe")
        assert config.paths.stop_file.exists()
        assert fake.started == []
    notices = [e.data for e in events_of(config) if e.kind == "notice"]
    assert any("resumed from the journal" in str(d) for d in notices), notices


@pytest.mark.anyio
async def test_a_failsafe_the_journal_says_was_cleared_is_not_resumed(tmp_path: Path) -> None:
    config = write_config(tmp_path, virtual=False)
    _journal_notice(config, "failsafe", "failsafe entered by alice: hold")
    _journal_notice(config, "failsafe_cleared", "failsafe cleared by alice: done")
    fake = FakeProcessControl()
    async with running_daemon(config, fake):
        await wait_for(lambda: fake.started == list(config.services), "the start")
        assert health(config).get("failsafe") is not True
        assert not config.paths.stop_file.exists()

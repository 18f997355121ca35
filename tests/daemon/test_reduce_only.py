"""REDUCE_ONLY as the real daemon keeps it, on virtual time, read by a real guard.

Unwinding inside a failsafe (the daemon removes STOP.TXT for it, and the failsafe
holds), then halting again; and an operator's hand-written REDUCE_ONLY that a daemon
restart keeps and only a hand edit ends. The daemon runs in-process on trio's
``MockClock(autojump_threshold=0)`` with :class:`~autoheal.testing.FakeProcessControl`;
the flags, STOP.TXT, the state and the journal are real files, and the
:class:`~autoheal.guard.TradingGate` reads them as a trader would. Moved down from
``tests/e2e/test_reduce_only.py`` (issue 19), which keeps its unwinding test against a
real ``autoheal run`` and the real CLI.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import orjson
import pytest
from trio.testing import MockClock

from autoheal.config import Config
from autoheal.daemon.clock import LoopClock
from autoheal.guard import TradingGate
from autoheal.testing import FakeProcessControl
from tests.daemon.commands_support import (
    EPOCH,
    command,
    doc,
    flags,
    health,
    kinds,
    running_daemon,
    submit,
    until,
    write_config,
)

pytestmark = [pytest.mark.anyio, pytest.mark.timeout(30)]


@pytest.fixture
def anyio_backend() -> tuple[str, dict[str, Any]]:
    return "trio", {"clock": MockClock(autojump_threshold=0)}


@pytest.fixture
def config(tmp_path: Path) -> Config:
    return write_config(tmp_path, virtual=True)


async def run(config: Config, ctype: str, reason: str, target: str = "") -> dict[str, Any]:
    """Queue one command, wait for the daemon's answer; its status and result."""
    cid = submit(config, ctype, target, reason=reason)
    await until(
        lambda: command(config, cid).status not in ("pending", "claimed"), f"{ctype}'s answer"
    )
    done = command(config, cid)
    return {"status": done.status, **done.result}


def mode(config: Config) -> tuple[object, object]:
    current = flags(config)
    return current.get("failsafe_active"), current.get("mode")


def beats(config: Config) -> int:
    seq = doc(config.paths.runtime_dir / "auto_heal.heartbeat.json").get("seq", 0)
    return seq if isinstance(seq, int) else 0


async def test_reduce_only_unwinds_inside_a_failsafe_then_halts_again(config: Config) -> None:
    """Inside a failsafe, REDUCE_ONLY lets only position-reducing sells through (STOP.TXT
    removed by the daemon itself, the failsafe still holds and still refuses a restart);
    entering again halts everything, and only a clear returns to NORMAL."""
    stop = config.paths.stop_file

    def gate() -> TradingGate:  # a fresh look at the files each time (no 25 ms re-check)
        return TradingGate(config.paths.runtime_dir, stop, recheck_interval_s=0.0)

    fake = FakeProcessControl()
    async with running_daemon(config, fake, LoopClock.virtual(EPOCH)):
        entered = await run(config, "failsafe_enter", "exchange trouble")
        assert entered["status"] == "succeeded", entered
        assert stop.exists()
        assert gate().allowed("sell", reduces_position=True) == (False, "stop_file_present")

        unwind = await run(config, "failsafe_reduce_only", "unwind BTC")
        assert unwind["status"] == "succeeded", unwind
        assert mode(config) == (True, "REDUCE_ONLY")
        assert not stop.exists()
        assert gate().allowed("sell", reduces_position=True) == (True, "ok")
        assert gate().allowed("buy") == (False, "reduce_only")
        assert gate().allowed("sell") == (False, "reduce_only")  # not reducing a position

        # The missing STOP.TXT is the daemon's own doing: beats later the failsafe holds.
        seq = beats(config)
        await until(lambda: beats(config) >= seq + 2, "two more beats")
        assert health(config)["failsafe"] is True
        assert mode(config) == (True, "REDUCE_ONLY") and not stop.exists()
        refused = await run(config, "restart", "unwinding", target="feeder")
        assert (refused["status"], refused["refused"]) == ("failed", True), refused
        assert fake.stops == []

        halted = await run(config, "failsafe_enter", "done unwinding")
        assert halted["status"] == "succeeded", halted
        assert stop.exists()
        assert mode(config) == (True, "SIGNAL_READ_ONLY")
        assert gate().allowed("sell", reduces_position=True) == (False, "stop_file_present")

        cleared = await run(config, "failsafe_clear", "all good")
        assert cleared["status"] == "succeeded", cleared
        assert mode(config) == (False, "NORMAL")
        assert not stop.exists()
        assert gate().allowed("buy") == (True, "ok")


async def test_hand_written_reduce_only_survives_a_daemon_restart_and_is_left_by_hand(
    config: Config,
) -> None:
    """An operator's REDUCE_ONLY written by hand is adopted as it is (no failsafe, their
    name kept), kept across a daemon restart, and left only by another hand edit, which is
    journaled as the operator's."""
    flags_file = config.paths.runtime_dir / "global_flags.json"
    fake = FakeProcessControl()
    async with running_daemon(config, fake, LoopClock.virtual(EPOCH)):
        # Ready: the watch runs by now (an edit made before it starts waits for the
        # beat's safety net, every 10 beats).
        await until(lambda: health(config).get("daemon", {}).get("ready"), "ready")
        flags_file.write_bytes(
            orjson.dumps({"mode": "REDUCE_ONLY", "reason": "calm markets", "set_by": "alice"})
        )
        await until(lambda: health(config).get("mode") == "REDUCE_ONLY", "REDUCE_ONLY adopted")
        assert health(config)["failsafe"] is False
        assert flags(config)["set_by"] == "alice"

    # A new daemon on the same runtime (the old one's health document gone, so what is
    # read next is the new one's): the saved state keeps it.
    (config.paths.runtime_dir / "health_v2.json").unlink()
    async with running_daemon(config, fake, LoopClock.virtual(EPOCH)):
        await until(lambda: health(config).get("daemon", {}).get("ready"), "ready")
        assert health(config)["mode"] == "REDUCE_ONLY"
        assert flags(config)["mode"] == "REDUCE_ONLY"

        flags_file.write_bytes(b'{"mode": "NORMAL"}')
        await until(lambda: health(config).get("mode") == "NORMAL", "back to NORMAL")
    assert "operator_kill_switch" in kinds(config)

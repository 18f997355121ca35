"""``autoheal failsafe enter|clear --scope`` through the real CLI: the daemon, and no daemon.

The daemon runs in the test's event loop with FakeProcessControl (as in
test_command_cli.py); the CLI in a worker thread; files and journal are real. The
subjects: the halt lands in the record and the flags' ``scoped_halts`` with who set
it; the real gate refuses inside the scope and passes outside; the daemon's own
whole-runtime failsafe enter and clear keep the scope; only the scoped clear lifts it;
each is journaled; a bad scope is a usage error that queues nothing.
"""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from autoheal.config import Config
from autoheal.guard.gate import TradingGate
from autoheal.testing import FakeProcessControl
from tests.daemon.commands_support import (
    acli,
    cli,
    events,
    flags,
    health,
    os_user,
    running_daemon,
    until,
)
from tests.daemon.commands_support import write_config as _write_config

pytestmark = [pytest.mark.timeout(60)]


@pytest.fixture
def anyio_backend() -> str:
    return "asyncio"


@pytest.fixture
def config(tmp_path: Path) -> Config:
    return _write_config(tmp_path, virtual=False)


def _gate(config: Config) -> TradingGate:
    return TradingGate(config.paths.runtime_dir, config.paths.stop_file, recheck_interval_s=0.0)


def _record(config: Config) -> dict[str, object]:
    doc = json.loads((config.paths.runtime_dir / "scoped_halts.json").read_text())
    assert isinstance(doc, dict)
    return doc["scoped_halts"]  # type: ignore[no-any-return]


@pytest.mark.anyio
async def test_a_scoped_halt_through_the_daemon_holds_until_its_own_clear(config: Config) -> None:
    async with running_daemon(config, FakeProcessControl()):
        entered = await acli(
            config, "failsafe", "enter", "--scope", "symbol=btc/usdt", "--reason", "bad fills"
        )
        assert entered.code == 0, entered
        halt = flags(config)["scoped_halts"]["symbol=BTCUSDT"]
        assert (halt["reason"], halt["set_by"]) == ("bad fills", os_user())
        assert "symbol=BTCUSDT" in _record(config)
        await until(
            lambda: "symbol=BTCUSDT" in (health(config).get("scoped_halts") or {}),
            "the health document shows the scoped halt",
            within=5,
        )
        gate = _gate(config)
        assert gate.allowed("buy", symbol="BTCUSDT") == (False, "scoped_halt:symbol=BTCUSDT")
        assert gate.allowed("buy", symbol="ETHUSDT") == (True, "ok")

        # The whole-runtime failsafe, entered and cleared: the scope stays.
        assert (await acli(config, "failsafe", "enter", "--reason", "all")).code == 0
        assert (await acli(config, "failsafe", "clear", "--reason", "all ok")).code == 0
        assert "symbol=BTCUSDT" in flags(config)["scoped_halts"]
        assert gate.allowed("buy", symbol="BTCUSDT")[0] is False
        assert gate.allowed("buy", symbol="ETHUSDT") == (True, "ok")

        cleared = await acli(
            config, "failsafe", "clear", "--scope", "symbol=BTCUSDT", "--reason", "fixed"
        )
        assert cleared.code == 0, cleared
        assert "scoped_halts" not in flags(config)
        assert _record(config) == {}
        assert gate.allowed("buy", symbol="BTCUSDT") == (True, "ok")
    told = (config.paths.runtime_dir / "notifications.log").read_text()
    assert "failsafe_enter_scope symbol=BTCUSDT by " in told
    assert "failsafe_clear_scope symbol=BTCUSDT by " in told
    (enter,) = events(config, kind="failsafe_enter_scope.started")
    trail = [e.kind for e in events(config, command_id=enter.command_id)]
    assert trail == [
        "started",
        "failsafe_enter_scope.started",
        "failsafe_enter_scope.succeeded",
        "result_written",
    ]


def test_with_no_daemon_the_cli_acts_directly(config: Config) -> None:
    ran = cli(config, "failsafe", "enter", "--scope", "strategy=grid", "--reason", "runaway")
    assert ran.code == 0, ran
    assert set(_record(config)) == {"strategy=grid"}
    gate = _gate(config)
    assert gate.allowed("buy", symbol="BTCUSDT", strategy="grid")[1] == "scoped_halt:strategy=grid"
    assert gate.allowed("buy", symbol="BTCUSDT", strategy="trend")[1] != "scoped_halt:strategy=grid"
    shown = cli(config, "status")
    assert "scoped halt strategy=grid: runaway, set by" in shown.out, shown
    as_json = json.loads(cli(config, "status", "--json").out)
    assert as_json["scoped_halts"]["strategy=grid"]["reason"] == "runaway"
    assert as_json["scoped_halts_error"] is None
    ran = cli(config, "failsafe", "clear", "--scope", "strategy=grid", "--reason", "ok")
    assert ran.code == 0, ran
    assert _record(config) == {}


@pytest.mark.parametrize("scope", ["colour=red", "symbol=", "side=hold"])
def test_a_bad_scope_is_a_usage_error_that_queues_nothing(config: Config, scope: str) -> None:
    ran = cli(config, "failsafe", "enter", "--scope", scope, "--reason", "x")
    assert ran.code == 2, ran
    assert "--scope" in ran.err
    assert not (config.paths.runtime_dir / "scoped_halts.json").exists()
    reduce = cli(config, "failsafe", "reduce-only", "--scope", "symbol=BTCUSDT", "--reason", "x")
    assert reduce.code == 2, reduce

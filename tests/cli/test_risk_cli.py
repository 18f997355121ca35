"""``autoheal risk status|enable`` (issue 24): the operator's re-enable of a scope the
repeated-execution throttle disabled, on a real config, a real latch file and a real
journal; with no daemon, the command runs here, as ``breaker reset`` does."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from autoheal.cli import main
from autoheal.guard.scope_latches import LATCHES_FILENAME, add_latch, read_latches
from autoheal.guard.throttles import latch_entry

pytestmark = [pytest.mark.timeout(60)]

GRID_BUY = "strategy=grid,symbol=BTCUSDT,side=buy"
GRID_SELL = "strategy=grid,symbol=BTCUSDT,side=sell"


@pytest.fixture
def config(tmp_path: Path) -> Path:
    path = tmp_path / "autoheal.toml"
    path.write_text(
        f'environment = "paper"\n[paths]\nruntime_dir = "{tmp_path}/rt"\n'
        f'stop_file = "{tmp_path}/STOP.TXT"\n'
        '[services.svc]\nargv = ["sleep", "100"]\nautostart = false\n'
    )
    rt = tmp_path / "rt"
    rt.mkdir()
    add_latch(rt, GRID_BUY, latch_entry(1.0, 3, 60.0))
    add_latch(rt, GRID_SELL, latch_entry(2.0, 3, 60.0))
    return path


def test_enable_removes_only_the_named_scope_journaled_with_the_operator(
    config: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    rt = config.parent / "rt"
    argv = ["risk", "enable", "strategy=grid,symbol=btc/usdt,side=BUY", "--operator", "alice"]
    assert main([*argv, "--config", str(config)]) == 0
    assert set(read_latches(rt).latches) == {GRID_SELL}
    capsys.readouterr()
    assert main(["events", "--config", str(config), "--json"]) == 0
    events = [json.loads(line) for line in capsys.readouterr().out.splitlines()]
    done = [e for e in events if e["kind"] == "risk_enable.succeeded"]
    assert len(done) == 1
    assert done[0]["actor"] == "alice"
    assert done[0]["data"]["enabled"] == GRID_BUY
    assert main(["risk", "status", "--config", str(config), "--json"]) == 0
    status = json.loads(capsys.readouterr().out)
    assert [row["scope"] for row in status["latches"]] == [GRID_SELL]


def test_a_bad_scope_is_a_usage_error_and_queues_nothing(
    config: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    assert main(["risk", "enable", "side=up", "--config", str(config)]) == 2
    assert "is not a scope" in capsys.readouterr().err
    main(["events", "--config", str(config), "--json"])  # no journal yet: exit 1, no events
    assert "risk_enable" not in capsys.readouterr().out
    assert len(read_latches(config.parent / "rt").latches) == 2


def test_a_garbage_file_is_reported_and_only_enable_all_replaces_it(
    config: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    rt = config.parent / "rt"
    (rt / LATCHES_FILENAME).write_text("{not json")
    assert main(["risk", "status", "--config", str(config)]) == 1
    assert "refuses every order" in capsys.readouterr().err
    assert main(["risk", "enable", GRID_BUY, "--config", str(config)]) == 1
    assert (rt / LATCHES_FILENAME).read_text() == "{not json"
    assert main(["risk", "enable", "all", "--operator", "bob", "--config", str(config)]) == 0
    assert read_latches(rt).latches == {} and not read_latches(rt).garbage

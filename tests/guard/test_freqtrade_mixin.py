"""The freqtrade mixin with freqtrade's own IStrategy and real kill-switch files: entries
(long and short) follow the trading gate, exits always pass, and no way of writing the
strategy class bypasses the gate."""

from __future__ import annotations

import logging
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest

from autoheal.guard.freqtrade import AutohealEntryGuard
from autoheal.store.flags import Flags, write_flags

pytestmark = [pytest.mark.timeout(60)]

interface = pytest.importorskip("freqtrade.strategy.interface", reason="freqtrade not installed")
IStrategy = interface.IStrategy


class Plain(AutohealEntryGuard, IStrategy):  # type: ignore[misc]
    """The recipe's way: the mixin first, no confirm_trade_entry of its own."""

    timeframe = "1m"
    minimal_roi = {"0": 10}
    stoploss = -0.5

    def populate_indicators(self, dataframe: Any, metadata: dict[str, Any]) -> Any:
        return dataframe

    def populate_entry_trend(self, dataframe: Any, metadata: dict[str, Any]) -> Any:
        return dataframe

    def populate_exit_trend(self, dataframe: Any, metadata: dict[str, Any]) -> Any:
        return dataframe


class OwnConfirm(Plain):
    """Defines its own confirm_trade_entry and forgets super(): still gated."""

    calls = 0

    def confirm_trade_entry(self, pair: str, *args: Any, **kwargs: Any) -> bool:
        type(self).calls += 1
        return True


class MixinLast(IStrategy, AutohealEntryGuard):  # type: ignore[misc]
    """The mixin placed after IStrategy, whose confirm_trade_entry says True: still gated."""

    timeframe = "1m"
    minimal_roi = {"0": 10}
    stoploss = -0.5
    populate_indicators = Plain.populate_indicators
    populate_entry_trend = Plain.populate_entry_trend
    populate_exit_trend = Plain.populate_exit_trend


@pytest.fixture
def runtime(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    runtime_dir = tmp_path / "shared_data"
    runtime_dir.mkdir()
    write_flags(runtime_dir, Flags(mode="NORMAL"))
    # As the daemon sets them for the bot it supervises.
    monkeypatch.setenv("AUTOHEAL_RUNTIME_DIR", str(runtime_dir))
    monkeypatch.setenv("AUTOHEAL_STOP_FILE", str(tmp_path / "STOP.TXT"))
    return runtime_dir


def entry(strategy: Any, side: str, pair: str = "BTC/USDT:USDT") -> bool:
    # Keywords, as freqtrade's freqtradebot calls it.
    return bool(
        strategy.confirm_trade_entry(
            pair=pair,
            order_type="limit",
            amount=0.01,
            rate=50_000.0,
            time_in_force="GTC",
            current_time=datetime.now(UTC),
            entry_tag=None,
            side=side,
        )
    )


def fresh(cls: type) -> Any:
    strategy = cls({})
    strategy._autoheal_gate = None
    return strategy


@pytest.mark.parametrize("cls", [Plain, OwnConfirm, MixinLast])
@pytest.mark.parametrize("side", ["long", "short"])
def test_entries_follow_the_gate(
    runtime: Path, cls: type, side: str, caplog: pytest.LogCaptureFixture
) -> None:
    assert entry(fresh(cls), side)
    (runtime.parent / "STOP.TXT").write_text("halt\n")
    caplog.set_level(logging.WARNING, logger="autoheal.guard.freqtrade")
    assert not entry(fresh(cls), side)
    assert f"autoheal_entry_refused pair=BTC/USDT:USDT side={side} reason=stop_file_present" in (
        caplog.text
    )
    (runtime.parent / "STOP.TXT").unlink()
    for mode, reason in (("DEGRADED", "degraded"), ("REDUCE_ONLY", "reduce_only")):
        write_flags(runtime, Flags(mode=mode))
        assert not entry(fresh(cls), side)
        assert f"reason={reason}" in caplog.text
    write_flags(runtime, Flags(failsafe_active=True, mode="SIGNAL_READ_ONLY"))
    assert not entry(fresh(cls), side)


def test_the_strategys_own_method_is_asked_only_when_the_gate_allows(runtime: Path) -> None:
    OwnConfirm.calls = 0
    (runtime.parent / "STOP.TXT").write_text("halt\n")
    assert not entry(fresh(OwnConfirm), "long")
    assert OwnConfirm.calls == 0
    (runtime.parent / "STOP.TXT").unlink()
    assert entry(fresh(OwnConfirm), "long")
    assert OwnConfirm.calls == 1


def test_no_kill_switch_found_refuses_every_entry(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.delenv("AUTOHEAL_RUNTIME_DIR", raising=False)
    monkeypatch.delenv("AUTOHEAL_STOP_FILE", raising=False)
    assert not entry(fresh(Plain), "long")
    monkeypatch.setenv("AUTOHEAL_RUNTIME_DIR", str(tmp_path / "no-such-dir"))
    assert not entry(fresh(Plain), "long")


def test_exits_always_pass(runtime: Path) -> None:
    (runtime.parent / "STOP.TXT").write_text("halt\n")
    write_flags(runtime, Flags(failsafe_active=True, mode="SIGNAL_READ_ONLY"))
    strategy = fresh(Plain)
    assert strategy.confirm_trade_exit(
        pair="BTC/USDT",
        trade=None,
        order_type="market",
        amount=0.01,
        rate=50_000.0,
        time_in_force="GTC",
        exit_reason="exit_signal",
        current_time=datetime.now(UTC),
    )


def test_explicit_paths_on_the_class_win(
    tmp_path: Path, runtime: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    other = tmp_path / "other"
    other.mkdir()
    write_flags(other, Flags(mode="DEGRADED"))

    class Pinned(Plain):
        autoheal_runtime_dir = str(other)
        autoheal_stop_file = str(tmp_path / "OTHER_STOP.TXT")

    assert entry(fresh(Plain), "long")
    assert not entry(fresh(Pinned), "long")

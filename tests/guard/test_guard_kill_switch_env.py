"""Issue 9, defect 6: the guard always reads the kill switch.

Explicit paths, else ``AUTOHEAL_RUNTIME_DIR`` / ``AUTOHEAL_STOP_FILE`` (which the
daemon sets for every service it starts); with neither, nothing is allowed:
``kill_switch_unknown``.
"""

from __future__ import annotations

from pathlib import Path

import pytest
from hypothesis import given
from hypothesis import strategies as st

from autoheal.guard import TradingGate, hash_confirm_token, is_live_execution_allowed
from autoheal.store.flags import Flags, write_flags, write_stop_file
from tests.guard.conftest import daemon_runtime

TOKEN = "I-UNDERSTAND-REAL-MONEY"
ARMED = {
    "mode": "live",
    "enable_live_trading": True,
    "live_mode_armed": True,
    "live_dry_run_mode": False,
    "confirm_token": TOKEN,
    "confirm_token_sha256": hash_confirm_token(TOKEN),
}


@pytest.fixture
def no_env(monkeypatch):
    monkeypatch.delenv("AUTOHEAL_RUNTIME_DIR", raising=False)
    monkeypatch.delenv("AUTOHEAL_STOP_FILE", raising=False)
    return monkeypatch


@pytest.fixture
def runtime(tmp_path):
    return daemon_runtime(tmp_path / "shared_data")


def test_live_execution_reads_stop_file_from_env(no_env, runtime, tmp_path):
    stop = tmp_path / "elsewhere" / "STOP.TXT"
    stop.parent.mkdir()
    no_env.setenv("AUTOHEAL_RUNTIME_DIR", str(runtime))
    no_env.setenv("AUTOHEAL_STOP_FILE", str(stop))
    assert is_live_execution_allowed(ARMED) == (True, "ok")
    write_stop_file(stop, "operator halt")
    assert is_live_execution_allowed(ARMED) == (False, "stop_file_present")


def test_live_execution_reads_failsafe_from_env_runtime_dir(no_env, runtime):
    no_env.setenv("AUTOHEAL_RUNTIME_DIR", str(runtime))
    write_flags(runtime, Flags(failsafe_active=True, mode="SIGNAL_READ_ONLY"))
    assert is_live_execution_allowed(ARMED) == (False, "failsafe_active")
    # the stop file defaults to beside the runtime dir, as for the gate
    write_flags(runtime, Flags())
    write_stop_file(runtime.parent / "STOP.TXT", "halt")
    assert is_live_execution_allowed(ARMED) == (False, "stop_file_present")


def test_without_paths_or_env_kill_switch_unknown(no_env):
    assert is_live_execution_allowed(ARMED) == (False, "kill_switch_unknown")
    gate = TradingGate()
    assert gate.allowed("buy") == (False, "kill_switch_unknown")
    assert gate.allowed("sell", reduces_position=True) == (False, "kill_switch_unknown")
    assert gate.status().halted


def test_a_stop_file_alone_is_not_the_whole_kill_switch(no_env, tmp_path):
    # Without the runtime dir the failsafe flags cannot be read: not allowed.
    env = {**ARMED, "stop_file": tmp_path / "STOP.TXT"}
    assert is_live_execution_allowed(env) == (False, "kill_switch_unknown")
    no_env.setenv("AUTOHEAL_STOP_FILE", str(tmp_path / "STOP.TXT"))
    assert TradingGate().allowed("sell", reduces_position=True) == (False, "kill_switch_unknown")


def test_explicit_paths_beat_the_environment(no_env, runtime, tmp_path):
    other = tmp_path / "other"
    other.mkdir()
    write_flags(other, Flags(failsafe_active=True))
    no_env.setenv("AUTOHEAL_RUNTIME_DIR", str(other))
    no_env.setenv("AUTOHEAL_STOP_FILE", str(tmp_path / "NOPE.TXT"))
    env = {**ARMED, "runtime_dir": runtime, "stop_file": tmp_path / "STOP.TXT"}
    assert is_live_execution_allowed(env) == (True, "ok")
    assert TradingGate(runtime, tmp_path / "STOP.TXT").allowed("buy") == (True, "ok")


def test_gate_takes_its_paths_from_env(no_env, runtime, tmp_path):
    stop = tmp_path / "STOP_HERE.TXT"
    no_env.setenv("AUTOHEAL_RUNTIME_DIR", str(runtime))
    no_env.setenv("AUTOHEAL_STOP_FILE", str(stop))
    gate = TradingGate(recheck_interval_s=0.0)
    assert (gate.runtime_dir, gate.stop_file) == (runtime, stop)
    assert gate.allowed("buy") == (True, "ok")
    write_stop_file(stop, "halt")
    assert gate.allowed("sell", reduces_position=True) == (False, "stop_file_present")


def test_other_guard_classes_default_to_the_env_runtime_dir(no_env, runtime):
    from autoheal.guard import CircuitBreaker, Heartbeat, InventoryGate, OrderLedger, StateBus

    no_env.setenv("AUTOHEAL_RUNTIME_DIR", str(runtime))
    assert OrderLedger().path.parent.parent == runtime
    assert InventoryGate().path.parent == runtime
    assert Heartbeat(name="trader").path.parent == runtime
    assert StateBus().path.parent == runtime
    breaker = CircuitBreaker()
    breaker.record_failure("BTCUSDT")
    assert (runtime / "circuit_breaker.json").exists()


def test_other_guard_classes_without_a_runtime_dir_refuse_to_guess(no_env):
    from autoheal.guard import InventoryGate, OrderLedger

    with pytest.raises(ValueError, match="AUTOHEAL_RUNTIME_DIR"):
        OrderLedger()
    with pytest.raises(ValueError, match="AUTOHEAL_RUNTIME_DIR"):
        InventoryGate()


@given(
    explicit_rt=st.sampled_from([None, "/x/rt", "rt"]),
    explicit_stop=st.sampled_from([None, "/x/STOP.TXT", "STOP.TXT"]),
    env_rt=st.sampled_from([None, "", "/e/rt", "e/rt"]),
    env_stop=st.sampled_from([None, "", "/e/STOP.TXT", "e/STOP.TXT"]),
)
def test_kill_switch_paths_resolution(explicit_rt, explicit_stop, env_rt, env_stop):
    from autoheal.guard.kill_switch import KillSwitchUnknown, resolve_kill_switch

    environ = {
        k: v
        for k, v in (("AUTOHEAL_RUNTIME_DIR", env_rt), ("AUTOHEAL_STOP_FILE", env_stop))
        if v is not None
    }
    paths = resolve_kill_switch(explicit_rt, explicit_stop, environ)
    runtime = explicit_rt or env_rt or None
    stop = explicit_stop or env_stop or None
    if runtime is None or not Path(runtime).is_absolute():
        assert isinstance(paths, KillSwitchUnknown)  # nothing is allowed then
        return
    if stop is not None and not Path(stop).is_absolute():
        assert isinstance(paths, KillSwitchUnknown)
        assert "relative" in paths.detail
        return
    assert not isinstance(paths, KillSwitchUnknown)
    assert paths.runtime_dir == Path(runtime)
    assert paths.stop_file == Path(stop or Path(runtime).parent / "STOP.TXT")


def test_daemon_sets_the_kill_switch_env_for_every_service(tmp_path):
    from autoheal.config import load_config
    from autoheal.daemon.wiring import service_spec

    conf = tmp_path / "autoheal.toml"
    conf.write_text(
        'environment = "paper"\n'
        "[paths]\n"
        'runtime_dir = "rt"\n'
        'stop_file = "halt/STOP.TXT"\n'
        "[services.feeder]\n"
        'argv = ["x"]\n'
        'env = { FOO = "1", AUTOHEAL_STOP_FILE = "/wrong" }\n'
        "[services.trader]\n"
        'argv = ["x"]\n'
    )
    config = load_config(conf)
    for svc in config.services.values():
        env = service_spec(config, svc).env
        assert env["AUTOHEAL_RUNTIME_DIR"] == str(tmp_path / "rt")
        assert env["AUTOHEAL_STOP_FILE"] == str(tmp_path / "halt" / "STOP.TXT")
    assert service_spec(config, config.services["feeder"]).env["FOO"] == "1"

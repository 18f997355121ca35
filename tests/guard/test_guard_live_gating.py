"""Live-execution gating: drills A to G, constant-time token check, kill switch."""

from __future__ import annotations

import pytest

from autoheal.guard import LiveEnv, hash_confirm_token, is_live_execution_allowed
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


@pytest.mark.parametrize(
    ("drill", "overrides", "expected"),
    [
        (
            "A all gates closed",
            {"enable_live_trading": False, "live_mode_armed": False, "live_dry_run_mode": True},
            (False, "enable_live_trading=False"),
        ),
        ("B armed missing", {"live_mode_armed": False}, (False, "live_mode_armed=False")),
        ("C dry-run on", {"live_dry_run_mode": True}, (False, "live_dry_run_mode=True")),
        ("D token missing", {"confirm_token": None}, (False, "confirm_token=missing")),
        ("D token wrong", {"confirm_token": "guess"}, (False, "confirm_token=invalid")),
        ("E risk limits (gating allows)", {}, (True, "ok")),
        ("F testnet", {"mode": "testnet"}, (False, "mode=testnet")),
        ("G paper", {"mode": "paper"}, (False, "mode=paper")),
    ],
)
def test_live_gating_drills(drill, overrides, expected, tmp_path):
    runtime = daemon_runtime(tmp_path / "shared_data")
    env = {**ARMED, "runtime_dir": runtime, "stop_file": tmp_path / "STOP.TXT", **overrides}
    assert is_live_execution_allowed(env) == expected, drill


def test_live_gating_defaults_are_safe():
    assert is_live_execution_allowed(LiveEnv()) == (False, "mode=paper")
    assert is_live_execution_allowed(LiveEnv(mode="live")) == (False, "enable_live_trading=False")
    assert is_live_execution_allowed({"mode": "LIVE!"}) == (False, "mode=unknown")


def test_live_gating_truthy_strings_do_not_arm():
    assert is_live_execution_allowed({**ARMED, "enable_live_trading": "yes"}) == (
        False,
        "enable_live_trading=False",
    )
    assert is_live_execution_allowed({**ARMED, "live_dry_run_mode": 0}) == (
        False,
        "live_dry_run_mode=True",
    )


def test_live_gating_reason_never_contains_the_token():
    _, reason = is_live_execution_allowed({**ARMED, "confirm_token": "secret-guess"})
    assert "secret" not in reason


def test_live_gating_obeys_the_kill_switch(tmp_path):
    runtime = daemon_runtime(tmp_path / "shared_data")
    env = {**ARMED, "runtime_dir": runtime, "stop_file": tmp_path / "STOP.TXT"}
    assert is_live_execution_allowed(env) == (True, "ok")
    write_flags(runtime, Flags(failsafe_active=True, mode="SIGNAL_READ_ONLY"))
    assert is_live_execution_allowed(env) == (False, "failsafe_active")
    (runtime / "global_flags.json").write_text("{ broken")
    assert is_live_execution_allowed(env) == (False, "flags_invalid")
    write_stop_file(tmp_path / "STOP.TXT", "test")
    assert is_live_execution_allowed(env) == (False, "stop_file_present")

"""Issue 18 A6 and A9: the guard finds the kill switch, or trades nothing.

A6: ``TradingGate("shared_data", "STOP.TXT")`` (the README's example) in a process
started from another directory, a misspelled runtime directory, a runtime directory
that does not exist: each answered ``(True, "ok")`` while ``STOP.TXT`` stood where
the daemon keeps it. Now relative paths are refused, and a runtime directory or a
flags file that does not exist reads as ``kill_switch_unknown`` (the daemon always
writes one).

A9: a FIFO at ``global_flags.json`` hung ``TradingGate.allowed()``: a kill-switch
file that is not a regular file is never opened; it is ``kill_switch_unknown``.
"""

from __future__ import annotations

import os
import subprocess
import sys
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

from autoheal.guard import TradingGate, hash_confirm_token, is_live_execution_allowed
from autoheal.store.flags import FLAGS_FILENAME, Flags, write_flags, write_stop_file
from tests.fifo import returns_within

TOKEN = "I-UNDERSTAND-REAL-MONEY"
ARMED = {
    "mode": "live",
    "enable_live_trading": True,
    "live_mode_armed": True,
    "live_dry_run_mode": False,
    "confirm_token": TOKEN,
    "confirm_token_sha256": hash_confirm_token(TOKEN),
}
UNKNOWN = (False, "kill_switch_unknown")


@pytest.fixture
def no_env(monkeypatch: pytest.MonkeyPatch) -> pytest.MonkeyPatch:
    monkeypatch.delenv("AUTOHEAL_RUNTIME_DIR", raising=False)
    monkeypatch.delenv("AUTOHEAL_STOP_FILE", raising=False)
    return monkeypatch


@pytest.fixture
def app(tmp_path: Path) -> Path:
    """A bot's folder as the daemon keeps it: ``shared_data/`` with flags, ``STOP.TXT`` beside."""
    app = tmp_path / "app"
    (app / "shared_data").mkdir(parents=True)
    write_flags(app / "shared_data", Flags(failsafe_active=True, mode="SIGNAL_READ_ONLY"))
    write_stop_file(app / "STOP.TXT", "max_restarts_exceeded")
    return app


@pytest.fixture
def fifo_flags(tmp_path: Path) -> Iterator[Path]:
    runtime = tmp_path / "shared_data"
    runtime.mkdir()
    os.mkfifo(runtime / FLAGS_FILENAME)
    yield runtime


# ------------------------------------------------------------------ A6: relative paths


@pytest.mark.slow
def test_regression_issue18_a6_the_readme_gate_from_another_cwd_refuses(
    app: Path, tmp_path: Path
) -> None:
    # Another directory with a shared_data of its own (another bot's, a stale copy) in NORMAL.
    elsewhere = tmp_path / "elsewhere"
    (elsewhere / "shared_data").mkdir(parents=True)
    write_flags(elsewhere / "shared_data", Flags())
    code = (
        "import sys\n"
        "from autoheal.guard import TradingGate\n"
        "print(TradingGate(*sys.argv[1:]).allowed('buy'))\n"
    )
    env = {k: v for k, v in os.environ.items() if not k.startswith("AUTOHEAL_")}

    def run(*paths: str) -> str:
        done = subprocess.run(
            [sys.executable, "-c", code, *paths],
            cwd=elsewhere,
            env=env,
            capture_output=True,
            text=True,
            timeout=60,
            check=True,
        )
        return done.stdout.strip()

    assert run("shared_data", "STOP.TXT") == str(UNKNOWN)
    # The README's form: absolute paths, wherever the process was started.
    assert run(str(app / "shared_data"), str(app / "STOP.TXT")) == str((False, "stop_file_present"))


def test_relative_paths_are_refused_everywhere(no_env: pytest.MonkeyPatch, app: Path) -> None:
    no_env.chdir(app)
    write_flags(app / "shared_data", Flags())
    (app / "STOP.TXT").unlink()
    assert TradingGate("shared_data", "STOP.TXT").allowed("buy") == UNKNOWN
    assert TradingGate(app / "shared_data", "STOP.TXT").allowed("buy") == UNKNOWN
    assert is_live_execution_allowed({**ARMED, "runtime_dir": Path("shared_data")}) == UNKNOWN
    no_env.setenv("AUTOHEAL_RUNTIME_DIR", "shared_data")
    assert TradingGate().allowed("sell", reduces_position=True) == UNKNOWN
    assert is_live_execution_allowed(ARMED) == UNKNOWN
    no_env.setenv("AUTOHEAL_RUNTIME_DIR", str(app / "shared_data"))
    assert TradingGate().allowed("buy") == (True, "ok")
    no_env.setenv("AUTOHEAL_STOP_FILE", "STOP.TXT")
    assert TradingGate().allowed("buy") == UNKNOWN


def test_the_other_guard_classes_refuse_a_relative_runtime_dir(
    no_env: pytest.MonkeyPatch, app: Path
) -> None:
    from autoheal.guard import CircuitBreaker, Heartbeat, InventoryGate, OrderLedger, StateBus

    no_env.chdir(app)
    builders: list[Callable[[], object]] = [
        lambda: OrderLedger("shared_data"),
        lambda: InventoryGate("shared_data"),
        lambda: Heartbeat("shared_data", "trader"),
        lambda: StateBus("shared_data"),
        lambda: CircuitBreaker("shared_data"),
    ]
    for build in builders:
        with pytest.raises(ValueError, match="absolute"):
            build()
    no_env.setenv("AUTOHEAL_RUNTIME_DIR", "shared_data")
    with pytest.raises(ValueError, match="absolute"):
        CircuitBreaker()
    with pytest.raises(ValueError, match="absolute"):
        OrderLedger()


# ------------------------------------------------------------------ A6: paths that do not exist


def test_regression_issue18_a6_a_misspelled_runtime_dir_refuses(
    no_env: pytest.MonkeyPatch, app: Path
) -> None:
    typo = app.parent / "ap" / "shared_data"  # STOP.TXT would be beside it: not there either
    assert TradingGate(typo).allowed("buy") == UNKNOWN
    no_env.setenv("AUTOHEAL_RUNTIME_DIR", str(typo))
    assert TradingGate().allowed("buy") == UNKNOWN
    assert is_live_execution_allowed(ARMED) == UNKNOWN


def test_regression_issue18_a6_live_gating_with_a_dir_that_does_not_exist_refuses(
    no_env: pytest.MonkeyPatch, app: Path
) -> None:
    env = {**ARMED, "runtime_dir": app / "no_such_dir", "stop_file": app / "no_such_dir.TXT"}
    assert is_live_execution_allowed(env) == UNKNOWN


def test_regression_issue18_a6_a_missing_flags_file_refuses(
    no_env: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    runtime = tmp_path / "shared_data"
    runtime.mkdir()
    gate = TradingGate(runtime, recheck_interval_s=0.0)
    assert gate.allowed("buy") == UNKNOWN
    assert gate.status().halted
    env = {**ARMED, "runtime_dir": runtime}
    assert is_live_execution_allowed(env) == UNKNOWN
    write_flags(runtime, Flags())  # the daemon starts and writes it
    assert gate.allowed("buy") == (True, "ok")
    assert is_live_execution_allowed(env) == (True, "ok")
    (runtime / FLAGS_FILENAME).unlink()
    assert gate.allowed("buy") == UNKNOWN


# ------------------------------------------------------------------ A9: not a regular file


def test_regression_issue18_a9_a_fifo_flags_file_never_hangs_the_gate(fifo_flags: Path) -> None:
    gate = TradingGate(fifo_flags, recheck_interval_s=0.0, watch_breaker=False)
    assert returns_within(lambda: gate.allowed("buy"), fifo_flags / FLAGS_FILENAME) == UNKNOWN
    sell = returns_within(
        lambda: gate.allowed("sell", reduces_position=True), fifo_flags / FLAGS_FILENAME
    )
    assert sell == UNKNOWN


def test_regression_issue18_a9_a_fifo_flags_file_never_hangs_live_gating(
    fifo_flags: Path,
) -> None:
    env = {**ARMED, "runtime_dir": fifo_flags}
    got = returns_within(lambda: is_live_execution_allowed(env), fifo_flags / FLAGS_FILENAME)
    assert got == UNKNOWN


@pytest.mark.parametrize("kind", ["directory", "socket", "device"])
def test_other_non_regular_flags_files_are_unknown(tmp_path: Path, kind: str) -> None:
    import socket

    runtime = tmp_path / "shared_data"
    runtime.mkdir()
    path = runtime / FLAGS_FILENAME
    if kind == "directory":
        path.mkdir()
    elif kind == "socket":
        sock = socket.socket(socket.AF_UNIX)
        sock.bind(str(path))
        sock.close()
    else:
        path.symlink_to("/dev/zero")  # a read of it would never end
    gate = TradingGate(runtime, recheck_interval_s=0.0, watch_breaker=False)
    assert returns_within(lambda: gate.allowed("buy"), path) == UNKNOWN
    assert is_live_execution_allowed({**ARMED, "runtime_dir": runtime}) == UNKNOWN

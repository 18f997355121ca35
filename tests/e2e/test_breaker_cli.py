"""``autoheal breaker status|reset`` as real subprocesses over the guard's real breaker file."""

from __future__ import annotations

import json
import os
import pwd
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import pytest

from autoheal.drills.stacks.simple import Runtime, read_doc, wait_for
from autoheal.guard import BreakerPolicy, CircuitBreaker

pytestmark = [pytest.mark.slow, pytest.mark.timeout(90)]

USER = pwd.getpwuid(os.geteuid()).pw_name


def _status(rt: Runtime) -> dict[str, dict[str, Any]]:
    proc = rt.cli("breaker", "status", "--json")
    assert proc.returncode == 0, proc.stderr
    return {row["key"]: row for row in json.loads(proc.stdout)["keys"]}


def _trip(rt: Runtime, key: str, cooldown: float = 120.0) -> None:
    rt.runtime_dir.mkdir(parents=True, exist_ok=True)
    breaker = CircuitBreaker(rt.runtime_dir, BreakerPolicy(cooldown_s=cooldown))
    for _ in range(3):
        breaker.record_failure(key, reason="exchange_502")
    if cooldown > 1:  # a 1 ms cooldown may not have run out yet, in the same millisecond
        assert breaker.state(key) == "open"


def test_status_and_a_journaled_idempotent_reset_of_one_key(tmp_path: Path) -> None:
    rt = Runtime(tmp_path, ("feeder",))
    empty = rt.cli("breaker", "status")
    assert empty.returncode == 0 and "every key is closed" in empty.stdout

    before = time.time()
    _trip(rt, "btc/usdt")
    _trip(rt, "ETHUSDT", cooldown=0.001)  # its cooldown is over: half-open now
    rows = _status(rt)
    btc, eth = rows["BTCUSDT"], rows["ETHUSDT"]
    assert btc["state"] == "open" and btc["consecutive_failures"] == 3
    assert before - 1 <= btc["opened_at"] <= time.time() + 1  # wall clock
    assert abs(btc["half_open_at"] - btc["opened_at"] - 120.0) < 0.01
    assert eth["state"] == "half_open" and eth["stored_state"] == "open"
    text = rt.cli("breaker", "status")
    assert "BTCUSDT" in text.stdout and "open" in text.stdout

    reset = rt.cli(
        "breaker", "reset", "btc-usdt", "--reason", "exchange is back", "--idempotency-key", "k1"
    )
    assert reset.returncode == 0, reset.stderr
    assert "breaker_reset succeeded" in reset.stdout
    rows = _status(rt)
    assert rows["BTCUSDT"]["state"] == "closed" and rows["BTCUSDT"]["consecutive_failures"] == 0
    assert rows["ETHUSDT"]["stored_state"] == "open"  # not named: untouched
    # the guard sees it closed too
    assert CircuitBreaker(rt.runtime_dir).allow_call("buy", "BTCUSDT") == (True, None)

    [cid] = {e.command_id for e in rt.events(kind="breaker_reset.succeeded")}
    events = rt.events(command_id=cid)
    assert [e.kind for e in events] == [
        "started",
        "breaker_reset.started",
        "breaker_reset.succeeded",
        "result_written",
    ]
    assert {e.actor for e in events} == {USER}
    assert {e.reason for e in events} == {"exchange is back"}
    assert events[2].data == {"absent": [], "reset": {"BTCUSDT": "open"}}

    # the same key again: the recorded result, nothing reset twice
    _trip(rt, "BTCUSDT")
    again = rt.cli(
        "breaker", "reset", "BTCUSDT", "--reason", "exchange is back", "--idempotency-key", "k1"
    )
    assert again.returncode == 0 and "duplicate" in again.stdout
    assert _status(rt)["BTCUSDT"]["state"] == "open"
    assert len(rt.events(kind="breaker_reset.succeeded")) == 1
    # the same key for another command: refused, nothing stored
    other = rt.cli("breaker", "reset", "ETHUSDT", "--reason", "x", "--idempotency-key", "k1")
    assert other.returncode == 2 and "differs" in other.stderr

    every = rt.cli("breaker", "reset", "--all", "--reason", "fresh start")
    assert every.returncode == 0, every.stderr
    assert _status(rt) == {}


def test_reset_usage_errors(tmp_path: Path) -> None:
    rt = Runtime(tmp_path, ("feeder",))
    for args in (
        ("breaker", "reset", "BTCUSDT"),  # no reason
        ("breaker", "reset", "--reason", "x"),  # no keys
        ("breaker", "reset", "BTCUSDT", "--all", "--reason", "x"),
        ("breaker", "status", "BTCUSDT"),
    ):
        proc = rt.cli(*args)
        assert proc.returncode == 2, (args, proc.stdout, proc.stderr)
        assert "usage error" in proc.stderr and "Traceback" not in proc.stderr


def test_an_unreadable_file_is_reported_and_only_all_replaces_it(tmp_path: Path) -> None:
    rt = Runtime(tmp_path, ("feeder",))
    rt.runtime_dir.mkdir(parents=True)
    (rt.runtime_dir / "circuit_breaker.json").write_bytes(b"\x00{garbage")
    status = rt.cli("breaker", "status")
    assert status.returncode == 1 and "unreadable" in status.stderr
    one = rt.cli("breaker", "reset", "BTCUSDT", "--reason", "x")
    assert one.returncode == 1 and "unreadable" in one.stderr
    every = rt.cli("breaker", "reset", "--all", "--reason", "x")
    assert every.returncode == 0, every.stderr
    assert _status(rt) == {}


TRADER = """\
import sys, pathlib
from autoheal.guard import BreakerPolicy, CircuitBreaker
rt = pathlib.Path(sys.argv[1])
b = CircuitBreaker(rt, BreakerPolicy(failure_threshold=0, window_failures=10**9))
n = 0
while not (rt / "trader.stop").exists():
    b.record_failure("ETHUSDT", reason="exchange_502")
    n += 1
(rt / "trader.count").write_text(str(n))
"""


def test_a_reset_beside_a_running_daemon_and_a_trader_writing_loses_nothing(
    tmp_path: Path,
) -> None:
    with Runtime(tmp_path, ("feeder",)) as rt:
        rt.start_daemon()
        _trip(rt, "BTCUSDT")
        trader = subprocess.Popen([sys.executable, "-c", TRADER, str(rt.runtime_dir)], env=rt.env)
        try:
            path = rt.runtime_dir / "circuit_breaker.json"

            def eth_failures() -> int:
                doc = read_doc(path) or {}
                return int(doc.get("keys", {}).get("ETHUSDT", {}).get("consecutive_failures", 0))

            wait_for(lambda: eth_failures() > 0, 10, "the trader to record failures")
            for i in range(3):
                _trip(rt, "BTCUSDT")
                proc = rt.cli("breaker", "reset", "BTCUSDT", "--reason", f"round {i}")
                assert proc.returncode == 0, proc.stderr
                assert _status(rt)["BTCUSDT"]["state"] == "closed"
            during = eth_failures()
            wait_for(lambda: eth_failures() > during, 10, "the trader to go on after the resets")
        finally:
            (rt.runtime_dir / "trader.stop").write_text("")
            trader.wait(timeout=20)
        assert trader.returncode == 0
        recorded = int((rt.runtime_dir / "trader.count").read_text())
        assert eth_failures() == recorded  # every failure the trader wrote is still there
        # the daemon never claimed a reset: each was claimed and run by the CLI
        for e in rt.events(kind="started"):
            assert e.data == {"claimed_by": f"cli:{USER}"}
        assert len(rt.events(kind="breaker_reset.succeeded")) == 3


def test_a_held_lock_bounds_the_reset_and_fails_it_cleanly(tmp_path: Path) -> None:
    from autoheal.guard._filelock import locked

    rt = Runtime(tmp_path, ("feeder",))
    _trip(rt, "BTCUSDT")
    path = rt.runtime_dir / "circuit_breaker.json"
    with locked(path):  # a trader holding the lock (stopped mid-write, say)
        started = time.monotonic()
        proc = rt.cli("breaker", "reset", "BTCUSDT", "--reason", "x", "--timeout", "1")
        took = time.monotonic() - started
    assert proc.returncode == 1, proc.stdout
    assert "still locked" in proc.stderr
    assert took < 10
    assert _status(rt)["BTCUSDT"]["state"] == "open"  # nothing changed
    [failed] = rt.events(kind="breaker_reset.failed")
    assert (failed.data or {}).get("reason") == "breaker_file_locked"
    # with the lock free again the same reset goes through
    again = rt.cli("breaker", "reset", "BTCUSDT", "--reason", "x")
    assert again.returncode == 0, again.stderr
    assert _status(rt)["BTCUSDT"]["state"] == "closed"

"""The daemon heals the real demo stack: killed, failing, hung feeder; exchange outage.

Real processes (``autoheal run``, feeder, trader, fake exchange), real files in
tmp_path, loopback only, a time-scaled config (see :mod:`tests.e2e.stack`).
"""

from __future__ import annotations

import json
import os
import signal
import time
from pathlib import Path
from typing import Any

import psutil
import pytest

from tests.e2e.stack import Stack, process_gone

pytestmark = [pytest.mark.slow, pytest.mark.timeout(60)]


def _feeder(doc: dict[str, Any]) -> dict[str, Any]:
    return dict(doc["components"]["feeder"])


def _dor_with_pids(doc: dict[str, Any]) -> dict[str, Any] | None:
    comps = doc["components"]
    if doc["dor"] and all(c["pid"] for c in comps.values()):
        return doc
    return None


def test_sigkilled_feeder_is_replaced_and_dor_returns(tmp_path: Path) -> None:
    with Stack(tmp_path) as stack:
        stack.start()
        first = stack.wait_for(_dor_with_pids, 15, "DOR true with every service running")
        old_pid = first["components"]["feeder"]["pid"]
        assert first["components"]["feeder"]["restarts"] == 0

        os.kill(old_pid, signal.SIGKILL)

        stack.wait_for(lambda d: not d["dor"], 5, "DOR false after the SIGKILL")
        healed = stack.wait_for(
            lambda d: (
                d["dor"]
                and _feeder(d)["pid"] not in (None, old_pid)
                and _feeder(d)["restarts"] >= 1
                and d
            ),
            10,
            "a new feeder PID, restarts incremented and DOR true again",
        )
        feeder = _feeder(healed)
        assert feeder["restarts"] == 1
        assert feeder["pid"] != old_pid
        assert psutil.pid_exists(feeder["pid"])

        transitions = stack.log_lines("stage_transition component=feeder")
        assert any("to=RESTART reason=process_exited attempt=1/3" in t for t in transitions), (
            stack.log_tail()
        )
        assert len(stack.log_lines("process_started component=feeder")) == 2
        state = stack.file_json("autoheal_state.json")
        assert state["components"]["feeder"]["restarts"] == 1


def test_feeder_failing_at_start_ends_in_failsafe_and_halts_trader(tmp_path: Path) -> None:
    with Stack(
        tmp_path,
        feeder_args=("--fail-on-start",),
        # The feeder never writes prices: the test gives the trader an old-enough file.
        trader_args=("--max-price-age", "3600"),
    ) as stack:
        stack.runtime_dir.mkdir(parents=True)
        prices = {"ts": time.time(), "prices": {"BTCUSDT": {"price": 50000.0, "ts": 0}}}
        (stack.runtime_dir / "prices.json").write_text(json.dumps(prices))
        stack.start()
        doc = stack.wait_for(lambda d: d["failsafe"] and d, 20, "FAILSAFE")

        feeder = _feeder(doc)
        assert feeder["stage"] == "FAILSAFE"
        assert feeder["restarts"] == 3
        # One start, then exactly max_restarts restarts: no fourth.
        assert len(stack.log_lines("process_started component=feeder")) == 1 + 3
        assert stack.log_lines("to=FAILSAFE")

        assert stack.stop_file.exists()
        assert "STOP" in stack.stop_file.read_text()
        flags = stack.file_json("global_flags.json")
        assert flags["failsafe_active"] is True
        assert flags["mode"] == "SIGNAL_READ_ONLY"
        notes = (stack.runtime_dir / "notifications.log").read_text().splitlines()
        assert any("feeder" in line for line in notes), notes

        assert stack.run_autoheal("status").returncode == 1

        # The trader notices the kill switch and places nothing from then on.
        stack.wait_until(
            lambda: "trader halted" in stack.service_log("trader"),
            10,
            "'trader halted' in trader.log",
        )
        orders_at_halt = stack.exchange_stats()["orders_placed"]
        beat = stack.file_json("trader.heartbeat.json")
        signals_at_halt = beat["signals"]
        stack.wait_until(
            lambda: (
                (stack.file_json("trader.heartbeat.json") or {}).get("signals", 0)
                >= signals_at_halt + 5
            ),
            10,
            "five more trader signals after the halt",
        )
        assert stack.exchange_stats()["orders_placed"] == orders_at_halt
        assert "trader resumed" not in stack.service_log("trader").split("trader halted", 1)[1]
        # The feeder is not restarted again while the failsafe holds.
        assert len(stack.log_lines("process_started component=feeder")) == 1 + 3


def test_sigstopped_feeder_goes_stale_and_is_replaced(tmp_path: Path) -> None:
    with Stack(tmp_path) as stack:
        stack.start()
        first = stack.wait_for(_dor_with_pids, 15, "DOR true with every service running")
        old_pid = first["components"]["feeder"]["pid"]
        hung = psutil.Process(old_pid)

        os.kill(old_pid, signal.SIGSTOP)
        try:
            stack.wait_for(
                lambda d: _feeder(d)["probes"]["heartbeat"]["reason"] == "heartbeat_stale",
                5,
                "heartbeat_stale on the feeder",
            )
            stack.wait_for(
                lambda d: d["dor"] and _feeder(d)["pid"] not in (None, old_pid),
                10,
                "a new feeder PID and DOR true again",
            )
        finally:
            if not process_gone(hung):
                os.kill(old_pid, signal.SIGCONT)
        assert process_gone(hung), "the hung feeder is still there"
        assert any(
            "reason=heartbeat_stale" in line
            for line in stack.log_lines("stage_transition component=feeder")
        ), stack.log_tail()
        assert _feeder(stack.health() or {})["restarts"] == 1


def test_exchange_outage_degrades_without_restarts_and_recovers(tmp_path: Path) -> None:
    with Stack(tmp_path) as stack:
        stack.start()
        first = stack.wait_for(_dor_with_pids, 15, "DOR true with every service running")
        feeder_pid = first["components"]["feeder"]["pid"]
        port = stack.port

        stack.stop_exchange()
        down = stack.wait_for(
            lambda d: d["degraded"] and d,
            5,
            "the dependency failing (DEGRADED)",
        )
        reason = down["dependencies"]["exchange_rest"]["reason"]
        assert reason in ("CONN_REFUSED", "CONN_TIMEOUT"), down["dependencies"]
        assert down["dor"] is False
        assert down["mode"] == "DEGRADED"
        stack.wait_until(
            lambda: (stack.file_json("global_flags.json") or {}).get("mode") == "DEGRADED",
            3,
            "mode DEGRADED in global_flags.json",
        )
        assert (stack.file_json("global_flags.json") or {}).get("failsafe_active") is False

        # Hold the outage for a few heartbeat windows: still no restart of anything.
        seq = (stack.file_json("auto_heal.heartbeat.json") or {}).get("seq", 0)
        stack.wait_until(
            lambda: (stack.file_json("auto_heal.heartbeat.json") or {}).get("seq", 0) >= seq + 10,
            10,
            "ten more daemon heartbeats during the outage",
        )
        during = stack.health() or {}
        assert during["degraded"] is True
        assert _feeder(during)["restarts"] == 0
        assert _feeder(during)["pid"] == feeder_pid
        assert not stack.log_lines("to=RESTART")

        assert stack.start_exchange(port) == port
        back = stack.wait_for(
            lambda d: d["dor"] and not d["degraded"] and d,
            10,
            "DOR true after the exchange is back",
        )
        assert back["mode"] == "NORMAL"
        assert _feeder(back)["restarts"] == 0
        assert _feeder(back)["pid"] == feeder_pid
        stack.wait_until(
            lambda: (stack.file_json("global_flags.json") or {}).get("mode") == "NORMAL",
            3,
            "mode NORMAL in global_flags.json",
        )

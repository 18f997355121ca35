"""The daemon's edges: one daemon per runtime directory, ``autoheal status``, clean SIGTERM."""

from __future__ import annotations

import json
import signal
from pathlib import Path

import psutil
import pytest

from tests.e2e.stack import Stack, process_gone

pytestmark = [pytest.mark.slow, pytest.mark.timeout(60)]


def test_second_daemon_on_the_same_runtime_dir_refuses(tmp_path: Path) -> None:
    with Stack(tmp_path) as stack:
        stack.start()
        stack.wait_for(lambda d: d["dor"], 15, "DOR true")
        assert stack.daemon is not None

        second = stack.run_autoheal("run")

        assert second.returncode == 1, second.stderr
        assert f"pid {stack.daemon.pid}" in second.stderr, second.stderr
        # The first daemon is unharmed and still the only one writing.
        assert stack.daemon.poll() is None
        assert (stack.file_json("auto_heal.heartbeat.json") or {}).get("pid") == stack.daemon.pid


def test_status_exit_code_follows_dor_and_failsafe(tmp_path: Path) -> None:
    with Stack(tmp_path) as stack:
        stack.start()
        stack.wait_for(lambda d: d["dor"], 15, "DOR true")

        ok = stack.run_autoheal("status")
        assert ok.returncode == 0, ok.stdout + ok.stderr
        assert "DOR" in ok.stdout and "feeder" in ok.stdout
        as_json = stack.run_autoheal("status", "--json")
        assert as_json.returncode == 0
        assert json.loads(as_json.stdout)  # machine-readable

        # An operator pulls the kill switch by hand: the daemon latches the failsafe.
        stack.stop_file.write_text("STOP set_by=test reason=e2e\n")
        stack.wait_for(lambda d: d["failsafe"] and not d["dor"], 5, "failsafe from STOP.TXT")

        halted = stack.run_autoheal("status")
        assert halted.returncode == 1, halted.stdout + halted.stderr
        assert "failsafe" in halted.stdout.lower()


def test_status_exits_1_when_no_daemon_runs(tmp_path: Path) -> None:
    with Stack(tmp_path) as stack:
        stack.start()
        stack.wait_for(lambda d: d["dor"], 15, "DOR true")
        assert stack.stop_daemon() == 0
        last = stack.health() or {}
        # The stopped daemon's last word: nothing is supervised, so not ready to trade.
        assert last["dor"] is False and last["daemon"]["stopped"] is True

        after = stack.run_autoheal("status")
        assert after.returncode == 1, after.stdout
        assert "daemon" in after.stdout.lower()


def test_sigterm_exits_0_and_stops_every_service(tmp_path: Path) -> None:
    with Stack(tmp_path) as stack:
        stack.start()
        doc = stack.wait_for(
            lambda d: d["dor"] and all(c["pid"] for c in d["components"].values()) and d,
            15,
            "DOR true with every service running",
        )
        assert stack.daemon is not None
        services = [psutil.Process(c["pid"]) for c in doc["components"].values()]
        descendants = psutil.Process(stack.daemon.pid).children(recursive=True)
        assert {p.pid for p in services} <= {p.pid for p in descendants}

        assert stack.stop_daemon(signal.SIGTERM) == 0

        left = [p.pid for p in [*services, *descendants] if not process_gone(p)]
        assert not left, f"services still running after the daemon exited: {left}"
        log = stack.log_text()
        for name in doc["components"]:
            assert f"process_stopped component={name}" in log
        assert "reason=daemon_shutdown" in log
        assert log.rstrip().endswith("stopped")

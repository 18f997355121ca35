"""``autoheal metrics`` as a real subprocess after real faults under a real daemon."""

from __future__ import annotations

import json
import os
import pwd
import signal
from pathlib import Path
from typing import Any

import pytest

from autoheal.drills.stacks.simple import Runtime, wait_for

pytestmark = [pytest.mark.slow, pytest.mark.timeout(90)]


def _metrics(rt: Runtime, *args: str) -> dict[str, Any]:
    proc = rt.cli("metrics", "--json", *args)
    assert proc.returncode == 0, proc.stderr
    return dict(json.loads(proc.stdout))


def _verified_count(rt: Runtime) -> int:
    return sum(
        1
        for e in rt.events(component="feeder", kind="stage_transition")
        if (e.data or {}).get("to") == "OBSERVE"
    )


def test_killed_then_hung_feeder_show_as_incidents_with_detect_and_recover_times(
    tmp_path: Path,
) -> None:
    with Runtime(tmp_path, ("feeder", "trader")) as rt:
        rt.start_daemon()
        killed = rt.pidfile("feeder")
        assert killed is not None
        os.kill(killed, signal.SIGKILL)
        wait_for(lambda: _verified_count(rt) == 1, 20, "the killed feeder to be verified")

        doc = _metrics(rt)
        feeder = doc["components"]["feeder"]
        [inc] = feeder["incidents"]
        assert inc["reason"] == "process_exited"
        assert inc["evidence"] == "transition"  # the exit watcher acts on the exit itself
        assert inc["time_to_detect_s"] == 0.0
        assert 0 < inc["time_to_recover_s"] < 10
        assert inc["ongoing"] is False and inc["end_reason"] == "verified"
        assert feeder["restarts_24h"] == 1 and feeder["restarts_window"]["total"] == 1
        assert feeder["time_to_recover_s"]["max"] == inc["time_to_recover_s"]
        assert feeder["uptime_s"] is not None and feeder["uptime_s"] < 20
        assert set(feeder["stage_time_s"]) >= {"OBSERVE", "BACKOFF"}
        assert doc["components"]["trader"]["incidents"] == []

        # A hung feeder: its heartbeat goes stale (max_age 2 s), two failed checks, restart.
        hung = rt.pidfile("feeder")
        assert hung is not None
        os.kill(hung, signal.SIGSTOP)
        wait_for(lambda: _verified_count(rt) == 2, 30, "the hung feeder to be replaced")
        feeder = _metrics(rt)["components"]["feeder"]
        second = feeder["incidents"][1]
        assert second["reason"] == "heartbeat_stale"
        assert second["evidence"] == "heartbeat"
        assert 0 < second["time_to_detect_s"] < 2  # two checks 200 ms apart, and slack
        assert second["time_to_recover_s"] > second["time_to_detect_s"]
        assert feeder["time_to_detect_s"]["max"] == second["time_to_detect_s"]

        # A failsafe an operator entered and cleared, with who did each.
        for verb, why in (("enter", "maintenance"), ("clear", "done")):
            proc = rt.cli("failsafe", verb, "--reason", why)
            assert proc.returncode == 0, proc.stderr
        [failsafe] = _metrics(rt)["failsafe"]
        user = pwd.getpwuid(os.geteuid()).pw_name
        assert failsafe["started_by"] == user and failsafe["ended_by"] == user
        assert failsafe["ongoing"] is False and failsafe["duration_s"] > 0

        text = rt.cli("metrics", "--since", "1h")
        assert text.returncode == 0, text.stderr
        assert "feeder: restarts 2 in 24h" in text.stdout
        assert "evidence heartbeat" in text.stdout
        assert f"cleared by {user}" in text.stdout


def test_metrics_reads_the_newest_drill_report_and_rejects_a_bad_window(tmp_path: Path) -> None:
    with Runtime(tmp_path, ("feeder",)) as rt:
        rt.start_daemon()
        drills = rt.runtime_dir / "drills"
        drills.mkdir()
        old = {"started_at": "old", "passed": False, "counts": {}, "drills": []}
        new = {
            "started_at": "new",
            "passed": True,
            "counts": {"PASSED": 1},
            "drills": [
                {
                    "name": "kill_feeder",
                    "status": "PASSED",
                    "time_to_detect_s": 0.1,
                    "time_to_recover_s": 1.2,
                }
            ],
        }
        (drills / "20260101T000000Z.json").write_text(json.dumps(old))
        newest = drills / "20260102T000000Z.json"
        newest.write_text(json.dumps(new))
        os.utime(drills / "20260101T000000Z.json", (1, 1))
        drill = _metrics(rt, "--since", "2d")["last_drill"]
        assert drill["path"] == str(newest)
        assert drill["drills"][0]["status"] == "PASSED"
        bad = rt.cli("metrics", "--since", "soon")
        assert bad.returncode == 2 and "--since" in bad.stderr

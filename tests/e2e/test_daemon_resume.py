"""A daemon SIGKILLed mid-episode resumes it: the attempt count survives the restart.

The feeder exits 1 at once; with backoff ``2s, 3s`` the component sits in
BACKOFF after its second failed restart for long enough to kill the daemon
there. The second daemon must read ``autoheal_state.json``, wait out the
remaining backoff, make attempt 3 (not 1) and go to FAILSAFE when it fails.
"""

from __future__ import annotations

import signal
from pathlib import Path
from typing import Any

import pytest

from tests.e2e.stack import Stack

pytestmark = [pytest.mark.slow, pytest.mark.timeout(60)]


def _in_backoff_after_two(doc: dict[str, Any]) -> bool:
    feeder = doc["components"]["feeder"]
    return bool(
        feeder["stage"] == "BACKOFF"
        and feeder["attempts"] == 2
        and feeder["next_restart_at"] is not None
        and feeder["next_restart_at"] > doc["ts"] + 1.0  # the long wait, not a verify blip
    )


def test_daemon_killed_in_backoff_resumes_attempts_then_failsafe(tmp_path: Path) -> None:
    with Stack(tmp_path, feeder_args=("--fail-on-start",), restart_backoff=("2s", "3s")) as stack:
        stack.start()
        stack.wait_for(_in_backoff_after_two, 15, "feeder in BACKOFF after two failed restarts")
        state = stack.file_json("autoheal_state.json")
        assert state["components"]["feeder"]["attempts"] == 2
        assert len(stack.log_lines("process_started component=feeder")) == 1 + 2

        stack.track_services()  # the trader outlives a SIGKILLed daemon
        first_log = stack.daemon_log
        assert stack.stop_daemon(signal.SIGKILL) == -signal.SIGKILL
        state = stack.file_json("autoheal_state.json")
        assert state["components"]["feeder"]["stage"] == "BACKOFF"
        assert state["components"]["feeder"]["attempts"] == 2

        stack.start_daemon()
        assert stack.daemon_log != first_log
        stack.wait_until(
            lambda: stack.log_lines("state_resumed component=feeder"), 10, "state_resumed line"
        )
        resumed = stack.log_lines("state_resumed component=feeder")[0]
        assert "stage=BACKOFF" in resumed and "attempts=2" in resumed, resumed

        doc = stack.wait_for(lambda d: d["failsafe"] and d, 20, "FAILSAFE after attempt 3")
        feeder = doc["components"]["feeder"]
        assert feeder["stage"] == "FAILSAFE"
        assert feeder["attempts"] == 3
        # The second daemon made exactly one attempt: the third, not a fresh first.
        assert len(stack.log_lines("process_started component=feeder")) == 1
        transitions = stack.log_lines("stage_transition component=feeder")
        assert not any("attempt=1/3" in t for t in transitions), transitions
        assert any("to=RESTART" in t and "attempt=3/3" in t for t in transitions), transitions
        assert any("to=FAILSAFE" in t for t in transitions), transitions
        assert stack.stop_file.exists()
        assert stack.file_json("global_flags.json")["failsafe_active"] is True
        # The trader the first daemon started was adopted, not started twice.
        assert stack.log_lines("process_adopted component=trader")
        assert not stack.log_lines("process_started component=trader")

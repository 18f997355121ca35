"""Issue 9, defects 1 and 4, against a real daemon: a kill switch that cannot be written,
and a partial flags document written by hand, never loosen a halt.

Before the fix, a failed ``STOP.TXT`` write was logged as written and, on the next
beat, read as "removed by hand": FAILSAFE → cleared → three restarts → FAILSAFE, for
ever; with the stop file's folder replaced by a plain file the daemon even exited.
"""

from __future__ import annotations

import os
import signal
import time
from pathlib import Path

import orjson
import pytest

from autoheal.drills.stacks.simple import Runtime, read_doc, wait_for

pytestmark = [pytest.mark.slow, pytest.mark.timeout(120)]


def stop_file_in_its_own_folder(rt: Runtime) -> Path:
    """Move the runtime's stop file into ``<root>/halt/`` (a folder we can break)."""
    halt = rt.root / "halt"
    halt.mkdir()
    stop = halt / "STOP.TXT"
    text = rt.config.read_text().replace(str(rt.stop_file), str(stop))
    rt.config.write_text(text)
    rt.stop_file = stop
    return halt


def failsafe_held(rt: Runtime) -> bool:
    health, flags = rt.health() or {}, rt.flags() or {}
    state = read_doc(rt.runtime_dir / "autoheal_state.json") or {}
    return (
        health.get("failsafe") is True
        and flags.get("failsafe_active") is True
        and flags.get("mode") == "SIGNAL_READ_ONLY"
        and state.get("failsafe") is not None
    )


def stop_write_failure(rt: Runtime) -> dict[str, object] | None:
    failures = ((rt.health() or {}).get("kill_switch") or {}).get("write_failures") or {}
    return failures.get("stop_file")


def test_stop_file_folder_replaced_by_a_file_the_failsafe_enters_and_holds(
    tmp_path: Path,
) -> None:
    rt = Runtime(tmp_path)
    halt = stop_file_in_its_own_folder(rt)
    with rt:
        rt.start_daemon()
        pid = rt.healthy_pid("feeder")
        halt.rmdir()
        halt.write_text("a plain file where the stop file's folder was\n")
        (rt.runtime_dir / "feeder.crash").touch()  # the feeder cannot start any more
        os.kill(pid, signal.SIGKILL)

        wait_for(lambda: failsafe_held(rt), 20, "FAILSAFE with health, flags and state saying so")
        failure = wait_for(lambda: stop_write_failure(rt), 5, "the failed STOP.TXT write")
        assert failure["errno"] == "ENOTDIR"
        alert = read_doc(rt.runtime_dir / "alerts" / "stop_file_write_failed.json")
        assert alert is not None and "STOP.TXT could not be written: ENOTDIR" in alert["detail"]
        notices = (rt.runtime_dir / "notifications.log").read_text()
        assert "STOP.TXT could not be written: ENOTDIR" in notices

        # It holds: over several heartbeats and retries nothing clears it and nothing restarts.
        restarts = (rt.health() or {})["components"]["feeder"]["restarts"]
        until = time.monotonic() + 3.0
        while time.monotonic() < until:
            assert failsafe_held(rt), "the failsafe loosened while STOP.TXT could not be written"
            time.sleep(0.1)
        assert (rt.health() or {})["components"]["feeder"]["restarts"] == restarts
        assert rt.daemon is not None and rt.daemon.poll() is None
        assert "stop_file_removed" not in [e.reason for e in rt.events(kind="operator_kill_switch")]
        assert "stop_file_written" not in rt.log_text()

        status = rt.cli("status")
        assert status.returncode == 1
        assert "STOP.TXT could not be written: ENOTDIR" in status.stdout
        assert "failsafe=ON" in status.stdout

        # Repaired: the next retry (capped backoff) writes STOP.TXT and ends the alert.
        halt.unlink()
        halt.mkdir()
        wait_for(rt.stop_file.exists, 40, "STOP.TXT written by a retry after the repair")
        wait_for(lambda: stop_write_failure(rt) is None, 5, "the failure to clear from health")
        assert not (rt.runtime_dir / "alerts" / "stop_file_write_failed.json").exists()
        assert failsafe_held(rt)


def test_reduce_only_written_by_hand_during_a_failsafe_keeps_it(tmp_path: Path) -> None:
    rt = Runtime(tmp_path)
    with rt:
        rt.start_daemon()
        pid = rt.healthy_pid("feeder")
        (rt.runtime_dir / "feeder.crash").touch()
        os.kill(pid, signal.SIGKILL)
        wait_for(lambda: failsafe_held(rt), 20, "FAILSAFE after three failed restarts")
        restarts = (rt.health() or {})["components"]["feeder"]["restarts"]
        (rt.runtime_dir / "feeder.crash").unlink()  # it could start now: it still must not

        flags_path = rt.runtime_dir / "global_flags.json"
        flags_path.write_bytes(orjson.dumps({"mode": "REDUCE_ONLY"}))

        def unwinding() -> bool:
            flags = rt.flags() or {}
            return flags.get("mode") == "REDUCE_ONLY" and flags.get("failsafe_active") is True

        wait_for(unwinding, 5, "REDUCE_ONLY inside the failsafe, failsafe_active kept")
        until = time.monotonic() + 2.0
        while time.monotonic() < until:
            assert (rt.health() or {}).get("failsafe") is True
            time.sleep(0.1)
        health = rt.health() or {}
        assert health["components"]["feeder"]["restarts"] == restarts
        assert health["components"]["feeder"]["stage"] == "FAILSAFE"
        assert "flags_cleared" not in [e.reason for e in rt.events(kind="operator_kill_switch")]

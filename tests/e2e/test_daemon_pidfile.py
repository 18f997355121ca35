"""A pidfile naming an unrelated live process: the daemon never signals it.

The test starts ``sleep 60`` and writes its PID into ``feeder.pid`` before the
daemon starts. Adoption must fail the identity proof (another program), the
daemon logs ``pidfile_not_ours`` and starts its own feeder; the ``sleep`` is
still running and not stopped at every step, including after the daemon's own
shutdown (which stops *its* services only).
"""

from __future__ import annotations

import subprocess
from pathlib import Path

import psutil
import pytest

from tests.e2e.stack import Stack

pytestmark = [pytest.mark.slow, pytest.mark.timeout(60)]


def _untouched(proc: psutil.Process) -> bool:
    """Running, and neither stopped nor traced nor a zombie."""
    return proc.is_running() and proc.status() not in (
        psutil.STATUS_STOPPED,
        psutil.STATUS_TRACING_STOP,
        psutil.STATUS_ZOMBIE,
    )


def test_pidfile_of_an_unrelated_process_is_never_signalled(tmp_path: Path) -> None:
    sleeper = subprocess.Popen(["sleep", "60"])
    try:
        victim = psutil.Process(sleeper.pid)
        with Stack(tmp_path) as stack:
            stack.runtime_dir.mkdir(parents=True)
            (stack.runtime_dir / "feeder.pid").write_text(f"{sleeper.pid}\n")
            stack.start()

            doc = stack.wait_for(
                lambda d: d["dor"] and d["components"]["feeder"]["pid"] and d,
                15,
                "DOR true with a feeder of the daemon's own",
            )
            feeder_pid = doc["components"]["feeder"]["pid"]
            assert feeder_pid != sleeper.pid
            assert "autoheal.demo.feeder" in " ".join(psutil.Process(feeder_pid).cmdline())
            lines = stack.log_lines("pidfile_not_ours component=feeder")
            assert any(f"pid {sleeper.pid} belongs to another program" in x for x in lines), (
                stack.log_tail()
            )
            assert (stack.runtime_dir / "feeder.pid").read_text().strip() == str(feeder_pid)
            assert sleeper.poll() is None and _untouched(victim)

            # The daemon's shutdown stops its own feeder, never the sleep.
            assert stack.stop_daemon() == 0
            assert sleeper.poll() is None and _untouched(victim)
            assert not psutil.pid_exists(feeder_pid) or (
                psutil.Process(feeder_pid).status() == psutil.STATUS_ZOMBIE
            )
    finally:
        sleeper.kill()
        sleeper.wait(timeout=5)

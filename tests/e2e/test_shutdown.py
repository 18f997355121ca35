"""A second SIGTERM (or a SIGINT) while the daemon stops its services must not kill it
half-way and orphan them."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
from pathlib import Path

import orjson
import psutil
import pytest

from autoheal.drills.stacks.simple import wait_for

pytestmark = [pytest.mark.slow, pytest.mark.timeout(60)]

STUBBORN = (
    "import signal, time\nsignal.signal(signal.SIGTERM, lambda *a: None)\nwhile True: time.sleep(1)"
)


def test_repeated_signals_during_shutdown_do_not_orphan_services(tmp_path: Path) -> None:
    argv = orjson.dumps([sys.executable, "-c", STUBBORN]).decode()
    cfg = tmp_path / "autoheal.toml"
    cfg.write_text(
        'environment = "paper"\n[paths]\nruntime_dir = "rt"\nstop_file = "STOP.TXT"\n'
        f'[services.stubborn]\nargv = {argv}\nstop_timeout = "1500ms"\n'
    )
    pidfile = tmp_path / "rt" / "stubborn.pid"
    log = tmp_path / "daemon.log"
    with log.open("wb") as fh:
        daemon = subprocess.Popen(
            [sys.executable, "-m", "autoheal", "run", "--config", str(cfg)], stdout=fh, stderr=fh
        )
    child = None
    try:
        wait_for(lambda: "ready" in log.read_text(), 20, "daemon ready")
        child = int(pidfile.read_text().split()[0])
        daemon.send_signal(signal.SIGTERM)
        wait_for(lambda: "shutdown signal=SIGTERM" in log.read_text(), 10, "shutdown begun")
        # the child ignores SIGTERM, so the daemon is inside its stop grace now
        daemon.send_signal(signal.SIGTERM)
        daemon.send_signal(signal.SIGINT)
        assert daemon.wait(timeout=30) == 0
        assert not psutil.pid_exists(child) or psutil.Process(child).status() == "zombie"
        text = log.read_text()
        assert "stopped" in text.splitlines()[-1]
    finally:
        if daemon.poll() is None:
            daemon.kill()
            daemon.wait()
        if child is not None and psutil.pid_exists(child):
            os.kill(child, signal.SIGKILL)

"""Service logs are rotated by size while the service runs (issue 3: size-based rotation)."""

from __future__ import annotations

import signal
import subprocess
import sys
from pathlib import Path

import orjson
import pytest

from autoheal.drills.stacks.simple import wait_for
from tests.e2e.test_hot_reload import _pids

pytestmark = [pytest.mark.slow, pytest.mark.timeout(60)]


CHATTY = "import sys, time\nwhile True:\n    print('x' * 200, flush=True)\n    time.sleep(0.002)"


def test_a_running_service_log_is_rotated_by_size(tmp_path: Path) -> None:
    argv = orjson.dumps([sys.executable, "-c", CHATTY]).decode()
    cfg = tmp_path / "autoheal.toml"
    cfg.write_text(
        'environment = "paper"\n[paths]\nruntime_dir = "rt"\nstop_file = "STOP.TXT"\n'
        '[daemon]\nheartbeat_interval = "100ms"\n'
        f"[services.chatty]\nargv = {argv}\nlog_max_bytes = 20000\nlog_backups = 2\n"
    )
    rt = tmp_path / "rt"
    log = (tmp_path / "daemon.log").open("wb")
    daemon = subprocess.Popen(
        [sys.executable, "-m", "autoheal", "run", "--config", str(cfg)], stderr=log, stdout=log
    )
    try:
        first = wait_for(lambda: _pids(rt).get("chatty"), 20, "chatty started")
        rotated = rt / "logs" / "chatty.log.1"
        wait_for(rotated.exists, 20, "a rotated log")
        assert _pids(rt)["chatty"] == first  # rotated while it runs, not by a restart
        assert rotated.stat().st_size >= 20000
    finally:
        daemon.send_signal(signal.SIGTERM)
        assert daemon.wait(timeout=30) == 0
        log.close()
    assert "log_rotated component=chatty" in (tmp_path / "daemon.log").read_text()

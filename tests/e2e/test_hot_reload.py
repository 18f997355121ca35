"""Hot reload with a real daemon: new services start, healthy ones keep their PIDs,
an invalid config is refused with an alert and changes nothing."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
from pathlib import Path

import orjson
import pytest

from autoheal.drills.stacks.simple import wait_for

pytestmark = [pytest.mark.slow, pytest.mark.timeout(60)]

SLEEPER = "import time\nwhile True: time.sleep(1)"


def _service(name: str) -> str:
    argv = orjson.dumps([sys.executable, "-c", SLEEPER]).decode()
    return f"[services.{name}]\nargv = {argv}\n"


def _config(tmp: Path, names: list[str]) -> str:
    head = (
        'environment = "paper"\n[paths]\nruntime_dir = "rt"\nstop_file = "STOP.TXT"\n'
        '[policy]\nrestart_backoff = ["300ms"]\nverify_window = "3s"\n'
        '[daemon]\nheartbeat_interval = "200ms"\n'
    )
    return head + "".join(_service(n) for n in names)


def _pids(rt: Path) -> dict[str, int]:
    try:
        doc = orjson.loads((rt / "health_v2.json").read_bytes())
    except (OSError, orjson.JSONDecodeError):
        return {}
    return {n: c["pid"] for n, c in doc["components"].items() if c["pid"]}


def _pids_if(rt: Path, cond):  # type: ignore[no-untyped-def]
    pids = _pids(rt)
    return pids if cond(pids) else None


def test_reload_adds_a_service_keeps_the_others_and_refuses_a_bad_config(tmp_path: Path) -> None:
    cfg = tmp_path / "autoheal.toml"
    cfg.write_text(_config(tmp_path, ["alpha", "beta"]))
    rt = tmp_path / "rt"
    log = (tmp_path / "daemon.log").open("wb")
    daemon = subprocess.Popen(
        [sys.executable, "-m", "autoheal", "run", "--config", str(cfg)], stderr=log, stdout=log
    )
    try:
        before = wait_for(lambda: _pids_if(rt, lambda p: len(p) == 2), 20, "two services")
        cfg.write_text(_config(tmp_path, ["alpha", "beta", "gamma"]))
        after = wait_for(lambda: _pids_if(rt, lambda p: "gamma" in p), 20, "gamma started")
        assert after["alpha"] == before["alpha"]
        assert after["beta"] == before["beta"]
        # SIGHUP reloads too, and an invalid config is refused with an alert
        cfg.write_text(_config(tmp_path, ["alpha"]) + "\n[services.broken]\nargv = []\n")
        daemon.send_signal(signal.SIGHUP)
        alert = rt / "alerts" / "config_invalid.json"
        wait_for(alert.exists, 20, "config_invalid alert")
        assert "services.broken.argv" in orjson.loads(alert.read_bytes())["problem"]
        assert _pids(rt) == after
        assert daemon.poll() is None
        for pid in after.values():
            os.kill(pid, 0)  # still alive
    finally:
        daemon.send_signal(signal.SIGTERM)
        assert daemon.wait(timeout=30) == 0
        log.close()
    text = (tmp_path / "daemon.log").read_text()
    assert "config_reloaded added=['gamma']" in text
    assert "config_reload_refused" in text

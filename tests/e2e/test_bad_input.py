"""Bad files at daemon start: clear messages, nothing lost, and a failsafe survives."""

from __future__ import annotations

import signal
import subprocess
import sys
from pathlib import Path

import orjson
import pytest

from autoheal.drills.stacks.simple import wait_for

pytestmark = [pytest.mark.slow, pytest.mark.timeout(60)]

SLEEPER = "import time\nwhile True: time.sleep(1)"


def _config(tmp: Path) -> Path:
    argv = orjson.dumps([sys.executable, "-c", SLEEPER]).decode()
    cfg = tmp / "autoheal.toml"
    cfg.write_text(
        'environment = "paper"\n[paths]\nruntime_dir = "rt"\nstop_file = "STOP.TXT"\n'
        '[daemon]\nheartbeat_interval = "200ms"\n'
        f"[services.worker]\nargv = {argv}\n"
    )
    return cfg


def _health(rt: Path) -> dict:
    try:
        return orjson.loads((rt / "health_v2.json").read_bytes())
    except (OSError, orjson.JSONDecodeError):
        return {}


@pytest.mark.parametrize(
    "garbage",
    [b"{ truncated", b"\x00\xff\xfebinary\x00", b"[1, 2, 3]", b'{"components": "nope"}'],
    ids=["truncated", "binary", "not-object", "wrong-types"],
)
def test_corrupt_state_file_with_a_failsafe_on_disk(tmp_path: Path, garbage: bytes) -> None:
    cfg = _config(tmp_path)
    rt = tmp_path / "rt"
    rt.mkdir()
    (rt / "autoheal_state.json").write_bytes(garbage)
    # the failsafe of a previous run, still on disk: a restart must never clear it
    (rt / "global_flags.json").write_text(
        '{"failsafe_active": true, "mode": "SIGNAL_READ_ONLY", "reason": "earlier", '
        '"set_by": "autoheal"}'
    )
    (tmp_path / "STOP.TXT").write_text("earlier\n")
    log = tmp_path / "daemon.log"
    with log.open("wb") as fh:
        daemon = subprocess.Popen(
            [sys.executable, "-m", "autoheal", "run", "--config", str(cfg)], stdout=fh, stderr=fh
        )
    try:
        doc = wait_for(lambda: _health(rt) if _health(rt).get("daemon") else None, 20, "health")
        assert doc["failsafe"] is True
        assert doc["dor"] is False
        assert (tmp_path / "STOP.TXT").exists()
        flags = orjson.loads((rt / "global_flags.json").read_bytes())
        assert flags["failsafe_active"] is True
        assert daemon.poll() is None
    finally:
        daemon.send_signal(signal.SIGTERM)
        assert daemon.wait(timeout=30) == 0
    text = log.read_text()
    assert "Traceback" not in text
    if garbage != b'{"components": "nope"}':
        assert "state_file_unreadable" in text

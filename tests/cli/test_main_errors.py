"""An unusable runtime directory is one clear line and exit 1, never a traceback."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest


@pytest.mark.parametrize(
    "args", [["run"], ["restart", "svc"], ["failsafe", "enter", "--reason", "x"]]
)
def test_unusable_runtime_dir_is_one_line(tmp_path: Path, args: list[str]) -> None:
    blocker = tmp_path / "not-a-dir"
    blocker.write_text("a file where the runtime directory's parent should be")
    cfg = tmp_path / "autoheal.toml"
    cfg.write_text(
        f'environment = "paper"\n[paths]\nruntime_dir = "{blocker}/rt"\n'
        f'stop_file = "{tmp_path}/STOP.TXT"\n[services.svc]\nargv = ["sleep", "100"]\n'
    )
    result = subprocess.run(
        [sys.executable, "-m", "autoheal", *args, "--config", str(cfg)],
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert result.returncode == 1
    assert "Traceback" not in result.stderr + result.stdout
    assert "not-a-dir" in result.stderr
    assert len(result.stderr.strip().splitlines()) == 1

"""Temp files left by writers killed mid-write are cleaned at daemon start; nothing else is."""

from __future__ import annotations

import os
import time
from pathlib import Path

from autoheal.daemon.files import remove_stale_temp_files


def test_only_old_hidden_tmp_files_are_removed(tmp_path: Path) -> None:
    now = time.time()
    old_tmp = tmp_path / ".global_flags.json.k3j4.tmp"
    fresh_tmp = tmp_path / ".health_v2.json.a1b2.tmp"
    visible_tmp = tmp_path / "report.tmp"
    target = tmp_path / "global_flags.json"
    folder = tmp_path / ".dir.tmp"
    for path in (old_tmp, fresh_tmp, visible_tmp, target):
        path.write_text("x")
    folder.mkdir()
    for path in (old_tmp, visible_tmp, target, folder):
        os.utime(path, (now - 3600, now - 3600))
    assert remove_stale_temp_files(tmp_path, now_wall=now) == 1
    assert not old_tmp.exists()
    assert fresh_tmp.exists() and visible_tmp.exists() and target.exists() and folder.exists()


def test_missing_directory_is_not_an_error(tmp_path: Path) -> None:
    assert remove_stale_temp_files(tmp_path / "nope", now_wall=time.time()) == 0

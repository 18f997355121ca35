"""The guard's lock files: the runtime's file mode, never followed through a symlink."""

from __future__ import annotations

import os
import stat
from pathlib import Path

import pytest

from autoheal.guard._filelock import locked


def test_lock_file_is_not_open_to_other(tmp_path: Path) -> None:
    old = os.umask(0o022)  # a typical login umask: the mode must come from us, not it
    try:
        with locked(tmp_path / "risk_pnl.json"):
            pass
    finally:
        os.umask(old)
    mode = stat.S_IMODE((tmp_path / "risk_pnl.json.lock").stat().st_mode)
    assert mode & 0o007 == 0, oct(mode)


def test_lock_is_never_taken_through_a_symlink(tmp_path: Path) -> None:
    target = tmp_path / "elsewhere"
    target.write_text("not a lock")
    (tmp_path / "risk_pnl.json.lock").symlink_to(target)
    with pytest.raises(OSError), locked(tmp_path / "risk_pnl.json"):
        pass
    assert target.read_text() == "not a lock"

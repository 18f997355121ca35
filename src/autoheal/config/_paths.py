"""Checks of the configured paths against the machine, for ``check-config`` and ``run``.

A stop file that cannot be written is a kill switch that cannot be pulled: refused
before the daemon starts, naming ``paths.stop_file``, rather than found out during
the first failsafe (the daemon still copes with it failing later: it alerts and retries).
"""

from __future__ import annotations

import os
from pathlib import Path

__all__ = ["stop_file_problem"]


def stop_file_problem(stop_file: Path) -> str | None:
    """Why ``STOP.TXT`` could not be created or removed at ``stop_file``; None when it can."""
    folder = Path(stop_file).parent
    if not folder.exists():
        return f"paths.stop_file: its folder {folder} does not exist"
    if not folder.is_dir():
        return f"paths.stop_file: {folder} is not a folder"
    if not os.access(folder, os.W_OK | os.X_OK):
        return (
            f"paths.stop_file: its folder {folder} is not writable by this user "
            "(a read-only file system, or under systemd a folder missing from ReadWritePaths)"
        )
    return None

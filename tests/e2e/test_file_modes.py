"""Runtime files are owner/group-only (issue 9, defect 9), whatever umask started the daemon.

A real daemon, started under the permissive umask 022 that a shell usually has,
goes through a failsafe so that every file it owns exists, and none of them may be
readable (or writable, or searchable) by "other".
"""

from __future__ import annotations

import os
import stat
from pathlib import Path

import pytest

from autoheal.drills.stacks.simple import Runtime, wait_for

pytestmark = [pytest.mark.slow, pytest.mark.timeout(90)]


def test_runtime_files_are_not_world_readable(tmp_path: Path) -> None:
    with Runtime(tmp_path, ("feeder",)) as rt:
        old = os.umask(0o022)  # inherited by the daemon (and nothing else runs meanwhile)
        try:
            rt.start_daemon()
        finally:
            os.umask(old)
        result = rt.cli("failsafe", "enter", "--reason", "modes test")
        assert result.returncode == 0, result.stderr
        wait_for(rt.stop_file.exists, 10, "STOP.TXT")
        wait_for((rt.runtime_dir / "notifications.log").exists, 10, "notification")
        wait_for((rt.runtime_dir / "logs" / "feeder.log").exists, 10, "service log")
        # The daemon's heartbeat file appears one beat after start: wait for it
        # rather than race it (failed 2 of 10 on a busy machine).
        wait_for((rt.runtime_dir / "auto_heal.heartbeat.json").exists, 10, "daemon heartbeat")
        rd = rt.runtime_dir
        owned = [
            rd,
            rd / "autoheal_state.json",
            rd / "health_v2.json",
            rd / "global_flags.json",
            rd / "auto_heal.heartbeat.json",
            rd / "notifications.log",
            rd / "autoheal.lock",
            rd / "journal.sqlite3",
            rd / "feeder.pid",
            rd / "logs",
            rd / "logs" / "feeder.log",
            rt.stop_file,
        ]
        owned += list(rd.glob("journal.sqlite3-*"))
        open_to_others = {
            str(p.relative_to(tmp_path)): oct(stat.S_IMODE(p.stat().st_mode))
            for p in owned
            if p.stat().st_mode & 0o007
        }
        assert open_to_others == {}
        assert rt.stop_daemon() == 0

"""The journal's group mode holds on every open, not only for the daemon that created it.

Issue 9, defect 9: a journal created before ``[daemon] journal_group`` was set (or
by a CLI, or chmodded by hand) must get the group and ``0660`` when the daemon
opens it with a group, and so must its ``-wal`` and ``-shm`` files.
"""

from __future__ import annotations

import grp
import os
import stat
from pathlib import Path

import pytest

from autoheal.store.journal import JOURNAL_FILENAME, Journal


def _other_gid(path: Path) -> int:
    """A group this process may give ``path`` that is not its current group."""
    current = path.stat().st_gid
    mine = set(os.getgroups()) | {os.getegid()}
    candidates = [g.gr_gid for g in grp.getgrall()] if os.geteuid() == 0 else sorted(mine)
    for gid in candidates:
        if gid != current:
            return gid
    pytest.skip("no second group to chown the journal to")


def test_journal_group_mode_applied_on_every_open(tmp_path: Path) -> None:
    path = tmp_path / JOURNAL_FILENAME
    with Journal.open(tmp_path) as journal:  # created by someone without a group: 0600
        journal.record("boot")
    os.chmod(path, 0o644)  # and widened by hand since
    gid = _other_gid(path)
    with Journal.open(tmp_path, group=gid) as journal:
        journal.record("reopened")
        files = [path, *(p for p in tmp_path.glob(f"{JOURNAL_FILENAME}-*"))]
        assert len(files) >= 2  # WAL mode: -wal and -shm exist while it is open
        for f in files:
            st = f.stat()
            assert (f.name, stat.S_IMODE(st.st_mode), st.st_gid) == (f.name, 0o660, gid)


def test_journal_group_mode_fixes_leftover_wal_files(tmp_path: Path) -> None:
    path = tmp_path / JOURNAL_FILENAME
    with Journal.open(tmp_path):
        pass
    wal = tmp_path / f"{JOURNAL_FILENAME}-wal"
    wal.write_bytes(b"")  # a leftover -wal with the wrong mode
    os.chmod(wal, 0o600)
    gid = _other_gid(path)
    with Journal.open(tmp_path, group=gid):
        st = wal.stat()
        assert (stat.S_IMODE(st.st_mode), st.st_gid) == (0o660, gid)

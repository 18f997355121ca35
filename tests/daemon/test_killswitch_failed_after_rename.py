"""A flags write that fails after its rename leaves our document on disk: the kill
switch says which document it tried, so the core reads it back as ours (seed 95 of
the simulated disk, issue 20). Real files; the fault is the folder's fsync."""

from __future__ import annotations

import errno
from pathlib import Path

from autoheal.core.actions import WriteFlags
from autoheal.core.observations import SwitchWriteFailed
from autoheal.daemon.killswitch import FileLayer, KillSwitch
from autoheal.store.flags import Flags, read_flags, write_flags


class FsyncOfTheFolderFails(FileLayer):
    """The rename happens; the folder's fsync then fails (EIO), as on a dying disk."""

    def write_flags(self, flags: Flags) -> None:
        write_flags(self.runtime_dir, flags)
        raise OSError(errno.EIO, "Input/output error")


def test_a_failed_write_names_the_document_it_tried(tmp_path: Path) -> None:
    files = FsyncOfTheFolderFails(tmp_path, tmp_path / "STOP.TXT")
    switch = KillSwitch(files, wall=lambda: 1234.5)
    switch.read(startup=True)
    outcome = switch.write(WriteFlags(False, "NORMAL", "cleared", "alice"), just_read=True)
    assert isinstance(outcome, SwitchWriteFailed)
    assert (outcome.errno, outcome.op) == ("EIO", "write")
    on_disk = read_flags(tmp_path).flags
    assert on_disk is not None
    assert outcome.flags is not None
    assert (outcome.flags.failsafe_active, outcome.flags.set_by, outcome.flags.since) == (
        on_disk.failsafe_active,
        on_disk.set_by,
        on_disk.since,
    )
    # What the core compares: the document as read back equals the one tried.
    assert switch.read().disk.flags == outcome.flags

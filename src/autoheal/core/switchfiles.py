"""The kill-switch files as data: what is on disk, and what the daemon knows of it.

``STOP.TXT``, ``global_flags.json`` and the guard's ``risk_latch.json`` as read
(:class:`DiskView`, :class:`FlagsDoc`, :class:`LatchView`), and the daemon's
knowledge of them (:class:`SwitchState`: what it wrote successfully or saw, which
of its writes are failing), which is part of the core's
:class:`~autoheal.core.state.RuntimeState`. What these facts mean is
:mod:`autoheal.core.switch`'s business. Plain data; stdlib only.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field

__all__ = [
    "FILE_LABEL",
    "FLAGS",
    "LATCH",
    "STOP",
    "WRITE_FAILED_ALERT",
    "DiskView",
    "FlagsDoc",
    "LatchView",
    "SwitchState",
    "WriteFailure",
]

#: The kill-switch files, as keys of :attr:`SwitchState.failures` (the daemon never
#: writes the latch: it only removes it, on an operator's clear).
STOP = "stop_file"
FLAGS = "flags"
LATCH = "risk_latch"

WRITE_FAILED_ALERT = {
    STOP: "stop_file_write_failed",
    FLAGS: "flags_write_failed",
    LATCH: "risk_latch_remove_failed",
}
FILE_LABEL = {STOP: "STOP.TXT", FLAGS: "global_flags.json", LATCH: "risk_latch.json"}


@dataclass(frozen=True, slots=True)
class FlagsDoc:
    """``global_flags.json`` as written: None for every key the document does not name.

    A missing file and ``{}`` are the same document: one that says nothing.
    """

    failsafe_active: bool | None = None
    mode: str | None = None
    reason: str | None = None
    set_by: str | None = None
    since: float | None = None

    @property
    def complete(self) -> bool:
        return self.failsafe_active is not None and self.mode is not None


@dataclass(frozen=True, slots=True)
class LatchView:
    """``risk_latch.json`` as read: why it asks for REDUCE_ONLY, and which file it is.

    ``version`` tells one latch file from another (the shell's device, inode and
    mtime), so an operator's clear removes only the latch the daemon saw.
    """

    reason: str
    version: tuple[int, ...] = ()


@dataclass(frozen=True, slots=True)
class DiskView:
    """The kill-switch files as read now.

    ``flags_invalid`` is the reason a flags file that exists does not parse; then
    ``flags`` is meaningless (the guard halts on such a file all by itself).
    ``latch`` is the guard's ``risk_latch.json``, None when there is none.
    """

    stop_present: bool
    flags: FlagsDoc = field(default_factory=FlagsDoc)
    flags_invalid: str = ""
    latch: LatchView | None = None
    #: Who ``STOP.TXT``'s first line says set it (``STOP set_by=NAME``, the daemon's own
    #: format: :func:`autoheal.core.switch.stop_set_by`); None when it says nothing we
    #: can read (by hand).
    stop_set_by: str | None = None


@dataclass(frozen=True, slots=True)
class WriteFailure:
    """A kill-switch write that is failing: since when, how often, when to try again."""

    op: str  # "write" | "remove"
    errno: str  # "EROFS", "ENOSPC", "ENOTDIR", ...
    detail: str
    since: float
    attempts: int
    retry_at: float
    attempted: tuple[FlagsDoc, ...] = ()
    """For the flags: the documents these failed writes tried to put there. A write
    can fail after its rename (at the folder's fsync): one of them may be on disk."""

    def message(self, key: str) -> str:
        """What the alert, the notice, health_v2.json and ``autoheal status`` say of it."""
        verb = "written" if self.op == "write" else "removed"
        return f"{FILE_LABEL[key]} could not be {verb}: {self.errno} {self.detail}".rstrip()


@dataclass(frozen=True, slots=True)
class SwitchState:
    """What the daemon knows of the files. ``None``: not known yet (a daemon that just started).

    ``stop_on_disk`` is True only for a ``STOP.TXT`` the daemon wrote successfully or
    saw; ``flags_on_disk`` is the document it last wrote successfully or saw;
    ``latch_on_disk`` the risk latch it last saw (None: none seen).
    """

    stop_on_disk: bool | None = None
    flags_on_disk: FlagsDoc | None = None
    failures: Mapping[str, WriteFailure] = field(default_factory=dict)
    flags_invalid: str = ""
    latch_on_disk: LatchView | None = None

"""The kill switch on disk: ``global_flags.json``, ``STOP.TXT`` and ``risk_latch.json``.

``global_flags.json`` is read by every trading process; an operator may write
just ``{"failsafe_active": false}`` and the missing keys take their defaults.
A flags file that is not a JSON object, or whose known keys have the wrong type
or an unknown mode, is *invalid*: :func:`read_flags` returns a reason instead of
flags, and the guard treats that as halted (fail closed). Only the daemon and an
operator write it.

``STOP.TXT`` halts new orders by its mere presence; its first line says when and
why, for the human who finds it.

``risk_latch.json`` is the guard's daily-loss latch: its presence asks for
``REDUCE_ONLY``. The guard only ever creates it (never replacing one that is
there); the daemon removes the one it saw on an operator's clear; an operator may
remove it by hand. It never touches ``global_flags.json``, so it cannot loosen it.

Nothing here opens a file that is not a regular file (a FIFO would block).
"""

from __future__ import annotations

import contextlib
import os
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from autoheal.store import _json
from autoheal.store import layout as runtime_files
from autoheal.store.atomic import (
    NOT_REGULAR,
    create_bytes_atomic,
    fsync_dir,
    read_json,
    read_regular,
    write_bytes_atomic,
    write_json_atomic,
)

__all__ = [
    "FLAGS_FILENAME",
    "MODES",
    "RISK_LATCH_FILENAME",
    "RISK_SET_BY",
    "Flags",
    "FlagsRead",
    "RiskLatchRead",
    "read_flags",
    "read_risk_latch",
    "read_stop_line",
    "remove_risk_latch",
    "remove_stop_file",
    "risk_latch_present",
    "stop_file_present",
    "write_flags",
    "write_risk_latch",
    "write_stop_file",
]

FLAGS_FILENAME = runtime_files.FLAGS
RISK_LATCH_FILENAME = runtime_files.RISK_LATCH
#: ``set_by`` of the guard's daily-loss latch: the core's ``autoheal.core.switch.RISK``,
#: named here too so that the guard needs no part of the core (tests hold them equal).
RISK_SET_BY = "risk"
#: How much of STOP.TXT or the latch is read: the first line says everything, and a
#: huge file must not flood a terminal.
_HEAD_BYTES = 4096
#: Trading modes, most severe first.
MODES = ("SIGNAL_READ_ONLY", "REDUCE_ONLY", "DEGRADED", "NORMAL")


@dataclass(frozen=True, slots=True)
class Flags:
    """The content of ``global_flags.json`` with defaults for what an operator left out."""

    failsafe_active: bool = False
    mode: str = "NORMAL"
    reason: str = ""
    since: float | None = None
    set_by: str = ""

    def to_doc(self) -> dict[str, Any]:
        return {
            "failsafe_active": self.failsafe_active,
            "mode": self.mode,
            "reason": self.reason,
            "since": self.since,
            "set_by": self.set_by,
        }


@dataclass(frozen=True, slots=True)
class FlagsRead:
    """``flags`` when the file is missing (defaults) or valid; else ``reason`` says why not.

    ``named`` is the document with only the keys it actually names: what an operator's
    partial edit says, as opposed to the defaults that fill ``flags``. A missing file
    is the defaults to the daemon (which writes it), but to the guard it means the kill
    switch is unknown (:func:`autoheal.guard.kill_switch.flags_problem`).
    """

    flags: Flags | None
    reason: str | None = None
    detail: str = ""
    missing: bool = False
    named: dict[str, Any] = field(default_factory=dict)
    #: A file is there but is not a regular file (never opened): to the guard, like a
    #: missing one, the kill switch is unknown.
    not_regular: bool = False
    #: The raw ``scoped_halts`` value (None: the document has no such key); what it
    #: means is :func:`autoheal.guard.scopes.parse_halts`'s business.
    scoped_halts: Any = None


def parse_flags(doc: dict[str, Any]) -> FlagsRead:
    """Validate a flags document; unknown keys are kept out, wrong types make it invalid."""
    failsafe = doc.get("failsafe_active", False)
    if not isinstance(failsafe, bool):
        return FlagsRead(None, "flags_invalid", "failsafe_active is not a boolean")
    default_mode = "SIGNAL_READ_ONLY" if failsafe else "NORMAL"
    mode = doc.get("mode", default_mode)
    if mode not in MODES:
        return FlagsRead(None, "flags_invalid", f"mode {mode!r} is not one of {', '.join(MODES)}")
    reason = doc.get("reason", "")
    set_by = doc.get("set_by", "")
    since = doc.get("since")
    if not isinstance(reason, str) or not isinstance(set_by, str):
        return FlagsRead(None, "flags_invalid", "reason and set_by must be strings")
    if since is not None and (isinstance(since, bool) or not isinstance(since, int | float)):
        return FlagsRead(None, "flags_invalid", "since must be a number of unix seconds")
    keys = ("failsafe_active", "mode", "reason", "set_by")
    named: dict[str, Any] = {k: doc[k] for k in keys if k in doc}
    if since is not None:
        named["since"] = float(since)
    return FlagsRead(
        Flags(failsafe, mode, reason, None if since is None else float(since), set_by),
        named=named,
        scoped_halts=doc.get("scoped_halts"),
    )


def read_flags(runtime_dir: Path) -> FlagsRead:
    """Read ``global_flags.json``; a missing file means default flags (``missing=True``)."""
    result = read_json(Path(runtime_dir) / FLAGS_FILENAME)
    if result.reason == "missing":
        return FlagsRead(Flags(), missing=True)
    if result.reason == NOT_REGULAR:
        return FlagsRead(None, "flags_invalid", result.detail, not_regular=True)
    if result.doc is None:
        return FlagsRead(None, "flags_invalid", f"{result.reason}: {result.detail}".rstrip(": "))
    return parse_flags(result.doc)


def write_flags(runtime_dir: Path, flags: Flags) -> None:
    """Write ``global_flags.json`` atomically and durably."""
    write_json_atomic(Path(runtime_dir) / FLAGS_FILENAME, flags.to_doc())


def stop_file_present(stop_file: Path) -> bool:
    return os.path.lexists(stop_file)


def write_stop_file(
    stop_file: Path, reason: str, *, set_by: str = "autoheal", now: float | None = None
) -> None:
    """Create ``STOP.TXT`` atomically; its first line says when and why."""
    stamp = time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(time.time() if now is None else now))
    text = (
        f"{stamp} STOP set_by={set_by} reason={reason}\n"
        "New orders are halted until an operator clears the failsafe.\n"
    )
    write_bytes_atomic(Path(stop_file), text.encode())


def read_stop_line(stop_file: Path) -> str:
    """The first line of ``STOP.TXT`` for a human; what went wrong if it cannot be read."""
    try:
        head = read_regular(Path(stop_file), _HEAD_BYTES)
    except FileNotFoundError:
        return ""
    except OSError as exc:  # NotRegularFileError included: a FIFO is never opened
        return f"(unreadable: {exc.strerror or exc})"
    return head.decode("utf-8", "replace").split("\n", 1)[0].strip()


def remove_stop_file(stop_file: Path) -> bool:
    """Remove ``STOP.TXT`` durably; returns whether it was there.

    Raises:
        OSError: it could not be removed (EROFS, ENOTDIR, EACCES): it may still halt.
    """
    stop_file = Path(stop_file)
    try:
        os.unlink(stop_file)
    except FileNotFoundError:
        return False
    with contextlib.suppress(OSError):
        fsync_dir(stop_file.parent)
    return True


# ------------------------------------------------------------------ the risk latch


@dataclass(frozen=True, slots=True)
class RiskLatchRead:
    """A latch that is there: its reason, and which file it is (compare-and-remove).

    ``version`` is (device, inode, mtime in ns) of the file as read: the guard only
    ever creates a latch, never rewrites one, so a new latch is a new version.
    """

    reason: str
    version: tuple[int, int, int]
    since: float | None = None


def risk_latch_present(runtime_dir: Path) -> bool:
    """Whether the latch asks for REDUCE_ONLY: anything at its name does (never opened)."""
    return os.path.lexists(Path(runtime_dir) / RISK_LATCH_FILENAME)


def read_risk_latch(runtime_dir: Path) -> RiskLatchRead | None:
    """The latch, or None when there is none. Whatever is there asks for REDUCE_ONLY:
    a latch that does not parse, or is not a regular file, still does (its reason
    says what is wrong with it)."""
    path = Path(runtime_dir) / RISK_LATCH_FILENAME
    try:
        st = os.lstat(path)
    except FileNotFoundError:
        return None
    except OSError as exc:
        return RiskLatchRead(f"risk latch unreadable: {exc.strerror or exc}", (0, 0, 0))
    version = (st.st_dev, st.st_ino, st.st_mtime_ns)
    result = read_json(path, max_bytes=_HEAD_BYTES)
    if result.doc is None:
        if result.reason == "missing":  # removed between the two looks
            return None
        detail = f"{result.reason}: {result.detail}".rstrip(": ")
        return RiskLatchRead(f"risk latch unreadable ({detail})", version)
    reason, since = result.doc.get("reason"), result.doc.get("since")
    if not isinstance(reason, str) or not reason:
        reason = "risk latch (no reason given)"
    if isinstance(since, bool) or not isinstance(since, int | float):
        since = None
    return RiskLatchRead(reason[:500], version, None if since is None else float(since))


def write_risk_latch(runtime_dir: Path, reason: str, *, since: float, set_by: str) -> bool:
    """Create the latch, atomically and durably, unless one is already there.

    Returns:
        True when written; False when a latch (or anything else) already has the name:
        it asks for REDUCE_ONLY already and is never replaced.

    Raises:
        OSError: the write failed (EROFS, ENOSPC, a runtime directory that is not there).
    """
    doc = {"mode": "REDUCE_ONLY", "reason": reason, "since": since, "set_by": set_by}
    data = _json.dumps_line(doc)
    return create_bytes_atomic(Path(runtime_dir) / RISK_LATCH_FILENAME, data)


def remove_risk_latch(runtime_dir: Path, version: tuple[int, int, int]) -> bool:
    """Remove the latch if it is still the one read as ``version`` (compare and remove).

    A latch created after it was read (a new one, after the seen one was removed)
    is left for the daemon to read: an operator's clear lifts only what was seen.

    Returns:
        True when it was removed or is gone; False when another latch stands there.

    Raises:
        OSError: it could not be removed (EROFS, EISDIR, EACCES): it still holds.
    """
    path = Path(runtime_dir) / RISK_LATCH_FILENAME
    try:
        st = os.lstat(path)
    except FileNotFoundError:
        return True
    if (st.st_dev, st.st_ino, st.st_mtime_ns) != version:
        return False
    try:
        os.unlink(path)
    except FileNotFoundError:
        return True
    with contextlib.suppress(OSError):
        fsync_dir(path.parent)
    return True

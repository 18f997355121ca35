"""Scoped halts on disk: the daemon's record, and their copy in ``global_flags.json``.

The record ``scoped_halts.json`` (``{"scoped_halts": {scope: {reason, since, set_by}}}``)
is written only by an operator's ``failsafe enter|clear --scope`` (run by the daemon,
or by the CLI when no daemon runs). After each change the halts are copied under
the key ``scoped_halts`` of an existing, valid ``global_flags.json``, and every flags
write of the daemon carries them (:func:`flags_doc_with_halts`). The guard reads
both and takes their union (:func:`autoheal.guard.scopes.merge_views`), so a flags
document without the key (an operator's editor, the fleet) clears nothing: only an
operator's clear, which removes the scope from the record and from the flags, does.

What a value means is :mod:`autoheal.guard.scopes`'s business; this only reads and
writes. A record that is there but unreadable is never overwritten: a change is
refused (``scoped_halts_unreadable``) and the guard halts every order meanwhile.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from autoheal.guard.scopes import SCOPED_HALTS_KEY, Halt, HaltsView, merge_views, parse_halts
from autoheal.store import layout
from autoheal.store.atomic import read_json, write_json_atomic

__all__ = [
    "RECORD_FILENAME",
    "HaltsReader",
    "RecordUnreadableError",
    "clear_halt",
    "flags_doc_with_halts",
    "read_record",
    "read_view",
    "set_halt",
    "sync_flags",
]

RECORD_FILENAME = layout.SCOPED_HALTS
UNREADABLE = "scoped_halts_unreadable"


class RecordUnreadableError(OSError):
    """The record is there but cannot be read: no change is made over it."""

    reason = UNREADABLE


@dataclass(frozen=True, slots=True)
class RecordRead:
    """The record's raw ``scoped_halts`` value (None: no record, or no key), or why not."""

    value: Any = None
    problem: str = ""


def read_record(runtime_dir: Path) -> RecordRead:
    """The record as read; a missing one is no halts, anything else unreadable a problem."""
    result = read_json(Path(runtime_dir) / RECORD_FILENAME)
    if result.reason == "missing":
        return RecordRead()
    if result.doc is None:
        return RecordRead(problem=f"{result.reason}: {result.detail}".rstrip(": "))
    return RecordRead(result.doc.get(SCOPED_HALTS_KEY, {}))


def read_view(runtime_dir: Path) -> HaltsView:
    """What the record means (garbage when it is unreadable: every order halted)."""
    read = read_record(runtime_dir)
    if read.problem:
        return HaltsView(garbage=f"{RECORD_FILENAME} {read.problem}")
    return parse_halts(read.value)


def _writable(runtime_dir: Path) -> dict[str, Any]:
    read = read_record(runtime_dir)
    if read.problem:
        raise RecordUnreadableError(
            f"{RECORD_FILENAME} is unreadable ({read.problem}); every order is halted "
            "until it is repaired or removed by hand"
        )
    view = parse_halts(read.value)
    if view.garbage:
        raise RecordUnreadableError(f"{RECORD_FILENAME}: {view.garbage}")
    return {name: halt.to_doc() for name, halt in view.by_name().items()}


def set_halt(runtime_dir: Path, scope: str, halt: Halt, *, take_over: str = "") -> bool:
    """Record a halt of ``scope`` (a canonical scope string); False when it was there
    already (kept as first set: its ``since`` and ``set_by`` stay).

    ``take_over``: a halt of the scope set by this ``set_by`` (``fleet``) is taken over:
    it keeps its ``since`` and becomes ``halt``'s (so the fleet's clear leaves it).
    """
    halts = _writable(runtime_dir)
    if scope in halts:
        old = halts[scope]
        if not take_over or old.get("set_by") != take_over or halt.set_by == take_over:
            return False
        halt = Halt(halt.reason, old.get("since"), halt.set_by)
    halts[scope] = halt.to_doc()
    write_json_atomic(Path(runtime_dir) / RECORD_FILENAME, {SCOPED_HALTS_KEY: halts})
    return True


def clear_halt(runtime_dir: Path, scope: str) -> bool:
    """Remove the halt of ``scope`` from the record; False when there was none."""
    halts = _writable(runtime_dir)
    if halts.pop(scope, None) is None:
        return False
    write_json_atomic(Path(runtime_dir) / RECORD_FILENAME, {SCOPED_HALTS_KEY: halts})
    return True


def flags_doc_with_halts(runtime_dir: Path, doc: dict[str, Any]) -> dict[str, Any]:
    """``doc`` (a flags document about to be written) with the record's halts under the key.

    No record, or an empty one: ``doc`` unchanged. An unreadable record is copied as a
    value the guard reads as garbage, so the flags halt every order too.
    """
    read = read_record(runtime_dir)
    if read.problem:
        return {**doc, SCOPED_HALTS_KEY: f"unreadable: {RECORD_FILENAME} {read.problem}"}
    if not read.value:
        return doc
    return {**doc, SCOPED_HALTS_KEY: read.value}


def sync_flags(runtime_dir: Path) -> bool:
    """Copy the record's halts into an existing, valid ``global_flags.json``.

    A missing or invalid flags file is left alone (writing one would make a kill
    switch that is not there appear, or hide an invalid one); the guard still reads
    the record. Returns whether the flags were written.
    """
    path = Path(runtime_dir) / layout.FLAGS
    result = read_json(path)
    if result.doc is None:
        return False
    doc = {k: v for k, v in result.doc.items() if k != SCOPED_HALTS_KEY}
    doc = flags_doc_with_halts(runtime_dir, doc)
    if doc == result.doc:
        return False
    write_json_atomic(path, doc)
    return True


def _sig(path: Path) -> tuple[int, int, int, int] | None:
    try:
        st = os.stat(path)
    except OSError:
        return None
    return (st.st_ino, st.st_mtime_ns, st.st_ctime_ns, st.st_size)


class HaltsReader:
    """The scoped halts as the guard sees them (the flags' key and the record, their
    union), re-read only when one of the two files changed (``stat``), for the health
    document that the daemon builds at each beat and scrape."""

    def __init__(self, runtime_dir: Path) -> None:
        self._record = Path(runtime_dir) / RECORD_FILENAME
        self._flags = Path(runtime_dir) / layout.FLAGS
        self._sigs: object = object()
        self._view = HaltsView()

    def view(self) -> HaltsView:
        sigs = (_sig(self._record), _sig(self._flags))
        if sigs != self._sigs:
            self._sigs = sigs
            flags = read_json(self._flags)
            value = None if flags.doc is None else flags.doc.get(SCOPED_HALTS_KEY)
            self._view = merge_views(parse_halts(value), read_view(self._record.parent))
        return self._view

    def doc(self) -> dict[str, Any]:
        """For the health document: ``{"halts": {scope: entry}, "error": str | None}``."""
        view = self.view()
        return {
            "halts": {name: h.to_doc() for name, h in view.by_name().items()},
            "error": view.garbage or None,
        }

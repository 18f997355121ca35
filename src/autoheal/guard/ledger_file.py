"""The order ledger's file, ``runtime/order_sigs.json``: its records and what a read means.

A record's status is ``pending`` (with a reason; ``in_flight`` while its sender has not
said how the placement went) or ``placed``; a legacy ``recorded`` reads as ``pending``.
:func:`parse_ledger` decides what a read of the file means, purely: a missing file is an
empty ledger, and anything else that is not a valid ledger is a problem, never an empty
ledger (:class:`~autoheal.guard.idempotency.OrderLedger` then fails closed).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from autoheal.store import layout as runtime_files
from autoheal.store.atomic import ReadResult

__all__ = ["LEDGER_UNREADABLE", "ORDER_SIGS_RELPATH", "LedgerView", "parse_ledger"]

ORDER_SIGS_RELPATH = Path(runtime_files.ORDER_LEDGER)
PLACED, PENDING = "placed", "pending"
#: Written by versions before the pending mark; an unsettled record is an unknown outcome.
LEGACY_RECORDED = "recorded"
#: The reason of a pending record whose sender has not said how the placement went.
IN_FLIGHT = "in_flight"
LEDGER_UNREADABLE = "ledger_unreadable"


@dataclass(frozen=True, slots=True)
class LedgerView:
    """A ledger file as read: its records, or why it cannot be used.

    ``problem`` is ``None`` only for a valid ledger (or a missing file: empty); then
    ``sigs`` holds every record. ``blocked`` tells a ledger already kept aside and
    blocked (waiting for repair) from a freshly found unreadable file.
    """

    sigs: dict[str, dict[str, Any]] = field(default_factory=dict)
    problem: str | None = None
    blocked: bool = False


def _entry_problem(entry: Any) -> str | None:
    if not isinstance(entry, dict):
        return "a record is not an object"
    status = entry.get("status")
    if status not in (PLACED, PENDING, LEGACY_RECORDED):
        return f"a record has status {status!r}"
    ts = entry.get("ts")
    if status == PLACED and (isinstance(ts, bool) or not isinstance(ts, int | float)):
        return "a placed record has no timestamp"
    return None


def parse_ledger(read: ReadResult) -> LedgerView:
    """Decide what a read of ``order_sigs.json`` means; pure, never raises.

    A missing file is an empty ledger. Anything else that is not a valid ledger is a
    problem (never an empty ledger): an unreadable file, a document without a ``sigs``
    object, a record that is not an object or has an unknown status, or the block left
    by an earlier unreadable file. A legacy ``recorded`` record reads as ``pending``.
    """
    if read.doc is None:
        if read.reason == "missing":
            return LedgerView()
        return LedgerView(problem=f"{read.reason}: {read.detail}" if read.detail else read.reason)
    blocked = read.doc.get("blocked")
    if blocked is not None and blocked is not False:
        since = blocked.get("since_utc") if isinstance(blocked, dict) else None
        return LedgerView(problem=f"blocked since {since or '?'}, waiting for repair", blocked=True)
    sigs = read.doc.get("sigs")
    if not isinstance(sigs, dict):
        return LedgerView(problem="no sigs object")
    out: dict[str, dict[str, Any]] = {}
    for sig, entry in sigs.items():
        problem = _entry_problem(entry)
        if problem is not None:
            return LedgerView(problem=problem)
        if entry["status"] == LEGACY_RECORDED:
            out[str(sig)] = {**entry, "status": PENDING, "reason": entry.get("reason", IN_FLIGHT)}
        else:
            out[str(sig)] = entry
    return LedgerView(out)

"""The order ledger's file, ``runtime/order_sigs.json``: what a read means, and failing closed.

A record's status is ``pending`` (with a reason; ``in_flight`` while its sender has not
said how the placement went) or ``placed``; a legacy ``recorded`` reads as ``pending``.
:func:`parse_ledger` decides what a read of the file means, purely: a missing file is an
empty ledger, and anything else that is not a valid ledger is a problem, never an empty
ledger. :class:`LedgerFile` reads and writes it under its lock for
:class:`~autoheal.guard.idempotency.OrderLedger`, which decides what the records mean
for an order.

An unreadable ledger fails closed. A file that is not a valid ledger (torn, binary,
wrongly shaped, a record with an unknown status) is never read as an empty one: it
is kept aside as ``order_sigs.json.corrupt-<UTC stamp>`` (hard-linked, else copied;
never deleted), replaced by a *blocked* ledger, an alert ``ledger_unreadable`` is
written and one error logged. While blocked, every new order is refused with
``ledger_unreadable`` (:class:`~autoheal.guard.errors.LedgerUnreadableError`), in
every process, across restarts and however much time passes. *Repair* is an
operator's decision, after checking the kept-aside file's orders with the exchange:
:meth:`OrderLedger.repair <autoheal.guard.idempotency.OrderLedger.repair>` (starts an
empty ledger and clears the alert), or removing ``runtime/order_sigs.json`` by hand (a
missing ledger is an empty one; the alert file is then the operator's to remove).
"""

from __future__ import annotations

import logging
import os
import shutil
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from autoheal.guard._filelock import locked
from autoheal.guard.errors import LedgerUnreadableError
from autoheal.store import layout as runtime_files
from autoheal.store.alerts import alert_path, clear_alert, write_alert
from autoheal.store.atomic import ReadResult, read_json, write_json_atomic

__all__ = [
    "LEDGER_UNREADABLE",
    "ORDER_SIGS_RELPATH",
    "LedgerFile",
    "LedgerView",
    "parse_ledger",
]

#: The ledger's log lines keep the name operators filter on.
log = logging.getLogger("autoheal.guard.idempotency")

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


class LedgerFile:
    """``order_sigs.json`` under its ``flock``: read, written back, and failing closed.

    Args:
        runtime_dir: the runtime directory; the file is ``runtime/order_sigs.json`` inside it.
    """

    def __init__(self, runtime_dir: Path) -> None:
        self.runtime_dir = runtime_dir
        self.path = runtime_dir / ORDER_SIGS_RELPATH
        self._logged_unreadable = False

    @contextmanager
    def locked_sigs(
        self, live: Callable[[dict[str, dict[str, Any]]], dict[str, dict[str, Any]]]
    ) -> Iterator[dict[str, dict[str, Any]]]:
        """The records ``live`` keeps, under the lock; written back (pruned) if the body
        changed them.

        Raises:
            LedgerUnreadableError: the ledger is unreadable (kept aside and blocked now).
        """
        self.path.parent.mkdir(parents=True, exist_ok=True)
        with locked(self.path):
            view = parse_ledger(read_json(self.path))
            if view.problem is not None:
                raise self._refuse(view)
            sigs = {k: dict(v) for k, v in live(view.sigs).items()}
            yield sigs
            if sigs != view.sigs:
                write_json_atomic(self.path, {"schema": 1, "clock": "monotonic", "sigs": sigs})

    def repair(self) -> bool:
        """Unblock an unreadable ledger: start an empty one and clear the alert.

        An operator's action, after the orders of the kept-aside file were checked
        with the exchange (their outcomes are forgotten here). A still unreadable
        file is kept aside first.

        Returns:
            Whether there was anything to repair.
        """
        self.path.parent.mkdir(parents=True, exist_ok=True)
        with locked(self.path):
            view = parse_ledger(read_json(self.path))
            if view.problem is None:
                return False
            if not view.blocked:
                self._keep_aside(view.problem)
            write_json_atomic(self.path, {"schema": 1, "clock": "monotonic", "sigs": {}})
        clear_alert(self.runtime_dir, LEDGER_UNREADABLE)
        self._logged_unreadable = False
        log.warning("[idempotency] %s repaired: an empty ledger, new orders allowed", self.path)
        return True

    def _keep_aside(self, detail: str) -> str | None:
        """Move the unreadable file out of the way (never deleting it), block the ledger,
        raise the alert. Returns where the file went (``None`` if it could not be moved:
        then it stays in place, which refuses orders just the same)."""
        stamp = datetime.now(UTC).strftime("%Y%m%dT%H%M%S.%fZ")
        aside = self.path.with_name(f"{self.path.name}.corrupt-{stamp}")
        kept: str | None = None
        try:
            try:
                os.link(self.path, aside)  # atomic; the bytes survive under the new name
            except OSError:
                shutil.copy2(self.path, aside)
            kept = str(aside)
            blocked = {
                "reason": LEDGER_UNREADABLE,
                "detail": detail,
                "kept_aside": kept,
                "since_utc": stamp,
            }
            write_json_atomic(
                self.path, {"schema": 1, "clock": "monotonic", "blocked": blocked, "sigs": {}}
            )
        except OSError as exc:
            log.error("[idempotency] could not keep %s aside: %s", self.path, exc)
        write_alert(
            self.runtime_dir,
            LEDGER_UNREADABLE,
            ts=time.time(),
            file=kept or str(self.path),
            detail=detail,
        )
        return kept

    def _refuse(self, view: LedgerView) -> LedgerUnreadableError:
        detail = view.problem or "unreadable"
        kept = None if view.blocked else self._keep_aside(detail)
        if not self._logged_unreadable:
            self._logged_unreadable = True
            if view.blocked and not alert_path(self.runtime_dir, LEDGER_UNREADABLE).exists():
                write_alert(
                    self.runtime_dir,
                    LEDGER_UNREADABLE,
                    ts=time.time(),
                    file=str(self.path),
                    detail=detail,
                )
            log.error(
                "[idempotency] %s: order ledger %s %s%s; every new order refused until "
                "repaired (OrderLedger.repair() after checking orders with the exchange)",
                LEDGER_UNREADABLE,
                self.path,
                detail,
                f", kept aside as {kept}" if kept else "",
            )
        return LedgerUnreadableError(str(self.path), detail=detail, kept_aside=kept)

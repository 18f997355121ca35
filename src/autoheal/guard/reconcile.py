"""Reconciliation: the guard's order ledger held against the venue's open orders (RTS 6 Art. 17(3)).

A pass reads the ledger's live records and the venue's open orders and sorts every
difference (:func:`diff`, pure):

``order_unknown_at_venue``
    an order open at the venue whose client order id no ledger record carries: placed
    behind the guard's back (by hand, by another program, by a bug). It is reported
    with its id, symbol, side and quantity, and **never adopted** into the ledger (it
    would then pass as the guard's own) and never cancelled here: an operator decides.
``order_missing_at_venue``
    a record the ledger holds as placed and resting (its kept result says ``open``)
    that the venue does not list, and does not know at all when asked by its client
    order id (an order it knows was filled or cancelled since, or placed after the
    list was read).

An order the ledger knew when a pass matched it stays matched while it rests at the
venue, even after its record's TTL (``matched`` in ``reconciliation.json``, keyed by
the venue's order id and checked against its client order id): the ledger forgets a
placed record after two minutes, a resting order lives longer. Only a ledger match
ever enters that set, so an unknown order stays unknown pass after pass.

A pass that cannot be done (the venue's open orders unreadable or garbage, the ledger
unreadable, a lookup failed) is ``unknown``: ``ok`` false, loud, never ``ok``.
:class:`Reconciler` runs a pass on its period and at once after an unknown outcome
(:meth:`Reconciler.request`), writes ``<runtime_dir>/reconciliation.json`` and raises
``alerts/order_reconciliation.json`` while the last pass was not ok (cleared by the
first ok pass).
"""

from __future__ import annotations

import logging
import time
from collections.abc import Awaitable, Callable, Iterable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from autoheal.guard.errors import LedgerUnreadableError
from autoheal.guard.idempotency import OrderLedger
from autoheal.guard.ledger_file import PLACED
from autoheal.store import layout as runtime_files
from autoheal.store.alerts import alert_path, clear_alert, write_alert
from autoheal.store.atomic import read_json, write_json_atomic

__all__ = [
    "ALERT_NAME",
    "ORDER_MISSING_AT_VENUE",
    "ORDER_UNKNOWN_AT_VENUE",
    "RECONCILE_UNKNOWN",
    "RECONCILIATION_FILENAME",
    "ClientIdOf",
    "Diff",
    "Reconciler",
    "VenueOrder",
    "diff",
    "parse_venue_orders",
    "resting_open",
]

log = logging.getLogger("autoheal.guard.reconcile")

ORDER_UNKNOWN_AT_VENUE = "order_unknown_at_venue"
ORDER_MISSING_AT_VENUE = "order_missing_at_venue"
#: The pass could not be done (the venue or the ledger unreadable): not ok, not a pass.
RECONCILE_UNKNOWN = "reconcile_unknown"
ALERT_NAME = "order_reconciliation"
RECONCILIATION_FILENAME = runtime_files.RECONCILIATION


@dataclass(frozen=True, slots=True)
class VenueOrder:
    """One open order as the venue lists it (demo and ccxt shapes both read)."""

    order_id: str
    client_id: str | None
    symbol: str
    side: str
    qty: str

    def doc(self) -> dict[str, Any]:
        return {
            "order_id": self.order_id,
            "client_order_id": self.client_id,
            "symbol": self.symbol,
            "side": self.side,
            "qty": self.qty,
        }


@dataclass(frozen=True, slots=True)
class Diff:
    """What one pass found: venue order id -> client id matched, and the differences."""

    matched: dict[str, str] = field(default_factory=dict)
    unknown: tuple[VenueOrder, ...] = ()
    missing: tuple[dict[str, Any], ...] = ()

    @property
    def ok(self) -> bool:
        return not self.unknown and not self.missing


def parse_venue_orders(docs: Any) -> tuple[VenueOrder, ...]:
    """The venue's open orders, read strictly; pure.

    Raises:
        ValueError: not a list of order documents each with an id (garbage from the
            venue is never read as "no orders").
    """
    if not isinstance(docs, list | tuple):
        raise ValueError(f"open orders are not a list: {type(docs).__name__}")
    out: dict[str, VenueOrder] = {}
    for doc in docs:
        if not isinstance(doc, Mapping):
            raise ValueError(f"an open order is not an object: {type(doc).__name__}")
        order_id = doc.get("id", doc.get("order_id"))
        if order_id is None or order_id == "":
            raise ValueError("an open order has no id")
        cid = doc.get("clientOrderId", doc.get("client_order_id"))
        qty = doc.get("amount", doc.get("qty"))
        out[str(order_id)] = VenueOrder(
            str(order_id),
            None if cid is None or cid == "" else str(cid),
            str(doc.get("symbol", "")),
            str(doc.get("side", "")),
            "" if qty is None else str(qty),
        )
    return tuple(out.values())


#: A ledger record's client order id on the wire, from its name and the record.
ClientIdOf = Callable[[str, Mapping[str, Any]], str]


def _name_itself(name: str, _entry: Mapping[str, Any]) -> str:
    return name


def resting_open(entry: Mapping[str, Any]) -> bool:
    """Whether the ledger holds this record as placed and still resting at the venue."""
    if entry.get("status") != PLACED:
        return False
    result = entry.get("result")
    return isinstance(result, Mapping) and str(result.get("status", "")).lower() == "open"


def diff(
    ledger: Mapping[str, Mapping[str, Any]],
    venue: Iterable[VenueOrder],
    *,
    client_id_of: ClientIdOf | None = None,
    matched_before: Mapping[str, str] | None = None,
) -> Diff:
    """Sort the venue's open orders against the ledger; pure, nothing adopted.

    Args:
        ledger: the ledger's live records by name (signature or key).
        venue: the venue's open orders.
        client_id_of: a record's client order id on the wire, from its name and the
            record (a strategy's tag, say); default: the name itself.
        matched_before: venue order id -> client id the previous pass matched.

    Returns:
        Every venue order either matched (its client id is a ledger record's, or the
        previous pass matched this very order) or unknown; and the ledger's resting
        records the venue does not list (candidates for ``missing``).
    """
    wire_id = client_id_of if client_id_of is not None else _name_itself
    wire = {wire_id(name, entry): name for name, entry in ledger.items()}
    before = dict(matched_before or {})
    matched: dict[str, str] = {}
    unknown: list[VenueOrder] = []
    listed: set[str] = set()
    for order in venue:
        cid = order.client_id
        if cid is not None:
            listed.add(cid)
        if cid is not None and (cid in wire or before.get(order.order_id) == cid):
            matched[order.order_id] = cid
        else:
            unknown.append(order)
    missing = tuple(
        {
            "name": name,
            "client_order_id": cid,
            "symbol": str(ledger[name].get("symbol", "")),
            "side": str(ledger[name].get("side", "")),
            "qty": str(ledger[name].get("qty", "")),
        }
        for cid, name in sorted(wire.items())
        if cid not in listed and resting_open(ledger[name])
    )
    return Diff(matched, tuple(unknown), missing)


FetchOpen = Callable[[], Awaitable[Any]]
Lookup = Callable[[str], Awaitable[Mapping[str, Any] | None]]


class Reconciler:
    """Runs a pass on a period and after every unknown outcome; writes the file and the alert.

    Args:
        runtime_dir: where ``reconciliation.json`` and ``alerts/`` live.
        fetch_open_orders: the venue's open orders (a list of order documents).
        ledger: the guard's order ledger.
        venue: the venue's name, for the file and the alert.
        client_id_of: a record's client order id on the wire (see :func:`diff`).
        lookup: the venue's order by client order id (``None``: not known), to tell a
            resting order that filled or was cancelled from one missing.
        period_s: seconds between passes.
        time_fn: monotonic seconds (the period); ``wall_fn``: the file's ``ts``.
    """

    def __init__(
        self,
        runtime_dir: Path,
        fetch_open_orders: FetchOpen,
        ledger: OrderLedger,
        *,
        venue: str,
        client_id_of: ClientIdOf | None = None,
        lookup: Lookup | None = None,
        period_s: float = 10.0,
        time_fn: Callable[[], float] = time.monotonic,
        wall_fn: Callable[[], float] = time.time,
    ) -> None:
        if not period_s > 0:
            raise ValueError(f"reconciliation period must be > 0 s, got {period_s!r}")
        self.runtime_dir = Path(runtime_dir)
        self.path = self.runtime_dir / RECONCILIATION_FILENAME
        self.fetch_open_orders = fetch_open_orders
        self.ledger = ledger
        self.venue = venue
        self.client_id_of = client_id_of
        self.lookup = lookup
        self.period_s = period_s
        self._time = time_fn
        self._wall = wall_fn
        self._next_at: float | None = None  # None: due now
        self._last_said: str | None = None
        self._stage = "venue open orders"

    def request(self) -> None:
        """Make the next pass due now (after an unknown outcome)."""
        self._next_at = None

    def due(self) -> bool:
        return self._next_at is None or self._time() >= self._next_at

    async def run(
        self, sleep_fn: Callable[[float], Awaitable[object]], tick_s: float = 0.05
    ) -> None:
        """Pass whenever due, forever (a task beside the trading loop)."""
        while True:
            if self.due():
                await self.run_once()
            await sleep_fn(min(tick_s, self.period_s))

    async def run_once(self) -> dict[str, Any]:
        """One pass: read both sides, sort, write the file and the alert. Never raises
        for the venue's or the ledger's failures: they make the pass ``unknown``."""
        self._next_at = self._time() + self.period_s
        try:
            doc = await self._pass()
        except LedgerUnreadableError as exc:
            doc = self._unknown(f"ledger unreadable: {exc.reason}")
        except Exception as exc:  # the venue's failure (or the disk's), whatever its class
            doc = self._unknown(f"{self._stage} unreadable: {type(exc).__name__}: {exc}"[:300])
        return self._publish(doc)

    async def _pass(self) -> dict[str, Any]:
        before = self._matched_before()
        self._stage = "venue open orders"
        venue = parse_venue_orders(await self.fetch_open_orders())
        self._stage = "ledger"
        records = self.ledger.records()  # after the venue: a record of an order placed
        # between the two reads is then known (never a false "unknown")
        found = diff(records, venue, client_id_of=self.client_id_of, matched_before=before)
        missing = []
        self._stage = "venue lookup"
        for item in found.missing:
            # Known to the venue after all: filled or cancelled since it rested, or placed
            # after the open orders were read. Only an order the venue does not know is
            # missing.
            if self.lookup is not None and await self.lookup(item["client_order_id"]) is not None:
                continue
            missing.append(item)
        ok = not found.unknown and not missing
        return {
            "ts": self._wall(),
            "venue": self.venue,
            "ok": ok,
            "status": "ok" if ok else "differences",
            "unknown_at_venue": [o.doc() for o in found.unknown],
            "missing_at_venue": missing,
            "matched": found.matched,
            "open_at_venue": len(venue),
            "period_s": self.period_s,
        }

    def _unknown(self, problem: str) -> dict[str, Any]:
        return {
            "ts": self._wall(),
            "venue": self.venue,
            "ok": False,
            "status": "unknown",
            "reason": RECONCILE_UNKNOWN,
            "problem": problem,
            "unknown_at_venue": [],
            "missing_at_venue": [],
            "matched": self._matched_before(),
            "period_s": self.period_s,
        }

    def _matched_before(self) -> dict[str, str]:
        doc = read_json(self.path).doc
        matched = doc.get("matched") if isinstance(doc, dict) else None
        if not isinstance(matched, dict):
            return {}
        return {str(k): str(v) for k, v in matched.items() if isinstance(v, str)}

    def _publish(self, doc: dict[str, Any]) -> dict[str, Any]:
        """The alert before the file when the pass is not ok, after it when ok: whoever
        reads differences in the file finds the alert standing."""
        if not doc["ok"]:
            self._raise(doc)
        try:
            write_json_atomic(self.path, doc)
        except OSError as exc:
            problem = f"{RECONCILIATION_FILENAME} unsaved: {exc}"
            doc = {**doc, "ok": False, "status": "unknown", "problem": problem}
            self._raise(doc)
        if doc["ok"]:
            clear_alert(self.runtime_dir, ALERT_NAME)
        self._say(doc)
        return doc

    def _raise(self, doc: dict[str, Any]) -> None:
        details = {k: doc[k] for k in doc if k not in ("ts", "matched")}
        reasons = [ORDER_UNKNOWN_AT_VENUE] if doc["unknown_at_venue"] else []
        reasons += [ORDER_MISSING_AT_VENUE] if doc["missing_at_venue"] else []
        reasons += [RECONCILE_UNKNOWN] if doc["status"] == "unknown" else []
        details["reasons"] = reasons
        details["since"] = self._alert_since(doc["ts"])
        write_alert(self.runtime_dir, ALERT_NAME, ts=doc["ts"], **details)

    def _alert_since(self, now: float) -> float:
        """When the standing alert was first raised (kept across passes), else ``now``."""
        old = read_json(alert_path(self.runtime_dir, ALERT_NAME)).doc
        since = old.get("since") if isinstance(old, dict) else None
        if isinstance(since, int | float) and not isinstance(since, bool):
            return float(since)
        return now

    def _say(self, doc: dict[str, Any]) -> None:
        """Log each change of the outcome once (every pass is in the file)."""
        said = repr(
            (doc["status"], doc.get("problem"), doc["unknown_at_venue"], doc["missing_at_venue"])
        )
        if said == self._last_said:
            return
        self._last_said = said
        if doc["ok"]:
            log.info(
                "[reconcile] %s ok: ledger and venue agree (%s open)",
                self.venue,
                doc.get("open_at_venue"),
            )
            return
        if doc["status"] == "unknown":
            log.error(
                "[reconcile] %s %s: %s (the ledger is NOT confirmed against the venue)",
                self.venue,
                RECONCILE_UNKNOWN,
                doc.get("problem"),
            )
        for o in doc["unknown_at_venue"]:
            log.error(
                "[reconcile] %s %s order_id=%s client_order_id=%s %s %s qty=%s: "
                "reported, not adopted, not cancelled",
                self.venue,
                ORDER_UNKNOWN_AT_VENUE,
                o["order_id"],
                o["client_order_id"],
                o["side"],
                o["symbol"],
                o["qty"],
            )
        for m in doc["missing_at_venue"]:
            log.error(
                "[reconcile] %s %s client_order_id=%s %s %s qty=%s: the ledger holds "
                "it resting, the venue does not",
                self.venue,
                ORDER_MISSING_AT_VENUE,
                m["client_order_id"],
                m["side"],
                m["symbol"],
                m["qty"],
            )

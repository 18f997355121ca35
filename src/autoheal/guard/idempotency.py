"""Order idempotency: one order per signal, across processes, and never a blind resend.

A signal's *signature* is a hash of its normalised symbol, side, quantity and price.
:meth:`OrderLedger.check_and_record` records it in ``<runtime_dir>/runtime/order_sigs.json``
under an exclusive ``flock``, so when several processes submit the same signal at
once exactly one of them gets ``is_dup=False``.

Statuses of a record::

    pending (in_flight) ──place ok──▶ placed   (a duplicate until the TTL ends)
       │  └──definite failure──▶ (removed: a later signal may try again)
       └──timeout / reset / 5xx / crash──▶ stays pending

The record is written, durably (fsync), as ``pending`` with reason ``in_flight``
*before* the order is sent. Until the sender settles it (:meth:`~OrderLedger.mark_placed`,
:meth:`~OrderLedger.release`), its outcome is unknown: the sender may have crashed
after the exchange accepted the order. A ``pending`` record never expires and blocks
every resend until a caller-supplied reconcile function (checking open orders, fills
or the balance) answers ``"placed"`` (keep blocking until the TTL) or ``"absent"``
(forget it). Only ``placed`` records expire, ``ttl_s`` (120 s) after the placement,
and are pruned on the next write.

Order identity (the signature, an idempotency key and its conflicts) is
:mod:`autoheal.guard.order_identity`. The file, what a read of it means and how an
unreadable one fails closed (kept aside, every new order refused with
``ledger_unreadable`` until :meth:`OrderLedger.repair`) is
:mod:`autoheal.guard.ledger_file`. This module re-exports their public names. An
executed order's result is kept with its record (:meth:`~OrderLedger.keep_result`)
and returned to a repeat call for as long as the record lives.
"""

from __future__ import annotations

import logging
import os
import time
from collections.abc import Callable
from contextlib import AbstractContextManager
from dataclasses import dataclass
from decimal import Decimal
from typing import Any, Generic, TypeVar

from autoheal.guard._symbols import normalize_action, normalize_symbol
from autoheal.guard.classify import classify, outcome_unknown
from autoheal.guard.errors import LedgerUnreadableError, OrderOutcomeUnknownError
from autoheal.guard.kill_switch import PathArg, runtime_dir_from_env
from autoheal.guard.ledger_file import (
    IN_FLIGHT,
    LEDGER_UNREADABLE,
    ORDER_SIGS_RELPATH,
    PENDING,
    PLACED,
    LedgerFile,
    LedgerView,
    parse_ledger,
)
from autoheal.guard.order_identity import (
    KEY_CONFLICT,
    IdempotencyKeyConflictError,
    describe_order,
    describe_record,
    order_signature,
)
from autoheal.store import _json

__all__ = [
    "KEY_CONFLICT",
    "LEDGER_UNREADABLE",
    "ORDER_SIGS_RELPATH",
    "IdempotencyKeyConflictError",
    "LedgerView",
    "OrderLedger",
    "PlaceResult",
    "order_signature",
    "parse_ledger",
]

REFUSED = "refused"

T = TypeVar("T")
log = logging.getLogger("autoheal.guard.idempotency")


@dataclass(frozen=True, slots=True)
class PlaceResult(Generic[T]):
    """What :meth:`OrderLedger.place` did: ``placed``, ``duplicate``, ``pending`` or ``refused``.

    ``result`` is what the placement returned (``None`` unless placed); ``reason`` says
    why it was refused (``ledger_unreadable``).
    """

    status: str
    sig: str
    result: T | None = None
    reason: str = ""


class OrderLedger:
    """The shared record of recent order signatures.

    Args:
        runtime_dir: the runtime directory; the file is ``runtime/order_sigs.json`` inside it.
            Default ``AUTOHEAL_RUNTIME_DIR``.
        ttl_s: how long a placed signature blocks duplicates.
        time_fn: monotonic seconds (system-wide on Linux, so processes agree); tests pass a fake.

    Raises:
        ValueError: no ``runtime_dir`` and ``AUTOHEAL_RUNTIME_DIR`` not set.
    """

    def __init__(
        self,
        runtime_dir: PathArg | None = None,
        *,
        ttl_s: float = 120.0,
        time_fn: Callable[[], float] = time.monotonic,
    ) -> None:
        self.runtime_dir = runtime_dir_from_env(runtime_dir, what="OrderLedger")
        self._file = LedgerFile(self.runtime_dir)
        self.path = self._file.path
        self.ttl_s = ttl_s
        self._time_fn = time_fn

    def check_and_record(
        self,
        symbol: str,
        side: str,
        qty: float | str | Decimal,
        price: float | str | Decimal | None = None,
        *,
        strategy: str | None = None,
    ) -> tuple[bool, str]:
        """Record this order's signature as ``pending`` (durably) unless a live record exists.

        ``strategy``: the strategy placing it, kept in the record (RTS 6 Art. 12: which
        algorithm placed each order).

        Call it before sending; then :meth:`mark_placed`, :meth:`release` or
        :meth:`mark_pending`. A record never settled (the sender crashed) stays pending.

        Returns:
            ``(is_dup, sig)``: ``is_dup`` is False for exactly one caller.

        Raises:
            LedgerUnreadableError: the ledger is unreadable; no order may be sent.
        """
        sig = order_signature(symbol, side, qty, price)
        with self._locked_sigs() as sigs:
            if sig in sigs:
                return True, sig
            sigs[sig] = {
                "symbol": normalize_symbol(symbol),
                "side": normalize_action(side),
                "qty": str(qty),
                "price": None if price is None else str(price),
                "ts": self._time_fn(),
                "status": PENDING,
                "reason": IN_FLIGHT,
                "pid": os.getpid(),
            }
            if strategy is not None:
                sigs[sig]["strategy"] = strategy
        return False, sig

    def check_and_record_key(
        self,
        key: str,
        symbol: str,
        side: str,
        qty: float | str | Decimal,
        price: float | str | Decimal | None = None,
        *,
        strategy: str | None = None,
    ) -> tuple[bool, str]:
        """:meth:`check_and_record` under the caller's idempotency ``key`` (its client order id).

        Returns:
            ``(is_dup, key)``.

        Raises:
            IdempotencyKeyConflictError: ``key`` is recorded for an order with other
                parameters.
            LedgerUnreadableError: the ledger is unreadable; no order may be sent.
        """
        if not isinstance(key, str) or not key or len(key) > 128:
            raise ValueError("an idempotency key must be a non-empty string of at most 128")
        sig = order_signature(symbol, side, qty, price)
        with self._locked_sigs() as sigs:
            entry = sigs.get(key)
            if entry is not None:
                recorded = str(entry.get("order_sig", key))
                if recorded != sig:
                    raise IdempotencyKeyConflictError(
                        key,
                        recorded=describe_record(entry),
                        requested=describe_order(symbol, side, qty, price),
                    )
                return True, key
            sigs[key] = {
                "symbol": normalize_symbol(symbol),
                "side": normalize_action(side),
                "qty": str(qty),
                "price": None if price is None else str(price),
                "order_sig": sig,
                "ts": self._time_fn(),
                "status": PENDING,
                "reason": IN_FLIGHT,
                "pid": os.getpid(),
            }
            if strategy is not None:
                sigs[key]["strategy"] = strategy
        return False, key

    def keep_result(self, sig: str, result: Any) -> bool:
        """Keep an executed order's result (a JSON document) with its record, for repeats.

        Returns:
            Whether it was kept (not when the record is gone or the result is not JSON).
        """
        try:
            _json.dumps_line(result)
        except TypeError:
            return False
        with self._locked_sigs() as sigs:
            if sig not in sigs:
                return False
            sigs[sig] = {**sigs[sig], "result": result}
        return True

    def result(self, sig: str) -> Any:
        """The kept result of an executed order (``None`` if none was kept or it expired).

        Raises:
            LedgerUnreadableError: the ledger is unreadable.
        """
        with self._locked_sigs() as sigs:
            entry = sigs.get(sig)
        return None if entry is None else entry.get("result")

    def entry(self, sig: str) -> dict[str, Any] | None:
        """A copy of the live record (``status``, ``reason``, ``pid``, ...), or ``None``.

        A ``pending`` record with reason ``in_flight`` is still being sent by process
        ``pid`` (or that process died mid-send); any other reason is an outcome known
        to be unknown, to be reconciled before anything else is sent for it.

        Raises:
            LedgerUnreadableError: the ledger is unreadable.
        """
        with self._locked_sigs() as sigs:
            entry = sigs.get(sig)
        return None if entry is None else dict(entry)

    def status(self, sig: str) -> str | None:
        """``placed``, ``pending`` or ``None`` (unknown or expired).

        Raises:
            LedgerUnreadableError: the ledger is unreadable.
        """
        with self._locked_sigs() as sigs:
            entry = sigs.get(sig)
        return None if entry is None else str(entry.get("status"))

    def records(self) -> dict[str, dict[str, Any]]:
        """A copy of every live record by name (for reconciliation with the venue).

        Raises:
            LedgerUnreadableError: the ledger is unreadable.
        """
        with self._locked_sigs() as sigs:
            return {name: dict(entry) for name, entry in sigs.items()}

    def mark_placed(self, sig: str) -> None:
        """The exchange accepted the order: keep blocking duplicates until the TTL ends."""
        self._set(sig, PLACED)

    def mark_pending(self, sig: str, reason: str = "timeout") -> None:
        """The outcome is unknown: block every resend until :meth:`reconcile` settles it."""
        self._set(sig, PENDING, reason=reason)
        log.warning(
            "[idempotency] order %s pending reason=%s (not resent until reconciled)", sig, reason
        )

    def release(self, sig: str) -> None:
        """The order certainly did not reach the exchange: forget its signature."""
        with self._locked_sigs() as sigs:
            sigs.pop(sig, None)

    def reconcile(self, sig: str, reconcile_fn: Callable[[dict[str, Any]], str]) -> str | None:
        """Settle a pending order: ``reconcile_fn(entry)`` says ``"placed"``, ``"absent"`` or else.

        The reconcile function runs without the lock held (it talks to the exchange).

        Returns:
            The record's status afterwards (``None`` if it was forgotten).
        """
        with self._locked_sigs() as sigs:
            entry = sigs.get(sig)
        if entry is None or entry.get("status") != PENDING:
            return None if entry is None else str(entry.get("status"))
        verdict = reconcile_fn(dict(entry, sig=sig))
        log.warning("[idempotency] order %s reconciled verdict=%s", sig, verdict)
        if verdict == "placed":
            self._set(sig, PLACED)
            return PLACED
        if verdict == "absent":
            self.release(sig)
            return None
        return PENDING

    def place(
        self,
        symbol: str,
        side: str,
        qty: float | str | Decimal,
        price: float | str | Decimal | None,
        place_fn: Callable[[], T],
        *,
        reconcile_fn: Callable[[dict[str, Any]], str] | None = None,
        key: str | None = None,
    ) -> PlaceResult[T]:
        """Place an order at most once: record (pending), call ``place_fn`` once, settle.

        A pending earlier attempt is reconciled first (when ``reconcile_fn`` is given);
        only an ``"absent"`` verdict lets this signal be placed again. An unreadable
        ledger gives ``PlaceResult("refused", sig, reason="ledger_unreadable")`` and
        ``place_fn`` is not called. A repeat of an executed order is a ``duplicate``
        carrying the first call's result (when it is JSON). ``key`` names the record
        instead of the signature (see :meth:`check_and_record_key`).

        Raises:
            OrderOutcomeUnknownError: the placement raised an error after which the order
                may exist (timeout, reset, 5xx); the record stays ``pending``.
            Exception: any other error of ``place_fn``, unchanged; the record is released.
        """

        def record() -> tuple[bool, str]:
            if key is None:
                return self.check_and_record(symbol, side, qty, price)
            return self.check_and_record_key(key, symbol, side, qty, price)

        try:
            is_dup, sig = record()
            pending = is_dup and self.status(sig) == PENDING
            if pending and reconcile_fn is not None and self.reconcile(sig, reconcile_fn) is None:
                is_dup, sig = record()
            if is_dup:
                if self.status(sig) == PENDING:
                    return PlaceResult(PENDING, sig)
                return PlaceResult("duplicate", sig, self.result(sig))
        except LedgerUnreadableError as exc:
            sig = key if key is not None else order_signature(symbol, side, qty, price)
            return PlaceResult(REFUSED, sig, reason=exc.reason)
        try:
            result = place_fn()
        except Exception as exc:
            if outcome_unknown(exc):
                reason = classify(exc).reason
                self.mark_pending(sig, reason)
                raise OrderOutcomeUnknownError(sig, reason=reason) from exc
            self.release(sig)
            raise
        self.mark_placed(sig)
        self.keep_result(sig, result)
        return PlaceResult(PLACED, sig, result)

    def repair(self) -> bool:
        """Unblock an unreadable ledger: start an empty one and clear the alert.

        An operator's action, after the orders of the kept-aside file were checked
        with the exchange (their outcomes are forgotten here). A still unreadable
        file is kept aside first.

        Returns:
            Whether there was anything to repair.
        """
        return self._file.repair()

    # -- internals -----------------------------------------------------------------------

    def _set(self, sig: str, status: str, **extra: Any) -> None:
        with self._locked_sigs() as sigs:
            entry = dict(sigs.get(sig, {"ts": self._time_fn()}))
            entry.update(extra, status=status)
            if status == PLACED:
                entry["ts"] = self._time_fn()  # the TTL runs from the confirmed placement
                entry.pop("reason", None)
            sigs[sig] = entry

    def _live(self, sigs: dict[str, dict[str, Any]], now: float) -> dict[str, dict[str, Any]]:
        def alive(entry: dict[str, Any]) -> bool:
            if entry.get("status") == PENDING:
                return True  # unknown outcomes never expire
            ts = entry.get("ts")
            if isinstance(ts, bool) or not isinstance(ts, int | float):
                return False
            # A stamp from the future comes from before a reboot (the monotonic clock restarted).
            return ts <= now + 1.0 and now - ts < self.ttl_s

        return {sig: entry for sig, entry in sigs.items() if alive(entry)}

    def _locked_sigs(self) -> AbstractContextManager[dict[str, dict[str, Any]]]:
        """Live records under the lock (:meth:`LedgerFile.locked_sigs`).

        Raises:
            LedgerUnreadableError: the ledger is unreadable (kept aside and blocked now).
        """
        return self._file.locked_sigs(lambda sigs: self._live(sigs, self._time_fn()))
